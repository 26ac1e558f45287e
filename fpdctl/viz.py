"""The one skeleton drawer: the joints and limbs of any joint set on a BGR image.

``fpdctl data preview`` draws ground truth with it and ``fpdctl predict`` draws predictions. The
joint set (:mod:`fpdctl.skeleton`) says which joints a limb joins and, by the joint names, which
side of the body each one is on, so a new joint set (COCO's 17 joints, say) draws without a change
here.

Colours follow the body side the way OpenPose and MMPose draw it: the person's right side warm
(orange), the left side cool (blue), the midline (pelvis, spine, neck, head) green. A limb takes a
side's colour when both its joints are on that side, else the midline colour.

OpenCV is imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from fpdctl.skeleton import JointSet

Side = Literal["left", "right", "center"]

# BGR colours: the person's left side, right side, and the midline.
LEFT_COLOR: tuple[int, int, int] = (255, 128, 0)
RIGHT_COLOR: tuple[int, int, int] = (0, 128, 255)
CENTER_COLOR: tuple[int, int, int] = (0, 220, 0)
# Outlines (a person box, a head box) and the ring around a visible joint's dot.
BOX_COLOR: tuple[int, int, int] = (200, 200, 200)
DOT_EDGE_COLOR: tuple[int, int, int] = (0, 0, 0)
# Line width and joint radius as a fraction of the image's longer side, so a drawing looks the
# same on a 64 px network crop and on a 1080p frame.
LINE_FRACTION = 1 / 160
RADIUS_FRACTION = 1 / 110
# OpenCV takes integer coordinates; this many fractional bits keep sub-pixel positions.
_SHIFT = 4
_SCALE = 1 << _SHIFT
# Points farther than this (px) from the image are not drawn, and outlines are clipped to the
# image (plus a pixel), so their fixed-point coordinates stay well inside OpenCV's int32.
_DRAWABLE = 1 << 20

_LEFT_PREFIXES = ("l_", "left_")
_RIGHT_PREFIXES = ("r_", "right_")


def joint_side(name: str) -> Side:
    """The body side of a joint from its name: ``l_``/``left_`` and ``r_``/``right_`` prefixes."""
    lowered = name.lower()
    if lowered.startswith(_LEFT_PREFIXES):
        return "left"
    if lowered.startswith(_RIGHT_PREFIXES):
        return "right"
    return "center"


_SIDE_COLORS: dict[Side, tuple[int, int, int]] = {
    "left": LEFT_COLOR,
    "right": RIGHT_COLOR,
    "center": CENTER_COLOR,
}


def limb_color(joint_set: JointSet, a: int, b: int) -> tuple[int, int, int]:
    """BGR colour of the limb joining joints ``a`` and ``b`` (``a == b``: the joint itself)."""
    side_a, side_b = joint_side(joint_set.names[a]), joint_side(joint_set.names[b])
    return _SIDE_COLORS[side_a] if side_a == side_b else CENTER_COLOR


def box_corners(x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    """The corners of an axis-aligned box, float64 [4, 2], in drawing order (an ``outline``)."""
    return np.array([(x1, y1), (x2, y1), (x2, y2), (x1, y2)], dtype=np.float64)


def _fixed(point: np.ndarray) -> tuple[int, int]:
    return int(round(float(point[0]) * _SCALE)), int(round(float(point[1]) * _SCALE))


def draw_skeleton(
    image: np.ndarray,
    joints: np.ndarray,
    joint_set: JointSet,
    *,
    scores: np.ndarray | None = None,
    min_score: float = 0.0,
    outline: np.ndarray | None = None,
    size: float | None = None,
) -> np.ndarray:
    """A copy of ``image`` with the skeleton drawn on it.

    A visible joint is a filled dot, a joint marked not visible a hollow ring (its limbs are drawn
    thin); a joint whose position is unknown (NaN) or whose score is below ``min_score`` is not
    drawn, nor are its limbs.

    Args:
        image: uint8 [H, W, 3] BGR.
        joints: float [J, 2] (x, y) or [J, 3] (x, y, visibility) in image px, ``joint_set``
            order. Without a visibility column every joint counts as visible.
        joint_set: the limbs (``skeleton``) and the joint names, whose side prefixes choose the
            colours.
        scores: optional float [J] confidences, compared with ``min_score``.
        min_score: the lowest score drawn.
        outline: optional float [N, 2] closed polygon drawn as a thin line (a person box, a head
            box; see :func:`box_corners`), clipped to the image.
        size: the length in px that line width and joint radius scale with (a person's box
            side when one image holds several persons, at most the image's longer side); None:
            the image's longer side.

    Returns:
        uint8 [H, W, 3] BGR.
    """
    import cv2

    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 2 or joints.shape[0] != joint_set.num_joints or joints.shape[1] not in (2, 3):
        raise ValueError(
            f"expected {joint_set.num_joints} {joint_set.name or 'model'} joints as [J, 2] or [J, 3], "
            f"got shape {joints.shape}"
        )
    canvas = np.ascontiguousarray(image).copy()
    # A person box is never drawn thicker than one as large as the image (a huge box's lines would
    # exceed OpenCV's thickness limit).
    longest = max(canvas.shape[:2]) if size is None else min(max(float(size), 1.0), max(canvas.shape[:2]))
    thickness = max(1, round(longest * LINE_FRACTION))
    radius = max(2, round(longest * RADIUS_FRACTION))

    shown = np.isfinite(joints[:, :2]).all(axis=1) & (np.abs(joints[:, :2]) < _DRAWABLE).all(axis=1)
    if scores is not None:
        shown &= np.asarray(scores) >= min_score
    visible = shown if joints.shape[1] == 2 else shown & (joints[:, 2] > 0)

    if outline is not None:
        # A box running far off the image (a detector's [0, 0, 1e7, 1e7]) is drawn along its edge.
        height, width = canvas.shape[:2]
        edge = np.clip(np.nan_to_num(np.asarray(outline, np.float64)), -1.0, [width, height])
        corners = np.rint(edge * _SCALE).astype(np.int32)
        cv2.polylines(canvas, [corners], True, BOX_COLOR, 1, cv2.LINE_AA, _SHIFT)
    for a, b in joint_set.skeleton:
        if shown[a] and shown[b]:
            width = thickness if visible[a] and visible[b] else 1
            cv2.line(
                canvas, _fixed(joints[a]), _fixed(joints[b]), limb_color(joint_set, a, b), width, cv2.LINE_AA, _SHIFT
            )
    # Joints without anti-aliasing: crisp dots and rings read better at a few pixels.
    for j in np.flatnonzero(shown):
        center, color = _fixed(joints[j]), limb_color(joint_set, int(j), int(j))
        if visible[j]:
            cv2.circle(canvas, center, (radius + 1) * _SCALE, DOT_EDGE_COLOR, -1, cv2.LINE_8, _SHIFT)
            cv2.circle(canvas, center, radius * _SCALE, color, -1, cv2.LINE_8, _SHIFT)
        else:
            cv2.circle(canvas, center, (radius + 1) * _SCALE, color, 1, cv2.LINE_8, _SHIFT)
    return canvas


def draw_persons(
    image: np.ndarray,
    joints: np.ndarray,
    joint_set: JointSet,
    *,
    scores: np.ndarray | None = None,
    min_score: float = 0.0,
    boxes: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of ``image`` with every person's skeleton (and box) drawn on it.

    With boxes, each skeleton's line width and joint radius follow its own box (a small person
    far away gets thin lines), otherwise the image's size (:func:`draw_skeleton`).

    Args:
        image: uint8 [H, W, 3] BGR.
        joints: float [K, J, 2] or [K, J, 3], one row per person (K may be 0).
        joint_set: the persons' joint set.
        scores: optional float [K, J].
        min_score: the lowest score drawn.
        boxes: optional float [K, 4] ``(x, y, w, h)`` image px, drawn as outlines.

    Returns:
        uint8 [H, W, 3] BGR.
    """
    canvas = np.ascontiguousarray(image).copy()
    for k in range(len(joints)):
        outline = size = None
        if boxes is not None:
            x, y, w, h = (float(v) for v in boxes[k])
            outline, size = box_corners(x, y, x + w, y + h), max(w, h)
        canvas = draw_skeleton(
            canvas,
            joints[k],
            joint_set,
            scores=None if scores is None else scores[k],
            min_score=min_score,
            outline=outline,
            size=size,
        )
    return canvas


__all__ = [
    "BOX_COLOR",
    "CENTER_COLOR",
    "LEFT_COLOR",
    "RIGHT_COLOR",
    "box_corners",
    "draw_persons",
    "draw_skeleton",
    "joint_side",
    "limb_color",
]
