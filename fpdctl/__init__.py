"""fpdctl: Fast Pose Distillation for Stacked Hourglass pose models.

The public API is imported lazily so that ``import fpdctl`` (and ``fpdctl --help``) does not load
torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "HourglassSpec",
    "__version__",
    "create_model",
    "list_models",
    "save_model",
]

_LAZY = {
    "HourglassSpec": "fpdctl.models.spec",
    "list_models": "fpdctl.models.spec",
    "create_model": "fpdctl.models.checkpoint",
    "save_model": "fpdctl.models.checkpoint",
}

if TYPE_CHECKING:
    from fpdctl.models.checkpoint import create_model, save_model
    from fpdctl.models.spec import HourglassSpec, list_models


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fpdctl' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
