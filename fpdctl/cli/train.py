"""``fpdctl train`` and ``fpdctl distill``: parse options, run the trainer, render its events.

Everything heavy (torch, the trainer, the data) is imported inside the commands so that
``fpdctl --help`` stays fast; the event kinds and payloads (:mod:`fpdctl.train.events`) are
torch-free.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from fpdctl.cli.options import (
    TEACHER_INPUT_CONVENTION,
    TEACHER_INPUT_MEAN,
    TEACHER_INPUT_ORDER,
    TEACHER_INPUT_STD,
)
from fpdctl.data.transforms import DEFAULT_AUGMENT_STYLE
from fpdctl.errors import UsageError
from fpdctl.models.spec import DEFAULT_INPUT_SIZE, STUDENT_MODEL, TEACHER_MODEL
from fpdctl.progress import Event
from fpdctl.train.config import DEFAULT_BATCH_SIZE
from fpdctl.train.events import TRAIN_EVAL, TRAIN_SKIPPED, TRAIN_START, TRAIN_STEP
from fpdctl.data.unlabeled import DEFAULT_UNLABELED_RATIO
from fpdctl.train.loss import DEFAULT_ALPHA, DEFAULT_ALPHA_SCHEDULE, DEFAULT_KD_LOSS, DEFAULT_KD_TEMPERATURE

if TYPE_CHECKING:
    from fpdctl.train.events import EvalLog, RunInfo, SkippedLog, StepLog, TrainResult


# --------------------------------------------------------------------------- shared options
_DATA = typer.Option(None, "--data", help="synthetic[:K=V,...], mpii:PATH, lsp:PATH or coco:PATH (default: synthetic; COCO or "
                    "synthetic:layout=coco: a model name without a j suffix gets 17 joints).")
_INPUT = typer.Option(None, "--input-size", help=f"Input side in px; heatmaps are a quarter (default: {DEFAULT_INPUT_SIZE}).")
_EPOCHS = typer.Option(None, "--epochs", help="Run length in epochs (default: 140).")
_MAX_STEPS = typer.Option(None, "--max-steps", help="Run length in optimizer steps (instead of --epochs).")
_BATCH = typer.Option(
    None, "--batch-size",
    help=f"Images per step per process; the global batch is this x the number of processes "
    f"(torchrun --nproc_per_node N) (default: {DEFAULT_BATCH_SIZE}, the official recipe's batch on one GPU).",
)
_LR = typer.Option(None, "--lr", help="Base learning rate (default: 2.5e-4).")
_OPT = typer.Option(None, "--optimizer", help="adam, rmsprop or sgd (default: adam).")
_SCHEDULE = typer.Option(
    None, "--schedule", help="step:E1,E2 (x0.1 at those epochs), cosine or constant (default: step:90,120)."
)
_DEVICE = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps (default: auto).")
_PRECISION = typer.Option(
    None, "--precision",
    help="auto (CUDA: bf16 on GPUs with native bf16, compute capability 8.0+, else fp16; CPU: bf16 "
    "with native bf16 instructions, else fp32), bf16, fp16 or fp32 (default: auto).",
)
_WORKERS = typer.Option(
    None, "--workers",
    help="DataLoader workers per process, kept for the whole run (default: the free cores, shared "
    "among this node's processes, less one, at most 16).",
)
_DETERMINISTIC = typer.Option(
    None, "--deterministic/--no-deterministic",
    help="Deterministic algorithms (and no cuDNN benchmark): a CUDA run repeats and resumes bit "
    "for bit, somewhat slower; CPU runs are bit for bit either way (default: off).",
)
_SEED = typer.Option(None, "--seed", help="Seed of weights, data order and augmentation (default: 0).")
_OUT = typer.Option(None, "--out", help="Run directory (created; must not exist unless --overwrite).")
_RESUME = typer.Option(None, "--resume", help="Continue the run in RUN_DIR exactly where it stopped.")
_OVERWRITE = typer.Option(False, "--overwrite", help="Replace the files of an existing run directory.")
_CONFIG = typer.Option(None, "--config", help="YAML or TOML file of options; flags override it.")
_PRESET = typer.Option(None, "--preset", help="A bundle of defaults: quick (small, fast demo).")
_EVAL_EVERY = typer.Option(
    None, "--eval-every", help="Validate every N steps; 0 only at the end (default: once per epoch)."
)
_LOG_EVERY = typer.Option(None, "--log-every", help="Log a metrics row every N steps (default: 50).")
_SAVE_EVERY = typer.Option(
    None, "--save-every", help="Checkpoint every N steps; 0 only at the end (default: at each validation, else once per epoch)."
)
_VAL_LIMIT = typer.Option(None, "--val-limit", help="Validate on the first N persons only.")
_COMPILE = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (default: off).")
_CHANNELS_LAST = typer.Option(
    None, "--channels-last/--no-channels-last", help="Channels-last memory format (default: on)."
)
_FLIP = typer.Option(None, "--flip-test/--no-flip-test", help="Flip-test evaluation (default: on).")
_AUGMENT = typer.Option(None, "--augment/--no-augment", help="Training augmentation (default: on).")
_AUGMENT_STYLE = typer.Option(
    None, "--augment-style",
    help="official: the official FPD draws (scale clip(N(1,0.25),0.75,1.25), rotation "
    "clip(N(0,30),-60,60) with p 0.6, flip 0.5, no colour jitter); uniform: uniform scale and "
    f"rotation plus colour jitter, fpdctl's earlier recipe (default: {DEFAULT_AUGMENT_STYLE}).",
)
_WD = typer.Option(None, "--weight-decay", help="L2 weight decay (default: 0).")
_SIGMA = typer.Option(None, "--sigma", help="Target Gaussian sigma in heatmap px (default: 2).")


def _given(**options: Any) -> dict[str, Any]:
    """The options actually given on the command line (Typer passes None for the others)."""
    return {k: v for k, v in options.items() if v is not None}


def _is_rank0() -> bool:
    return os.environ.get("RANK", "0") == "0"


# --------------------------------------------------------------------------- rendering
def _fmt_seconds(seconds: float) -> str:
    if not seconds or seconds != seconds or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _step_text(log: "StepLog") -> str:
    kd = f" kd {log.kd_loss:.5f}" if log.kd_loss is not None else ""
    return (
        f"step {log.step}/{log.total_steps} epoch {log.epoch:.2f} loss {log.loss:.5f} "
        f"(gt {log.gt_loss:.5f}{kd}) lr {log.lr:.2e} {log.img_per_s:.1f} img/s eta {_fmt_seconds(log.eta_s)}"
    )


class _PlainReporter:
    """A :data:`~fpdctl.progress.Progress` that prints one line per start, step and evaluation,
    for logs and pipes."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False, soft_wrap=True)

    def __call__(self, event: Event) -> None:
        if event.kind == TRAIN_START:
            self.on_start(event.data)
        elif event.kind == TRAIN_STEP:
            self.on_step(event.data)
        elif event.kind == TRAIN_EVAL:
            self.on_eval(event.data)
        elif event.kind == TRAIN_SKIPPED:
            self.on_skipped(event.data)

    def on_skipped(self, log: "SkippedLog") -> None:
        """One warning line per unreadable image, the first time a step meets it (stderr)."""
        for error in log.new:
            typer.echo(
                f"warning: step {log.step}: skipped an image that cannot be read ({error}); "
                f"{log.total} so far, listed in {log.file}",
                err=True,
            )

    def on_start(self, info: "RunInfo") -> None:
        who = f"distill {info.teacher} -> {info.model}" if info.teacher else f"train {info.model}"
        start = f", resuming at step {info.start_step}" if info.start_step else ""
        if info.restarted:
            start = ", starting over: the run stopped before its first checkpoint"
        self.console.print(
            f"{who} ({info.parameters:,} parameters) on {info.device} {info.precision}, "
            f"{info.world_size} process(es): {info.total_steps} steps "
            f"({info.steps_per_epoch} per epoch, {info.train_size} train / {info.val_size} val persons)"
            f"{start} -> {info.run_dir}"
        )

    def on_step(self, log: "StepLog") -> None:
        self.console.print(_step_text(log))

    def on_eval(self, log: "EvalLog") -> None:
        best = " (best)" if log.best else ""
        self.console.print(
            f"eval step {log.step}: {_label(log.metric)} {log.value:.2f}{best} [{log.seconds:.1f}s]"
        )

    def close(self) -> None:
        pass


