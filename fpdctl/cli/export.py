"""``fpdctl export``: a checkpoint to one verified ONNX file (fp32, fp16 or int8)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import typer

from fpdctl.cli.render import Column, check_format, emit, render_rows, stage_lines, to_json
from fpdctl.deploy.backends import EXPORT_PRECISIONS
from fpdctl.models.spec import DEFAULT_INPUT_SIZE

if TYPE_CHECKING:
    from fpdctl.deploy.export import ExportResult

HELP = f"""Export a checkpoint to a self-contained ONNX file and verify it.

CHECKPOINT is any checkpoint fpdctl reads (native .safetensors,
pytorch-pose .pth.tar, official FPD .pth) or a model name such as hg4x128
(random weights). The file holds the graph, the weights (no external .data
file) and fpdctl metadata: the spec, joint names, flip pairs, input size,
normalisation, heatmap stride, fpdctl version and the checkpoint's SHA-256.

Output: the final stack's heatmaps [N, 16, S/4, S/4] (--all-stacks: every
stack, [N, stacks, 16, S/4, S/4]); input [N, 3, S, S], RGB normalised with
the ImageNet mean/std; N is dynamic unless --batch N fixes it. Inputs and
outputs are fp32 at every --precision ({", ".join(EXPORT_PRECISIONS)}).

Verification (on unless --no-verify): ONNX Runtime and PyTorch run the
same random and synthetic-image inputs; reported are the max abs and relative
heatmap error and how often both put each joint on the same heatmap pixel.
An fp32 export below 99.9% agreement fails (exit 1) and writes nothing.
fp16 and int8 are verified too, and scored (PCKh) against fp32 on the first
--validation-samples persons of the --calibration-data validation split.

int8: ONNX Runtime static quantisation (QDQ, per-channel int8 weights,
uint8 activations), calibrated on --calibration-samples training images of
--calibration-data (synthetic, mpii:PATH or lsp:PATH).
"""


def export_command(
    checkpoint: str = typer.Argument(..., metavar="CHECKPOINT", help="Checkpoint file or model name."),
    output: str = typer.Option(..., "--output", "-o", help="The .onnx file to write."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (18 or newer)."),
    batch: str = typer.Option("dynamic", "--batch", help="'dynamic' or a fixed batch size."),
    input_size: Optional[int] = typer.Option(
        None, "--input-size",
        help="Square input side in pixels, a multiple of 64 (default: the size an fpdctl checkpoint "
        f"was trained at, else {DEFAULT_INPUT_SIZE}).",
    ),
    all_stacks: bool = typer.Option(False, "--all-stacks", help="Output every stack, not only the last."),
    precision: str = typer.Option("fp32", "--precision", help=" | ".join(EXPORT_PRECISIONS)),
    calibration_data: str = typer.Option(
        "synthetic", "--calibration-data",
        help="Images for int8 calibration (train split) and the accuracy check (val split): "
        "synthetic[:KEY=VAL,...], mpii:PATH or lsp:PATH.",
    ),
    calibration_samples: int = typer.Option(256, "--calibration-samples", help="int8 calibration images."),
    validation_samples: int = typer.Option(
        200, "--validation-samples", help="Persons scored for the fp32 vs fp16/int8 accuracy (0: skip)."
    ),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Compare with PyTorch (default on)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime threads for the checks."),
    exporter: str = typer.Option("dynamo", "--exporter", help="dynamo (default) or torchscript.", hidden=True),
    fmt: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
) -> None:
    from fpdctl.deploy.backends import export_backend
    from fpdctl.deploy.export import export_onnx, parse_batch
    from fpdctl.errors import UsageError

    check_format(fmt)
    export_backend(precision)
    fixed_batch = parse_batch(batch)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    result = export_onnx(
        checkpoint, output, opset=opset, batch=fixed_batch, input_size=input_size,
        all_stacks=all_stacks, precision=precision, calibration_data=calibration_data,
        calibration_samples=calibration_samples, validation_samples=validation_samples,
        verify=verify, threads=threads, exporter=exporter,
        progress=stage_lines,
    )
    emit(_render(result, fmt))
    typer.echo(f"wrote {result.path}", err=True)


def _rows(result: "ExportResult") -> list[dict[str, Any]]:
    info = result.info
    rows: list[dict[str, Any]] = [
        {
            "item": "model",
            "value": f"{info.spec.name} from {info.source} (sha256 {info.source_sha256[:12]})"
            if info.source_sha256 else f"{info.spec.name} (random weights)",
        },
        {"item": "file", "value": f"{result.path} ({result.size_bytes / 1e6:.2f} MB)"},
        {"item": "precision", "value": info.precision},
        {"item": "input", "value": f"[{'N' if info.batch is None else info.batch}, 3, {info.input_size}, {info.input_size}]"},
        {"item": "output", "value": info.outputs},
        {"item": "opset / exporter", "value": f"{info.opset} / {info.exporter}"},
    ]
    for label, report in (("fp32 check", result.base_verification), (f"{info.precision} check", result.verification)):
        if report is None:
            continue
        rows.append({
            "item": label,
            "value": (
                f"max abs {report.max_abs_error:.3g}, max rel {report.max_rel_error:.3g}, "
                f"keypoints agree {100 * report.keypoint_agreement:.2f}% of {report.joints_compared} "
                f"({report.random_samples} random + {report.image_samples} images, "
                f"batch {', '.join(str(b) for b in report.batch_sizes)})"
            ),
        })
    if result.verification is None:
        rows.append({"item": "check", "value": "skipped (--no-verify)"})
    if result.quantization is not None:
        q = result.quantization
        rows.append({
            "item": "calibration",
            "value": f"{q.calibration_samples} images of {q.calibration_data} (train), {q.method}, "
            f"{'per-channel' if q.per_channel else 'per-tensor'} weights",
        })
    if result.accuracy is not None:
        a = result.accuracy
        rows.append({
            "item": f"{a.metric.upper()} ({a.samples} val persons)",
            "value": f"fp32 {a.reference_mean:.2f}, {a.candidate_precision} {a.candidate_mean:.2f} "
            f"(drop {a.drop:+.2f})",
        })
    rows.append({"item": "time", "value": f"{result.seconds:.1f} s"})
    return rows


def _render(result: "ExportResult", fmt: str) -> str:
    if fmt == "json":
        return to_json(result.to_dict())
    columns = [Column("item", "", justify="left"), Column("value", "", justify="left")]
    return render_rows(_rows(result), columns, fmt, title="fpdctl export")


def register(app: typer.Typer) -> None:
    app.command("export", help=HELP, short_help="Export a checkpoint to a verified ONNX file (fp32/fp16/int8).")(
        export_command
    )
