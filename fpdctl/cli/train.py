"""``fpdctl train`` and ``fpdctl distill``: parse options, run the trainer, render its events.

Everything heavy (torch, the trainer, the data) is imported inside the commands so that ``fpdctl
--help`` stays fast; the event kinds and payloads (:mod:`fpdctl.training.events`) are torch-free.
"""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

from fpdctl.cli.options import (
    TEACHER_INPUT_CONVENTION,
    TEACHER_INPUT_MEAN,
    TEACHER_INPUT_ORDER,
    TEACHER_INPUT_STD,
)
from fpdctl.models.spec import DEFAULT_INPUT_SIZE
from fpdctl.progress import Event
from fpdctl.training.config import DEFAULT_MODEL, MAX_DEFAULT_WORKERS, TrainConfig
from fpdctl.training.events import TRAIN_EVAL, TRAIN_SKIPPED, TRAIN_START, TRAIN_STEP
from fpdctl.training.loss import KD_LOSS_TABLE

if TYPE_CHECKING:
    from fpdctl.training.events import EvalLog, RunInfo, SkippedLog, StepLog, TrainResult


# --------------------------------------------------------------------------- the options
# Every option of `fpdctl train` and `fpdctl distill` is declared once below; each command's
# signature is built from its list (Typer reads a function's signature), and the values given go
# to the core by their TrainConfig field. Defaults shown in the help are read from TrainConfig.
_CONFIG_FIELDS = {f.name: f for f in TrainConfig.__dataclass_fields__.values()}


def _default(name: str) -> str:
    """TrainConfig's default for ``name`` as the help shows it: numbers as %g, bools on/off."""
    value = _CONFIG_FIELDS[name].default
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class _Opt:
    """One command-line option: its parameter name, the TrainConfig field it sets (None: a run
    setting such as --out), its value type and its Typer declaration."""

    name: str
    field: Optional[str]
    annotation: Any
    option: Any


def _opt(name: str, annotation: Any, *flags: str, help: str, field: Optional[str] = "", default: Any = None) -> _Opt:
    """An option whose parameter is ``name`` and whose field is ``field`` ("" : the same name)."""
    return _Opt(name, name if field == "" else field, annotation, typer.Option(default, *flags, help=help))


def _model_help(command: str, what: str) -> str:
    return f"{what}, e.g. hg2x64b2 (default: {DEFAULT_MODEL[command]})."


_KD_LOSSES_HELP = " or ".join(f"{entry.name} ({entry.summary})" for entry in KD_LOSS_TABLE.values())

