"""``fpdctl prune-sweep``: which student to distil, measured rather than guessed.

For every (stacks, channels, blocks, block type) of a grid (:mod:`fpdctl.sweep.grid`) and every
initialisation (``scratch``: random weights; ``teacher``: sliced from the teacher,
:mod:`fpdctl.prune.slicing`; a block type other than the teacher's is scratch only) the sweep

1. builds the student and saves it as the fine-tune's ``--init`` checkpoint,
2. evaluates it at once (zero-shot score) on the fine-tune's own validation split,
3. runs a short FPD fine-tune from the teacher with the project's trainer
   (:class:`fpdctl.training.trainer.Trainer`; the trainer evaluates the final model),
4. records params and MACs (closed form) and the ONNX Runtime latency at batch 1
   (:mod:`fpdctl.deploy`), and writes ``configs/<key>.json`` atomically
   (:mod:`fpdctl.sweep.results` describes the directory).

The output directory is the unit of work. A config whose JSON exists is skipped, so an interrupted
sweep resumes where it stopped; ``--shard K/N`` runs every N-th config of the sorted grid starting
at the K-th, so N processes (a Slurm array) fill one directory together. ``summary.json`` and
``sweep.png`` are rebuilt from every JSON in the directory each time any process finishes, so
shards merge without a separate step. A directory holds one sweep: results made with other
settings (teacher, data, steps...) are refused rather than mixed.

Progress goes out as :class:`fpdctl.progress.Event` objects: ``sweep.teacher``, ``sweep.skip``,
``sweep.config_start`` (``done``/``total`` count the configs this call runs), ``sweep.zero_shot``,
``sweep.train_step`` (the fine-tune's ``train.step`` events, forwarded with their ``StepLog``) and
``sweep.config_end`` (a :class:`ConfigResult`).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from fpdctl.data.kinds import DataSpec
from fpdctl.errors import RuntimeFailure, UsageError
from fpdctl.models.spec import HourglassSpec
from fpdctl.progress import Event, Progress, report
from fpdctl.prune.slicing import check_stack_strategy
from fpdctl.sweep.grid import SweepItem, check_student, shard_items
from fpdctl.sweep.results import (
    RESULT_FORMAT,
    RUNS_DIR,
    STUDENTS_DIR,
    TEACHER_FILE,
    ConfigResult,
    SweepResult,
    TeacherResult,
    cached_teacher,
    check_one_sweep,
    config_path,
    read_results,
    summarize,
    write_json,
)
from fpdctl.training.config import TrainConfig, teacher_input_override, validate_config
from fpdctl.training.sources import resolve_config
from fpdctl.utils.io import check_folder_creatable

# Latency needs only a stable median, not a benchmark: a few warm-up and timed runs per model.
LATENCY_WARMUP = 3
LATENCY_ITERS = 20

# Where the sweep's fine-tune departs from the training recipe (TrainConfig's defaults, the
# official 140-epoch schedule): a short run at a higher rate with cosine decay, so that a few
# hundred steps get somewhere. Every other default is TrainConfig's own.
FINE_TUNE: dict[str, Any] = {"max_steps": 200, "lr": 1e-3, "schedule": "cosine"}


# ----------------------------------------------------------------------------------- settings
def fine_tune_config(
    teacher: str, teacher_spec: HourglassSpec, options: Mapping[str, Any] | None = None
) -> TrainConfig:
    """The sweep's fine-tune recipe, resolved the way ``fpdctl distill`` resolves its options.

    Layers, lowest first: :class:`TrainConfig`'s defaults, :data:`FINE_TUNE`, then ``options``
    (for instance the flags given on the command line; None values are ignored). ``epochs`` in
    ``options`` replaces the recipe's step count. The model is the teacher's own architecture
    until each config puts its student there, so the input size is checked against the family.

    Args:
        teacher: the teacher checkpoint.
        teacher_spec: its architecture.
        options: TrainConfig fields to set (``data``, ``input_size``, ``max_steps``...).

    Raises:
        UsageError: a bad option or combination, in one line.
    """
    given = {k: v for k, v in (options or {}).items() if v is not None}
    recipe = dict(FINE_TUNE)
    if "epochs" in given or "max_steps" in given:
        del recipe["max_steps"]  # the run's length is one setting
    return resolve_config("distill", {**recipe, "model": teacher_spec.name, **given, "teacher": teacher})


@dataclass(frozen=True)
class SweepSettings:
    """Everything that defines a sweep's numbers (shared by every shard of one sweep).

    Attributes:
        train: the fine-tune recipe (:func:`fine_tune_config`): teacher, data, input size, length,
            alpha, optimisation, seed, validation (``val_limit``, ``flip_test``), device and
            workers. Each config's fine-tune is this recipe with the config's student and
            initial checkpoint; the teacher and zero-shot evaluations use its validation split.
        importance, stack_strategy: how students are sliced.
        recalibrate_bn: re-estimate a sliced student's BN statistics over this many training
            batches before its zero-shot evaluation (0: keep the teacher's statistics).
        latency: measure ONNX Runtime latency at batch 1.
    """

    train: TrainConfig
    importance: str = "bn"
    stack_strategy: str = "first"
    recalibrate_bn: int = 0
    latency: bool = True

    @property
    def teacher(self) -> str:
        """The teacher checkpoint."""
        return str(self.train.teacher)

    def fingerprint(self, teacher_sha256: str) -> dict[str, Any]:
        """The settings a result depends on; results with another fingerprint are not comparable.

        Device and workers are left out: they change the speed, not the numbers.
        """
        train = self.train
        fingerprint = {
            "format": RESULT_FORMAT,
            "teacher_sha256": teacher_sha256,
            "data": train.data,
            "input_size": train.input_size,
            "max_steps": train.max_steps,
            "epochs": None if train.max_steps is not None else train.epochs,
            "alpha": train.alpha,
            "batch_size": train.batch_size,
            "lr": train.lr,
            "schedule": train.schedule,
            "seed": train.seed,
            "importance": self.importance,
            "stack_strategy": self.stack_strategy,
            "recalibrate_bn": self.recalibrate_bn,
            "val_limit": train.val_limit,
            "flip_test": train.flip_test,
        }
        # How the teacher (and a student sliced from it) reads pixels changes every figure; only
        # an override is recorded, so sweeps begun before it existed still resume.
        override = [
            train.teacher_input_convention,
            train.teacher_input_order,
            train.teacher_input_mean,
            train.teacher_input_std,
        ]
        if any(v is not None for v in override):
            fingerprint["teacher_input"] = override
        return fingerprint


def _train_config(settings: SweepSettings, item: SweepItem, init_path: Path | None, run_dir: Path) -> TrainConfig:
    """The trainer's options for one config's fine-tune (validated)."""
    config = settings.train.replace(
        command="distill",
        model=item.spec.name,
        init=None if init_path is None else str(init_path),
        # Only the final model is evaluated: the sweep compares end points, and the zero-shot
        # figure is taken before training on the same split.
        eval_every=0,
        out=str(run_dir),
    )
    validate_config(config)
    return config


# ----------------------------------------------------------------------------------- measuring
def validation_set(config: TrainConfig) -> Any:
    """The validation split a fine-tune with ``config`` scores on, built without a trainer."""
    from fpdctl.data.registry import build_dataset
    from fpdctl.data.subset import FirstPersons

    val_set = build_dataset(config.data_spec, "val", input_size=config.input_size, sigma=config.sigma, augment=None)
    return FirstPersons(val_set, config.val_limit) if config.val_limit else val_set


def _evaluate(model: Any, val_set: Any, config: TrainConfig) -> float:
    """The split's headline score in percent (PCKh, PCK or COCO AP)."""
    from fpdctl.evaluation import evaluate_model

    result = evaluate_model(
        model, val_set, flip_test=config.flip_test, device=config.device, num_workers=config.workers
    )
    return float(result.metric.mean)


def score_name_of(config: TrainConfig) -> str:
    """The name of the score a sweep on ``config.data`` records: PCKh, PCK or AP."""
    from fpdctl.data.kinds import data_metric
    from fpdctl.metrics import score_name

    return score_name(data_metric(config.data_spec))


def _measure_latency(checkpoint: str | os.PathLike[str], input_size: int) -> float:
    """ONNX Runtime fp32 CPU latency (median ms) at batch 1, from ``fpdctl bench``'s core."""
    from fpdctl.deploy.bench import benchmark

    result = benchmark(
        [str(checkpoint)],
        backend="ort",
        batches=(1,),
        device="cpu",
        input_size=input_size,
        warmup=LATENCY_WARMUP,
        iters=LATENCY_ITERS,
    )
    if not result.rows:
        raise RuntimeFailure(f"could not measure the latency of {checkpoint}: {'; '.join(result.skipped)}")
    return float(result.rows[0].p50_ms)


def _macs(spec: HourglassSpec, input_size: int) -> int:
    from fpdctl.profiling.analytic import analytic_cost

    return analytic_cost(spec, input_size).macs


def _final_score(metric_dict: dict[str, Any] | None, metric: str) -> float:
    """The headline score of a fine-tune's final evaluation (``TrainResult.final_eval``)."""
    from fpdctl.metrics import headline_score

    if not metric_dict or metric not in metric_dict:
        raise RuntimeFailure("the fine-tune finished without a final evaluation")
    return headline_score(metric_dict, metric)


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
    progress: Progress | None = None,
) -> SweepResult:
    """Run this shard's unfinished configs, then rebuild the summary from the whole directory.

    Args:
        settings: the sweep's settings (identical for every shard).
        items: the full grid (:func:`fpdctl.sweep.grid.build_grid`); ``shard`` selects this
            process's part.
        out: the sweep directory (created if absent).
        shard: (K, N), 1-based.
        max_drop, budget_macs, budget_latency_ms: the recommendation's rule
            (:func:`fpdctl.sweep.pareto.recommend`).
        progress: receives the ``sweep.*`` events.

    Returns:
        The merged :class:`SweepResult` (also written as ``summary.json`` and ``sweep.png``).

    Raises:
        UsageError: bad settings, or a directory holding another sweep's results.
        CheckpointError: an unreadable teacher.
    """
    from fpdctl.models.checkpoint_files import file_sha256
    from fpdctl.models.factory import create_model

    out_dir = _check_settings(settings, items, out, max_drop)
    # In its own input convention (the checkpoint's, or --teacher-input-*): the teacher's and every
    # sliced student's evaluations convert the dataset's NATIVE crops to it.
    teacher = create_model(Path(settings.teacher), input_convention=teacher_input_override(settings.train))
    for item in items:
        check_student(teacher.spec, item.spec, item.init)
    teacher.spec.check_input_size(settings.train.input_size)
    _check_teacher_joints(teacher.spec, settings.train.data_spec)
    fingerprint = settings.fingerprint(file_sha256(settings.teacher))
    mine = shard_items(items, *shard)

    check_one_sweep(out_dir, fingerprint)  # before doing any work
    finished = {r.key for r in read_results(out_dir)}
    todo = [item for item in mine if item.key not in finished]
    skipped = [item.key for item in mine if item.key in finished]
    for item in mine:
        if item.key in finished:
            report(progress, "sweep.skip", f"skip {item.key}: already finished", data=item)
    ran: list[str] = []
    pending: list[str] = []
    if todo or not (out_dir / TEACHER_FILE).is_file():
        _teacher_result(settings, teacher, fingerprint, out_dir, progress)
    for position, item in enumerate(todo, start=1):
        report(progress, "sweep.config_start", item.key, done=position, total=len(todo), data=item)
        result = _run_config(settings, item, out_dir, fingerprint, teacher, progress)
        if result is None:
            pending = [i.key for i in todo[position - 1 :]]
            break
        ran.append(item.key)
        report(
            progress,
            "sweep.config_end",
            f"{result.metric} {result.score:.2f} after {result.steps} steps ({result.train_seconds:.0f} s)",
            data=result,
        )
    summary = summarize(out_dir, max_drop=max_drop, budget_macs=budget_macs, budget_latency_ms=budget_latency_ms)
    return SweepResult(
        out=summary.out,
        teacher=summary.teacher,
        results=summary.results,
        pareto=summary.pareto,
        recommendation=summary.recommendation,
        ran=ran,
        skipped=skipped,
        pending=pending,
        plot=summary.plot,
    )


