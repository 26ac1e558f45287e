"""Drawing predicted skeletons on images with OpenCV."""

from __future__ import annotations

from typing import Sequence

import numpy as np

# BGR colours: the person's left side, right side, and the midline (pelvis, spine, head).
LEFT_COLOR: tuple[int, int, int] = (255, 128, 0)
RIGHT_COLOR: tuple[int, int, int] = (0, 128, 255)
CENTER_COLOR: tuple[int, int, int] = (0, 220, 0)
BOX_COLOR: tuple[int, int, int] = (200, 200, 200)
# Line width and joint radius as a fraction of the image's longer side, so drawings look the same
# on a 200 px crop and on a 1080p frame.
LINE_FRACTION: float = 1 / 160
RADIUS_FRACTION: float = 1 / 110


def _side(name: str) -> str:
    if name.startswith("l_"):
        return "left"
    if name.startswith("r_"):
        return "right"
    return "center"


def _color(names: Sequence[str], a: int, b: int) -> tuple[int, int, int]:
    sides = {_side(names[a]), _side(names[b])}
    if sides == {"left"}:
        return LEFT_COLOR
    if sides == {"right"}:
        return RIGHT_COLOR
    return CENTER_COLOR


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    *,
    joint_names: Sequence[str],
    skeleton: Sequence[tuple[int, int]],
    min_score: float = 0.0,
    box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """A copy of ``image`` with the skeleton drawn on it.

    Args:
        image: uint8 [H, W, 3] BGR.
        keypoints: float [J, 2] (x, y) in image px.
        scores: float [J]; joints scoring below ``min_score`` (and limbs touching them) are skipped.
        joint_names: J names; ``l_`` / ``r_`` prefixes choose the left / right colour.
        skeleton: (a, b) joint pairs joined by a limb.
        min_score: the lowest score drawn.
        box: optional (x, y, w, h) person box, drawn as a thin rectangle.

    Returns:
        uint8 [H, W, 3] BGR.
    """
    import cv2

    canvas = np.ascontiguousarray(image).copy()
    h, w = canvas.shape[:2]
    thickness = max(1, round(max(h, w) * LINE_FRACTION))
    radius = max(2, round(max(h, w) * RADIUS_FRACTION))
    # cv2 takes integer coordinates; `shift` bits of fixed point keep sub-pixel accuracy.
    shift = 4
    scale = 1 << shift

    def fixed(point: np.ndarray) -> tuple[int, int]:
        return int(round(float(point[0]) * scale)), int(round(float(point[1]) * scale))

    shown = np.isfinite(keypoints).all(axis=1) & (np.asarray(scores) >= min_score)
    if box is not None:
        x, y, bw, bh = box
        cv2.rectangle(canvas, fixed(np.array([x, y])), fixed(np.array([x + bw, y + bh])), BOX_COLOR, 1,
                      cv2.LINE_AA, shift)
    for a, b in skeleton:
        if shown[a] and shown[b]:
            cv2.line(canvas, fixed(keypoints[a]), fixed(keypoints[b]), _color(joint_names, a, b),
                     thickness, cv2.LINE_AA, shift)
    for j in np.flatnonzero(shown):
        color = _color(joint_names, int(j), int(j))
        cv2.circle(canvas, fixed(keypoints[j]), radius * scale, color, -1, cv2.LINE_AA, shift)
        cv2.circle(canvas, fixed(keypoints[j]), radius * scale, (255, 255, 255), 1, cv2.LINE_AA, shift)
    return canvas


__all__ = ["draw_skeleton"]
