"""One small trainer for ``fpdctl train`` and ``fpdctl distill``.

An explicit loop over optimizer steps with a handful of named events (step logged, evaluation,
checkpoint, end) reported to a :class:`TrainCallbacks` object; the loop itself never prints.

What makes a run exactly resumable: the data order of epoch ``e`` is a permutation seeded by
``seed + e`` (:class:`~fpdctl.train.distributed.ResumableSampler`), each sample's augmentation
draws from ``default_rng([seed, e, index])`` (``PoseDataset.set_epoch``), DataLoader worker seeds
come from a generator seeded by (seed, epoch), and ``state.pt`` holds the weights, optimizer,
scheduler, grad-scaler and RNG states of one step in one atomically written file. A resumed run
skips the batches its epoch already consumed and continues bit-for-bit (on the same device and
thread count).

The teacher (distillation) is a plain module: frozen, in eval mode, run under
``torch.inference_mode`` on the same augmented batch, never wrapped in DistributedDataParallel.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import random
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager

import numpy as np
import torch
from torch import Tensor, nn

from fpdctl import __version__
from fpdctl.errors import CheckpointError, RuntimeFailure, TrainingDiverged, UsageError
from fpdctl.models.checkpoint import file_sha256, load_model, load_state_dict_strict, save_model, unwrap_model
from fpdctl.models.hourglass import HourglassNet, count_parameters, create_model
from fpdctl.models.spec import HourglassSpec, resolve_spec
from fpdctl.train.config import Schedule, TrainConfig, parse_schedule
from fpdctl.train.distributed import (
    DistInfo,
    ResumableSampler,
    all_reduce_sum,
    barrier,
    env_dist_info,
    init_distributed,
    shutdown_distributed,
)
from fpdctl.train.loss import LossTerms, final_stack, fpd_loss
from fpdctl.models.checkpoint import TRAIN_INPUT_SIZE_KEY
from fpdctl.train.state import TrainState, capture_rng_state, load_state, restore_rng_state, save_state
from fpdctl.utils.io import atomic_write_text, check_folder_creatable, require_dir, require_file

# The files of a run directory (what --overwrite removes, and nothing else).
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
BEST_FILE = "best.safetensors"
LAST_FILE = "last.safetensors"
STATE_FILE = "state.pt"
CURVES_FILE = "curves.png"
EVAL_FILE = "eval.json"
RUN_FILES: tuple[str, ...] = (
    CONFIG_FILE, METRICS_FILE, BEST_FILE, LAST_FILE, STATE_FILE, CURVES_FILE, EVAL_FILE,
)
TRAIN_COLUMNS: tuple[str, ...] = ("step", "epoch", "loss", "gt_loss", "kd_loss", "lr", "img_per_s")

# Drawing curves.png costs about a second of CPU: during a run it is redrawn at an evaluation
# at most this often (and always at the end or on interruption).
PLOT_INTERVAL_S = 60.0

# Exit statuses of a run stopped by a signal (128 + signal number, the shell's convention).
SIGNAL_EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}


# ---------------------------------------------------------------------------------- precision
@dataclass(frozen=True)
class Precision:
    """How the forward passes run.

    Attributes:
        name: "bf16", "fp16" or "fp32".
        dtype: the autocast dtype, None for fp32.
        scaler: whether a GradScaler is needed (fp16).
    """

    name: str
    dtype: torch.dtype | None
    scaler: bool

    def autocast(self, device: torch.device) -> ContextManager[Any]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX).

    Elsewhere bf16 autocast is emulated and slower than fp32, so "auto" does not pick it.
    """
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except Exception:  # a private probe that moved: just do not claim support
            pass
    return False


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The precision for ``--precision`` on ``device``.

    "auto": bf16 on CUDA devices that support it (else fp16 with a GradScaler), bf16 on CPUs
    with native bf16 instructions, fp32 elsewhere (including MPS).

    Raises:
        UsageError: bf16 requested on a CUDA device without bf16 support.
    """
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu" and cpu_supports_bf16():
            name = "bf16"
        else:
            name = "fp32"
    if name == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UsageError("--precision bf16: this GPU does not support bf16 (use fp16 or fp32)")
        return Precision("bf16", torch.bfloat16, scaler=False)
    if name == "fp16":
        return Precision("fp16", torch.float16, scaler=True)
    if name == "fp32":
        return Precision("fp32", None, scaler=False)
    raise UsageError(f"--precision must be auto, bf16, fp16 or fp32, got {name!r}")


# ---------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class RunInfo:
    """What a run is about to do (the ``on_start`` event).

    Attributes:
        run_dir: the run directory.
        model: the trained model's name; teacher: the teacher's name (None for plain training).
        parameters: trainable parameters of the model.
        device, precision: where and how it runs.
        world_size: number of processes.
        start_step, total_steps, steps_per_epoch: the run's length (resumed runs start > 0).
        train_size, val_size: persons in each split (val after ``val_limit``).
        metric: the validation metric ("pckh" or "pck").
        restarted: --resume found no checkpoint (the run stopped before its first one), so the
            run starts again from step 0.
    """

    run_dir: Path
    model: str
    teacher: str | None
    parameters: int
    device: str
    precision: str
    world_size: int
    start_step: int
    total_steps: int
    steps_per_epoch: int
    train_size: int
    val_size: int
    metric: str
    restarted: bool = False


@dataclass(frozen=True)
class StepLog:
    """Training figures averaged over the steps since the previous log (all processes).

    Attributes:
        step: optimizer steps done.
        epoch: fractional epoch (``step / steps_per_epoch``).
        loss, gt_loss: mean total and ground-truth loss; kd_loss: distillation term or None.
        lr: learning rate of the last step.
        img_per_s: training images per second over the window, all processes together.
        total_steps: the run's length; eta_s: estimated seconds to the end (training only).
    """

    step: int
    epoch: float
    loss: float
    gt_loss: float
    kd_loss: float | None
    lr: float
    img_per_s: float
    total_steps: int
    eta_s: float


@dataclass(frozen=True)
class EvalLog:
    """One validation (the ``on_eval`` event).

    Attributes:
        step: optimizer steps done; metric: "pckh" or "pck"; value: pooled mean in percent;
        best: whether it is the best so far; seconds: evaluation wall time.
    """

    step: int
    metric: str
    value: float
    best: bool
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """The outcome of a run.

    Attributes:
        run_dir: the run directory.
        status: "completed" or "interrupted" (by SIGINT / SIGTERM / :meth:`Trainer.request_stop`).
        signal: the signal number that stopped it, if any.
        steps: optimizer steps done; total_steps: the planned length.
        final_loss: the last logged total loss.
        best_metric, best_step: best validation figure and its step (None without validation).
        final_eval: full metric table of the final model (``AccuracyResult.to_dict()``), or None
            when interrupted.
        metric: the validation metric's name.
        seconds: wall time of this invocation; img_per_s: mean training throughput.
        files: name -> path of what the run directory holds.
    """

    run_dir: Path
    status: str
    signal: int | None
    steps: int
    total_steps: int
    final_loss: float | None
    best_metric: float | None
    best_step: int | None
    final_eval: dict[str, Any] | None
    metric: str
    seconds: float
    img_per_s: float
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.status == "completed":
            return 0
        return SIGNAL_EXIT_CODES.get(self.signal or signal.SIGINT, 130)


class TrainCallbacks:
    """Receives the trainer's events; every method is a no-op here. Only rank 0 gets them."""

    def on_start(self, info: RunInfo) -> None: ...

    def on_step(self, log: StepLog) -> None: ...

    def on_eval(self, log: EvalLog) -> None: ...

    def on_checkpoint(self, step: int, path: Path) -> None: ...

    def on_end(self, result: TrainResult) -> None: ...


