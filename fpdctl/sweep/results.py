"""A sweep directory's files: one JSON per config, the teacher's, and the merged summary.

Layout of a sweep directory::

    configs/<key>.json      one result per config (the record of truth)
    students/<key>.safetensors   the initial student (sliced or random) of each config
    runs/<key>/             the fine-tune's run directory (last.safetensors is the result)
    teacher.json            the teacher's own score, params, MACs, latency
    summary.json, sweep.png

Scores are the validation split's headline figure in percent, named by ``metric``: PCKh (MPII,
synthetic), PCK (LSP) or AP (COCO). Result files written before scores were named carry
``pckh`` / ``pckh_zero_shot`` and are read as PCKh scores.

Every file is written atomically, so any process may read the directory at any time: the summary
of a sharded sweep is complete once the last shard rebuilds it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpdctl.errors import DataError, UsageError
from fpdctl.models.spec import STANDARD
from fpdctl.sweep.pareto import ConfigRecommendation, pareto_front, recommend
from fpdctl.utils.io import atomic_write_text

CONFIGS_DIR = "configs"
STUDENTS_DIR = "students"
RUNS_DIR = "runs"
TEACHER_FILE = "teacher.json"
SUMMARY_FILE = "summary.json"
PLOT_FILE = "sweep.png"
# Bumped when the meaning of a result file changes, so old directories are refused, not misread.
RESULT_FORMAT = 1
# The score name of result files that predate named scores, and their field names.
LEGACY_METRIC = "PCKh"
LEGACY_FIELDS: dict[str, str] = {"pckh": "score", "pckh_zero_shot": "score_zero_shot"}


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A result dict with the current field names (``pckh`` was the score's name before COCO)."""
    out = {LEGACY_FIELDS.get(k, k): v for k, v in data.items()}
    if any(k in data for k in LEGACY_FIELDS):
        out.setdefault("metric", LEGACY_METRIC)
    return out


@dataclass(frozen=True)
class ConfigResult:
    """The measured outcome of one grid row (one ``configs/<key>.json``).

    Attributes:
        key: ``{spec name}-{init}``; model: the spec name; stacks, channels, blocks, init: the row.
        params: parameters; macs: MACs per image at ``input_size``.
        latency_ms: ONNX Runtime CPU latency at batch 1 (median ms), None when not measured.
        score_zero_shot: the score (percent) of the initial student, before any training.
        score: the score (percent) after the fine-tune.
        steps: optimizer steps of the fine-tune; train_seconds: its wall time.
        checkpoint: the fine-tuned student, relative to the sweep directory.
        settings: the sweep fingerprint the row was made with.
        metric: the score's name: "PCKh", "PCK" or "AP" (COCO).
        block: the student's residual block type, "standard" or "mobile".
    """

    key: str
    model: str
    stacks: int
    channels: int
    blocks: int
    init: str
    params: int
    macs: int
    latency_ms: float | None
    score_zero_shot: float
    score: float
    steps: int
    train_seconds: float
    checkpoint: str
    settings: dict[str, Any] = field(default_factory=dict)
    metric: str = LEGACY_METRIC
    block: str = STANDARD

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "model": self.model,
            "stacks": self.stacks,
            "channels": self.channels,
            "blocks": self.blocks,
            "block": self.block,
            "init": self.init,
            "params": self.params,
            "macs": self.macs,
            "latency_ms": self.latency_ms,
            "metric": self.metric,
            "score_zero_shot": self.score_zero_shot,
            "score": self.score,
            "steps": self.steps,
            "train_seconds": self.train_seconds,
            "checkpoint": self.checkpoint,
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfigResult:
        """Raises KeyError naming the first missing field (``metric`` and ``block`` may be
        absent: older files are PCKh sweeps of standard blocks)."""
        data = _upgrade(data)
        names = [f for f in cls.__dataclass_fields__ if f not in ("metric", "block")]
        missing = [n for n in names if n not in data]
        if missing:
            raise KeyError(missing[0])
        return cls(**{n: data[n] for n in (*names, "metric", "block") if n in data})


