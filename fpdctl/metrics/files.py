"""Old home of the MPII prediction and ground-truth files, kept so that existing imports work.

Everything moved to :mod:`fpdctl.metrics.mpii_files`; ``load_predictions`` is now
``load_mpii_predictions`` and ``evaluate_prediction_files`` ``evaluate_mpii_prediction_files``.
"""

from __future__ import annotations

from fpdctl.metrics.mpii_files import (
    MATLAB_ORIGIN,
    MPII_MAT_JOINT_NAMES,
    PREDICTION_SUFFIXES,
    check_prediction_output,
    evaluate_mpii_prediction_files,
    load_mpii_ground_truth,
    load_mpii_predictions,
    save_predictions,
    write_mpii_ground_truth,
)

load_predictions = load_mpii_predictions
evaluate_prediction_files = evaluate_mpii_prediction_files

__all__ = [
    "MATLAB_ORIGIN",
    "MPII_MAT_JOINT_NAMES",
    "PREDICTION_SUFFIXES",
    "check_prediction_output",
    "evaluate_prediction_files",
    "load_mpii_ground_truth",
    "load_predictions",
    "save_predictions",
    "write_mpii_ground_truth",
]
