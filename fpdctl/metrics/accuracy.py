"""What PCKh (MPII) and PCK (LSP) share: checks, hit rates, body-part groups, means and AUC.

Both metrics count a predicted joint as correct when its distance to the ground truth, divided
by a per-person reference length (head size or torso size), is within a threshold. They differ
only in the reference length and the default threshold, so this module holds everything else and
``pckh.py`` / ``pck.py`` supply the lengths.

All arrays are numpy; nothing here imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from fpdctl.errors import DataError
from fpdctl.metrics.reference import EvalReference
from fpdctl.skeleton import JOINT_SETS, JointSet

PERCENT = 100.0

# The body-part columns of the official tables (MPII toolkit ``genTablePCK.m``, which the LSP
# toolkit shares): each is the plain average of a left/right (or neck/top) pair of per-joint
# figures. "Head" averages the upper neck and the head top as the MPII toolkit does. Note that
# pytorch-pose's eval_PCKh.py and HRNet's mpii.py print the head top alone under "Head"; that
# figure is ``per_joint["head_top"]``.
GROUPS: tuple[tuple[str, tuple[str, str]], ...] = (
    ("head", ("upper_neck", "head_top")),
    ("shoulder", ("r_shoulder", "l_shoulder")),
    ("elbow", ("r_elbow", "l_elbow")),
    ("wrist", ("r_wrist", "l_wrist")),
    ("hip", ("r_hip", "l_hip")),
    ("knee", ("r_knee", "l_knee")),
    ("ankle", ("r_ankle", "l_ankle")),
)
GROUP_NAMES: tuple[str, ...] = tuple(name for name, _ in GROUPS)

# MPII's pelvis and thorax lie close to the person centre, which the single-person protocol
# hands to the method, so every MPII table leaves them out of the mean (14 joints remain). LSP has
# neither joint, so there all 14 joints count.
EXCLUDED_FROM_MEAN: frozenset[str] = frozenset({"pelvis", "thorax"})

# LSP calls MPII's "upper_neck" simply "neck".
_ALIASES: dict[str, str] = {"upper_neck": "neck"}


def joint_set_of(reference: EvalReference) -> JointSet:
    """The :class:`JointSet` a reference is expressed in, checked against its joint count.

    Raises:
        DataError: unknown joint set, or a joint count that does not match it.
    """
    joint_set = JOINT_SETS.get(reference.joint_set)
    if joint_set is None:
        raise DataError(f"unknown joint set '{reference.joint_set}' (known: {', '.join(sorted(JOINT_SETS))})")
    if reference.joints.ndim != 3 or reference.joints.shape[1:] != (joint_set.num_joints, 2):
        raise DataError(
            f"ground truth for the {joint_set.name} joint set must be N x {joint_set.num_joints} x 2, "
            f"got shape {tuple(reference.joints.shape)}"
        )
    if reference.visible.shape != reference.joints.shape[:2]:
        raise DataError(
            f"ground-truth visibility must be N x {joint_set.num_joints}, got shape {tuple(reference.visible.shape)}"
        )
    return joint_set


def joint_index(joint_set: JointSet, name: str) -> int:
    """Index of an MPII-named joint in ``joint_set`` (accepting LSP's name for the neck)."""
    if name in joint_set.names:
        return joint_set.index(name)
    return joint_set.index(_ALIASES[name])


def check_predictions(predictions: np.ndarray, reference: EvalReference, joint_set: JointSet) -> np.ndarray:
    """Validate predicted coordinates against the reference and return them as float64.

    Args:
        predictions: [N, J, 2] x, y in the reference's pixel frame and joint order.

    Raises:
        DataError: wrong shape, different person count, or a NaN / infinite coordinate.
    """
    pred = np.asarray(predictions, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[1:] != (joint_set.num_joints, 2):
        raise DataError(f"predictions must be N x {joint_set.num_joints} x 2, got shape {tuple(pred.shape)}")
    if pred.shape[0] != len(reference):
        raise DataError(f"predictions have {pred.shape[0]} persons but the ground truth has {len(reference)}")
    bad = ~np.isfinite(pred)
    if bad.any():
        person, joint, axis = (int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(pred[person, joint, axis]) else "an infinite value"
        raise DataError(
            f"predictions contain {kind} at person {person}, joint '{joint_set.names[joint]}' "
            f"({int(bad.any(axis=2).sum())} joint(s) in all)"
        )
    return pred


def normalized_errors(predictions: np.ndarray, joints: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Euclidean joint errors divided by each person's reference length.

    Args:
        predictions: [N, J, 2].
        joints: [N, J, 2] ground truth.
        lengths: [N] positive reference lengths (head or torso size) in pixels.

    Returns:
        [N, J] float64 normalised errors.
    """
    return np.linalg.norm(predictions - joints, axis=2) / lengths[:, None]


def _hits(errors: np.ndarray, visible: np.ndarray, threshold: float, inclusive: bool) -> np.ndarray:
    within = errors <= threshold if inclusive else errors < threshold
    return within & visible


def _percent(hits: int | np.ndarray, count: int | np.ndarray) -> float | np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return PERCENT * np.asarray(hits, dtype=np.float64) / np.asarray(count, dtype=np.float64)


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(sum(kept) / len(kept)) if kept else math.nan


def pooled_rate(
    errors: np.ndarray, visible: np.ndarray, mean_mask: np.ndarray, threshold: float, inclusive: bool
) -> float:
    """Hits over visible joints, pooled over the joints in ``mean_mask`` [J] (percent)."""
    hits = _hits(errors, visible, threshold, inclusive)[:, mean_mask].sum()
    return float(_percent(int(hits), int(visible[:, mean_mask].sum())))


def area_under_curve(
    errors: np.ndarray,
    visible: np.ndarray,
    mean_mask: np.ndarray,
    thresholds: np.ndarray,
    inclusive: bool,
) -> float:
    """Area under the pooled-accuracy curve over ``thresholds``, with the threshold axis scaled to
    [0, 1], in percent (0..100).

    The MPII toolkit integrates the piecewise-linear curve with ``quadgk(interp1(...))``, which is
    exactly the trapezoid rule on the grid points.
    """
    rates = np.array([pooled_rate(errors, visible, mean_mask, float(t), inclusive) for t in thresholds])
    span = float(thresholds[-1] - thresholds[0])
    x = (thresholds - thresholds[0]) / span
    return float(np.sum((rates[1:] + rates[:-1]) * np.diff(x)) / 2.0)


@dataclass(frozen=True)
class AccuracyResult:
    """Per-joint and per-part accuracy at one threshold, with both conventions of the mean.

    Attributes:
        threshold: normalised-distance threshold of the main figures (0.5 for PCKh, 0.2 for PCK).
        per_joint: joint name -> percent correct among that joint's visible instances (NaN when
            a joint is never visible). Pelvis and thorax are reported but not averaged.
        groups: "head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle" (plain averages of
            the two joints of each part), "mean" (pooled over all visible joints in the mean:
            hits / visible, the MPII toolkit, HRNet and FPD-paper convention) and "mean_plain"
            (the unweighted average of the per-joint figures, the convention of Tompson's
            eval_PCKh.m and pytorch-pose).
        auc: area under the pooled-accuracy curve over the metric's threshold grid, threshold
            axis scaled to [0, 1], in percent.
        counts: joint name -> number of visible (scored) instances.
        num_persons: persons scored.
        inclusive: True when a distance equal to the threshold counts as correct (``<=``).
    """

    metric: ClassVar[str] = ""

    threshold: float
    per_joint: dict[str, float]
    groups: dict[str, float]
    auc: float
    counts: dict[str, int]
    num_persons: int
    inclusive: bool = True

    @property
    def mean(self) -> float:
        """The pooled mean: the headline figure of the MPII toolkit and the FPD paper."""
        return self.groups["mean"]

    @property
    def mean_plain(self) -> float:
        """The plain 14-joint average printed by pytorch-pose."""
        return self.groups["mean_plain"]

    def _extra_figures(self) -> dict[str, float]:
        """Metric-specific headline figures placed beside ``auc`` in :meth:`to_dict`."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; NaN (a joint never visible) becomes None."""
        out: dict[str, Any] = {
            self.metric: {k: _json_number(v) for k, v in self.groups.items()},
            "per_joint": {k: _json_number(v) for k, v in self.per_joint.items()},
        }
        out.update({k: _json_number(v) for k, v in self._extra_figures().items()})
        out["auc"] = _json_number(self.auc)
        out["threshold"] = self.threshold
        out["persons"] = self.num_persons
        out["visible_joints"] = int(sum(self.counts.values()))
        return out


def _json_number(value: float) -> float | int | None:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return None if math.isnan(value) else float(value)


def summarize(
    errors: np.ndarray,
    visible: np.ndarray,
    joint_set: JointSet,
    threshold: float,
    inclusive: bool,
) -> tuple[dict[str, float], dict[str, float], dict[str, int], np.ndarray]:
    """Per-joint rates, part groups and both means from normalised errors.

    Args:
        errors: [N, J] normalised errors (any value where not visible).
        visible: [N, J] bool, the instances that count.

    Returns:
        (per_joint, groups, counts, mean_mask [J] bool).
    """
    hits = _hits(errors, visible, threshold, inclusive)
    joint_counts = visible.sum(axis=0)
    rates = _percent(hits.sum(axis=0), joint_counts)
    per_joint = {name: float(rates[j]) for j, name in enumerate(joint_set.names)}
    counts = {name: int(joint_counts[j]) for j, name in enumerate(joint_set.names)}

    groups: dict[str, float] = {}
    for group, (first, second) in GROUPS:
        groups[group] = _nanmean(
            [
                per_joint[joint_set.names[joint_index(joint_set, first)]],
                per_joint[joint_set.names[joint_index(joint_set, second)]],
            ]
        )
    mean_mask = np.array([name not in EXCLUDED_FROM_MEAN for name in joint_set.names])
    groups["mean"] = pooled_rate(errors, visible, mean_mask, threshold, inclusive)
    groups["mean_plain"] = _nanmean([float(r) for r in rates[mean_mask]])
    return per_joint, groups, counts, mean_mask
