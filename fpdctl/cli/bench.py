"""``fpdctl bench``: latency, throughput and memory per model x backend x batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

import typer

from fpdctl.cli.options import (
    CHECKPOINT_SIZE_HELP,
    DEVICE,
    INPUT_CONVENTION,
    INPUT_MEAN,
    INPUT_ORDER,
    INPUT_STD,
    convention_override,
    warn_no_effect,
)
from fpdctl.cli.render import Column, check_format, check_outputs, decimals, emit, render_rows, stage_lines
from fpdctl.deploy.backends import BACKENDS

if TYPE_CHECKING:
    from fpdctl.deploy.bench import BenchResult

_RUNTIME_NAMES = {"torch": "PyTorch eager", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
_BACKEND_LINES = "\n".join(
    f"  {b.name:<18} {'PyTorch compiled' if b.compiled else _RUNTIME_NAMES[b.runtime]} {b.precision}"
    + (f" {b.memory_format}" if b.runtime == "torch" else "")
    + (f" (on the {b.reads} file)" if b.reads else "")
    + (" (CUDA only)" if b.devices == ("cuda",) else "")
    + (" (calibrated)" if b.calibration else "")
    + (f" (extra: {b.extra})" if b.extra else "")
    + (" - the reference" if b.reference else "")
    for b in BACKENDS
)

HELP = f"""Latency, throughput and peak memory of models on PyTorch, ONNX Runtime and OpenVINO.

MODEL is a checkpoint, an .onnx file from `fpdctl export`, or a model name
such as hg8x256 (random weights). With two or more models, "speed-up" is
the first model's median latency over each row's: on the same backend and
batch where the first model has that row, else the first model's first row
at that batch (a checkpoint in PyTorch against .onnx files, say; add
--backend onnxruntime to compare like with like).
"x eager" compares each row with the same model in eager fp32 NCHW PyTorch.

--backend auto runs checkpoints and names in PyTorch and .onnx files in ONNX
Runtime; torch / onnxruntime / openvino pick a runtime (a checkpoint is
exported to a temporary ONNX file, one per precision, which ONNX Runtime
and OpenVINO both run; OpenVINO reads the .onnx file directly); all runs
every backend that can load the model (torch-bf16-compile only by name or
with all: compiling takes minutes); or name backends, comma-separated:

{_BACKEND_LINES}

Whenever PyTorch rows run, plain eager fp32 NCHW (torch) runs beside them.
--precision filters (e.g. fp32,int8; default fp32 for the runtime groups,
the file's own precision for an .onnx file; OpenVINO bf16 runs an fp32
file). A row that cannot run here (openvino not installed, no bf16 on this
CPU, no C++ compiler for torch.compile) is skipped with a one-line reason.

Timed (the "timed" column of every row): "model", the network alone, from
an input already on the device and in the backend's layout to the returned
heatmaps; "model+in-graph pre/decode" for an .onnx file exported (or, with
--embed-preprocess / --embed-decode, a checkpoint bench exports) with the
pre-processing or decoding inside: uint8 crops in, keypoints out.
--end-to-end ("end-to-end") also times, apart, pre-processing (crop a
640x480 frame, normalise or hand the uint8 crop over, batch) and
post-processing (decode unless the graph did, map to frame pixels); latency
columns are then their sum.

Recommendation: per model and batch, the fastest row that loses at most 0.5
PCKh points against the model's fp32 reference. --accuracy N scores every
row on N validation persons of --accuracy-data (fpdctl eval's pipeline, no
flip test) so reduced precisions can qualify; without it only fp32 rows can.

