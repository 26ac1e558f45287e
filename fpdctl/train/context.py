"""What the training step loop needs of its run (:class:`RunContext`), built once by the trainer
and handed to :class:`~fpdctl.train.loop.TrainLoop`, which never sees the trainer itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

    from fpdctl.models.hourglass import HourglassNet
    from fpdctl.progress import Progress
    from fpdctl.train.config import TrainConfig
    from fpdctl.train.distributed import DistInfo
    from fpdctl.train.loss import KdSettings
    from fpdctl.train.precision import TrainPrecision


@dataclass(frozen=True)
class RunContext:
    """What the step loop needs of its run, fixed for the whole run (the trainer builds it).

    Attributes:
        config: the run's options.
        device: where the student trains.
        dist: this process's place in the job.
        precision: the run's autocast settings.
        run_dir: the run directory.
        steps_per_epoch: optimizer steps per epoch (per process).
        total_steps: the step the run ends at.
        kd: the distillation loss settings (alpha checked once, when the config was built).
        teacher: the frozen teacher network, or None.
        teacher_name: the teacher's model name, ``ground-truth`` for the label control, None
            without a teacher.
        labels_as_teacher: ``--teacher ground-truth``: the labels fill the teacher's place.
        model_name: the trained model's name (plot titles, eval.json).
        metric_name: the validation metric ("pckh", "pck", "oks").
        train_set: the training set (with ``set_epoch``); sampler: its resumable sampler.
        val_set: the validation set.
        progress: receives the events (rank 0), or None.
        stop_requested: whether a signal or a handler asked the run to stop after this step.
    """

    config: TrainConfig
    device: torch.device
    dist: DistInfo
    precision: TrainPrecision
    run_dir: Path
    steps_per_epoch: int
    total_steps: int
    kd: KdSettings
    teacher: HourglassNet | None
    teacher_name: str | None
    labels_as_teacher: bool
    model_name: str
    metric_name: str
    train_set: Any
    sampler: Any
    val_set: Any
    progress: Progress | None
    stop_requested: Callable[[], bool]


__all__ = ["RunContext"]
