"""A module that can be called: ``fpdctl.evaluate`` and ``fpdctl.train`` are both a module (or
package) and a top-level function of the Python API (:mod:`fpdctl.api`).

Python binds ``fpdctl.evaluate`` to the submodule as soon as anything imports it, so a top-level
function of that name would be replaced by the module on first use; instead the module itself
is made callable, and calling it calls the API function. Both ``fpdctl.evaluate(...)`` and
``from fpdctl.evaluate import evaluate_model`` work, in any order.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def make_callable(module_name: str, target: str) -> None:
    """Make the loaded module ``module_name`` callable as the function ``target``
    ("module:function", imported on the first call so that the module does not import it).

    Called at the end of the module it applies to (``make_callable(__name__, ...)``).
    """
    module_path, _, function_name = target.partition(":")

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(module_path), function_name)(*args, **kwargs)

    CallableModule.__call__.__doc__ = f"Call {target.replace(':', '.')} (see its docstring)."
    sys.modules[module_name].__class__ = CallableModule


__all__ = ["make_callable"]
