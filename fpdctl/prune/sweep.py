"""``fpdctl prune-sweep``: which student to distil, measured rather than guessed.

For every (stacks, channels, blocks) of a grid and every initialisation (``scratch``: random
weights; ``teacher``: sliced from the teacher, :mod:`fpdctl.prune.slicing`) the sweep

1. builds the student and saves it as the fine-tune's ``--init`` checkpoint,
2. evaluates it at once (zero-shot PCKh) on the fine-tune's own validation split,
3. runs a short FPD fine-tune from the teacher with the project's trainer
   (:class:`fpdctl.train.trainer.Trainer`; the trainer evaluates the final model),
4. records params and MACs (closed form) and the ONNX Runtime latency at batch 1
   (:mod:`fpdctl.deploy`), and writes ``configs/<key>.json`` atomically.

The output directory is the unit of work. A config whose JSON exists is skipped, so an interrupted
sweep resumes where it stopped; ``--shard K/N`` runs every N-th config of the sorted grid starting
at the K-th, so N processes (a Slurm array) fill one directory together. ``summary.json`` and
``sweep.png`` are rebuilt from every JSON in the directory each time any process finishes, so
shards merge without a separate step. A directory holds one sweep: results made with other
settings (teacher, data, steps...) are refused rather than mixed.

Layout of ``--out``::

    configs/<key>.json      one result per config (the record of truth)
    students/<key>.safetensors   the initial student (sliced or random) of each config
    runs/<key>/             the fine-tune's run directory (last.safetensors is the result)
    teacher.json            the teacher's own PCKh, params, MACs, latency
    summary.json, sweep.png
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from fpdctl.errors import DataError, RuntimeFailure, UsageError
from fpdctl.models.spec import HourglassSpec
from fpdctl.prune.pareto import Recommendation, pareto_front, recommend
from fpdctl.prune.slicing import check_stack_strategy, check_target
from fpdctl.utils.io import atomic_write_text, check_folder_creatable

INITS: tuple[str, ...] = ("scratch", "teacher")
CONFIGS_DIR = "configs"
STUDENTS_DIR = "students"
RUNS_DIR = "runs"
TEACHER_FILE = "teacher.json"
SUMMARY_FILE = "summary.json"
PLOT_FILE = "sweep.png"
# Latency needs only a stable median, not a benchmark: a few warm-up and timed runs per model.
LATENCY_WARMUP = 3
LATENCY_ITERS = 20
# Bumped when the meaning of a result file changes, so old directories are refused, not misread.
RESULT_FORMAT = 1


# ----------------------------------------------------------------------------------- the grid
@dataclass(frozen=True, order=True)
class SweepItem:
    """One row of the grid: a student architecture and how its weights start.

    Ordering (the "sorted grid" shards split) is by stacks, channels, blocks, then init.
    """

    stacks: int
    channels: int
    blocks: int
    init: str
    joints: int = 16
    depth: int = 4

    @property
    def spec(self) -> HourglassSpec:
        return HourglassSpec(self.stacks, self.channels, self.blocks, self.joints, self.depth)

    @property
    def key(self) -> str:
        """File-name key, e.g. ``hg2x64-teacher``."""
        return f"{self.spec.name}-{self.init}"


def parse_inits(text: str) -> tuple[str, ...]:
    """``scratch``, ``teacher`` or ``both`` (also a comma list) -> the inits to run."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UsageError(f"--init must be scratch, teacher or both, got '{text}'")
    out: list[str] = []
    for part in parts:
        names = INITS if part == "both" else (part,)
        for name in names:
            if name not in INITS:
                raise UsageError(f"--init must be scratch, teacher or both, got '{text}'")
            if name not in out:
                out.append(name)
    return tuple(out)


