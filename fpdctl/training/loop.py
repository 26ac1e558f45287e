"""The step loop of one training run: steps, logged windows, validations and checkpoints.

What makes a run exactly resumable: the data order of epoch ``e`` is a permutation seeded by
``seed + e`` (:class:`~fpdctl.training.distributed.ResumableSampler`), each sample's augmentation
draws from ``default_rng([seed, e, index])`` (``PoseDataset.set_epoch``; the epoch travels with
each index into the persistent DataLoader workers, :class:`~fpdctl.training.distributed.EpochSamples`),
and ``state.pt`` holds the weights, optimizer, scheduler, grad-scaler and RNG states of one step
in one atomically written file. A resumed run skips the batches its epoch already consumed and
continues bit-for-bit on a CPU (same thread count); on CUDA with ``--deterministic``.

Speed: one DataLoader with persistent, prefetching workers serves the whole run; a step reads
one tensor back from the device (:func:`~fpdctl.training.distributed.reduce_step`); validation runs
under the run's autocast.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
from torch import nn

from fpdctl.errors import RuntimeFailure, TrainingDiverged
from fpdctl.models.checkpoint import save_model, unwrap_model
from fpdctl.models.hourglass import HourglassNet
from fpdctl.progress import report
from fpdctl.training.distributed import (
    EpochSamples,
    EpochTaggedSampler,
    StepTotals,
    barrier,
    gather_strings,
    reduce_step,
)
from fpdctl.training.events import (
    TRAIN_CHECKPOINT,
    TRAIN_EVAL,
    TRAIN_SKIPPED,
    TRAIN_STEP,
    EvalLog,
    SkippedLog,
    StepLog,
)
from fpdctl.training.loss import LossTerms
from fpdctl.training.run_dir import (
    BEST_FILE,
    CURVES_FILE,
    EVAL_FILE,
    LAST_FILE,
    STATE_FILE,
    MetricsLog,
    weights_metadata,
)
from fpdctl.training.signals import worker_init
from fpdctl.training.skipped import SkippedImages
from fpdctl.training.state import TrainState, capture_rng_state, save_state
from fpdctl.training.step import apply_gradients, compute_losses
from fpdctl.training.tensorboard import TensorBoardLog
from fpdctl.utils.io import atomic_write_text

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from fpdctl.data.unlabeled import MixedSampler
    from fpdctl.progress import Progress
    from fpdctl.training.config import TrainConfig
    from fpdctl.training.distributed import DistInfo, ResumableSampler
    from fpdctl.training.loss import KdSettings
    from fpdctl.training.precision import TrainPrecision

# Drawing curves.png costs about a second of CPU: during a run it is redrawn at an evaluation
# at most this often (and always at the end or on interruption).
PLOT_INTERVAL_S = 60.0
# Batches each persistent DataLoader worker prepares ahead of the step that needs them.
PREFETCH_BATCHES = 4


@dataclass(frozen=True)
class RunContext:
    """The run's fixed settings and frozen parts, as the step loop needs them (the trainer
    builds it once; the loop never sees the trainer).

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
        labels_as_teacher: the labels fill the teacher's place (the label control).
        model_name: the trained model's name (plot titles, eval.json).
        metric_name: the validation metric ("pckh", "pck", "oks").
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
    progress: Progress | None
    stop_requested: Callable[[], bool]


@dataclass
class RunData:
    """The data the loop draws from. Not frozen: the loop moves the sampler (and the training
    set's augmentation seed) to each epoch in place.

    Attributes:
        train_set: the training set (``set_epoch`` re-seeds its augmentation).
        sampler: its resumable sampler (labelled only, or labelled and unlabelled mixed).
        val_set: the validation set.
    """

    train_set: Dataset
    sampler: ResumableSampler | MixedSampler
    val_set: Dataset


@dataclass
class _Window:
    """The sums of the steps since the last logged row."""

    loss: float = 0.0
    gt_loss: float = 0.0
    kd_loss: float = 0.0
    steps: int = 0
    images: int = 0
    start: float = 0.0


