"""Shape rules no contract in pyproject.toml states: no import cycle between any two modules of
fpdctl (inside a package as much as between packages); a module past the size guide is reported as
a warning, not a failure (modules are split by concept, never by length: docs/ARCHITECTURE.md).

The import graph is grimp's (the library under ``lint-imports``), with every real import counted,
those inside functions included, and imports under ``if TYPE_CHECKING:`` left out (they never run).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import grimp

import fpdctl

# The size guide: past it, look for a second concept in the module. A warning, not a rule.
MODULE_LINES_GUIDE = 600
PACKAGE_DIR = Path(fpdctl.__file__).parent


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_fpdctl_is_in_an_import_cycle() -> None:
    imports = grimp.build_graph("fpdctl", exclude_type_checking_imports=True, cache_dir=None)
    graph = {
        module: {m for m in imports.find_modules_directly_imported_by(module) if m in imports.modules}
        for module in imports.modules
    }
    described = []
    for component in _cycles(graph):
        members = set(component)
        edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
        described.append("; ".join(edges))
    assert described == []


def test_modules_past_the_size_guide_are_reported() -> None:
    lengths = {
        str(path.relative_to(PACKAGE_DIR.parent)): len(path.read_text().splitlines())
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
    }
    assert len(lengths) > 100  # the whole package was read
    for name, n in sorted(lengths.items()):
        if n > MODULE_LINES_GUIDE:
            warnings.warn(
                f"{name} has {n} lines (guide: {MODULE_LINES_GUIDE}); does it hold two concepts?", stacklevel=1
            )
