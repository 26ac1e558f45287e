"""COCO AP on detector boxes (``fpdctl eval --boxes``), end to end through the real crops.

The images carry their own answer: each keypoint is a dot of its own colour, and the predictor is
fixed (no training): heatmap k is how close each pixel's colour is to colour k. So predictions
are good but not perfect (a 16 px heatmap), AP is well above 0, and THE check is exact: detector
boxes equal to the ground-truth boxes (score 1) give the ground-truth-box AP, also with weaker
duplicates of those boxes added (OKS-NMS removes them).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpdctl.data.coco import COCODataset, COCODetections
from fpdctl.errors import DataError
from fpdctl.evaluation import evaluate_model
from fpdctl.models.convention import IMAGENET_MEAN, IMAGENET_STD
from tests.data.coco_fixtures import PERSON_CATEGORY, person_annotation

# 17 well separated RGB colours (0, 128 or 255 per channel; black, the background, left out).
COLORS = (
    np.array([(r, g, b) for r in (0, 128, 255) for g in (0, 128, 255) for b in (0, 128, 255)][1:18], np.float32) / 255.0
)
WIDTH, HEIGHT = 200, 120
INPUT_SIZE = 64


class ColourPeaks:
    """A fixed numpy predictor: heatmap k = closeness of each pixel to keypoint k's colour,
    averaged over 4 x 4 blocks (float32 [N, 3, S, S] normalised RGB -> [N, 1, 17, S/4, S/4])."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        mean = np.asarray(IMAGENET_MEAN, np.float32)[None, :, None, None]
        std = np.asarray(IMAGENET_STD, np.float32)[None, :, None, None]
        rgb = images * std + mean
        d2 = ((rgb[:, None] - COLORS[None, :, :, None, None]) ** 2).sum(axis=2)  # [N, 17, S, S]
        close = np.exp(-d2 / (2 * 0.15**2))
        n, j, s, _ = close.shape
        return close.reshape(n, j, s // 4, 4, s // 4, 4).mean(axis=(3, 5))[:, None].astype(np.float32)


def _write_folder(root: Path) -> list[dict]:
    """Three images with two persons each (the second image's pair overlapping), every keypoint
    a 3 px dot of its colour, in COCO's official layout; returns the annotations."""
    rng = np.random.default_rng(0)
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    images, annotations = [], []
    for image_id, starts in ((1, (20, 120)), (2, (40, 75)), (3, (10, 110))):
        canvas = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        for x0 in starts:
            box = [float(x0), 15.0, 60.0, 90.0]
            keypoints = np.zeros((17, 3))
            keypoints[:, 0] = rng.uniform(x0 + 5, x0 + 55, 17).round()
            keypoints[:, 1] = rng.uniform(20, 100, 17).round()
            keypoints[:, 2] = 2
            for k, (x, y, _) in enumerate(keypoints):
                bgr = tuple(int(v) for v in (COLORS[k][::-1] * 255).round())
                cv2.circle(canvas, (int(x), int(y)), 3, bgr, -1)
            annotations.append(person_annotation(len(annotations) + 1, image_id, keypoints, box, area=3000.0))
        name = f"{image_id:012d}.png"
        cv2.imwrite(str(root / "val2017" / name), canvas)
        images.append({"id": image_id, "file_name": name, "width": WIDTH, "height": HEIGHT})
    truth = {"info": {}, "licenses": [], "images": images, "annotations": annotations, "categories": [PERSON_CATEGORY]}
    (root / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(truth))
    return annotations


def _ap(dataset: object) -> float:
    return evaluate_model(ColourPeaks(), dataset, flip_test=False, batch_size=8).metric.ap  # type: ignore[arg-type]


def test_ground_truth_boxes_as_detections_give_the_ground_truth_ap(tmp_path: Path) -> None:
    annotations = _write_folder(tmp_path)
    truth_ap = _ap(COCODataset(tmp_path, "val", input_size=INPUT_SIZE))
    assert truth_ap > 0.3  # the fixed predictor is good, not perfect

    detections = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0} for a in annotations]
    (tmp_path / "dets.json").write_text(json.dumps(detections))
    boxed = COCODetections(tmp_path, tmp_path / "dets.json", input_size=INPUT_SIZE)
    assert len(boxed) == len(annotations)
    np.testing.assert_array_equal(
        boxed.table.centers, COCODataset(tmp_path, "val", input_size=INPUT_SIZE).table.centers
    )
    assert _ap(boxed) == truth_ap

    # Weaker duplicates of every box: the same crops, the same predictions, OKS 1 with the
    # original, so OKS-NMS drops them and AP is unchanged.
    duplicates = detections + [{**d, "score": 0.5} for d in detections]
    (tmp_path / "dups.json").write_text(json.dumps(duplicates))
    result = evaluate_model(
        ColourPeaks(),
        COCODetections(tmp_path, tmp_path / "dups.json", input_size=INPUT_SIZE),
        flip_test=False,
        batch_size=8,
    )
    assert result.metric.ap == truth_ap and result.metric.num_predictions == len(annotations)
    assert result.reference.boxes() == {
        "source": "detections",
        "file": str(tmp_path / "dups.json"),  # type: ignore[union-attr]
        "count": 2 * len(annotations),
    }

    # A missed person (the first box dropped) costs AP; a box scored 0 still counts (threshold 0).
    (tmp_path / "missed.json").write_text(json.dumps(detections[1:]))
    assert _ap(COCODetections(tmp_path, tmp_path / "missed.json", input_size=INPUT_SIZE)) < truth_ap


def test_a_box_outside_its_image_is_named(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    (tmp_path / "d.json").write_text(
        json.dumps([{"image_id": 1, "category_id": 1, "bbox": [500.0, 10.0, 20.0, 20.0], "score": 0.7}])
    )
    with pytest.raises(DataError) as info:
        COCODetections(tmp_path, tmp_path / "d.json", input_size=INPUT_SIZE)
    assert str(info.value) == (
        f"{tmp_path / 'd.json'}: detection 0 (image 1): bbox [500.0, 10.0, 20.0, 20.0] refused: "
        "no area in the image (a 200 x 120 image)"
    )
