"""Pose accuracy metrics, pure numpy: MPII PCKh, LSP PCK and COCO keypoint AP (pycocotools), plus
the official file formats.

Importing this package does not import torch (nor pycocotools, which :mod:`fpdctl.metrics.coco`
imports on first use).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Union

import numpy as np

from fpdctl.errors import DataError, UsageError
from fpdctl.metrics.accuracy import GROUP_NAMES, AccuracyResult
from fpdctl.metrics.coco import COCOReference, COCOResult, evaluate_coco_reference
from fpdctl.metrics.pck import PCK_THRESHOLD, PCKResult, compute_pck, torso_sizes
from fpdctl.metrics.pckh import PCKH_THRESHOLD, SC_BIAS, PCKhResult, compute_pckh, head_sizes
from fpdctl.metrics.reference import EvalReference

# What scoring a split returns: PCKh / PCK tables, or COCO's AP / AR.
MetricResult = Union[AccuracyResult, COCOResult]

# Each metric's headline score, as tables, plots and the sweep name it: the figure a result's
# ``mean`` holds (percent), PCKh's pooled mean, PCK's, COCO's AP over OKS 0.50:0.95.
SCORE_NAMES: dict[str, str] = {"pckh": "PCKh", "pck": "PCK", "oks": "AP"}

__all__ = [
    "GROUP_NAMES",
    "PCKH_THRESHOLD",
    "PCK_THRESHOLD",
    "SCORE_NAMES",
    "SC_BIAS",
    "AccuracyResult",
    "check_threshold",
    "COCOReference",
    "COCOResult",
    "EvalReference",
    "MetricResult",
    "PCKResult",
    "PCKhResult",
    "compute_pck",
    "compute_pckh",
    "evaluate_reference",
    "head_sizes",
    "headline_score",
    "score_name",
    "score_prediction_file",
    "torso_sizes",
]


def score_name(metric: str) -> str:
    """The headline score's name of a metric id: "pckh" -> "PCKh", "pck" -> "PCK", "oks" -> "AP"."""
    return SCORE_NAMES.get(metric, metric.upper())


def headline_score(report: dict[str, Any], metric: str) -> float:
    """The headline score (percent) in a result's ``to_dict()``: PCKh's or PCK's pooled mean,
    COCO's AP.

    Raises:
        KeyError: the report holds no such figure.
    """
    figures = report[metric]
    value = figures["AP"] if metric == COCOResult.metric else figures["mean"]
    return float("nan") if value is None else float(value)


def check_threshold(metric: str, threshold: float | None) -> None:
    """Refuse a threshold that is not a positive number, or any threshold for COCO AP, which
    averages over its own OKS thresholds.

    Raises:
        UsageError: naming the parameter.
    """
    if threshold is not None and not (threshold > 0 and math.isfinite(threshold)):
        raise UsageError(f"`threshold` must be a positive number, got {threshold}", params="threshold")
    if threshold is not None and metric == COCOResult.metric:
        raise UsageError("`threshold` applies to PCKh and PCK; COCO AP averages over OKS 0.50:0.95", params="threshold")


def score_prediction_file(
    predictions: str | os.PathLike[str],
    ground_truth: str | os.PathLike[str],
    *,
    threshold: float | None = None,
) -> MetricResult:
    """``fpdctl eval --predictions P --ground-truth G``: a prediction file scored against a ground
    truth, by the ground truth's kind (no torch is imported).

    * a COCO ``person_keypoints_*.json`` (``.json``): P is a COCO results JSON, scored by
      pycocotools (:func:`~fpdctl.metrics.coco.evaluate_coco`);
    * the official MPII ``.mat``: P holds MPII predictions, scored with PCKh
      (:func:`~fpdctl.metrics.mpii_files.evaluate_mpii_prediction_files`).

    Raises:
        UsageError: a threshold for COCO AP. InputError / DataError: missing or malformed files.
    """
    from fpdctl.metrics.coco import evaluate_coco
    from fpdctl.metrics.mpii_files import evaluate_mpii_prediction_files

    if Path(ground_truth).suffix.lower() == ".json":
        check_threshold(COCOResult.metric, threshold)
        return evaluate_coco(ground_truth, predictions)
    return evaluate_mpii_prediction_files(
        predictions, ground_truth, threshold=PCKH_THRESHOLD if threshold is None else threshold
    )


def evaluate_reference(
    predictions: np.ndarray,
    reference: EvalReference,
    *,
    threshold: float | None = None,
    inclusive: bool = True,
    scores: np.ndarray | None = None,
) -> MetricResult:
    """Score ``predictions`` [N, J, 2] with the reference's own metric (PCKh, PCK or COCO AP).

    Args:
        predictions: in the reference's pixel frame and joint order.
        reference: the ground truth; its ``metric`` picks PCKh, PCK or OKS AP (a
            :class:`COCOReference`, scored by pycocotools).
        threshold: None for the metric's standard one (0.5 for PCKh, 0.2 for PCK); COCO AP has
            its own OKS thresholds and refuses one.
        inclusive: count an error equal to the threshold as correct (the toolkit's ``<=``).
        scores: [N, J] joint confidences (heatmap peaks): COCO's keypoint scores, which rank its
            predictions; PCKh and PCK ignore them.

    Raises:
        DataError: unknown metric, a COCO threshold, or see :func:`compute_pckh` /
            :func:`compute_pck` / :func:`evaluate_coco_reference`.
    """
    if reference.metric == "pckh":
        return compute_pckh(
            predictions, reference, inclusive=inclusive, threshold=PCKH_THRESHOLD if threshold is None else threshold
        )
    if reference.metric == "pck":
        return compute_pck(
            predictions, reference, inclusive=inclusive, threshold=PCK_THRESHOLD if threshold is None else threshold
        )
    if reference.metric == COCOResult.metric and isinstance(reference, COCOReference):
        if threshold is not None:
            raise DataError("COCO AP averages over its own OKS thresholds (0.50:0.95); it takes no threshold")
        return evaluate_coco_reference(predictions, reference, scores)
    raise DataError(f"unknown metric '{reference.metric}' (known: pckh, pck, oks)")
