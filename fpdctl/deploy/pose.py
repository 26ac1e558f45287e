"""``fpdctl.Pose``: the one object a user holds. It opens a model once (a checkpoint, a pretrained
name, an exported .onnx file or a network) on one row of the backend table and runs it on images
in memory or on disk, on a dataset (:meth:`Pose.val`), into files (:meth:`Pose.predict`), into an
ONNX file (:meth:`Pose.export`) and through a benchmark (:meth:`Pose.bench`)::

    pose = fpdctl.Pose("synthetic-hg2x64")              # PyTorch, on CUDA when there is one
    results = pose(image, boxes=[[40, 20, 60, 110], [120, 30, 55, 100]])   # BGR uint8, x,y,w,h
    drawn = results[0].plot()

Persons are cropped the top-down way (:mod:`fpdctl.pipeline`): around a box ``(x, y, w, h)`` in
image px by the one box rule of eval and predict (:mod:`fpdctl.boxes`), or, without boxes, the
whole image as one person. All crops of a call run in batches of ``batch_size``.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from fpdctl.deploy.bench import benchmark
from fpdctl.deploy.export import export_onnx
from fpdctl.deploy.pose_result import PoseResult, load_image, person_boxes
from fpdctl.errors import UsageError
from fpdctl.evaluation import evaluate_model
from fpdctl.pipeline import INFERENCE_BATCH_SIZE, check_batch_size

if TYPE_CHECKING:
    import torch

    from fpdctl.data.kinds import DataSpec
    from fpdctl.deploy.backends import Backend
    from fpdctl.deploy.bench import BenchResult
    from fpdctl.deploy.export import ExportResult
    from fpdctl.deploy.persons import PersonBox, PredictResult
    from fpdctl.deploy.pose_result import ImageLike
    from fpdctl.deploy.preprocess_decode import Embedding
    from fpdctl.deploy.runtime import ModelSource, Runner
    from fpdctl.evaluation import EvalResult
    from fpdctl.models.convention import ConventionOverride, InputConvention
    from fpdctl.models.spec import HourglassSpec
    from fpdctl.progress import Progress
    from fpdctl.skeleton import JointSet

PathLike = str | os.PathLike[str]


def _default(function: Callable[..., Any], name: str) -> Any:
    """The default of ``function``'s parameter ``name``: each default is defined once, in the
    core function that uses it, and the methods here read it from there."""
    return inspect.signature(function).parameters[name].default


class Pose:
    """A pose model opened once, on one backend and device, with what feeding it needs.

    Args:
        model: a checkpoint file, a pretrained name (``"synthetic-hg2x64"``), a model name
            (random weights), an exported .onnx file, or a network (``fpdctl.load_model(...)``).
        backend: "auto" (PyTorch for a checkpoint or network, ONNX Runtime for an .onnx file), a
            runtime ("torch", "onnxruntime", "openvino") or one row of the backend table
            (:mod:`fpdctl.deploy.backends`, e.g. "ort" for a checkpoint: exported for it once).
        device: "auto" (the one rule of :func:`~fpdctl.deploy.placement.run_device`), "cpu",
            "cuda", "cuda:N" or "mps".
        input_size: the network's input side (None: the size the model was trained at, which a
            checkpoint, a pretrained name and a loaded network remember, else the default; an
            .onnx file runs at its own).
        threads: ONNX Runtime / OpenVINO intra-op threads (None: the runtime's default).
        input_convention: override flags applied to the model's own input convention.

    Attributes:
        source: the opened model (:class:`~fpdctl.deploy.runtime.ModelSource`).
        backend: the row it runs on; device: where ("cpu", "cuda:0", ...).
        runner: the runner (:class:`~fpdctl.deploy.runtime.Runner`).
        spec, joint_set, convention, input_size: the architecture, the joints its channels are,
            how pixels become its input, and the side it runs at.

    Raises:
        UsageError: a bad backend, device or input size; InputError / CheckpointError: a
            missing or unreadable model.
    """

    def __init__(
        self,
        model: PathLike | torch.nn.Module,
        backend: str = "auto",
        device: str = "auto",
        input_size: int | None = None,
        *,
        threads: int | None = None,
        input_convention: ConventionOverride | None = None,
    ) -> None:
        from fpdctl.deploy.placement import open_runner, open_source, place_model

        self.model = model
        self.input_override = input_convention
        self.source: ModelSource = open_source(model, input_convention)
        onnx = self.source.kind == "onnx"
        row, where = place_model(
            "onnx" if onnx else "torch",
            backend,
            device,
            onnx_precision=self.source.precision if onnx else None,
        )
        self.input_size: int = self.source.input_size_for(input_size)
        self.threads = threads
        self.runner: Runner = open_runner(self.source, row, device=where, input_size=self.input_size, threads=threads)
        self.backend: Backend = row
        self.device: str = where

    @property
    def spec(self) -> HourglassSpec:
        return self.source.spec

    @property
    def joint_set(self) -> JointSet:
        return self.source.joint_set

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(self.joint_set.names)

    @property
    def convention(self) -> InputConvention:
        return self.source.input_convention

    def __repr__(self) -> str:
        return (
            f"Pose({self.source.label!r}, arch={self.spec.name}, backend={self.backend.name}, "
            f"device={self.device}, input_size={self.input_size})"
        )

    # --- images in memory ------------------------------------------------------------------

    def __call__(
        self,
        images: ImageLike | Sequence[ImageLike],
        boxes: Any = None,
        *,
        batch_size: int = INFERENCE_BATCH_SIZE,
    ) -> list[PoseResult]:
        """Keypoints of every person in one or several images.

        Args:
            images: a uint8 BGR [H, W, 3] array (as ``cv2.imread`` and Ultralytics give), a path
                to an image file, or a list of them.
            boxes: the persons, per image: None (the whole image is one person); an [N, 4] array
                or list of boxes (x, y, w, h in image px, as COCO and ``bbox`` of predict; an
                [N, 5] array adds each box's score); a list of detections (dicts with ``bbox``
                and optionally ``score``, as a COCO detections file); or a detector, any callable
                image -> (boxes [N, 4], scores [N]) such as :mod:`fpdctl.deploy.detector`'s. For a
                list of images: a list with one such entry per image, or one detector for all.
            batch_size: crops per forward pass (all crops of the call run in such chunks).

        Returns:
            One :class:`PoseResult` per image, in order (a single image gives a list of one).

        Raises:
            UsageError: an image that is not uint8 [H, W, 3], or malformed boxes;
            UnreadableImage: a path that cannot be read.
        """
        check_batch_size(batch_size)
        many = isinstance(images, (list, tuple)) or (isinstance(images, np.ndarray) and images.ndim == 4)
        items = list(images) if many else [images]  # type: ignore[arg-type]
        if many and boxes is not None and not callable(boxes):
            if not isinstance(boxes, (list, tuple)) or len(boxes) != len(items):
                raise UsageError(
                    f"`boxes` for {len(items)} images must be a list of {len(items)} per-image entries "
                    "(or one detector, or None)",
                    params="boxes",
                )
            per_image = list(boxes)
        else:
            per_image = [boxes] * len(items)
        loaded = [load_image(item) for item in items]
        found = [person_boxes(image, spec) for (image, _name), spec in zip(loaded, per_image)]
        return self.run(loaded, found, batch_size=batch_size)

    def run(
        self,
        images: Sequence[tuple[np.ndarray, str]],
        persons: Sequence[Sequence[PersonBox]],
        *,
        batch_size: int = INFERENCE_BATCH_SIZE,
        frames: Sequence[int | None] | None = None,
    ) -> list[PoseResult]:
        """Keypoints of given crops: the step :meth:`__call__` and ``fpdctl predict`` share.

        Args:
            images: (uint8 BGR [H, W, 3] image, its name) pairs.
            persons: per image, the persons to crop (:class:`~fpdctl.deploy.persons.PersonBox`).
            batch_size: crops per forward pass: the one place crops are batched. Crops are made
                per chunk, so only one chunk of crops (and its heatmaps) exists at a time and
                memory does not grow with the number of boxes; each crop is independent of the
                others, so the keypoints do not depend on ``batch_size``.
            frames: per image, its frame index in a video (None: not a video).
        """
        from fpdctl.pipeline import crop

        size = check_batch_size(batch_size)
        # (image, person) of every person, in order: the chunks cut this flat list.
        todo = [(image, person) for (image, _name), found in zip(images, persons) for person in found]
        joints = len(self.joint_set.names)
        coords = np.zeros((len(todo), joints, 2), np.float32)
        peaks = np.zeros((len(todo), joints), np.float32)
        for start in range(0, len(todo), size):
            chunk = [crop(image, p.center, p.scale, self.input_size) for image, p in todo[start : start + size]]
            found_xy, found_peaks = self._keypoints(np.stack([c for c, _ in chunk]), [a for _, a in chunk])
            coords[start : start + len(chunk)] = found_xy
            peaks[start : start + len(chunk)] = found_peaks
        results: list[PoseResult] = []
        k = 0
        for index, ((image, name), found) in enumerate(zip(images, persons)):
            n = len(found)
            results.append(
                PoseResult(
                    image=image,
                    boxes=np.array([p.box for p in found], np.float64).reshape(n, 4),
                    box_scores=np.array([np.nan if p.score is None else p.score for p in found], np.float64),
                    centers=np.array([p.center for p in found], np.float32).reshape(n, 2),
                    scales=np.array([p.scale for p in found], np.float32),
                    keypoints=coords[k : k + n].copy(),  # copies: a view keeps every person's alive
                    scores=peaks[k : k + n].copy(),
                    joint_set=self.joint_set,
                    source=name,
                    frame=None if frames is None else frames[index],
                )
            )
            k += n
        return results

    def _keypoints(self, patches: np.ndarray, affines: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Image-px keypoints [N, J, 2] and scores [N, J] for a batch of crops [N, S, S, 3]."""
        from fpdctl.deploy.metadata import GraphIO
        from fpdctl.pipeline import predict_crops

        if self.runner.io == GraphIO():
            return predict_crops(self.runner, patches, affines, self.convention)
        # An export with pre-processing or decoding inside: it takes the crops / returns keypoints.
        from fpdctl.data.transforms import invert_affine, transform_points
        from fpdctl.deploy.preprocess_decode import embedded_keypoints

        keypoints, scores = embedded_keypoints(self.runner, patches, self.convention)
        return transform_points(keypoints, np.stack([invert_affine(a) for a in affines])), scores

    # --- files, datasets, exports, timing -------------------------------------------------

    def predict(
        self,
        source: ImageLike | Sequence[ImageLike],
        out: PathLike | None = None,
        stream: bool = False,
        *,
        boxes: Any = None,
        max_frames: int | None = None,
        batch_size: int = INFERENCE_BATCH_SIZE,
        overwrite: bool = False,
        draw: bool = True,
        min_score: float = 0.0,
        progress: Progress | None = None,
    ) -> list[PoseResult] | Iterator[PoseResult] | PredictResult:
        """Keypoints of every image of ``source``: an image, a folder of images or a video (a
        path), or arrays.

        Args:
            source: a path to an image, a folder of images or a video, an array, or a list of
                images (arrays or paths).
            out: a folder to write keypoints.json and the drawings into, as ``fpdctl predict``
                does (None: write nothing and return the results).
            stream: yield one :class:`PoseResult` per image or frame as it is ready (a long
                video never sits in memory); with ``out`` None only.
            boxes: the persons: as :meth:`__call__` (None: the whole image; a detector), or, for
                a path ``source``, a detections file (``fpdctl predict --boxes``).
            max_frames: stop a video after this many frames.
            batch_size: crops per forward pass.
            overwrite, draw, min_score, progress: with ``out``, as
                :func:`fpdctl.deploy.predict.predict`.

        Returns:
            With ``out``: the :class:`~fpdctl.deploy.persons.PredictResult` of the files written;
            with ``stream``: an iterator of :class:`PoseResult`; else a list of them.

        Raises:
            UsageError: ``stream`` with ``out``, or bad boxes; InputError: a missing input.
        """
        if out is not None:
            if stream:
                raise UsageError(
                    "`stream` yields results without writing files; give `out` None, or `stream` False",
                    params=("stream", "out"),
                )
            from fpdctl.deploy.predict import predict

            if not isinstance(source, (str, os.PathLike)):
                raise UsageError(
                    "with `out`, `source` must be a path to an image, a folder of images or a video",
                    params=("out", "source"),
                )
            file_boxes = boxes if isinstance(boxes, (str, os.PathLike)) else None
            if boxes is not None and file_boxes is None and not callable(boxes):
                raise UsageError(
                    "with `out`, `boxes` must be a detections file or a detector (one list does not fit a folder)",
                    params=("out", "boxes"),
                )
            return predict(
                self,
                source,
                out=out,
                boxes=file_boxes,
                detector=boxes if callable(boxes) else None,
                overwrite=overwrite,
                draw=draw,
                min_score=min_score,
                max_frames=max_frames,
                batch_size=batch_size,
                progress=progress,
            )
        results = self._stream(source, boxes, max_frames, batch_size)
        return results if stream else list(results)

    def _stream(self, source: Any, boxes: Any, max_frames: int | None, batch_size: int) -> Iterator[PoseResult]:
        if max_frames is not None and max_frames < 1:
            raise UsageError(f"`max_frames` must be at least 1, got {max_frames}", params="max_frames")
        if isinstance(boxes, (str, os.PathLike)):
            raise UsageError(
                "a detections file as `boxes` needs `out` (it is read as predict reads it)", params=("boxes", "out")
            )
        if not isinstance(source, (str, os.PathLike)):
            items = source if isinstance(source, (list, tuple)) else [source]
            per_image = boxes if isinstance(boxes, (list, tuple)) and isinstance(source, (list, tuple)) else None
            for index, item in enumerate(items):
                yield self(item, per_image[index] if per_image is not None else boxes, batch_size=batch_size)[0]
            return
        from fpdctl.deploy.pose_result import read_frames
        from fpdctl.deploy.predict import input_kind

        path = Path(source)
        kind = input_kind(path)
        if kind != "video":
            files = (
                [path]
                if kind == "image"
                else sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _image_suffixes())
            )
            for file in files:
                image, name = load_image(file)
                yield self.run([(image, name)], [person_boxes(image, boxes)], batch_size=batch_size)[0]
            return
        for index, frame in read_frames(path, max_frames):
            yield self.run([(frame, path.name)], [person_boxes(frame, boxes)], batch_size=batch_size, frames=[index])[0]

    def val(
        self,
        data: str | DataSpec,
        boxes: PathLike | None = None,
        flip_test: bool = _default(evaluate_model, "flip_test"),
        *,
        batch_size: int = INFERENCE_BATCH_SIZE,
        num_workers: int = _default(evaluate_model, "num_workers"),
        threshold: float | None = None,
        save_predictions: PathLike | None = None,
        progress: Progress | None = None,
    ) -> EvalResult:
        """The model scored on the validation split of ``data``, on its own backend and device
        (``fpdctl eval``): PCKh for MPII and synthetic data, PCK@0.2 for LSP, COCO AP for COCO.

        Args:
            data: ``synthetic[:KEY=VAL,...]``, ``mpii:PATH``, ``lsp:PATH`` or ``coco:PATH``.
            boxes: a COCO detection-results JSON (``coco:PATH`` only): crop the val images at
                these person boxes instead of the ground-truth ones, rescored and OKS-NMSed as
                HRNet does (:class:`~fpdctl.data.coco.COCODetections`).
            flip_test: average with the mirrored input.
            batch_size: crops per forward pass (a fixed-batch export runs its own).
            num_workers: DataLoader worker processes.
            threshold: the PCKh / PCK threshold (None: 0.5 / 0.2; COCO AP takes none).
            save_predictions: also write the predictions (.mat, .npy or .json; a COCO results
                .json for COCO data); checked before the network runs.
            progress: gets an event per batch.

        Returns:
            :class:`~fpdctl.evaluation.EvalResult` (``result.metric.mean``, ``.ap`` for COCO).

        Raises:
            UsageError: boxes without COCO data, an export with pre-processing or decoding
                inside, a model whose joints are not the data's; DataError: unreadable data.
        """
        from dataclasses import replace

        from fpdctl.data.kinds import data_joint_set, data_metric, parse_data_spec
        from fpdctl.data.registry import build_dataset
        from fpdctl.deploy.metadata import GraphIO
        from fpdctl.evaluation import check_model_joints, write_predictions
        from fpdctl.metrics import check_threshold

        spec = parse_data_spec(data)
        channels = data_joint_set(spec)
        check_threshold(data_metric(spec), threshold)  # before the network runs
        if boxes is not None and spec.kind != "coco":
            raise UsageError(
                f"`boxes` crops the images of a COCO folder at detector boxes: it needs `data` coco:DIR, got '{spec}'",
                params=("boxes", "data"),
            )
        if boxes is not None:  # a missing file fails before the network runs
            from fpdctl.utils.io import require_file

            require_file(boxes, "detections file")
        if save_predictions is not None:
            from fpdctl.metrics.coco import check_results_output
            from fpdctl.metrics.mpii_files import check_prediction_output

            (check_results_output if channels.name == "coco" else check_prediction_output)(save_predictions)
        if self.runner.io != GraphIO():
            raise UsageError(
                f"{self.source.label} was exported with pre-processing or decoding inside "
                f"({self.runner.io.describe()}); evaluation feeds normalised crops and reads heatmaps: "
                "evaluate a plain export"
            )
        check_model_joints(self.spec.joints, channels)
        if boxes is not None:
            from fpdctl.data.coco import COCODetections

            dataset = COCODetections(spec.path, boxes, input_size=self.input_size)  # type: ignore[arg-type]
        else:
            dataset = build_dataset(spec, "val", input_size=self.input_size)
        result = evaluate_model(
            self.runner,
            dataset,
            flip_test=flip_test,
            batch_size=self.runner.batch or batch_size,
            device=self.device if self.backend.runtime == "torch" else "cpu",
            num_workers=num_workers,
            threshold=threshold,
            progress=progress,
            input_convention=self.convention,
        )
        result = replace(result, backend=self.backend.name)
        if save_predictions is not None:
            write_predictions(save_predictions, result)
        return result

    def export(
        self,
        output: PathLike,
        *,
        precision: str = _default(export_onnx, "precision"),
        batch: int | None = None,
        opset: int = _default(export_onnx, "opset"),
        all_stacks: bool = False,
        calibration_data: str = _default(export_onnx, "calibration_data"),
        calibration_samples: int = _default(export_onnx, "calibration_samples"),
        validation_samples: int | None = None,
        flip_test: bool = _default(export_onnx, "flip_test"),
        verify: bool = _default(export_onnx, "verify"),
        verify_random: int = _default(export_onnx, "verify_random"),
        verify_images: int = _default(export_onnx, "verify_images"),
        exporter: str = _default(export_onnx, "exporter"),
        embedding: Embedding | None = None,
        progress: Progress | None = None,
    ) -> ExportResult:
        """The network exported at this Pose's input size to a verified ONNX file (``fpdctl
        export``; :func:`~fpdctl.deploy.export.export_onnx` says what each option does).

        Raises:
            UsageError: the model is already an .onnx file, or bad options; VerificationError:
                the export disagrees with PyTorch (nothing is written).
        """
        if self.source.net is None:
            raise UsageError(
                f"{self.source.label} is already an exported .onnx file; export takes a checkpoint, "
                "a pretrained or model name, or a network"
            )
        # A file or a name is read again by the exporter, which records its name and sha256.
        named = isinstance(self.model, (str, os.PathLike))
        return export_onnx(
            os.fspath(self.model) if named else self.source.net,  # type: ignore[arg-type]
            output,
            opset=opset,
            batch=batch,
            input_size=self.input_size,
            all_stacks=all_stacks,
            precision=precision,
            calibration_data=calibration_data,
            calibration_samples=calibration_samples,
            validation_samples=validation_samples,
            flip_test=flip_test,
            verify=verify,
            verify_random=verify_random,
            verify_images=verify_images,
            threads=self.threads,
            exporter=exporter,
            input_convention=self.input_override if named else None,
            embedding=embedding,
            progress=progress,
        )

    def bench(
        self,
        batches: Sequence[int] = (1,),
        *,
        backend: str | None = None,
        warmup: int = _default(benchmark, "warmup"),
        iters: int | None = None,
        duration: float | None = None,
        end_to_end: bool = False,
        spin_us: int | None = None,
        accuracy_samples: int = _default(benchmark, "accuracy_samples"),
        accuracy_data: str = _default(benchmark, "accuracy_data"),
        progress: Progress | None = None,
    ) -> BenchResult:
        """Latency, throughput and memory of this model (``fpdctl bench``;
        :func:`~fpdctl.deploy.bench.benchmark` says what each option does).

        Args:
            batches: batch sizes.
            backend: the rows to time (None: this Pose's own row, beside the eager reference
                for a checkpoint).
        """
        return benchmark(
            [self.source],
            backend=self.backend.name if backend is None else backend,
            batches=batches,
            threads=self.threads,
            warmup=warmup,
            iters=iters,
            duration=duration,
            device=self.device,
            end_to_end=end_to_end,
            input_size=None if self.source.kind == "onnx" else self.input_size,
            spin_us=spin_us,
            accuracy_samples=accuracy_samples,
            accuracy_data=accuracy_data,
            progress=progress,
        )


def _image_suffixes() -> tuple[str, ...]:
    from fpdctl.deploy.predict import IMAGE_SUFFIXES

    return IMAGE_SUFFIXES


__all__ = ["Pose", "PoseResult"]
