"""Pose accuracy metrics, pure numpy: MPII PCKh and LSP PCK, plus the official file formats.

Importing this package does not import torch.
"""

from __future__ import annotations

import numpy as np

from fpdctl.errors import DataError
from fpdctl.metrics.accuracy import GROUP_NAMES, AccuracyResult
from fpdctl.metrics.pck import PCK_THRESHOLD, PCKResult, compute_pck, torso_sizes
from fpdctl.metrics.pckh import PCKH_THRESHOLD, SC_BIAS, PCKhResult, compute_pckh, head_sizes
from fpdctl.metrics.reference import EvalReference

__all__ = [
    "GROUP_NAMES",
    "PCKH_THRESHOLD",
    "PCK_THRESHOLD",
    "SC_BIAS",
    "AccuracyResult",
    "EvalReference",
    "PCKResult",
    "PCKhResult",
    "compute_pck",
    "compute_pckh",
    "evaluate_reference",
    "head_sizes",
    "torso_sizes",
]


def evaluate_reference(
    predictions: np.ndarray,
    reference: EvalReference,
    *,
    threshold: float | None = None,
    inclusive: bool = True,
) -> AccuracyResult:
    """Score ``predictions`` [N, J, 2] with the reference's own metric (PCKh or PCK).

    Args:
        predictions: in the reference's pixel frame and joint order.
        reference: the ground truth; its ``metric`` picks PCKh or PCK.
        threshold: None for the metric's standard one (0.5 for PCKh, 0.2 for PCK).
        inclusive: count an error equal to the threshold as correct (the toolkit's ``<=``).

    Raises:
        DataError: unknown metric, or see :func:`compute_pckh` / :func:`compute_pck`.
    """
    if reference.metric == "pckh":
        return compute_pckh(predictions, reference, inclusive=inclusive,
                            threshold=PCKH_THRESHOLD if threshold is None else threshold)
    if reference.metric == "pck":
        return compute_pck(predictions, reference, inclusive=inclusive,
                           threshold=PCK_THRESHOLD if threshold is None else threshold)
    raise DataError(f"unknown metric '{reference.metric}' (known: pckh, pck)")
