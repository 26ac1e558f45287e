"""``fpdctl prune`` (slice one student out of a teacher) and ``fpdctl prune-sweep``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from fpdctl.cli.options import (
    TEACHER_INPUT_CONVENTION,
    TEACHER_INPUT_MEAN,
    TEACHER_INPUT_ORDER,
    TEACHER_INPUT_PREFIX,
    TEACHER_INPUT_STD,
    convention_override,
    device_option,
    parse_int_list,
)
from fpdctl.cli.render import Column, check_format, emit, render_rows
from fpdctl.models.spec import DEFAULT_INPUT_SIZE
from fpdctl.training.loss import DEFAULT_ALPHA

if TYPE_CHECKING:
    from fpdctl.progress import Event
    from fpdctl.sweep.results import SweepResult

PRUNE_HELP = """Slice a trained teacher into a smaller hourglass of the same family.

Keeps --to's stacks (the first k; with --stack-strategy first-last the first
k-1 and the teacher's last), the first blocks of every stage, and the most
important channels: one index set for the C-wide residual stream (stem
output, every hourglass and head bottleneck, the feedback adds), one per stack
head, one per bottleneck inner width and per stem width, scored by BN |gamma|
(--importance bn) or by the L1 norm of the filters writing the channel (l1).
Joints are never pruned. --recalibrate-bn N re-estimates the BN statistics
over N training batches (channel slicing changes what every BN sees). The
output is a native checkpoint that distill, export and bench accept.
"""

SWEEP_HELP = """Find the student to distil: slice or initialise each size, fine-tune it briefly with FPD, measure it.

For every STACKS x CHANNELS x BLOCKS and every --init (scratch, sliced from
the teacher, or both): the zero-shot score, a short FPD fine-tune from the
teacher (--max-steps or --epochs), the score again, params, MACs and ONNX
Runtime latency at batch 1 (fp32, CPU). The score is the data's metric: PCKh
(MPII, synthetic), PCK (LSP) or AP (COCO, synthetic:layout=coco).

--blocks takes residual block counts and block types: --blocks
standard,mobile puts standard and mobile (depthwise-separable) students on
one Pareto front; --blocks 1,2,mobile mixes both. Slicing keeps the
teacher's own filters, so a student of another block type than the
teacher's (a mobile student of a standard teacher) cannot be sliced: it is
trained from scratch (init scratch), whatever --init says.

One JSON per config lands in OUT/configs as soon as it finishes; rerunning the
command skips finished configs. --shard K/N runs every N-th config of the
sorted grid, starting at the K-th, so N processes (a Slurm job array) can
share OUT. OUT/summary.json and OUT/sweep.png are rebuilt from every result in OUT:
all rows, the Pareto front of the score against MACs and against latency, and
the recommendation: the cheapest config within --max-drop points of the
teacher's score, or the most accurate under --budget-macs / --budget-latency.
"""


def _gmacs(value: float) -> str:
    # Three significant figures: paper-sized models are whole GMACs, test models millionths.
    return f"{value / 1e9:.3g}"


def prune_command(
    teacher: str = typer.Option(..., "--teacher", help="Teacher checkpoint (native, pytorch-pose or FPD)."),
    to: str = typer.Option(..., "--to", help="Target model, e.g. hg4x128 or hg2x64b1."),
    output: str = typer.Option(..., "--output", "-o", help="Student checkpoint to write (.safetensors)."),
    importance: str = typer.Option("bn", "--importance", help="Channel criterion: bn (|gamma|) or l1."),
    stack_strategy: str = typer.Option("first", "--stack-strategy", help="first or first-last."),
    input_size: int = typer.Option(
        DEFAULT_INPUT_SIZE, "--input-size", help="Input side (MACs, BN re-estimation images)."
    ),
    recalibrate_bn: int = typer.Option(
        0, "--recalibrate-bn", help="Re-estimate BN statistics over N training batches of --data (0: off)."
    ),
    data: str = typer.Option(
        "synthetic", "--data", help="Images for --recalibrate-bn: synthetic, mpii:PATH, lsp:PATH, coco:PATH."
    ),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per --recalibrate-bn batch."),
    device: str = device_option("Where --recalibrate-bn runs: "),
    fmt: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
    teacher_input_convention: Optional[str] = TEACHER_INPUT_CONVENTION,
    teacher_input_order: Optional[str] = TEACHER_INPUT_ORDER,
    teacher_input_mean: Optional[str] = TEACHER_INPUT_MEAN,
    teacher_input_std: Optional[str] = TEACHER_INPUT_STD,
) -> None:
    from fpdctl.models.checkpoint_files import checkpoint_file
    from fpdctl.models.spec import resolve_spec
    from fpdctl.prune.importance import check_importance
    from fpdctl.prune.slicing import check_stack_strategy, prune_checkpoint
    from fpdctl.utils.io import require_file

    fmt = check_format(fmt)
    override = convention_override(
        teacher_input_convention,
        teacher_input_order,
        teacher_input_mean,
        teacher_input_std,
        prefix=TEACHER_INPUT_PREFIX,
    )
    target = resolve_spec(to)
    importance = check_importance(importance)
    stack_strategy = check_stack_strategy(stack_strategy)
    teacher = str(checkpoint_file(teacher))  # a pretrained name -> its verified weights file
    require_file(teacher, "teacher checkpoint")
    result = prune_checkpoint(
        teacher,
        target,
        output,
        importance=importance,
        stack_strategy=stack_strategy,
        input_size=input_size,
        recalibrate_bn=recalibrate_bn,
        data=data,
        batch_size=batch_size,
        device=device,
        input_convention=override,
    )
    row = result.to_dict()
    row["stacks"] = ",".join(str(s) for s in result.stacks)
    columns = [
        Column("teacher", "teacher", justify="left"),
        Column("student", "student", justify="left"),
        Column("stacks", "kept stacks"),
        Column("importance", "importance"),
        Column("teacher_params", "teacher params", lambda v: f"{v / 1e6:.3f}M"),
        Column("student_params", "student params", lambda v: f"{v / 1e6:.3f}M"),
        Column("teacher_macs", "teacher GMACs", _gmacs),
        Column("student_macs", "student GMACs", _gmacs),
    ]
    emit(
        render_rows(
            [row],
            columns,
            fmt,
            title="fpdctl prune",
            caption=f"MACs at {input_size}x{input_size}; wrote {result.output}",
        )
    )


def _show_sweep_event(event: "Event") -> None:
    """Print the sweep's progress on stderr (stdout keeps the table)."""
    if event.kind == "sweep.config_start":
        line = f"[{event.done}/{event.total}] {event.message}"
    elif event.kind == "sweep.train_step":
        log = event.data
        line = f"  step {log.step}/{log.total_steps} loss {log.loss:.5f} ({log.img_per_s:.1f} img/s)"
    elif event.kind in ("sweep.zero_shot", "sweep.config_end"):
        line = f"  {event.message}"
    elif event.kind in ("sweep.teacher", "sweep.skip"):
        line = event.message
    else:
        return
    typer.echo(line, err=True)


