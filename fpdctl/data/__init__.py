"""Pose data: the dataset contract, transforms and the loaders (MPII, LSP, synthetic).

Modules:
    dataset: Records, the PoseDataset contract and file-backed datasets (imports torch).
    transforms: crops, affines, augmentation and normalisation (numpy only).
    mpii, lsp: the file loaders; synthetic: the built-in generated dataset.
    registry: ``--data`` specs (``synthetic:...``, ``mpii:PATH``, ``lsp:PATH``) -> datasets.
    subset: the first persons of a dataset; preview: a PNG grid of samples.

The public names below are imported lazily, so ``import fpdctl.data.transforms`` or
``fpdctl.data.registry`` does not load torch. The joint sets and the heatmap codec live at top
level (:mod:`fpdctl.skeleton`, :mod:`fpdctl.codec`) and are re-exported here for convenience.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "HeatmapCodec": "fpdctl.codec",
    "flip_back": "fpdctl.codec",
    "AnnotationTable": "fpdctl.data.file_dataset",
    "FilePoseDataset": "fpdctl.data.file_dataset",
    "PoseDataset": "fpdctl.data.dataset",
    "Record": "fpdctl.data.dataset",
    "UnreadableImage": "fpdctl.data.dataset",
    "read_image": "fpdctl.data.dataset",
    "JOINT_SETS": "fpdctl.skeleton",
    "LSP": "fpdctl.skeleton",
    "LSP_TO_MPII": "fpdctl.skeleton",
    "MPII": "fpdctl.skeleton",
    "JointSet": "fpdctl.skeleton",
    "to_mpii_order": "fpdctl.skeleton",
    "LSPDataset": "fpdctl.data.lsp",
    "MPIIDataset": "fpdctl.data.mpii",
    "DataSpec": "fpdctl.data.kinds",
    "build_dataset": "fpdctl.data.registry",
    "parse_data_spec": "fpdctl.data.kinds",
    "MEAN": "fpdctl.data.transforms",
    "PIXEL_STD": "fpdctl.data.transforms",
    "STD": "fpdctl.data.transforms",
    "AugmentConfig": "fpdctl.data.transforms",
    "crop_affine": "fpdctl.data.transforms",
    "invert_affine": "fpdctl.data.transforms",
    "normalize_image": "fpdctl.data.transforms",
    "transform_points": "fpdctl.data.transforms",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fpdctl.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
