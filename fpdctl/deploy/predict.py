"""``fpdctl predict``: keypoints for an image, a folder of images or a video.

Each image (or video frame) goes through the top-down pipeline (:mod:`fpdctl.pipeline`): cropped
around one person the way the validation pipeline crops a dataset sample, normalised with the
model's own input convention, run through the model's final stack, decoded by the heatmap codec
and mapped back to image pixels.

The person: with a box ``(x, y, w, h)`` the crop is centred on the box and its side is the box's
longer side times the datasets' 1.25 margin (a tight box would otherwise cut off hands and feet);
without one, the whole frame is one person: centre at the image centre, side the longer image
side.

Outputs (in the output folder): ``keypoints.json`` with every prediction (image px, heatmap peak
scores, joint names), and the input drawn with the skeleton: ``NAME`` for each image,
``STEM_pose.mp4`` (mp4v) for a video. Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from fpdctl.errors import DataError, InputError, RuntimeFailure, UsageError
from fpdctl.pipeline import Box, person_box
from fpdctl.progress import Progress, report

if TYPE_CHECKING:
    from fpdctl.deploy.runtime import Runner
    from fpdctl.models.convention import ConventionOverride, InputConvention

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")
JSON_NAME = "keypoints.json"
VIDEO_FOURCC = "mp4v"
# Frames per second written when a video does not report its own.
FALLBACK_FPS: float = 25.0
# Images per forward pass for folders (video frames run one at a time, in order).
FOLDER_BATCH: int = 8


def parse_bbox(text: str | None) -> Box | None:
    """``"x,y,w,h"`` (image px, top-left corner and size) -> a tuple; None -> None.

    Raises:
        UsageError: not four numbers, or a width or height that is not positive.
    """
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(np.isfinite(values)):
        raise UsageError(f"--bbox must be x,y,w,h (four numbers, image pixels), got '{text}'")
    if values[2] <= 0 or values[3] <= 0:
        raise UsageError(f"--bbox width and height must be positive, got '{text}'")
    return values[0], values[1], values[2], values[3]


@dataclass(frozen=True)
class Prediction:
    """One person in one image or frame.

    Attributes:
        source: the image's file name, or the video's.
        frame: the frame index in a video, else None.
        width, height: image size in px.
        box: (x, y, w, h) the crop was built from (the whole image without --bbox).
        center: float32 [2] crop centre in image px.
        scale: crop side / 200 px.
        keypoints: float32 [J, 2] (x, y) in image px, 0-based.
        scores: float32 [J] heatmap peak values.
    """

    source: str
    frame: int | None
    width: int
    height: int
    box: Box
    center: np.ndarray
    scale: float
    keypoints: np.ndarray
    scores: np.ndarray

    def to_dict(self, joint_names: Sequence[str]) -> dict[str, Any]:
        return {
            "file": self.source,
            "frame": self.frame,
            "width": self.width,
            "height": self.height,
            "box": [round(float(v), 3) for v in self.box],
            "center": [round(float(v), 3) for v in self.center],
            "scale": round(float(self.scale), 6),
            "keypoints": [
                {"name": name, "x": round(float(x), 3), "y": round(float(y), 3), "score": round(float(s), 5)}
                for name, (x, y), s in zip(joint_names, self.keypoints, self.scores)
            ],
        }


@dataclass(frozen=True)
class PredictResult:
    """What ``fpdctl predict`` did.

    Attributes:
        model: the MODEL argument; arch: its architecture name.
        input: the INPUT argument; kind: "image", "folder" or "video".
        joint_names, skeleton: of the model's channels.
        predictions: one per image or frame.
        json_path: the keypoints file written.
        drawn: the drawn images or video written.
        skipped: "file: reason" for folder images that could not be read.
        seconds: wall time.
        input_convention: how the crops were normalised (the model's own, or the override).
    """

    model: str
    arch: str
    input: str
    kind: str
    input_size: int
    joint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    predictions: list[Prediction]
    json_path: Path
    drawn: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    input_convention: "InputConvention | None" = None

    def to_dict(self) -> dict[str, Any]:
        from fpdctl import __version__

        return {
            "fpdctl": __version__,
            "model": self.model,
            "arch": self.arch,
            "input": self.input,
            "kind": self.kind,
            "input_size": self.input_size,
            "input_convention": None if self.input_convention is None else self.input_convention.to_dict(),
            "coordinates": "image pixels, 0-based, x right, y down",
            "score": "heatmap peak value of the joint",
            "joint_names": list(self.joint_names),
            "skeleton": [list(p) for p in self.skeleton],
            "results": [p.to_dict(self.joint_names) for p in self.predictions],
            "skipped": list(self.skipped),
        }


class _Model:
    """A runner plus what feeding it needs: input size, input convention, joint set."""

    def __init__(
        self, model: str, device: str, threads: int | None, input_size: int | None,
        input_convention: "ConventionOverride | None" = None, backend: str = "auto",
    ) -> None:
        from fpdctl.deploy.backends import pick_backend
        from fpdctl.deploy.runtime import make_runner, open_model
        from fpdctl.utils.device import resolve_device

        self.source = source = open_model(model, input_convention)
        self.input_size = source.input_size_for(input_size)
        onnx = source.kind == "onnx"
        run_on = device if onnx else str(resolve_device(device))
        row = pick_backend(
            "onnx" if onnx else "torch", backend, device_type=run_on.split(":")[0],
            onnx_precision=source.precision if onnx else None,
        )
        self.runner: Runner = make_runner(source, row, device=run_on, threads=threads)
        # The model's own input convention (the checkpoint or export records it, or its format
        # implies it; the user may override it), never a module default.
        self.convention = source.input_convention
        self.joint_set = source.joint_set

    def crop(self, image: np.ndarray, center: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [S, S, 3] BGR crop around the person and its affine (image px -> input px)."""
        from fpdctl.pipeline import crop

        return crop(image, center, scale, self.input_size)

    def keypoints(self, patches: np.ndarray, affines: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Image-px keypoints [N, J, 2] and scores [N, J] for a batch of crops [N, S, S, 3]."""
        from fpdctl.deploy.metadata import GraphIO
        from fpdctl.pipeline import predict_crops

        if self.runner.io == GraphIO():
            return predict_crops(self.runner, patches, affines, self.convention)
        # An export with pre-processing or decoding inside: it takes the crops / returns keypoints.
        from fpdctl.data.transforms import invert_affine, transform_points
        from fpdctl.deploy.embed import embedded_keypoints

        keypoints, scores = embedded_keypoints(self.runner, patches, self.convention)
        return transform_points(keypoints, np.stack([invert_affine(a) for a in affines])), scores

    def draw(
        self, image: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, min_score: float, box: Box | None,
    ) -> np.ndarray:
        """The image with the skeleton drawn, and the person's box when the user gave one."""
        from fpdctl.viz import box_corners, draw_skeleton

        outline = None if box is None else box_corners(box[0], box[1], box[0] + box[2], box[1] + box[3])
        return draw_skeleton(image, keypoints, self.joint_set, scores=scores, min_score=min_score, outline=outline)


def input_kind(path: Path) -> str:
    """"image", "folder" or "video" from the path; InputError for anything else."""
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
    model: str,
    input_path: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] = "predictions",
    bbox: Box | None = None,
    device: str = "cpu",
    threads: int | None = None,
    input_size: int | None = None,
    draw: bool = True,
    min_score: float = 0.0,
    max_frames: int | None = None,
    input_convention: "ConventionOverride | None" = None,
    backend: str = "auto",
    progress: Progress | None = None,
) -> PredictResult:
    """Predict keypoints for one person per image or frame and write them (and drawings).

    Args:
        model: a checkpoint, an .onnx file from ``fpdctl export``, or a model name.
        input_path: an image, a folder of images, or a video.
        out_dir: output folder (created; must not be the input folder).
        bbox: (x, y, w, h) of the person in image px, for every image; None: the whole image.
        device: "cpu", "cuda", ... (PyTorch models; ONNX models use the matching provider).
        threads: intra-op threads.
        input_size: network input side for checkpoints and names (default 256).
        draw: write the drawn images / video.
        min_score: joints below this heatmap peak are not drawn (they are still in the JSON).
        max_frames: stop a video after this many frames.
        input_convention: override flags applied to the model's own input convention.
        backend: the backend row to run on (:func:`~fpdctl.deploy.backends.pick_backend`): auto,
            a runtime (onnxruntime, openvino for an .onnx file) or a row name such as ov-bf16.
        progress: gets a "predict.item" event after each image or frame (``done`` of ``total``;
            total 0 when a video does not say).

    Raises:
        InputError / DataError: missing or unreadable input; UsageError: bad options;
        RuntimeFailure: an output could not be written.
    """
    start = time.perf_counter()
    source_path = Path(input_path)
    kind = input_kind(source_path)
    out = Path(out_dir)
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {max_frames}")
    if not math.isfinite(min_score):  # NaN would silently draw nothing
        raise UsageError(f"--min-score must be a finite number, got {min_score}")
    if kind == "folder" and draw and out.resolve() == source_path.resolve():
        raise UsageError("--out must not be the input folder (the drawn images would replace the inputs)")
    if draw and kind != "video":
        for image_file in _image_files(source_path, kind):
            if (out / image_file.name).resolve() == image_file.resolve():
                raise UsageError(f"--out would overwrite the input image {image_file}")
    from fpdctl.utils.io import check_folder_creatable

    check_folder_creatable(out)  # before the model loads
    import torch

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _predict(
            model, source_path, kind, out, bbox=bbox, device=device, threads=threads,
            input_size=input_size, draw=draw, min_score=min_score, max_frames=max_frames,
            input_convention=input_convention, backend=backend, progress=progress, start=start,
        )
    finally:
        torch.set_num_threads(previous_threads)  # a library call must not leave torch changed