def _check_teacher_joints(teacher: HourglassSpec, data: "str | DataSpec") -> None:
    """Refuse a teacher whose heatmaps are not the data's joints (students have the teacher's)."""
    from fpdctl.data.kinds import data_joint_set

    channels = data_joint_set(data)
    if teacher.joints != channels.num_joints:
        raise UsageError(
            f"the teacher {teacher.name} predicts {teacher.joints} joints but {data} has the "
            f"{channels.num_joints} {channels.name.upper()} joints; sweep a teacher trained on that data"
        )


def _check_settings(
    settings: SweepSettings, items: Sequence[SweepItem], out: str | os.PathLike[str], max_drop: float
) -> Path:
    """Every check that needs neither the teacher nor the data; returns the sweep directory."""
    from fpdctl.prune.importance import check_importance

    check_stack_strategy(settings.stack_strategy)
    check_importance(settings.importance)
    validate_config(settings.train)
    if not items:
        raise UsageError("the sweep grid is empty")
    if settings.recalibrate_bn < 0:
        raise UsageError(
            f"`recalibrate_bn` must be 0 or more batches, got {settings.recalibrate_bn}", params="recalibrate_bn"
        )
    if max_drop < 0 or not math.isfinite(max_drop):
        raise UsageError(f"`max_drop` must be a non-negative number, got {max_drop:g}", params="max_drop")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"`out` {out_dir} exists and is not a directory", params="out")
    check_folder_creatable(out_dir)  # before the teacher's evaluation, not after
    return out_dir


