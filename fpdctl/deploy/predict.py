"""``fpdctl predict``: keypoints for every person of an image, a folder of images or a video.

Each person goes through the top-down pipeline (:mod:`fpdctl.pipeline`): cropped around its box
the way the validation pipeline crops a dataset sample, normalised with the model's own input
convention, run through the model's final stack, decoded by the heatmap codec and mapped back to
image pixels. The persons of an image (or frame) run in chunks of ``batch_size`` crops
(:meth:`Pose.run <fpdctl.deploy.pose.Pose.run>`).

Where the persons come from (:class:`PersonSource`), one of:

* the whole frame (the default): one person, centre at the image centre, side the longer image
  side;
* ``bbox`` (x, y, w, h): one person in every image;
* a boxes file (:mod:`fpdctl.deploy.boxes`) or a person detector (:mod:`fpdctl.deploy.detector`):
  every box is a person. An image with no box has no persons.

Every box is checked, clipped to its image and cropped by :mod:`fpdctl.boxes`, as ``eval --boxes``
crops (a box that is not finite, thinner than 1 px or outside its image is skipped and counted).

Outputs (in the output folder): ``keypoints.json``, one entry per image or frame with its list of
``persons`` (box, box score, crop centre and scale, keypoints in image px with heatmap peak
scores), and the input drawn with every skeleton: ``NAME`` for each image, ``STEM_pose.mp4``
(mp4v) for a video. keypoints.json lists the files the run wrote (``written``): a later run with
``overwrite`` replaces exactly those and refuses a folder holding anything else, or a manifest
naming anything but plain files of the folder. A run writes into a hidden folder beside the
output folder and swaps it in whole at the end, so a failed or killed run leaves the output
folder as it was (:mod:`fpdctl.deploy.output_folder`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from fpdctl.boxes import Box
from fpdctl.deploy.detector import DEFAULT_DET_IOU, DEFAULT_DET_SCORE
from fpdctl.deploy.output_folder import JSON_NAME, StagedFolder, previous_outputs
from fpdctl.deploy.persons import (
    PersonBox,
    PersonSource,
    Prediction,
    PredictResult,
)
from fpdctl.errors import DataError, InputError, RuntimeFailure, UsageError
from fpdctl.pipeline import INFERENCE_BATCH_SIZE, check_batch_size
from fpdctl.progress import Progress, report

if TYPE_CHECKING:
    from fpdctl.deploy.pose import Pose
    from fpdctl.deploy.pose_result import DetectorLike

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")
VIDEO_FOURCC = "mp4v"
# Frames per second written when a video does not report its own.
FALLBACK_FPS: float = 25.0
# Folders: images are gathered until their persons reach this many (fewer images held at once),
# then run together in chunks of batch_size. Video frames run one at a time, in order.
FOLDER_BATCH: int = 8


def input_kind(path: Path) -> str:
    """ "image", "folder" or "video" from the path; InputError for anything else."""
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise InputError(
        f"cannot tell what {path} is: expected an image ({', '.join(IMAGE_SUFFIXES)}), a video "
        f"({', '.join(VIDEO_SUFFIXES)}) or a folder of images"
    )


def predict(
    model: "Pose | Callable[[], Pose]",
    input_path: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] = "predictions",
    bbox: Box | None = None,
    boxes: str | os.PathLike[str] | None = None,
    annotations: str | os.PathLike[str] | None = None,
    detector: "str | os.PathLike[str] | DetectorLike | None" = None,
    det_score: float = DEFAULT_DET_SCORE,
    det_iou: float = DEFAULT_DET_IOU,
    frame_base: int = 0,
    overwrite: bool = False,
    draw: bool = True,
    min_score: float = 0.0,
    max_frames: int | None = None,
    batch_size: int = INFERENCE_BATCH_SIZE,
    progress: Progress | None = None,
) -> PredictResult:
    """Predict keypoints for every person of each image or frame and write them (and drawings).

    Args:
        model: the pose model (:class:`~fpdctl.deploy.pose.Pose`: its backend, device, threads
            and input size), or a function that opens it, called once the inputs and the output
            folder are checked (so a bad input fails before a model loads). ``fpdctl.predict``
            takes a model file or name.
        input_path: an image, a folder of images, or a video.
        out: output folder (created; must not be the input folder; must be empty or hold
            only an earlier predict's files, replaced with ``overwrite``). The run writes into a
            hidden folder beside it and swaps it in whole at the end; a failed run leaves it as
            it was (:mod:`fpdctl.deploy.output_folder`).
        bbox: (x, y, w, h) of the one person in image px, for every image; None: the whole image.
        boxes: a detections file (:mod:`fpdctl.deploy.boxes`): every box is a person.
        annotations: a COCO annotation file mapping the boxes' ``image_id`` to file names.
        detector: an Ultralytics YOLO .onnx person detector (:mod:`fpdctl.deploy.detector`), or
            any callable image -> (boxes [N, 4] x, y, w, h, scores [N]).
        det_score, det_iou: the detector's score and NMS IoU thresholds; ``det_score`` also
            skips the boxes of a boxes file scoring under it (counted in ``skipped_boxes``).
        frame_base: what a boxes file numbers a video's first frame: 0, or 1 (MOT's files).
        overwrite: replace an earlier predict's output in ``out``: the plain files inside
            it that its keypoints.json lists (``written``); a list naming anything else is refused.
        draw: write the drawn images / video.
        min_score: joints below this heatmap peak are not drawn (they are still in the JSON).
        max_frames: stop a video after this many frames.
        batch_size: persons per forward pass: a crowded image runs in chunks of this many, so
            memory stays bounded whatever the number of boxes (crops are made per chunk,
            :meth:`Pose.run <fpdctl.deploy.pose.Pose.run>`).
        progress: gets a "predict.item" event after each image or frame (``done`` of ``total``;
            total 0 when a video does not say).

    Raises:
        InputError / DataError: missing or unreadable input, a bad boxes file or detector;
        UsageError: bad options, or an ``out`` that may not be replaced; RuntimeFailure: an
            output could not be written.
    """
    from fpdctl.deploy.boxes import check_frame_base
    from fpdctl.deploy.detector import Detector, check_thresholds
    from fpdctl.utils.io import check_folder_creatable, require_file

    start = time.perf_counter()
    source_path = Path(input_path)
    out = Path(out)
    for path, what in ((boxes, "boxes file"), (annotations, "annotation file"), (detector, "detector")):
        if path is not None and not callable(path):
            require_file(path, what)
    if boxes is not None and detector is not None:
        raise UsageError(
            "`boxes` and `detector` exclude each other: give one source of person boxes", params=("boxes", "detector")
        )
    if bbox is not None and (boxes is not None or detector is not None):
        other = "boxes" if boxes else "detector"
        raise UsageError(f"`bbox` is one person for every image; it excludes `{other}`", params=("bbox", other))
    if annotations is not None and boxes is None:
        raise UsageError(
            "`annotations` maps the image ids of a `boxes` file; it needs `boxes`", params=("annotations", "boxes")
        )
    check_batch_size(batch_size)
    check_frame_base(frame_base)
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"`max_frames` must be at least 1, got {max_frames}", params="max_frames")
    if not math.isfinite(min_score):  # NaN would silently draw nothing
        raise UsageError(f"`min_score` must be a finite number, got {min_score}", params="min_score")
    check_thresholds(det_score, det_iou)
    kind = input_kind(source_path)
    if kind == "folder" and draw and out.resolve() == source_path.resolve():
        raise UsageError("`out` must not be the input folder (the drawn images would replace the inputs)", params="out")
    files = _image_files(source_path, kind) if kind != "video" else []
    if draw:
        for image_file in files:
            if (out / image_file.name).resolve() == image_file.resolve():
                raise UsageError(f"`out` would overwrite the input image {image_file}", params="out")
    first_image = None
    if kind == "image":  # an unreadable single image fails before anything is created
        from fpdctl.data.dataset import read_image

        first_image = read_image(source_path)
    file_boxes = None
    if boxes is not None:
        from fpdctl.deploy.boxes import read_boxes

        file_boxes = read_boxes(
            boxes,
            image_names=[f.name for f in files],
            video=source_path.name if kind == "video" else None,
            annotations=annotations,
            det_score=det_score,
            frame_base=frame_base,
        )
    check_folder_creatable(out)  # before the model loads
    previous = previous_outputs(out, overwrite)
    pose = model() if callable(model) and not hasattr(model, "run") else model
    backend, threads = pose.backend.name, pose.threads
    person_detector = (
        None
        if detector is None
        else detector
        if callable(detector)
        else Detector(
            detector,
            backend=backend,
            device=pose.device,
            score=det_score,
            iou=det_iou,
            threads=threads,
        )
    )
    people = PersonSource(bbox=bbox, boxes=file_boxes, detector=person_detector)
    import torch

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        # The run writes into a stage beside out, swapped in whole at the end: a failed or
        # killed run leaves out as it was (fpdctl.deploy.output_folder).
        with StagedFolder(out) as stage:
            assert stage.path is not None
            result = _predict(
                pose,
                source_path,
                kind,
                stage.path,
                files=files,
                first_image=first_image,
                people=people,
                draw=draw,
                min_score=min_score,
                max_frames=max_frames,
                batch_size=batch_size,
                progress=progress,
                start=start,
            )
            stage.commit(previous)
    finally:
        torch.set_num_threads(previous_threads)  # a library call must not leave torch changed
    return dataclasses.replace(
        result,
        json_path=out / JSON_NAME,
        drawn=[out / p.name for p in result.drawn],
        warnings=[*result.warnings, *stage.warnings],
    )


def _predict(
    net: "Pose",
    source_path: Path,
    kind: str,
    out: Path,
    *,
    files: list[Path],
    first_image: np.ndarray | None,
    people: PersonSource,
    draw: bool,
    min_score: float,
    max_frames: int | None,
    progress: Progress | None,
    start: float,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> PredictResult:
    from fpdctl.utils.io import atomic_write_text, ensure_parent_writable

    predictions: list[Prediction] = []
    drawn: list[Path] = []
    skipped: list[str] = []
    if kind == "video":
        predictions, video_out = _predict_video(
            net, source_path, out, people, draw, min_score, max_frames, progress, batch_size
        )
        if video_out is not None:
            drawn.append(video_out)
    else:
        predictions, drawn, skipped = _predict_images(
            net,
            source_path,
            kind,
            files,
            first_image,
            out,
            people,
            draw,
            min_score,
            progress,
            batch_size,
        )
    detector = people.detector
    result = PredictResult(
        model=net.source.label,
        arch=net.spec.name,
        input=str(source_path),
        kind=kind,
        input_size=net.input_size,
        joint_names=tuple(net.joint_set.names),
        skeleton=tuple(net.joint_set.skeleton),
        predictions=predictions,
        json_path=out / JSON_NAME,
        drawn=drawn,
        skipped=skipped,
        seconds=time.perf_counter() - start,
        input_convention=net.convention,
        backend=net.backend.name,
        persons_from=people.kind,
        detector=None
        if detector is None
        else {"file": repr(detector)}
        if not hasattr(detector, "path")  # a callable the caller gave
        else {
            "file": str(detector.path),
            "input_size": detector.size,
            "runtime": detector.runtime,
            "boxes_without_area": detector.dropped,
            "score": detector.score,
            "iou": detector.iou,
        },
        warnings=people.all_warnings(),
        skipped_boxes=dict(people.skipped),
    )
    atomic_write_text(ensure_parent_writable(result.json_path), keypoints_json(result.to_dict()))
    return result


def keypoints_json(data: dict[str, Any]) -> str:
    """The JSON text of :meth:`PredictResult.to_dict`: one line per field, one line per image
    or frame in ``results`` (greppable, and a long video stays readable)."""
    fields = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in data.items() if k != "results"]
    results = [f"  {json.dumps(r)}" for r in data.get("results", [])]
    body = ",\n".join(fields + [' "results": [\n' + ",\n".join(results) + "\n ]"])
    return "{\n" + body + "\n}\n"


def _image_files(path: Path, kind: str) -> list[Path]:
    if kind == "image":
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
    return files


def _predict_images(
    net: "Pose",
    path: Path,
    kind: str,
    files: list[Path],
    first_image: np.ndarray | None,
    out: Path,
    people: PersonSource,
    draw: bool,
    min_score: float,
    progress: Progress | None,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> tuple[list[Prediction], list[Path], list[str]]:
    import cv2

    from fpdctl.data.dataset import read_image
    from fpdctl.utils.io import atomic_write_bytes

    predictions: list[Prediction] = []
    drawn: list[Path] = []
    skipped: list[str] = []
    boxed = people.kind != "image"

    def loaded() -> Iterator[tuple[Path, np.ndarray]]:
        for file in files:
            if first_image is not None:
                yield file, first_image
                continue
            try:
                yield file, read_image(file)
            except DataError as exc:
                skipped.append(f"{file.name}: {exc}")

    # Images wait here until their persons fill a batch; an image's persons are never split.
    pending: list[tuple[Path, np.ndarray, list[PersonBox]]] = []

    def flush() -> None:
        if not pending:
            return
        found = net.run(
            [(image, file.name) for file, image, _boxes in pending],
            [boxes for _file, _image, boxes in pending],
            batch_size=batch_size,
        )
        for (file, image, _boxes), result in zip(pending, found):
            h, w = image.shape[:2]
            predictions.append(Prediction(file.name, None, w, h, result.persons))
            if draw:
                canvas = result.plot(min_score, boxed)
                target = out / file.name
                suffix = file.suffix.lower() if file.suffix.lower() in IMAGE_SUFFIXES else ".png"
                ok, encoded = cv2.imencode(suffix, canvas)
                if not ok:
                    raise RuntimeFailure(f"could not encode {target}")
                atomic_write_bytes(target, encoded.tobytes())
                drawn.append(target)
        report(progress, "predict.item", done=len(predictions), total=len(files))
        pending.clear()

    for file, image in loaded():
        pending.append((file, image, people.find(image, file.name, file.name)))
        if sum(len(boxes) for _f, _i, boxes in pending) >= FOLDER_BATCH:
            flush()
    flush()
    if not predictions:
        raise InputError(f"no readable images in {path}: {skipped[0] if skipped else ''}")
    return predictions, drawn, skipped


def _predict_video(
    net: "Pose",
    path: Path,
    out: Path,
    people: PersonSource,
    draw: bool,
    min_score: float,
    max_frames: int | None,
    progress: Progress | None,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> tuple[list[Prediction], Path | None]:
    import cv2

    from fpdctl.utils.io import ensure_parent_writable

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"cannot open video {path} (unsupported codec or not a video)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and np.isfinite(fps) and fps > 0 else FALLBACK_FPS
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    target = out / f"{path.stem}_pose.mp4"  # out is the run's own stage: written in place
    boxed = people.kind != "image"
    writer = None
    predictions: list[Prediction] = []
    try:
        index = 0
        while max_frames is None or index < max_frames:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            h, w = frame.shape[:2]
            found = people.find(frame, index, f"{path.name} frame {index}")
            result = net.run([(frame, path.name)], [found], batch_size=batch_size, frames=[index])[0]
            predictions.append(Prediction(path.name, index, w, h, result.persons))
            if draw:
                if writer is None:
                    ensure_parent_writable(target)
                    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, (w, h))
                    if not writer.isOpened():
                        raise RuntimeFailure(f"OpenCV cannot write {VIDEO_FOURCC} video to {target}")
                writer.write(result.plot(min_score, boxed))
            index += 1
            report(progress, "predict.item", done=index, total=total)
        if not predictions:
            raise DataError(f"no frames could be read from {path}")
        if max_frames is None or index < max_frames:  # the whole video was read
            people.check_frames(index, path.name)
        if writer is not None:
            writer.release()
            writer = None
            return predictions, target
        return predictions, None
    finally:
        capture.release()
        if writer is not None:
            writer.release()


__all__ = [
    "IMAGE_SUFFIXES",
    "JSON_NAME",
    "VIDEO_SUFFIXES",
    "input_kind",
    "keypoints_json",
    "predict",
]