# ---------------------------------------------------------------------------------- data helpers
class _FirstItems(torch.utils.data.Dataset):
    """The first ``limit`` persons of a PoseDataset, scored with their own ground truth."""

    def __init__(self, base: Any, limit: int) -> None:
        self.base = base
        self.limit = min(int(limit), len(base))
        self.codec = getattr(base, "codec", None)
        self.joint_set = base.joint_set
        self.metric = base.metric

    def __len__(self) -> int:
        return self.limit

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.limit:
            raise IndexError(index)
        return self.base[index]

    def eval_reference(self) -> Any:
        from fpdctl.metrics.reference import EvalReference

        ref = self.base.eval_reference()
        n = self.limit
        return EvalReference(
            joints=ref.joints[:n],
            visible=ref.visible[:n],
            headboxes=None if ref.headboxes is None else ref.headboxes[:n],
            metric=ref.metric,
            joint_set=ref.joint_set,
        )


def _ignore_signals_in_worker(_worker_id: int) -> None:
    # Ctrl-C reaches the whole process group: workers ignore it and let the main process save a
    # checkpoint and stop them, instead of dying mid-batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()


# prctl(2) option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Have the kernel kill this DataLoader worker when the training process dies (Linux).

    PyTorch's worker notices a dead parent by comparing getppid() with the parent it saw when it
    started; a parent killed (kill -9) before that first look leaves the worker polling forever.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import multiprocessing

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    except (OSError, AttributeError):  # no prctl: PyTorch's own check still applies
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)  # the parent died before the death signal was armed


