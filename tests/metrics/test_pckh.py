"""MPII PCKh: the official reproduction on real data, hand-computed cases, and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fpdctl.errors import DataError, UsageError
from fpdctl.metrics import EvalReference, PCKhResult, compute_pckh, head_sizes
from fpdctl.metrics.mpii_files import load_mpii_ground_truth, load_mpii_predictions
from fpdctl.skeleton import MPII

# ---------------------------------------------------------------------------------------------
# Official reproduction. mpii_val_gt_tompson.mat is pytorch-pose's detections_our_format.mat:
# the 2958-person MPII validation split with pos_pred_src, the predictions of Tompson et al.
# (CVPR'15). The golden figures below were derived with `_loop_pckh` (a per-person loop over the
# raw .mat fields, sharing no code with fpdctl) and rounded to 4 decimals. As a sanity check
# against the literature: Tompson et al. report 96.1 / 91.9 / 83.9 / 77.8 / 80.9 / 72.3 / 64.8,
# total 82.0 on the MPII *test* set; these validation figures are within about a point of each.
GOLDEN_GROUPS = {
    "head": 96.6576,  # (upper neck 97.7149 + head top 95.6003) / 2, the toolkit's "Head"
    "shoulder": 92.7140,
    "elbow": 83.3646,
    "wrist": 76.7357,
    "hip": 81.9283,
    "knee": 73.3628,
    "ankle": 65.4462,
    "mean": 82.3367,  # pooled: 31642 hits / 38430 visible joints (MPII toolkit, HRNet, FPD)
    "mean_plain": 81.4584,  # plain average of the 14 per-joint figures (pytorch-pose)
}
GOLDEN_HEAD_TOP = 95.6003  # what pytorch-pose / HRNet print under "Head"
GOLDEN_POOLED_HITS, GOLDEN_POOLED_VISIBLE = 31642, 38430
GOLDEN_PCKH_AT_0_1 = 28.9748
# HRNet's / the FPD code's "Mean@0.1": pooled at entry 11 of np.arange(0, 0.51, 0.01) = 0.11,
# 12735 hits of the same 38430 joints (by `_loop_pckh` at that threshold).
GOLDEN_HRNET_MEAN_AT_0_1 = 100.0 * 12735 / 38430  # 33.1382
GOLDEN_AUC = 55.7812

_MAT_PAIRS = {
    "head": (8, 9),
    "shoulder": (12, 13),
    "elbow": (11, 14),
    "wrist": (10, 15),
    "hip": (2, 3),
    "knee": (1, 4),
    "ankle": (0, 5),
}
_NOT_IN_MEAN = (6, 7)  # pelvis, thorax


def _loop_pckh(mat_path: Path, threshold: float = 0.5, strict: bool = False) -> tuple[list[int], list[int]]:
    """Per-joint (hits, visible) by a plain loop over the official fields (no numpy, no fpdctl)."""
    from scipy.io import loadmat

    m = loadmat(str(mat_path))
    gt, pred, miss, boxes = m["pos_gt_src"], m["pos_pred_src"], m["jnt_missing"], m["headboxes_src"]
    hits, seen = [0] * 16, [0] * 16
    for i in range(gt.shape[2]):
        w = boxes[1, 0, i] - boxes[0, 0, i]
        h = boxes[1, 1, i] - boxes[0, 1, i]
        head = 0.6 * math.sqrt(w * w + h * h)
        for j in range(16):
            if miss[j, i]:
                continue
            dx, dy = pred[j, 0, i] - gt[j, 0, i], pred[j, 1, i] - gt[j, 1, i]
            error = math.sqrt(dx * dx + dy * dy) / head
            seen[j] += 1
            hits[j] += (error < threshold) if strict else (error <= threshold)
    return hits, seen


def _groups_from_counts(hits: list[int], seen: list[int]) -> dict[str, float]:
    rates = [100.0 * h / s for h, s in zip(hits, seen)]
    keep = [j for j in range(16) if j not in _NOT_IN_MEAN]
    groups = {k: (rates[a] + rates[b]) / 2 for k, (a, b) in _MAT_PAIRS.items()}
    groups["mean"] = 100.0 * sum(hits[j] for j in keep) / sum(seen[j] for j in keep)
    groups["mean_plain"] = sum(rates[j] for j in keep) / len(keep)
    return groups


@pytest.fixture(scope="module")
def official(mpii_val_gt: Path) -> tuple[np.ndarray, EvalReference]:
    return load_mpii_predictions(mpii_val_gt), load_mpii_ground_truth(mpii_val_gt)


def test_golden_figures_come_from_the_independent_loop(mpii_val_gt: Path) -> None:
    hits, seen = _loop_pckh(mpii_val_gt)
    groups = _groups_from_counts(hits, seen)
    for key, value in GOLDEN_GROUPS.items():
        assert groups[key] == pytest.approx(value, abs=5e-5), key
    keep = [j for j in range(16) if j not in _NOT_IN_MEAN]
    assert sum(hits[j] for j in keep) == GOLDEN_POOLED_HITS
    assert sum(seen[j] for j in keep) == GOLDEN_POOLED_VISIBLE
    assert 100.0 * hits[9] / seen[9] == pytest.approx(GOLDEN_HEAD_TOP, abs=5e-5)
    hits01, seen01 = _loop_pckh(mpii_val_gt, threshold=0.1)
    pooled01 = 100.0 * sum(hits01[j] for j in keep) / sum(seen01[j] for j in keep)
    assert pooled01 == pytest.approx(GOLDEN_PCKH_AT_0_1, abs=5e-5)


def test_official_mpii_reproduction(official: tuple[np.ndarray, EvalReference], mpii_val_gt: Path) -> None:
    predictions, reference = official
    assert predictions.shape == (2958, 16, 2) and len(reference) == 2958
    result = compute_pckh(predictions, reference)
    assert isinstance(result, PCKhResult)
    for key, value in GOLDEN_GROUPS.items():
        assert result.groups[key] == pytest.approx(value, abs=5e-3), key  # to 0.01 as printed
    assert (
        result.mean
        == result.groups["mean"]
        == pytest.approx(100.0 * GOLDEN_POOLED_HITS / GOLDEN_POOLED_VISIBLE, abs=1e-9)
    )
    assert result.mean_plain == pytest.approx(GOLDEN_GROUPS["mean_plain"], abs=5e-5)
    assert result.per_joint["head_top"] == pytest.approx(GOLDEN_HEAD_TOP, abs=5e-5)
    assert result.pckh_at_0_1 == pytest.approx(GOLDEN_PCKH_AT_0_1, abs=5e-5)
    assert result.pckh_at_0_1_hrnet == pytest.approx(GOLDEN_HRNET_MEAN_AT_0_1, abs=1e-9)
    assert result.auc == pytest.approx(GOLDEN_AUC, abs=5e-5)
    # Exactly the loop's per-joint counts, including the unscored pelvis and thorax.
    hits, seen = _loop_pckh(mpii_val_gt)
    for j, name in enumerate(MPII.names):
        assert result.counts[name] == seen[j]
        assert result.per_joint[name] == pytest.approx(100.0 * hits[j] / seen[j], abs=1e-9)
    assert result.num_persons == 2958


def test_official_reproduction_strict_threshold(official: tuple[np.ndarray, EvalReference], mpii_val_gt: Path) -> None:
    """Tompson's ``<``: the same figures here, since no error lies exactly on 0.5."""
    predictions, reference = official
    strict = compute_pckh(predictions, reference, inclusive=False)
    hits, seen = _loop_pckh(mpii_val_gt, strict=True)
    for key, value in _groups_from_counts(hits, seen).items():
        assert strict.groups[key] == pytest.approx(value, abs=1e-9), key
    assert strict.groups["mean"] == pytest.approx(GOLDEN_GROUPS["mean"], abs=5e-5)