def build_grid(
    teacher: HourglassSpec,
    stacks: Iterable[int],
    channels: Iterable[int],
    blocks: Iterable[int],
    inits: Iterable[str],
) -> list[SweepItem]:
    """Every (stacks, channels, blocks, init), sorted and without duplicates.

    Students have the teacher's joints and depth, and are never larger than the teacher in any
    dimension (a sliced one cannot be; a scratch one would not be a student).

    Raises:
        UsageError: an empty grid, an invalid spec, or a member larger than the teacher.
    """
    stacks, channels, blocks, inits = list(stacks), list(channels), list(blocks), list(inits)
    for option, values in (("--stacks", stacks), ("--channels", channels), ("--blocks", blocks), ("--init", inits)):
        if not values:
            raise UsageError(f"the sweep grid is empty: {option} gives no values")
    items = set()
    for s in stacks:
        for c in channels:
            for b in blocks:
                spec = HourglassSpec(s, c, b, teacher.joints, teacher.depth)
                check_target(teacher, spec)
                for init in inits:
                    if init not in INITS:
                        raise UsageError(f"--init must be scratch, teacher or both, got '{init}'")
                    items.add(SweepItem(s, c, b, init, teacher.joints, teacher.depth))
    return sorted(items)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"K/N"`` -> (K, N), 1 <= K <= N; None -> (1, 1).

    Raises:
        UsageError: anything else, in one line.
    """
    if text is None:
        return 1, 1
    left, sep, right = str(text).strip().partition("/")
    try:
        index, count = int(left), int(right)
    except ValueError:
        index = count = 0
        sep = ""
    if not sep or count < 1:
        raise UsageError(f"--shard must be K/N with 1 <= K <= N (e.g. 2/4), got '{text}'")
    if not 1 <= index <= count:
        raise UsageError(f"--shard {text}: K must be between 1 and {count}")
    return index, count


def shard_items(items: Sequence[SweepItem], index: int, count: int) -> list[SweepItem]:
    """The K-th of N round-robin slices of the sorted grid (items K-1, K-1+N, K-1+2N...)."""
    if not 1 <= index <= count:
        raise UsageError(f"--shard {index}/{count}: K must be between 1 and {count}")
    ordered = sorted(items)
    return [item for i, item in enumerate(ordered) if i % count == index - 1]


# ----------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SweepSettings:
    """Everything that defines a sweep's numbers (shared by every shard of one sweep).

    Attributes:
        teacher: teacher checkpoint path (any format ``load_model`` reads).
        data: ``synthetic[:K=V,...]``, ``mpii:PATH`` or ``lsp:PATH``.
        input_size: network input side in px.
        max_steps: fine-tune length in optimizer steps (wins over ``epochs``).
        epochs: fine-tune length in epochs, when ``max_steps`` is None.
        alpha: weight of the distillation term.
        batch_size, lr, schedule: the fine-tune's optimisation.
        seed: seeds the scratch weights and the fine-tune.
        importance, stack_strategy: how students are sliced.
        recalibrate_bn: re-estimate a sliced student's BN statistics over this many training
            batches before its zero-shot evaluation (0: keep the teacher's statistics).
        val_limit: evaluate on the first this many validation persons (None: all).
        flip_test: evaluate with the flip test.
        latency: measure ONNX Runtime latency at batch 1.
        device, workers: where the fine-tune runs (not part of the fingerprint).
    """

    teacher: str
    data: str = "synthetic"
    input_size: int = 256
    max_steps: int | None = 200
    epochs: int | None = None
    alpha: float = 0.5
    batch_size: int = 16
    lr: float = 1e-3
    schedule: str = "cosine"
    seed: int = 0
    importance: str = "bn"
    stack_strategy: str = "first"
    recalibrate_bn: int = 0
    val_limit: int | None = None
    flip_test: bool = True
    latency: bool = True
    device: str = "auto"
    workers: int = 2

    def fingerprint(self, teacher_sha256: str) -> dict[str, Any]:
        """The settings a result depends on; results with another fingerprint are not comparable."""
        return {
            "format": RESULT_FORMAT,
            "teacher_sha256": teacher_sha256,
            "data": self.data,
            "input_size": self.input_size,
            "max_steps": self.max_steps,
            "epochs": None if self.max_steps is not None else self.epochs,
            "alpha": self.alpha,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "schedule": self.schedule,
            "seed": self.seed,
            "importance": self.importance,
            "stack_strategy": self.stack_strategy,
            "recalibrate_bn": self.recalibrate_bn,
            "val_limit": self.val_limit,
            "flip_test": self.flip_test,
        }


def _train_config(settings: SweepSettings, item: SweepItem, init_path: Path | None, run_dir: Path) -> Any:
    """The trainer's options for one config's fine-tune (validated)."""
    from fpdctl.train.config import TrainConfig, validate_config

    length: dict[str, Any] = (
        {"max_steps": settings.max_steps} if settings.max_steps is not None else {"epochs": settings.epochs}
    )
    config = TrainConfig(
        command="distill",
        model=item.spec.name,
        teacher=str(settings.teacher),
        alpha=settings.alpha,
        init=None if init_path is None else str(init_path),
        data=settings.data,
        input_size=settings.input_size,
        batch_size=settings.batch_size,
        lr=settings.lr,
        schedule=settings.schedule,
        seed=settings.seed,
        device=settings.device,
        workers=settings.workers,
        # Only the final model is evaluated: the sweep compares end points, and the zero-shot
        # figure is taken before training on the same split.
        eval_every=0,
        val_limit=settings.val_limit,
        flip_test=settings.flip_test,
        out=str(run_dir),
        **length,
    )
    validate_config(config)
    return config


# ----------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ConfigResult:
    """The measured outcome of one grid row (one ``configs/<key>.json``).

    Attributes:
        key: ``{spec name}-{init}``; model: the spec name; stacks, channels, blocks, init: the row.
        params: parameters; macs: MACs per image at ``input_size``.
        latency_ms: ONNX Runtime CPU latency at batch 1 (median ms), None when not measured.
        pckh_zero_shot: PCKh (percent) of the initial student, before any training.
        pckh: PCKh (percent) after the fine-tune.
        steps: optimizer steps of the fine-tune; train_seconds: its wall time.
        checkpoint: the fine-tuned student, relative to the sweep directory.
        settings: the sweep fingerprint the row was made with.
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
    pckh_zero_shot: float
    pckh: float
    steps: int
    train_seconds: float
    checkpoint: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "model": self.model, "stacks": self.stacks, "channels": self.channels,
            "blocks": self.blocks, "init": self.init, "params": self.params, "macs": self.macs,
            "latency_ms": self.latency_ms, "pckh_zero_shot": self.pckh_zero_shot, "pckh": self.pckh,
            "steps": self.steps, "train_seconds": self.train_seconds, "checkpoint": self.checkpoint,
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfigResult:
        names = [f for f in cls.__dataclass_fields__]
        missing = [n for n in names if n not in data]
        if missing:
            raise KeyError(missing[0])
        return cls(**{n: data[n] for n in names})


@dataclass(frozen=True)
class TeacherResult:
    """The teacher measured like the students (``teacher.json``)."""

    model: str
    params: int
    macs: int
    latency_ms: float | None
    pckh: float
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "params": self.params, "macs": self.macs,
                "latency_ms": self.latency_ms, "pckh": self.pckh, "settings": self.settings}


