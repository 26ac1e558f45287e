"""The arithmetic of the training forward passes: ``--precision`` resolved for a device.

Not to be confused with an export precision (:mod:`fpdctl.deploy.backends`): training runs the
network under autocast (bf16, fp16 with a gradient scaler, or plain fp32) while the weights and
the loss stay float32.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager

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


def resolve_precision(name: str, device: torch.device) -> TrainPrecision:
    """The precision for ``--precision`` on ``device``.

    "auto": bf16 on CUDA devices that support it (else fp16 with a GradScaler), bf16 on CPUs
    with native bf16 instructions, fp32 elsewhere (including MPS).

    Raises:
        UsageError: bf16 requested on a CUDA device without bf16 support, or an unknown name.
    """
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu" and cpu_supports_bf16():
            name = "bf16"
        else:
            name = "fp32"
    if name == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UsageError("--precision bf16: this GPU does not support bf16 (use fp16 or fp32)")
        return TrainPrecision("bf16", torch.bfloat16, scaler=False)
    if name == "fp16":
        return TrainPrecision("fp16", torch.float16, scaler=True)
    if name == "fp32":
        return TrainPrecision("fp32", None, scaler=False)
    raise UsageError(f"--precision must be auto, bf16, fp16 or fp32, got {name!r}")


__all__ = ["TrainPrecision", "cpu_supports_bf16", "resolve_precision"]