def test_auc_matches_a_sorted_error_computation(official: tuple[np.ndarray, EvalReference]) -> None:
    """The AUC by another route: sort the pooled errors, count with searchsorted, integrate."""
    predictions, reference = official
    sizes = head_sizes(reference.headboxes)
    errors = np.linalg.norm(predictions - reference.joints, axis=2) / sizes[:, None]
    keep = np.ones(16, dtype=bool)
    keep[list(_NOT_IN_MEAN)] = False
    pooled = np.sort(errors[:, keep][reference.visible[:, keep]])
    grid = np.linspace(0.0, 0.5, 51)
    curve = 100.0 * np.searchsorted(pooled, grid, side="right") / pooled.size
    expected = float(np.sum((curve[1:] + curve[:-1]) / 2.0) / 50.0)
    assert compute_pckh(predictions, reference).auc == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(GOLDEN_AUC, abs=5e-5)


# ---------------------------------------------------------------------------------------------
# Hand-computed cases: 3 persons, head sizes 6, 12 and 6 px (boxes 6x8, 12x16, 6x8: diagonals
# 10, 20, 10, times SC_BIAS 0.6), so PCKh@0.5 allows 3, 6 and 3 px.
R_ANKLE, L_ANKLE, PELVIS, THORAX, NECK, HEAD_TOP = (
    MPII.index(n) for n in ("r_ankle", "l_ankle", "pelvis", "thorax", "upper_neck", "head_top")
)