# Options both commands take, in the order the help lists them.
COMMON_OPTIONS: tuple[_Opt, ...] = (
    _opt(
        "data",
        Optional[str],
        "--data",
        help="synthetic[:K=V,...], mpii:PATH, lsp:PATH or coco:PATH; COCO or synthetic:layout=coco: a model "
        f"name without a j suffix gets 17 joints (default: {_default('data')}).",
    ),
    _opt(
        "input_size",
        Optional[int],
        "--input-size",
        help=f"Input side in px; heatmaps are a quarter (default: {_default('input_size')}).",
    ),
    _opt("epochs", Optional[int], "--epochs", help=f"Run length in epochs (default: {_default('epochs')})."),
    _opt("max_steps", Optional[int], "--max-steps", help="Run length in optimizer steps (instead of --epochs)."),
    _opt(
        "batch_size",
        Optional[int],
        "--batch-size",
        help="Images per step per process; the global batch is this x the number of processes "
        "(torchrun --nproc_per_node N); the default is the official recipe's batch on one GPU "
        f"(default: {_default('batch_size')}).",
    ),
    _opt("lr", Optional[float], "--lr", help=f"Base learning rate (default: {_default('lr')})."),
    _opt("optimizer", Optional[str], "--optimizer", help=f"adam, rmsprop or sgd (default: {_default('optimizer')})."),
    _opt(
        "schedule",
        Optional[str],
        "--schedule",
        help=f"step:E1,E2 (x{_default('lr_factor')} at those epochs), cosine or constant "
        f"(default: {_default('schedule')}).",
    ),
    _opt(
        "weight_decay",
        Optional[float],
        "--weight-decay",
        help=f"L2 weight decay (default: {_default('weight_decay')}).",
    ),
    _opt(
        "sigma", Optional[float], "--sigma", help=f"Target Gaussian sigma in heatmap px (default: {_default('sigma')})."
    ),
    _opt("device", Optional[str], "--device", help=f"auto, cpu, cuda, cuda:N or mps (default: {_default('device')})."),
    _opt(
        "precision",
        Optional[str],
        "--precision",
        help="auto (CUDA: bf16 on GPUs with native bf16, compute capability 8.0+, else fp16; CPU: bf16 "
        f"with native bf16 instructions, else fp32), bf16, fp16 or fp32 (default: {_default('precision')}).",
    ),
    _opt(
        "workers",
        Optional[int],
        "--workers",
        help="DataLoader workers per process, kept for the whole run (default: the free cores, shared "
        f"among this node's processes, less one, at most {MAX_DEFAULT_WORKERS}).",
    ),
    _opt(
        "seed",
        Optional[int],
        "--seed",
        help=f"Seed of weights, data order and augmentation (default: {_default('seed')}).",
    ),
    _opt(
        "out", Optional[Path], "--out", field=None, help="Run directory (created; must not exist unless --overwrite)."
    ),
    _opt(
        "resume", Optional[Path], "--resume", field=None, help="Continue the run in RUN_DIR exactly where it stopped."
    ),
    _opt(
        "overwrite",
        bool,
        "--overwrite",
        field=None,
        default=False,
        help="Replace the files of an existing run directory.",
    ),
    _opt("config", Optional[Path], "--config", field=None, help="YAML or TOML file of options; flags override it."),
    _opt("preset", Optional[str], "--preset", help="A bundle of defaults: quick (small, fast demo)."),
    _opt(
        "eval_every",
        Optional[int],
        "--eval-every",
        help="Validate every N steps; 0 only at the end (default: once per epoch).",
    ),
    _opt(
        "log_every",
        Optional[int],
        "--log-every",
        help=f"Log a metrics row every N steps (default: {_default('log_every')}).",
    ),
    _opt(
        "save_every",
        Optional[int],
        "--save-every",
        help="Checkpoint every N steps; 0 only at the end (default: at each validation, else once per epoch).",
    ),
    _opt("val_limit", Optional[int], "--val-limit", help="Validate on the first N persons only."),
    _opt(
        "compile",
        Optional[bool],
        "--compile/--no-compile",
        help=f"torch.compile the model (default: {_default('compile')}).",
    ),
    _opt(
        "channels_last",
        Optional[bool],
        "--channels-last/--no-channels-last",
        help=f"Channels-last memory format (default: {_default('channels_last')}).",
    ),
    _opt(
        "flip_test",
        Optional[bool],
        "--flip-test/--no-flip-test",
        help=f"Flip-test evaluation (default: {_default('flip_test')}).",
    ),
    _opt(
        "augment",
        Optional[bool],
        "--augment/--no-augment",
        help=f"Training augmentation (default: {_default('augment')}).",
    ),
    _opt(
        "augment_style",
        Optional[str],
        "--augment-style",
        help="official: the official FPD draws (scale clip(N(1,0.25),0.75,1.25), rotation "
        "clip(N(0,30),-60,60) with p 0.6, flip 0.5, no colour jitter); uniform: uniform scale and "
        f"rotation plus colour jitter, fpdctl's earlier recipe (default: {_default('augment_style')}).",
    ),
    _opt(
        "deterministic",
        Optional[bool],
        "--deterministic/--no-deterministic",
        help="Deterministic algorithms (and no cuDNN benchmark): a CUDA run repeats and resumes bit "
        f"for bit, somewhat slower; CPU runs are bit for bit either way (default: {_default('deterministic')}).",
    ),
    _opt(
        "tensorboard",
        Optional[bool],
        "--tensorboard/--no-tensorboard",
        help="Also write TensorBoard event files (losses, learning rate, img/s, validation metrics) "
        "into the run directory; needs pip install 'fpdctl[tensorboard]' "
        f"(default: {_default('tensorboard')}).",
    ),
)

