"""HRNet's detector-box protocol: rescoring, OKS-NMS and the detections file (goldens by hand)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fpdctl.errors import DataError, InputError
from fpdctl.metrics.coco_detections import (
    BOX_SCORE_THRESHOLD,
    COCO_SIGMAS,
    OKS_NMS_THRESHOLD,
    check_detections,
    detection_results,
    load_detections,
    oks_iou,
    oks_nms,
    rescore,
)


def _person(x0: float) -> np.ndarray:
    """17 keypoints on a row from (x0, 50), 5 px apart."""
    return np.stack([x0 + 5.0 * np.arange(17), np.full(17, 50.0)], axis=1)


def test_the_protocol_constants_are_hrnets() -> None:
    assert OKS_NMS_THRESHOLD == 0.9 and BOX_SCORE_THRESHOLD == 0.0
    assert COCO_SIGMAS[0] == pytest.approx(0.026) and COCO_SIGMAS[11] == pytest.approx(0.107)
    assert COCO_SIGMAS.shape == (17,)


def test_oks_iou_by_hand() -> None:
    # Only the nose moves, by d with d^2 = 2 * s^2 * (2 sigma)^2, so its term is exp(-1); the
    # other 16 keypoints coincide (exp(0) = 1). s^2 is the mean of the two areas.
    a = _person(0.0)
    area = 100.0**2
    d = math.sqrt(2.0 * area * (2 * 0.026) ** 2)
    b = a.copy()
    b[0, 0] += d
    expected = (16.0 + math.exp(-1.0)) / 17.0  # 0.96283
    assert oks_iou(a, b[None], area, np.array([area]))[0] == pytest.approx(expected, rel=1e-6)
    # Identical persons: 1; a person 500 px away: 0.
    assert oks_iou(a, np.stack([a, _person(500.0)]), area, np.array([area, area])).tolist() == pytest.approx([1.0, 0.0])


def test_oks_nms_suppresses_a_duplicate() -> None:
    # Person 0 and its near-duplicate 2 (OKS 0.963 > 0.9) in one image, with person 1 far away.
    # Scores: 2 is the best, so 2 is kept and 0 dropped; 1 is kept.
    area = 100.0**2
    a = _person(0.0)
    dup = a.copy()
    dup[0, 0] += math.sqrt(2.0 * area * (2 * 0.026) ** 2)
    keypoints = np.stack([a, _person(300.0), dup])
    scores = np.array([0.8, 0.5, 0.9])
    areas = np.full(3, area)
    assert oks_nms(keypoints, scores, areas) == [2, 1]
    # Above the pair's OKS, both are kept; an empty image keeps nothing.
    assert oks_nms(keypoints, scores, areas, threshold=0.97) == [2, 0, 1]
    assert oks_nms(np.zeros((0, 17, 2)), np.zeros(0), np.zeros(0)) == []


def test_rescoring_by_hand() -> None:
    joints = np.full((3, 17), 0.1)
    joints[0, :4] = [0.9, 0.5, 0.3, 0.2]  # above 0.2: 0.9, 0.5, 0.3 -> mean 0.5666...
    joints[1, :] = 0.6  # all confident -> 0.6
    # person 2: no joint above 0.2 -> 0
    box = np.array([0.5, 1.0, 0.9])
    np.testing.assert_allclose(rescore(box, joints), [0.5 * (1.7 / 3.0), 0.6, 0.0])


def test_detection_results_rescore_then_prune_per_image() -> None:
    area = 100.0**2
    a = _person(0.0)
    # Image 1: a person and its exact duplicate from a weaker box; image 2: the same pose, kept
    # (OKS-NMS runs per image).
    keypoints = np.stack([a, a, a])
    joint_scores = np.full((3, 17), 0.8)
    records = detection_results(
        keypoints, joint_scores, np.array([1, 1, 2]), np.array([0.5, 0.9, 0.4]), np.full(3, area)
    )
    assert [(r["image_id"], round(r["score"], 6)) for r in records] == [(1, 0.72), (2, 0.32)]
    assert records[0]["keypoints"][:3] == [0.0, 50.0, 0.8]


def _det(image_id: object = 1, category_id: object = 1, bbox: object = None, score: object = 0.9) -> dict:
    return {
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [10.0, 20.0, 30.0, 40.0] if bbox is None else bbox,
        "score": score,
    }


def test_detections_are_read_and_thresholded(tmp_path: Path) -> None:
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([_det(), _det(image_id=2, score=-0.5), _det(image_id=2, score=0.0)]))
    boxes = load_detections(path, {1, 2})
    assert len(boxes) == 2 and boxes.num_records == 3
    assert boxes.image_ids.tolist() == [1, 2] and boxes.record_index.tolist() == [0, 2]
    assert boxes.boxes.tolist() == [[10.0, 20.0, 30.0, 40.0]] * 2 and boxes.scores.tolist() == [0.9, 0.0]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_det(image_id=7), "F: detection 1 (image 7): no such image in the annotations"),
        (_det(category_id=2), "F: detection 1 (image 1): category_id is 2, only persons (category 1) have keypoints"),
        (
            _det(bbox=[1.0, 2.0, -3.0, 4.0]),
            "F: detection 1 (image 1): bbox [1.0, 2.0, -3.0, 4.0] has no area (width and height must be positive)",
        ),
        (
            _det(bbox=[1.0, 2.0, 3.0, 0.0]),
            "F: detection 1 (image 1): bbox [1.0, 2.0, 3.0, 0.0] has no area (width and height must be positive)",
        ),
        (
            _det(bbox=[1.0, 2.0, 3.0]),
            "F: detection 1 (image 1): bbox must be [x, y, width, height], four finite numbers",
        ),
        (_det(score="high"), "F: detection 1 (image 1): score must be a finite number"),
        ({"image_id": 1}, "F: detection 1 must be an object with image_id, category_id, bbox, score"),
    ],
)
def test_a_bad_detection_is_named(record: dict, message: str) -> None:
    with pytest.raises(DataError) as info:
        check_detections([_det(), record], "F", {1, 2})
    assert str(info.value) == message


def test_a_file_that_is_not_detections(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(DataError, match="is not a COCO detection results file: expected a JSON list"):
        load_detections(path)
    path.write_text("[{")
    with pytest.raises(DataError, match="cannot parse detections file"):
        load_detections(path)
    with pytest.raises(InputError):
        load_detections(tmp_path / "missing.json")
