"""MPII PCKh: the fraction of joints within a fraction of the head size of the ground truth.

The protocol follows the MPII evaluation toolkit (``evaluatePCKh.m`` / ``computePCK.m``):

- head size = ``SC_BIAS`` x the diagonal of the annotated head rectangle,
  ``SC_BIAS * ||(x2 - x1, y2 - y1)||``;
- a joint is correct when ``||pred - gt|| / head_size <= threshold`` (``inclusive=True``);
  Tompson's ``eval_PCKh.m`` and pytorch-pose use ``<`` (``inclusive=False``); the two differ only
  for an error exactly on the threshold;
- only annotated joints count (``jnt_missing == 0`` in the official ``.mat``);
- "Mean" pools all visible joints except pelvis and thorax (hits / visible), as the MPII toolkit,
  HRNet and the official FPD code report it; the plain 14-joint average of pytorch-pose is kept
  beside it as ``mean_plain``.
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
    joint_set_of,
    normalized_errors,
    pooled_rate,
    summarize,
)
from fpdctl.metrics.reference import EvalReference

# The MPII annotators drew head rectangles; the toolkit's util_get_head_size.m turns the box
# diagonal into a head-segment length with 0.6 (its comment: 0.8 * 0.75).
SC_BIAS = 0.6
# PCKh@0.5: half the head-segment length, the threshold of every published MPII table.
PCKH_THRESHOLD = 0.5
# The strict companion figure, pooled PCKh@0.1, at the threshold its name says.
PCKH_STRICT_THRESHOLD = 0.1
# What HRNet's and the official FPD code's mpii.py print as "Mean@0.1" is entry 11 of their grid
# ``np.arange(0, 0.5 + 0.01, 0.01)``: threshold 0.11 (that very float), pooled like "Mean". It is
# reported beside the true 0.1 figure, labelled ``pckh@0.1_hrnet``, to compare with their logs
# and the FPD README.
HRNET_THRESHOLD_GRID: np.ndarray = np.arange(0, 0.5 + 0.01, 0.01)
HRNET_MEAN_AT_0_1_INDEX = 11
HRNET_MEAN_AT_0_1_THRESHOLD = float(HRNET_THRESHOLD_GRID[HRNET_MEAN_AT_0_1_INDEX])
# The toolkit's curve: thresholds 0, 0.01, ..., 0.5 (51 points, ``range = 0:0.01:0.5``).
PCKH_AUC_THRESHOLDS: np.ndarray = np.arange(51) / 100.0


@dataclass(frozen=True)
class PCKhResult(AccuracyResult):
    """MPII PCKh at ``threshold`` (see :class:`AccuracyResult` for the shared fields).

    Attributes:
        pckh_at_0_1: pooled PCKh@0.1 over the same 14 joints as ``mean``.
        pckh_at_0_1_hrnet: what HRNet and the official FPD code print as "Mean@0.1": the same
            pooled figure at threshold 0.11 (:data:`HRNET_MEAN_AT_0_1_THRESHOLD`).
    """

    metric = "pckh"

    pckh_at_0_1: float = math.nan
    pckh_at_0_1_hrnet: float = math.nan

    def _extra_figures(self) -> dict[str, float]:
        return {
            "pckh@0.1": self.pckh_at_0_1,
            "pckh@0.1_hrnet": self.pckh_at_0_1_hrnet,
            "pckh@0.1_hrnet_threshold": round(HRNET_MEAN_AT_0_1_THRESHOLD, 6),
        }


def head_sizes(headboxes: np.ndarray) -> np.ndarray:
    """Per-person head size: ``SC_BIAS`` x the head-box diagonal.

    Args:
        headboxes: [N, 2, 2] ((x1, y1), (x2, y2)).

    Returns:
        [N] float64 head sizes in pixels.
    """
    boxes = np.asarray(headboxes, dtype=np.float64)
    return SC_BIAS * np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=1)


def compute_pckh(
    predictions: np.ndarray,
    reference: EvalReference,
    *,
    threshold: float = PCKH_THRESHOLD,
    inclusive: bool = True,
) -> PCKhResult:
    """PCKh of predicted joints against an MPII-style reference.

    Args:
        predictions: [N, J, 2] x, y in the reference's pixel frame and joint order (J = 16 for
            MPII).
        reference: ground truth with head boxes.
        threshold: fraction of the head size within which a joint counts as correct.
        inclusive: count an error equal to the threshold as correct (MPII toolkit, HRNet);
            False reproduces Tompson's eval_PCKh.m / pytorch-pose (``<``).

    Returns:
        PCKhResult with per-joint and per-part figures, both means, PCKh@0.1 (and HRNet's
        "Mean@0.1", threshold 0.11) and the AUC over thresholds 0..0.5.

    Raises:
        DataError: shapes or counts do not match, NaN predictions, missing or empty head boxes.
    """
    if not (math.isfinite(threshold) and threshold > 0):
        raise UsageError(f"the PCKh threshold must be a positive number, got {threshold}")
    joint_set = joint_set_of(reference)
    pred = check_predictions(predictions, reference, joint_set)
    if reference.headboxes is None:
        raise DataError("PCKh needs head boxes, and this ground truth has none (use PCK instead)")
    if np.shape(reference.headboxes) != (len(reference), 2, 2):
        raise DataError(f"head boxes must be N x 2 x 2, got shape {tuple(np.shape(reference.headboxes))}")
    visible = np.asarray(reference.visible, dtype=bool)
    sizes = head_sizes(reference.headboxes)
    # A person with annotated joints but no head size cannot be scored at all; the official code
    # would divide by zero and silently drop or count them.
    unusable = ~(np.isfinite(sizes) & (sizes > 0)) & visible.any(axis=1)
    if unusable.any():
        person = int(np.argmax(unusable))
        raise DataError(
            f"ground-truth person {person} has an empty or invalid head box ({int(unusable.sum())} person(s) in all)"
        )
    safe_sizes = np.where(sizes > 0, sizes, 1.0)
    errors = normalized_errors(pred, np.asarray(reference.joints, dtype=np.float64), safe_sizes)
    per_joint, groups, counts, mean_mask = summarize(errors, visible, joint_set, threshold, inclusive)
    return PCKhResult(
        threshold=float(threshold),
        per_joint=per_joint,
        groups=groups,
        auc=area_under_curve(errors, visible, mean_mask, PCKH_AUC_THRESHOLDS, inclusive),
        counts=counts,
        num_persons=len(reference),
        inclusive=inclusive,
        pckh_at_0_1=pooled_rate(errors, visible, mean_mask, PCKH_STRICT_THRESHOLD, inclusive),
        # HRNet counts an error on the threshold as a hit whatever ``inclusive`` says.
        pckh_at_0_1_hrnet=pooled_rate(errors, visible, mean_mask, HRNET_MEAN_AT_0_1_THRESHOLD, True),
    )