@dataclass(frozen=True)
class SweepResult:
    """The merged state of a sweep directory (``summary.json``).

    Attributes:
        out: the sweep directory.
        teacher: the teacher's figures (None if no process has measured it yet).
        results: every finished row, sorted by the grid order.
        pareto: cost name ("macs", "latency_ms") -> keys on the front of PCKh against it.
        recommendation: the pick and its reason.
        ran, skipped: keys this invocation ran, and found already finished.
        pending: keys of this invocation's shard that are not finished (interrupted runs).
        plot: the PNG, None when there was nothing to plot.
    """

    out: Path
    teacher: TeacherResult | None
    results: list[ConfigResult]
    pareto: dict[str, list[str]]
    recommendation: Recommendation
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    plot: Path | None = None

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
            "pckh": None if pick is None else pick.pckh,
            "macs": None if pick is None else pick.macs,
            "latency_ms": None if pick is None else pick.latency_ms,
        }
        return {
            "teacher": None if self.teacher is None else self.teacher.to_dict(),
            "results": [r.to_dict() for r in self.results],
            "pareto": self.pareto,
            "recommendation": recommendation,
        }


class SweepCallbacks:
    """Progress events of :func:`run_sweep` (no-ops here; the CLI prints them)."""

    def on_teacher(self, teacher: TeacherResult, cached: bool) -> None: ...

    def on_skip(self, item: SweepItem) -> None: ...

    def on_config_start(self, item: SweepItem, position: int, total: int) -> None: ...

    def on_zero_shot(self, item: SweepItem, pckh: float) -> None: ...

    def on_train_step(self, item: SweepItem, log: Any) -> None:
        """A fine-tune's logged step (:class:`fpdctl.train.trainer.StepLog`)."""

    def on_config_end(self, result: ConfigResult) -> None: ...


