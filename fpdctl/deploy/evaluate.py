"""Scoring a deployed model: :func:`evaluate_deployed` runs an exported file (or a checkpoint
exported for an ONNX row, as ``fpdctl bench`` does) through a row of the backend table and scores
it with :func:`fpdctl.evaluate.evaluate_model`, the scoring of every accuracy figure. The one
entry point for both kinds of model is :func:`fpdctl.api.evaluate` (``fpdctl eval``): a
checkpoint on PyTorch goes to :func:`fpdctl.evaluate.evaluate_checkpoint`, anything else here.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpdctl.pipeline import INFERENCE_BATCH_SIZE

if TYPE_CHECKING:
    import os

    from fpdctl.data.kinds import DataSpec
    from fpdctl.deploy.backends import Backend
    from fpdctl.evaluate import EvalResult


def evaluate_deployed(
    model: str,
    data: "str | DataSpec",
    *,
    backend: str = "auto",
    input_size: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
    save_predictions: "str | os.PathLike[str] | None" = None,
    flip_test: bool = True,
    batch_size: int = INFERENCE_BATCH_SIZE,
    num_workers: int = 0,
    threshold: float | None = None,
    progress: Any = None,
    input_convention: Any = None,
    boxes: "str | os.PathLike[str] | None" = None,
) -> "EvalResult":
    """``fpdctl eval MODEL --backend B``: a model scored on one row of the backend table (an .onnx
    file in ONNX Runtime or OpenVINO, at any precision hint; a checkpoint in a PyTorch row), by
    the pipeline :func:`fpdctl.evaluate.evaluate_checkpoint` runs a checkpoint with.

    Args:
        model: an .onnx file, a checkpoint or a model name.
        data: the ``--data`` spec whose validation split is scored.
        backend: a row name or a runtime (:func:`~fpdctl.deploy.backends.pick_backend`).
        threads: ONNX Runtime / OpenVINO threads.
        input_size, device, save_predictions, flip_test, batch_size, num_workers, threshold, progress,
        input_convention: as :func:`~fpdctl.evaluate.evaluate_checkpoint`.
        boxes: refused: detector boxes are cropped by the PyTorch path only
            (:func:`~fpdctl.evaluate.evaluate_checkpoint`).

    Raises:
        UsageError: a backend that cannot run the model, or an export with pre-processing or
            decoding inside (evaluation feeds normalised crops and reads heatmaps).
    """
    from fpdctl.data.kinds import data_joint_set, data_metric, parse_data_spec
    from fpdctl.data.registry import build_dataset
    from fpdctl.deploy.backends import pick_backend
    from fpdctl.deploy.metadata import GraphIO
    from fpdctl.deploy.runtime import make_runner, open_model
    from fpdctl.errors import UsageError
    from fpdctl.evaluate import check_model_joints, evaluate_model, write_predictions
    from fpdctl.metrics import check_threshold
    from fpdctl.utils.device import resolve_device

    spec = parse_data_spec(data)
    if boxes is not None:
        raise UsageError(
            "`boxes` runs a PyTorch checkpoint or pretrained name (`backend` auto), not an exported model",
            params=("boxes", "backend"),
        )
    check_threshold(data_metric(spec), threshold)
    # "auto" picks the GPU for PyTorch; an .onnx file runs on the CPU unless told otherwise.
    target = resolve_device("cpu" if device == "auto" and str(model).lower().endswith(".onnx") else device)
    if save_predictions is not None:  # fail before the network runs, not after
        from fpdctl.metrics.coco import check_results_output
        from fpdctl.metrics.mpii_files import check_prediction_output

        coco = data_joint_set(spec).name == "coco"
        (check_results_output if coco else check_prediction_output)(save_predictions)
    source = open_model(model, input_convention)
    exported = _exported_row(source, backend, target.type)
    row = exported or pick_backend(
        "onnx" if source.kind == "onnx" else "torch",
        backend,
        device_type=target.type,
        onnx_precision=source.precision if source.kind == "onnx" else None,
    )
    size = source.input_size_for(input_size)
    check_model_joints(source.spec.joints, data_joint_set(spec))
    with tempfile.TemporaryDirectory(prefix="fpdctl-eval-") as work:
        path = None
        if exported is not None:  # a checkpoint on an ONNX row: exported as bench exports it
            from fpdctl.deploy.bench import BENCH_CALIBRATION_SAMPLES
            from fpdctl.deploy.bench_cases import export_for_rows

            path = export_for_rows(
                source,
                Path(work) / "model.onnx",
                size,
                str(exported.file_precision),
                BENCH_CALIBRATION_SAMPLES,
                threads,
                None,
                None,
            )
        runner = make_runner(source, row, device=str(target), threads=threads, path=path)
        if runner.io != GraphIO():
            raise UsageError(
                f"{model} was exported with pre-processing or decoding inside ({runner.io.describe()}); "
                "fpdctl eval feeds normalised crops and reads heatmaps: evaluate a plain export"
            )
        result = evaluate_model(
            runner,
            build_dataset(spec, "val", input_size=size),
            flip_test=flip_test,
            batch_size=runner.batch or batch_size,
            device=target if row.runtime == "torch" else "cpu",
            num_workers=num_workers,
            threshold=threshold,
            progress=progress,
            input_convention=source.input_convention,
        )
    result = replace(result, backend=row.name)
    if save_predictions is not None:
        write_predictions(save_predictions, result)
    return result


def _exported_row(source: Any, backend: str, device_type: str) -> "Backend | None":
    """The ONNX row that ``--backend`` names for a checkpoint or model name (``fpdctl bench``
    accepts one there and exports the checkpoint for it; eval does the same), else None.

    Raises:
        UsageError: the names select several ONNX rows (see :func:`pick_backend`).
    """
    from fpdctl.deploy.backends import pick_backend, select_backends

    if source.kind == "onnx":
        return None
    from fpdctl.errors import UsageError

    rows = select_backends("torch", backend, device_type=device_type)
    if not rows or any(row.runtime == "torch" for row in rows):
        return None
    if len(rows) > 1:  # pick_backend below sees one file precision only: say it here
        raise UsageError(
            f"`backend` must pick one backend here; '{backend}' selects {', '.join(b.name for b in rows)}",
            params="backend",
        )
    return pick_backend("onnx", backend, device_type=device_type, onnx_precision=rows[0].file_precision)


__all__ = ["evaluate_deployed"]