def _hand_case() -> tuple[np.ndarray, EvalReference]:
    rng = np.random.default_rng(7)
    gt = rng.uniform(20.0, 200.0, size=(3, 16, 2)).round()
    visible = np.ones((3, 16), dtype=bool)
    boxes = np.array(
        [
            [[0.0, 0.0], [6.0, 8.0]],
            [[5.0, 5.0], [17.0, 21.0]],
            [[10.0, 10.0], [16.0, 18.0]],
        ]
    )
    dx = np.zeros((3, 16))
    dx[0, R_ANKLE], dx[1, R_ANKLE], dx[2, R_ANKLE] = 3.0, 7.0, 0.0  # boundary hit, miss, hit
    visible[0, L_ANKLE] = False
    dx[0, L_ANKLE], dx[1, L_ANKLE], dx[2, L_ANKLE] = 100.0, 5.0, 4.0  # unscored, hit, miss
    visible[0, HEAD_TOP] = visible[1, HEAD_TOP] = False
    dx[0, HEAD_TOP], dx[1, HEAD_TOP], dx[2, HEAD_TOP] = 50.0, 50.0, 1.0  # unscored x2, hit
    dx[:, PELVIS] = 50.0  # all misses, but pelvis is not in the mean
    visible[0, THORAX] = False
    pred = gt.copy()
    pred[:, :, 0] += dx
    return pred, EvalReference(joints=gt, visible=visible, headboxes=boxes, metric="pckh")


