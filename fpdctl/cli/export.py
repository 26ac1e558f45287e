"""``fpdctl export``: a checkpoint to one verified ONNX file (fp32, fp16 or int8)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import typer

from fpdctl.cli.options import (
    INPUT_CONVENTION,
    INPUT_MEAN,
    INPUT_ORDER,
    INPUT_STD,
    convention_override,
    old_spelling,
    renamed,
    warn_no_effect,
)
from fpdctl.cli.render import Column, check_format, emit, render_rows, stage_lines, to_json
from fpdctl.deploy.backends import EXPORT_PRECISIONS
from fpdctl.deploy.export import DEFAULT_CALIBRATION_SAMPLES
from fpdctl.deploy.torch_onnx import DEFAULT_OPSET, MIN_OPSET
from fpdctl.models.spec import DEFAULT_INPUT_SIZE
from fpdctl.utils.choices import parse_choice

if TYPE_CHECKING:
    from fpdctl.deploy.export import ExportResult

HELP = f"""Export a checkpoint to a self-contained ONNX file and verify it.

CHECKPOINT is any checkpoint fpdctl reads (native .safetensors,
pytorch-pose .pth.tar, official FPD .pth) or a model name such as hg4x128
(random weights). The file holds the graph, the weights (no external .data
file) and fpdctl metadata: the spec, joint names, flip pairs, input size,
normalisation, heatmap stride, fpdctl version and the checkpoint's SHA-256.

Output: the final stack's heatmaps [N, J, S/4, S/4] (--all-stacks: every
stack, [N, stacks, J, S/4, S/4]; J the model's joints: 16 MPII, 17 COCO);
input [N, 3, S, S], normalised in the
model's input convention (recorded in the file as fpdctl.input_convention):
what the checkpoint records or its format implies (native: RGB, ImageNet
mean/std), or --input-*; N is dynamic unless --batch N fixes it. Inputs and
outputs are fp32 at every --precision ({", ".join(EXPORT_PRECISIONS)}). Every
file runs in ONNX Runtime and OpenVINO; OpenCV's DNN module (cv2.dnn, checked
with OpenCV 4.14.0) reads every kind but fp16 (it cannot build a float16 Conv).

