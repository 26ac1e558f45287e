"""One box geometry (issue 27): the same detections file gives the same crops in ``eval --boxes``
and ``predict --boxes`` (centre, scale and the crop's pixels), boxes running off the image and a
huge box included, and ``predict --bbox`` crops a box as both do."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpdctl.api import predict
from fpdctl.boxes import box_center_scale, clip_box
from fpdctl.data.coco import COCODetections
from fpdctl.deploy.boxes import read_boxes
from fpdctl.deploy.persons import PersonSource
from fpdctl.deploy.predict import JSON_NAME
from fpdctl.models.convention import NATIVE
from fpdctl.pipeline import crop, normalise, person_box
from tests.test_evaluate_coco_boxes import HEIGHT, WIDTH, _write_folder

# 256 px crops: no crop here is twice the input side, so eval decodes every image at full size.
CROP_SIZE = 256
BOXES = [
    [20.0, 15.0, 60.0, 90.0],  # inside
    [-30.0, 10.0, 70.0, 50.0],  # off the left: pixels -30..39, the part x 0..39 kept
    [150.0, -20.0, 80.0, 60.0],  # off the right and the top
    [60.0, 80.0, 50.0, 70.0],  # off the bottom
    [0.0, 0.0, 1e7, 1e7],  # huge: the whole image
    [120.5, 30.25, 33.3, 41.7],  # fractional
]


@pytest.fixture
def coco(tmp_path: Path) -> dict[str, Path]:
    _write_folder(tmp_path)
    records = [
        {"image_id": image_id, "category_id": 1, "bbox": box, "score": 0.9 - 0.01 * k}
        for image_id in (1, 2)
        for k, box in enumerate(BOXES)
    ]
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(records))
    return {"root": tmp_path, "dets": dets, "annotations": tmp_path / "annotations" / "person_keypoints_val2017.json"}


def _predict_crops(coco: dict[str, Path]) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """predict --boxes' persons of images 1 and 2 (in file order): centre, scale, crop tensor."""
    folder = coco["root"] / "val2017"
    names = sorted(p.name for p in folder.iterdir())
    people = PersonSource(boxes=read_boxes(coco["dets"], image_names=names, annotations=coco["annotations"]))
    found = []
    for name in names[:2]:
        image = cv2.imread(str(folder / name))
        for person in people.find(image, name, name):
            patch, _affine = crop(image, person.center, person.scale, CROP_SIZE)
            found.append((person.center, person.scale, normalise(patch, NATIVE)))
    assert people.skipped == {}
    return found


def test_eval_and_predict_crop_a_boxes_file_alike(coco: dict[str, Path]) -> None:
    evaluated = COCODetections(coco["root"], coco["dets"], input_size=CROP_SIZE)
    predicted = _predict_crops(coco)
    assert len(evaluated) == len(predicted) == 2 * len(BOXES)
    for k, (center, scale, pixels) in enumerate(predicted):
        sample = evaluated[k]
        np.testing.assert_array_equal(center, evaluated.table.centers[k])
        assert np.float32(scale) == evaluated.table.scales[k]
        np.testing.assert_array_equal(sample["meta"]["center"], center)
        np.testing.assert_allclose(sample["image"].numpy(), pixels, atol=1e-6)
    # Worked by hand: the box off the left keeps pixels x 0..39 (its own far edge, not 0..69),
    # y 10..59: centre (19.5, 34.5), side 49 x 1.25.
    np.testing.assert_array_equal(evaluated.table.centers[1], [19.5, 34.5])
    assert evaluated.table.scales[1] == np.float32(49 * 1.25 / 200)
    # The huge box is the whole 200 x 120 image: centre (99.5, 59.5), side 199 x 1.25.
    np.testing.assert_array_equal(evaluated.table.centers[4], [(WIDTH - 1) / 2, (HEIGHT - 1) / 2])
    assert evaluated.table.scales[4] == np.float32((WIDTH - 1) * 1.25 / 200)


def test_predict_writes_the_crops_eval_uses(coco: dict[str, Path], tiny_checkpoint: Path, tmp_path: Path) -> None:
    evaluated = COCODetections(coco["root"], coco["dets"], input_size=64)
    result = predict(
        str(tiny_checkpoint),
        coco["root"] / "val2017",
        out=tmp_path / "out",
        boxes=coco["dets"],
        annotations=coco["annotations"],
        det_score=0.0,
        threads=1,
        input_size=64,
    )
    saved = json.loads((tmp_path / "out" / JSON_NAME).read_text())
    persons = [p for entry in saved["results"] for p in entry["persons"]]
    assert result.num_persons == len(persons) == 2 * len(BOXES) and saved["skipped_boxes"] == {}
    np.testing.assert_allclose([p["center"] for p in persons], evaluated.table.centers, atol=5e-4)
    np.testing.assert_allclose([p["scale"] for p in persons], evaluated.table.scales, atol=5e-7)
    assert [p["box"] for p in persons[:4]] == BOXES[:4]  # the box as the file gives it
    drawn = cv2.imread(str(tmp_path / "out" / "000000000001.png"))
    assert drawn.shape == (HEIGHT, WIDTH, 3)  # the huge box was drawn (along the image's edge)


def test_bbox_crops_as_boxes_do() -> None:
    for box in BOXES:
        center, scale, given = person_box(WIDTH, HEIGHT, tuple(box))
        expected_center, expected_scale = box_center_scale(clip_box(box, WIDTH, HEIGHT))
        np.testing.assert_array_equal(center, expected_center)
        assert scale == expected_scale and given == tuple(box)