# ----------------------------------------------------------------------------------- files
def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read sweep result {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"sweep result {path} is not a JSON object")
    return data


def read_results(out: str | os.PathLike[str]) -> list[ConfigResult]:
    """Every ``configs/*.json`` of a sweep directory, in grid order.

    Raises:
        DataError: an unreadable or malformed result file (named).
    """
    folder = Path(out) / CONFIGS_DIR
    results = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = _read_json(path)
        try:
            results.append(ConfigResult.from_dict(data))
        except (KeyError, TypeError) as exc:
            raise DataError(f"sweep result {path} lacks the field {exc}") from None
    results.sort(key=lambda r: (r.stacks, r.channels, r.blocks, r.init))
    return results


def _check_same_sweep(found: dict[str, Any], wanted: dict[str, Any], path: Path) -> None:
    for name, value in wanted.items():
        if found.get(name) != value:
            raise UsageError(
                f"{path} was made with {name}={found.get(name)!r}, this sweep has {value!r}; "
                "a sweep directory holds one sweep: use another --out"
            )


def _measure_latency(checkpoint: str | os.PathLike[str], input_size: int) -> float:
    """ONNX Runtime fp32 CPU latency (median ms) at batch 1, from ``fpdctl bench``'s core."""
    from fpdctl.deploy.bench import benchmark

    result = benchmark([str(checkpoint)], backend="ort", batches=(1,), device="cpu",
                       input_size=input_size, warmup=LATENCY_WARMUP, iters=LATENCY_ITERS)
    if not result.rows:
        raise RuntimeFailure(f"could not measure the latency of {checkpoint}: {'; '.join(result.skipped)}")
    return float(result.rows[0].p50_ms)


def _macs(spec: HourglassSpec, input_size: int) -> int:
    from fpdctl.profiling.analytic import analytic_cost

    return analytic_cost(spec, input_size).macs


def _pckh_of(metric_dict: dict[str, Any] | None, metric: str) -> float:
    if not metric_dict or metric not in metric_dict:
        raise RuntimeFailure("the fine-tune finished without a final evaluation")
    return float(metric_dict[metric]["mean"])


# ----------------------------------------------------------------------------------- running
def run_sweep(
    settings: SweepSettings,
    items: Sequence[SweepItem],
    out: str | os.PathLike[str],
    *,
    shard: tuple[int, int] = (1, 1),
    max_drop: float = 1.0,
    budget_macs: float | None = None,
    budget_latency_ms: float | None = None,
    callbacks: SweepCallbacks | None = None,
) -> SweepResult:
    """Run this shard's unfinished configs, then rebuild the summary from the whole directory.

    Args:
        settings: the sweep's settings (identical for every shard).
        items: the full grid (:func:`build_grid`); ``shard`` selects this process's part.
        out: the sweep directory (created if absent).
        shard: (K, N), 1-based.
        max_drop, budget_macs, budget_latency_ms: the recommendation's rule (:func:`recommend`).
        callbacks: progress events.

    Returns:
        The merged :class:`SweepResult` (also written as ``summary.json`` and ``sweep.png``).

    Raises:
        UsageError: bad settings, or a directory holding another sweep's results.
        CheckpointError: an unreadable teacher.
    """
    from fpdctl.models.checkpoint import file_sha256, load_model
    from fpdctl.prune.importance import check_importance

    events = callbacks or SweepCallbacks()
    check_stack_strategy(settings.stack_strategy)
    check_importance(settings.importance)
    if settings.max_steps is None and settings.epochs is None:
        raise UsageError("give --max-steps or --epochs")
    if not items:
        raise UsageError("the sweep grid is empty")
    if settings.recalibrate_bn < 0:
        raise UsageError(f"--recalibrate-bn must be 0 or more batches, got {settings.recalibrate_bn}")
    if max_drop < 0 or not math.isfinite(max_drop):
        raise UsageError(f"--max-drop must be a non-negative number, got {max_drop:g}")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} exists and is not a directory")
    check_folder_creatable(out_dir)  # before the teacher's evaluation, not after
    teacher = load_model(settings.teacher)
    for item in items:
        check_target(teacher.spec, item.spec)
    teacher.spec.check_input_size(settings.input_size)
    fingerprint = settings.fingerprint(file_sha256(settings.teacher))
    mine = shard_items(items, *shard)

    # Refuse a directory of another sweep before doing any work.
    for path in sorted((out_dir / CONFIGS_DIR).glob("*.json")) if (out_dir / CONFIGS_DIR).is_dir() else []:
        _check_same_sweep(_read_json(path).get("settings", {}), fingerprint, path)
    finished = {r.key for r in read_results(out_dir)}

    todo = [item for item in mine if item.key not in finished]
    skipped = [item.key for item in mine if item.key in finished]
    for item in mine:
        if item.key in finished:
            events.on_skip(item)
    ran: list[str] = []
    pending: list[str] = []
    if todo or not (out_dir / TEACHER_FILE).is_file():
        _teacher_result(settings, teacher, fingerprint, out_dir, events, todo[0] if todo else items[0])
    for position, item in enumerate(todo, start=1):
        events.on_config_start(item, position, len(todo))
        result = _run_config(settings, item, out_dir, fingerprint, teacher, events)
        if result is None:
            pending = [i.key for i in todo[position - 1:]]
            break
        ran.append(item.key)
        events.on_config_end(result)
    summary = summarize(out_dir, max_drop=max_drop, budget_macs=budget_macs,
                        budget_latency_ms=budget_latency_ms)
    return SweepResult(
        out=summary.out, teacher=summary.teacher, results=summary.results, pareto=summary.pareto,
        recommendation=summary.recommendation, ran=ran, skipped=skipped, pending=pending, plot=summary.plot,
    )