TRAIN_OPTIONS: tuple[_Opt, ...] = (
    _opt("model", Optional[str], "--model", help=_model_help("train", "Model to train")),
    _opt("init", Optional[str], "--init", help="Checkpoint whose weights start the model (fresh optimiser, schedule)."),
    *COMMON_OPTIONS,
)

# distill's default input size is the teacher's (see resolve_config); its help says so.
_DISTILL_INPUT_SIZE = _opt(
    "input_size",
    Optional[int],
    "--input-size",
    help="Input side in px; heatmaps are a quarter (default: the size the teacher was trained at when "
    f"its checkpoint or model card records it, else {DEFAULT_INPUT_SIZE}).",
)

_STUDENT_INIT_HELP = (
    "Checkpoint whose weights start the student (fresh optimiser, schedule). The paper's FPD row (MPII val 89.04 "
    "against 87.93 alone: 43 % of the gap) is a trained student given a second schedule with the teacher; its "
    "one-schedule FPD* row got 87.60. In fpdctl's 5 seeds (docs/RESULTS.md 1.8) most of the 43 % comes from the "
    "second schedule, which train --init gives without the teacher; the teacher's own share is about 5 % of "
    "the gap (2 to 5 % in one schedule)"
)
DISTILL_OPTIONS: tuple[_Opt, ...] = (
    _opt(
        "teacher",
        Optional[str],
        "--teacher",
        help="Teacher checkpoint (.safetensors, pytorch-pose .pth.tar or official FPD .pth) or a pretrained "
        "name such as synthetic-hg2x64 (`fpdctl models` lists them); ground-truth puts the labels' own "
        "heatmaps in the teacher's place, the control for a distillation loss.",
    ),
    _opt("student", Optional[str], "--student", field="model", help=_model_help("distill", "Student model")),
    _opt(
        "alpha",
        Optional[float],
        "--alpha",
        help=f"Weight of the distillation term in [0, 1] (default: {_default('alpha')}).",
    ),
    _opt("student_init", Optional[str], "--student-init", field="init", help=_STUDENT_INIT_HELP),
    _opt(
        "mask_teacher",
        Optional[bool],
        "--mask-teacher/--no-mask-teacher",
        help=f"Mask the distillation term with the target weights, as the official code (default: "
        f"{_default('mask_teacher')}).",
    ),
    _opt(
        "kd_loss",
        Optional[str],
        "--kd-loss",
        help=f"Distillation term: {_KD_LOSSES_HELP} (default: {_default('kd_loss')}).",
    ),
    _opt(
        "kd_temperature",
        Optional[float],
        "--kd-temperature",
        help="Softmax temperature of --kd-loss kl (refused with a term that does not use it); heatmaps "
        f"peak near 1, so T < 1 sharpens (default: {_default('kd_temperature')}).",
    ),
    _opt(
        "alpha_schedule",
        Optional[str],
        "--alpha-schedule",
        help="constant, or linear: alpha decays from --alpha to 0 over the run "
        f"(default: {_default('alpha_schedule')}).",
    ),
    _opt(
        "unlabeled",
        Optional[str],
        "--unlabeled",
        help="Images without labels, taught by the teacher alone: a folder of person crops, or synthetic[:length=N].",
    ),
    _opt(
        "unlabeled_ratio",
        Optional[float],
        "--unlabeled-ratio",
        help=f"Fraction of each batch that is unlabeled, in (0, 1) (default: {_default('unlabeled_ratio')}).",
    ),
    _Opt("teacher_input_convention", "teacher_input_convention", Optional[str], TEACHER_INPUT_CONVENTION),
    _Opt("teacher_input_order", "teacher_input_order", Optional[str], TEACHER_INPUT_ORDER),
    _Opt("teacher_input_mean", "teacher_input_mean", Optional[str], TEACHER_INPUT_MEAN),
    _Opt("teacher_input_std", "teacher_input_std", Optional[str], TEACHER_INPUT_STD),
    *(_DISTILL_INPUT_SIZE if opt.name == "input_size" else opt for opt in COMMON_OPTIONS),
)


