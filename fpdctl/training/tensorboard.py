"""``--tensorboard``: the rows of ``metrics.csv`` also as TensorBoard scalars in the run directory.

``metrics.csv`` and ``curves.png`` stay the run's record; the event files are for watching runs
side by side (``tensorboard --logdir runs/``). Each logged row becomes one scalar per column at
its step: ``train/loss``, ``train/gt_loss``, ``train/kd_loss`` (distillation), ``train/lr``,
``train/img_per_s`` and ``val/<score>`` at each validation and at the end, the score named as the
console names it (``val/PCKh``, ``val/PCK``, ``val/AP`` for COCO's OKS, from the ``val_pckh``,
``val_pck``, ``val_oks`` columns).
Only rank 0 writes. The writer is torch's :class:`~torch.utils.tensorboard.SummaryWriter`, which
needs the ``tensorboard`` package (``pip install 'fpdctl[tensorboard]'``); the config check
(:func:`fpdctl.training.config.check_tensorboard`) refuses the flag without it, before the run starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

# metrics.csv columns that are the row's position, not a scalar to plot.
_POSITION_COLUMNS = frozenset({"step", "epoch"})
_VAL_PREFIX = "val_"


def scalar_tag(column: str) -> str:
    """The TensorBoard tag of a ``metrics.csv`` column: ``val_oks`` -> ``val/AP``, ``val_pckh`` ->
    ``val/PCKh``, ``lr`` -> ``train/lr``."""
    from fpdctl.metrics import score_name

    if column.startswith(_VAL_PREFIX):
        return "val/" + score_name(column[len(_VAL_PREFIX) :])
    return "train/" + column


class TensorBoardLog:
    """Event files in ``run_dir`` with the run's scalars.

    Args:
        run_dir: the run directory (the event files go there, beside metrics.csv).
        resumed_at: a resumed run's checkpoint step: events a previous attempt wrote after it
            are hidden, as metrics.csv drops its rows past the checkpoint; those at the step
            itself stay (the run continues from step ``resumed_at + 1``).
    """

    def __init__(self, run_dir: Path, *, resumed_at: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # TensorBoard's reader drops every event at or after a restart marker's step, so the
        # marker goes one past the checkpoint: the checkpoint's own row was logged before it.
        purge_step = None if resumed_at is None else resumed_at + 1
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)

    def add_scalar(self, column: str, value: float, step: int) -> None:
        """One value of a ``metrics.csv`` column at ``step``."""
        self.writer.add_scalar(scalar_tag(column), float(value), int(step))

    def add_row(self, row: Mapping[str, Any]) -> None:
        """Every numeric column of a ``metrics.csv`` row at the row's step (None: not logged)."""
        step = int(row["step"])
        for column, value in row.items():
            if column in _POSITION_COLUMNS or value is None:
                continue
            self.add_scalar(column, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


__all__ = ["TensorBoardLog", "scalar_tag"]