def _teacher_result(
    settings: SweepSettings,
    teacher: Any,
    fingerprint: dict[str, Any],
    out_dir: Path,
    progress: Progress | None,
) -> TeacherResult:
    """The teacher's score on the sweep's validation split (cached in ``teacher.json``)."""
    from fpdctl.models.hourglass import count_parameters

    cached = cached_teacher(out_dir, fingerprint)
    if cached is not None:
        report(
            progress,
            "sweep.teacher",
            f"teacher {cached.model}: {cached.metric} {cached.score:.2f} (cached)",
            data=cached,
        )
        return cached
    # The fine-tune's own validation split, so the teacher, zero-shot and fine-tuned figures
    # share one ground truth.
    score = _evaluate(teacher, validation_set(settings.train), settings.train)
    input_size = settings.train.input_size
    result = TeacherResult(
        model=teacher.spec.name,
        params=count_parameters(teacher),
        macs=_macs(teacher.spec, input_size),
        latency_ms=_measure_latency(settings.teacher, input_size) if settings.latency else None,
        score=score,
        settings=fingerprint,
        metric=score_name_of(settings.train),
    )
    write_json(out_dir / TEACHER_FILE, result.to_dict())
    report(progress, "sweep.teacher", f"teacher {result.model}: {result.metric} {result.score:.2f}", data=result)
    return result