Cases run round-robin, one iteration of each in turn, so machine noise hits all
alike. Peak memory: the process's peak RSS over each case's warm-up on CPU
(reset per case), CUDA max allocated on GPU; +MB is the rise during the
warm-up (the case's own activations and workspaces).

Idle threads: ONNX Runtime's workers busy-wait --spin-us (100) for the next
operator, then sleep: as fast as ORT's unbounded spinning on idle cores and
nearly as fast as no spinning when other jobs share them. PyTorch's OpenMP
threads spin 1,000 rounds (GOMP_SPINCOUNT=1000) unless the environment sets
OMP_WAIT_POLICY or GOMP_SPINCOUNT: unbounded spinning can make eager PyTorch
several times slower on shared cores.
"""

_COLUMNS = [
    Column("model", "model", justify="left"),
    Column("backend", "backend", justify="left"),
    Column("batch", "batch"),
    Column("p50_ms", "p50 ms", decimals(2)),
    Column("p90_ms", "p90 ms", decimals(2)),
    Column("p99_ms", "p99 ms", decimals(2)),
    Column("mean_ms", "mean ms", decimals(2)),
    Column("std_ms", "std ms", decimals(2)),
    Column("min_ms", "min ms", decimals(2)),
    Column("img_per_s", "img/s", decimals(1)),
    Column("peak_mem_mb", "peak MB", decimals(0)),
    Column("mem_delta_mb", "+MB", decimals(1)),
    Column("speedup", "speed-up", decimals(2, "x")),
    Column("vs_reference", "x eager", decimals(2, "x")),
    Column("timed", "timed", justify="left"),
]
_ACCURACY_COLUMNS = [
    Column("accuracy", "acc %", decimals(2)),
    Column("accuracy_drop", "drop", decimals(2)),
]
_END_TO_END_COLUMNS = [
    Column("pre_ms", "pre ms", decimals(2)),
    Column("model_ms", "model ms", decimals(2)),
    Column("post_ms", "post ms", decimals(2)),
]


def bench_command(
    ctx: typer.Context,
    models: List[str] = typer.Argument(..., metavar="MODEL...", help="Checkpoints, .onnx files or model names."),
    backend: str = typer.Option("auto", "--backend", help="auto, torch, onnxruntime, all, or backend names."),
    batch: str = typer.Option("1", "--batch", help="Batch sizes, comma-separated (e.g. 1,8)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Intra-op threads for both runtimes."),
    warmup: int = typer.Option(5, "--warmup", help="Untimed iterations per case."),
    iters: Optional[int] = typer.Option(None, "--iters", help="Timed iterations per case (default 30)."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Seconds per case instead of --iters."),
    device: str = DEVICE,
    precision: Optional[str] = typer.Option(None, "--precision", help="Keep these precisions: fp32,fp16,bf16,int8."),
    fmt: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
    end_to_end: bool = typer.Option(False, "--end-to-end", help="Also time pre- and post-processing."),
    input_size: Optional[int] = typer.Option(
        None,
        "--input-size",
        help=f"Input side for checkpoints and names {CHECKPOINT_SIZE_HELP}.",
    ),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the output here instead of stdout."),
    spin_us: int = typer.Option(
        100,
        "--spin-us",
        help="Microseconds ONNX Runtime's idle threads busy-wait for the next operator (0: never).",
    ),
    input_convention: Optional[str] = INPUT_CONVENTION,
    input_order: Optional[str] = INPUT_ORDER,
    input_mean: Optional[str] = INPUT_MEAN,
    input_std: Optional[str] = INPUT_STD,
    accuracy: int = typer.Option(
        0,
        "--accuracy",
        help="Score every row on this many validation persons (0: don't); needed to recommend a reduced precision.",
    ),
    accuracy_data: str = typer.Option(
        "synthetic",
        "--accuracy-data",
        help="Validation data for --accuracy: synthetic[:K=V,...], mpii:PATH or lsp:PATH.",
    ),
    embed_preprocess: bool = typer.Option(
        False,
        "--embed-preprocess",
        help="ONNX rows of a checkpoint: the graph takes uint8 crops (see fpdctl export).",
    ),
    embed_decode: bool = typer.Option(
        False,
        "--embed-decode",
        help="ONNX rows of a checkpoint: the graph returns keypoints (see fpdctl export).",
    ),
    pixel_order: Optional[str] = typer.Option(
        None,
        "--pixel-order",
        help="Channel order of the uint8 crops with --embed-preprocess: bgr (default) or rgb.",
    ),
) -> None:
    from fpdctl.api import bench
    from fpdctl.cli.options import parse_int_list
    from fpdctl.deploy.backends import parse_precisions
    from fpdctl.deploy.preprocess_decode import parse_embedding

    fmt = check_format(fmt)
    check_outputs(output)
    override = convention_override(input_convention, input_order, input_mean, input_std)
    embedding = parse_embedding(embed_preprocess, embed_decode, pixel_order)
    batches = parse_int_list(batch, "--batch", minimum=1)
    if not accuracy:
        warn_no_effect(ctx, ["accuracy_data"], "without --accuracy N (no row is scored)")
    if backend.strip().lower() == "torch":  # (the --embed-* options are refused there, by benchmark)
        warn_no_effect(ctx, ["spin_us"], "with --backend torch (it sets ONNX Runtime's idle threads)")
    result = bench(
        *models,
        backend=backend,
        batches=batches,
        threads=threads,
        warmup=warmup,
        iters=iters,
        duration=duration,
        device=device,
        precisions=parse_precisions(precision),
        end_to_end=end_to_end,
        input_size=input_size,
        spin_us=spin_us,
        input_convention=override,
        embedding=embedding,
        accuracy_samples=accuracy,
        accuracy_data=accuracy_data,
        progress=stage_lines,
    )
    emit(_render(result, fmt), output)


def _render(result: "BenchResult", fmt: str) -> str:
    from fpdctl.deploy.bench_report import INSTRUCTION_SETS
    from fpdctl.metrics import score_name

    rows: list[dict[str, Any]] = [r.to_dict() for r in result.rows]
    if fmt == "json":
        return render_rows(rows, _COLUMNS, fmt)
    columns = list(_COLUMNS)
    if result.timed != "model":
        columns[3:3] = _END_TO_END_COLUMNS
    if result.accuracy_samples:
        columns += _ACCURACY_COLUMNS
    for row in rows:  # the recommended path, marked where it is read
        row["backend"] += " *" if row["recommended"] else ""
    env = result.environment
    caption = (
        f"timed: {'pre + model + post (end-to-end)' if result.timed != 'model' else 'the model alone'}; "
        f"{result.device}, {result.threads} thread(s); {env.get('cpu', '')}; torch {env.get('torch', '')}, "
        f"onnxruntime {env.get('onnxruntime', '')}"
        f" (threads spin {env.get('onnxruntime_spin_us', '')} us)"
        + (f", openvino {env['openvino']}" if env.get("openvino") else "")
        + f"; CPU features: {env.get('cpu_flags') or 'none known'}"
        + (f"; instruction set: {env['isa']} ({INSTRUCTION_SETS.get(env['isa'], 'not x86')})" if env.get("isa") else "")
    )
    if result.accuracy_samples:
        caption += (
            f"\nacc: {score_name(result.rows[0].metric) if result.rows[0].metric else 'accuracy'} "
            f"on {result.accuracy_samples} {result.accuracy_data} validation persons (no flip test); "
            "drop: points lost against the model's fp32 reference"
        )
    if result.recommendations:
        from fpdctl.cli.app import flag_table, in_flags

        flags = flag_table(["bench"])  # the core names parameters; the caption names bench's flags
        caption += "".join(f"\n* {in_flags(r.line(), flags)}" for r in result.recommendations)
    if result.skipped:
        caption += "\nskipped: " + "; ".join(result.skipped)
    return render_rows(rows, columns, fmt, title="fpdctl bench", caption=caption)


# The core's parameters that bench spells otherwise (fpdctl.cli.app.flag_table).
CORE_PARAMS = {"bench": {"accuracy_samples": "accuracy", "batches": "batch"}}


def register(app: typer.Typer) -> None:
    app.command("bench", help=HELP, short_help="Latency, throughput and memory on PyTorch, ONNX Runtime and OpenVINO.")(
        bench_command
    )
