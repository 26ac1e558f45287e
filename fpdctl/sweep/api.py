"""The prune-sweep as one call: :func:`prune_sweep` (``fpdctl prune-sweep``) and
:func:`sweep_summary` (``--summary-only``).

Each checks every rule the command applies (the recommendation's rule, the grid, the teacher,
the fine-tune's options) before any work, so a Python caller meets the refusals a command-line
user meets, in its own parameter names; it then builds the grid and the settings and runs
:func:`fpdctl.sweep.run.run_sweep`.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from fpdctl.errors import UsageError
from fpdctl.progress import Progress
from fpdctl.sweep.grid import INITS
from fpdctl.sweep.pareto import GIGA, check_rule
from fpdctl.sweep.results import SweepResult, summarize
from fpdctl.sweep.run import SweepSettings, fine_tune_config, run_sweep


def prune_sweep(
    teacher: str | os.PathLike[str],
    out: str | os.PathLike[str] = "prune-sweep",
    *,
    stacks: Sequence[int] = (1, 2, 4),
    channels: Sequence[int] = (64, 128),
    blocks: Sequence[int | str] = (1,),
    inits: Sequence[str] = INITS,
    fine_tune: Mapping[str, Any] | None = None,
    importance: str = "bn",
    stack_strategy: str = "first",
    recalibrate_bn: int = 0,
    latency: bool = True,
    shard: tuple[int, int] = (1, 1),
    max_drop: float = 1.0,
    budget_gmacs: float | None = None,
    budget_latency_ms: float | None = None,
    progress: Progress | None = None,
) -> SweepResult:
    """``fpdctl prune-sweep``: slice, fine-tune and score every student of a grid, then recommend.

    Every rule the command applies is checked here, before any work, so a Python caller gets the
    same refusals as the command line.

    Args:
        teacher: a teacher checkpoint or pretrained name.
        out: the sweep directory (created if absent; a rerun resumes it).
        stacks, channels: the grid's stack counts (1 or more) and channel widths (4 or more).
        blocks: residual block counts per stage and / or block types ("standard", "mobile").
        inits: "scratch" and / or "teacher" (sliced from the teacher).
        fine_tune: TrainConfig fields of the fine-tune (``data``, ``input_size``, ``max_steps``
            or ``epochs``, ``alpha``, ``batch_size``, ``lr``, ``seed``, ``val_limit``, ``device``,
            ``workers``, ``teacher_input_*``), over :data:`FINE_TUNE` and TrainConfig's defaults.
        importance, stack_strategy, recalibrate_bn, latency: as :class:`SweepSettings`.
        shard: (K, N), 1-based: run every N-th config of the sorted grid from the K-th.
        max_drop, budget_gmacs, budget_latency_ms: the recommendation's rule
            (:func:`~fpdctl.sweep.pareto.check_rule`); the MAC budget in GMACs.
        progress: receives the ``sweep.*`` events.

    Raises:
        UsageError / InputError / CheckpointError: bad options, grid, teacher or directory.
    """
    from fpdctl.models.checkpoint import describe_checkpoint
    from fpdctl.models.checkpoint_files import checkpoint_file
    from fpdctl.sweep.grid import build_grid, split_blocks
    from fpdctl.utils.io import require_file

    check_rule(max_drop, budget_gmacs, budget_latency_ms, latency=latency)
    for name, values, least in (("stacks", stacks, 1), ("channels", channels, 4)):
        for value in values:
            if value < least:
                raise UsageError(f"`{name}` values must be at least {least}, got {value}", params=name)
    path = str(checkpoint_file(os.fspath(teacher)))  # a pretrained name -> its verified weights file
    require_file(path, "teacher checkpoint")
    teacher_spec = describe_checkpoint(path)["spec"]
    block_counts, block_types = split_blocks(blocks)
    items = build_grid(
        teacher_spec, list(stacks), list(channels), block_counts or [1], list(inits), block_types or None
    )
    settings = SweepSettings(
        train=fine_tune_config(path, teacher_spec, fine_tune),
        importance=importance,
        stack_strategy=stack_strategy,
        recalibrate_bn=recalibrate_bn,
        latency=latency,
    )
    return run_sweep(
        settings,
        items,
        out,
        shard=shard,
        max_drop=max_drop,
        budget_macs=None if budget_gmacs is None else budget_gmacs * GIGA,
        budget_latency_ms=budget_latency_ms,
        progress=progress,
    )


def sweep_summary(
    out: str | os.PathLike[str],
    *,
    max_drop: float = 1.0,
    budget_gmacs: float | None = None,
    budget_latency_ms: float | None = None,
) -> SweepResult:
    """``fpdctl prune-sweep --summary-only``: the summary of an existing sweep directory, under
    this recommendation rule (``summary.json`` and ``sweep.png`` rewritten).

    Raises:
        UsageError: a bad rule, or a directory with no finished config. InputError: no directory.
    """
    from fpdctl.utils.io import require_dir

    check_rule(max_drop, budget_gmacs, budget_latency_ms)
    require_dir(out, "sweep directory")
    summary = summarize(
        out,
        max_drop=max_drop,
        budget_macs=None if budget_gmacs is None else budget_gmacs * GIGA,
        budget_latency_ms=budget_latency_ms,
    )
    if not summary.results:
        raise UsageError(f"{out} holds no finished configs")
    return summary


__all__ = ["prune_sweep", "sweep_summary"]
