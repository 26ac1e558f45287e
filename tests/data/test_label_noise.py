"""Annotator-like label noise on the synthetic training split (``synthetic:label_noise=coco``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fpdctl.data.registry import build_dataset
from fpdctl.data.synthetic import SyntheticPose
from fpdctl.data.synthetic.label_noise import (
    LABEL_NOISE_MODELS,
    LABEL_NOISE_STREAM,
    MPII_SIGMAS,
    SWAP_LIMBS,
    LabelNoise,
    noisy_joints,
    person_area,
    self_occluded,
)
from fpdctl.data.synthetic.pose import sample_rng
from fpdctl.errors import UsageError
from fpdctl.skeleton import MPII

SIZE = 64


def _clean() -> SyntheticPose:
    return SyntheticPose("train", input_size=SIZE)


def test_pycocotools_sigmas_and_their_mpii_proxies() -> None:
    """The sigmas are pycocotools' for the joints COCO has, the named proxies for the others."""
    from pycocotools.cocoeval import Params

    coco = dict(
        zip(
            (
                "nose l_eye r_eye l_ear r_ear l_shoulder r_shoulder l_elbow r_elbow l_wrist r_wrist "
                "l_hip r_hip l_knee r_knee l_ankle r_ankle"
            ).split(),
            Params(iouType="keypoints").kpt_oks_sigmas,
        )
    )
    proxy = {"pelvis": "l_hip", "thorax": "l_shoulder", "upper_neck": "l_ear", "head_top": "l_ear"}
    expected = [coco[proxy.get(name, name)] for name in MPII.names]
    np.testing.assert_allclose(MPII_SIGMAS, expected, rtol=0, atol=1e-12)


def test_jitter_matches_coco_sigma_times_person_scale() -> None:
    """E[d^2 / area] = sigma^2 per joint (COCO's definition of its sigmas), each axis a centred
    Gaussian of std sigma * sqrt(area) / sqrt(2): no swaps or drops, 600 samples."""
    data = _clean()
    jitter_only = LabelNoise("jitter", tuple(MPII_SIGMAS.tolist()), swap_prob=0.0, drop_prob=0.0)
    n = 600
    ratios = np.zeros((n, MPII.num_joints))
    z = []
    for i in range(n):
        layout = data.layout(i)
        exact = layout.joints_with_visibility()
        noisy = noisy_joints(layout, exact, jitter_only, sample_rng(7, "train", i, LABEL_NOISE_STREAM))
        d = noisy[:, :2].astype(np.float64) - exact[:, :2]
        area = person_area(layout)
        ratios[i] = (d**2).sum(axis=1) / area
        z.append(d / (MPII_SIGMAS * math.sqrt(area) / math.sqrt(2.0))[:, None])
        np.testing.assert_array_equal(noisy[:, 2], exact[:, 2])  # jitter alone unlabels nothing
    # d^2 / area is sigma^2 / 2 times a chi-square with 2 degrees of freedom: mean sigma^2, and
    # the mean of 600 has a relative standard error of 1 / sqrt(600) = 4 %; 15 % is 3.7 of them.
    np.testing.assert_allclose(ratios.mean(axis=0), MPII_SIGMAS**2, rtol=0.15)
    pooled = np.concatenate(z).ravel()  # 19,200 standard normals
    assert abs(pooled.mean()) < 0.03
    assert abs(pooled.std() - 1.0) < 0.02


def test_swap_rate_is_five_percent_of_limbs() -> None:
    """With no jitter a swap is exact to detect: 1,500 samples x 2 limb pairs at 5 % is 150
    swaps expected, binomial std 11.9; the band is +-4 std."""
    data = _clean()
    swaps_only = LabelNoise("swap", (0.0,) * MPII.num_joints, swap_prob=0.05, drop_prob=0.0)
    swapped = 0
    for i in range(1500):
        layout = data.layout(i)
        exact = layout.joints_with_visibility()
        noisy = noisy_joints(layout, exact, swaps_only, sample_rng(0, "train", i, LABEL_NOISE_STREAM))
        for right, left in SWAP_LIMBS:
            if np.array_equal(noisy[list(right)], exact[list(left)]) and np.array_equal(
                noisy[list(left)], exact[list(right)]
            ):
                swapped += 1
            else:
                np.testing.assert_array_equal(noisy[list(right) + list(left)], exact[list(right) + list(left)])
    assert 102 <= swapped <= 198, swapped


