"""``fpdctl profile``: params, MACs, weights and activation memory of hourglass sizes."""

from __future__ import annotations

from typing import List, Optional

import typer

from fpdctl.cli.options import parse_int_list
from fpdctl.cli.render import Column, check_format, check_outputs, decimals, emit, render_rows
from fpdctl.models.spec import DEFAULT_INPUT_SIZE, TEACHER_MODEL

HELP = """Cost of each stack/channel setting: params, MACs, weights and activation memory.

With no MODEL it profiles the paper's grid, stacks {1,2,4,8} x channels {64,128,256}, against
hg8x256. MODEL is a name (hg4x128, hg2x64b2) or a checkpoint file (its spec is inferred).

Conventions: MACs count convolutions (and linear layers), per image, bias adds excluded;
FLOPs = 2 x MACs. Element-wise work (BN, ReLU, add, pool, upsample) is its own column, one op per
output element. Weights are the parameters at fp32/fp16/int8. Activations (MB) is the peak size
of the activation tensors alive at once during one eager fp32 inference forward at --batch
(input included, weights and allocator overhead excluded). Nothing runs the real network: counts
are closed-form (default), or from a meta-device run (--counter meta). --measure adds a real
CPU latency (eager fp32, random weights), labelled as measured.
"""


def profile_command(
    models: Optional[List[str]] = typer.Argument(None, metavar="[MODEL]...", help="Model names or checkpoint files."),
    stacks: str = typer.Option("1,2,4,8", help="Grid stacks, comma-separated."),
    channels: str = typer.Option("64,128,256", help="Grid channels, comma-separated (multiples of 4)."),
    blocks: str = typer.Option("1", help="Grid residual blocks per stage, comma-separated."),
    input_size: int = typer.Option(DEFAULT_INPUT_SIZE, help="Square input side in pixels (a multiple of 64)."),
    batch: int = typer.Option(1, help="Batch size for the activation memory (and --measure)."),
    reference: str = typer.Option(TEACHER_MODEL, help="Model the x-fewer columns compare against."),
    fmt: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the output here instead of stdout."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Also write a log-log PNG of MACs against params."),
    measure: bool = typer.Option(False, "--measure", help="Add measured CPU latency (median, p90)."),
    counter: str = typer.Option("analytic", help="analytic (default), meta, or thop (optional extra)."),
) -> None:
    from fpdctl.errors import UsageError
    from fpdctl.profiling.profile import paper_grid

    fmt = check_format(fmt)
    check_outputs(output, plot)
    if counter not in ("analytic", "meta", "thop"):
        raise UsageError(f"--counter must be analytic, meta or thop, got '{counter}'")
    from fpdctl.api import model_spec, profile

    grid = None
    if not models:
        grid = paper_grid(
            parse_int_list(stacks, "--stacks", minimum=1),
            parse_int_list(channels, "--channels", minimum=4),
            parse_int_list(blocks, "--blocks", minimum=1),
        )
    ref = model_spec(reference)
    rows = profile(
        models or grid,
        reference=ref,
        input_size=input_size,
        batch=batch,
        counter=counter,
        measure=measure,
        grid=grid is not None,
    )
    if plot:
        from fpdctl.profiling.plot import plot_cost

        plot_cost(rows, plot)
    dicts = [r.to_dict() for r in rows]
    columns = _columns(batch, measure)
    caption = (
        f"{input_size}x{input_size} input; MACs per image (convolutions); reference {ref.name}; "
        f"counter: {counter}" + ("; latency measured on this CPU, eager fp32 NCHW, random weights" if measure else "")
    )
    emit(render_rows(dicts, columns, fmt, title="fpdctl profile", caption=caption), output)
    if plot:
        typer.echo(f"wrote {plot}", err=True)


def _columns(batch: int, measure: bool) -> list[Column]:
    columns = [
        Column("model", "model", justify="left"),
        Column("stacks", "stacks"),
        Column("channels", "channels"),
        Column("blocks", "blocks"),
        Column("params", "params", decimals(2, "M", per=1e6)),
        Column("macs", "GMACs", decimals(2, per=1e9)),
        Column("flops", "GFLOPs", decimals(2, per=1e9)),
        Column("elementwise_ops", "G elem-ops", decimals(3, per=1e9)),
        Column("weights_mb", "MB fp32", decimals(1)),
        Column("weights_mb_fp16", "MB fp16", decimals(1)),
        Column("weights_mb_int8", "MB int8", decimals(1)),
        Column("activations_mb", f"act MB (b{batch})", decimals(1)),
        Column("params_reduction", "x fewer params", decimals(1, "x")),
        Column("macs_reduction", "x fewer MACs", decimals(1, "x")),
    ]
    if measure:
        columns += [
            Column("latency_ms_median", "measured ms p50", decimals(1)),
            Column("latency_ms_p90", "measured ms p90", decimals(1)),
        ]
    return columns


def register(app: typer.Typer) -> None:
    app.command("profile", help=HELP)(profile_command)
