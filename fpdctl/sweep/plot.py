"""``sweep.png``: PCKh against MACs for every config of a sweep, Pareto front drawn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from fpdctl.utils.io import atomic_path

if TYPE_CHECKING:
    from fpdctl.sweep.results import SweepResult

# One colour and marker per initialisation, so sliced and scratch students read apart at a glance.
INIT_STYLE: dict[str, tuple[str, str]] = {"teacher": ("tab:blue", "o"), "scratch": ("tab:orange", "s")}
INIT_LABEL: dict[str, str] = {"teacher": "sliced from the teacher", "scratch": "from scratch"}


def plot_sweep(summary: "SweepResult", path: str | os.PathLike[str]) -> Path:
    """Write PCKh (after fine-tuning) against GMACs, log x axis.

    Every config is a point (colour by init, hollow marker at its zero-shot PCKh joined to it),
    the PCKh-MACs Pareto front is a step line, the recommendation is starred and the teacher is a
    dashed horizontal line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(9.5, 5), dpi=120)
    by_key = {r.key: r for r in summary.results}
    for init, (colour, marker) in INIT_STYLE.items():
        rows = [r for r in summary.results if r.init == init]
        if not rows:
            continue
        xs = [r.macs / 1e9 for r in rows]
        ax.scatter(xs, [r.pckh for r in rows], color=colour, marker=marker, s=40, zorder=3,
                   label=f"{INIT_LABEL[init]}: fine-tuned")
        ax.scatter(xs, [r.pckh_zero_shot for r in rows], facecolors="none", edgecolors=colour,
                   marker=marker, s=30, zorder=2, label=f"{INIT_LABEL[init]}: zero-shot")
        for r in rows:
            ax.plot([r.macs / 1e9] * 2, [r.pckh_zero_shot, r.pckh], color=colour, alpha=0.35, lw=1)
            ax.annotate(r.model, (r.macs / 1e9, r.pckh), textcoords="offset points", xytext=(4, 4), fontsize=7)
    front = [by_key[k] for k in summary.pareto.get("macs", []) if k in by_key]
    if len(front) > 1:
        ax.step([r.macs / 1e9 for r in front], [r.pckh for r in front], where="post", color="black",
                lw=1, alpha=0.7, label="Pareto front")
    if summary.teacher is not None:
        ax.axhline(summary.teacher.pckh, color="tab:red", ls="--", lw=1,
                   label=f"teacher {summary.teacher.model} ({summary.teacher.pckh:.1f})")
    pick = by_key.get(summary.recommendation.key or "")
    if pick is not None:
        ax.scatter([pick.macs / 1e9], [pick.pckh], marker="*", s=260, color="gold", edgecolors="black",
                   zorder=4, label=f"recommended: {pick.key}")
    ax.set_xscale("log")
    ax.margins(x=0.12)  # room for the labels of the cheapest and dearest points
    plain = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("GMACs per image (log scale)")
    ax.set_ylabel("accuracy, % (PCKh; PCK on LSP)")
    ax.set_title("prune-sweep: accuracy against cost")
    ax.grid(True, which="both", alpha=0.3)
    # Outside the axes: inside, it would hide points wherever they happen to fall.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