class _ProgressReporter(_PlainReporter):
    """A Rich progress bar with loss, img/s and ETA; evaluations print above it."""

    def __init__(self) -> None:
        super().__init__()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} img/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task: Any = None

    def on_start(self, info: "RunInfo") -> None:
        super().on_start(info)
        self.progress.start()
        self.task = self.progress.add_task(
            info.teacher and "distill" or "train", total=info.total_steps, completed=info.start_step,
            loss="-", speed="-",
        )

    def on_step(self, log: "StepLog") -> None:
        if self.task is not None:
            self.progress.update(
                self.task, completed=log.step, loss=f"{log.loss:.5f}", speed=f"{log.img_per_s:.1f}"
            )

    def on_eval(self, log: "EvalLog") -> None:
        best = " (best)" if log.best else ""
        self.progress.console.print(f"eval step {log.step}: {_label(log.metric)} {log.value:.2f}{best}")

    def close(self) -> None:
        self.progress.stop()


def _label(metric: str) -> str:
    """How a validation metric's headline reads: PCKH, PCK, or AP for COCO's OKS."""
    from fpdctl.metrics import score_name

    return score_name(metric).upper()


def _make_reporter() -> _PlainReporter:
    """A progress bar on a terminal, plain lines otherwise."""
    return _ProgressReporter() if sys.stdout.isatty() else _PlainReporter()


