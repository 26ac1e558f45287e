"""Where a model runs, and the one place it is opened there: the library's one device rule
(:func:`run_device`, every ``device="auto"`` and ``--device auto``), the row of the backend table
a model runs on (:func:`place_model`), a model argument opened once (:func:`open_source`) and
made a runner on a row (:func:`open_runner`). ``fpdctl.Pose`` (and through it eval and predict)
and ``fpdctl bench`` all go through these.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fpdctl.deploy.backends import ONNX_RUNTIMES, RUNTIME_KINDS, Backend, get_backend, pick_backend, select_backends
from fpdctl.errors import UsageError
from fpdctl.progress import report

if TYPE_CHECKING:
    import torch

    from fpdctl.deploy.preprocess_decode import Embedding
    from fpdctl.deploy.runtime import ModelSource, Runner
    from fpdctl.models.convention import ConventionOverride
    from fpdctl.progress import Progress


# Calibration images for an int8 export made on the fly for an ONNX row (`bench --backend all`,
# a checkpoint evaluated on ort-int8): a representative speed, not the best accuracy, is what
# such an export is for, and range estimates settle within a few dozen images.
ROW_CALIBRATION_SAMPLES = 32


def run_device(device: str, runtime: str) -> str:
    """The device a ``runtime`` runs on for a ``device`` value: the one device rule of the library
    and of every command's ``--device``.

    ``"auto"``: PyTorch takes the fastest device present (CUDA, then Apple MPS, then the CPU,
    :func:`~fpdctl.utils.device.resolve_device`); ONNX Runtime takes CUDA when torch sees a GPU
    and this onnxruntime build has the CUDA provider, else the CPU; OpenVINO runs on the CPU.
    An explicit device is checked and kept (an ONNX runtime runs a non-CUDA device on the CPU).

    Args:
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        runtime: "torch", "onnxruntime" or "openvino" (a row's ``runtime``).

    Returns:
        "cpu", "cuda:N" or "mps".

    Raises:
        UsageError: an unknown device, or one this machine does not have.
    """
    from fpdctl.utils.device import resolve_device

    if runtime == "torch":
        return str(resolve_device(device))
    if str(device).strip().lower() == "auto":
        import torch

        if runtime == "onnxruntime" and torch.cuda.is_available():
            import onnxruntime

            if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                return "cuda:0"
        return "cpu"
    target = resolve_device(device)
    return str(target) if target.type == "cuda" else "cpu"


def _named_runtime(model_kind: Literal["torch", "onnx"], backend: str) -> str:
    """The runtime the (first) name in ``backend`` selects; ``auto`` and ``all``: the model's own."""
    name = next((n.strip() for n in backend.split(",") if n.strip()), "auto")
    if name in ("auto", "all"):
        return "torch" if model_kind == "torch" else "onnxruntime"
    if name in RUNTIME_KINDS:
        return name
    return get_backend(name).runtime


def place_model(
    model_kind: Literal["torch", "onnx"],
    backend: str = "auto",
    device: str = "auto",
    *,
    onnx_precision: str | None = None,
) -> tuple[Backend, str]:
    """The one row a model runs on and the device it runs there (eval, predict, ``fpdctl.Pose``).

    A checkpoint may name an ONNX row: it is then exported for it (:func:`open_runner`), as
    ``fpdctl bench`` does.

    Args:
        model_kind: "torch" for a checkpoint, name or network, "onnx" for an .onnx file.
        backend: "auto", a runtime or one row name (:func:`pick_backend`).
        device: the device value, resolved by :func:`run_device` for the row's runtime.
        onnx_precision: the precision an .onnx file was exported in.

    Raises:
        UsageError: an unknown or unrunnable backend or device, or several rows.
    """
    runtime = _named_runtime(model_kind, backend)
    where = run_device(device, runtime)
    device_type = where.split(":")[0]
    if model_kind == "torch" and runtime in ONNX_RUNTIMES:
        rows = select_backends("torch", backend, device_type=device_type)
        rows = [row for row in rows if row.runtime != "torch"]
        if len(rows) > 1:  # pick_backend below sees one file precision only: say it here
            raise UsageError(
                f"`backend` must pick one backend here; '{backend}' selects {', '.join(b.name for b in rows)}",
                params="backend",
            )
        file_precision = rows[0].file_precision if rows else None
        return pick_backend("onnx", backend, device_type=device_type, onnx_precision=file_precision), where
    return pick_backend(model_kind, backend, device_type=device_type, onnx_precision=onnx_precision), where


def open_runner(
    source: ModelSource,
    row: Backend,
    *,
    device: str,
    input_size: int,
    threads: int | None = None,
    spin_us: int | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    exports: dict[str, Path] | None = None,
    calibration_samples: int | None = None,
    embedding: Embedding | None = None,
    progress: Progress | None = None,
) -> Runner:
    """The runner of ``source`` on ``row``: the one place a model is opened on a backend.

    A checkpoint (or network) on an ONNX row is first exported at ``input_size`` in the row's
    file precision, unverified (as ``fpdctl bench`` does; ``fpdctl export`` verifies): into
    ``work_dir`` (kept, and reused through ``exports``, file precision -> path, so ONNX Runtime
    and OpenVINO rows time the same file), else into a temporary folder removed once the
    runtime has read the file.

    Args:
        source: the model (:func:`~fpdctl.deploy.runtime.open_model`).
        row: the row (:func:`place_model`, or one of :func:`select_backends`).
        device: where to run (:func:`run_device`).
        input_size: the side an export is made at.
        threads: ONNX Runtime / OpenVINO intra-op threads (and the export's checks).
        spin_us: ONNX Runtime's idle-thread spin (None: its default).
        work_dir, exports: where exports go and which exist already (see above).
        calibration_samples: int8 calibration images (None: :data:`ROW_CALIBRATION_SAMPLES`).
        embedding: pre-processing / decoding put in the exported graph.
        progress: gets a "bench.stage" event before an export.

    Raises:
        UsageError: the row cannot run here or cannot run this model.
    """
    import tempfile

    from fpdctl.deploy.runtime import DEFAULT_SPIN_US, make_runner

    spin = DEFAULT_SPIN_US if spin_us is None else spin_us
    if source.kind == "onnx" or row.file_precision is None:
        return make_runner(source, row, device=device, threads=threads, spin_us=spin)
    precision = str(row.file_precision)
    samples = ROW_CALIBRATION_SAMPLES if calibration_samples is None else calibration_samples
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="fpdctl-open-") as work:
            path = export_for_rows(
                source, Path(work) / "model.onnx", input_size, precision, samples, threads, embedding, progress
            )
            return make_runner(source, row, device=device, threads=threads, spin_us=spin, path=path)
    cache = exports if exports is not None else {}
    if precision not in cache:
        cache[precision] = export_for_rows(
            source,
            Path(work_dir) / f"model-{precision}.onnx",
            input_size,
            precision,
            samples,
            threads,
            embedding,
            progress,
        )
    return make_runner(source, row, device=device, threads=threads, spin_us=spin, path=cache[precision])