@dataclass(frozen=True)
class TeacherResult:
    """The teacher measured like the students (``teacher.json``); ``score`` is named by
    ``metric`` as a :class:`ConfigResult`'s."""

    model: str
    params: int
    macs: int
    latency_ms: float | None
    score: float
    settings: dict[str, Any]
    metric: str = LEGACY_METRIC

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "params": self.params,
            "macs": self.macs,
            "latency_ms": self.latency_ms,
            "metric": self.metric,
            "score": self.score,
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeacherResult:
        """Raises KeyError naming the first missing field."""
        data = _upgrade(data)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k != "metric" or k in data})


@dataclass(frozen=True)
class SweepResult:
    """The merged state of a sweep directory (``summary.json``).

    Attributes:
        out: the sweep directory.
        teacher: the teacher's figures (None if no process has measured it yet).
        results: every finished row, sorted by the grid order.
        pareto: cost name ("macs", "latency_ms") -> keys on the front of the score against it.
        recommendation: the pick and its reason.
        ran, skipped: keys this invocation ran, and found already finished.
        pending: keys of this invocation's shard that are not finished (interrupted runs).
        plot: the PNG, None when there was nothing to plot.
    """

    out: Path
    teacher: TeacherResult | None
    results: list[ConfigResult]
    pareto: dict[str, list[str]]
    recommendation: ConfigRecommendation
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    plot: Path | None = None

    @property
    def metric(self) -> str:
        """The score's name (every row of one sweep shares it): PCKh, PCK or AP."""
        return sweep_metric(self.results, self.teacher)

    @property
    def recommended(self) -> ConfigResult | None:
        """The recommended row, None when no row qualifies."""
        return next((r for r in self.results if r.key == self.recommendation.key), None)

    def to_dict(self) -> dict[str, Any]:
        """``summary.json``: the recommendation carries its row's model and fine-tuned checkpoint
        (an absolute path, ready for ``fpdctl distill --student-init``)."""
        pick = self.recommended
        recommendation = {
            **self.recommendation.to_dict(),
            "model": None if pick is None else pick.model,
            "init": None if pick is None else pick.init,
            "checkpoint": None if pick is None else str((self.out / pick.checkpoint).resolve()),
            "metric": self.metric,
            "score": None if pick is None else pick.score,
            "macs": None if pick is None else pick.macs,
            "latency_ms": None if pick is None else pick.latency_ms,
        }
        return {
            "teacher": None if self.teacher is None else self.teacher.to_dict(),
            "results": [r.to_dict() for r in self.results],
            "pareto": self.pareto,
            "recommendation": recommendation,
        }


def sweep_metric(results: list[ConfigResult], teacher: TeacherResult | None) -> str:
    """The score name of a sweep's rows (or its teacher's), PCKh when there is none."""
    for named in (*results, teacher):
        if named is not None:
            return named.metric
    return LEGACY_METRIC


# ----------------------------------------------------------------------------------- files
def read_json(path: Path) -> dict[str, Any]:
    """One result file as a dict.

    Raises:
        DataError: unreadable, not JSON, or not a JSON object (named).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read sweep result {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"sweep result {path} is not a JSON object")
    return data


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write one result file atomically (readers never see half of it)."""
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def config_path(out: str | os.PathLike[str], key: str) -> Path:
    """``configs/<key>.json`` of a sweep directory."""
    return Path(out) / CONFIGS_DIR / f"{key}.json"


def _config_files(out: str | os.PathLike[str]) -> list[Path]:
    folder = Path(out) / CONFIGS_DIR
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def read_results(out: str | os.PathLike[str]) -> list[ConfigResult]:
    """Every ``configs/*.json`` of a sweep directory, in grid order.

    Raises:
        DataError: an unreadable or malformed result file (named).
    """
    results = []
    for path in _config_files(out):
        data = read_json(path)
        try:
            results.append(ConfigResult.from_dict(data))
        except (KeyError, TypeError) as exc:
            raise DataError(f"sweep result {path} lacks the field {exc}") from None
    results.sort(key=lambda r: (r.stacks, r.channels, r.blocks, r.init, r.block))
    return results