def test_hand_case_inclusive() -> None:
    pred, ref = _hand_case()
    result = compute_pckh(pred, ref)
    assert result.per_joint["r_ankle"] == pytest.approx(200.0 / 3.0)
    assert result.per_joint["l_ankle"] == pytest.approx(50.0)
    assert result.per_joint["head_top"] == pytest.approx(100.0)
    assert result.per_joint["pelvis"] == 0.0
    assert result.per_joint["thorax"] == 100.0
    assert result.counts["r_ankle"] == 3 and result.counts["l_ankle"] == 2
    assert result.counts["head_top"] == 1 and result.counts["thorax"] == 2
    assert result.groups["ankle"] == pytest.approx((200.0 / 3.0 + 50.0) / 2.0)
    assert result.groups["head"] == 100.0
    for group in ("shoulder", "elbow", "wrist", "hip", "knee"):
        assert result.groups[group] == 100.0
    # 14 joints in the mean: 3 + 2 + 1 + 11 x 3 = 39 visible, 2 + 1 + 1 + 33 = 37 hits.
    assert result.groups["mean"] == pytest.approx(100.0 * 37 / 39)
    assert result.groups["mean_plain"] == pytest.approx((200.0 / 3.0 + 50.0 + 12 * 100.0) / 14)
    # PCKh@0.1 allows 0.6 / 1.2 / 0.6 px: only exact joints hit (33 + r_ankle of person 2).
    assert result.pckh_at_0_1 == pytest.approx(100.0 * 34 / 39)
    # AUC: per visible joint, the trapezoid area of its step at error e on the 0..0.5 grid
    # (scaled to [0, 1]): e = 0 -> 1 (34 joints); e = 0.5 -> 0.5/50; e = 5/12 -> 8.5/50;
    # e = 1/6 -> 33.5/50; e > 0.5 -> 0 (2 joints).
    assert result.auc == pytest.approx(100.0 * (34 + 0.5 / 50 + 8.5 / 50 + 33.5 / 50) / 39)
    assert result.num_persons == 3 and result.threshold == 0.5 and result.inclusive


def test_hand_case_strict_boundary() -> None:
    """An error of exactly 0.5 head sizes counts with ``<=`` (toolkit) but not with ``<``."""
    pred, ref = _hand_case()
    result = compute_pckh(pred, ref, inclusive=False)
    assert result.per_joint["r_ankle"] == pytest.approx(100.0 / 3.0)
    assert result.groups["mean"] == pytest.approx(100.0 * 36 / 39)
    assert result.groups["mean_plain"] == pytest.approx((100.0 / 3.0 + 50.0 + 12 * 100.0) / 14)
    assert not result.inclusive


def test_other_threshold() -> None:
    pred, ref = _hand_case()
    result = compute_pckh(pred, ref, threshold=0.9)  # 5.4 / 10.8 / 5.4 px
    assert result.per_joint["r_ankle"] == pytest.approx(100.0)  # 3 and 7 px both within
    assert result.per_joint["l_ankle"] == pytest.approx(100.0)  # 5 < 10.8, 4 < 5.4
    assert result.threshold == 0.9


def test_never_visible_joint_is_nan_and_skipped() -> None:
    pred, ref = _hand_case()
    visible = ref.visible.copy()
    visible[:, L_ANKLE] = False
    ref = EvalReference(joints=ref.joints, visible=visible, headboxes=ref.headboxes, metric="pckh")
    result = compute_pckh(pred, ref)
    assert math.isnan(result.per_joint["l_ankle"])
    assert result.groups["ankle"] == pytest.approx(200.0 / 3.0)  # the right ankle alone
    assert result.to_dict()["per_joint"]["l_ankle"] is None


