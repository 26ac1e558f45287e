"""``fpdctl eval``: PCKh / PCK of a prediction file or of a model on a validation split."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from fpdctl.cli.render import (
    Column,
    ProgressBar,
    check_format,
    check_outputs,
    decimals,
    emit,
    render_rows,
    to_json,
)
from fpdctl.errors import UsageError
from fpdctl.models.spec import DEFAULT_INPUT_SIZE

if TYPE_CHECKING:
    from fpdctl.evaluate import EvalResult
    from fpdctl.metrics import AccuracyResult

HELP = """Accuracy of pose predictions: MPII PCKh@0.5 or LSP PCK@0.2.

fpdctl eval --predictions P --ground-truth G
scores a prediction file against the official MPII ground-truth .mat
(jnt_missing, pos_gt_src, headboxes_src, e.g. HRNet's gt_valid.mat).
P is a .mat with 'preds' N x 16 x 2 (pytorch-pose / HRNet layout, 1-based
MATLAB pixels; 16 x 2 x N and 'pos_pred_src' are accepted too), a .npy
N x 16 x 2, or a .json list of N lists of 16 \\[x, y] (or {"preds": ...});
.npy and .json hold 0-based pixels.

fpdctl eval MODEL_OR_CHECKPOINT --data synthetic|mpii:PATH|lsp:PATH
runs a checkpoint (or a model name, with random weights) over the
validation split: PCKh for MPII and synthetic data, PCK@0.2 for LSP
(torso = left shoulder to right hip; right shoulder to left hip where
that is not annotated, as in LSPET).

Protocol of the MPII evaluation toolkit: a joint is correct when its error
is <= threshold x the reference length (head size = 0.6 x the head-box
diagonal); only annotated joints count; pelvis and thorax are left out of
the means. Head averages upper neck and head top as the toolkit does
(pytorch-pose and HRNet print the head top alone: per_joint.head_top).

Mean is pooled (hits / visible joints over the 14 joints): the figure of
the MPII toolkit, HRNet and the FPD paper. Mean (plain), mean_plain in
JSON, is the average of the 14 per-joint figures, as pytorch-pose prints
it; the two differ by about a point. Also reported: pooled PCKh@0.1 and
the AUC of the pooled curve over thresholds 0, 0.01, ..., 0.5 (PCK: 0.2),
threshold axis scaled to \\[0, 1], in percent.
"""

_GROUP_HEADERS = (
    ("head", "Head"), ("shoulder", "Shoulder"), ("elbow", "Elbow"), ("wrist", "Wrist"),
    ("hip", "Hip"), ("knee", "Knee"), ("ankle", "Ankle"), ("mean", "Mean"),
    ("mean_plain", "Mean (plain)"),
)
_pct = decimals(2)


def eval_command(
    model: Optional[str] = typer.Argument(
        None, metavar="MODEL_OR_CHECKPOINT",
        help="A checkpoint file, or a model name such as hg4x128 (random weights).",
    ),
    predictions: Optional[Path] = typer.Option(
        None, "--predictions", "-p", help="Prediction file (.mat, .npy or .json) to score.",
        dir_okay=False,
    ),
    ground_truth: Optional[Path] = typer.Option(
        None, "--ground-truth", "-g", help="Official MPII ground-truth .mat (with --predictions).",
        dir_okay=False,
    ),
    data: Optional[str] = typer.Option(
        None, "--data", help="Validation data for MODEL: synthetic[:KEY=VAL,...], mpii:PATH or lsp:PATH.",
    ),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Average with the mirrored input (flip test)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Persons per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    input_size: Optional[int] = typer.Option(
        None, "--input-size",
        help=f"Network input side in pixels (default: the size an fpdctl checkpoint was trained at, else {DEFAULT_INPUT_SIZE}).",
    ),
    workers: int = typer.Option(0, "--workers", help="DataLoader worker processes."),
    save_predictions: Optional[Path] = typer.Option(
        None, "--save-predictions",
        help="Also write the predictions: .mat ('preds' N x 16 x 2, 1-based, pytorch-pose layout), "
        ".npy or .json (0-based).",
        dir_okay=False,
    ),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", help="Normalised-distance threshold (default 0.5 for PCKh, 0.2 for PCK).",
    ),
    per_joint: bool = typer.Option(False, "--per-joint", help="Also show the per-joint table."),
    fmt: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the report here instead of stdout."),
) -> None:
    check_format(fmt)
    check_outputs(output)
    if threshold is not None and not (threshold > 0 and threshold < float("inf")):
        raise UsageError(f"--threshold must be a positive number, got {threshold}")
    if predictions is not None or ground_truth is not None:
        if model is not None or data is not None:
            raise UsageError(
                "give either MODEL_OR_CHECKPOINT with --data, or --predictions with "
                "--ground-truth, not both"
            )
        _score_files(predictions, ground_truth, save_predictions, threshold, fmt, per_joint, output)
        return
    if model is None:
        raise UsageError(
            "nothing to evaluate: give MODEL_OR_CHECKPOINT with --data, or --predictions with "
            "--ground-truth"
        )
    if data is None:
        raise UsageError("MODEL_OR_CHECKPOINT needs --data (synthetic, mpii:PATH or lsp:PATH)")
    from fpdctl.evaluate import evaluate_checkpoint

    with ProgressBar("evaluating", enabled=fmt == "table" and output is None) as progress:
        result = evaluate_checkpoint(
            model, data, input_size=input_size, device=device, save_predictions=save_predictions,
            flip=flip, batch_size=batch_size, num_workers=workers, threshold=threshold, progress=progress,
        )
    emit(_render(result.metric, result, fmt, per_joint, source=f"{model} on {data}"), output)
    if save_predictions is not None:
        typer.echo(f"wrote {save_predictions}", err=True)


def _score_files(
    predictions: Path | None, ground_truth: Path | None, save_predictions: Path | None,
    threshold: float | None, fmt: str, per_joint: bool, output: str | None,
) -> None:
    """``fpdctl eval --predictions P --ground-truth G``: score a prediction file."""
    if predictions is None:
        raise UsageError("--ground-truth needs --predictions (the prediction file to score)")
    if ground_truth is None:
        raise UsageError("--predictions needs --ground-truth (the official MPII ground-truth .mat)")
    if save_predictions is not None:
        raise UsageError("--save-predictions applies to model evaluation only")
    from fpdctl.metrics.files import evaluate_prediction_files
    from fpdctl.metrics.pckh import PCKH_THRESHOLD

    metric = evaluate_prediction_files(
        predictions, ground_truth, threshold=PCKH_THRESHOLD if threshold is None else threshold
    )
    emit(_render(metric, None, fmt, per_joint, source=str(predictions)), output)


def _report(metric: "AccuracyResult", result: "EvalResult | None") -> dict[str, Any]:
    report = metric.to_dict()
    if result is not None:
        report["input_size"] = result.input_size
        report["seconds"] = round(result.seconds, 4)
        report["images_per_second"] = round(result.images_per_second, 3)
    return report


def _render(metric: "AccuracyResult", result: "EvalResult | None", fmt: str, per_joint: bool, source: str) -> str:
    if fmt == "json":
        return to_json(_report(metric, result))
    name = "PCKh" if metric.metric == "pckh" else "PCK"
    title = f"{name}@{metric.threshold:g}: {source}"
    row = dict(metric.groups)
    columns = [Column(key, header, _pct) for key, header in _GROUP_HEADERS]
    if fmt == "csv":
        return render_rows([_flat_row(metric, result)], columns, fmt)
    notes = [f"{metric.num_persons} persons, {sum(metric.counts.values())} visible joints"]
    if metric.metric == "pckh":
        notes.append(f"PCKh@0.1 {metric.pckh_at_0_1:.2f}")  # type: ignore[attr-defined]
        notes.append(f"AUC@0..0.5 {metric.auc:.2f}")
    else:
        notes.append(f"AUC@0..0.2 {metric.auc:.2f}")
        excluded = getattr(metric, "num_excluded", 0)
        if excluded:
            notes.append(f"{excluded} persons without an annotated torso not scored")
    if result is not None:
        notes.append(
            f"{result.num_images} images at {result.input_size} px in {result.seconds:.2f} s "
            f"({result.images_per_second:.1f}/s) on {result.device}, flip test {'on' if result.flip else 'off'}"
        )
    caption = (
        "; ".join(notes)
        + ".\nMean: pooled over the 14 joints (MPII toolkit, HRNet, FPD paper). Mean (plain): "
        "average of the 14 per-joint figures (pytorch-pose)."
    )
    text = render_rows([row], columns, fmt, title=title, caption=caption)
    if per_joint:
        joint_rows = [
            {"joint": j, "value": v, "count": metric.counts[j]} for j, v in metric.per_joint.items()
        ]
        joint_columns = [
            Column("joint", "Joint", justify="left"),
            Column("value", name, lambda v: "-" if v != v else _pct(v)),
            Column("count", "Visible"),
        ]
        text += "\n\n" + render_rows(joint_rows, joint_columns, fmt, title=f"{name} per joint")
    return text


def _flat_row(metric: "AccuracyResult", result: "EvalResult | None") -> dict[str, Any]:
    """One CSV row: the groups, then every per-joint figure, then the extras."""
    report = _report(metric, result)
    row: dict[str, Any] = dict(report[metric.metric])
    row.update({f"joint_{k}": v for k, v in report["per_joint"].items()})
    row.update({k: v for k, v in report.items() if not isinstance(v, dict)})
    return row


def register(app: typer.Typer) -> None:
    app.command("eval", help=HELP)(eval_command)
