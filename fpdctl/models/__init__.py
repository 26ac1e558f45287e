"""The Stacked Hourglass model family: specs, the network, and checkpoint formats.

``fpdctl.models.create_model`` and ``load_model`` (:mod:`fpdctl.models.factory`) are imported on
first use (PEP 562), so that importing a light module of this package (``fpdctl.models.spec``)
does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_model", "load_model"]

if TYPE_CHECKING:
    from fpdctl.models.factory import create_model, load_model


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("fpdctl.models.factory"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