# ---------------------------------------------------------------------------------- metrics log
class MetricsLog:
    """``metrics.csv``: one row per logged step, appended and flushed as the run goes.

    On resume the rows after the checkpoint's step are dropped (they belong to steps that will
    run again), and a half-written last line from a kill is discarded.
    """

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.columns = columns
        self.rows: list[dict[str, str]] = []

    def start(self, resume_step: int | None) -> None:
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    try:
                        step = int(row.get("step") or "")
                    except ValueError:
                        continue
                    if step <= resume_step and all(row.get(c) is not None for c in self.columns):
                        kept.append({c: row.get(c) or "" for c in self.columns})
        self.rows = kept
        self.rewrite()

    def rewrite(self) -> None:
        """Write the rows held in memory (atomically), e.g. after filling in a figure."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buffer.getvalue())

    def append(self, row: dict[str, Any]) -> None:
        text = {c: _fmt(row.get(c)) for c in self.columns}
        self.rows.append(text)
        try:
            with open(self.path, "a", newline="", encoding="utf-8") as handle:
                csv.DictWriter(handle, fieldnames=list(self.columns), lineterminator="\n").writerow(text)
                handle.flush()
        except OSError as exc:  # a full disk: a half line is dropped again on resume
            raise RuntimeFailure(f"could not write {self.path}: {exc.strerror or exc}") from exc


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# ---------------------------------------------------------------------------------- run files
def load_run_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """The options of an existing run (its ``config.json``), for ``--resume``.

    A run killed before its first checkpoint has a ``config.json`` but no ``state.pt``: it
    resumes from step 0 (nothing was saved, so nothing is lost and the result is the same).

    Raises:
        InputError / CheckpointError: not a run directory, or weights without the ``state.pt``
            they need to resume from.
    """
    folder = require_dir(run_dir, "run directory")
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{folder} is not an fpdctl run directory (no {CONFIG_FILE})")
    if (folder / STATE_FILE).exists() and not (folder / STATE_FILE).is_file():
        raise CheckpointError(f"training state is not a file: {folder / STATE_FILE}")
    if not (folder / STATE_FILE).is_file() and (folder / LAST_FILE).is_file():
        raise CheckpointError(
            f"{folder} has {LAST_FILE} but no {STATE_FILE} to resume from; start a new run "
            f"(--overwrite, or --student-init {folder / LAST_FILE} with a new --out)"
        )
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
        options = data["options"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read {config_path}: {exc}") from exc
    return TrainConfig.from_dict(options, source=str(config_path))


def check_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing run directory unless told to.

    Raises:
        UsageError: the directory exists and is not empty, and neither --resume nor --overwrite
            was given; or --overwrite on a folder that is not a run directory.
        InputError: the directory cannot be created (a file in its path, a read-only parent).
    """
    if resume:
        return
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    check_folder_creatable(out)
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(
                f"run directory {out} already exists; pass --resume {out} to continue it or "
                "--overwrite to start again"
            )
        if not (out / CONFIG_FILE).is_file():
            raise UsageError(
                f"--overwrite: {out} is not an fpdctl run directory (no {CONFIG_FILE}); "
                "refusing to delete anything in it"
            )


def _clear_run_files(out: Path) -> None:
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    _clear_stale_temporaries(out)


def _clear_stale_temporaries(out: Path) -> None:
    """Remove the temporary files a killed atomic write can leave (``.state.pt.XXXX.tmp``).

    safetensors writes through a temporary of its own (``.tmpXXXXXX``, Rust's tempfile) before
    fpdctl's rename; a kill inside that write leaves one too.
    """
    for name in RUN_FILES:
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    for tmp in out.glob(".tmp??????"):
        if tmp.name[4:].isalnum() and tmp.is_file():
            tmp.unlink(missing_ok=True)


