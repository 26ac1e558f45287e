"""A PNG grid of network samples with their skeletons: what the model actually sees.

Each tile is a dataset sample after the standard crop (and augmentation, if the dataset has any),
denormalised back to pixels, with the ground-truth skeleton drawn in the crop's coordinates by
:func:`fpdctl.viz.draw_skeleton` (its colours: left, right, midline): visible joints as filled dots,
unannotated (invisible) joints as hollow rings where their coordinates are known, and the head box.
The skeleton is the one of the sample's heatmap channels (MPII's for MPII, LSP and synthetic data,
COCO's for COCO and ``synthetic:layout=coco``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fpdctl.data.dataset import PoseDataset
from fpdctl.data.transforms import denormalize_image, transform_points
from fpdctl.errors import RuntimeFailure, UsageError
from fpdctl.utils.io import atomic_write_bytes
from fpdctl.viz import box_corners, draw_skeleton

MAX_PREVIEW = 256


@dataclass(frozen=True)
class PreviewResult:
    """What :func:`save_preview` wrote.

    Attributes:
        path: the PNG file.
        count: samples drawn.
        columns: tiles per row.
        tile_size: tile side, px (the network input size).
        visible_joints: visible joints over all drawn samples.
        total_joints: all joints of the drawn samples.
    """

    path: Path
    count: int
    columns: int
    tile_size: int
    visible_joints: int
    total_joints: int


def check_count(count: int) -> int:
    """Return ``count`` if a preview can show that many samples, else raise UsageError."""
    if count <= 0 or count > MAX_PREVIEW:
        raise UsageError(f"`count` must be between 1 and {MAX_PREVIEW}, got {count}", params="count")
    return count


def preview_grid(
    dataset: PoseDataset, count: int = 16, *, start: int = 0, columns: int | None = None
) -> tuple[np.ndarray, int]:
    """Samples ``start .. start + count - 1`` of ``dataset`` as one image grid.

    Returns:
        (uint8 [rows * S, columns * S, 3] BGR grid, visible joints drawn), S = the input size.

    Raises:
        UsageError: count out of range for the dataset.
    """
    check_count(count)
    if start < 0 or start + count > len(dataset):
        raise UsageError(f"the dataset has {len(dataset)} samples, cannot show {start}..{start + count - 1}")
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    size = dataset.input_size
    joint_set = dataset.channel_joint_set
    grid = np.zeros((rows * size, columns * size, 3), dtype=np.uint8)
    visible_total = 0
    for k in range(count):
        sample = dataset[start + k]
        meta = sample["meta"]
        tile = denormalize_image(sample["image"].numpy())
        joints = np.array(meta["joints"], dtype=np.float64)  # original px, channel order
        crop = joints.copy()
        crop[:, :2] = transform_points(joints[:, :2], meta["affine"])
        # File loaders store unannotated joints as (0, 0): no position to draw.
        placeholder = (joints[:, 2] <= 0) & (joints[:, 0] == 0) & (joints[:, 1] == 0)
        crop[placeholder, :2] = np.nan
        if meta["flipped"]:
            crop = crop[joint_set.flip_permutation()]
        record = dataset.load_annotation(start + k)
        headbox = None
        if record.headbox is not None:
            (x1, y1), (x2, y2) = np.asarray(record.headbox, np.float64)
            headbox = transform_points(box_corners(x1, y1, x2, y2), meta["affine"])
        visible_total += int((crop[:, 2] > 0).sum())
        tile = draw_skeleton(tile, crop, joint_set, outline=headbox)
        cv2.putText(tile, str(start + k), (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        r, c = divmod(k, columns)
        grid[r * size : (r + 1) * size, c * size : (c + 1) * size] = tile
    return grid, visible_total


def save_preview(
    path: str | os.PathLike[str], dataset: PoseDataset, count: int = 16, *, start: int = 0
) -> PreviewResult:
    """Write :func:`preview_grid` as a PNG, atomically.

    Raises:
        UsageError: bad count; InputError: the folder cannot be written.
    """
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise UsageError(f"`out` must be a .png file, got {out}", params="out")
    columns = math.ceil(math.sqrt(check_count(count)))
    grid, visible = preview_grid(dataset, count, start=start, columns=columns)
    ok, encoded = cv2.imencode(".png", grid)
    if not ok:
        raise RuntimeFailure(f"could not encode the preview of {count} samples as PNG")
    atomic_write_bytes(out, encoded.tobytes())
    return PreviewResult(
        path=out,
        count=count,
        columns=columns,
        tile_size=dataset.input_size,
        visible_joints=visible,
        total_joints=count * dataset.channel_joint_set.num_joints,
    )
