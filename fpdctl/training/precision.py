"""The arithmetic of the training forward passes: ``--precision`` resolved for a device.

Not to be confused with an export precision (:mod:`fpdctl.deploy.backends`): training runs the
network under autocast (bf16, fp16 with a gradient scaler, or plain fp32) while the weights and
the loss stay float32.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager, Iterator

import torch

from fpdctl.errors import UsageError


@dataclass(frozen=True)
class TrainPrecision:
    """How the forward passes of a training run execute.

    Attributes:
        name: "bf16", "fp16" or "fp32".
        dtype: the autocast dtype, None for fp32.
        scaler: whether a GradScaler is needed (fp16).
    """

    name: str
    dtype: torch.dtype | None
    scaler: bool

    def autocast(self, device: torch.device) -> ContextManager[Any]:
        """The autocast context of this precision on ``device`` (a no-op for fp32)."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX).

    Elsewhere bf16 autocast is emulated and slower than fp32, so "auto" does not pick it.
    """
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except Exception:  # a private probe that moved: just do not claim support
            pass
    return False


# Compute capability from which NVIDIA GPUs have bf16 in hardware (Ampere, sm_80). Older GPUs
# (V100 sm_70, T4 sm_75) run bf16 emulated, slower than fp16, although torch.cuda's
# is_bf16_supported() says yes there (it counts emulation).
NATIVE_BF16_CAPABILITY: tuple[int, int] = (8, 0)
# cuBLAS needs a fixed workspace to be deterministic (NVIDIA's cuBLAS docs, "Results
# reproducibility"); set before the first cuBLAS call unless the user set it.
CUBLAS_WORKSPACE = ":4096:8"


def cuda_native_bf16(device: torch.device) -> bool:
    """Whether the CUDA device ``device`` has bf16 in hardware (compute capability 8.0+).

    Call it after ``torch.cuda.set_device(device)``: it reads the properties of ``device``
    itself and never touches another GPU, so no process creates a context on ``cuda:0``.
    """
    return tuple(torch.cuda.get_device_capability(device)) >= NATIVE_BF16_CAPABILITY


def resolve_precision(name: str, device: torch.device) -> TrainPrecision:
    """The precision for ``--precision`` on ``device``.

    "auto": on CUDA, bf16 where the GPU has it natively (compute capability 8.0+), else fp16
    with a GradScaler; on CPU, bf16 with native bf16 instructions, else fp32; fp32 elsewhere
    (MPS). On CUDA call it after ``torch.cuda.set_device`` (see :func:`cuda_native_bf16`).

    Raises:
        UsageError: bf16 requested on a GPU without native bf16, or an unknown name.
    """
    if name not in ("auto", "bf16", "fp16", "fp32"):
        raise UsageError(f"`precision` must be auto, bf16, fp16 or fp32, got {name!r}", params="precision")
    native = None
    if device.type == "cuda" and name in ("auto", "bf16"):
        native = cuda_native_bf16(device)
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if native else "fp16"
        elif device.type == "cpu" and cpu_supports_bf16():
            name = "bf16"
        else:
            name = "fp32"
    if name == "bf16":
        if native is False:
            major, minor = torch.cuda.get_device_capability(device)
            raise UsageError(
                f"`precision` bf16: this GPU (compute capability {major}.{minor}) has no native "
                "bf16, which needs 8.0 or higher; use fp16 (or auto) or fp32",
                params="precision",
            )
        return TrainPrecision("bf16", torch.bfloat16, scaler=False)
    if name == "fp16":
        return TrainPrecision("fp16", torch.float16, scaler=True)
    return TrainPrecision("fp32", None, scaler=False)


@contextmanager
def arithmetic_mode(deterministic: bool) -> Iterator[None]:
    """The algorithm choice of a training run, restored on exit.

    Default (fast): ``cudnn.benchmark`` on, since a run's input sizes never change: cuDNN times
    its convolution algorithms once per shape and keeps the fastest. Results are then the same
    for the same algorithms but not guaranteed run to run on CUDA.

    ``deterministic``: ``torch.use_deterministic_algorithms(True)`` (an operation without a
    deterministic implementation raises instead of running), ``cudnn.deterministic`` on,
    ``cudnn.benchmark`` off, and ``CUBLAS_WORKSPACE_CONFIG`` set (if the environment does not
    set it), so a CUDA run repeats, and resumes, bit for bit on the same GPU and software.
    """
    cudnn = torch.backends.cudnn
    before = (
        cudnn.benchmark,
        cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    cudnn.benchmark = not deterministic
    cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.deterministic = before[0], before[1]
        torch.use_deterministic_algorithms(before[2])
        if before[3] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


__all__ = [
    "NATIVE_BF16_CAPABILITY",
    "TrainPrecision",
    "arithmetic_mode",
    "cpu_supports_bf16",
    "cuda_native_bf16",
    "resolve_precision",
]
