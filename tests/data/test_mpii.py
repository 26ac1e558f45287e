"""MPII loaders on tiny files written in the real formats, and on the real validation ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpdctl.boxes import SCALE_MARGIN
from fpdctl.data.mpii import (
    CENTER_SHIFT_Y,
    MPIIDataset,
    read_release_persons,
)
from fpdctl.errors import DataError, InputError
from fpdctl.metrics.mpii_files import load_mpii_ground_truth
from tests.data.formats import (
    Image,
    Person,
    hrnet_entry,
    joints_array,
    pytorch_pose_entry,
    write_ground_truth,
    write_jpeg,
    write_json,
    write_release_mat,
)

W, H = 320, 240


def _person(seed: int, annotated: int = 16, vis_values: tuple = (1,)) -> Person:
    rng = np.random.default_rng(seed)
    ids = sorted(rng.choice(16, size=annotated, replace=False).tolist())
    joints = {
        j: (float(rng.integers(20, W - 20)), float(rng.integers(20, H - 20)), vis_values[k % len(vis_values)])
        for k, j in enumerate(ids)
    }
    x1, y1 = float(rng.integers(10, 200)), float(rng.integers(10, 100))
    return Person(
        joints=joints,
        objpos=(float(rng.integers(100, 220)), float(rng.integers(80, 160))),
        scale=float(rng.uniform(0.8, 1.2)),
        headbox=(x1, y1, x1 + float(rng.integers(20, 40)), y1 + float(rng.integers(25, 45))),
    )


P1, P2, P3, P5, P6 = (_person(k) for k in (1, 2, 3, 5, 6))
P4_NO_CENTER = Person(joints=_person(4).joints, objpos=None, scale=1.0, headbox=(1, 2, 30, 40))
# is_visible stored as MATLAB writes it in the release: numbers, '0'/'1' strings, or empty.
P7 = _person(7, annotated=12, vis_values=(1, "1", "0", np.zeros((0, 0)), 0))

IMAGES = [
    Image("000000001.jpg", True, [P1, P2]),
    Image("000000002.jpg", True, [P3, None, P4_NO_CENTER]),
    Image("000000003.jpg", False, [P5]),
    Image("000000004.jpg", True, [P6]),
    Image("000000005.jpg", True, []),
    Image("000000006.jpg", True, [P7]),
]
VAL = [P6, P1]  # the ground truth's order, not the release's
TRAIN = [P3, P7]  # P2 shares an image with a validation person, P4 has no centre, P5 is a test image


def _write_images(folder: Path) -> None:
    for k, image in enumerate(IMAGES):
        write_jpeg(folder / "images" / image.name, W, H, seed=k)


def _expected(persons: list[Person]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    joints = np.zeros((len(persons), 16, 3), np.float32)
    centers = np.zeros((len(persons), 2), np.float32)
    scales = np.zeros(len(persons), np.float32)
    boxes = np.zeros((len(persons), 2, 2), np.float32)
    for k, p in enumerate(persons):
        xy, annotated = joints_array(p)
        joints[k, :, :2] = np.where(annotated[:, None], xy - 1, 0)
        joints[k, :, 2] = annotated
        centers[k] = (p.objpos[0] - 1, p.objpos[1] + CENTER_SHIFT_Y * p.scale - 1)
        scales[k] = p.scale * SCALE_MARGIN
        boxes[k] = np.array(p.headbox).reshape(2, 2) - 1
    return joints, centers, scales, boxes


def _check_table(ds: MPIIDataset, persons: list[Person], headboxes: bool = True) -> None:
    joints, centers, scales, boxes = _expected(persons)
    np.testing.assert_allclose(ds.table.joints, joints, atol=1e-4)
    np.testing.assert_allclose(ds.table.centers, centers, atol=1e-4)
    np.testing.assert_allclose(ds.table.scales, scales, rtol=1e-6)
    if headboxes:
        np.testing.assert_allclose(ds.table.headboxes, boxes, atol=1e-4)


@pytest.fixture()
def release_dir(tmp_path: Path) -> Path:
    write_release_mat(tmp_path / "mpii_human_pose_v1_u12_1.mat", IMAGES)
    write_ground_truth(tmp_path / "mpii_val_gt_tompson.mat", VAL)
    _write_images(tmp_path)
    return tmp_path


def test_release_mat_parses_ragged_structs(release_dir: Path) -> None:
    persons = read_release_persons(release_dir / "mpii_human_pose_v1_u12_1.mat")
    # P1, P2 (image 1), P3 (image 2; the joint-less rect and P4 without objpos skipped), P6, P7.
    assert [(q.image_index, q.person_index) for q in persons] == [(1, 1), (1, 2), (2, 1), (4, 1), (6, 1)]
    assert persons[4].joints[:, 2].sum() == 12  # every stored point is annotated, visible or not


def test_release_split_from_tompson_ground_truth(release_dir: Path) -> None:
    val = MPIIDataset(release_dir, "val")
    train = MPIIDataset(release_dir, "train")
    assert val.ground_truth_file == release_dir / "mpii_val_gt_tompson.mat"
    assert [val.table.image_files[k] for k in range(2)] == ["000000004.jpg", "000000001.jpg"]
    assert train.table.image_files == ["000000002.jpg", "000000006.jpg"]
    _check_table(val, VAL)
    _check_table(train, TRAIN)
    ref = val.eval_reference()
    assert ref.metric == "pckh" and ref.joint_set == "mpii"
    np.testing.assert_allclose(ref.headboxes, _expected(VAL)[3], atol=1e-4)


def test_release_without_split_file_is_refused(tmp_path: Path) -> None:
    write_release_mat(tmp_path / "mpii_human_pose_v1_u12_1.mat", IMAGES)
    _write_images(tmp_path)
    with pytest.raises(DataError, match="has no train/validation split; put mpii_val_gt_tompson.mat"):
        MPIIDataset(tmp_path, "val")


def test_release_ground_truth_of_other_persons_is_refused(tmp_path: Path) -> None:
    write_release_mat(tmp_path / "mpii_human_pose_v1_u12_1.mat", IMAGES)
    write_ground_truth(tmp_path / "gt_valid.mat", [_person(99)])
    _write_images(tmp_path)
    with pytest.raises(DataError, match="validation person 1 of .*gt_valid.mat is not in the release"):
        MPIIDataset(tmp_path, "val")


def _pytorch_pose_dir(tmp_path: Path, with_gt: bool) -> Path:
    entries = [
        pytorch_pose_entry("000000004.jpg", P6, True),
        pytorch_pose_entry("000000002.jpg", P3, False),
        pytorch_pose_entry("000000001.jpg", P1, True),
        pytorch_pose_entry("000000006.jpg", P7, False),
    ]
    write_json(tmp_path / "mpii" / "mpii_annotations.json", entries)
    _write_images(tmp_path / "mpii")
    if with_gt:
        write_ground_truth(tmp_path / "mpii" / "detections_our_format.mat", VAL)
    return tmp_path / "mpii"


def test_pytorch_pose_json(tmp_path: Path) -> None:
    root = _pytorch_pose_dir(tmp_path, with_gt=True)
    val = MPIIDataset(root / "mpii_annotations.json", "val")
    train = MPIIDataset(root, "train")
    assert val.source.layout == train.source.layout == "pytorch-pose"
    _check_table(val, VAL)
    _check_table(train, TRAIN, headboxes=False)
    # The occluded joints of P7 (is_visible 0) are annotated; the zero rows are not.
    assert train.table.joints[1, :, 2].sum() == 12
    assert val.ground_truth_file == root / "detections_our_format.mat"


def test_json_without_ground_truth_says_which_file_to_provide(tmp_path: Path) -> None:
    root = _pytorch_pose_dir(tmp_path, with_gt=False)
    val = MPIIDataset(root, "val")
    with pytest.raises(DataError) as info:
        val.eval_reference()
    assert str(info.value) == (
        "PCKh needs head boxes, which mpii_annotations.json does not have: put the validation "
        "ground truth (gt_valid.mat or mpii_val_gt_tompson.mat or detections_our_format.mat) in "
        f"{root}"
    )


def _hrnet_dir(tmp_path: Path, gt_persons: list[Person]) -> Path:
    write_json(tmp_path / "annot" / "train.json", [hrnet_entry("000000002.jpg", P3), hrnet_entry("000000006.jpg", P7)])
    write_json(tmp_path / "annot" / "valid.json", [hrnet_entry("000000004.jpg", P6), hrnet_entry("000000001.jpg", P1)])
    write_ground_truth(tmp_path / "annot" / "gt_valid.mat", gt_persons)
    _write_images(tmp_path)
    return tmp_path


def test_hrnet_json_and_gt_valid(tmp_path: Path) -> None:
    root = _hrnet_dir(tmp_path, VAL)
    val = MPIIDataset(root, "val")
    assert val.source.layout == "hrnet" and val.source.annotation.name == "valid.json"
    _check_table(val, VAL)
    # Pointing at one HRNet file still finds the other split beside it.
    train = MPIIDataset(root / "annot" / "valid.json", "train")
    _check_table(train, TRAIN, headboxes=False)
    sample = val[0]
    assert sample["image"].shape == (3, 256, 256) and sample["target"].shape == (16, 64, 64)
    np.testing.assert_allclose(sample["meta"]["joints"], _expected(VAL)[0][0], atol=1e-4)


def test_ground_truth_that_does_not_line_up(tmp_path: Path) -> None:
    root = _hrnet_dir(tmp_path, [P1, P6])  # swapped order
    with pytest.raises(DataError, match=r"gt_valid.mat does not line up with .*valid.json: validation person 0"):
        MPIIDataset(root, "val")


@pytest.mark.parametrize(
    "content, message",
    [
        ({"images": []}, "is not an MPII annotation file: expected a list of persons with img_paths"),
        ([{"file": "a.jpg"}], "the first person has file"),
        ("[1, 2", "is not valid JSON"),
    ],
)
def test_wrong_json_layout(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "mpii_annotations.json"
    path.write_text(content if isinstance(content, str) else __import__("json").dumps(content))
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=message):
        MPIIDataset(path, "train")


def test_ragged_json_person_is_named(tmp_path: Path) -> None:
    entries = [hrnet_entry("a.jpg", P1), hrnet_entry("b.jpg", P3)]
    entries[1]["joints"] = entries[1]["joints"][:15]
    write_json(tmp_path / "annot" / "train.json", entries)
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=r"train.json: 'joints' of person 1 is not 16 x 2"):
        MPIIDataset(tmp_path, "train")


def test_wrong_mat_layout(tmp_path: Path) -> None:
    from scipy.io import savemat

    savemat(str(tmp_path / "mpii_human_pose_v1_u12_1.mat"), {"annolist": np.zeros(3)})
    (tmp_path / "images").mkdir()
    with pytest.raises(
        DataError,
        match=r"is not the MPII release: expected a struct RELEASE with annolist "
        r"and img_train \(mpii_human_pose_v1_u12_1.mat\), found annolist",
    ):
        MPIIDataset(tmp_path, "train")
    with pytest.raises(
        DataError,
        match=r"is not an MPII ground-truth \.mat: missing jnt_missing, pos_gt_src, "
        r"headboxes_src",
    ):
        load_mpii_ground_truth(tmp_path / "mpii_human_pose_v1_u12_1.mat")


def test_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="MPII data not found"):
        MPIIDataset(tmp_path / "nope", "train")
    with pytest.raises(InputError, match="no MPII annotations in"):
        MPIIDataset(tmp_path, "train")
    write_json(tmp_path / "annot" / "train.json", [hrnet_entry("a.jpg", P1)])
    with pytest.raises(InputError, match="no images/ folder for"):
        MPIIDataset(tmp_path, "train")
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="keeps the val split in .*valid.json, which is missing"):
        MPIIDataset(tmp_path, "val")


def test_real_validation_ground_truth(mpii_val_gt: Path, tmp_path: Path) -> None:
    """The real 2958-person ground truth: layout, and head boxes attached to an HRNet valid.json
    made from the same persons line up person by person."""
    gt = load_mpii_ground_truth(mpii_val_gt)
    assert len(gt) == 2958
    from scipy.io import loadmat

    raw = loadmat(str(mpii_val_gt))
    assert gt.visible.sum() == int((raw["jnt_missing"] == 0).sum())
    np.testing.assert_allclose(gt.joints[5], raw["pos_gt_src"][:, :, 5] - 1)
    entries = [
        {
            "image": f"{k:09d}.jpg",
            "center": [100.0, 100.0],
            "scale": 1.0,
            "joints": np.where(gt.visible[k][:, None], gt.joints[k] + 1, -1).tolist(),
            "joints_vis": gt.visible[k].astype(int).tolist(),
        }
        for k in range(len(gt))
    ]
    write_json(tmp_path / "annot" / "valid.json", entries)
    (tmp_path / "annot" / "gt_valid.mat").symlink_to(mpii_val_gt)
    (tmp_path / "images").mkdir()
    ref = MPIIDataset(tmp_path, "val").eval_reference()
    np.testing.assert_allclose(ref.headboxes, gt.headboxes, atol=1e-4)
    np.testing.assert_array_equal(ref.visible, gt.visible)
    np.testing.assert_allclose(ref.joints[ref.visible], gt.joints[gt.visible], atol=1e-4)


def test_person_without_a_usable_box_is_named(tmp_path: Path) -> None:
    entries = [hrnet_entry("a.jpg", P1), hrnet_entry("b.jpg", P3)]
    entries[1]["scale"] = -1.0
    write_json(tmp_path / "annot" / "train.json", entries)
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=r"person 1 \(b.jpg\) has no usable box: .*scale -1.25 \(must be positive\)"):
        MPIIDataset(tmp_path, "train")


def test_scoring_uses_the_attached_ground_truth_not_the_json_copy(tmp_path: Path) -> None:
    """HRNet and the FPD code score against gt_valid.mat's own joints and visibility
    (pos_gt_src, jnt_missing). Here the .mat's joints sit 0.4 px right of valid.json's (within
    the line-up tolerance) and P6's head top is missing from it: the reference is the .mat's."""
    import dataclasses

    from fpdctl.metrics import compute_pckh

    moved = [
        dataclasses.replace(
            p, joints={j: (x + 0.4, y, v) for j, (x, y, v) in p.joints.items() if not (p is P6 and j == 9)}
        )
        for p in VAL
    ]
    root = _hrnet_dir(tmp_path, moved)
    val = MPIIDataset(root, "val")
    gt = load_mpii_ground_truth(root / "annot" / "gt_valid.mat")
    ref = val.eval_reference()
    np.testing.assert_array_equal(ref.joints, gt.joints)
    np.testing.assert_array_equal(ref.visible, gt.visible)
    np.testing.assert_array_equal(ref.headboxes, gt.headboxes)
    assert not ref.visible[0, 9] and val.table.joints[0, 9, 2] == 1  # the JSON still has it
    np.testing.assert_allclose(ref.joints[1, :, 0] - val.table.joints[1, :, 0], 0.4, atol=1e-4)
    # Predictions exactly on the JSON's joints: scored against the .mat they are 0.4 px off, and
    # P6's head top does not count.
    json_joints = val.table.joints[:, :, :2].astype(np.float64)
    result = compute_pckh(json_joints, ref, threshold=1e-3)
    assert result.counts["head_top"] == 1 and result.per_joint["head_top"] == 0.0
    # The training targets still come from the annotations (sample joints = the JSON's).
    np.testing.assert_allclose(val[1]["meta"]["joints"][:, :2], val.table.joints[1, :, :2], atol=1e-4)