def _render_result(result: "TrainResult") -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    if result.final_eval:
        metric = result.metric
        table = Table(title=f"final evaluation ({_label(metric)}, validation, {result.steps} steps)")
        groups = result.final_eval.get(metric, {})
        for name in groups:
            table.add_column(name if name[:1].isupper() else name.replace("_", " ").title(), justify="right")
        table.add_row(*[("-" if v is None else f"{v:.2f}") for v in groups.values()])
        console.print(table)
    if result.best_metric is not None:
        console.print(
            f"best {_label(result.metric)} {result.best_metric:.2f} at step {result.best_step} "
            f"-> {result.run_dir / 'best.safetensors'}"
        )
    import math

    speed = "no steps left to train" if math.isnan(result.img_per_s) else f"{result.img_per_s:.1f} img/s"
    console.print(f"done in {_fmt_seconds(result.seconds)} ({speed}); run directory: {result.run_dir}")
    if result.skipped_images:
        from fpdctl.train.skipped import SKIPPED_FILE

        typer.echo(
            f"warning: {result.skipped_images} image(s) could not be read and were skipped; "
            f"listed in {result.run_dir / SKIPPED_FILE}",
            err=True,
        )


# --------------------------------------------------------------------------- the commands
def _run(command: str, given: dict[str, Any], *, out: Optional[Path], resume: Optional[Path],
         overwrite: bool, config_file: Optional[Path]) -> None:
    from fpdctl.train.config import check_resume_changes, resolve_config
    from fpdctl.train.run_dir import load_run_config
    from fpdctl.train.trainer import Trainer

    if resume is not None:
        if overwrite:
            raise UsageError("--resume and --overwrite cannot be used together")
        if config_file is not None:
            raise UsageError("--config cannot be used with --resume (the run keeps its options)")
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise UsageError(f"--out {out} differs from --resume {resume}; give only --resume")
        saved = load_run_config(resume)
        if saved.command != command:
            raise UsageError(f"{resume} is a `fpdctl {saved.command}` run; resume it with that command")
        config = check_resume_changes(saved, {**given, "out": str(resume)})
    else:
        if out is None:
            raise UsageError("--out RUN_DIR is required (or --resume RUN_DIR)")
        config = resolve_config(command, {**given, "out": str(out)}, config_file=config_file)

    rank0 = _is_rank0()
    reporter = _make_reporter() if rank0 else None
    # Construction validates the teacher, the data and the run directory and creates nothing.
    trainer = Trainer(config, progress=reporter, resume=resume is not None, overwrite=overwrite)
    if rank0:
        for warning in trainer.warnings:
            typer.echo(f"warning: {warning}", err=True)
    try:
        result = trainer.run()
    finally:
        if reporter is not None:
            reporter.close()
    if rank0:
        if result.status != "completed":
            typer.echo(
                f"interrupted at step {result.steps}/{result.total_steps}; checkpoint saved; "
                f"continue with: fpdctl {command} --resume {result.run_dir}",
                err=True,
            )
        else:
            _render_result(result)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def train_command(
    model: Optional[str] = typer.Option(None, "--model", help=f"Model to train, e.g. hg2x64b2 (default: {TEACHER_MODEL})."),
    init: Optional[str] = typer.Option(None, "--init", help="Checkpoint to initialise the model from."),
    data: Optional[str] = _DATA,
    input_size: Optional[int] = _INPUT,
    epochs: Optional[int] = _EPOCHS,
    max_steps: Optional[int] = _MAX_STEPS,
    batch_size: Optional[int] = _BATCH,
    lr: Optional[float] = _LR,
    optimizer: Optional[str] = _OPT,
    schedule: Optional[str] = _SCHEDULE,
    weight_decay: Optional[float] = _WD,
    sigma: Optional[float] = _SIGMA,
    device: Optional[str] = _DEVICE,
    precision: Optional[str] = _PRECISION,
    workers: Optional[int] = _WORKERS,
    seed: Optional[int] = _SEED,
    out: Optional[Path] = _OUT,
    resume: Optional[Path] = _RESUME,
    overwrite: bool = _OVERWRITE,
    config: Optional[Path] = _CONFIG,
    preset: Optional[str] = _PRESET,
    eval_every: Optional[int] = _EVAL_EVERY,
    log_every: Optional[int] = _LOG_EVERY,
    save_every: Optional[int] = _SAVE_EVERY,
    val_limit: Optional[int] = _VAL_LIMIT,
    compile: Optional[bool] = _COMPILE,
    channels_last: Optional[bool] = _CHANNELS_LAST,
    flip_test: Optional[bool] = _FLIP,
    augment: Optional[bool] = _AUGMENT,
    augment_style: Optional[str] = _AUGMENT_STYLE,
    deterministic: Optional[bool] = _DETERMINISTIC,
) -> None:
    """Train a Stacked Hourglass on the ground truth (the official FPD MPII recipe by default)."""
    given = _given(
        model=model, init=init, data=data, input_size=input_size, epochs=epochs, max_steps=max_steps,
        batch_size=batch_size, lr=lr, optimizer=optimizer, schedule=schedule, weight_decay=weight_decay,
        sigma=sigma, device=device, precision=precision, workers=workers, seed=seed, preset=preset,
        eval_every=eval_every, log_every=log_every, save_every=save_every, val_limit=val_limit,
        compile=compile, channels_last=channels_last, flip_test=flip_test, augment=augment,
        augment_style=augment_style, deterministic=deterministic,
    )
    _run("train", given, out=out, resume=resume, overwrite=overwrite, config_file=config)


