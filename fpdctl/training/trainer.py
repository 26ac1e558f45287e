"""One small trainer for ``fpdctl train`` and ``fpdctl distill``.

:class:`Trainer` checks the options, the teacher and the data when it is built (creating nothing
on disk), then :meth:`Trainer.run` creates the run directory, builds the model and optimizer,
restores a resume point and hands over to the step loop (:class:`~fpdctl.training.loop.TrainLoop`).
What happens is reported as :mod:`fpdctl.progress` events (:mod:`fpdctl.training.events`); the
trainer itself never prints.

The teacher (distillation) is a plain module: frozen, in eval mode, run under
``torch.inference_mode`` on the same augmented batch, never wrapped in DistributedDataParallel.
It sees that batch in its own input convention (:class:`~fpdctl.models.input_adapter.InputAdapter`
converts the dataset's NATIVE tensors on the fly), as it was trained; the student trains in NATIVE
and records it (with the run's sigma) in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fpdctl.codec import heatmap_size
from fpdctl.data.registry import spec_for_data
from fpdctl.errors import CheckpointError, UsageError
from fpdctl.models.checkpoint import load_state_dict_strict
from fpdctl.models.checkpoint_files import checkpoint_file, file_sha256, trained_input_size
from fpdctl.models.convention import NATIVE, InputConvention
from fpdctl.models.factory import create_model
from fpdctl.models.hourglass import HourglassNet, count_parameters
from fpdctl.models.input_adapter import adapt_input
from fpdctl.models.spec import HourglassSpec
from fpdctl.progress import Progress, report
from fpdctl.training.config import TrainConfig, teacher_input_override
from fpdctl.training.distributed import (
    DistInfo,
    ResumableSampler,
    barrier,
    env_dist_info,
    init_distributed,
    shutdown_distributed,
)
from fpdctl.training.events import TRAIN_END, TRAIN_START, RunInfo, TrainResult
from fpdctl.training.loop import RunContext, RunData, TrainLoop
from fpdctl.training.loss import GROUND_TRUTH_TEACHER
from fpdctl.training.precision import TrainPrecision, arithmetic_mode, resolve_precision
from fpdctl.training.run_dir import (
    LAST_FILE,
    METRICS_FILE,
    RUN_FILES,
    STATE_FILE,
    TRAIN_COLUMNS,
    MetricsLog,
    check_run_dir,
    prepare_run_dir,
    weights_step,
    write_run_config,
)
from fpdctl.training.schedule import Schedule, parse_schedule
from fpdctl.training.signals import stop_signals_handled
from fpdctl.training.state import TrainState, check_same_world, load_state, restore_rng_state
from fpdctl.training.step import make_optimizer
from fpdctl.utils.io import require_file


class Trainer:
    """Train (or distil into) one Stacked Hourglass.

    Construction checks everything that can be wrong with the options, the teacher and the data
    and creates nothing on disk; :meth:`run` creates the run directory and trains.

    Args:
        config: validated options (``config.out`` must be set).
        progress: receives the run's events (rank 0 only), see :mod:`fpdctl.training.events`.
        resume: continue the run in ``config.out`` from its ``state.pt``.
        overwrite: replace the run files of an existing run directory.
        dist_info: the process's place in a torchrun job (default: from the environment).

    Attributes:
        student: the network being trained, once :meth:`run` has built it (None before).
        teacher: the frozen teacher (distillation), or None.
        train_set, val_set: the training split and the (possibly limited) validation split.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        progress: Progress | None = None,
        resume: bool = False,
        overwrite: bool = False,
        dist_info: DistInfo | None = None,
    ) -> None:
        from fpdctl.utils.device import resolve_device

        if not config.out:
            raise UsageError("`out` RUN_DIR is required", params="out")
        self.config = config
        self.progress = progress
        self.resume = resume
        self.overwrite = overwrite
        self.dist = dist_info or env_dist_info()
        self.run_dir = Path(config.out)
        check_run_dir(self.run_dir, resume=resume, overwrite=overwrite)

        device = resolve_device(config.device)
        if device.type == "cuda" and self.dist.distributed:
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        # On CUDA the precision depends on the GPU, asked after set_device (run()), so that no
        # process creates a context on cuda:0; elsewhere it is known now.
        self.precision: TrainPrecision | None = (
            None if device.type == "cuda" else resolve_precision(config.precision, device)
        )
        # A resumed run's state, read now: a damaged file, or another world size, fails here.
        self._resume_state: TrainState | None = None
        self.backend: str | None = None  # the process group joined by run(), if any
        if resume and (self.run_dir / STATE_FILE).is_file():
            self._resume_state = load_state(self.run_dir / STATE_FILE)
            check_same_world(
                self._resume_state,
                self.dist.world_size,
                config.batch_size * self.dist.world_size,
                self.run_dir / STATE_FILE,
            )
        self.schedule: Schedule = parse_schedule(config.schedule, config.lr_factor)
        # The data's joints (a name without a j suffix takes them; COCO: 17), so the teacher
        # check below compares with what is trained.
        self.spec: HourglassSpec = spec_for_data(config.model, config.data_spec)

        # One line each for the CLI (stderr): settings that work but are probably not meant.
        self.warnings: list[str] = []
        # The convention the student trains in and records: the datasets' (with this run's sigma).
        self.input_convention = dataclasses.replace(NATIVE, train_sigma=config.sigma)
        # The teacher first: a missing or unfit teacher must fail before any data is built.
        self.teacher: HourglassNet | None = None
        self.teacher_info: dict[str, Any] | None = None
        # ``--teacher ground-truth`` (the control of a distillation loss): no network to load.
        self.labels_as_teacher = config.distill and config.teacher == GROUND_TRUTH_TEACHER
        if self.labels_as_teacher:
            self.teacher_info = {"name": GROUND_TRUTH_TEACHER}
        elif config.distill:
            self.teacher = self._load_teacher(str(config.teacher))
        self.init_info: dict[str, Any] | None = None
        self._init_model: HourglassNet | None = None
        if config.init:
            init_file = require_file(checkpoint_file(config.init), "initial checkpoint")
            self._init_model = create_model(init_file, spec=self.spec)
            self.init_info = {
                "path": config.init,
                "sha256": file_sha256(init_file),
                "input_convention": self._init_model.input_convention.to_dict(),
            }
            self._check_init_convention(self._init_model.input_convention)
        self._build_data()
        self.student: HourglassNet | None = None
        self._stop_signal: int | None = None
        self._stop_requested = False

    @property
    def teacher_name(self) -> str | None:
        """The teacher's model name, ``ground-truth`` for the label control, None without one."""
        if self.labels_as_teacher:
            return GROUND_TRUTH_TEACHER
        return None if self.teacher is None else self.teacher.spec.name

    # ------------------------------------------------------------------ setup
    def _load_teacher(self, path: str) -> HourglassNet:
        # A pretrained name (synthetic-hg2x64) is its shipped file, checked against its card.
        file = require_file(checkpoint_file(path), "teacher checkpoint")
        teacher = create_model(file, input_convention=teacher_input_override(self.config))
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
        self.teacher_info = {
            "path": str(path),
            "sha256": file_sha256(file),
            "spec": tspec.to_dict(),
            "name": tspec.name,
        }
        self.teacher_info["input_convention"] = teacher.input_convention.to_dict()
        self._check_teacher_input_size(path)
        self._check_teacher_sigma(teacher.input_convention)
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.eval()
        # The dataset's tensors, converted to the teacher's own convention when it has another.
        return adapt_input(teacher, NATIVE)  # type: ignore[return-value]

    def _check_teacher_input_size(self, path: str) -> None:
        """Record the size the teacher learned at; warn when the run trains at another one (a
        teacher's maps at a size it never saw can be far off: the shipped synthetic-hg2x64 scores
        90.0 PCKh at its 128 px and 18.0 at 256 px)."""
        trained = trained_input_size(path)
        assert self.teacher_info is not None
        self.teacher_info["trained_input_size"] = trained
        size = self.config.input_size
        if trained is not None and trained != size:
            self.warnings.append(
                f"the teacher was trained at {trained} px and `input_size` is {size}: its heatmaps at "
                f"{size} px may be far from what it learned (leave `input_size` out to train at {trained})"
            )

    def _check_teacher_sigma(self, convention: InputConvention) -> None:
        """Warn when the teacher is known to have been trained at another heatmap sigma."""
        trained, sigma = convention.train_sigma, self.config.sigma
        if trained is None or math.isclose(trained, sigma):
            return
        shape = "narrower" if trained < sigma else "wider"
        self.warnings.append(
            f"the teacher was trained with heatmap sigma {trained:g} ({convention.name}) and `sigma` "
            f"is {sigma:g}: its heatmaps are {shape} than the targets the student also learns"
        )

    def _check_init_convention(self, convention: InputConvention) -> None:
        """Warn when the initial weights were trained in another input convention."""
        if convention != NATIVE:
            self.warnings.append(
                f"`init` was trained in the {convention.describe()} input convention; training "
                f"feeds {NATIVE.describe()}, so its weights start on inputs they have not seen"
            )

    def _build_data(self) -> None:
        from fpdctl.data.registry import build_dataset
        from fpdctl.data.subset import FirstPersons
        from fpdctl.data.transforms import AugmentConfig
        from fpdctl.evaluation import check_model_joints

        cfg = self.config
        augment = AugmentConfig.for_style(cfg.augment_style) if cfg.augment else None
        self.train_set = build_dataset(
            cfg.data_spec, "train", input_size=cfg.input_size, sigma=cfg.sigma, augment=augment
        )
        check_model_joints(self.spec.joints, self.train_set.channel_joint_set)
        val_set = build_dataset(cfg.data_spec, "val", input_size=cfg.input_size, sigma=cfg.sigma, augment=None)
        self.val_set = FirstPersons(val_set, cfg.val_limit) if cfg.val_limit else val_set
        # The validation ground truth now: missing head boxes or a missing ground-truth file
        # fail when the run is built, not at the first validation an epoch later.
        self.val_set.eval_reference()
        self.metric_name = str(getattr(val_set, "metric", "pckh"))
        self.sampler = ResumableSampler(
            self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank, seed=cfg.seed
        )
        self.num_labelled = len(self.train_set)
        if cfg.unlabeled:
            self._mix_unlabeled(augment)
        self.steps_per_epoch = self.sampler.num_samples // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise UsageError(
                f"the training split has {self.num_labelled} persons, fewer than one batch of "
                f"{cfg.batch_size} per process ({self.dist.world_size} process(es))"
            )
        self.total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * self.steps_per_epoch
        self.columns = TRAIN_COLUMNS + (f"val_{self.metric_name}",)

    def _mix_unlabeled(self, augment: Any) -> None:
        """Put the ``--unlabeled`` images behind the labelled set and mix them into each batch
        (:mod:`fpdctl.data.unlabeled`)."""
        from fpdctl.data.unlabeled import MixedDataset, MixedSampler, build_unlabeled, split_batch

        cfg = self.config
        unlabeled = build_unlabeled(
            cfg.unlabeled,
            cfg.data_spec,
            joint_set=self.train_set.channel_joint_set,
            input_size=cfg.input_size,
            sigma=cfg.sigma,
            augment=augment,
        )
        n_labelled, n_unlabeled = split_batch(cfg.batch_size, cfg.unlabeled_ratio)
        self.train_set = MixedDataset(self.train_set, unlabeled)
        self.sampler = MixedSampler(
            self.sampler,
            num_labelled=self.num_labelled,
            num_unlabeled=len(unlabeled),
            labelled_per_batch=n_labelled,
            unlabeled_per_batch=n_unlabeled,
            seed=cfg.seed,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
        )

    # ------------------------------------------------------------------ stopping
    @property
    def stop_requested(self) -> bool:
        """Whether a signal or :meth:`request_stop` asked the run to stop after this step."""
        return self._stop_requested

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
        with stop_signals_handled(self._on_signal), arithmetic_mode(self.config.deterministic):
            self._select_device()
            self.backend = init_distributed(self.dist, self.device)
            try:
                return self._run()
            finally:
                shutdown_distributed()

    def _select_device(self) -> None:
        """Make this process's GPU the current one, then resolve the precision on it.

        ``set_device`` comes first, before NCCL picks a GPU for this rank and before anything
        asks about a GPU, so every rank's CUDA context is on its own GPU only.
        """
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            self.precision = resolve_precision(self.config.precision, self.device)

    def _run(self) -> TrainResult:
        started = time.perf_counter()
        loop, restarted = self._setup()
        self._report(TRAIN_START, loop.state.step, self._run_info(loop.student, loop.state.step, restarted))
        status = loop.train()
        final_eval: dict[str, Any] | None = None
        if status == "completed" and self.dist.is_main:
            final_eval = loop.final_evaluation()
        barrier()
        state = loop.state
        result = TrainResult(
            run_dir=self.run_dir,
            status=status,
            signal=self._stop_signal,
            steps=state.step,
            total_steps=self.total_steps,
            final_loss=loop.last_loss,
            best_metric=state.best_metric,
            best_step=state.best_step,
            final_eval=final_eval,
            metric=self.metric_name,
            seconds=time.perf_counter() - started,
            img_per_s=loop.mean_img_per_s(),
            files={name: self.run_dir / name for name in RUN_FILES if (self.run_dir / name).exists()},
            skipped_images=len(loop.skipped),
        )
        self._report(TRAIN_END, state.step, result)
        return result

    def _report(self, kind: str, step: int, data: Any) -> None:
        if self.dist.is_main:
            report(self.progress, kind, done=step, total=self.total_steps, data=data)

    def _setup(self) -> tuple[TrainLoop, bool]:
        """Seed, build the student and its optimizer, restore the resume point, prepare the run
        directory.

        Returns:
            The loop ready to train, and whether a ``--resume`` found no checkpoint (restarted).
        """
        cfg, device = self.config, self.device
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        random.seed(cfg.seed)

        student = create_model(self.spec) if self._init_model is None else self._init_model
        student.input_convention = self.input_convention
        student.train()
        self.student = student
        memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        student.to(device=device, memory_format=memory_format)
        if self.teacher is not None:
            self.teacher.to(device=device, memory_format=memory_format)

        optimizer = make_optimizer(cfg, student, fused=device.type == "cuda")
        steps_per_epoch, total_steps = self.steps_per_epoch, self.total_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lr_lambda=lambda step: self.schedule.multiplier(step, steps_per_epoch, total_steps),
        )
        scaler = torch.amp.GradScaler(device.type, enabled=self.precision.scaler)

        # No state.pt: the run was stopped before its first checkpoint and starts over.
        restarted = self.resume and not (self.run_dir / STATE_FILE).is_file()
        state = TrainState()
        if self.resume and not restarted:
            state = self._restore(student, optimizer, scheduler, scaler)
        model = self._wrap(student)
        metrics = self._prepare_run_dir(state.step)
        loop = TrainLoop(
            self._run_context(),
            RunData(self.train_set, self.sampler, self.val_set),
            model,
            student,
            optimizer,
            scheduler,
            scaler,
            metrics,
            state,
            # A kill between state.pt and last.safetensors leaves the user copy behind the resume
            # point: then the loop writes it again, even if no step is left to run.
            saved_step=state.step
            if self.resume and not restarted and weights_step(self.run_dir / LAST_FILE) == state.step
            else None,
        )
        return loop, restarted

    def _run_context(self) -> RunContext:
        """What the step loop needs of this run, frozen."""
        assert self.precision is not None  # resolved by _select_device
        return RunContext(
            config=self.config,
            device=self.device,
            dist=self.dist,
            precision=self.precision,
            run_dir=self.run_dir,
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
            kd=self.config.kd,
            teacher=self.teacher,
            teacher_name=self.teacher_name,
            labels_as_teacher=self.labels_as_teacher,
            model_name=self.spec.name,
            metric_name=self.metric_name,
            progress=self.progress,
            stop_requested=lambda: self.stop_requested,
        )

    def _restore(
        self,
        student: HourglassNet,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
    ) -> TrainState:
        """Load ``state.pt`` into the freshly built student, optimizer, scheduler, scaler, RNGs."""
        path = self.run_dir / STATE_FILE
        state = self._resume_state if self._resume_state is not None else load_state(path)
        self._resume_state = None  # the weights it holds are the student's now
        try:
            load_state_dict_strict(student, state.model, source=str(path))
            optimizer.load_state_dict(state.optimizer)
            scheduler.load_state_dict(state.scheduler)
            if state.scaler:
                scaler.load_state_dict(state.scaler)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"cannot resume from {path}: {exc}") from exc
        if state.rng:
            restore_rng_state(state.rng)
        return state

    def _wrap(self, student: HourglassNet) -> nn.Module:
        """The module the loop calls: DDP across processes, compiled if asked."""
        model: nn.Module = student
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device = self.device
            model = DistributedDataParallel(student, device_ids=[device.index] if device.type == "cuda" else None)
        if self.config.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        return model

    def _prepare_run_dir(self, step: int) -> MetricsLog:
        """Create the run directory, write config.json and start metrics.csv (rank 0)."""
        metrics = MetricsLog(self.run_dir / METRICS_FILE, self.columns)
        if self.dist.is_main:
            prepare_run_dir(self.run_dir, clear=self.overwrite and not self.resume)
            write_run_config(
                self.run_dir,
                self.config,
                resolved=self._resolved(),
                spec=self.spec,
                teacher=self.teacher_info,
                init=self.init_info,
                resumed_at=step if self.resume else None,
                warnings=self.warnings,
            )
            metrics.start(step if self.resume else None)
        barrier()
        return metrics

    def _resolved(self) -> dict[str, Any]:
        """What the options resolved to on this machine (``config.json``'s "resolved")."""
        return {
            "device": str(self.device),
            "precision": self.precision.name,
            "world_size": self.dist.world_size,
            "batch_size_total": self.config.batch_size * self.dist.world_size,
            "workers": self.config.workers,
            "process_group": self.backend,  # "nccl", "gloo", or None for a plain single process
            # Fixed input sizes: cuDNN benchmarks its algorithms once, unless --deterministic.
            "cudnn_benchmark": self.device.type == "cuda" and not self.config.deterministic,
            "deterministic": self.config.deterministic,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "train_size": self.num_labelled,
            "unlabeled_size": len(self.train_set) - self.num_labelled,
            "val_size": len(self.val_set),
            "metric": self.metric_name,
            "heatmap_size": heatmap_size(self.config.input_size),
            "input_convention": self.input_convention.to_dict(),
            "schedule": {
                "kind": self.schedule.kind,
                "milestones_epochs": list(self.schedule.milestones),
                "factor": self.schedule.factor,
            },
        }

    def _run_info(self, student: HourglassNet, start_step: int, restarted: bool) -> RunInfo:
        return RunInfo(
            run_dir=self.run_dir,
            model=self.spec.name,
            teacher=self.teacher_name,
            parameters=count_parameters(student),
            device=str(self.device),
            precision=self.precision.name,
            world_size=self.dist.world_size,
            start_step=start_step,
            total_steps=self.total_steps,
            steps_per_epoch=self.steps_per_epoch,
            train_size=self.num_labelled,
            val_size=len(self.val_set),
            metric=self.metric_name,
            restarted=restarted,
        )


__all__ = ["Trainer"]
