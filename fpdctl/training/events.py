"""What a training run reports, as :mod:`fpdctl.progress` events, and what it returns.

The trainer calls its ``progress`` (rank 0 only) with these events (``train.start``
first, ``train.end`` last):

- ``train.start``: data = :class:`RunInfo`.
- ``train.step`` (each logged step): data = :class:`StepLog`.
- ``train.eval`` (each validation): data = :class:`EvalLog`.
- ``train.checkpoint`` (each checkpoint): data = the ``last.safetensors`` path just written.
- ``train.skipped`` (a step that met images it could not read, for the first time): data =
  :class:`SkippedLog`.
- ``train.end``: data = :class:`TrainResult`.

Every event counts steps: ``done`` is the step it happened at, ``total`` the run's length.

A torch-free leaf (the CLI imports it to render the events).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpdctl.training.signals import SIGNAL_EXIT_CODES

TRAIN_START = "train.start"
TRAIN_STEP = "train.step"
TRAIN_EVAL = "train.eval"
TRAIN_CHECKPOINT = "train.checkpoint"
TRAIN_END = "train.end"
TRAIN_SKIPPED = "train.skipped"


@dataclass(frozen=True)
class RunInfo:
    """What a run is about to do (the ``train.start`` event).

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
    """One validation (the ``train.eval`` event).

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
class SkippedLog:
    """Images a step could not read and skipped (the ``train.skipped`` event).

    Attributes:
        step: the step that met them; new: why each image met for the first time could not be
            read (naming the file); total: unreadable images of the run so far; file: where they
            are listed (``skipped_images.txt`` in the run directory).
    """

    step: int
    new: tuple[str, ...]
    total: int
    file: Path


@dataclass(frozen=True)
class TrainResult:
    """The outcome of a run (also the payload of ``train.end``).

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
        skipped_images: images the run could not read and skipped (listed in
            ``skipped_images.txt``).
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
    skipped_images: int = 0

    @property
    def exit_code(self) -> int:
        """0 for a completed run, else the shell's status for the stopping signal (130, 143)."""
        if self.status == "completed":
            return 0
        return SIGNAL_EXIT_CODES.get(self.signal or signal.SIGINT, 130)


__all__ = [
    "EvalLog",
    "RunInfo",
    "SkippedLog",
    "StepLog",
    "TRAIN_CHECKPOINT",
    "TRAIN_END",
    "TRAIN_EVAL",
    "TRAIN_SKIPPED",
    "TRAIN_START",
    "TRAIN_STEP",
    "TrainResult",
]
