"""The synthetic persons in COCO's layout: 17 keypoints, a person box and an area.

``synthetic:layout=coco`` and ``fpdctl data synth --layout coco`` annotate the same figures (the
same layouts, the same pixels) with COCO's keypoints instead of MPII's joints:

* **Body keypoints** are the synthetic body's joints of the same name (``l_shoulder`` ->
  ``left_shoulder``, ... ``r_ankle`` -> ``right_ankle``), with their positions and visibility.
  MPII's pelvis, thorax, upper neck and head top have no COCO keypoint and are dropped.
* **Face keypoints** (nose, eyes, ears) are derived from the head the renderer draws: an ellipse
  whose long axis joins the upper neck to the head top (length ``L``) and whose half-width is
  ``w = HEAD_WIDTH_RATIO * L / 2``, with the face turned by the body's yaw. The head is modelled as
  a body of revolution about that axis: a face point sits at a height ``along * L`` from the head
  centre (toward the head top) and at an azimuth ``yaw + a`` around the axis (``a`` = 0 for the
  nose, +-``EYE_AZIMUTH`` for the eyes, +-90 degrees for the ears, + on the person's left), so
  it projects at ``radius * w * sin(yaw + a)`` across the axis, toward the person's left side of
  the head (the direction the renderer shifts the face by ``sin(yaw)``). A face point is visible
  when it faces the camera at least as much as the renderer's face needs to be drawn
  (``cos(yaw + a) > FACE_VISIBLE_COS``), lies in the image and is under no occluder: the same
  tests as the body's joints.

Visibility is COCO's v = 2 (labelled, visible) or, for a hidden or truncated keypoint, v = 0 with
(0, 0), the release's "not labelled", so occluded keypoints teach nothing, as in the MPII layout.

The person box is the bounding box of every synthetic joint and face point, enlarged by
``BOX_PADDING`` torso lengths (the limbs' and the head's thickness) and clipped to the image. COCO's
``area`` is a segmentation's; the synthetic figure has no mask, so the area is
``PERSON_AREA_FRACTION`` of the box (an approximation: it sets OKS's scale and the medium / large
split). The crop is the one the COCO loader derives from that box
(:func:`fpdctl.boxes.box_center_scale`), so ``synthetic:layout=coco`` and the exported folder
read back with ``coco:DIR`` give the same Records.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fpdctl.boxes import box_center_scale, clip_box
from fpdctl.data.synthetic.pose import HEAD_TOP, HEAD_WIDTH_RATIO, UPPER_NECK, SyntheticLayout
from fpdctl.metrics.coco import PERSON_CATEGORY_ID
from fpdctl.skeleton import COCO, MPII

# COCO keypoint -> the synthetic (MPII) joint it is; face keypoints are derived (below).
BODY_KEYPOINTS: dict[str, str] = {
    f"{long}_{part}": f"{short}_{part}"
    for long, short in (("left", "l"), ("right", "r"))
    for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
}
# Face points: (height from the head centre in head lengths, toward the head top; distance from
# the axis in head half-widths; azimuth in radians, + on the person's left). The renderer's face
# is centred 0.08 head lengths below the head centre; the nose sits a little lower, the eyes a
# little higher; the eyes are about a quarter turn apart (26 degrees each side), the ears on the
# head's sides.
EYE_AZIMUTH = math.radians(26.0)
FACE_POINTS: dict[str, tuple[float, float, float]] = {
    "nose": (-0.12, 0.85, 0.0),
    "left_eye": (0.04, 0.95, EYE_AZIMUTH),
    "right_eye": (0.04, 0.95, -EYE_AZIMUTH),
    "left_ear": (0.0, 1.0, math.pi / 2.0),
    "right_ear": (0.0, 1.0, -math.pi / 2.0),
}
# The renderer draws the face while cos(yaw) > -0.25 (render._draw_head); a face point is visible
# under the same rule at its own azimuth.
FACE_VISIBLE_COS = -0.25
# The person box's margin around the joints, in torso lengths: limbs and head have thickness.
BOX_PADDING = 0.25
# The share of the person box COCO's segmentation area is taken to be (no mask is drawn).
PERSON_AREA_FRACTION = 0.5
# COCO's visibility flag of a labelled, visible keypoint.
VISIBLE = 2


def face_points(layout: SyntheticLayout) -> tuple[np.ndarray, np.ndarray]:
    """The five face points in image px and whether each faces the camera.

    Returns:
        points: float64 [5, 2] in ``FACE_POINTS`` order; facing: bool [5].
    """
    joints = layout.body.joints
    neck, top = joints[UPPER_NECK], joints[HEAD_TOP]
    axis = top - neck
    length = math.hypot(float(axis[0]), float(axis[1])) or 1.0
    up = axis / length
    # Perpendicular to the head axis, toward the person's left when facing the camera (the
    # renderer's lateral direction, and the side its face shifts to for a positive yaw).
    across = np.array([-up[1], up[0]])
    center = neck + 0.5 * axis
    half_width = 0.5 * HEAD_WIDTH_RATIO * length
    yaw = layout.body.yaw
    points = np.zeros((len(FACE_POINTS), 2))
    facing = np.zeros(len(FACE_POINTS), dtype=bool)
    for k, (along, radius, azimuth) in enumerate(FACE_POINTS.values()):
        offset = radius * half_width * math.sin(yaw + azimuth)
        points[k] = center + along * length * up + offset * across
        facing[k] = math.cos(yaw + azimuth) > FACE_VISIBLE_COS
    return points, facing


def _seen(layout: SyntheticLayout, points: np.ndarray) -> np.ndarray:
    """In the image (the last pixel included) and under no occluder, as the body's joints."""
    size = float(layout.image_size)
    seen = (points >= 0.0).all(axis=1) & (points <= size - 1.0).all(axis=1)
    for occluder in layout.occluders:
        seen &= ~occluder.contains(points)
    return seen