def check_one_sweep(out: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
    """Refuse a directory holding results made with other settings (they are not comparable).

    Raises:
        UsageError: naming the first result file and setting that differ.
        DataError: an unreadable result file.
    """
    for path in _config_files(out):
        found = read_json(path).get("settings", {})
        for name, value in fingerprint.items():
            if found.get(name) != value:
                raise UsageError(
                    f"{path} was made with {name}={found.get(name)!r}, this sweep has {value!r}; "
                    "a sweep directory holds one sweep: use another `out`",
                    params="out",
                )


def read_teacher(out: str | os.PathLike[str]) -> TeacherResult | None:
    """``teacher.json`` of a sweep directory, None when absent."""
    path = Path(out) / TEACHER_FILE
    if not path.is_file():
        return None
    data = read_json(path)
    try:
        return TeacherResult.from_dict(data)
    except KeyError as exc:
        raise DataError(f"{path} lacks the field {exc}") from None


def cached_teacher(out: str | os.PathLike[str], fingerprint: dict[str, Any]) -> TeacherResult | None:
    """``teacher.json`` when it was measured with these settings, else None (measure again)."""
    path = Path(out) / TEACHER_FILE
    if not path.is_file():
        return None
    data = read_json(path)
    if data.get("settings") != fingerprint:
        return None
    try:
        return TeacherResult.from_dict(data)
    except KeyError:
        return None


def summarize(
    out: str | os.PathLike[str],
    *,
    max_drop: float = 1.0,
    budget_macs: float | None = None,
    budget_latency_ms: float | None = None,
    plot: bool = True,
) -> SweepResult:
    """Rebuild ``summary.json`` (and ``sweep.png``) from every result file in ``out``.

    Any process may call this at any time: it reads only finished, atomically written files, so
    the summary of a sharded sweep is complete once the last shard calls it.

    Raises:
        DataError: a malformed result file.
    """
    out_dir = Path(out)
    results = read_results(out_dir)
    teacher = read_teacher(out_dir)
    rows = [r.to_dict() for r in results]
    pareto: dict[str, list[str]] = {}
    for cost in ("macs", "latency_ms"):
        front = pareto_front([r[cost] for r in rows], [r["score"] for r in rows])
        pareto[cost] = [rows[i]["key"] for i in front]
    recommendation = recommend(
        rows,
        None if teacher is None else teacher.score,
        max_drop=max_drop,
        budget_macs=budget_macs,
        budget_latency_ms=budget_latency_ms,
        metric=sweep_metric(results, teacher),
    )
    summary = SweepResult(out=out_dir, teacher=teacher, results=results, pareto=pareto, recommendation=recommendation)
    plot_path: Path | None = None
    if plot and results:
        from fpdctl.sweep.plot import plot_sweep

        plot_path = plot_sweep(summary, out_dir / PLOT_FILE)
    payload = summary.to_dict()
    payload["rule"] = {"max_drop": max_drop, "budget_macs": budget_macs, "budget_latency_ms": budget_latency_ms}
    write_json(out_dir / SUMMARY_FILE, payload)
    return SweepResult(
        out=out_dir, teacher=teacher, results=results, pareto=pareto, recommendation=recommendation, plot=plot_path
    )


__all__ = [
    "CONFIGS_DIR",
    "PLOT_FILE",
    "RESULT_FORMAT",
    "RUNS_DIR",
    "STUDENTS_DIR",
    "SUMMARY_FILE",
    "TEACHER_FILE",
    "ConfigResult",
    "SweepResult",
    "TeacherResult",
    "cached_teacher",
    "check_one_sweep",
    "config_path",
    "read_json",
    "read_results",
    "read_teacher",
    "summarize",
    "sweep_metric",
    "write_json",
]
