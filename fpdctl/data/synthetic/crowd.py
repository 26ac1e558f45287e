"""Synthetic crowds: images of several persons, later ones occluding earlier ones (COCO layout).

``synthetic:layout=coco,persons=N`` and ``fpdctl data synth --layout coco --persons N``: image
``k`` of a split holds between 1 and N persons (uniform, from the image's own crowd stream), each
a top-down sample of its own. The persons are drawn back to front:

* **Size and place.** A crowd of ``k`` persons is drawn smaller than a lone person (heights x
  ``1 / (1 + CROWD_SHRINK (k - 1))``), the persons' anchors spread along the image's middle row,
  ``CROWD_SPACING x side / k`` apart, so neighbours overlap as people standing in a group do
  (each person still gets the single-person jitter, truncation and occluders).
* **Occlusion.** Person ``i``'s keypoint has COCO's v = 1 (labelled, not visible) when a later
  person's drawn figure (:func:`~fpdctl.data.synthetic.render.body_mask`, the exact pixels the
  renderer paints) covers it; v = 2 when it is seen; v = 0 (not labelled, (0, 0)) when it is
  outside the image, under an occluder (every person's occluders are drawn over the whole crowd),
  or, for a face point, turned away from the camera, as for a lone person.
* **Boxes.** Each person's bbox and area are those of a lone person
  (:func:`~fpdctl.data.synthetic.coco.person_bbox`), so a crowd's boxes overlap where its persons do.

Deterministic per (seed, split, image): person ``j``'s layout and the crowd's size come from
their own seed sequences. ``persons=1`` is not a crowd: it is the single-person generator,
unchanged.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import numpy as np

from fpdctl.data.synthetic.coco import BODY_KEYPOINTS, FACE_POINTS, VISIBLE, face_points
from fpdctl.data.synthetic.pose import (
    SPLIT_STREAMS,
    SyntheticConfig,
    SyntheticLayout,
    sample_layout,
)
from fpdctl.skeleton import COCO, MPII

# The sub-stream of an image's crowd (its size, then each person's layout), beside the single
# person's layout (0) and scene (1) streams.
CROWD_STREAM = 2
# A crowd of k persons is drawn at 1 / (1 + CROWD_SHRINK (k - 1)) of a lone person's height.
CROWD_SHRINK = 0.25
# The persons' anchors are CROWD_SPACING x side / k apart along the middle row (neighbours overlap).
CROWD_SPACING = 0.6
# COCO's flag of a labelled keypoint that is not visible (here: covered by a later person).
OCCLUDED = 1
# The most persons an image may hold.
MAX_PERSONS = 20


def crowd_size(seed: int, split: str, image: int, persons: int) -> int:
    """How many persons image ``image`` holds: uniform in 1..``persons``."""
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split], image, CROWD_STREAM])
    return 1 + min(persons - 1, int(rng.random() * persons))


@functools.lru_cache(maxsize=256)
def crowd_layouts(
    seed: int,
    split: str,
    image: int,
    persons: int,
    image_size: int,
    config: SyntheticConfig,
) -> tuple[SyntheticLayout, ...]:
    """The layouts of image ``image``'s persons, back to front (see the module docstring)."""
    count = crowd_size(seed, split, image, persons)
    factor = 1.0 / (1.0 + CROWD_SHRINK * (count - 1))
    low, high = config.person_height
    small = replace(config, person_height=(low * factor, high * factor))
    size = float(image_size)
    layouts = []
    for j in range(count):
        rng = np.random.default_rng([seed, SPLIT_STREAMS[split], image, CROWD_STREAM, j + 1])
        x = size / 2.0 + (j - (count - 1) / 2.0) * CROWD_SPACING * size / count
        layouts.append(sample_layout(rng, image_size, small, anchor=(x, size / 2.0)))
    return tuple(layouts)


def _pixel_lookup(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``mask`` at each point's nearest pixel; False outside the image."""
    size = mask.shape[0]
    out = np.zeros(len(points), bool)
    for k, (x, y) in enumerate(points):
        px, py = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
        if 0 <= px < size and 0 <= py < size:
            out[k] = bool(mask[py, px])
    return out


def crowd_keypoints(layouts: tuple[SyntheticLayout, ...]) -> list[np.ndarray]:
    """Each person's COCO keypoints, float32 [17, 3] (x, y, v), v in {0, 1, 2} as the module
    docstring says."""
    from fpdctl.data.synthetic.render import body_mask

    size = layouts[0].image_size
    occluders = [o for layout in layouts for o in layout.occluders]
    masks = [body_mask(layout.body, size) for layout in layouts[1:]]
    covered_later = [np.zeros((size, size), bool)] * len(layouts)
    union = np.zeros((size, size), bool)
    for i in range(len(layouts) - 1, -1, -1):  # union of the masks of persons after i
        covered_later[i] = union.copy()
        if i >= 1:
            union |= masks[i - 1]
    out = []
    for layout, covered in zip(layouts, covered_later):
        body_points = np.array([layout.body.joints[MPII.index(j)] for j in BODY_KEYPOINTS.values()])
        faces, facing = face_points(layout)
        points = np.concatenate([body_points, faces])
        labelled = np.concatenate([np.ones(len(body_points), bool), facing])
        inside = (points >= 0.0).all(axis=1) & (points <= size - 1.0).all(axis=1)
        for occluder in occluders:
            inside &= ~occluder.contains(points)
        hidden = _pixel_lookup(covered, points)
        keypoints = np.zeros((COCO.num_joints, 3), np.float32)
        names = list(BODY_KEYPOINTS) + list(FACE_POINTS)
        for k, name in enumerate(names):
            if labelled[k] and inside[k]:
                keypoints[COCO.index(name)] = (*points[k], OCCLUDED if hidden[k] else VISIBLE)
        out.append(keypoints)
    return out


__all__ = [
    "CROWD_SHRINK",
    "CROWD_SPACING",
    "CROWD_STREAM",
    "MAX_PERSONS",
    "OCCLUDED",
    "crowd_keypoints",
    "crowd_layouts",
    "crowd_size",
]