def distill_command(
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher checkpoint (.safetensors, pytorch-pose .pth.tar or official FPD .pth) or a pretrained name such as synthetic-hg2x64 (fpdctl eval --list-pretrained); ground-truth puts the labels' own heatmaps in the teacher's place, the control for a distillation loss."),
    student: Optional[str] = typer.Option(None, "--student", help=f"Student model, e.g. hg2x64b2 (default: {STUDENT_MODEL})."),
    alpha: Optional[float] = typer.Option(
        None, "--alpha", help=f"Weight of the distillation term in [0, 1] (default: {DEFAULT_ALPHA})."
    ),
    student_init: Optional[str] = typer.Option(None, "--student-init", help="Checkpoint to initialise the student from."),
    mask_teacher: Optional[bool] = typer.Option(
        None, "--mask-teacher/--no-mask-teacher",
        help="Mask the distillation term with the target weights, as the official code (default: on).",
    ),
    kd_loss: Optional[str] = typer.Option(
        None, "--kd-loss",
        help=f"Distillation term: mse (the paper's) or kl (KL between spatially soft-maxed heatmaps) (default: {DEFAULT_KD_LOSS}).",
    ),
    kd_temperature: Optional[float] = typer.Option(
        None, "--kd-temperature",
        help=f"Softmax temperature of --kd-loss kl; heatmaps peak near 1, so T < 1 sharpens (default: {DEFAULT_KD_TEMPERATURE:g}).",
    ),
    alpha_schedule: Optional[str] = typer.Option(
        None, "--alpha-schedule",
        help=f"constant, or linear: alpha decays from --alpha to 0 over the run (default: {DEFAULT_ALPHA_SCHEDULE}).",
    ),
    unlabeled: Optional[str] = typer.Option(
        None, "--unlabeled",
        help="Images without labels, taught by the teacher alone: a folder of person crops, or synthetic[:length=N].",
    ),
    unlabeled_ratio: Optional[float] = typer.Option(
        None, "--unlabeled-ratio",
        help=f"Fraction of each batch that is unlabeled, in (0, 1) (default: {DEFAULT_UNLABELED_RATIO:g}).",
    ),
    teacher_input_convention: Optional[str] = TEACHER_INPUT_CONVENTION,
    teacher_input_order: Optional[str] = TEACHER_INPUT_ORDER,
    teacher_input_mean: Optional[str] = TEACHER_INPUT_MEAN,
    teacher_input_std: Optional[str] = TEACHER_INPUT_STD,
    data: Optional[str] = _DATA,
    input_size: Optional[int] = _INPUT,
    epochs: Optional[int] = _EPOCHS,
    max_steps: Optional[int] = _MAX_STEPS,
    batch_size: Optional[int] = _BATCH,
    lr: Optional[float] = _LR,
    optimizer: Optional[str] = _OPT,
    schedule: Optional[str] = _SCHEDULE,
    weight_decay: Optional[float] = _WD,
    sigma: Optional[float] = _SIGMA,
    device: Optional[str] = _DEVICE,
    precision: Optional[str] = _PRECISION,
    workers: Optional[int] = _WORKERS,
    seed: Optional[int] = _SEED,
    out: Optional[Path] = _OUT,
    resume: Optional[Path] = _RESUME,
    overwrite: bool = _OVERWRITE,
    config: Optional[Path] = _CONFIG,
    preset: Optional[str] = _PRESET,
    eval_every: Optional[int] = _EVAL_EVERY,
    log_every: Optional[int] = _LOG_EVERY,
    save_every: Optional[int] = _SAVE_EVERY,
    val_limit: Optional[int] = _VAL_LIMIT,
    compile: Optional[bool] = _COMPILE,
    channels_last: Optional[bool] = _CHANNELS_LAST,
    flip_test: Optional[bool] = _FLIP,
    augment: Optional[bool] = _AUGMENT,
    augment_style: Optional[str] = _AUGMENT_STYLE,
    deterministic: Optional[bool] = _DETERMINISTIC,
) -> None:
    """Fast Pose Distillation: train a small student with a frozen teacher's heatmaps."""
    given = _given(
        teacher=teacher, model=student, alpha=alpha, init=student_init, mask_teacher=mask_teacher,
        kd_loss=kd_loss, kd_temperature=kd_temperature, alpha_schedule=alpha_schedule,
        unlabeled=unlabeled, unlabeled_ratio=unlabeled_ratio,
        teacher_input_convention=teacher_input_convention, teacher_input_order=teacher_input_order,
        teacher_input_mean=teacher_input_mean, teacher_input_std=teacher_input_std,
        data=data, input_size=input_size, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
        lr=lr, optimizer=optimizer, schedule=schedule, weight_decay=weight_decay, sigma=sigma,
        device=device, precision=precision, workers=workers, seed=seed, preset=preset,
        eval_every=eval_every, log_every=log_every, save_every=save_every, val_limit=val_limit,
        compile=compile, channels_last=channels_last, flip_test=flip_test, augment=augment,
        augment_style=augment_style, deterministic=deterministic,
    )
    _run("distill", given, out=out, resume=resume, overwrite=overwrite, config_file=config)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``distill`` to the fpdctl app."""
    app.command("train")(train_command)
    app.command("distill")(distill_command)
