"""Leeds Sports Pose (LSP) and LSP-extended (LSPET).

``lsp:PATH`` is a ``joints.mat`` file, a folder holding ``joints.mat`` and ``images/``, or a folder
whose subfolders hold them (e.g. ``lsp_dataset/`` and ``lspet_dataset/``). Which data set a
``joints.mat`` is comes from its shape:

* LSP: ``joints`` 3 x 14 x N (N = 2000); rows x, y, and 1 = *occluded*. Images ``im%04d.jpg``.
  Occluded joints still have annotated positions and count in the standard PCK protocol, so every
  LSP joint is annotated (``vis = 1``); the occlusion flag is not needed by training or PCK.
* LSPET: ``joints`` 14 x 3 x N (N = 10000); columns x, y, and 1 = *visible*. Images
  ``im%05d.jpg``. A joint with 0 there was not annotated (it carries a placeholder position,
  often negative), so ``vis`` is that column.

Coordinates are used as they are (0-based px), as pytorch-pose's LSP loader does (it leaves out
the MPII loader's MATLAB -1 on purpose).

Split (the standard one when both are present: LSPET and LSP images 1-1000 train, LSP images
1001-2000 test): LSP's first half trains and its second half is the validation (test) split; LSPET
is all training when LSP is present. With LSPET alone (like the 400-image sample) its last quarter
is the validation split (400 persons: 300 train, 100 val), so evaluation still works.

Person box: the bounding box of the annotated joints; ``center`` is its centre and the crop side
is ``BOX_MARGIN`` times its longer side (at least ``MIN_BOX_PX``), i.e.
``scale = BOX_MARGIN * max(width, height) / 200``. LSP images are already cropped around one
person, so the joints are all the localisation there is.

The metric is PCK@0.2 (torso-normalised) on the 14 LSP joints; samples are mapped into the 16 MPII
channels with ``LSP_TO_MPII`` and pelvis / thorax get weight 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fpdctl.boxes import PIXEL_STD
from fpdctl.data.file_dataset import AnnotationTable, FilePoseDataset
from fpdctl.errors import DataError, InputError
from fpdctl.skeleton import LSP
from fpdctl.utils.matfile import load_mat

NUM_JOINTS = 14
# Crop side / longer side of the joints' box: the joints stop at wrists, ankles and head top, so
# the person (hands, feet, hair) needs some margin around them.
BOX_MARGIN = 1.4
# A floor on the box side, for persons with few annotated joints close together.
MIN_BOX_PX = 32.0
# LSP (2000 persons): the first half trains, the second half is the test split.
LSP_TRAIN_FRACTION = 0.5
# LSPET alone: the last quarter is held out for validation.
LSPET_ONLY_VAL_FRACTION = 0.25

Kind = Literal["lsp", "lspet"]
IMAGE_PATTERNS: dict[str, str] = {"lsp": "im{:04d}.jpg", "lspet": "im{:05d}.jpg"}


@dataclass(frozen=True)
class LSPPart:
    """One ``joints.mat`` with its images.

    Attributes:
        kind: "lsp" (3 x 14 x N) or "lspet" (14 x 3 x N).
        path: the ``joints.mat``.
        image_dir: its ``images/`` folder.
        joints: float32 [N, 14, 3]: x, y, vis (1 annotated).
    """

    kind: Kind
    path: Path
    image_dir: Path
    joints: np.ndarray

    def __len__(self) -> int:
        return int(self.joints.shape[0])

    def image_file(self, index: int) -> str:
        return IMAGE_PATTERNS[self.kind].format(index + 1)


def read_lsp_joints(path: str | Path) -> tuple[Kind, np.ndarray]:
    """Read an LSP or LSPET ``joints.mat``, telling them apart by shape.

    Returns:
        (kind, joints float32 [N, 14, 3] with vis = 1 for annotated joints).

    Raises:
        InputError: missing file. DataError: no ``joints`` of either layout.
    """
    mat = load_mat(path, "LSP joints file")
    expected = "joints 3 x 14 x N (LSP) or 14 x 3 x N (LSP-extended)"
    if "joints" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "nothing"
        raise DataError(f"{path} is not an LSP joints file: expected {expected}, found {found}")
    raw = np.asarray(mat["joints"])
    if raw.dtype.kind not in "fiub":
        raise DataError(f"{path}: joints must be numeric, got {raw.dtype}")
    raw = raw.astype(np.float64)
    if raw.ndim == 2 and raw.shape in ((3, NUM_JOINTS), (NUM_JOINTS, 3)):
        raw = raw[:, :, None]  # a one-person file loses its last axis in MATLAB
    if raw.ndim == 3 and raw.shape[:2] == (3, NUM_JOINTS):
        kind: Kind = "lsp"
        joints = raw.transpose(2, 1, 0).copy()  # [N, 14, 3]
        # Every LSP joint has a position; the third row only says whether it is occluded.
        joints[:, :, 2] = 1.0
    elif raw.ndim == 3 and raw.shape[:2] == (NUM_JOINTS, 3):
        kind = "lspet"
        joints = raw.transpose(2, 0, 1).copy()
        joints[:, :, 2] = joints[:, :, 2] > 0
    else:
        raise DataError(f"{path} has the wrong layout: expected {expected}, got joints {raw.shape}")
    if joints.shape[0] == 0:
        raise DataError(f"{path} has no persons")
    finite = np.isfinite(joints[:, :, :2]).all(axis=2)
    joints[:, :, 2] *= finite
    joints[:, :, :2] = np.where(joints[:, :, 2:3] > 0, joints[:, :, :2], 0.0)
    return kind, joints.astype(np.float32)


def boxes_from_joints(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of each person from the box of their annotated joints.

    Args:
        joints: float [N, J, 3].

    Returns:
        centers float32 [N, 2], scales float32 [N] (units of 200 px). A person with no annotated
        joint gets centre (0, 0) and the minimum box.
    """
    vis = joints[:, :, 2] > 0
    big = np.finfo(np.float32).max
    lo = np.where(vis[..., None], joints[:, :, :2], big).min(axis=1)
    hi = np.where(vis[..., None], joints[:, :, :2], -big).max(axis=1)
    none = ~vis.any(axis=1)
    lo[none] = 0.0
    hi[none] = 0.0
    centers = (lo + hi) / 2.0
    side = np.maximum((hi - lo).max(axis=1) * BOX_MARGIN, MIN_BOX_PX)
    return centers.astype(np.float32), (side / PIXEL_STD).astype(np.float32)


