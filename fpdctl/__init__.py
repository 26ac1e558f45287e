"""fpdctl: Fast Pose Distillation for Stacked Hourglass pose models.

The Python API (the commands as functions, :mod:`fpdctl.api`; models, :mod:`fpdctl.models`) is
imported lazily (PEP 562) so that ``import fpdctl`` (and ``fpdctl --help``) does not load torch::

    pose = fpdctl.Pose("synthetic-hg2x64")                 # the one object a user holds
    results = pose(image, boxes=[[40, 20, 60, 110]])       # BGR uint8 array, boxes x, y, w, h
    result = fpdctl.evaluate("student.onnx", data="synthetic")
    print(result.metric.mean)

Every public name is a plain function or class (no module is made callable): the evaluation code
lives in :mod:`fpdctl.evaluation`, training in :mod:`fpdctl.training`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "HourglassSpec",
    "Pose",
    "PoseResult",
    "__version__",
    "bench",
    "create_model",
    "distill",
    "evaluate",
    "export",
    "list_models",
    "load_model",
    "predict",
    "profile",
    "save_model",
    "train",
]

# name -> the module it lives in; the value is that module's attribute of the same name.
_LAZY = {
    "HourglassSpec": "fpdctl.models.spec",
    "list_models": "fpdctl.models.spec",
    "create_model": "fpdctl.models.factory",
    "load_model": "fpdctl.models.factory",
    "save_model": "fpdctl.models.checkpoint",
    "Pose": "fpdctl.deploy.pose",
    "PoseResult": "fpdctl.deploy.pose_result",
    "profile": "fpdctl.api",
    "distill": "fpdctl.api",
    "evaluate": "fpdctl.api",
    "export": "fpdctl.api",
    "bench": "fpdctl.api",
    "predict": "fpdctl.api",
    "train": "fpdctl.api",
}

# Only the models for type checkers: naming fpdctl.api here would put every package above the
# low-level modules that read __version__ from this one (the layering contracts forbid that).
if TYPE_CHECKING:
    from fpdctl.models.checkpoint import save_model
    from fpdctl.models.factory import create_model, load_model
    from fpdctl.models.spec import HourglassSpec, list_models


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fpdctl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
