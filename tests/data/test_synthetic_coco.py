"""The synthetic generator's COCO layout: 17 keypoints from the figure, the COCO folder export, and
the joint set flowing through samples (targets, flips) and ground truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fpdctl.codec import decode_heatmaps
from fpdctl.data.coco import COCODataset
from fpdctl.data.kinds import data_joint_set, data_metric
from fpdctl.data.registry import build_dataset, spec_for_data
from fpdctl.data.synthetic import SyntheticPose, export_coco, synthetic_record
from fpdctl.data.synthetic.coco import BODY_KEYPOINTS, coco_keypoints, face_points
from fpdctl.data.synthetic.pose import HEAD_TOP, Body, SyntheticLayout
from fpdctl.data.transforms import AugmentConfig
from fpdctl.errors import UsageError
from fpdctl.metrics.coco import evaluate_coco, evaluate_coco_reference, load_coco_annotations
from fpdctl.skeleton import COCO, MPII


def _upright_head(yaw: float, size: int = 100) -> SyntheticLayout:
    """A layout whose only known geometry is an upright head: upper neck (50, 50), head top (50, 30)."""
    joints = np.full((MPII.num_joints, 2), 50.0)
    joints[HEAD_TOP] = (50.0, 30.0)
    body = Body(joints=joints, torso=30.0, yaw=yaw, widths=1.0, near_left=False, arms_behind=(False, False))
    return SyntheticLayout(
        image_size=size,
        body=body,
        visible=np.ones(MPII.num_joints, bool),
        center=np.zeros(2, np.float32),
        scale=1.0,
        headbox=np.zeros((2, 2), np.float32),
    )


def test_face_points_by_hand() -> None:
    # Head length 20, centre (50, 40), half-width 0.5 * 0.78 * 20 = 7.8; up is -y, the person's
    # left (facing the camera) is +x.
    points, facing = face_points(_upright_head(yaw=0.0))
    eye_across = 0.95 * 7.8 * math.sin(math.radians(26.0))
    expected = [
        (50.0, 40.0 + 0.12 * 20),  # nose, a little below the centre
        (50.0 + eye_across, 40.0 - 0.04 * 20),  # left eye
        (50.0 - eye_across, 40.0 - 0.04 * 20),  # right eye
        (50.0 + 7.8, 40.0),  # left ear
        (50.0 - 7.8, 40.0),  # right ear
    ]
    np.testing.assert_allclose(points, expected, atol=1e-9)
    assert facing.all()  # the ears at 90 degrees still face the camera (cos 0 > -0.25)
    # Seen from behind: no nose, no eyes; the ears swap image sides.
    points, facing = face_points(_upright_head(yaw=math.pi))
    assert facing.tolist() == [False, False, False, True, True]
    np.testing.assert_allclose(points[3], (50.0 - 7.8, 40.0), atol=1e-9)
    # Turned a quarter to the person's left: the nose points to +x at the head's edge (0.85
    # half-widths), the right side faces the camera (right eye, right ear at the centre), the left
    # eye and ear turn away.
    points, facing = face_points(_upright_head(yaw=math.pi / 2))
    np.testing.assert_allclose(points[0], (50.0 + 0.85 * 7.8, 42.4), atol=1e-9)
    np.testing.assert_allclose(points[4], (50.0, 40.0), atol=1e-9)
    assert facing.tolist() == [True, False, True, False, True]


def test_coco_keypoints_are_the_figures_joints() -> None:
    for index in range(6):
        mpii = synthetic_record(3, "val", index, 128, render=False)
        coco = synthetic_record(3, "val", index, 128, render=False, layout="coco")
        assert coco.joints.shape == (17, 3) and coco.headbox is None
        assert set(np.unique(coco.joints[:, 2])) <= {0.0, 1.0}
        for name, joint in BODY_KEYPOINTS.items():
            got, want = coco.joints[COCO.index(name)], mpii.joints[MPII.index(joint)]
            assert got[2] == want[2], name
            if want[2]:
                np.testing.assert_array_equal(got[:2], want[:2])
            else:  # not labelled: (0, 0, 0), as the release stores it
                assert got.tolist() == [0.0, 0.0, 0.0]
    # The pixels are the MPII layout's: only the annotation differs.
    a = synthetic_record(3, "val", 0, 64)
    b = synthetic_record(3, "val", 0, 64, layout="coco")
    np.testing.assert_array_equal(a.image, b.image)


def test_face_keypoints_hide_with_the_face() -> None:
    dataset = SyntheticPose("val", length=40, seed=0, image_size=128, layout="coco")
    nose = COCO.index("nose")
    for index in range(len(dataset)):
        figure = dataset.layout(index)
        record = dataset.load_annotation(index)
        if math.cos(figure.body.yaw) <= -0.25:  # the renderer draws no face
            assert record.joints[nose, 2] == 0
        labelled = coco_keypoints(figure)
        np.testing.assert_array_equal(labelled[:, 2] > 0, record.joints[:, 2] > 0)


def test_layout_option_and_joint_sets() -> None:
    dataset = build_dataset("synthetic:layout=coco,length=3", "val", input_size=64)
    assert dataset.joint_set is COCO and dataset.channel_joint_set is COCO and dataset.metric == "oks"
    sample = dataset[0]
    assert sample["target"].shape == (17, 16, 16) and sample["meta"]["joints"].shape == (17, 3)
    assert data_joint_set("synthetic:layout=coco") is COCO and data_joint_set("synthetic") is MPII
    assert data_metric("synthetic:layout=coco") == "oks" and data_metric("synthetic") == "pckh"
    assert spec_for_data("hg1x16", "synthetic:layout=coco").name == "hg1x16j17"
    assert spec_for_data("hg1x16j17", "synthetic:layout=coco").joints == 17
    with pytest.raises(UsageError) as info:
        spec_for_data("hg1x16j16", "synthetic:layout=coco")
    assert str(info.value) == (
        "model hg1x16j16 predicts 16 joints but synthetic:layout=coco has the 17 COCO joints; leave the "
        "j suffix out of the model name (the data's joints) or write j17"
    )
    with pytest.raises(UsageError) as info:
        build_dataset("synthetic:layout=lsp", "val", input_size=64)
    assert str(info.value) == "synthetic layout must be one of mpii, coco, got 'lsp'"


def test_a_flipped_sample_swaps_coco_channels() -> None:
    flip = AugmentConfig(scale=0.0, rotation=0.0, rotation_prob=0.0, flip_prob=1.0)
    plain = build_dataset("synthetic:layout=coco,length=4,seed=1", "val", input_size=64)
    flipped = build_dataset("synthetic:layout=coco,length=4,seed=1", "val", input_size=64, augment=flip)
    perm = COCO.flip_permutation()
    for index in range(4):
        a, b = plain[index], flipped[index]
        assert b["meta"]["flipped"]
        # Channel j of the mirrored crop is joint perm[j], mirrored: weights swap, peaks mirror.
        np.testing.assert_array_equal(b["target_weight"].numpy(), a["target_weight"].numpy()[perm])
        peaks_a, _ = decode_heatmaps(a["target"].numpy()[None])
        peaks_b, _ = decode_heatmaps(b["target"].numpy()[None])
        shown = b["target_weight"].numpy() > 0
        mirrored = peaks_a[0][perm].copy()
        # Input x -> 63 - x (the mirror of a 64-px crop), i.e. 15.75 - x in 16-px heatmap px;
        # each decode is within a quarter pixel of the exact peak.
        mirrored[:, 0] = 15.75 - mirrored[:, 0]
        np.testing.assert_allclose(peaks_b[0][shown], mirrored[shown], atol=0.51)


def test_ground_truth_scores_ap_1_in_memory() -> None:
    dataset = SyntheticPose("val", length=12, seed=2, image_size=128, layout="coco")
    reference = dataset.eval_reference()
    assert reference.ground_truth is not None and reference.annotation_file is None
    assert len(reference) == 12 and reference.image_ids.tolist() == list(range(1, 13))
    result = evaluate_coco_reference(reference.joints, reference)
    assert (result.ap, result.ar) == (1.0, 1.0) and result.num_images == 12
    truth = load_coco_annotations(dataset.coco_ground_truth())  # a valid COCO ground truth
    assert [c["keypoints"] for c in truth["categories"]] == [list(COCO.names)]


def test_export_reads_back_as_the_same_persons(tmp_path: Path) -> None:
    out = tmp_path / "coco"
    result = export_coco(out, 5, image_size=96, seed=4, split="both")
    assert result.layout == "coco" and result.count == 10 and result.total_joints == 170
    assert sorted(p.name for p in out.iterdir()) == ["annotations", "train2017", "val2017"]
    for split in ("train", "val"):
        annotation = out / "annotations" / f"person_keypoints_{split}2017.json"
        payload = json.loads(annotation.read_text())
        assert len(payload["images"]) == 5 and len(payload["annotations"]) == 5
        loaded = COCODataset(out, split, input_size=64)
        generated = SyntheticPose(split, length=5, seed=4, image_size=96, layout="coco", input_size=64)
        assert len(loaded) == 5
        for index in range(5):
            a, b = loaded.load_annotation(index), generated.load_annotation(index)
            np.testing.assert_array_equal(a.joints, b.joints)
            np.testing.assert_array_equal(a.center, b.center)
            assert a.scale == b.scale and a.image_id == f"{b.image_id}.jpg"
        # The file's ground truth, scored against itself, is AP 1.
        records = [
            {"image_id": ann["image_id"], "category_id": 1, "keypoints": ann["keypoints"], "score": 1.0}
            for ann in payload["annotations"]
        ]
        assert evaluate_coco(annotation, records).ap == 1.0
    with pytest.raises(UsageError, match=r"^`count` must be a positive integer, got 0$"):
        export_coco(tmp_path / "none", 0)
    assert not (tmp_path / "none").exists()
