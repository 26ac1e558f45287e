"""``curves.png``: training loss terms and validation accuracy against the step.

Drawn from the rows of ``metrics.csv`` (the same numbers a user reads), with matplotlib's Agg
backend so it works with no display, and written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from fpdctl.metrics import score_name
from fpdctl.utils.io import atomic_save


def _column(rows: Iterable[Mapping[str, Any]], name: str) -> tuple[list[float], list[float]]:
    steps: list[float] = []
    values: list[float] = []
    for row in rows:
        raw = row.get(name)
        if raw in (None, ""):
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            steps.append(float(row["step"]))
            values.append(value)
    return steps, values


def plot_curves(rows: list[Mapping[str, Any]], path: str | os.PathLike[str], title: str = "") -> Path:
    """Draw the loss terms (log scale) and the validation metric, side by side.

    Args:
        rows: metrics rows with ``step``, ``loss``, ``gt_loss``, ``kd_loss`` and a ``val_*``
            column (blank where not measured).
        path: the PNG to write.
        title: figure title (e.g. the model and the run directory name).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for name, style in (("loss", "-"), ("gt_loss", "--"), ("kd_loss", ":")):
        steps, values = _column(rows, name)
        if values:
            ax_loss.plot(steps, values, style, label=name)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    if any(_column(rows, "loss")[1]) and min(_column(rows, "loss")[1] or [1.0]) > 0:
        ax_loss.set_yscale("log")
    ax_loss.grid(True, alpha=0.3)
    if ax_loss.lines:
        ax_loss.legend()
    ax_loss.set_title("training loss")

    val_names = [k for k in (rows[0].keys() if rows else []) if str(k).startswith("val_")]
    for name in val_names:
        steps, values = _column(rows, name)
        if values:
            ax_val.plot(steps, values, "o-", label=score_name(name[len("val_") :]))
    ax_val.set_xlabel("step")
    ax_val.set_ylabel("accuracy (%)")
    ax_val.grid(True, alpha=0.3)
    if ax_val.lines:
        ax_val.legend()
    ax_val.set_title("validation")
    if title:
        fig.suptitle(title)
    try:
        atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)
    return Path(path)


__all__ = ["plot_curves"]
