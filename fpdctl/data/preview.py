"""A PNG grid of network samples with their skeletons: what the model actually sees.

Each tile is a dataset sample after the standard crop (and augmentation, if the dataset has any),
denormalised back to pixels, with the ground-truth skeleton drawn in the crop's coordinates: left
limbs in one colour, right limbs in another, the spine and head in a third; visible joints as
filled dots, unannotated (invisible) joints as hollow rings where their coordinates are known.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fpdctl.data.dataset import PoseDataset
from fpdctl.skeleton import MPII, JointSet
from fpdctl.data.transforms import denormalize_image, transform_points
from fpdctl.errors import RuntimeFailure, UsageError
from fpdctl.utils.io import atomic_write_bytes

# BGR colours by body side, as in most pose visualisers: left warm, right cool.
LEFT_COLOR = (40, 110, 255)
RIGHT_COLOR = (255, 160, 30)
CENTER_COLOR = (60, 220, 60)
HEADBOX_COLOR = (230, 230, 230)
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


def _side(joint_set: JointSet, a: int, b: int) -> tuple[int, int, int]:
    names = (joint_set.names[a], joint_set.names[b])
    if any(n.startswith("l_") for n in names):
        return LEFT_COLOR
    if any(n.startswith("r_") for n in names):
        return RIGHT_COLOR
    return CENTER_COLOR


def _joint_color(joint_set: JointSet, j: int) -> tuple[int, int, int]:
    name = joint_set.names[j]
    if name.startswith("l_"):
        return LEFT_COLOR
    return RIGHT_COLOR if name.startswith("r_") else CENTER_COLOR


def draw_skeleton(
    image: np.ndarray,
    joints: np.ndarray,
    joint_set: JointSet = MPII,
    headbox: np.ndarray | None = None,
) -> np.ndarray:
    """Draw a skeleton on a copy of ``image``.

    Args:
        image: uint8 [H, W, 3] BGR.
        joints: float [J, 3] x, y (image px) and visibility, in ``joint_set`` order. A joint with
            visibility 0 is drawn as a ring and limbs touching it thin; NaN coordinates mean
            "position unknown" and are not drawn.
        joint_set: defines the skeleton and the sides.
        headbox: optional float [4, 2] corners (a rotated box) to outline.

    Returns:
        uint8 [H, W, 3] BGR.
    """
    out = image.copy()
    size = max(out.shape[:2])
    thickness = max(1, round(size / 128))
    radius = max(2, round(size / 80))
    xy = np.asarray(joints[:, :2], np.float64)
    known = np.isfinite(xy).all(axis=1)
    visible = (np.asarray(joints[:, 2]) > 0) & known
    pts = [tuple(int(round(v)) for v in p) if ok else None for p, ok in zip(xy, known)]
    if headbox is not None:
        cv2.polylines(out, [np.rint(headbox).astype(np.int32)], True, HEADBOX_COLOR, 1, cv2.LINE_AA)
    for a, b in joint_set.skeleton:
        if pts[a] is None or pts[b] is None:
            continue
        color = _side(joint_set, a, b)
        if visible[a] and visible[b]:
            cv2.line(out, pts[a], pts[b], color, thickness, cv2.LINE_AA)
        else:
            cv2.line(out, pts[a], pts[b], color, 1, cv2.LINE_AA)
    for j, p in enumerate(pts):
        if p is None:
            continue
        color = _joint_color(joint_set, j)
        # Joints without anti-aliasing: crisp dots and rings read better at a few pixels.
        if visible[j]:
            cv2.circle(out, p, radius + 1, (0, 0, 0), -1, cv2.LINE_8)
            cv2.circle(out, p, radius, color, -1, cv2.LINE_8)
        else:
            cv2.circle(out, p, radius + 1, color, 1, cv2.LINE_8)
    return out


def check_count(count: int) -> int:
    """Return ``count`` if a preview can show that many samples, else raise UsageError."""
    if count <= 0 or count > MAX_PREVIEW:
        raise UsageError(f"--count must be between 1 and {MAX_PREVIEW}, got {count}")
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
        raise UsageError(
            f"the dataset has {len(dataset)} samples, cannot show {start}..{start + count - 1}"
        )
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    size = dataset.input_size
    grid = np.zeros((rows * size, columns * size, 3), dtype=np.uint8)
    visible_total = 0
    for k in range(count):
        sample = dataset[start + k]
        meta = sample["meta"]
        tile = denormalize_image(sample["image"].numpy())
        joints = np.array(meta["joints"], dtype=np.float64)  # original px, MPII order
        crop = joints.copy()
        crop[:, :2] = transform_points(joints[:, :2], meta["affine"])
        # File loaders store unannotated joints as (0, 0): no position to draw.
        placeholder = (joints[:, 2] <= 0) & (joints[:, 0] == 0) & (joints[:, 1] == 0)
        crop[placeholder, :2] = np.nan
        if meta["flipped"]:
            crop = crop[MPII.flip_permutation()]
        record = dataset.load_annotation(start + k)
        headbox = None
        if record.headbox is not None:
            (x1, y1), (x2, y2) = np.asarray(record.headbox, np.float64)
            corners = np.array([(x1, y1), (x2, y1), (x2, y2), (x1, y2)])
            headbox = transform_points(corners, meta["affine"])
        visible_total += int((crop[:, 2] > 0).sum())
        tile = draw_skeleton(tile, crop, MPII, headbox)
        cv2.putText(
            tile, str(start + k), (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA
        )
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
        raise UsageError(f"--out must be a .png file, got {out}")
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
        total_joints=count * MPII.num_joints,
    )
