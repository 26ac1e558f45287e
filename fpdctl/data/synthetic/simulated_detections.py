"""A SIMULATED person detector for synthetic COCO sets: ground-truth boxes, jittered.

No detector weights can be downloaded here, so ``fpdctl data synth --layout coco --detections
FILE`` writes what a decent person detector would return for the split it exports, made from the
ground truth with seeded noise. It is NOT a detector; it gives ``fpdctl eval --boxes`` a
detection-results file with a detector's kinds of error, so the top-down protocol on detector
boxes (rescoring, OKS-NMS, misses and false positives) can be measured on synthetic data.

Per person (every annotation, in file order):

* missed with probability :data:`MISS_RATE`;
* else its box, jittered: the centre moves by ``N(0, CENTER_JITTER)`` box widths / heights, each
  side is scaled by ``exp(N(0, SIZE_JITTER))``, and the box is clipped to the image (at least
  :data:`MIN_SIDE` px a side); score ``U(TRUE_SCORE)``, lowered by how far the box moved
  (``- JITTER_PENALTY x`` the centre shift in box sides).

Per image, with probability :data:`FALSE_POSITIVE_RATE`, one false positive: a box of a lone
person's size anywhere in the image, score ``U(FALSE_SCORE)``.

Deterministic per (seed, split): one Generator over the whole file, in image order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fpdctl.data.synthetic.pose import SPLIT_STREAMS
from fpdctl.metrics.coco import PERSON_CATEGORY_ID

# The Generator's stream for the simulated detector, beside the samples' own streams.
DETECTOR_STREAM = 3
MISS_RATE = 0.05
CENTER_JITTER = 0.05
SIZE_JITTER = 0.08
MIN_SIDE = 2.0
TRUE_SCORE = (0.6, 1.0)
JITTER_PENALTY = 2.0
FALSE_POSITIVE_RATE = 0.1
FALSE_SCORE = (0.05, 0.5)
# A false positive's side, as a fraction of the image side (a lone person's box).
FALSE_SIDE = (0.15, 0.6)


def _clip(x: float, y: float, w: float, h: float, size: float) -> list[float]:
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(size, x + w), min(size, y + h)
    x2, y2 = max(x2, x1 + MIN_SIDE), max(y2, y1 + MIN_SIDE)
    x1, y1 = min(x1, size - MIN_SIDE), min(y1, size - MIN_SIDE)
    return [round(x1, 2), round(y1, 2), round(max(x2 - x1, MIN_SIDE), 2), round(max(y2 - y1, MIN_SIDE), 2)]


def simulate_detections(truth: dict[str, Any], seed: int, split: str) -> list[dict[str, Any]]:
    """The simulated detector's boxes for a synthetic COCO ground truth (see the module docstring).

    Args:
        truth: the split's ``person_keypoints_*.json`` payload (square images).
        seed, split: the split's seed and name (they seed the noise).

    Returns:
        COCO detection results: ``{"image_id", "category_id": 1, "bbox", "score"}`` records.
    """
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split], DETECTOR_STREAM])
    by_image: dict[int, list[dict[str, Any]]] = {image["id"]: [] for image in truth["images"]}
    for annotation in truth["annotations"]:
        by_image[annotation["image_id"]].append(annotation)
    sizes = {image["id"]: float(image["width"]) for image in truth["images"]}
    out: list[dict[str, Any]] = []
    for image_id, persons in by_image.items():
        size = sizes[image_id]
        for annotation in persons:
            x, y, w, h = annotation["bbox"]
            miss, dx, dy, sw, sh, score = rng.random(), *rng.normal(0.0, 1.0, 4), rng.uniform(*TRUE_SCORE)
            if miss < MISS_RATE or w <= 0 or h <= 0:
                continue
            shift = math.hypot(CENTER_JITTER * dx, CENTER_JITTER * dy)
            cx, cy = x + w / 2.0 + CENTER_JITTER * dx * w, y + h / 2.0 + CENTER_JITTER * dy * h
            w2, h2 = w * math.exp(SIZE_JITTER * sw), h * math.exp(SIZE_JITTER * sh)
            out.append(
                {
                    "image_id": image_id,
                    "category_id": PERSON_CATEGORY_ID,
                    "bbox": _clip(cx - w2 / 2.0, cy - h2 / 2.0, w2, h2, size),
                    "score": round(float(max(0.01, score - JITTER_PENALTY * shift)), 4),
                }
            )
        if rng.random() < FALSE_POSITIVE_RATE:
            side = rng.uniform(*FALSE_SIDE) * size
            x, y = rng.uniform(0.0, size - side, 2)
            out.append(
                {
                    "image_id": image_id,
                    "category_id": PERSON_CATEGORY_ID,
                    "bbox": _clip(float(x), float(y), side * 0.5, side, size),
                    "score": round(float(rng.uniform(*FALSE_SCORE)), 4),
                }
            )
    return out


__all__ = [
    "CENTER_JITTER",
    "DETECTOR_STREAM",
    "FALSE_POSITIVE_RATE",
    "MISS_RATE",
    "SIZE_JITTER",
    "simulate_detections",
]
