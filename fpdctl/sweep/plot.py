"""``sweep.png``: PCKh against MACs for every config of a sweep, Pareto front drawn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from fpdctl.models.spec import MOBILE, STANDARD
from fpdctl.utils.io import atomic_path

# One colour and marker per initialisation and block type, so sliced and scratch students, and
# standard and mobile ones, read apart at a glance on the one front.
STYLE: dict[tuple[str, str], tuple[str, str]] = {
    ("teacher", STANDARD): ("tab:blue", "o"),
    ("scratch", STANDARD): ("tab:orange", "s"),
    ("teacher", MOBILE): ("tab:purple", "D"),
    ("scratch", MOBILE): ("tab:green", "^"),
}
INIT_LABEL: dict[str, str] = {"teacher": "sliced from the teacher", "scratch": "from scratch"}
BLOCK_LABEL: dict[str, str] = {STANDARD: "", MOBILE: "mobile, "}


class SweepSummary(Protocol):
    """What the plot reads of a :class:`~fpdctl.sweep.results.SweepResult`, typed by its shape so
    that this module does not import the one that calls it."""

    @property
    def results(self) -> Sequence[Any]: ...

    @property
    def pareto(self) -> Mapping[str, Sequence[str]]: ...

    @property
    def teacher(self) -> Any: ...

    @property
    def recommendation(self) -> Any: ...


def plot_sweep(summary: SweepSummary, path: str | os.PathLike[str]) -> Path:
    """Write the score (after fine-tuning) against GMACs, log x axis.

    Every config is a point (colour and marker by init and block type, hollow marker at its
    zero-shot score joined to it), the score-MACs Pareto front is a step line, the recommendation
    is starred and the teacher is a dashed horizontal line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(9.5, 5), dpi=120)
    by_key = {r.key: r for r in summary.results}
    for (init, block), (colour, marker) in STYLE.items():
        rows = [r for r in summary.results if r.init == init and r.block == block]
        if not rows:
            continue
        xs = [r.macs / 1e9 for r in rows]
        label = f"{BLOCK_LABEL[block]}{INIT_LABEL[init]}"
        ax.scatter(
            xs, [r.score for r in rows], color=colour, marker=marker, s=40, zorder=3, label=f"{label}: fine-tuned"
        )
        ax.scatter(
            xs,
            [r.score_zero_shot for r in rows],
            facecolors="none",
            edgecolors=colour,
            marker=marker,
            s=30,
            zorder=2,
            label=f"{label}: zero-shot",
        )
        for r in rows:
            ax.plot([r.macs / 1e9] * 2, [r.score_zero_shot, r.score], color=colour, alpha=0.35, lw=1)
            ax.annotate(r.model, (r.macs / 1e9, r.score), textcoords="offset points", xytext=(4, 4), fontsize=7)
    front = [by_key[k] for k in summary.pareto.get("macs", []) if k in by_key]
    if len(front) > 1:
        ax.step(
            [r.macs / 1e9 for r in front],
            [r.score for r in front],
            where="post",
            color="black",
            lw=1,
            alpha=0.7,
            label="Pareto front",
        )
    if summary.teacher is not None:
        ax.axhline(
            summary.teacher.score,
            color="tab:red",
            ls="--",
            lw=1,
            label=f"teacher {summary.teacher.model} ({summary.teacher.score:.1f})",
        )
    pick = by_key.get(summary.recommendation.key or "")
    if pick is not None:
        ax.scatter(
            [pick.macs / 1e9],
            [pick.score],
            marker="*",
            s=260,
            color="gold",
            edgecolors="black",
            zorder=4,
            label=f"recommended: {pick.key}",
        )
    ax.set_xscale("log")
    ax.margins(x=0.12)  # room for the labels of the cheapest and dearest points
    plain = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("GMACs per image (log scale)")
    ax.set_ylabel(f"{summary.metric}, %")
    ax.set_title("prune-sweep: accuracy against cost")
    ax.grid(True, which="both", alpha=0.3)
    # Outside the axes: inside, it would hide points wherever they happen to fall.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
