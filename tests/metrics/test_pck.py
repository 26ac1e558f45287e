"""LSP PCK@0.2 (torso = left shoulder to right hip): hand-computed cases and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fpdctl.errors import DataError
from fpdctl.metrics import EvalReference, PCKResult, compute_pck, evaluate_reference, torso_sizes
from fpdctl.skeleton import LSP, LSP_TO_MPII, MPII

L_SHO, R_HIP = LSP.index("l_shoulder"), LSP.index("r_hip")
R_SHO, L_HIP = LSP.index("r_shoulder"), LSP.index("l_hip")
R_WRI, L_WRI, NECK = LSP.index("r_wrist"), LSP.index("l_wrist"), LSP.index("neck")


def _lsp_case() -> tuple[np.ndarray, EvalReference]:
    """Person 0: torso 50 px (PCK@0.2 allows 10 px); person 1: torso 100 px (20 px); person 2:
    both hips unannotated, so no torso and nothing scored; person 3: left shoulder unannotated,
    so the other diagonal (right shoulder to left hip, 100 px) is the torso."""
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.0, 300.0, size=(4, 14, 2)).round()
    gt[0, L_SHO], gt[0, R_HIP] = (10.0, 10.0), (40.0, 50.0)  # 3-4-5 triangle x 10
    gt[1, L_SHO], gt[1, R_HIP] = (0.0, 0.0), (0.0, 100.0)
    gt[3, R_SHO], gt[3, L_HIP] = (0.0, 0.0), (60.0, 80.0)
    visible = np.ones((4, 14), dtype=bool)
    visible[2, [R_HIP, L_HIP]] = False
    visible[1, NECK] = False
    visible[3, L_SHO] = False
    pred = gt.copy()
    pred[0, R_WRI, 0] += 10.0  # exactly 0.2 torso: a hit with <=
    pred[0, L_WRI, 1] += 11.0  # miss
    pred[1, R_WRI, 0] += 19.0  # hit
    pred[1, L_WRI, 0] += 25.0  # miss
    pred[1, NECK, 0] += 500.0  # unannotated: not scored
    pred[2] += 1000.0  # person without a torso: not scored
    pred[3, R_WRI, 1] -= 20.0  # exactly 0.2 of the fallback torso: a hit with <=
    pred[3, L_SHO] += 1000.0  # unannotated: not scored
    return pred, EvalReference(joints=gt, visible=visible, headboxes=None, metric="pck", joint_set="lsp")


def test_torso_sizes() -> None:
    _, ref = _lsp_case()
    sizes = torso_sizes(ref.joints, ref.visible, "lsp")
    np.testing.assert_allclose(sizes[[0, 1, 3]], [50.0, 100.0, 100.0])
    assert np.isnan(sizes[2])


def test_pck_hand_case() -> None:
    pred, ref = _lsp_case()
    result = compute_pck(pred, ref)
    assert isinstance(result, PCKResult)
    assert result.threshold == 0.2
    assert result.num_persons == 3 and result.num_excluded == 1
    assert result.per_joint["r_wrist"] == 100.0
    assert result.per_joint["l_wrist"] == pytest.approx(100.0 / 3.0)
    assert result.per_joint["neck"] == 100.0 and result.counts["neck"] == 2
    assert result.counts["l_shoulder"] == 2
    assert result.groups["wrist"] == pytest.approx((100.0 + 100.0 / 3.0) / 2.0)
    assert result.groups["head"] == 100.0  # (neck + head top) / 2
    # 14 + 13 + 13 = 40 visible joints of scored persons, 2 misses.
    assert sum(result.counts.values()) == 40
    assert result.groups["mean"] == pytest.approx(100.0 * 38 / 40)
    assert result.groups["mean_plain"] == pytest.approx((13 * 100.0 + 100.0 / 3.0) / 14)
    # AUC over 0..0.2 (20 intervals): 35 exact joints -> 1 each; e = 0.19 -> 1.5/20 (half the
    # interval before its step, then one full); e = 0.2 (boundary, twice) -> 0.5/20 each;
    # 0.22 and 0.25 -> 0.
    assert result.auc == pytest.approx(100.0 * (35 + 1.5 / 20 + 2 * 0.5 / 20) / 40)
    data = result.to_dict()
    assert list(data["pck"])[-2:] == ["mean", "mean_plain"]
    assert data["persons_excluded"] == 1 and data["persons"] == 3


def test_pck_strict_boundary() -> None:
    pred, ref = _lsp_case()
    result = compute_pck(pred, ref, inclusive=False)
    assert result.per_joint["r_wrist"] == pytest.approx(100.0 / 3.0)
    assert result.groups["mean"] == pytest.approx(100.0 * 36 / 40)


def test_pck_in_mpii_order_leaves_out_pelvis_and_thorax() -> None:
    """The same persons mapped into the 16 MPII channels score the same (pelvis and thorax,
    which LSP lacks, are unannotated)."""
    pred, ref = _lsp_case()
    pred16 = np.zeros((4, 16, 2))
    gt16 = np.zeros((4, 16, 2))
    vis16 = np.zeros((4, 16), dtype=bool)
    pred16[:, list(LSP_TO_MPII)] = pred
    gt16[:, list(LSP_TO_MPII)] = ref.joints
    vis16[:, list(LSP_TO_MPII)] = ref.visible
    ref16 = EvalReference(joints=gt16, visible=vis16, headboxes=None, metric="pck", joint_set="mpii")
    lsp_result = compute_pck(pred, ref)
    mpii_result = compute_pck(pred16, ref16)
    for key in ("mean", "mean_plain", "wrist", "head"):
        assert mpii_result.groups[key] == pytest.approx(lsp_result.groups[key])
    assert mpii_result.per_joint["upper_neck"] == lsp_result.per_joint["neck"]
    assert np.isnan(mpii_result.per_joint["pelvis"])


def test_evaluate_reference_dispatches_on_metric() -> None:
    pred, ref = _lsp_case()
    assert isinstance(evaluate_reference(pred, ref), PCKResult)
    assert evaluate_reference(pred, ref, threshold=0.5).threshold == 0.5


def test_pck_bad_input() -> None:
    pred, ref = _lsp_case()
    with pytest.raises(DataError, match=r"^predictions have 4 persons but the ground truth has 2$"):
        compute_pck(
            pred,
            EvalReference(
                joints=ref.joints[:2], visible=ref.visible[:2], headboxes=None, metric="pck", joint_set="lsp"
            ),
        )
    no_torso = ref.visible.copy()
    no_torso[:, [L_SHO, L_HIP]] = False
    with pytest.raises(DataError, match="no ground-truth person has an annotated torso"):
        compute_pck(
            pred, EvalReference(joints=ref.joints, visible=no_torso, headboxes=None, metric="pck", joint_set="lsp")
        )
    with pytest.raises(DataError, match=r"must be N x 14 x 2, got shape \(3, 16, 2\)"):
        compute_pck(
            np.zeros((3, 16, 2)),
            EvalReference(
                joints=np.zeros((3, 16, 2)),
                visible=np.ones((3, 16), bool),
                headboxes=None,
                metric="pck",
                joint_set="lsp",
            ),
        )
    assert MPII.num_joints == 16
