"""The COCO keypoints loader: both folder layouts, person boxes, skipped annotations, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fpdctl.data.coco import COCODataset
from fpdctl.data.kinds import parse_data_spec
from fpdctl.data.registry import build_dataset
from fpdctl.data.transforms import sample_augmentation
from fpdctl.errors import DataError, InputError
from fpdctl.metrics.coco import COCOReference, evaluate_coco, evaluate_coco_reference
from fpdctl.skeleton import COCO, JOINT_SETS, joint_set_for
from tests.data.coco_fixtures import ground_truth_as_results, make_ground_truth, write_coco_dataset


def test_coco_joint_set() -> None:
    assert COCO.num_joints == 17 and JOINT_SETS["coco"] is COCO and joint_set_for(17) is COCO
    assert COCO.names[:3] == ("nose", "left_eye", "right_eye") and COCO.names[-1] == "right_ankle"
    perm = COCO.flip_permutation()
    assert [COCO.names[perm[j]] for j in range(17)] == [
        n.replace("left", "@").replace("right", "left").replace("@", "right") for n in COCO.names
    ]
    assert len(COCO.skeleton) == 19


@pytest.mark.parametrize("layout, folder", [("official", "val2017"), ("images", "images/val2017")])
def test_both_layouts_load_the_usable_persons(tmp_path: Path, layout: str, folder: str) -> None:
    write_coco_dataset(tmp_path, "val", layout=layout)
    ds = COCODataset(tmp_path, "val", input_size=64)
    assert ds.source.layout == layout and ds.source.image_dir == tmp_path / folder
    # 7 annotations: the crowd (200) and the box without keypoints (201) are skipped.
    assert len(ds) == 5 and ds.persons.annotation_ids.tolist() == [101, 102, 103, 104, 105]
    assert ds.persons.image_ids.tolist() == [1, 1, 2, 3, 3]
    assert ds.joint_set is COCO and ds.metric == "oks"
    gt = make_ground_truth()
    kps = np.asarray(gt["annotations"][0]["keypoints"], np.float32).reshape(17, 3)
    record = ds.load_record(0)
    assert record.image.shape == (160, 200, 3) and record.image_id == "000000000001.jpg"
    np.testing.assert_array_equal(record.joints[:, :2], kps[:, :2])
    np.testing.assert_array_equal(record.joints[:, 2], (kps[:, 2] > 0).astype(np.float32))
    assert record.headbox is None


def test_dataset_boxes_and_crop(tmp_path: Path) -> None:
    write_coco_dataset(tmp_path, "train")
    ds = COCODataset(tmp_path, "train", input_size=64)
    np.testing.assert_array_equal(ds.table.centers[3], [40.0, 70.0])
    assert ds.table.scales[3] == 0.5
    np.testing.assert_array_equal(ds.table.centers[4], [174.5, 99.5])
    assert ds.table.scales[4] == pytest.approx(119 * 1.25 / 200)
    record = ds.load_annotation(3)
    plain = sample_augmentation(None, np.random.default_rng(0))  # no augmentation
    affine = ds.sample_affine(record, plain)
    np.testing.assert_allclose(affine @ np.array([40.0, 70.0, 1.0]), [32.0, 32.0], atol=1e-4)


def test_eval_reference_scores_ground_truth_as_ap_1(tmp_path: Path) -> None:
    annotation_file = write_coco_dataset(tmp_path, "val")
    reference = COCODataset(tmp_path, "val", input_size=64).eval_reference()
    assert isinstance(reference, COCOReference) and reference.metric == "oks"
    assert reference.annotation_file == annotation_file and reference.joint_set == "coco"
    assert reference.joints.shape == (5, 17, 2) and reference.visible.shape == (5, 17)
    assert reference.image_ids.tolist() == [1, 1, 2, 3, 3]
    assert reference.areas.tolist() == [a["area"] for a in make_ground_truth()["annotations"][:5]]
    result = evaluate_coco_reference(reference.joints, reference)
    assert result.ap == 1.0 and result.ar == 1.0 and result.num_predictions == 5
    # The first two persons (image 1 alone) score as a split of their own.
    first = reference.first(2)
    assert first.image_ids.tolist() == [1, 1] and len(first) == 2
    assert evaluate_coco_reference(first.joints, first).ap == 1.0
    assert evaluate_coco(annotation_file, ground_truth_as_results(make_ground_truth())).ap == 1.0


def test_registry_builds_coco(tmp_path: Path) -> None:
    write_coco_dataset(tmp_path, "val")
    assert parse_data_spec(f"coco:{tmp_path}").kind == "coco"
    ds = build_dataset(f"coco:{tmp_path}", "val", input_size=64)
    assert isinstance(ds, COCODataset) and len(ds) == 5
    with pytest.raises(InputError) as info:
        parse_data_spec(f"coco:{tmp_path / 'nope'}")
    assert str(info.value) == f"coco data not found: {tmp_path / 'nope'}"


def test_missing_image_names_it(tmp_path: Path) -> None:
    annotation_file = write_coco_dataset(tmp_path, "val", skip_images=(3,))
    with pytest.raises(DataError) as info:
        COCODataset(tmp_path, "val")
    assert str(info.value) == (f"{annotation_file}: image 3 (000000000003.jpg) not found in {tmp_path / 'val2017'}")


def test_wrong_keypoint_count_names_file_and_annotation(tmp_path: Path) -> None:
    gt = make_ground_truth()
    gt["annotations"][1]["keypoints"] = gt["annotations"][1]["keypoints"] + [0, 0, 0]
    annotation_file = write_coco_dataset(tmp_path, "val", ground_truth=gt)
    with pytest.raises(DataError) as info:
        COCODataset(tmp_path, "val")
    assert str(info.value) == (
        f"{annotation_file}: annotation 102 (image 1) has 54 keypoint values, expected 51 (17 keypoints x [x, y, v])"
    )


def test_json_that_is_not_coco(tmp_path: Path) -> None:
    annotation_file = write_coco_dataset(tmp_path, "val")
    annotation_file.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(DataError) as info:
        COCODataset(tmp_path, "val")
    assert str(info.value) == (
        f'{annotation_file} is not a COCO keypoints file: expected a JSON object with "images", '
        '"annotations" and "categories" lists, found an object with keys annotations, images'
    )


def test_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        COCODataset(tmp_path, "train")
    expected = tmp_path / "annotations" / "person_keypoints_train2017.json"
    assert str(info.value) == f"no COCO train annotations in {tmp_path}: {expected} is missing"
    write_coco_dataset(tmp_path, "val")
    (tmp_path / "val2017").rename(tmp_path / "elsewhere")
    with pytest.raises(InputError) as info:
        COCODataset(tmp_path, "val")
    assert str(info.value) == (
        f"no COCO val images in {tmp_path}: expected {tmp_path / 'val2017'} or {tmp_path / 'images' / 'val2017'}"
    )