def _render_sweep(summary: "SweepResult", fmt: str) -> str:
    front = set(summary.pareto.get("macs", [])) | set(summary.pareto.get("latency_ms", []))
    rows = []
    for r in summary.results:
        row = r.to_dict()
        row.pop("settings", None)
        row["pareto"] = "yes" if r.key in front else ""
        row["recommended"] = "yes" if r.key == summary.recommendation.key else ""
        rows.append(row)
    if summary.teacher is not None and fmt in ("table", "markdown"):
        t = summary.teacher
        rows.insert(
            0,
            {
                "key": f"{t.model} (teacher)",
                "params": t.params,
                "macs": t.macs,
                "latency_ms": t.latency_ms,
                "score": t.score,
            },
        )
    columns = [
        Column("key", "config", justify="left"),
        Column("params", "params", lambda v: f"{v / 1e6:.3f}M"),
        Column("macs", "GMACs", _gmacs),
        Column("latency_ms", "ORT ms (b1)", lambda v: f"{v:.2f}"),
        Column("score_zero_shot", f"{summary.metric} zero-shot", lambda v: f"{v:.2f}"),
        Column("score", summary.metric, lambda v: f"{v:.2f}"),
        Column("steps", "steps"),
        Column("pareto", "Pareto", justify="left"),
        Column("recommended", "pick", justify="left"),
    ]
    caption = f"recommendation: {summary.recommendation.reason}"
    if summary.plot is not None:
        caption += f"\nplot: {summary.plot}"
    return render_rows(rows, columns, fmt, title=f"fpdctl prune-sweep ({summary.out})", caption=caption)


_BLOCKS = typer.Option(
    "1",
    "--blocks",
    help="Grid residual blocks per stage and/or block types (standard, mobile), comma-separated; "
    "a block type other than the teacher's is trained from scratch (init scratch).",
)
_MAX_DROP = typer.Option(
    1.0, "--max-drop", help="Acceptable score loss against the teacher (points of PCKh, PCK or AP)."
)


