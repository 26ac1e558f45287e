"""LSP PCK@0.2: the fraction of joints within a fraction of the torso size of the ground truth.

The protocol follows the MPII toolkit's LSP evaluation (``evaluatePCK.m``, "as defined in
[Sapp & Taskar, CVPR'13]"):

- torso size = ``||left_shoulder - right_hip||`` of the ground truth, per person (the toolkit's
  ``getDistPCK.m``: LSP joints 10 and 3, 1-based);
- a joint is correct when ``||pred - gt|| / torso_size <= threshold``, threshold 0.2;
- "Mean" pools all visible joints (LSP has no pelvis or thorax; with an MPII-order reference
  those two are left out as for PCKh); ``mean_plain`` averages the per-joint figures.

LSP's original test set annotates every joint, so the above is the whole protocol there. LSPET
marks unannotated joints with ``visible = 0``; those do not count, and when the left shoulder or
the right hip is unannotated the other torso diagonal, ``||right_shoulder - left_hip||``, stands
in (on the first 400 LSPET persons this scores 323 instead of 277). A person with neither
diagonal has no torso size and is not scored at all (``num_excluded`` says how many).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fpdctl.errors import DataError, UsageError
from fpdctl.metrics.accuracy import (
    AccuracyResult,
    area_under_curve,
    check_predictions,
    joint_index,
    joint_set_of,
    normalized_errors,
    summarize,
)
from fpdctl.metrics.reference import EvalReference
from fpdctl.skeleton import JOINT_SETS

# PCK@0.2: a fifth of the torso size, the threshold of the published LSP tables.
PCK_THRESHOLD = 0.2
# The toolkit's curve for LSP: thresholds 0, 0.01, ..., 0.2 (21 points, ``range = 0:0.01:0.2``).
PCK_AUC_THRESHOLDS: np.ndarray = np.arange(21) / 100.0
# The torso diagonal that normalises the errors, and the one used when it is not annotated.
TORSO_JOINTS: tuple[str, str] = ("l_shoulder", "r_hip")
FALLBACK_TORSO_JOINTS: tuple[str, str] = ("r_shoulder", "l_hip")


@dataclass(frozen=True)
class PCKResult(AccuracyResult):
    """Torso-normalised PCK at ``threshold`` (see :class:`AccuracyResult` for the shared fields).

    Attributes:
        num_excluded: persons not scored because neither torso diagonal is annotated.
    """

    metric = "pck"

    num_excluded: int = 0

    def _extra_figures(self) -> dict[str, float]:
        return {"persons_excluded": self.num_excluded}


def torso_sizes(joints: np.ndarray, visible: np.ndarray, joint_set_name: str = "lsp") -> np.ndarray:
    """Per-person torso size: ``||left_shoulder - right_hip||``, else ``||right_shoulder -
    left_hip||`` where the first diagonal is not annotated, else NaN.

    Args:
        joints: [N, J, 2] ground truth.
        visible: [N, J] bool.
        joint_set_name: "lsp" or "mpii" (the joint order of ``joints``).

    Returns:
        [N] float64 torso sizes in pixels.
    """
    joint_set = JOINT_SETS[joint_set_name]
    gt = np.asarray(joints, dtype=np.float64)
    sizes = np.full(gt.shape[0], np.nan)
    # The fallback first, so the official diagonal overwrites it wherever it exists.
    for pair in (FALLBACK_TORSO_JOINTS, TORSO_JOINTS):
        a, b = (joint_index(joint_set, name) for name in pair)
        both = visible[:, a] & visible[:, b]
        sizes[both] = np.linalg.norm(gt[both, a] - gt[both, b], axis=1)
    return sizes


def compute_pck(
    predictions: np.ndarray,
    reference: EvalReference,
    *,
    threshold: float = PCK_THRESHOLD,
    inclusive: bool = True,
) -> PCKResult:
    """Torso-normalised PCK of predicted joints.

    Args:
        predictions: [N, J, 2] x, y in the reference's pixel frame and joint order (J = 14 for
            LSP).
        reference: ground truth; head boxes are not used.
        threshold: fraction of the torso size within which a joint counts as correct.
        inclusive: count an error equal to the threshold as correct (the toolkit's ``<=``).

    Returns:
        PCKResult with per-joint and per-part figures, both means and the AUC over 0..0.2.

    Raises:
        DataError: shapes or counts do not match, NaN predictions, or no person has a torso.
    """
    if not (math.isfinite(threshold) and threshold > 0):
        raise UsageError(f"the PCK threshold must be a positive number, got {threshold}")
    joint_set = joint_set_of(reference)
    pred = check_predictions(predictions, reference, joint_set)
    visible = np.asarray(reference.visible, dtype=bool)
    sizes = torso_sizes(reference.joints, visible, joint_set.name)
    scorable = np.isfinite(sizes) & (sizes > 0)
    if not scorable.any():
        raise DataError(
            "no ground-truth person has an annotated torso (left shoulder and right hip, or right "
            "shoulder and left hip)"
        )
    visible = visible & scorable[:, None]
    errors = normalized_errors(pred, np.asarray(reference.joints, dtype=np.float64), np.where(scorable, sizes, 1.0))
    per_joint, groups, counts, mean_mask = summarize(errors, visible, joint_set, threshold, inclusive)
    return PCKResult(
        threshold=float(threshold),
        per_joint=per_joint,
        groups=groups,
        auc=area_under_curve(errors, visible, mean_mask, PCK_AUC_THRESHOLDS, inclusive),
        counts=counts,
        num_persons=int(scorable.sum()),
        inclusive=inclusive,
        num_excluded=int((~scorable).sum()),
    )
