"""``--data`` specs, parsed: ``synthetic[:KEY=VAL,...]``, ``mpii:PATH``, ``lsp:PATH`` and
``coco:PATH``, and what each kind of data is scored with, known from the spec alone.

A leaf of :mod:`fpdctl.data`: nothing here reads a file or imports a dataset class, so the
dataset readers (:mod:`fpdctl.data.coco_source`) and :mod:`fpdctl.data.registry`, which builds
them, both sit above it.

Synthetic options are kept as given, each value converted to int, then float, else left a
string (``synthetic:size=64,seed=3``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fpdctl.errors import InputError, UsageError
from fpdctl.skeleton import COCO, MPII, JointSet

DATA_KINDS: tuple[str, ...] = ("synthetic", "mpii", "lsp", "coco")
SPLITS: tuple[str, ...] = ("train", "val")
# ``synthetic:size=N`` is the number of samples, SyntheticPose's ``length``.
SYNTHETIC_ALIASES: dict[str, str] = {"size": "length"}


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value.

    Attributes:
        kind: "synthetic", "mpii", "lsp" or "coco".
        path: the dataset folder or annotation file (mpii / lsp / coco), else None.
        options: synthetic options, values converted to int / float where they parse.
    """

    kind: Literal["synthetic", "mpii", "lsp", "coco"]
    path: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.kind == "synthetic":
            opts = ",".join(f"{k}={v}" for k, v in self.options.items())
            return f"synthetic:{opts}" if opts else "synthetic"
        return f"{self.kind}:{self.path}"


def _bad_spec(data: str) -> UsageError:
    return UsageError(f"--data must be synthetic, mpii:PATH, lsp:PATH or coco:PATH, got {data!r}")


def _convert(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parse_data_spec(data: str) -> DataSpec:
    """Parse a ``--data`` value.

    Raises:
        UsageError: the value is not ``synthetic[:KEY=VAL,...]``, ``mpii:PATH``, ``lsp:PATH`` or
            ``coco:PATH``.
        InputError: PATH does not exist.
    """
    text = str(data).strip()
    kind, sep, rest = text.partition(":")
    if kind == "synthetic":
        options: dict[str, Any] = {}
        if sep and rest.strip():
            for item in rest.split(","):
                key, eq, value = item.partition("=")
                key, value = key.strip(), value.strip()
                if not eq or not key.isidentifier() or not value or key in options:
                    raise _bad_spec(data)
                options[key] = _convert(value)
        return DataSpec(kind="synthetic", options=options)
    if kind in ("mpii", "lsp", "coco") and sep and rest.strip():
        path = Path(rest.strip()).expanduser()
        if not path.exists():
            raise InputError(f"{kind} data not found: {path}")
        return DataSpec(kind=kind, path=path)  # type: ignore[arg-type]
    raise _bad_spec(data)


def data_joint_set(data: str | DataSpec) -> JointSet:
    """The heatmap channels of ``data``'s samples, known from the spec alone (nothing is read):
    COCO's 17 keypoints for ``coco:PATH`` and ``synthetic:layout=coco``, else MPII's 16 (LSP
    data is mapped onto MPII's channels)."""
    spec = data if isinstance(data, DataSpec) else parse_data_spec(data)
    if spec.kind == "coco" or (spec.kind == "synthetic" and spec.options.get("layout") == COCO.name):
        return COCO
    return MPII


def data_metric(data: str | DataSpec) -> str:
    """The metric ``data``'s validation split is scored with, from the spec alone: "oks" (COCO
    AP) for COCO keypoints, "pck" for LSP, else "pckh"."""
    spec = data if isinstance(data, DataSpec) else parse_data_spec(data)
    if data_joint_set(spec) is COCO:
        return "oks"
    return "pck" if spec.kind == "lsp" else "pckh"


__all__ = [
    "DATA_KINDS",
    "SPLITS",
    "SYNTHETIC_ALIASES",
    "DataSpec",
    "data_joint_set",
    "data_metric",
    "parse_data_spec",
]
