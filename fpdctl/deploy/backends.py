"""The one table of deployment backends: what ``fpdctl export`` writes and ``fpdctl bench`` runs.

Each :class:`Backend` row names a runtime (eager or compiled PyTorch, ONNX Runtime, OpenVINO), a
numeric precision and a memory layout, says what it needs (Python modules, a device, a compiler,
calibration data), which exported file it runs and how strictly an export in that precision is
verified. Export takes its ``--precision`` choices from the ONNX Runtime rows; bench, eval and
predict pick rows by runtime, precision or name. Nothing else in the package lists backends, so
adding a row here is all it takes to offer a new variant in every command.

This module imports nothing heavy: the CLI reads it to build its help text.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from dataclasses import dataclass
from typing import Literal

from fpdctl.errors import UsageError

Runtime = Literal["torch", "onnxruntime", "openvino"]
# The numeric precision a backend runs a model at (training's is fpdctl.training.precision).
BackendPrecision = Literal["fp32", "fp16", "bf16", "int8"]


@dataclass(frozen=True)
class RuntimeKind:
    """One runtime: what it runs and the :class:`~fpdctl.deploy.runtime.Runner` that runs it.

    Attributes:
        name: "torch", "onnxruntime" or "openvino" (a :class:`Backend`'s ``runtime``).
        runs: "checkpoint" (a network built from a checkpoint or a name) or "onnx" (an exported
            .onnx file).
        runner: the runner class as "module:Class", imported only when a runner is made
            (:meth:`runner_class`), so that this table imports no runtime.
    """

    name: str
    runs: Literal["checkpoint", "onnx"]
    runner: str

    def runner_class(self) -> type:
        """The runner class (imported now)."""
        module, _, name = self.runner.partition(":")
        return getattr(importlib.import_module(module), name)


# The one table of runtimes: adding one is a row here, its Runner class and its Backend rows.
RUNTIME_KINDS: dict[str, RuntimeKind] = {
    kind.name: kind
    for kind in (
        RuntimeKind("torch", "checkpoint", "fpdctl.deploy.runtime:TorchRunner"),
        RuntimeKind("onnxruntime", "onnx", "fpdctl.deploy.runtime:OrtRunner"),
        RuntimeKind("openvino", "onnx", "fpdctl.deploy.openvino:OpenVinoRunner"),
    )
}
# Runtimes that run an exported .onnx file (the others run a checkpoint).
ONNX_RUNTIMES: tuple[str, ...] = tuple(k.name for k in RUNTIME_KINDS.values() if k.runs == "onnx")
# What `--backend` accepts besides a row name: a runtime, every row, or the model's natural one.
BACKEND_GROUPS: tuple[str, ...] = ("auto", *RUNTIME_KINDS, "all")
# C++ compilers TorchInductor can build CPU kernels with (torch.compile needs one of them).
CXX_COMPILERS: tuple[str, ...] = ("g++", "clang++", "c++")

# An fp32 export must decode the same heatmap argmax pixel as PyTorch for this share of the
# (sample, joint) pairs: fp32 kernels differ only in summation order (~1e-6 relative), so a
# disagreement means a wrong graph, not rounding. Reduced precisions are reported, not gated:
# their argmax legitimately moves where two heatmap peaks are within the rounding error.
FP32_MIN_AGREEMENT: float = 0.999


@dataclass(frozen=True)
class Backend:
    """One way to run a hourglass model.

    Attributes:
        name: the row's name, accepted by ``fpdctl bench --backend``.
        runtime: "torch" (PyTorch), "onnxruntime" or "openvino".
        precision: "fp32", "fp16", "bf16" or "int8".
        channels_last: run with NHWC (channels_last) tensors; torch rows only.
        compiled: ``torch.compile`` the network (TorchInductor; needs a C++ compiler on CPU).
        reads: the precision of the exported file the row runs, where it differs from
            ``precision`` (OpenVINO bf16 is a compile hint on the fp32 file); None: its own.
        extra: the ``pip install 'fpdctl[EXTRA]'`` that provides :attr:`needs`, if any.
        exportable: ``fpdctl export --precision`` can write this row's ONNX file.
        calibration: producing the model needs calibration images (static int8).
        devices: device types the row runs on ("cpu", "cuda").
        needs: Python modules the row imports.
        min_agreement: the export fails below this keypoint agreement with PyTorch; None reports
            the agreement without failing.
        reference: the row every other row is compared against (eager fp32 NCHW).
        description: one line for help texts and docs.
    """

    name: str
    runtime: Runtime
    precision: BackendPrecision
    channels_last: bool = False
    compiled: bool = False
    reads: BackendPrecision | None = None
    extra: str = ""
    exportable: bool = False
    calibration: bool = False
    devices: tuple[str, ...] = ("cpu", "cuda")
    needs: tuple[str, ...] = ()
    min_agreement: float | None = None
    reference: bool = False
    description: str = ""

    @property
    def memory_format(self) -> str:
        return "channels_last" if self.channels_last else "nchw"

    @property
    def file_precision(self) -> str | None:
        """The precision of the exported file an ONNX row runs (None for PyTorch rows)."""
        if self.runtime not in ONNX_RUNTIMES:
            return None
        return self.reads or self.precision

    def missing(self) -> list[str]:
        """The modules in :attr:`needs` that are not installed."""
        return [m for m in self.needs if importlib.util.find_spec(m) is None]

    def unavailable(self) -> str | None:
        """Why the row cannot run on this machine, in one line, or None when it can."""
        missing = self.missing()
        if missing:
            hint = f" (pip install 'fpdctl[{self.extra}]')" if self.extra else ""
            return f"needs {', '.join(missing)}, which is not installed{hint}"
        if self.compiled and not any(shutil.which(c) for c in CXX_COMPILERS):
            return f"torch.compile on CPU needs a C++ compiler ({', '.join(CXX_COMPILERS)}); none is on PATH"
        # What only the runtime itself can tell (e.g. whether this CPU runs OpenVINO's bf16).
        return RUNTIME_KINDS[self.runtime].runner_class().unavailable(self)


BACKENDS: tuple[Backend, ...] = (
    Backend(
        "torch",
        "torch",
        "fp32",
        needs=("torch",),
        reference=True,
        description="eager PyTorch, fp32, NCHW: the reference every other row is compared with",
    ),
    Backend(
        "torch-cl",
        "torch",
        "fp32",
        channels_last=True,
        needs=("torch",),
        description="eager PyTorch, fp32, channels_last (NHWC) tensors",
    ),
    Backend(
        "torch-bf16",
        "torch",
        "bf16",
        channels_last=True,
        needs=("torch",),
        description="eager PyTorch under bf16 autocast, channels_last (fast where the CPU has "
        "AVX512-BF16 or AMX, and on recent GPUs)",
    ),
    Backend(
        "torch-bf16-compile",
        "torch",
        "bf16",
        channels_last=True,
        compiled=True,
        needs=("torch",),
        description="torch.compile (TorchInductor) under bf16 autocast, channels_last; compiles on "
        "first use (minutes on a small CPU)",
    ),
    Backend(
        "torch-fp16",
        "torch",
        "fp16",
        channels_last=True,
        devices=("cuda",),
        needs=("torch",),
        description="eager PyTorch under fp16 autocast, channels_last (CUDA only)",
    ),
    Backend(
        "ort",
        "onnxruntime",
        "fp32",
        exportable=True,
        needs=("onnx", "onnxruntime"),
        min_agreement=FP32_MIN_AGREEMENT,
        description="ONNX Runtime, fp32, all graph optimisations (NCHWc convolutions on x86)",
    ),
    Backend(
        "ort-fp16",
        "onnxruntime",
        "fp16",
        exportable=True,
        needs=("onnx", "onnxruntime"),
        description="ONNX Runtime, fp16 weights and activations, fp32 inputs and outputs",
    ),
    Backend(
        "ort-int8",
        "onnxruntime",
        "int8",
        exportable=True,
        calibration=True,
        needs=("onnx", "onnxruntime"),
        description="ONNX Runtime, static int8 (QDQ, per-channel weights, uint8 activations calibrated on images)",
    ),
    Backend(
        "ov",
        "openvino",
        "fp32",
        devices=("cpu",),
        needs=("openvino",),
        extra="openvino",
        description="OpenVINO CPU on the fp32 ONNX file, INFERENCE_PRECISION_HINT f32",
    ),
    Backend(
        "ov-bf16",
        "openvino",
        "bf16",
        reads="fp32",
        devices=("cpu",),
        needs=("openvino",),
        extra="openvino",
        description="OpenVINO CPU on the fp32 ONNX file, INFERENCE_PRECISION_HINT bf16 (CPUs with AVX512-BF16 or AMX)",
    ),
    Backend(
        "ov-int8",
        "openvino",
        "int8",
        calibration=True,
        devices=("cpu",),
        needs=("openvino",),
        extra="openvino",
        description="OpenVINO CPU on the int8 (QDQ) ONNX file of fpdctl export",
    ),
)

EXPORT_PRECISIONS: tuple[str, ...] = tuple(b.precision for b in BACKENDS if b.exportable)
BACKEND_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")


def get_backend(name: str) -> Backend:
    """The row called ``name``.

    Raises:
        UsageError: no such row (the message lists them).
    """
    for backend in BACKENDS:
        if backend.name == name:
            return backend
    raise UsageError(
        f"unknown backend '{name}'; expected {', '.join(BACKEND_GROUPS)} or one of "
        f"{', '.join(b.name for b in BACKENDS)}"
    )


def export_backend(precision: str) -> Backend:
    """The ONNX Runtime row ``fpdctl export --precision`` writes.

    Raises:
        UsageError: a precision export cannot write.
    """
    for backend in BACKENDS:
        if backend.exportable and backend.precision == precision:
            return backend
    raise UsageError(
        f"`precision` must be one of {', '.join(EXPORT_PRECISIONS)}, got '{precision}'", params="precision"
    )


def parse_precisions(text: str | None) -> tuple[str, ...] | None:
    """``"fp32,int8"`` -> ("fp32", "int8"); None or "" -> None (no filter).

    Raises:
        UsageError: an unknown precision.
    """
    if text is None or not text.strip():
        return None
    values = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    bad = [p for p in values if p not in BACKEND_PRECISIONS]
    if bad or not values:
        raise UsageError(
            f"`precision` must be a comma-separated list of {', '.join(BACKEND_PRECISIONS)}, got '{text}'",
            params="precision",
        )
    return values


# Over 80 lines only through its docstring (each backend group and rule spelled out); the logic
# is about 40 lines.
def select_backends(
    model_kind: Literal["torch", "onnx"],
    backend: str = "auto",
    *,
    precisions: tuple[str, ...] | None = None,
    device_type: str | None = "cpu",
    onnx_precision: str | None = None,
) -> list[Backend]:
    """The rows ``fpdctl bench`` runs for one model.

    Args:
        model_kind: "torch" for a checkpoint or a model name, "onnx" for an .onnx file.
        backend: "auto" (checkpoints and names in torch, .onnx files in ONNX Runtime), "torch",
            "onnxruntime", "openvino", "all", or comma-separated row names. The runtime groups
            leave out compiled rows (minutes of compiling): name them, or use "all".
        precisions: keep only rows in these precisions (None: fp32 for the groups, anything
            for "all" and explicit names). The eager fp32 NCHW reference row is always kept for
            torch-runnable models when another torch row is selected, so every torch figure
            has its baseline beside it.
        device_type: "cpu" or "cuda"; rows that cannot run there are dropped (None: none is).
        onnx_precision: the precision an .onnx file was exported in (its metadata).

    Returns:
        The rows in table order; empty when nothing fits (the caller says why).

    Raises:
        UsageError: an unknown backend name, or a row an .onnx file cannot run.
    """
    names = [n.strip() for n in backend.split(",") if n.strip()]
    if not names:
        raise UsageError("`backend` must not be empty", params="backend")
    explicit: list[Backend] = []
    groups: list[str] = []
    for name in names:
        if name in BACKEND_GROUPS:
            groups.append(name)
        else:
            explicit.append(get_backend(name))

    rows: list[Backend] = []
    for group in groups:
        if group == "all":
            rows += list(BACKENDS)
            continue
        runtime = group
        if group == "auto":
            runtime = "torch" if model_kind == "torch" else "onnxruntime"
        # Default: fp32, except that an ONNX file's natural precision is the one it was exported in.
        wanted = precisions or ((onnx_precision or "fp32") if model_kind == "onnx" else "fp32",)
        rows += [
            b
            for b in BACKENDS
            if b.runtime == runtime
            and b.precision in wanted
            # The plain groups mean the plain layout; channels_last rows are asked for by name
            # or come with a reduced precision (bf16/fp16 autocast always runs channels_last).
            and (not b.channels_last or b.precision != "fp32")
            # Compiling takes minutes: compiled rows are asked for by name (or with "all").
            and not b.compiled
        ]
    rows += explicit
    if precisions is not None:
        rows = [b for b in rows if b.precision in precisions or b.reference]

    if model_kind == "onnx":
        torch_rows = [b.name for b in explicit if b.runtime == "torch"] + [g for g in groups if g == "torch"]
        if torch_rows:
            raise UsageError(
                f"backend {torch_rows[0]} runs a checkpoint; an .onnx file runs in onnxruntime or openvino"
            )
        # An ONNX file has one precision: the one it was exported in (OpenVINO's bf16 hint runs
        # on the fp32 file).
        rows = [b for b in rows if b.file_precision == (onnx_precision or "fp32")]
    rows = [b for b in rows if device_type is None or device_type in b.devices]
    if model_kind == "torch" and any(b.runtime == "torch" for b in rows):
        rows.append(BACKENDS[0])  # the reference: eager fp32 NCHW
    seen: set[str] = set()
    ordered = []
    for b in BACKENDS:
        if b in rows and b.name not in seen:
            seen.add(b.name)
            ordered.append(b)
    return ordered


def pick_backend(
    model_kind: Literal["torch", "onnx"],
    backend: str = "auto",
    *,
    device_type: str = "cpu",
    onnx_precision: str | None = None,
) -> Backend:
    """The one row ``fpdctl eval`` / ``predict`` run a model on (``--backend``).

    Raises:
        UsageError: an unknown name, a row that cannot run this model or device, or a choice
            that leaves more than one row.
    """
    rows = select_backends(model_kind, backend, device_type=device_type, onnx_precision=onnx_precision)
    if model_kind == "torch":
        named = {n.strip() for n in backend.split(",")}
        if not named & {"auto", "torch", "all"}:  # the reference row select_backends adds for bench
            rows = [b for b in rows if b.name in named or b.runtime != "torch"]
        onnx_rows = [b.name for b in rows if b.runtime != "torch"]
        if onnx_rows:
            raise UsageError(
                f"backend {onnx_rows[0]} runs an exported .onnx file; export the checkpoint first "
                "(fpdctl export) and give the .onnx file"
            )
    if not rows:
        raise UsageError(f"`backend` {backend} has no row that runs this model on {device_type}", params="backend")
    if len(rows) > 1:
        raise UsageError(
            f"`backend` must pick one backend here; '{backend}' selects {', '.join(b.name for b in rows)}",
            params="backend",
        )
    return rows[0]


__all__ = [
    "BACKENDS",
    "BACKEND_GROUPS",
    "BACKEND_PRECISIONS",
    "CXX_COMPILERS",
    "EXPORT_PRECISIONS",
    "FP32_MIN_AGREEMENT",
    "ONNX_RUNTIMES",
    "RUNTIME_KINDS",
    "Backend",
    "RuntimeKind",
    "export_backend",
    "get_backend",
    "parse_precisions",
    "pick_backend",
    "select_backends",
]
