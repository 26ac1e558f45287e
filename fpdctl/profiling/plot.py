"""The MACs-against-parameters plot of ``fpdctl profile --plot``."""

from __future__ import annotations

import os
from typing import Sequence

from fpdctl.profiling.profile import ProfileRow
from fpdctl.utils.io import atomic_path


def plot_cost(rows: Sequence[ProfileRow], path: str | os.PathLike[str]) -> None:
    """Write a log-log PNG of GMACs against parameters, each point labelled, the reference ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for row in rows:
        x, y = row.params / 1e6, row.macs / 1e9
        colour = "tab:red" if row.is_reference else "tab:blue"
        ax.scatter(
            [x],
            [y],
            s=70 if row.is_reference else 35,
            color=colour,
            zorder=3,
            edgecolors="black" if row.is_reference else "none",
        )
        label = f"{row.model} (reference)" if row.is_reference else row.model
        ax.annotate(
            label,
            (x, y),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
            fontweight="bold" if row.is_reference else "normal",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters (millions)")
    first = rows[0]
    ax.set_ylabel(f"GMACs per image at {first.input_size}x{first.input_size}")
    ax.set_title("Stacked Hourglass cost: MACs against parameters")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