def open_source(
    model: str | os.PathLike[str] | torch.nn.Module, input_convention: ConventionOverride | None = None
) -> ModelSource:
    """A model argument (checkpoint, pretrained or model name, .onnx file, or a network) opened
    once: its spec, joints, input convention and, for a checkpoint, its network.

    Raises:
        UsageError: a module that is not an fpdctl hourglass; InputError / CheckpointError: a
            missing or unreadable file.
    """
    from fpdctl.deploy.runtime import ModelSource, open_model

    if isinstance(model, (str, os.PathLike)):
        return open_model(os.fspath(model), input_convention)
    from fpdctl.models.checkpoint import unwrap_model
    from fpdctl.models.spec import HourglassSpec

    net = unwrap_model(model)
    if not isinstance(getattr(net, "spec", None), HourglassSpec):
        raise UsageError(
            f"`model` must be a checkpoint, a pretrained or model name, an .onnx file or an fpdctl "
            f"HourglassNet, got {type(model).__name__}",
            params="model",
        )
    if input_convention is not None:
        net.input_convention = input_convention.apply(net.input_convention)
    return ModelSource(
        label=f"{net.spec.name} (network)",
        kind="torch",
        spec=net.spec,
        net=net.eval(),
        input_convention=net.input_convention,
    )


def export_for_rows(
    source: ModelSource,
    path: Path,
    size: int,
    precision: str,
    calibration_samples: int,
    threads: int,
    embedding: Embedding | None,
    progress: Progress | None,
) -> Path:
    """Export a checkpoint for the ONNX rows that run files of ``precision`` (unverified: bench
    needs its speed; ``fpdctl export`` is where files are verified)."""
    from fpdctl.deploy.export import export_onnx

    report(progress, "bench.stage", f"exporting {source.label} ({precision})")
    export_onnx(
        source.net,
        path,
        input_size=size,
        precision=precision,
        calibration_samples=calibration_samples,
        verify=False,
        threads=threads,
        embedding=embedding,
    )
    return path


__all__ = ["ROW_CALIBRATION_SAMPLES", "export_for_rows", "open_runner", "open_source", "place_model", "run_device"]
