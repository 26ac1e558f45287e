"""Person boxes: the one box geometry of evaluation and prediction, and the one greedy NMS.

A box is COCO's ``(x, y, w, h)`` in image px (top-left corner and size), except where a function
says it takes corners ``(x1, y1, x2, y2)``. Pixel centres are integers: pixel (0, 0) covers
``[-0.5, 0.5]^2``, so a box of width ``w`` starting at ``x`` covers the pixels ``x .. x + w - 1``.

Every person crop goes the same way, whatever gave its box (a ground-truth annotation, a
detections file for ``eval --boxes`` or ``predict --boxes``, ``predict --bbox``, a detector):

1. :func:`check_box`: the box is refused when a number is not finite, when it is thinner than
   :data:`MIN_BOX_SIDE` (a box of 1e-6 px holds no person), or when it has no area left once
   clipped to the image. Otherwise it is clipped (:func:`clip_box`), which also tames a huge box
   (``[0, 0, 1e7, 1e7]`` becomes the whole image).
2. :func:`box_center_scale`: the crop centre is the clipped box's centre; the box is widened or
   heightened to the crop's aspect ratio and enlarged by :data:`SCALE_MARGIN`; the scale is the
   crop's width in units of :data:`PIXEL_STD` (what :func:`fpdctl.data.transforms.crop_affine`
   takes).

The whole image as one person (no box) is :func:`image_center_scale`.

:func:`nms` is greedy non-maximum suppression over any overlap: IoU (:func:`box_iou`) for a
detector's boxes, OKS for evaluation's OKS-NMS (:mod:`fpdctl.metrics.coco_detections`).

A leaf module: numpy only, nothing from the rest of fpdctl but its errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]

# A person's size is given in units of 200 px (MPII's convention, kept by HRNet and mmpose):
# ``scale`` = crop side / PIXEL_STD.
PIXEL_STD: float = 200.0
# HRNet's enlargement of a person box, so the crop keeps some context around the person (hands
# and feet a tight box would cut off).
SCALE_MARGIN: float = 1.25
# A box thinner than this (px, either side, as given) is no person's: refused.
MIN_BOX_SIDE: float = 1.0

# Why check_box refuses a box (BoxCheck.reason); also the keys of a count of skipped boxes.
NOT_FINITE = "not finite"
TOO_SMALL = "smaller than 1 px"
NO_AREA = "no area in the image"
REFUSALS: tuple[str, ...] = (NOT_FINITE, TOO_SMALL, NO_AREA)


def clip_box(box: Sequence[float], width: float, height: float) -> Box | None:
    """A ``(x, y, w, h)`` box clipped to a ``width`` x ``height`` image; None if nothing is left.

    The box's last pixel is ``x + w - 1`` (HRNet's sanitising of COCO boxes), capped at the
    image's last pixel ``width - 1``; its first is ``x``, raised to 0. The result's ``w`` is the
    distance between the first and last pixel centres, so a box inside the image comes back one
    pixel narrower and lower, exactly as HRNet gives it. (HRNet measures the far edge from the
    raised ``x``, which moves a box starting left of the image to the right; here the far edge
    stays where the box puts it. The two agree for every box starting inside the image, as COCO's
    annotations do.)

    Returns:
        ``(x1, y1, x2 - x1, y2 - y1)`` in image px, or None when the box ends before the image
        starts or starts after it ends.
    """
    x, y, w, h = (float(v) for v in box)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(float(width) - 1.0, x + max(0.0, w - 1.0))
    y2 = min(float(height) - 1.0, y + max(0.0, h - 1.0))
    if not (x2 >= x1 and y2 >= y1):
        return None
    return x1, y1, x2 - x1, y2 - y1


def box_center_scale(
    box: Sequence[float], aspect_ratio: float = 1.0, margin: float = SCALE_MARGIN
) -> tuple[np.ndarray, float]:
    """The crop around a (clipped) person box: centre float32 [2] in image px and scale.

    The box is widened or heightened to ``aspect_ratio`` (crop width / height; fpdctl's crops are
    square) and enlarged by ``margin``. The scale is the crop's width / :data:`PIXEL_STD`.
    """
    x, y, w, h = (float(v) for v in box)
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, float(w * margin / PIXEL_STD)


def image_center_scale(width: int, height: int) -> tuple[np.ndarray, float]:
    """The whole image as one person: centre at the image centre, side the longer image side
    (no margin: there is nothing outside the image to keep)."""
    center = np.array([(width - 1) / 2.0, (height - 1) / 2.0], dtype=np.float32)
    return center, float(max(width, height)) / PIXEL_STD


@dataclass(frozen=True)
class BoxCheck:
    """What :func:`check_box` made of a box.

    Attributes:
        clipped: the box clipped to the image (:func:`clip_box`), None when refused.
        reason: why it was refused (one of :data:`REFUSALS`), None when usable.
    """

    clipped: Box | None
    reason: str | None

    @property
    def usable(self) -> bool:
        return self.reason is None


def check_box(box: Sequence[float], width: float, height: float) -> BoxCheck:
    """The one rule for person boxes (see the module docstring): usable and clipped, or refused
    with a reason (:data:`NOT_FINITE`, :data:`TOO_SMALL`, :data:`NO_AREA`)."""
    values = [float(v) for v in box]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        return BoxCheck(None, NOT_FINITE)
    if values[2] < MIN_BOX_SIDE or values[3] < MIN_BOX_SIDE:
        return BoxCheck(None, TOO_SMALL)
    clipped = clip_box(values, width, height)
    # A box reduced to one pixel (or a corner of one) would give a crop of no size.
    if clipped is None or max(clipped[2], clipped[3]) <= 0.0:
        return BoxCheck(None, NO_AREA)
    return BoxCheck(clipped, None)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box ``[4]`` with boxes ``[N, 4]``, all corners ``(x1, y1, x2, y2)``.

    Returns:
        float [N] in [0, 1] (0 for boxes of no area).
    """
    box, boxes = np.asarray(box), np.asarray(boxes).reshape(-1, 4)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


# overlap(i, rest): the overlap of candidate i with each of the candidates ``rest`` (int [M]).
Overlap = Callable[[int, np.ndarray], np.ndarray]


def nms(scores: np.ndarray, overlap: Overlap, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: the best-scored remaining candidate is kept, and every
    remaining one whose overlap with it is above ``threshold`` is dropped; repeat. Ties keep the
    earlier candidate first.

    Args:
        scores: float [N].
        overlap: ``overlap(i, rest)`` -> float [len(rest)], candidate ``i`` against ``rest``
            (IoU of boxes for a detector, OKS of keypoints for OKS-NMS).
        threshold: the overlap above which a candidate is a duplicate.

    Returns:
        int64 [K], the indices kept, best score first.
    """
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[np.asarray(overlap(best, rest)) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def iou_nms(corners: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`nms` by IoU (torchvision's ``nms``) of boxes ``[N, 4]`` ``(x1, y1, x2, y2)``."""
    corners = np.asarray(corners)
    return nms(scores, lambda i, rest: box_iou(corners[i], corners[rest]), threshold)


__all__ = [
    "Box",
    "BoxCheck",
    "MIN_BOX_SIDE",
    "NOT_FINITE",
    "NO_AREA",
    "Overlap",
    "PIXEL_STD",
    "REFUSALS",
    "SCALE_MARGIN",
    "TOO_SMALL",
    "box_center_scale",
    "box_iou",
    "check_box",
    "clip_box",
    "image_center_scale",
    "iou_nms",
    "nms",
]
