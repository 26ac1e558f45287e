"""fpdctl: Fast Pose Distillation for Stacked Hourglass pose models.

The Python API (the commands as functions, :mod:`fpdctl.api`; models, :mod:`fpdctl.models`) is
imported lazily (PEP 562) so that ``import fpdctl`` (and ``fpdctl --help``) does not load torch::

    net = fpdctl.load_model("synthetic-hg2x64")            # a network in eval mode
    result = fpdctl.evaluate("student.onnx", data="synthetic")
    print(result.metric.mean)

``fpdctl.evaluate`` and ``fpdctl.train`` are also the modules of those names, made callable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "HourglassSpec",
    "__version__",
    "bench",
    "create_model",
    "distill",
    "evaluate",
    "export",
    "list_models",
    "load_model",
    "profile",
    "save_model",
    "train",
]

# name -> the module it lives in. The value is the module's attribute of that name, except for
# the callable modules (fpdctl.evaluate, fpdctl.train), which are their own value.
_LAZY = {
    "HourglassSpec": "fpdctl.models.spec",
    "list_models": "fpdctl.models.spec",
    "create_model": "fpdctl.models.factory",
    "load_model": "fpdctl.models.factory",
    "save_model": "fpdctl.models.checkpoint",
    "profile": "fpdctl.api",
    "distill": "fpdctl.api",
    "export": "fpdctl.api",
    "bench": "fpdctl.api",
}
_CALLABLE_MODULES = {"evaluate": "fpdctl.evaluate", "train": "fpdctl.train"}

# Only the models for type checkers: naming fpdctl.api here would put every package above the
# low-level modules that read __version__ from this one (the layering contracts forbid that).
if TYPE_CHECKING:
    from fpdctl.models.checkpoint import save_model
    from fpdctl.models.factory import create_model, load_model
    from fpdctl.models.spec import HourglassSpec, list_models


def __getattr__(name: str) -> Any:
    import importlib

    if name in _CALLABLE_MODULES:
        return importlib.import_module(_CALLABLE_MODULES[name])
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fpdctl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
