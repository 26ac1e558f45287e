"""Writers of tiny COCO keypoints datasets in the real on-disk format.

``annotations/person_keypoints_<split>2017.json`` as the official release writes it (``info``,
``licenses``, ``images``, ``annotations``, ``categories``; persons with ``segmentation``, ``area``,
``iscrowd``, ``bbox``, ``num_keypoints``, ``keypoints`` 17 x [x, y, v]), and JPEG images written
with OpenCV, either in ``<split>2017/`` (the official zips) or ``images/<split>2017/`` (HRNet).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tests.data.formats import write_jpeg

KEYPOINT_NAMES: list[str] = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
]
# The official file's skeleton, 1-based.
SKELETON_1_BASED: list[list[int]] = [
    [16, 14],
    [14, 12],
    [17, 15],
    [15, 13],
    [12, 13],
    [6, 12],
    [7, 13],
    [6, 7],
    [6, 8],
    [7, 9],
    [8, 10],
    [9, 11],
    [2, 3],
    [1, 2],
    [1, 3],
    [2, 4],
    [3, 5],
    [4, 6],
    [5, 7],
]
PERSON_CATEGORY: dict[str, Any] = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": KEYPOINT_NAMES,
    "skeleton": SKELETON_1_BASED,
}
IMAGE_SIZE = (200, 160)  # width, height


def image_file_name(image_id: int) -> str:
    """COCO 2017's file naming: the id on 12 digits."""
    return f"{image_id:012d}.jpg"


def person_annotation(
    ann_id: int,
    image_id: int,
    keypoints: np.ndarray,
    bbox: list[float],
    *,
    iscrowd: int = 0,
    area: float | None = None,
) -> dict[str, Any]:
    """One person annotation as the official file has it; ``keypoints`` [17, 3] (x, y, v)."""
    kps = np.asarray(keypoints, np.float64).reshape(17, 3)
    x, y, w, h = bbox
    return {
        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
        "num_keypoints": int((kps[:, 2] > 0).sum()),
        "area": float(w * h * 0.7) if area is None else float(area),
        "iscrowd": iscrowd,
        "keypoints": [int(round(v)) for v in kps.reshape(-1)],  # the release stores integers
        "image_id": image_id,
        "bbox": [float(v) for v in bbox],
        "category_id": 1,
        "id": ann_id,
    }


def random_person(rng: np.random.Generator, box: list[float], hidden: int = 2, unlabelled: int = 2) -> np.ndarray:
    """17 keypoints inside ``box`` ([x, y, w, h]): most visible (v 2), some v 1, some unlabelled."""
    x, y, w, h = box
    kps = np.zeros((17, 3))
    kps[:, 0] = rng.uniform(x + 2, x + w - 2, 17).round()
    kps[:, 1] = rng.uniform(y + 2, y + h - 2, 17).round()
    kps[:, 2] = 2
    order = rng.permutation(17)
    kps[order[:hidden], 2] = 1
    kps[order[hidden : hidden + unlabelled]] = 0  # unlabelled: 0, 0, 0 as in the release
    return kps


def make_ground_truth(seed: int = 0) -> dict[str, Any]:
    """Three images, five usable persons (medium and large), a crowd region and an unlabelled box.

    Image 1: two persons; image 2: one large person, a crowd annotation and a box without
    keypoints; image 3: two persons, one partly outside the image (its box gets clipped).
    """
    rng = np.random.default_rng(seed)
    width, height = IMAGE_SIZE
    boxes = {
        1: [[10.0, 20.0, 60.0, 110.0], [100.0, 30.0, 50.0, 100.0]],
        2: [[40.0, 10.0, 110.0, 140.0]],
        3: [[20.0, 30.0, 41.0, 81.0], [150.0, 40.0, 70.0, 130.0]],
    }
    images, annotations = [], []
    ann_id = 100
    for image_id, image_boxes in boxes.items():
        images.append(
            {
                "license": 1,
                "file_name": image_file_name(image_id),
                "coco_url": "",
                "height": height,
                "width": width,
                "date_captured": "2013-11-14 17:02:52",
                "flickr_url": "",
                "id": image_id,
            }
        )
        for box in image_boxes:
            ann_id += 1
            annotations.append(person_annotation(ann_id, image_id, random_person(rng, box), box))
    annotations.append(
        person_annotation(  # a crowd: keypoints all zero, iscrowd 1
            200, 2, np.zeros((17, 3)), [0.0, 100.0, 60.0, 50.0], iscrowd=1
        )
    )
    annotations.append(
        person_annotation(  # a person box with no labelled keypoint
            201, 2, np.zeros((17, 3)), [150.0, 100.0, 30.0, 40.0]
        )
    )
    return {
        "info": {"description": "fpdctl test COCO", "version": "1.0", "year": 2017},
        "licenses": [{"url": "", "id": 1, "name": "test"}],
        "images": images,
        "annotations": annotations,
        "categories": [PERSON_CATEGORY],
    }


def write_coco_dataset(
    root: Path,
    split: str = "val",
    *,
    layout: str = "official",
    ground_truth: dict[str, Any] | None = None,
    skip_images: tuple[int, ...] = (),
) -> Path:
    """Write a COCO folder: the annotation JSON and one JPEG per image (except ``skip_images``).

    Args:
        root: the dataset folder.
        split: "train" or "val".
        layout: "official" (``<split>2017/``) or "images" (``images/<split>2017/``).
        ground_truth: the annotation content (default :func:`make_ground_truth`).
        skip_images: image ids whose JPEG is not written.

    Returns:
        The annotation file.
    """
    gt = make_ground_truth() if ground_truth is None else ground_truth
    folder = f"{split}2017"
    image_dir = root / folder if layout == "official" else root / "images" / folder
    for k, image in enumerate(gt["images"]):
        if image["id"] not in skip_images:
            write_jpeg(image_dir / image["file_name"], image["width"], image["height"], seed=k)
    image_dir.mkdir(parents=True, exist_ok=True)
    annotation_file = root / "annotations" / f"person_keypoints_{folder}.json"
    annotation_file.parent.mkdir(parents=True, exist_ok=True)
    annotation_file.write_text(json.dumps(gt), encoding="utf-8")
    return annotation_file


def ground_truth_as_results(gt: dict[str, Any], score: float = 1.0) -> list[dict[str, Any]]:
    """Every labelled, non-crowd person of ``gt`` as a COCO results record (a perfect prediction)."""
    return [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": list(a["keypoints"]), "score": score}
        for a in gt["annotations"]
        if not a["iscrowd"] and a["num_keypoints"] > 0
    ]