def _trainer(
    settings: SweepSettings, item: SweepItem, init_path: Path | None, run_dir: Path,
    events: SweepCallbacks | None = None,
) -> Any:
    """The project's trainer for one fine-tune; construction checks everything, writes nothing."""
    from fpdctl.train.trainer import TrainCallbacks, Trainer

    class _Forward(TrainCallbacks):
        def on_step(self, log: Any) -> None:
            if events is not None:
                events.on_train_step(item, log)

    return Trainer(_train_config(settings, item, init_path, run_dir), callbacks=_Forward())


def _evaluate(model: Any, val_set: Any, settings: SweepSettings) -> float:
    from fpdctl.evaluate import evaluate_model

    result = evaluate_model(model, val_set, flip=settings.flip_test, device=settings.device,
                            num_workers=settings.workers)
    return float(result.metric.mean)


def _teacher_result(
    settings: SweepSettings, teacher: Any, fingerprint: dict[str, Any], out_dir: Path,
    events: SweepCallbacks, probe: SweepItem,
) -> TeacherResult:
    """The teacher's PCKh on the sweep's validation split (cached in ``teacher.json``)."""
    from fpdctl.models.hourglass import count_parameters

    path = out_dir / TEACHER_FILE
    if path.is_file():
        data = _read_json(path)
        if data.get("settings") == fingerprint:
            try:
                cached = TeacherResult(**{k: data[k] for k in TeacherResult.__dataclass_fields__})
            except KeyError:
                pass
            else:
                events.on_teacher(cached, True)
                return cached
    # The fine-tune's own validation split (a trainer built for one config; it writes nothing),
    # so the teacher, zero-shot and fine-tuned figures share one ground truth.
    val_set = _trainer(settings, probe, None, out_dir / RUNS_DIR / ".teacher-probe").val_set
    pckh = _evaluate(teacher, val_set, settings)
    latency = _measure_latency(settings.teacher, settings.input_size) if settings.latency else None
    result = TeacherResult(
        model=teacher.spec.name,
        params=count_parameters(teacher),
        macs=_macs(teacher.spec, settings.input_size),
        latency_ms=latency,
        pckh=pckh,
        settings=fingerprint,
    )
    atomic_write_text(path, json.dumps(result.to_dict(), indent=2) + "\n")
    events.on_teacher(result, False)
    return result