class TrainLoop:
    """The steps of one :meth:`Trainer.run <fpdctl.training.trainer.Trainer.run>`, from the state it
    starts at to the end of the run or a stop request.

    The trainer builds everything (data, model, optimizer, run directory) and hands it over as a
    :class:`RunContext`, the :class:`RunData` and the update machinery; the loop reports its events through the
    context's progress.

    Args:
        run: the run's fixed settings and parts.
        data: the training and validation data, and the sampler.
        model: the module to call (the student, possibly DDP- or compile-wrapped).
        student: the bare student (what is saved).
        optimizer, scheduler, scaler: the step's update machinery.
        metrics: ``metrics.csv``.
        state: the resume point the run starts from (updated in place as it goes).
        saved_step: the step of the checkpoint already on disk (a resumed run's), or None.
    """

    def __init__(
        self,
        run: RunContext,
        data: RunData,
        model: nn.Module,
        student: HourglassNet,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        metrics: MetricsLog,
        state: TrainState,
        saved_step: int | None = None,
    ) -> None:
        self.run = run
        self.data = data
        self.cfg = run.config
        self.model = model
        self.student = student
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.metrics = metrics
        self.state = state
        self.saved_step = saved_step
        self.device = run.device
        self.memory_format = torch.channels_last if self.cfg.channels_last else torch.contiguous_format
        self.pin = self.device.type == "cuda"
        self.last_loss: float | None = None
        # Wall time and images of the logged windows: data loading included, evaluation not.
        self._train_seconds = 0.0
        self._train_images = 0
        self._train_steps = 0
        self._last_plot = -math.inf
        self._train_loader: torch.utils.data.DataLoader | None = None
        self.skipped = SkippedImages(run.run_dir)
        if saved_step is not None:
            self.skipped.load()  # a resumed run keeps the list of its earlier part
        self.tensorboard: TensorBoardLog | None = None
        if self.cfg.tensorboard and run.dist.is_main:
            self.tensorboard = TensorBoardLog(run.run_dir, resumed_at=saved_step)
        self.window = _Window()
        self._reset_window()

    # ------------------------------------------------------------------ helpers
    def _reset_window(self) -> None:
        self.window = _Window(start=time.perf_counter())

    def _report(self, kind: str, data: Any) -> None:
        """Send an event (rank 0 only) counted in steps."""
        if self.run.dist.is_main:
            report(self.run.progress, kind, done=self.state.step, total=self.run.total_steps, data=data)

    def mean_img_per_s(self) -> float:
        """Training images per second over the whole run (NaN when no step ran)."""
        return self._train_images / self._train_seconds if self._train_seconds > 0 else float("nan")

    def _epoch_batches(self, epoch: int, skip_batches: int) -> Iterator[dict[str, Any]]:
        """The batches of ``epoch`` after its first ``skip_batches``, from the run's one DataLoader.

        The loader and its workers persist for the whole run (created on first use, prefetching
        :data:`PREFETCH_BATCHES` batches per worker); each epoch only re-seeds the sampler, which
        reshuffles, and each index carries its epoch into the workers (:class:`EpochSamples`), so
        the batches are those of a fresh loader per epoch, exactly.
        """
        cfg = self.cfg
        self.data.sampler.set_epoch(epoch, skip_batches * cfg.batch_size)
        if self._train_loader is None:
            if getattr(self.data.train_set, "set_epoch", None) is None:
                raise RuntimeFailure(
                    f"{type(self.data.train_set).__name__} has no set_epoch(): augmentation cannot be made reproducible"
                )
            # Worker seeds: only what augmentation does not key by (seed, epoch, index) uses them.
            generator = torch.Generator()
            generator.manual_seed(cfg.seed * 1_000_003 + epoch)
            workers = cfg.workers
            self._train_loader = torch.utils.data.DataLoader(
                EpochSamples(self.data.train_set, cfg.seed),
                batch_size=cfg.batch_size,
                sampler=EpochTaggedSampler(self.data.sampler),
                num_workers=workers,
                pin_memory=self.pin,
                drop_last=True,
                generator=generator,
                worker_init_fn=worker_init if workers > 0 else None,
                persistent_workers=workers > 0,
                prefetch_factor=PREFETCH_BATCHES if workers > 0 else None,
            )
        return iter(self._train_loader)

    def close(self) -> None:
        """Stop the DataLoader workers (the end of training; evaluation needs the cores)."""
        self._train_loader = None  # its persistent iterator shuts its workers down when freed
        if self.tensorboard is not None:
            self.tensorboard.flush()

    def _eval_due(self, step: int) -> bool:
        every = self.cfg.eval_every
        if every is None:
            every = self.run.steps_per_epoch
        return every > 0 and step % every == 0 and step < self.run.total_steps

    def _save_due(self, step: int, evaluated: bool) -> bool:
        every = self.cfg.save_every
        if every is None:
            # With each validation; with validation off (0), still once per epoch.
            if evaluated:
                return True
            every = self.cfg.eval_every or self.run.steps_per_epoch
        return every > 0 and step % every == 0

    # ------------------------------------------------------------------ one step
    def _forward(self, batch: dict[str, Any]) -> tuple[LossTerms, int]:
        images = batch["image"].to(self.device, non_blocking=self.pin)
        images = images.contiguous(memory_format=self.memory_format)
        target = batch["target"].to(self.device, non_blocking=self.pin)
        weight = batch["target_weight"].to(self.device, non_blocking=self.pin)
        labelled = batch.get("labelled")  # present with --unlabeled: False for unlabeled images
        if labelled is not None:
            labelled = labelled.to(self.device, non_blocking=self.pin)
        run = self.run
        terms = compute_losses(
            self.model,
            run.teacher,
            images,
            target,
            weight,
            precision=run.precision,
            kd=run.kd,
            alpha=run.kd.alpha_at(self.state.step, run.total_steps),
            labelled=labelled,
            labels_as_teacher=run.labels_as_teacher,
        )
        return terms, int(images.shape[0])

    def _step(self, batch: dict[str, Any]) -> tuple[StepTotals, float, int]:
        """Forward, reduce over the processes, update the weights.

        Returns:
            The step's totals over all processes, the learning rate it used, and its batch size.

        Raises:
            TrainingDiverged: the loss of some process is NaN or infinite (nothing updated).
        """
        terms, count = self._forward(batch)
        meta = batch.get("meta")
        errors = [e for e in meta.get("image_error", ())] if isinstance(meta, dict) else []
        skipped = [e for e in errors if e]
        # The step's one host-device synchronisation (the skipped count rides along).
        totals = reduce_step(terms.total, terms.gt, terms.kd, stop=self.run.stop_requested(), skipped=len(skipped))
        if totals.skipped_images:
            self._record_skipped(gather_strings(skipped))
        if totals.non_finite:
            self._diverged(float(terms.total.detach()))
        apply_gradients(terms.total, self.optimizer, self.scaler)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        return totals, lr, count

    def _record_skipped(self, errors: list[str]) -> None:
        """Name the images a step could not read: skipped_images.txt and an event (rank 0)."""
        if not self.run.dist.is_main:
            return
        step = self.state.step + 1
        new = self.skipped.add(step, errors)
        if new:
            self._report(
                TRAIN_SKIPPED, SkippedLog(step=step, new=tuple(new), total=len(self.skipped), file=self.skipped.path)
            )

    # ------------------------------------------------------------------ the loop
    def train(self) -> str:
        """Run steps to the end of the run or to a stop request.

        Returns:
            "completed" or "interrupted" (a checkpoint of the last step is saved either way).
        """
        try:
            return self._train()
        finally:
            self.close()

    def _train(self) -> str:
        state, steps_per_epoch, total = self.state, self.run.steps_per_epoch, self.run.total_steps
        while state.step < total:
            epoch, skip = state.epoch, state.batch_in_epoch
            if skip >= steps_per_epoch:  # a checkpoint taken at an epoch's last batch
                state.epoch, state.batch_in_epoch = epoch + 1, 0
                continue
            batch_in_epoch = skip
            for batch in self._epoch_batches(epoch, skip):
                totals, lr, count = self._step(batch)
                batch_in_epoch += 1
                state.step += 1
                state.epoch, state.batch_in_epoch = (
                    (epoch + 1, 0) if batch_in_epoch >= steps_per_epoch else (epoch, batch_in_epoch)
                )
                if self._after_step(totals, lr, count):
                    return "interrupted"
                if state.step >= total:
                    break
            if state.step < total and state.epoch == epoch:
                # The loader ran dry early (it never should): move on rather than loop forever.
                state.epoch, state.batch_in_epoch = epoch + 1, 0
        self._checkpoint()
        return "completed"

    def _after_step(self, totals: StepTotals, lr: float, count: int) -> bool:
        """Account a finished step: log, validate and checkpoint when due. True to stop now."""
        run, state, world, window = self.run, self.state, self.run.dist.world_size, self.window
        window.loss += totals.loss / world
        window.gt_loss += totals.gt_loss / world
        window.kd_loss += totals.kd_loss / world
        window.steps += 1
        window.images += count * world
        # A signal's flag travels in the step's reduction so every process stops at the same
        # step; a single process also honours a request made (by an event handler) during it.
        stop = totals.stop_requests > 0 or (not run.dist.distributed and run.stop_requested())
        epoch_frac = state.step / run.steps_per_epoch
        evaluate = self._eval_due(state.step)
        if evaluate or stop or state.step >= run.total_steps or state.step % self.cfg.log_every == 0:
            self._log(lr, epoch_frac=epoch_frac, evaluate=evaluate)
        if not stop and not run.dist.distributed and run.stop_requested():
            stop = True
            if self.window.steps:
                self._log(lr, epoch_frac=epoch_frac, evaluate=False)
        if stop or self._save_due(state.step, evaluate):
            self._checkpoint()
        if self.window.steps == 0:  # a window just closed: time the next one from here
            self.window.start = time.perf_counter()
        if stop and run.dist.is_main and self.metrics.rows:
            self._plot(force=True)
        return stop

    def _diverged(self, value: float) -> None:
        step = self.state.step + 1
        if self.saved_step is not None:
            kept = f"the last good checkpoint ({self.run.run_dir / LAST_FILE}, step {self.saved_step}) is kept"
        else:
            kept = "no checkpoint had been written yet"
        raise TrainingDiverged(
            f"training diverged: the loss is {value} at step {step}; {kept}; try a lower `lr`", params="lr"
        )

    # ------------------------------------------------------------------ logging and validation
    def _log(self, lr: float, *, epoch_frac: float, evaluate: bool) -> None:
        """Close the logged window: report it, validate if due, append its metrics row."""
        run, window = self.run, self.window
        seconds = max(time.perf_counter() - window.start, 1e-9)
        n = max(window.steps, 1)
        self.last_loss = window.loss / n
        self._train_seconds += seconds
        self._train_images += window.images
        self._train_steps += window.steps
        remaining = run.total_steps - self.state.step
        log = StepLog(
            step=self.state.step,
            epoch=epoch_frac,
            loss=self.last_loss,
            gt_loss=window.gt_loss / n,
            kd_loss=window.kd_loss / n if run.teacher_name is not None else None,
            lr=lr,
            img_per_s=window.images / seconds,
            total_steps=run.total_steps,
            eta_s=remaining * self._train_seconds / max(self._train_steps, 1),
        )
        row: dict[str, Any] = {
            "step": log.step,
            "epoch": round(epoch_frac, 4),
            "loss": log.loss,
            "gt_loss": log.gt_loss,
            "kd_loss": log.kd_loss,
            "lr": log.lr,
            "img_per_s": round(log.img_per_s, 2),
        }
        self._report(TRAIN_STEP, log)
        if evaluate:
            value = self._validate()
            row[f"val_{run.metric_name}"] = None if value is None else round(value, 4)
        if run.dist.is_main:
            self.metrics.append(row)
            if self.tensorboard is not None:
                self.tensorboard.add_row(row)
        self._reset_window()

    def _validate(self) -> float | None:
        """Validate on rank 0 (other ranks wait); returns the pooled mean on rank 0."""
        value: float | None = None
        if self.run.dist.is_main:
            value = float(self._evaluate_and_keep_best().mean)
            self._plot()
        barrier()
        return value

    def _evaluate_and_keep_best(self) -> Any:
        """Score the model on the validation split (rank 0 only); a new best saves best.safetensors.

        Returns:
            The metric result (PCKh or PCK) of the current weights.
        """
        from fpdctl.evaluation import evaluate_model

        run, state = self.run, self.state
        start = time.perf_counter()
        # At the run's precision, as the steps: the heatmaps are decoded in float32.
        with run.precision.autocast(self.device):
            result = evaluate_model(
                unwrap_model(self.model),
                self.data.val_set,
                flip_test=self.cfg.flip_test,
                batch_size=self.cfg.eval_batch_size,
                device=self.device,
                num_workers=self.cfg.workers,
            )
        value = float(result.metric.mean)
        best = state.best_metric is None or value > state.best_metric
        if best:
            state.best_metric, state.best_step = value, state.step
            state.extra["best_eval"] = result.metric.to_dict()
            save_model(self.student, run.run_dir / BEST_FILE, weights_metadata(self.cfg, state.step, value))
        self._report(
            TRAIN_EVAL,
            EvalLog(
                step=state.step, metric=run.metric_name, value=value, best=best, seconds=time.perf_counter() - start
            ),
        )
        return result.metric

    def _plot(self, *, force: bool = False) -> None:
        """Redraw curves.png: always at the end, during the run at most once a minute."""
        from fpdctl.training.plots import plot_curves

        now = time.monotonic()
        if not force and now - self._last_plot < PLOT_INTERVAL_S:
            return
        self._last_plot = now
        plot_curves(
            self.metrics.rows,
            self.run.run_dir / CURVES_FILE,
            title=f"{self.cfg.command} {self.run.model_name} ({self.run.run_dir.name})",
        )

    # ------------------------------------------------------------------ checkpoints
    def _write_state(self) -> None:
        """Write state.pt (rank 0): weights, optimizer, scheduler, scaler, RNG, counters."""
        state = self.state
        state.model = {k: v.detach().cpu().clone() for k, v in self.student.state_dict().items()}
        state.optimizer = self.optimizer.state_dict()
        state.scheduler = self.scheduler.state_dict()
        state.scaler = self.scaler.state_dict() if self.scaler.is_enabled() else {}
        state.rng = capture_rng_state()
        state.world_size = self.run.dist.world_size
        state.global_batch = self.cfg.batch_size * self.run.dist.world_size
        try:
            save_state(state, self.run.run_dir / STATE_FILE)
        finally:
            state.model = {}
        self.saved_step = state.step

    def _checkpoint(self) -> None:
        """Save the resume point and last.safetensors (rank 0; every rank waits)."""
        run, state = self.run, self.state
        if run.dist.is_main and self.saved_step != state.step:
            # state.pt first: it alone is the resume point; last.safetensors is the user copy.
            self._write_state()
            last = run.run_dir / LAST_FILE
            save_model(self.student, last, weights_metadata(self.cfg, state.step, None))
            self._report(TRAIN_CHECKPOINT, last)
        barrier()

    def final_evaluation(self) -> dict[str, Any]:
        """Evaluate the final model (rank 0), update best, write eval.json and curves.png.

        Returns:
            The final model's metric table (``AccuracyResult.to_dict()``).
        """
        run, state = self.run, self.state
        metric = self._evaluate_and_keep_best()
        # The final row carries the final model's figure.
        self.metrics.set_last(state.step, f"val_{run.metric_name}", round(float(metric.mean), 4))
        if self.tensorboard is not None:
            self.tensorboard.add_scalar(f"val_{run.metric_name}", round(float(metric.mean), 4), state.step)
        final = metric.to_dict()
        payload = {
            "run_dir": str(run.run_dir),
            "model": run.model_name,
            "teacher": run.teacher_name,
            "data": self.cfg.data,
            "split": "val",
            "persons": len(self.data.val_set),
            "flip_test": self.cfg.flip_test,
            "metric": run.metric_name,
            "final": {"step": state.step, "checkpoint": LAST_FILE, **final},
            "best": {
                "step": state.best_step,
                "checkpoint": BEST_FILE,
                **(state.extra.get("best_eval") or {}),
            },
        }
        atomic_write_text(run.run_dir / EVAL_FILE, json.dumps(payload, indent=2) + "\n")
        # state.pt gets the final best figures too (a later --resume with more steps keeps them).
        self._write_state()
        self._plot(force=True)
        if self.tensorboard is not None:
            self.tensorboard.close()
        return final


__all__ = ["PLOT_INTERVAL_S", "RunContext", "RunData", "TrainLoop"]