def _predict(
    model: str, source_path: Path, kind: str, out: Path, *, bbox: Box | None,
    device: str, threads: int | None, input_size: int | None, draw: bool, min_score: float,
    max_frames: int | None, input_convention: "ConventionOverride | None", progress: Progress | None,
    start: float, backend: str = "auto",
) -> PredictResult:
    from fpdctl.utils.io import atomic_write_text, ensure_parent_writable

    net = _Model(model, device, threads, input_size, input_convention, backend)
    json_path = ensure_parent_writable(out / JSON_NAME)

    predictions: list[Prediction] = []
    drawn: list[Path] = []
    skipped: list[str] = []
    if kind == "video":
        predictions, video_out = _predict_video(net, source_path, out, bbox, draw, min_score, max_frames, progress)
        if video_out is not None:
            drawn.append(video_out)
    else:
        predictions, drawn, skipped = _predict_images(net, source_path, kind, out, bbox, draw, min_score, progress)
    result = PredictResult(
        model=model, arch=net.source.spec.name, input=str(source_path), kind=kind,
        input_size=net.input_size, joint_names=tuple(net.joint_set.names), skeleton=tuple(net.joint_set.skeleton),
        predictions=predictions, json_path=json_path, drawn=drawn, skipped=skipped,
        seconds=time.perf_counter() - start, input_convention=net.convention,
    )
    atomic_write_text(json_path, keypoints_json(result.to_dict()))
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
    net: _Model, path: Path, kind: str, out: Path, bbox: Box | None,
    draw: bool, min_score: float, progress: Progress | None,
) -> tuple[list[Prediction], list[Path], list[str]]:
    import cv2

    from fpdctl.data.dataset import read_image
    from fpdctl.utils.io import atomic_write_bytes

    files = _image_files(path, kind)
    predictions: list[Prediction] = []
    drawn: list[Path] = []
    skipped: list[str] = []

    def loaded() -> Iterator[tuple[Path, np.ndarray]]:
        for file in files:
            try:
                yield file, read_image(file)
            except DataError as exc:
                if kind == "image":
                    raise
                skipped.append(f"{file.name}: {exc}")

    batch: list[tuple[Path, np.ndarray, np.ndarray, float, tuple, np.ndarray, np.ndarray]] = []

    def flush() -> None:
        if not batch:
            return
        crops = np.stack([item[5] for item in batch])
        coords, scores = net.keypoints(crops, [item[6] for item in batch])
        for (file, image, center, scale, box, _crop, _affine), xy, sc in zip(batch, coords, scores):
            h, w = image.shape[:2]
            predictions.append(Prediction(file.name, None, w, h, box, center, scale, xy, sc))
            if draw:
                canvas = net.draw(image, xy, sc, min_score, box if bbox is not None else None)
                target = out / file.name
                ok, encoded = cv2.imencode(file.suffix.lower() if file.suffix.lower() in IMAGE_SUFFIXES else ".png", canvas)
                if not ok:
                    raise RuntimeFailure(f"could not encode {target}")
                atomic_write_bytes(target, encoded.tobytes())
                drawn.append(target)
        report(progress, "predict.item", done=len(predictions), total=len(files))
        batch.clear()

    for file, image in loaded():
        h, w = image.shape[:2]
        center, scale, box = person_box(w, h, bbox)
        crop, affine = net.crop(image, center, scale)
        batch.append((file, image, center, scale, box, crop, affine))
        if len(batch) == FOLDER_BATCH:
            flush()
    flush()
    if not predictions:
        raise InputError(f"no readable images in {path}: {skipped[0] if skipped else ''}")
    return predictions, drawn, skipped