def test_to_dict_layout() -> None:
    pred, ref = _hand_case()
    data = compute_pckh(pred, ref).to_dict()
    assert list(data["pckh"]) == ["head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "mean", "mean_plain"]
    assert list(data["per_joint"]) == list(MPII.names)
    assert data["pckh@0.1"] == pytest.approx(100.0 * 34 / 39)
    assert data["persons"] == 3 and data["threshold"] == 0.5


def test_head_group_averages_upper_neck_and_head_top() -> None:
    """The toolkit's "Head" column is (upper neck + head top) / 2, not the head top alone."""
    _, ref = _hand_case()
    pred = ref.joints.copy()
    pred[0, NECK, 1] += 10.0  # 10 px > 3 px: the one miss
    result = compute_pckh(pred, ref)
    assert result.per_joint["upper_neck"] == pytest.approx(200.0 / 3.0)
    assert result.per_joint["head_top"] == 100.0
    assert result.groups["head"] == pytest.approx((200.0 / 3.0 + 100.0) / 2.0)


def test_head_sizes() -> None:
    boxes = np.array([[[0.0, 0.0], [6.0, 8.0]], [[1.0, 2.0], [4.0, 6.0]]])
    np.testing.assert_allclose(head_sizes(boxes), [6.0, 3.0])


# ---------------------------------------------------------------------------------------------
# Bad input: one clear DataError each.
def test_count_mismatch() -> None:
    pred, ref = _hand_case()
    with pytest.raises(DataError, match=r"^predictions have 2 persons but the ground truth has 3$"):
        compute_pckh(pred[:2], ref)


def test_nan_prediction() -> None:
    pred, ref = _hand_case()
    pred[1, 4, 1] = np.nan
    with pytest.raises(DataError) as info:
        compute_pckh(pred, ref)
    assert str(info.value) == "predictions contain NaN at person 1, joint 'l_knee' (1 joint(s) in all)"


def test_wrong_joint_count() -> None:
    pred, ref = _hand_case()
    with pytest.raises(DataError, match=r"^predictions must be N x 16 x 2, got shape \(3, 14, 2\)$"):
        compute_pckh(pred[:, :14], ref)


def test_missing_and_empty_head_boxes() -> None:
    pred, ref = _hand_case()
    no_boxes = EvalReference(joints=ref.joints, visible=ref.visible, headboxes=None, metric="pckh")
    with pytest.raises(DataError, match="PCKh needs head boxes"):
        compute_pckh(pred, no_boxes)
    boxes = ref.headboxes.copy()
    boxes[2, 1] = boxes[2, 0]
    empty = EvalReference(joints=ref.joints, visible=ref.visible, headboxes=boxes, metric="pckh")
    with pytest.raises(DataError) as info:
        compute_pckh(pred, empty)
    assert str(info.value) == "ground-truth person 2 has an empty or invalid head box (1 person(s) in all)"


def test_bad_threshold() -> None:
    pred, ref = _hand_case()
    with pytest.raises(UsageError, match="must be a positive number, got 0"):
        compute_pckh(pred, ref, threshold=0)


def test_hrnet_mean_at_0_1_is_threshold_0_11(mpii_val_gt: Path) -> None:
    """HRNet's "Mean@0.1" reads index 11 of its 0..0.5 grid: threshold 0.11, four points above
    the true 0.1 figure on the official predictions; reported beside it, labelled."""
    from fpdctl.metrics.pckh import HRNET_MEAN_AT_0_1_THRESHOLD

    assert HRNET_MEAN_AT_0_1_THRESHOLD == np.arange(0, 0.5 + 0.01, 0.01)[11] == pytest.approx(0.11)
    hits, seen = _loop_pckh(mpii_val_gt, threshold=HRNET_MEAN_AT_0_1_THRESHOLD)
    keep = [j for j in range(16) if j not in _NOT_IN_MEAN]
    assert (sum(hits[j] for j in keep), sum(seen[j] for j in keep)) == (12735, GOLDEN_POOLED_VISIBLE)
    result = compute_pckh(load_mpii_predictions(mpii_val_gt), load_mpii_ground_truth(mpii_val_gt))
    data = result.to_dict()
    assert data["pckh@0.1"] == pytest.approx(GOLDEN_PCKH_AT_0_1, abs=5e-5)
    assert data["pckh@0.1_hrnet"] == pytest.approx(GOLDEN_HRNET_MEAN_AT_0_1, abs=1e-9)
    assert data["pckh@0.1_hrnet_threshold"] == 0.11
    # HRNet counts with <= whatever convention the main figures use.
    strict = compute_pckh(load_mpii_predictions(mpii_val_gt), load_mpii_ground_truth(mpii_val_gt), inclusive=False)
    assert strict.pckh_at_0_1_hrnet == result.pckh_at_0_1_hrnet