def _versions() -> dict[str, str]:
    return {
        "fpdctl": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# ---------------------------------------------------------------------------------- trainer
class Trainer:
    """Train (or distil into) one Stacked Hourglass.

    Construction checks everything that can be wrong with the options, the teacher and the data
    and creates nothing on disk; :meth:`run` creates the run directory and trains.

    Args:
        config: validated options (``config.out`` must be set).
        resume: continue the run in ``config.out`` from its ``state.pt``.
        overwrite: replace the run files of an existing run directory.
        callbacks: receives the events (rank 0 only).
        dist_info: the process's place in a torchrun job (default: from the environment).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool = False,
        overwrite: bool = False,
        callbacks: TrainCallbacks | None = None,
        dist_info: DistInfo | None = None,
    ) -> None:
        from fpdctl.utils.device import resolve_device

        if not config.out:
            raise UsageError("--out RUN_DIR is required")
        self.config = config
        self.resume = resume
        self.overwrite = overwrite
        self.callbacks = callbacks or TrainCallbacks()
        self.dist = dist_info or env_dist_info()
        self.run_dir = Path(config.out)
        check_run_dir(self.run_dir, resume=resume, overwrite=overwrite)

        device = resolve_device(config.device)
        if device.type == "cuda" and self.dist.distributed:
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        self.precision = resolve_precision(config.precision, device)
        self.schedule: Schedule = parse_schedule(config.schedule, config.lr_factor)
        self.spec: HourglassSpec = resolve_spec(config.model)

        # The teacher first: a missing or unfit teacher must fail before any data is built.
        self.teacher: HourglassNet | None = None
        self.teacher_info: dict[str, Any] | None = None
        if config.distill:
            self.teacher = self._load_teacher(str(config.teacher))
        self.init_info: dict[str, Any] | None = None
        self._init_model: HourglassNet | None = None
        if config.init:
            require_file(config.init, "initial checkpoint")
            self._init_model = load_model(config.init, spec=self.spec)
            self.init_info = {"path": config.init, "sha256": file_sha256(config.init)}
        self._build_data()
        self.student: HourglassNet | None = None
        self._stop_signal: int | None = None
        self._stop_requested = False
        self._saved_step: int | None = None

    # ------------------------------------------------------------------ setup
    def _load_teacher(self, path: str) -> HourglassNet:
        require_file(path, "teacher checkpoint")
        teacher = load_model(path)
        tspec = teacher.spec
        if tspec.joints != self.spec.joints:
            raise UsageError(
                f"the teacher predicts {tspec.joints} joints but the student {self.spec.name} "
                f"predicts {self.spec.joints}; FPD needs the same joints"
            )
        try:
            tspec.check_input_size(self.config.input_size)
        except UsageError as exc:
            raise UsageError(f"teacher {tspec.name}: {exc}") from None
        # Both networks emit input/4 heatmaps; a different stride would be a different family.
        self.teacher_info = {"path": str(path), "sha256": file_sha256(path), "spec": tspec.to_dict(), "name": tspec.name}
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.eval()
        return teacher

    def _build_data(self) -> None:
        from fpdctl.skeleton import MPII
        from fpdctl.data.registry import build_dataset
        from fpdctl.data.transforms import AugmentConfig

        cfg = self.config
        if self.spec.joints != MPII.num_joints:
            raise UsageError(
                f"model {self.spec.name} predicts {self.spec.joints} joints but the data has "
                f"{MPII.num_joints} MPII heatmap channels"
            )
        augment = AugmentConfig() if cfg.augment else None
        self.train_set = build_dataset(
            cfg.data, "train", input_size=cfg.input_size, sigma=cfg.sigma, augment=augment
        )
        val_set = build_dataset(cfg.data, "val", input_size=cfg.input_size, sigma=cfg.sigma, augment=None)
        self.val_set = _FirstItems(val_set, cfg.val_limit) if cfg.val_limit else val_set
        self.metric_name = str(getattr(val_set, "metric", "pckh"))
        self.sampler = ResumableSampler(
            self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank, seed=cfg.seed
        )
        self.steps_per_epoch = self.sampler.num_samples // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise UsageError(
                f"the training split has {len(self.train_set)} persons, fewer than one batch of "
                f"{cfg.batch_size} per process ({self.dist.world_size} process(es))"
            )
        self.total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * self.steps_per_epoch
        self.columns = TRAIN_COLUMNS + (f"val_{self.metric_name}",)

    def request_stop(self) -> None:
        """Ask the loop to save a checkpoint and stop after the current step (thread-safe)."""
        self._stop_requested = True

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self._stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now (files stay consistent)
        self._stop_signal = signum
        self._stop_requested = True

    # ------------------------------------------------------------------ main entry
    def run(self) -> TrainResult:
        """Train to the end (or until interrupted) and return what happened.

        Raises:
            TrainingDiverged: the loss became NaN or infinite (the last checkpoint is kept).
        """
        handlers: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                handlers[signum] = signal.signal(signum, self._on_signal)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # before NCCL picks a GPU for this rank
        init_distributed(self.dist, self.device)
        try:
            return self._run()
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            shutdown_distributed()

    def _run(self) -> TrainResult:
        cfg, dist, device = self.config, self.dist, self.device
        started = time.perf_counter()
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        random.seed(cfg.seed)

        student = create_model(self.spec) if self._init_model is None else self._init_model
        student.train()
        self.student = student  # the network being trained (for callbacks and tests)
        memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        student.to(device=device, memory_format=memory_format)
        teacher = self.teacher
        if teacher is not None:
            teacher.to(device=device, memory_format=memory_format)

        optimizer = _make_optimizer(cfg, student)
        steps_per_epoch, total_steps = self.steps_per_epoch, self.total_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lr_lambda=lambda step: self.schedule.multiplier(step, steps_per_epoch, total_steps),
        )
        scaler = torch.amp.GradScaler(device.type, enabled=self.precision.scaler)

        state = TrainState()
        # No state.pt: the run was stopped before its first checkpoint and starts over.
        restarted = self.resume and not (self.run_dir / STATE_FILE).is_file()
        if self.resume and not restarted:
            state = load_state(self.run_dir / STATE_FILE)
            try:
                load_state_dict_strict(student, state.model, source=str(self.run_dir / STATE_FILE))
                optimizer.load_state_dict(state.optimizer)
                scheduler.load_state_dict(state.scheduler)
                if state.scaler:
                    scaler.load_state_dict(state.scaler)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise CheckpointError(f"cannot resume from {self.run_dir / STATE_FILE}: {exc}") from exc
            if state.rng:
                restore_rng_state(state.rng)
            self._saved_step = state.step

        model: nn.Module = student
        if dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(
                student, device_ids=[device.index] if device.type == "cuda" else None
            )
        if cfg.compile:
            model = torch.compile(model)  # type: ignore[assignment]

        metrics = MetricsLog(self.run_dir / METRICS_FILE, self.columns)
        if dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.overwrite and not self.resume:
                _clear_run_files(self.run_dir)
            _clear_stale_temporaries(self.run_dir)
            self._write_config(state.step)
            metrics.start(state.step if self.resume else None)
        barrier()

        info = RunInfo(
            run_dir=self.run_dir,
            model=self.spec.name,
            teacher=None if self.teacher is None else self.teacher.spec.name,
            parameters=count_parameters(student),
            device=str(device),
            precision=self.precision.name,
            world_size=dist.world_size,
            start_step=state.step,
            total_steps=total_steps,
            steps_per_epoch=steps_per_epoch,
            train_size=len(self.train_set),
            val_size=len(self.val_set),
            metric=self.metric_name,
            restarted=restarted,
        )
        if dist.is_main:
            self.callbacks.on_start(info)

        loop = _Loop(self, model, student, teacher, optimizer, scheduler, scaler, metrics, state)
        status = loop.train()

        final_eval: dict[str, Any] | None = None
        if status == "completed" and dist.is_main:
            final_eval = loop.final_evaluation()
        barrier()
        seconds = time.perf_counter() - started
        files = {name: self.run_dir / name for name in RUN_FILES if (self.run_dir / name).exists()}
        result = TrainResult(
            run_dir=self.run_dir,
            status=status,
            signal=self._stop_signal,
            steps=state.step,
            total_steps=total_steps,
            final_loss=loop.last_loss,
            best_metric=state.best_metric,
            best_step=state.best_step,
            final_eval=final_eval,
            metric=self.metric_name,
            seconds=seconds,
            img_per_s=loop.mean_img_per_s(),
            files=files,
        )
        if dist.is_main:
            self.callbacks.on_end(result)
        return result

    def _write_config(self, step: int) -> None:
        path = self.run_dir / CONFIG_FILE
        previous: dict[str, Any] = {}
        if self.resume and path.is_file():
            try:
                previous = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                previous = {}
        resumed = list(previous.get("resumed_at_steps", [])) + ([step] if self.resume else [])
        payload = {
            "fpdctl_version": __version__,
            "command": self.config.command,
            "options": self.config.to_dict(),
            "resolved": {
                "device": str(self.device),
                "precision": self.precision.name,
                "world_size": self.dist.world_size,
                "batch_size_total": self.config.batch_size * self.dist.world_size,
                "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps,
                "train_size": len(self.train_set),
                "val_size": len(self.val_set),
                "metric": self.metric_name,
                "heatmap_size": self.config.input_size // 4,
                "schedule": {
                    "kind": self.schedule.kind,
                    "milestones_epochs": list(self.schedule.milestones),
                    "factor": self.schedule.factor,
                },
            },
            "spec": self.spec.to_dict(),
            "model_name": self.spec.name,
            "teacher": self.teacher_info,
            "init": self.init_info,
            "versions": _versions(),
            "created": previous.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "resumed_at_steps": resumed,
        }
        atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def compute_losses(
    model: nn.Module,
    teacher: nn.Module | None,
    images: Tensor,
    target: Tensor,
    weight: Tensor,
    *,
    precision: Precision,
    alpha: float = 0.5,
    mask_teacher: bool = True,
) -> LossTerms:
    """The forward half of a training step: teacher (if any) and student on the same batch.

    The teacher runs under ``torch.inference_mode`` and the run's autocast precision: no graph is
    recorded for it, which is most of what distillation saves over the reference code.

    Args:
        model: the student (possibly DDP- or compile-wrapped), in train mode.
        teacher: the frozen teacher in eval mode, or None.
        images: [N, 3, H, W] on the model's device, in the model's memory format.
        target: [N, J, H/4, W/4] ground-truth heatmaps; weight: [N, J] joint weights.
        precision: autocast settings.
        alpha, mask_teacher: see :func:`~fpdctl.train.loss.fpd_loss`.

    Returns:
        The loss terms (float32 scalars; ``total`` carries the student's graph).
    """
    device = images.device
    teacher_maps: Tensor | None = None
    if teacher is not None:
        with torch.inference_mode(), precision.autocast(device):
            teacher_maps = final_stack(teacher(images)).float()
        # An inference tensor cannot enter autograd; a plain copy can.
        teacher_maps = teacher_maps.clone()
    with precision.autocast(device):
        outputs = model(images)
    if teacher_maps is not None and teacher_maps.shape[-2:] != outputs.shape[-2:]:
        raise UsageError(
            f"teacher heatmaps are {tuple(teacher_maps.shape[-2:])} but the student's are "
            f"{tuple(outputs.shape[-2:])}"
        )
    return fpd_loss(outputs, target, weight, teacher_maps, alpha=alpha, mask_teacher=mask_teacher)


def apply_gradients(loss: Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """The backward half of a training step: backpropagate ``loss`` and update the weights."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        # pytorch-pose's default optimizer for the hourglass.
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class _Loop:
    """The step loop of one :meth:`Trainer.run` (kept apart so the setup reads top to bottom)."""

    def __init__(
        self,
        trainer: Trainer,
        model: nn.Module,
        student: HourglassNet,
        teacher: HourglassNet | None,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        metrics: MetricsLog,
        state: TrainState,
    ) -> None:
        self.t = trainer
        self.cfg = trainer.config
        self.model = model
        self.student = student
        self.teacher = teacher
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.metrics = metrics
        self.state = state
        self.device = trainer.device
        self.memory_format = torch.channels_last if self.cfg.channels_last else torch.contiguous_format
        self.pin = self.device.type == "cuda"
        self.last_loss: float | None = None
        # Wall time and images of the logged windows: data loading included, evaluation not.
        self._train_seconds = 0.0
        self._train_images = 0
        self._train_steps = 0
        self._last_plot = -math.inf
        self._reset_window()

    # ------------------------------------------------------------------ helpers
    def _reset_window(self) -> None:
        self.w_loss = self.w_gt = self.w_kd = 0.0
        self.w_steps = 0
        self.w_images = 0
        self.w_start = time.perf_counter()

    def mean_img_per_s(self) -> float:
        return self._train_images / self._train_seconds if self._train_seconds > 0 else float("nan")

    def _loader(self, epoch: int, skip_batches: int) -> torch.utils.data.DataLoader:
        cfg = self.cfg
        self.t.sampler.set_epoch(epoch, skip_batches * cfg.batch_size)
        set_epoch = getattr(self.t.train_set, "set_epoch", None)
        if set_epoch is None:
            raise RuntimeFailure(
                f"{type(self.t.train_set).__name__} has no set_epoch(): augmentation cannot be "
                "made reproducible"
            )
        set_epoch(epoch, cfg.seed)
        generator = torch.Generator()
        generator.manual_seed(cfg.seed * 1_000_003 + epoch)
        return torch.utils.data.DataLoader(
            self.t.train_set,
            batch_size=cfg.batch_size,
            sampler=self.t.sampler,
            num_workers=cfg.workers,
            pin_memory=self.pin,
            drop_last=True,
            generator=generator,
            worker_init_fn=_ignore_signals_in_worker if cfg.workers > 0 else None,
            persistent_workers=False,
        )

    def _eval_due(self, step: int) -> bool:
        every = self.cfg.eval_every
        if every is None:
            every = self.t.steps_per_epoch
        return every > 0 and step % every == 0 and step < self.t.total_steps

    def _save_due(self, step: int, evaluated: bool) -> bool:
        every = self.cfg.save_every
        if every is None:
            # With each validation; with validation off (0), still once per epoch.
            if evaluated:
                return True
            every = self.cfg.eval_every or self.t.steps_per_epoch
        return every > 0 and step % every == 0

    # ------------------------------------------------------------------ one step
    def _step(self, batch: dict[str, Any]) -> tuple[LossTerms, int]:
        images = batch["image"].to(self.device, non_blocking=self.pin)
        images = images.contiguous(memory_format=self.memory_format)
        target = batch["target"].to(self.device, non_blocking=self.pin)
        weight = batch["target_weight"].to(self.device, non_blocking=self.pin)
        terms = compute_losses(
            self.model, self.teacher, images, target, weight,
            precision=self.t.precision, alpha=self.cfg.alpha, mask_teacher=self.cfg.mask_teacher,
        )
        return terms, int(images.shape[0])

    # ------------------------------------------------------------------ the loop
    def train(self) -> str:
        cfg, t, state = self.cfg, self.t, self.state
        spe, total = t.steps_per_epoch, t.total_steps
        world = t.dist.world_size
        while state.step < total:
            epoch, skip = state.epoch, state.batch_in_epoch
            if skip >= spe:  # a checkpoint taken at an epoch's last batch
                state.epoch, state.batch_in_epoch = epoch + 1, 0
                continue
            batch_in_epoch = skip
            for batch in self._loader(epoch, skip):
                terms, count = self._step(batch)
                values = torch.tensor(
                    [
                        float(terms.total.detach()),
                        float(terms.gt.detach()),
                        float(terms.kd.detach()) if terms.kd is not None else 0.0,
                        0.0,
                        1.0 if t._stop_requested else 0.0,
                    ],
                    dtype=torch.float64,
                )
                values[3] = 0.0 if math.isfinite(values[0].item()) else 1.0
                if t.dist.distributed:
                    values = all_reduce_sum(values.to(self.device)).cpu()
                if values[3] > 0:
                    self._diverged(float(terms.total.detach()))
                apply_gradients(terms.total, self.optimizer, self.scaler)
                lr = self.optimizer.param_groups[0]["lr"]
                self.scheduler.step()

                state.step += 1
                batch_in_epoch += 1
                state.epoch, state.batch_in_epoch = (epoch + 1, 0) if batch_in_epoch >= spe else (epoch, batch_in_epoch)
                self.w_loss += values[0].item() / world
                self.w_gt += values[1].item() / world
                self.w_kd += values[2].item() / world
                self.w_steps += 1
                self.w_images += count * world
                # A signal's flag travels in ``values`` so every process stops at the same step;
                # a single process also honours a request made by a callback during this step.
                local = not t.dist.distributed and t._stop_requested
                stop = bool(values[4] > 0) or local
                last = state.step >= total
                evaluate = self._eval_due(state.step)
                if evaluate or last or stop or state.step % cfg.log_every == 0:
                    self._log(lr, epoch_frac=state.step / spe, evaluate=evaluate)
                if not stop and not t.dist.distributed and t._stop_requested:
                    stop = True
                    if self.w_steps:
                        self._log(lr, epoch_frac=state.step / spe, evaluate=False)
                if stop or self._save_due(state.step, evaluate):
                    self._checkpoint()
                if self.w_steps == 0:  # a window just closed: time the next one from here
                    self.w_start = time.perf_counter()
                if stop:
                    if t.dist.is_main and self.metrics.rows:
                        self._plot(force=True)
                    return "interrupted"
                if last:
                    break
            if state.step < total and state.epoch == epoch:
                # The loader ran dry early (it never should): move on rather than loop forever.
                state.epoch, state.batch_in_epoch = epoch + 1, 0
        self._checkpoint()
        return "completed"

    def _diverged(self, value: float) -> None:
        step = self.state.step + 1
        if self.t._saved_step is not None:
            kept = (
                f"the last good checkpoint ({self.t.run_dir / LAST_FILE}, step {self.t._saved_step}) is kept"
            )
        else:
            kept = "no checkpoint had been written yet"
        raise TrainingDiverged(
            f"training diverged: the loss is {value} at step {step}; {kept}; try a lower --lr"
        )

    def _log(self, lr: float, *, epoch_frac: float, evaluate: bool) -> None:
        t = self.t
        now = time.perf_counter()
        window = max(now - self.w_start, 1e-9)
        n = max(self.w_steps, 1)
        loss = self.w_loss / n
        self.last_loss = loss
        kd = self.w_kd / n if self.teacher is not None else None
        img_per_s = self.w_images / window
        self._train_seconds += window
        self._train_images += self.w_images
        self._train_steps += self.w_steps
        remaining = t.total_steps - self.state.step
        eta = remaining * self._train_seconds / max(self._train_steps, 1)
        log = StepLog(
            step=self.state.step,
            epoch=epoch_frac,
            loss=loss,
            gt_loss=self.w_gt / n,
            kd_loss=kd,
            lr=lr,
            img_per_s=img_per_s,
            total_steps=t.total_steps,
            eta_s=eta,
        )
        row: dict[str, Any] = {
            "step": log.step,
            "epoch": round(epoch_frac, 4),
            "loss": log.loss,
            "gt_loss": log.gt_loss,
            "kd_loss": log.kd_loss,
            "lr": log.lr,
            "img_per_s": round(img_per_s, 2),
        }
        if t.dist.is_main:
            t.callbacks.on_step(log)
        if evaluate:
            value = self._validate()
            row[f"val_{t.metric_name}"] = None if value is None else round(value, 4)
        if t.dist.is_main:
            self.metrics.append(row)
        self._reset_window()

    def _validate(self) -> float | None:
        """Validate on rank 0 (other ranks wait); returns the pooled mean on rank 0."""
        value: float | None = None
        if self.t.dist.is_main:
            value = float(self._evaluate_and_keep_best().mean)
            self._plot()
        barrier()
        return value

    def _evaluate_and_keep_best(self) -> Any:
        """Score the model on the validation split (rank 0 only); a new best saves best.safetensors.

        Returns:
            The metric result (PCKh or PCK) of the current weights.
        """
        from fpdctl.evaluate import evaluate_model

        t, state = self.t, self.state
        start = time.perf_counter()
        result = evaluate_model(
            unwrap_model(self.model),
            t.val_set,
            flip=self.cfg.flip_test,
            batch_size=self.cfg.eval_batch_size,
            device=self.device,
            num_workers=self.cfg.workers,
        )
        value = float(result.metric.mean)
        best = state.best_metric is None or value > state.best_metric
        if best:
            state.best_metric, state.best_step = value, state.step
            state.extra["best_eval"] = result.metric.to_dict()
            save_model(self.student, t.run_dir / BEST_FILE, _weights_metadata(self.cfg, state, value))
        t.callbacks.on_eval(
            EvalLog(step=state.step, metric=t.metric_name, value=value, best=best,
                    seconds=time.perf_counter() - start)
        )
        return result.metric

    def _plot(self, *, force: bool = False) -> None:
        """Redraw curves.png: always at the end, during the run at most once a minute."""
        from fpdctl.train.plots import plot_curves

        now = time.monotonic()
        if not force and now - self._last_plot < PLOT_INTERVAL_S:
            return
        self._last_plot = now
        plot_curves(self.metrics.rows, self.t.run_dir / CURVES_FILE,
                    title=f"{self.cfg.command} {self.t.spec.name} ({self.t.run_dir.name})")

    def _write_state(self) -> None:
        """Write state.pt (rank 0): weights, optimizer, scheduler, scaler, RNG, counters."""
        t, state = self.t, self.state
        state.model = {k: v.detach().cpu().clone() for k, v in self.student.state_dict().items()}
        state.optimizer = self.optimizer.state_dict()
        state.scheduler = self.scheduler.state_dict()
        state.scaler = self.scaler.state_dict() if self.scaler.is_enabled() else {}
        state.rng = capture_rng_state()
        try:
            save_state(state, t.run_dir / STATE_FILE)
        finally:
            state.model = {}
        t._saved_step = state.step

    def _checkpoint(self) -> None:
        """Save the resume point and last.safetensors (rank 0; every rank waits)."""
        t, state = self.t, self.state
        if t.dist.is_main and t._saved_step != state.step:
            # state.pt first: it alone is the resume point; last.safetensors is the user copy.
            self._write_state()
            save_model(self.student, t.run_dir / LAST_FILE, _weights_metadata(self.cfg, state, None))
            t.callbacks.on_checkpoint(state.step, t.run_dir / LAST_FILE)
        barrier()

    def final_evaluation(self) -> dict[str, Any]:
        """Evaluate the final model (rank 0), update best, write eval.json and curves.png."""
        t, state = self.t, self.state
        metric = self._evaluate_and_keep_best()
        value = float(metric.mean)
        # The final row carries the final model's figure.
        if self.metrics.rows and self.metrics.rows[-1]["step"] == str(state.step):
            self.metrics.rows[-1][f"val_{t.metric_name}"] = _fmt(round(value, 4))
            self.metrics.rewrite()
        final = metric.to_dict()
        payload = {
            "run_dir": str(t.run_dir),
            "model": t.spec.name,
            "teacher": None if self.teacher is None else self.teacher.spec.name,
            "data": self.cfg.data,
            "split": "val",
            "persons": len(t.val_set),
            "flip_test": self.cfg.flip_test,
            "metric": t.metric_name,
            "final": {"step": state.step, "checkpoint": LAST_FILE, **final},
            "best": {
                "step": state.best_step,
                "checkpoint": BEST_FILE,
                **(state.extra.get("best_eval") or {}),
            },
        }
        atomic_write_text(t.run_dir / EVAL_FILE, json.dumps(payload, indent=2) + "\n")
        # state.pt gets the final best figures too (a later --resume with more steps keeps them).
        self._write_state()
        self._plot(force=True)
        return final


def _weights_metadata(cfg: TrainConfig, state: TrainState, value: float | None) -> dict[str, str]:
    meta = {
        "fpdctl.train.command": cfg.command,
        "fpdctl.train.step": str(state.step),
        "fpdctl.train.seed": str(cfg.seed),
        TRAIN_INPUT_SIZE_KEY: str(cfg.input_size),
    }
    if value is not None:
        meta["fpdctl.train.val_metric"] = f"{value:.4f}"
    return meta


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: TrainCallbacks | None = None,
) -> TrainResult:
    """Train or distil as ``config`` says (see :class:`Trainer`)."""
    return Trainer(config, resume=resume, overwrite=overwrite, callbacks=callbacks).run()


__all__ = [
    "BEST_FILE",
    "CONFIG_FILE",
    "CURVES_FILE",
    "EVAL_FILE",
    "EvalLog",
    "LAST_FILE",
    "METRICS_FILE",
    "Precision",
    "RUN_FILES",
    "RunInfo",
    "STATE_FILE",
    "StepLog",
    "TrainCallbacks",
    "TrainResult",
    "Trainer",
    "apply_gradients",
    "compute_losses",
    "check_run_dir",
    "cpu_supports_bf16",
    "load_run_config",
    "resolve_precision",
    "train",
]