def initial_student(settings: SweepSettings, item: SweepItem, teacher: Any) -> Any:
    """The student a config starts from: sliced from the teacher, or random (seeded).

    Returns:
        An :class:`HourglassNet` of ``item.spec`` in eval mode, on the CPU.
    """
    import torch

    from fpdctl.models.factory import create_model
    from fpdctl.prune.slicing import slice_model

    train = settings.train
    if item.init == "teacher":
        student, _ = slice_model(
            teacher, item.spec, importance=settings.importance, stack_strategy=settings.stack_strategy
        )
        if settings.recalibrate_bn:
            from fpdctl.data.registry import build_dataset
            from fpdctl.data.transforms import AugmentConfig
            from fpdctl.prune.calibrate import recalibrate_bn

            # The training split as the fine-tune sees it (augmented), like the statistics the
            # teacher's BNs were estimated on.
            train_set = build_dataset(train.data_spec, "train", input_size=train.input_size, augment=AugmentConfig())
            recalibrate_bn(
                student,
                train_set,
                batches=settings.recalibrate_bn,
                batch_size=train.batch_size,
                device=train.device,
                seed=train.seed,
                num_workers=train.workers,
            )
            student.to("cpu")
        return student
    # The same seed as the fine-tune, so a scratch row is reproducible from its settings.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train.seed)
        student = create_model(item.spec)
    student.eval()
    return student