def coco_keypoints(layout: SyntheticLayout) -> np.ndarray:
    """The layout's person as COCO keypoints: float32 [17, 3] (x, y, v), COCO order; v is 2 for
    a visible keypoint, else 0 with x = y = 0 (not labelled)."""
    out = np.zeros((COCO.num_joints, 3), dtype=np.float32)
    for name, joint in BODY_KEYPOINTS.items():
        j = MPII.index(joint)
        if layout.visible[j]:
            out[COCO.index(name)] = (*layout.body.joints[j], VISIBLE)
    points, facing = face_points(layout)
    visible = facing & _seen(layout, points)
    for k, name in enumerate(FACE_POINTS):
        if visible[k]:
            out[COCO.index(name)] = (*points[k], VISIBLE)
    return out


def person_bbox(layout: SyntheticLayout) -> list[float]:
    """The person's COCO ``bbox`` [x, y, width, height] in image px, clipped to the image."""
    points = np.concatenate([layout.body.joints, face_points(layout)[0]])
    pad = BOX_PADDING * layout.body.torso
    size = float(layout.image_size)
    x1, y1 = np.maximum(points.min(axis=0) - pad, 0.0)
    x2, y2 = np.minimum(points.max(axis=0) + pad, size)
    return [float(x1), float(y1), float(max(x2 - x1, 0.0)), float(max(y2 - y1, 0.0))]


def person_crop(bbox: list[float], image_size: int) -> tuple[np.ndarray, float]:
    """The crop centre and scale the COCO loader derives from ``bbox`` (the same function)."""
    box = clip_box(bbox, image_size, image_size)
    if box is None:  # a person wholly outside the image: centre the crop on the image
        return np.full(2, (image_size - 1) / 2.0, np.float32), float(image_size) / 200.0
    return box_center_scale(box)


def coco_annotation(layout: SyntheticLayout, keypoints: np.ndarray, image_id: int) -> dict[str, Any]:
    """The person as an annotation of a ``person_keypoints_*.json`` (one person per image, so the
    annotation id is the image id)."""
    bbox = person_bbox(layout)
    return {
        "id": int(image_id),
        "image_id": int(image_id),
        "category_id": PERSON_CATEGORY_ID,
        "iscrowd": 0,
        "bbox": bbox,
        "area": PERSON_AREA_FRACTION * bbox[2] * bbox[3],
        "num_keypoints": int((keypoints[:, 2] > 0).sum()),
        "keypoints": [float(v) for v in keypoints.reshape(-1)],
    }


def person_category() -> dict[str, Any]:
    """COCO's person category: keypoint names and the 1-based skeleton of the release."""
    return {
        "supercategory": "person",
        "id": PERSON_CATEGORY_ID,
        "name": "person",
        "keypoints": list(COCO.names),
        "skeleton": [[a + 1, b + 1] for a, b in COCO.skeleton],
    }


def coco_ground_truth(
    images: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    """A ``person_keypoints_*.json`` payload of the given images and annotations."""
    return {
        "info": {"description": description},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [person_category()],
    }


__all__ = [
    "BODY_KEYPOINTS",
    "BOX_PADDING",
    "FACE_POINTS",
    "FACE_VISIBLE_COS",
    "PERSON_AREA_FRACTION",
    "coco_annotation",
    "coco_ground_truth",
    "coco_keypoints",
    "face_points",
    "person_bbox",
    "person_category",
    "person_crop",
]