# TrainConfig fields whose option has another name (distill's --student-init sets init), for errors.
_BY_COMMAND = (("train", TRAIN_OPTIONS), ("distill", DISTILL_OPTIONS))
CORE_PARAMS = {c: {o.field: o.name for o in opts if o.field not in (None, o.name)} for c, opts in _BY_COMMAND}


def _given(options: tuple[_Opt, ...], values: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig fields actually given on the command line (Typer passes None for the others)."""
    return {opt.field: values[opt.name] for opt in options if opt.field and values[opt.name] is not None}


def _command(command: str, options: tuple[_Opt, ...], doc: str) -> Callable[..., None]:
    """The Typer callback of ``fpdctl <command>``: its signature is ``options``."""

    def callback(**values: Any) -> None:
        _run(
            command,
            _given(options, values),
            out=values["out"],
            resume=values["resume"],
            overwrite=values["overwrite"],
            config_file=values["config"],
        )

    callback.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(opt.name, inspect.Parameter.KEYWORD_ONLY, default=opt.option, annotation=opt.annotation)
            for opt in options
        ]
    )
    callback.__name__ = callback.__qualname__ = f"{command}_command"
    callback.__doc__ = doc
    return callback


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
        self.console.print(f"eval step {log.step}: {_label(log.metric)} {log.value:.2f}{best} [{log.seconds:.1f}s]")

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
            info.teacher and "distill" or "train",
            total=info.total_steps,
            completed=info.start_step,
            loss="-",
            speed="-",
        )

    def on_step(self, log: "StepLog") -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=log.step, loss=f"{log.loss:.5f}", speed=f"{log.img_per_s:.1f}")

    def on_eval(self, log: "EvalLog") -> None:
        best = " (best)" if log.best else ""
        self.progress.console.print(f"eval step {log.step}: {_label(log.metric)} {log.value:.2f}{best}")

    def close(self) -> None:
        self.progress.stop()


def _label(metric: str) -> str:
    """How a validation metric's headline reads: PCKh, PCK, or AP for COCO's OKS."""
    from fpdctl.metrics import score_name

    return score_name(metric)


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
        from fpdctl.training.skipped import SKIPPED_FILE

        typer.echo(
            f"warning: {result.skipped_images} image(s) could not be read and were skipped; "
            f"listed in {result.run_dir / SKIPPED_FILE}",
            err=True,
        )


# --------------------------------------------------------------------------- the commands
def _run(
    command: str,
    given: dict[str, Any],
    *,
    out: Optional[Path],
    resume: Optional[Path],
    overwrite: bool,
    config_file: Optional[Path],
) -> None:
    from fpdctl.training.api import prepare_trainer

    rank0 = _is_rank0()
    reporter = _make_reporter() if rank0 else None
    # Construction validates the options, the teacher, the data and the run directory and creates nothing.
    trainer = prepare_trainer(
        command, given, out=out, resume=resume, overwrite=overwrite, config_file=config_file, progress=reporter
    )
    if rank0:
        from fpdctl.cli.app import flag_table, in_flags

        flags = flag_table([command])  # the core names parameters; this command's user reads flags
        for warning in trainer.warnings:
            typer.echo(f"warning: {in_flags(warning, flags)}", err=True)
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


train_command = _command(
    "train",
    TRAIN_OPTIONS,
    "Train a Stacked Hourglass on the ground truth (the official FPD MPII recipe by default).",
)
distill_command = _command(
    "distill",
    DISTILL_OPTIONS,
    "Fast Pose Distillation: train a small student with a frozen teacher's heatmaps.",
)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``distill`` to the fpdctl app."""
    app.command("train")(train_command)
    app.command("distill")(distill_command)