def _trainer(
    settings: SweepSettings, item: SweepItem, init_path: Path, run_dir: Path, progress: Progress | None
) -> Any:
    """The project's trainer for one fine-tune (construction checks everything, writes nothing);
    its ``train.step`` events go on as ``sweep.train_step``."""
    from fpdctl.training.events import TRAIN_STEP
    from fpdctl.training.trainer import Trainer

    def forward(event: Event) -> None:
        if event.kind == TRAIN_STEP:
            report(progress, "sweep.train_step", event.message, done=event.done, total=event.total, data=event.data)

    return Trainer(_train_config(settings, item, init_path, run_dir), progress=forward)


def _run_config(
    settings: SweepSettings,
    item: SweepItem,
    out_dir: Path,
    fingerprint: dict[str, Any],
    teacher: Any,
    progress: Progress | None,
) -> ConfigResult | None:
    """Build, evaluate, fine-tune, measure and record one config; None if interrupted."""
    from fpdctl.models.checkpoint import save_model
    from fpdctl.models.hourglass import count_parameters
    from fpdctl.training.run_dir import LAST_FILE

    student = initial_student(settings, item, teacher)
    init_path = out_dir / STUDENTS_DIR / f"{item.key}.safetensors"
    save_model(student, init_path, {"fpdctl.sweep.init": item.init})
    run_dir = out_dir / RUNS_DIR / item.key
    if run_dir.exists():
        # A config without its result file was interrupted: its run starts again from the
        # beginning (the folder is this sweep's own, named after the config).
        shutil.rmtree(run_dir)
    trainer = _trainer(settings, item, init_path, run_dir, progress)
    zero_shot = _evaluate(student, trainer.val_set, settings.train)
    metric = score_name_of(settings.train)
    report(progress, "sweep.zero_shot", f"zero-shot {metric} {zero_shot:.2f}; fine-tuning...", data=zero_shot)
    started = time.perf_counter()
    trained = trainer.run()
    seconds = time.perf_counter() - started
    if trained.status != "completed":
        return None
    input_size = settings.train.input_size
    result = ConfigResult(
        key=item.key,
        model=item.spec.name,
        stacks=item.stacks,
        channels=item.channels,
        blocks=item.blocks,
        init=item.init,
        params=count_parameters(student),
        macs=_macs(item.spec, input_size),
        latency_ms=_measure_latency(run_dir / LAST_FILE, input_size) if settings.latency else None,
        score_zero_shot=zero_shot,
        score=_final_score(trained.final_eval, trained.metric),
        steps=int(trained.steps),
        train_seconds=round(seconds, 3),
        checkpoint=str((run_dir / LAST_FILE).relative_to(out_dir)),
        settings=fingerprint,
        metric=metric,
        block=item.block,
    )
    write_json(config_path(out_dir, item.key), result.to_dict())
    return result


__all__ = [
    "FINE_TUNE",
    "SweepSettings",
    "fine_tune_config",
    "initial_student",
    "run_sweep",
    "validation_set",
]
