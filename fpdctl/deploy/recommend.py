"""Which path to ship: each bench row's accuracy against fp32, and the fastest row that keeps it.

``fpdctl bench --accuracy N`` scores every (model, backend) it timed on the first N persons of a
validation split (the pipeline of ``fpdctl eval``, without the flip test: a deployed model runs
one forward) and subtracts that from the same model's fp32 reference: eager fp32 PyTorch for a
checkpoint, ONNX Runtime fp32 for an fp32 .onnx file. :func:`recommend` then names, per model
and batch size, the fastest row that loses at most :data:`MAX_ACCURACY_DROP` points. Without
scores only fp32 rows qualify: a reduced precision is never recommended on faith.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from fpdctl.deploy.bench_report import BenchRow

# PCKh points (PCK for LSP) a deployment path may lose against the model's fp32 reference.
MAX_ACCURACY_DROP: float = 0.5


@dataclass(frozen=True)
class Score:
    """One (model, backend) scored on a validation split.

    Attributes:
        metric: "pckh" or "pck".
        value: the pooled mean, in percent.
        drop: the fp32 reference's value minus this one (positive: worse), None without one.
        samples: persons scored.
    """

    metric: str
    value: float
    drop: float | None
    samples: int


def score_cases(
    cases: Sequence[Any],
    *,
    data: str,
    samples: int,
    say: Any = None,
) -> dict[tuple[str, str], Score]:
    """Score each distinct (model, backend) of bench's cases; keyed by (model label, backend).

    Rows whose graph takes pixels or returns keypoints (``--embed-*`` exports) are not scored:
    evaluation feeds normalised crops and reads heatmaps.
    """
    from fpdctl.deploy.backends import get_backend
    from fpdctl.deploy.metadata import GraphIO
    from fpdctl.deploy.runtime import TorchRunner
    from fpdctl.deploy.verify import score_runners

    seen: dict[tuple[str, str], Any] = {}
    for case in cases:
        if case.runner.io == GraphIO():
            seen.setdefault((case.source.label, case.backend.name), case)
    scores: dict[tuple[str, str], Score] = {}
    for label in dict.fromkeys(key[0] for key in seen):
        mine = [case for key, case in seen.items() if key[0] == label]
        source, size = mine[0].source, mine[0].input_size
        runners = [case.runner for case in mine]
        names = [case.backend.name for case in mine]
        reference = _reference_name(source, names)
        if reference is None and source.net is not None:
            runners.append(TorchRunner(source.net, get_backend("torch"), "cpu"))
            names.append(reference := "torch")
        if say is not None:
            say(f"scoring {label} on {samples} {data} validation persons ({', '.join(names)})")
        count, metric, results = score_runners(
            # A deployed path runs one forward: scored as `fpdctl eval --no-flip-test` scores it.
            runners,
            data=data,
            input_size=size,
            samples=samples,
            flip_test=False,
            input_convention=source.input_convention,
        )
        values = dict(zip(names, (float(r.mean) for r in results)))
        base = values.get(reference) if reference is not None else None
        for name in (case.backend.name for case in mine):
            value = values[name]
            scores[(label, name)] = Score(metric, value, None if base is None else base - value, count)
    return scores


def _reference_name(source: Any, names: list[str]) -> str | None:
    """The fp32 reference among a model's rows: eager fp32 PyTorch, or ONNX Runtime fp32 for an
    fp32 .onnx file; None where it was not timed (a checkpoint then gets one made)."""
    if source.kind == "onnx":
        return "ort" if source.precision == "fp32" and "ort" in names else None
    return "torch" if "torch" in names else None


@dataclass(frozen=True)
class BackendRecommendation:
    """The path to ship for one model at one batch size.

    Attributes:
        model: the MODEL argument; batch: images per forward.
        backend: the recommended row; p50_ms: its median latency.
        drop: its measured accuracy loss against fp32 (None: an fp32 row, not scored).
        basis: "scored" (reduced precisions were scored and qualified), "fp32 only" (nothing
            was scored) or "not scorable" (scoring was asked for, but no row of this model can
            be scored: its graph takes uint8 pixels or returns keypoints).
    """

    model: str
    batch: int
    backend: str
    p50_ms: float
    drop: float | None
    basis: str

    def line(self) -> str:
        """One line for the bench report."""
        loss = "fp32" if self.drop is None else f"{0.0 - self.drop + 0.0:+.2f} points vs fp32"
        note = {
            "scored": "",
            "fp32 only": "; reduced precisions not scored (set `accuracy_samples`)",
            "not scorable": "; `accuracy_samples` cannot score these rows (their graph takes uint8 pixels or returns "
            "keypoints), so reduced precisions are not recommended",
        }[self.basis]
        return (
            f"recommended for {self.model} at batch {self.batch}: {self.backend} ({self.p50_ms:.2f} ms, "
            f"{loss}; the fastest within {MAX_ACCURACY_DROP} points of fp32{note})"
        )


def eligible(row: "BenchRow", max_drop: float = MAX_ACCURACY_DROP) -> bool:
    """A row may be recommended: fp32, or scored within ``max_drop`` of fp32."""
    if row.accuracy_drop is not None:
        return row.accuracy_drop <= max_drop
    return row.precision == "fp32"


def recommend(
    rows: Sequence["BenchRow"],
    max_drop: float = MAX_ACCURACY_DROP,
    *,
    scoring: bool = False,
) -> list[BackendRecommendation]:
    """Per model and batch size, the fastest (median) eligible row.

    Args:
        rows: :class:`~fpdctl.deploy.bench.BenchRow` (or anything with its ``model``, ``batch``,
            ``backend``, ``precision``, ``p50_ms`` and ``accuracy_drop``).
        max_drop: the accuracy budget, in points.
        scoring: the rows were meant to be scored (``--accuracy N``): a model none of whose rows
            has a score is then "not scorable" rather than "fp32 only".
    """
    out = []
    for key in dict.fromkeys((row.model, row.batch) for row in rows):
        group = [row for row in rows if (row.model, row.batch) == key]
        candidates = [row for row in group if eligible(row, max_drop)]
        if not candidates:
            continue
        best = min(candidates, key=lambda row: row.p50_ms)
        scored = any(row.accuracy_drop is not None for row in group)
        basis = "scored" if scored else "not scorable" if scoring else "fp32 only"
        out.append(BackendRecommendation(best.model, best.batch, best.backend, best.p50_ms, best.accuracy_drop, basis))
    return out


__all__ = [
    "MAX_ACCURACY_DROP",
    "BackendRecommendation",
    "Score",
    "eligible",
    "recommend",
    "score_cases",
]