def test_half_the_self_occluded_joints_are_unlabelled_and_no_other() -> None:
    data = _clean()
    drops_only = LabelNoise("drop", (0.0,) * MPII.num_joints, swap_prob=0.0, drop_prob=0.5)
    occluded = dropped = 0
    for i in range(1500):
        layout = data.layout(i)
        exact = layout.joints_with_visibility()
        noisy = noisy_joints(layout, exact, drops_only, sample_rng(0, "train", i, LABEL_NOISE_STREAM))
        covered = self_occluded(layout)
        lost = (exact[:, 2] > 0) & (noisy[:, 2] == 0)
        assert not (lost & ~covered).any()  # only self-occluded joints lose their label
        assert not (covered & (exact[:, 2] == 0)).any()  # already unlabelled is not self-occluded
        occluded += int(covered.sum())
        dropped += int(lost.sum())
    assert occluded > 400  # enough to measure: about 4 % of the labelled joints
    assert abs(dropped / occluded - 0.5) < 4 * math.sqrt(0.25 / occluded)


def test_an_arm_behind_the_torso_is_covered_in_front_it_is_not() -> None:
    """The far wrist moved onto the middle of the torso's axis, the near arm moved out of the
    way: covered when its arm is drawn behind the torso, uncovered when drawn in front."""
    import dataclasses

    from fpdctl.data.synthetic.pose import L_ELBOW, L_SHOULDER, L_WRIST, PELVIS, R_ELBOW, R_SHOULDER, R_WRIST, THORAX

    data = _clean()
    layout = next(data.layout(i) for i in range(200) if data.layout(i).visible.all())
    near_left = layout.body.near_left
    far_wrist = R_WRIST if near_left else L_WRIST
    near_arm = [L_SHOULDER, L_ELBOW, L_WRIST] if near_left else [R_SHOULDER, R_ELBOW, R_WRIST]
    joints = layout.body.joints.copy()
    joints[far_wrist] = (joints[PELVIS] + joints[THORAX]) / 2.0
    joints[near_arm] = -1000.0
    far_behind = (True, False) if near_left else (False, True)  # (right, left)
    for arms_behind, expected in ((far_behind, True), ((False, False), False)):
        body = dataclasses.replace(layout.body, joints=joints, arms_behind=arms_behind)
        assert self_occluded(dataclasses.replace(layout, body=body))[far_wrist] == expected


def test_same_seed_same_labels_other_seed_other_labels_pixels_unchanged() -> None:
    a = SyntheticPose("train", input_size=SIZE, label_noise="coco", seed=3)
    b = SyntheticPose("train", input_size=SIZE, label_noise="coco", seed=3)
    exact = SyntheticPose("train", input_size=SIZE, seed=3)
    for i in range(20):
        np.testing.assert_array_equal(a.load_annotation(i).joints, b.load_annotation(i).joints)
        # the record with pixels carries the same labels as the annotation alone
        np.testing.assert_array_equal(a.load_record(i).joints, a.load_annotation(i).joints)
    assert (
        sum(not np.array_equal(a.load_annotation(i).joints, exact.load_annotation(i).joints) for i in range(20)) == 20
    )
    np.testing.assert_array_equal(a.load_record(0).image, exact.load_record(0).image)
    other = SyntheticPose("train", input_size=SIZE, label_noise="coco", seed=4)
    other_exact = SyntheticPose("train", input_size=SIZE, seed=4)
    d3 = a.load_annotation(0).joints[:, :2] - exact.load_annotation(0).joints[:, :2]
    d4 = other.load_annotation(0).joints[:, :2] - other_exact.load_annotation(0).joints[:, :2]
    assert not np.allclose(d3, d4)


def test_validation_labels_stay_exact() -> None:
    spec = "synthetic:label_noise=coco,length=30"
    val = build_dataset(spec, "val", input_size=SIZE)
    exact = build_dataset("synthetic:length=30", "val", input_size=SIZE)
    for i in range(30):
        np.testing.assert_array_equal(val.load_record(i).joints, exact.load_record(i).joints)
    train = build_dataset(spec, "train", input_size=SIZE)
    assert train.label_noise == "coco"
    assert not np.array_equal(train.load_annotation(0).joints, _clean().load_annotation(0).joints)


def test_off_by_default_and_coco2_doubles_the_spread() -> None:
    assert build_dataset("synthetic:length=4", "train", input_size=SIZE).label_noise == "none"
    np.testing.assert_allclose(LABEL_NOISE_MODELS["coco2"].sigmas, 2 * MPII_SIGMAS)
    assert LABEL_NOISE_MODELS["coco2"].swap_prob == 2 * LABEL_NOISE_MODELS["coco"].swap_prob


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("synthetic:label_noise=heavy", "synthetic label_noise must be one of none, coco, coco2, got 'heavy'"),
        (
            "synthetic:layout=coco,label_noise=coco",
            "synthetic label_noise applies to the mpii layout with one person per image",
        ),
    ],
)
def test_bad_label_noise_is_one_clear_line(spec: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        build_dataset(spec, "train", input_size=SIZE)
    assert str(info.value) == message