def initial_student(settings: SweepSettings, item: SweepItem, teacher: Any) -> Any:
    """The student a config starts from: sliced from the teacher, or random (seeded).

    Returns:
        An :class:`HourglassNet` of ``item.spec`` in eval mode, on the CPU.
    """
    import torch

    from fpdctl.models.hourglass import create_model
    from fpdctl.prune.slicing import slice_model

    if item.init == "teacher":
        student, _ = slice_model(teacher, item.spec, importance=settings.importance,
                                 stack_strategy=settings.stack_strategy)
        if settings.recalibrate_bn:
            from fpdctl.data.registry import build_dataset
            from fpdctl.data.transforms import AugmentConfig
            from fpdctl.prune.calibrate import recalibrate_bn

            # The training split as the fine-tune sees it (augmented), like the statistics the
            # teacher's BNs were estimated on.
            train_set = build_dataset(settings.data, "train", input_size=settings.input_size,
                                      augment=AugmentConfig())
            recalibrate_bn(student, train_set, batches=settings.recalibrate_bn,
                           batch_size=settings.batch_size, device=settings.device, seed=settings.seed,
                           num_workers=settings.workers)
            student.to("cpu")
        return student
    # The same seed as the fine-tune, so a scratch row is reproducible from its settings.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        student = create_model(item.spec)
    student.eval()
    return student


def _run_config(
    settings: SweepSettings, item: SweepItem, out_dir: Path, fingerprint: dict[str, Any],
    teacher: Any, events: SweepCallbacks,
) -> ConfigResult | None:
    """Build, evaluate, fine-tune, measure and record one config; None if interrupted."""
    from fpdctl.models.checkpoint import save_model
    from fpdctl.models.hourglass import count_parameters
    from fpdctl.train.trainer import LAST_FILE

    student = initial_student(settings, item, teacher)
    init_path = out_dir / STUDENTS_DIR / f"{item.key}.safetensors"
    save_model(student, init_path, {"fpdctl.sweep.init": item.init})
    run_dir = out_dir / RUNS_DIR / item.key
    if run_dir.exists():
        # A config without its result file was interrupted: its run starts again from the
        # beginning (the folder is this sweep's own, named after the config).
        shutil.rmtree(run_dir)
    trainer = _trainer(settings, item, init_path, run_dir, events)
    zero_shot = _evaluate(student, trainer.val_set, settings)
    events.on_zero_shot(item, zero_shot)
    started = time.perf_counter()
    trained = trainer.run()
    seconds = time.perf_counter() - started
    if trained.status != "completed":
        return None
    latency = _measure_latency(run_dir / LAST_FILE, settings.input_size) if settings.latency else None
    result = ConfigResult(
        key=item.key,
        model=item.spec.name,
        stacks=item.stacks,
        channels=item.channels,
        blocks=item.blocks,
        init=item.init,
        params=count_parameters(student),
        macs=_macs(item.spec, settings.input_size),
        latency_ms=latency,
        pckh_zero_shot=zero_shot,
        pckh=_pckh_of(trained.final_eval, trained.metric),
        steps=int(trained.steps),
        train_seconds=round(seconds, 3),
        checkpoint=str((run_dir / LAST_FILE).relative_to(out_dir)),
        settings=fingerprint,
    )
    atomic_write_text(out_dir / CONFIGS_DIR / f"{item.key}.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def read_teacher(out: str | os.PathLike[str]) -> TeacherResult | None:
    """``teacher.json`` of a sweep directory, None when absent."""
    path = Path(out) / TEACHER_FILE
    if not path.is_file():
        return None
    data = _read_json(path)
    try:
        return TeacherResult(**{k: data[k] for k in TeacherResult.__dataclass_fields__})
    except KeyError as exc:
        raise DataError(f"{path} lacks the field {exc}") from None


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
        front = pareto_front([r[cost] for r in rows], [r["pckh"] for r in rows])
        pareto[cost] = [rows[i]["key"] for i in front]
    recommendation = recommend(
        rows, None if teacher is None else teacher.pckh, max_drop=max_drop,
        budget_macs=budget_macs, budget_latency_ms=budget_latency_ms,
    )
    summary = SweepResult(out=out_dir, teacher=teacher, results=results, pareto=pareto,
                          recommendation=recommendation)
    plot_path: Path | None = None
    if plot and results:
        from fpdctl.prune.plot import plot_sweep

        plot_path = plot_sweep(summary, out_dir / PLOT_FILE)
    payload = summary.to_dict()
    payload["rule"] = {"max_drop": max_drop, "budget_macs": budget_macs, "budget_latency_ms": budget_latency_ms}
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(payload, indent=2) + "\n")
    return SweepResult(out=out_dir, teacher=teacher, results=results, pareto=pareto,
                       recommendation=recommendation, plot=plot_path)