def _predict_video(
    net: _Model, path: Path, out: Path, bbox: Box | None, draw: bool,
    min_score: float, max_frames: int | None, progress: Progress | None,
) -> tuple[list[Prediction], Path | None]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"cannot open video {path} (unsupported codec or not a video)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and np.isfinite(fps) and fps > 0 else FALLBACK_FPS
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    target = out / f"{path.stem}_pose.mp4"
    writer = None
    tmp_dir = None
    tmp_file = None
    predictions: list[Prediction] = []
    try:
        index = 0
        while max_frames is None or index < max_frames:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            h, w = frame.shape[:2]
            center, scale, box = person_box(w, h, bbox)
            crop, affine = net.crop(frame, center, scale)
            coords, scores = net.keypoints(crop[None], [affine])
            predictions.append(Prediction(path.name, index, w, h, box, center, scale, coords[0], scores[0]))
            if draw:
                if writer is None:
                    # The container is chosen from the file name, so the temporary file keeps .mp4.
                    tmp_dir = tempfile.mkdtemp(prefix=f".{path.stem}.", dir=out)
                    tmp_file = Path(tmp_dir) / target.name
                    writer = cv2.VideoWriter(str(tmp_file), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, (w, h))
                    if not writer.isOpened():
                        raise RuntimeFailure(f"OpenCV cannot write {VIDEO_FOURCC} video to {target}")
                writer.write(net.draw(frame, coords[0], scores[0], min_score, box if bbox is not None else None))
            index += 1
            report(progress, "predict.item", done=index, total=total)
        if not predictions:
            raise DataError(f"no frames could be read from {path}")
        if writer is not None:
            writer.release()
            writer = None
            os.replace(tmp_file, target)  # type: ignore[arg-type]
            return predictions, target
        return predictions, None
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if tmp_dir is not None:
            for leftover in Path(tmp_dir).iterdir():
                leftover.unlink(missing_ok=True)
            os.rmdir(tmp_dir)


__all__ = [
    "IMAGE_SUFFIXES",
    "JSON_NAME",
    "VIDEO_SUFFIXES",
    "PredictResult",
    "Prediction",
    "input_kind",
    "keypoints_json",
    "parse_bbox",
    "person_box",
    "predict",
]