def _part_from(mat_path: Path) -> LSPPart:
    kind, joints = read_lsp_joints(mat_path)
    image_dir = mat_path.parent / "images"
    if not image_dir.is_dir():
        raise InputError(f"no images/ folder beside {mat_path}")
    return LSPPart(kind, mat_path, image_dir, joints)


def find_lsp_parts(path: str | Path) -> list[LSPPart]:
    """The LSP and / or LSPET data under ``path`` (a joints.mat, or a folder, or its subfolders).

    Raises:
        InputError: nothing found. DataError: a malformed file, or two files of the same kind.
    """
    root = Path(path)
    if not root.exists():
        raise InputError(f"LSP data not found: {root}")
    if root.is_file():
        mats = [root]
    else:
        mats = [root / "joints.mat"] if (root / "joints.mat").is_file() else []
        mats += sorted(p for p in root.glob("*/joints.mat") if p.is_file())
    if not mats:
        raise InputError(f"no LSP data in {root}: expected joints.mat and images/ there or in a subfolder")
    parts: dict[str, LSPPart] = {}
    for mat_path in mats:
        part = _part_from(mat_path)
        if part.kind in parts:
            raise DataError(
                f"two {part.kind.upper()} joints files under {root}: {parts[part.kind].path} and "
                f"{mat_path}; point lsp:PATH at one"
            )
        parts[part.kind] = part
    for part in parts.values():
        first = part.image_dir / part.image_file(0)
        if not first.is_file():
            raise InputError(
                f"{part.path} is {part.kind.upper()} data, whose images are named "
                f"{IMAGE_PATTERNS[part.kind].format(1)}, ...; {first} is missing"
            )
    return [parts[k] for k in ("lsp", "lspet") if k in parts]


def split_indices(parts: list[LSPPart], split: str) -> list[tuple[LSPPart, np.ndarray]]:
    """Which persons of each part belong to ``split`` (see the module docstring)."""
    kinds = {part.kind: part for part in parts}
    chosen: list[tuple[LSPPart, np.ndarray]] = []
    if "lspet" in kinds:
        lspet = kinds["lspet"]
        n = len(lspet)
        if "lsp" in kinds:
            idx = np.arange(n) if split == "train" else np.arange(0)
        else:
            n_val = int(round(n * LSPET_ONLY_VAL_FRACTION))
            idx = np.arange(n - n_val) if split == "train" else np.arange(n - n_val, n)
        chosen.append((lspet, idx))
    if "lsp" in kinds:
        lsp = kinds["lsp"]
        n_train = int(round(len(lsp) * LSP_TRAIN_FRACTION))
        idx = np.arange(n_train) if split == "train" else np.arange(n_train, len(lsp))
        chosen.append((lsp, idx))
    return [(part, idx) for part, idx in chosen if idx.size]


class LSPDataset(FilePoseDataset):
    """LSP / LSPET train or validation split (14 LSP joints, PCK@0.2).

    Args:
        path: a ``joints.mat`` or a folder (see the module docstring).
        split: "train" or "val".
        **kwargs: :class:`~fpdctl.data.dataset.PoseDataset` options.

    Attributes:
        parts: the data sets found (LSP and / or LSPET).
    """

    def __init__(self, path: str | Path, split: Literal["train", "val"] = "train", **kwargs: Any) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.split = split
        self.parts = find_lsp_parts(path)
        selected = split_indices(self.parts, split)
        if not selected:
            raise DataError(f"the LSP data in {path} has no {split} persons")
        files, joints = [], []
        for part, idx in selected:
            files += [str(part.image_dir / part.image_file(int(i))) for i in idx]
            joints.append(part.joints[idx])
        all_joints = np.concatenate(joints)
        centers, scales = boxes_from_joints(all_joints)
        table = AnnotationTable(image_files=files, joints=all_joints, centers=centers, scales=scales)
        # The image paths include their folder (LSP and LSPET may live in different folders).
        super().__init__(table, Path("."), joint_set=LSP, metric="pck", **kwargs)
