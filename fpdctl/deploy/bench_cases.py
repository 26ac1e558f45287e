"""What ``fpdctl bench`` runs: one :class:`Case` per model x backend x batch size.

:func:`build_cases` turns the selected rows of the backend table into runners (a checkpoint is
exported once per file precision, so ONNX Runtime and OpenVINO rows time the same file), and
:func:`preprocess` / :func:`postprocess` are the pipeline steps ``--end-to-end`` times around the
model: crop a camera frame, normalise (or hand uint8 crops to a graph that normalises them
itself), and map keypoints back to frame pixels (decoding heatmaps, unless the graph did).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from fpdctl.deploy.backends import RUNTIME_KINDS, Backend, select_backends
from fpdctl.deploy.placement import open_runner, run_device
from fpdctl.errors import UsageError
from fpdctl.progress import Progress

if TYPE_CHECKING:
    from fpdctl.deploy.preprocess_decode import Embedding

# The frame end-to-end pre-processing crops from (a VGA camera frame).
FRAME_WIDTH, FRAME_HEIGHT = 640, 480


@dataclass
class Case:
    """One model on one backend row at one batch size, and what timing it collected."""

    source: Any  # ModelSource
    backend: Backend
    runner: Any  # Runner
    batch: int
    input_size: int
    prepared: Any = None
    frames: Any = None
    convention: Any = None  # the model's InputConvention (end-to-end pre-processing)
    times: list[float] = field(default_factory=list)
    pre: list[float] = field(default_factory=list)
    post: list[float] = field(default_factory=list)
    peak_mb: float | None = None
    base_mb: float | None = None
    mem_kind: str = ""


def build_cases(
    sources: list,
    backend: str,
    batches: Sequence[int],
    precisions: Sequence[str] | None,
    device: str,
    threads: int,
    requested_size: int | None,
    work: Path,
    calibration_samples: int,
    spin_us: int,
    progress: Progress | None,
    embedding: "Embedding | None" = None,
) -> tuple[list[Case], list[str]]:
    """One case per model x selected row x batch, and "model row: reason" for each that cannot run.

    Each row runs where the library's one device rule puts its runtime for ``device``
    (:func:`~fpdctl.deploy.placement.run_device`). A checkpoint's ONNX rows run a file bench
    exports, once per file precision (ONNX Runtime and OpenVINO time the same file); PyTorch rows
    run the network itself (:func:`~fpdctl.deploy.placement.open_runner`).
    """
    cases: list[Case] = []
    skipped: list[str] = []
    wanted = tuple(precisions) if precisions else None
    for index, source in enumerate(sources):
        kind = "onnx" if source.kind == "onnx" else "torch"
        where = {runtime: run_device(device, runtime) for runtime in RUNTIME_KINDS}
        rows = [
            row
            for row in select_backends(
                kind, backend, precisions=wanted, device_type=None, onnx_precision=source.precision
            )
            if where[row.runtime].split(":")[0] in row.devices
        ]
        if not rows:
            skipped.append(f"{source.label}: no selected backend runs it on {device}")
        folder = work / f"model{index}"
        exports: dict[str, Path] = {}  # file precision -> one file for ORT and OpenVINO
        for row in rows:
            reason = row.unavailable()
            if reason is not None:
                skipped.append(f"{source.label} {row.name}: {reason}")
                continue
            # The size asked for, else an export's own or the size the checkpoint was trained at.
            model_size = source.input_size_for(requested_size)
            if source.kind != "onnx":
                source.spec.check_input_size(model_size)
                folder.mkdir(exist_ok=True)
            runner = open_runner(
                source,
                row,
                device=where[row.runtime],
                input_size=model_size,
                threads=threads,
                spin_us=spin_us,
                work_dir=folder,
                exports=exports,
                calibration_samples=calibration_samples,
                embedding=embedding,
                progress=progress,
            )
            for batch in batches:
                if runner.batch is not None and runner.batch != batch:
                    skipped.append(
                        f"{source.label} {row.name}: batch {batch} (the model has a fixed batch of {runner.batch})"
                    )
                    continue
                cases.append(Case(source=source, backend=row, runner=runner, batch=int(batch), input_size=model_size))
    return cases, skipped


def check_embedding(
    models: Sequence[str],
    backend: str,
    precisions: Sequence[str] | None,
    embedding: "Embedding | None",
) -> None:
    """Raise UsageError where ``embedding`` cannot be honoured: an .onnx file (its graph is what it
    was exported as) or a PyTorch row (no graph to put pre/post-processing in). Checked before any
    model is loaded."""
    from fpdctl.deploy.runtime import is_onnx_path

    if embedding is None or not embedding.active:
        return
    for name in models:
        if is_onnx_path(name):
            raise UsageError(
                f"`embed_preprocess`/`embed_decode` apply to checkpoints bench exports; {name} is an "
                "ONNX file with its own inputs and outputs (export it with them instead)",
                params=("embed_preprocess", "embed_decode"),
            )
    rows = select_backends("torch", backend, precisions=tuple(precisions) if precisions else None)
    torch_rows = [row.name for row in rows if row.runtime == "torch"]
    if torch_rows:
        raise UsageError(
            f"`embed_preprocess`/`embed_decode` need an ONNX backend (onnxruntime or openvino); backend "
            f"{torch_rows[0]} runs the PyTorch model, which has no graph to embed them in",
            params=("embed_preprocess", "embed_decode"),
        )


def frames(batch: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8) for _ in range(batch)]


def preprocess(
    frames: list[np.ndarray],
    input_size: int,
    convention: Any,
    io: Any,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Crop each frame to the network input (the whole frame is the person), normalise with the
    model's own input convention, and batch: what :mod:`fpdctl.pipeline` does for predict. A
    graph with embedded pre-processing gets the uint8 crops in its pixel order instead."""
    from fpdctl.pipeline import crop, normalise, person_box

    patches, affines = [], []
    for frame in frames:
        center, scale, _box = person_box(frame.shape[1], frame.shape[0], None)
        patch, affine = crop(frame, center, scale, input_size)
        patches.append(patch)
        affines.append(affine)
    if io.takes_pixels:
        return np.stack(patches)[..., ::-1] if io.pixel_order == "rgb" else np.stack(patches), affines
    return normalise(np.stack(patches), convention), affines


def postprocess(runner: Any, output: Any, affines: list[np.ndarray], input_size: int) -> np.ndarray:
    """Keypoints in frame px: decode the heatmaps and map them back, or map back the keypoints a
    graph with embedded decoding returns."""
    from fpdctl.data.transforms import invert_affine, transform_points
    from fpdctl.deploy.metadata import KEYPOINTS
    from fpdctl.pipeline import to_image

    if runner.io.decodes:
        inverse = np.stack([invert_affine(a) for a in affines])
        return transform_points(runner.named_outputs(output)[KEYPOINTS], inverse)
    return to_image(runner.to_numpy(output), affines, input_size)[0]


__all__ = [
    "FRAME_HEIGHT",
    "FRAME_WIDTH",
    "Case",
    "build_cases",
    "check_embedding",
    "frames",
    "postprocess",
    "preprocess",
]