Verification (on unless --no-verify): ONNX Runtime and PyTorch run the
same random and synthetic-image inputs; reported are the max abs and relative
heatmap error and how often both put each joint on the same heatmap pixel.
An fp32 export below 99.9% agreement fails (exit 1) and writes nothing.
fp16 and int8 are verified too, and scored against fp32 the way
`fpdctl eval FILE --data DATA` scores a file (the same function and defaults:
flip test on, the whole --calibration-data validation split), so each figure
is the one eval prints for that file; --validation-samples N scores the
first N persons, --no-flip-test one forward per person (a deployed model's).
The output names the protocol.

int8: ONNX Runtime static quantisation (QDQ, per-channel int8 weights,
uint8 activations), calibrated on --calibration-samples training images of
--calibration-data (synthetic, mpii:PATH or lsp:PATH).

Deployment without re-implementing anything: --embed-preprocess makes the
graph take the uint8 crop [N, S, S, 3] as a camera pipeline has it, in
--pixel-order (bgr, as OpenCV reads it, or rgb), and apply the model's own
input convention inside (cast, / max pixel value, channel order, - mean,
/ std, NHWC -> NCHW). --embed-decode makes it return "keypoints" [N, J, 2]
(x, y in crop pixels) and "scores" [N, J] instead of the heatmaps: fpdctl's
decode (argmax plus a quarter heatmap pixel toward the higher neighbour),
without the flip test (it would run the network twice); --keep-heatmaps
returns the heatmaps as a third output. The network is verified and, for
int8, quantised before the nodes are added (they stay exact fp32 / integer
ops); the result is checked against the Python pipeline on the same uint8
crops (random and synthetic persons): keypoints within 0.5 px for 99.9% of
joints, or nothing is written. The metadata records what the graph takes
and returns (fpdctl.graph_io).
"""


def export_command(
    ctx: typer.Context,
    checkpoint: str = typer.Argument(..., metavar="CHECKPOINT", help="Checkpoint file or model name."),
    output: str = typer.Option(..., "--output", "-o", help="The .onnx file to write."),
    opset: int = typer.Option(DEFAULT_OPSET, "--opset", help=f"ONNX opset ({MIN_OPSET} or newer)."),
    batch: str = typer.Option("dynamic", "--batch", help="'dynamic' or a fixed batch size."),
    input_size: Optional[int] = typer.Option(
        None,
        "--input-size",
        help="Square input side in pixels, a multiple of 64 (default: the size an fpdctl checkpoint "
        f"was trained at, else {DEFAULT_INPUT_SIZE}).",
    ),
    all_stacks: bool = typer.Option(False, "--all-stacks", help="Output every stack, not only the last."),
    precision: str = typer.Option("fp32", "--precision", help=" | ".join(EXPORT_PRECISIONS)),
    calibration_data: str = typer.Option(
        "synthetic",
        "--calibration-data",
        help="Images for int8 calibration (train split) and the accuracy check (val split): "
        "synthetic[:KEY=VAL,...], mpii:PATH or lsp:PATH.",
    ),
    calibration_samples: int = typer.Option(
        DEFAULT_CALIBRATION_SAMPLES, "--calibration-samples", help="int8 calibration images."
    ),
    validation_samples: Optional[int] = typer.Option(
        None,
        "--validation-samples",
        help="Score fp32 vs fp16/int8 on the first N validation persons (default: all, as eval; 0: skip).",
    ),
    flip_test: bool = typer.Option(
        True,
        "--flip-test/--no-flip-test",
        help="Score with the flip test, as fpdctl eval does (default on).",
    ),
    old_flip_test: Optional[bool] = old_spelling("--flip/--no-flip"),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Compare with PyTorch (default on)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime threads for the checks."),
    exporter: str = typer.Option("dynamo", "--exporter", help="dynamo (default) or torchscript.", hidden=True),
    fmt: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
    input_convention: Optional[str] = INPUT_CONVENTION,
    input_order: Optional[str] = INPUT_ORDER,
    input_mean: Optional[str] = INPUT_MEAN,
    input_std: Optional[str] = INPUT_STD,
    embed_preprocess: bool = typer.Option(
        False,
        "--embed-preprocess",
        help="The graph takes uint8 crops [N, S, S, 3] and normalises them itself.",
    ),
    embed_decode: bool = typer.Option(
        False,
        "--embed-decode",
        help="The graph returns keypoints [N, J, 2] (crop px) and scores [N, J].",
    ),
    pixel_order: Optional[str] = typer.Option(
        None,
        "--pixel-order",
        help="Channel order of the uint8 crops with --embed-preprocess: bgr (default) or rgb.",
    ),
    keep_heatmaps: bool = typer.Option(
        False,
        "--keep-heatmaps",
        help="With --embed-decode, return the heatmaps too (a third output).",
    ),
) -> None:
    from fpdctl.deploy.backends import export_backend
    from fpdctl.deploy.export import export_onnx
    from fpdctl.deploy.preprocess_decode import parse_embedding
    from fpdctl.deploy.torch_onnx import parse_batch
    from fpdctl.errors import UsageError

    fmt = check_format(fmt)
    flip_test = renamed(ctx, flip_test, old_flip_test, param="flip_test", flag="--flip-test", old_flag="--flip")
    override = convention_override(input_convention, input_order, input_mean, input_std)
    embedding = parse_embedding(embed_preprocess, embed_decode, pixel_order, keep_heatmaps, all_stacks=all_stacks)
    precision = parse_choice(precision, EXPORT_PRECISIONS, "--precision")
    export_backend(precision)
    if precision != "int8":
        warn_no_effect(ctx, ["calibration_samples"], "without --precision int8 (nothing is calibrated)")
    if precision == "fp32":
        warn_no_effect(
            ctx,
            ["calibration_data", "validation_samples"],
            "with --precision fp32 (no reduced precision to calibrate or score against fp32)",
        )
    fixed_batch = parse_batch(batch)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    result = export_onnx(
        checkpoint,
        output,
        opset=opset,
        batch=fixed_batch,
        input_size=input_size,
        all_stacks=all_stacks,
        precision=precision,
        calibration_data=calibration_data,
        calibration_samples=calibration_samples,
        validation_samples=validation_samples,
        flip_test=flip_test,
        verify=verify,
        threads=threads,
        exporter=exporter,
        input_convention=override,
        embedding=embedding,
        progress=stage_lines,
    )
    emit(_render(result, fmt))
    typer.echo(f"wrote {result.path}", err=True)


def _rows(result: "ExportResult") -> list[dict[str, Any]]:
    from fpdctl.deploy.bench_report import INSTRUCTION_SETS
    from fpdctl.metrics import score_name

    info = result.info
    rows: list[dict[str, Any]] = [
        {
            "item": "model",
            "value": f"{info.spec.name} from {info.source} (sha256 {info.source_sha256[:12]})"
            if info.source_sha256
            else f"{info.spec.name} (random weights)",
        },
        {"item": "file", "value": f"{result.path} ({result.size_bytes / 1e6:.2f} MB)"},
        {"item": "precision", "value": info.precision},
        {"item": "input", "value": _input_text(info)},
        {"item": "input convention", "value": info.input_convention.describe()},
        {"item": "output", "value": _output_text(info)},
        {"item": "opset / exporter", "value": f"{info.opset} / {info.exporter}"},
    ]
    for label, report in (("fp32 check", result.base_verification), (f"{info.precision} check", result.verification)):
        if report is None:
            continue
        rows.append(
            {
                "item": label,
                "value": (
                    f"max abs {report.max_abs_error:.3g}, max rel {report.max_rel_error:.3g}, "
                    f"keypoints agree {100 * report.keypoint_agreement:.2f}% of {report.joints_compared} "
                    f"({report.random_samples} random + {report.image_samples} images, "
                    f"batch {', '.join(str(b) for b in report.batch_sizes)})"
                ),
            }
        )
    for check in result.embedding_checks:
        rows.append(
            {
                "item": "embedded check",
                "value": (
                    f"vs {check.reference}: keypoints within 0.5 px for {100 * check.within_tolerance:.2f}% of "
                    f"{check.joints_compared}, max {check.max_error_px:.3g} px ({check.random_crops} random + "
                    f"{check.image_crops} image crops)"
                ),
            }
        )
    if result.verification is None:
        rows.append({"item": "check", "value": "skipped (--no-verify)"})
    if result.quantization is not None:
        q = result.quantization
        rows.append(
            {
                "item": "calibration",
                "value": f"{q.calibration_samples} images of {q.calibration_data} (train), {q.method}, "
                f"{'per-channel' if q.per_channel else 'per-tensor'} {7 if q.reduce_range else 8}-bit weights",
            }
        )
        rows.append(
            {
                "item": "CPUs without VNNI",
                "value": f"{'same results' if q.int16_safe else 'may differ'}: largest u8 x s8 pair sum "
                f"{q.pair_sum_bound:,} ({'within' if q.int16_safe else 'beyond'} int16's 32,767)",
            }
        )
    if result.accuracy is not None:
        a = result.accuracy
        rows.append(
            {
                "item": f"{score_name(a.metric)} ({a.samples} val persons)",
                "value": f"fp32 {a.reference_mean:.2f}, {a.candidate_precision} {a.candidate_mean:.2f} "
                f"(drop {a.drop:+.2f})",
            }
        )
        rows.append({"item": "accuracy protocol", "value": a.protocol})
    if result.isa:
        what = f" ({INSTRUCTION_SETS.get(result.isa, 'not x86')})" if info.precision == "int8" else ""
        rows.append({"item": "checked on", "value": f"{result.isa}{what}"})
    rows.append({"item": "time", "value": f"{result.seconds:.1f} s"})
    return rows


def _input_text(info: Any) -> str:
    batch, side = "N" if info.batch is None else info.batch, info.input_size
    if info.io.takes_pixels:
        return f"pixels [{batch}, {side}, {side}, 3] uint8 {info.io.pixel_order.upper()}"
    return f"[{batch}, 3, {side}, {side}] float32, normalised"


def _output_text(info: Any) -> str:
    if not info.io.decodes:
        return f"heatmaps ({info.outputs})"
    joints = info.spec.joints
    text = f"keypoints [N, {joints}, 2] (crop px), scores [N, {joints}]"
    return text + (", heatmaps (final)" if "heatmaps" in info.io.outputs else "")


def _render(result: "ExportResult", fmt: str) -> str:
    if fmt == "json":
        return to_json(result.to_dict())
    columns = [Column("item", "", justify="left"), Column("value", "", justify="left")]
    return render_rows(_rows(result), columns, fmt, title="fpdctl export")


def register(app: typer.Typer) -> None:
    app.command("export", help=HELP, short_help="Export a checkpoint to a verified ONNX file (fp32/fp16/int8).")(
        export_command
    )
