"""Pareto fronts and the sweep's recommendation, as pure functions of result rows.

A row is on the front of accuracy against a cost when no other row is at least as accurate and
at most as costly with one of the two strictly better. Rows with no value for the cost (latency
not measured) are left out of that front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from fpdctl.errors import UsageError

# Cost columns a front or a budget can use, with how a sentence names them.
COSTS: dict[str, str] = {"macs": "MACs", "latency_ms": "latency"}
GIGA = 1e9


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pareto_front(costs: Sequence[float | None], values: Sequence[float | None]) -> list[int]:
    """Indices of the points on the front of ``values`` (maximised) against ``costs`` (minimised).

    Points whose cost or value is missing or not finite are never on the front. Two identical
    points are both on it. The result is sorted by cost (then index).

    Args:
        costs: [N] costs, e.g. MACs.
        values: [N] accuracies, e.g. PCKh or AP.
    """
    if len(costs) != len(values):
        raise ValueError(f"{len(costs)} costs but {len(values)} values")
    points = [(i, float(c), float(v)) for i, (c, v) in enumerate(zip(costs, values)) if _finite(c) and _finite(v)]
    front = []
    for i, cost, value in points:
        dominated = any(c2 <= cost and v2 >= value and (c2 < cost or v2 > value) for j, c2, v2 in points if j != i)
        if not dominated:
            front.append((cost, i))
    return [i for _, i in sorted(front)]


@dataclass(frozen=True)
class ConfigRecommendation:
    """The config to use, and why.

    Attributes:
        key: the recommended row's key (e.g. ``hg2x64-teacher``), None when no row qualifies.
        criterion: "max-drop", "budget-macs" or "budget-latency".
        reason: one sentence saying why this row (or why none).
    """

    key: str | None
    criterion: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "criterion": self.criterion, "reason": self.reason}


def _cheapest_key(row: Mapping[str, Any]) -> tuple[float, float, float, str]:
    # Cheaper first, then fewer parameters, then more accurate, then the key for a stable order.
    return (float(row["macs"]), float(row["params"]), -float(row["score"]), str(row["key"]))


def check_rule(
    max_drop: float,
    budget_gmacs: float | None = None,
    budget_latency_ms: float | None = None,
    *,
    latency: bool = True,
) -> None:
    """Refuse a recommendation rule that cannot pick: both budgets, a budget of 0 or less, a
    latency budget without latency measurements, a negative or infinite ``max_drop``.

    Raises:
        UsageError: naming the parameters, in one line.
    """
    if budget_gmacs is not None and budget_latency_ms is not None:
        raise UsageError(
            "give `budget_gmacs` or `budget_latency_ms`, not both", params=("budget_gmacs", "budget_latency_ms")
        )
    for name, value in (("budget_gmacs", budget_gmacs), ("budget_latency_ms", budget_latency_ms)):
        if value is not None and not value > 0:
            raise UsageError(f"`{name}` must be positive, got {value:g}", params=name)
    if budget_latency_ms is not None and not latency:
        raise UsageError(
            "`budget_latency_ms` needs latency measurements; measure `latency`",
            params=("budget_latency_ms", "latency"),
        )
    if not (max_drop >= 0 and math.isfinite(max_drop)):
        raise UsageError(f"`max_drop` must be a non-negative number, got {max_drop:g}", params="max_drop")


def recommend(
    rows: Sequence[Mapping[str, Any]],
    teacher_score: float | None,
    *,
    max_drop: float = 1.0,
    budget_macs: float | None = None,
    budget_latency_ms: float | None = None,
    metric: str = "PCKh",
) -> ConfigRecommendation:
    """Pick a row: the best under a budget, or else the cheapest close to the teacher.

    Args:
        rows: dicts with ``key``, ``score`` (percent, after fine-tuning), ``macs``, ``params`` and
            ``latency_ms`` (None when not measured).
        teacher_score: the teacher's score on the same split (percent).
        max_drop: the largest score loss against the teacher (percentage points) that is
            acceptable.
        metric: the score's name in the reason: PCKh, PCK or AP.
        budget_macs: if given, the most accurate row with at most this many MACs (absolute count).
        budget_latency_ms: if given, the most accurate row at most this slow (ms, batch 1).

    Returns:
        A :class:`ConfigRecommendation` with its reason.
    """
    scored = [r for r in rows if _finite(r.get("score")) and _finite(r.get("macs"))]
    if budget_macs is not None or budget_latency_ms is not None:
        if budget_macs is not None:
            criterion, column, limit = "budget-macs", "macs", float(budget_macs)
            show = lambda v: f"{v / GIGA:.3g} GMACs"  # noqa: E731
        else:
            criterion, column, limit = "budget-latency", "latency_ms", float(budget_latency_ms)  # type: ignore[arg-type]
            show = lambda v: f"{v:.3g} ms"  # noqa: E731
        measured = [r for r in scored if _finite(r.get(column))]
        if not measured:
            return ConfigRecommendation(None, criterion, f"no config has a measured {COSTS[column]}")
        fits = [r for r in measured if float(r[column]) <= limit]
        if not fits:
            cheapest = min(measured, key=lambda r: float(r[column]))
            return ConfigRecommendation(
                None,
                criterion,
                f"no config fits the budget of {show(limit)}; the cheapest, {cheapest['key']}, "
                f"needs {show(float(cheapest[column]))}.",
            )
        best = min(fits, key=lambda r: (-float(r["score"]), float(r[column]), str(r["key"])))
        return ConfigRecommendation(
            str(best["key"]),
            criterion,
            f"{best['key']} is the most accurate of the {len(fits)} config(s) within the budget of "
            f"{show(limit)}: {metric} {float(best['score']):.2f} at {show(float(best[column]))}.",
        )
    criterion = "max-drop"
    if not scored:
        return ConfigRecommendation(None, criterion, f"no config has a {metric}")
    if teacher_score is None or not _finite(teacher_score):
        best = max(scored, key=lambda r: (float(r["score"]), -float(r["macs"])))
        return ConfigRecommendation(
            str(best["key"]),
            criterion,
            f"the teacher has no {metric} to compare with; {best['key']} is the most accurate config "
            f"({metric} {float(best['score']):.2f}).",
        )
    floor = float(teacher_score) - float(max_drop)
    close = [r for r in scored if float(r["score"]) >= floor]
    if close:
        best = min(close, key=_cheapest_key)
        return ConfigRecommendation(
            str(best["key"]),
            criterion,
            f"{best['key']} is the cheapest config ({float(best['macs']) / GIGA:.3g} GMACs) within "
            f"{max_drop:g} {metric} of the teacher: {float(best['score']):.2f} against "
            f"{float(teacher_score):.2f}.",
        )
    best = max(scored, key=lambda r: (float(r["score"]), -float(r["macs"])))
    return ConfigRecommendation(
        str(best["key"]),
        criterion,
        f"no config is within {max_drop:g} {metric} of the teacher ({float(teacher_score):.2f}); "
        f"{best['key']} comes closest with {float(best['score']):.2f} at "
        f"{float(best['macs']) / GIGA:.3g} GMACs.",
    )