# Over 80 lines only through its Typer option declarations (one per flag); the body parses the
# text options and calls prune_sweep (or sweep_summary), which hold every rule.
def prune_sweep_command(
    teacher: Optional[str] = typer.Option(
        None, "--teacher", help="Teacher checkpoint (required unless --summary-only)."
    ),
    stacks: str = typer.Option("1,2,4", "--stacks", help="Grid stacks, comma-separated."),
    channels: str = typer.Option("64,128", "--channels", help="Grid channels, comma-separated."),
    blocks: str = _BLOCKS,
    init: str = typer.Option("both", "--init", help="scratch, teacher (sliced) or both."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Fine-tune steps per config (default 200)."),
    epochs: Optional[int] = typer.Option(
        None, "--epochs", help="Fine-tune epochs per config (instead of --max-steps)."
    ),
    alpha: Optional[float] = typer.Option(
        None, "--alpha", help=f"Weight of the distillation term (default: {DEFAULT_ALPHA})."
    ),
    data: Optional[str] = typer.Option(
        None, "--data", help="synthetic[:KEY=VAL,...], mpii:PATH, lsp:PATH or coco:PATH (default: synthetic)."
    ),
    input_size: Optional[int] = typer.Option(
        None,
        "--input-size",
        help="Network input side in pixels (default: the size the teacher was trained at "
        f"when its checkpoint or model card records it, else {DEFAULT_INPUT_SIZE}).",
    ),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Fine-tune images per step (default: 16)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Fine-tune learning rate, cosine decay (default: 1e-3)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seeds scratch weights and the fine-tune (default: 0)."),
    val_limit: Optional[int] = typer.Option(None, "--val-limit", help="Evaluate on the first N validation persons."),
    importance: str = typer.Option("bn", "--importance", help="Slicing channel criterion: bn or l1."),
    stack_strategy: str = typer.Option("first", "--stack-strategy", help="Slicing stacks: first or first-last."),
    recalibrate_bn: int = typer.Option(
        0, "--recalibrate-bn", help="Re-estimate a sliced student's BN statistics over N training batches first."
    ),
    max_drop: float = _MAX_DROP,
    budget_macs: Optional[float] = typer.Option(None, "--budget-macs", help="Recommend the best config under G GMACs."),
    budget_latency: Optional[float] = typer.Option(
        None, "--budget-latency", help="Recommend the best config under MS ms."
    ),
    latency: bool = typer.Option(True, "--latency/--no-latency", help="Measure ONNX Runtime latency (batch 1)."),
    out: str = typer.Option("prune-sweep", "--out", help="Sweep directory (results, summary, plot)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: run every N-th config starting at the K-th."),
    summary_only: bool = typer.Option(False, "--summary-only", help="Only rebuild the summary of --out."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps (default: auto)."),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="Fine-tune arithmetic, as fpdctl distill's: auto, bf16, fp16 or fp32 (default: auto)."
    ),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes (default: 2)."),
    fmt: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
    teacher_input_convention: Optional[str] = TEACHER_INPUT_CONVENTION,
    teacher_input_order: Optional[str] = TEACHER_INPUT_ORDER,
    teacher_input_mean: Optional[str] = TEACHER_INPUT_MEAN,
    teacher_input_std: Optional[str] = TEACHER_INPUT_STD,
) -> None:
    from fpdctl.errors import UsageError
    from fpdctl.sweep.api import prune_sweep, sweep_summary
    from fpdctl.sweep.grid import parse_blocks, parse_inits, parse_shard

    fmt = check_format(fmt)
    convention_override(
        teacher_input_convention,
        teacher_input_order,
        teacher_input_mean,
        teacher_input_std,
        prefix=TEACHER_INPUT_PREFIX,
    )  # bad values fail first, like every option
    rule = dict(max_drop=max_drop, budget_gmacs=budget_macs, budget_latency_ms=budget_latency)
    if summary_only:
        emit(_render_sweep(sweep_summary(out, **rule), fmt))
        return
    if teacher is None:
        raise UsageError("--teacher CKPT is required (or --summary-only)")
    block_counts, block_types = parse_blocks(blocks)
    fine_tune = dict(
        data=data,
        input_size=input_size,
        max_steps=max_steps,
        epochs=epochs,
        alpha=alpha,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        val_limit=val_limit,
        device=device,
        precision=precision,
        workers=workers,
        teacher_input_convention=teacher_input_convention,
        teacher_input_order=teacher_input_order,
        teacher_input_mean=teacher_input_mean,
        teacher_input_std=teacher_input_std,
    )
    summary = prune_sweep(
        teacher,
        out,
        stacks=parse_int_list(stacks, "--stacks"),
        channels=parse_int_list(channels, "--channels"),
        blocks=[*block_counts, *(block_types or [])],
        inits=parse_inits(init),
        fine_tune=fine_tune,
        importance=importance,
        stack_strategy=stack_strategy,
        recalibrate_bn=recalibrate_bn,
        latency=latency,
        shard=parse_shard(shard),
        progress=_show_sweep_event,
        **rule,
    )
    emit(_render_sweep(summary, fmt))
    if summary.pending:
        typer.echo(f"interrupted: {len(summary.pending)} config(s) left; rerun the same command to resume", err=True)
        raise typer.Exit(130)


# The core's parameters that prune-sweep spells otherwise (fpdctl.cli.app.flag_table).
CORE_PARAMS = {
    "prune-sweep": {
        "inits": "init",
        "block_types": "blocks",
        "budget_gmacs": "budget_macs",
        "budget_latency_ms": "budget_latency",
    }
}


def register(app: typer.Typer) -> None:
    app.command("prune", help=PRUNE_HELP)(prune_command)
    app.command("prune-sweep", help=SWEEP_HELP)(prune_sweep_command)
