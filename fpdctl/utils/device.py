"""Device selection from a ``--device`` value: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fpdctl.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES_TEXT = "auto, cpu, cuda, cuda:N or mps"
# Every command's --device default: the fastest device present (see resolve_device).
DEFAULT_DEVICE = "auto"
_CUDA_RE = re.compile(r"^cuda(?::(\d+))?$")


def _mps_available(torch_module) -> bool:
    backend = getattr(torch_module.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: "str | torch.device" = "auto") -> "torch.device":
    """The torch device for a ``--device`` value.

    ``auto`` picks the first available of CUDA (device 0), Apple MPS, then the CPU.

    Raises:
        UsageError: an unknown value, or a device this machine does not have.
    """
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    text = str(device).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if _mps_available(torch):
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available(torch):
            raise UsageError("`device` mps is not available on this machine (use auto or cpu)", params="device")
        return torch.device("mps")
    match = _CUDA_RE.match(text)
    if match is None:
        raise UsageError(f"`device` must be {DEVICE_CHOICES_TEXT}, got {device!r}", params="device")
    if not torch.cuda.is_available():
        raise UsageError(
            f"`device` {text}: CUDA is not available (this torch build or machine has no GPU; use auto or cpu)",
            params="device",
        )
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise UsageError(f"`device` {text}: this machine has {count} CUDA device(s) (0..{count - 1})", params="device")
    return torch.device("cuda", index)
