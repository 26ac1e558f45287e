"""``--data`` specs, parsed: ``synthetic[:KEY=VAL,...]``, ``mpii:PATH``, ``lsp:PATH`` and
``coco:PATH``, and what each kind of data is scored with, known from the spec alone.

A leaf of :mod:`fpdctl.data`: nothing here reads a file or imports a dataset class, so the
dataset readers (:mod:`fpdctl.data.coco_source`) and :mod:`fpdctl.data.registry`, which builds
them, both sit above it.

Synthetic options are kept as given, each value converted to int, then float, else left a
string (``synthetic:size=64,seed=3``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpdctl.errors import InputError, UsageError
from fpdctl.skeleton import COCO, MPII, JointSet

SPLITS: tuple[str, ...] = ("train", "val")
# ``synthetic:size=N`` is the number of samples, SyntheticPose's ``length``.
SYNTHETIC_ALIASES: dict[str, str] = {"size": "length"}


@dataclass(frozen=True)
class DataKind:
    """One kind of ``--data``: how it is written, which class reads it and how it is scored.

    Attributes:
        name: the spec's prefix ("synthetic", "mpii", ...).
        dataset: the class that reads it, as "module:Class"; imported only when a dataset is
            built (:meth:`dataset_class`), so that this table needs neither torch nor the readers.
        joint_set: the heatmap channels of its samples (LSP data is mapped onto MPII's 16).
        metric: what its validation split is scored with: "pckh", "pck" or "oks" (COCO AP).
        takes_path: written ``KIND:PATH`` (a folder or file that must exist); otherwise
            ``KIND[:KEY=VAL,...]``, the options passed to the class as keyword arguments.
        layouts: (layout option value, joint set, metric) for a kind whose ``layout=`` option
            changes what its samples carry (``synthetic:layout=coco``).
    """

    name: str
    dataset: str
    joint_set: JointSet
    metric: str
    takes_path: bool = True
    layouts: tuple[tuple[str, JointSet, str], ...] = ()

    @property
    def form(self) -> str:
        """How the kind is written on the command line: ``mpii:PATH``, or ``synthetic``."""
        return f"{self.name}:PATH" if self.takes_path else self.name

    def dataset_class(self) -> type:
        """The class that reads this kind (imported now)."""
        module, _, name = self.dataset.partition(":")
        return getattr(importlib.import_module(module), name)

    def scored_with(self, options: dict[str, Any]) -> tuple[JointSet, str]:
        """(heatmap channels, metric) of a spec of this kind with these options."""
        layout = options.get("layout")
        for value, joint_set, metric in self.layouts:
            if layout == value:
                return joint_set, metric
        return self.joint_set, self.metric


# The one table of data kinds: adding a kind is a row here plus its dataset class.
KINDS: dict[str, DataKind] = {
    kind.name: kind
    for kind in (
        DataKind(
            "synthetic",
            "fpdctl.data.synthetic:SyntheticPose",
            MPII,
            "pckh",
            takes_path=False,
            layouts=((COCO.name, COCO, "oks"),),
        ),
        DataKind("mpii", "fpdctl.data.mpii:MPIIDataset", MPII, "pckh"),
        DataKind("lsp", "fpdctl.data.lsp:LSPDataset", MPII, "pck"),
        DataKind("coco", "fpdctl.data.coco:COCODataset", COCO, "oks"),
    )
}


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value.

    Attributes:
        kind: a :data:`KINDS` name: "synthetic", "mpii", "lsp" or "coco".
        path: the dataset folder or annotation file (a kind that takes a path), else None.
        options: the options of a kind that takes them (synthetic), values converted to int /
            float where they parse.
    """

    kind: str
    path: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        if KINDS[self.kind].takes_path:
            return f"{self.kind}:{self.path}"
        opts = ",".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.kind}:{opts}" if opts else self.kind


def _bad_spec(data: str) -> UsageError:
    forms = [kind.form for kind in KINDS.values()]
    return UsageError(f"`data` must be {', '.join(forms[:-1])} or {forms[-1]}, got {data!r}", params="data")


def _convert(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parse_data_spec(data: str | DataSpec) -> DataSpec:
    """Parse a ``--data`` value (a parsed one is returned as it is).

    Raises:
        UsageError: the value is not ``synthetic[:KEY=VAL,...]``, ``mpii:PATH``, ``lsp:PATH`` or
            ``coco:PATH`` (the forms of :data:`KINDS`).
        InputError: PATH does not exist.
    """
    if isinstance(data, DataSpec):
        return data
    return _parse_text(str(data))


def _parse_text(data: str) -> DataSpec:
    """The one parser of a ``--data`` string (PATH checked here, once per parse)."""
    text = data.strip()
    name, sep, rest = text.partition(":")
    kind = KINDS.get(name)
    if kind is None:
        raise _bad_spec(data)
    if not kind.takes_path:
        options: dict[str, Any] = {}
        if sep and rest.strip():
            for item in rest.split(","):
                key, eq, value = item.partition("=")
                key, value = key.strip(), value.strip()
                if not eq or not key.isidentifier() or not value or key in options:
                    raise _bad_spec(data)
                options[key] = _convert(value)
        return DataSpec(kind=name, options=options)
    if sep and rest.strip():
        path = Path(rest.strip()).expanduser()
        if not path.exists():
            raise InputError(f"{name} data not found: {path}")
        return DataSpec(kind=name, path=path)
    raise _bad_spec(data)


def data_joint_set(data: str | DataSpec) -> JointSet:
    """The heatmap channels of ``data``'s samples, known from the spec alone (nothing is read):
    COCO's 17 keypoints for ``coco:PATH`` and ``synthetic:layout=coco``, else MPII's 16 (LSP
    data is mapped onto MPII's channels)."""
    spec = parse_data_spec(data)
    return KINDS[spec.kind].scored_with(spec.options)[0]


def data_metric(data: str | DataSpec) -> str:
    """The metric ``data``'s validation split is scored with, from the spec alone: "oks" (COCO
    AP) for COCO keypoints, "pck" for LSP, else "pckh"."""
    spec = parse_data_spec(data)
    return KINDS[spec.kind].scored_with(spec.options)[1]


__all__ = [
    "KINDS",
    "SPLITS",
    "SYNTHETIC_ALIASES",
    "DataKind",
    "DataSpec",
    "data_joint_set",
    "data_metric",
    "parse_data_spec",
]
