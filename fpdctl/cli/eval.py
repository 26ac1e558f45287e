"""``fpdctl eval``: PCKh / PCK / COCO AP of a prediction file or of a model on a validation split."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from fpdctl.cli.options import (
    CHECKPOINT_SIZE_HELP,
    DEVICE,
    INPUT_CONVENTION,
    INPUT_MEAN,
    INPUT_ORDER,
    INPUT_STD,
    RUN_BACKEND,
    convention_override,
    old_spelling,
    renamed,
    warn_no_effect,
)
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
from fpdctl.pipeline import INFERENCE_BATCH_SIZE

if TYPE_CHECKING:
    from fpdctl.evaluation import EvalResult
    from fpdctl.metrics import AccuracyResult, COCOResult, MetricResult

HELP = """Accuracy of pose predictions: MPII PCKh@0.5, LSP PCK@0.2 or COCO keypoint AP.

fpdctl eval --predictions P --ground-truth G
scores a prediction file against the official MPII ground-truth .mat
(jnt_missing, pos_gt_src, headboxes_src, e.g. HRNet's gt_valid.mat).
P is a .mat with 'preds' N x 16 x 2 (pytorch-pose / HRNet layout, 1-based
MATLAB pixels; 16 x 2 x N and 'pos_pred_src' are accepted too), a .npy
N x 16 x 2, or a .json list of N lists of 16 \\[x, y] (or {"preds": ...});
.npy and .json hold 0-based pixels.

fpdctl eval MODEL_OR_CHECKPOINT --data synthetic|mpii:PATH|lsp:PATH|coco:PATH
runs a checkpoint (or a model name, with random weights) over the
validation split: PCKh for MPII and synthetic data, PCK@0.2 for LSP
(torso = left shoulder to right hip; right shoulder to left hip where
that is not annotated, as in LSPET), COCO keypoint AP for COCO and
synthetic:layout=coco.

COCO: AP (OKS 0.50:0.95), AP50, AP75, APm, APl and AR, computed by
pycocotools' COCOeval, in percent; ground-truth person boxes, one
prediction per person, keypoint scores = heatmap peaks, person score =
mean of the peaks above 0.2 (HRNet). --save-predictions writes COCO's
results JSON; score one with --predictions R --data coco:DIR (the val
annotations) or --predictions R --ground-truth person_keypoints_val2017.json.

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
threshold axis scaled to \\[0, 1], in percent. What HRNet and the FPD code
print as "Mean@0.1" is the pooled figure at threshold 0.11 (entry 11 of
their 0, 0.01, ..., 0.5 grid): pckh@0.1_hrnet in JSON, shown beside it.
"""

_GROUP_HEADERS = (
    ("head", "Head"),
    ("shoulder", "Shoulder"),
    ("elbow", "Elbow"),
    ("wrist", "Wrist"),
    ("hip", "Hip"),
    ("knee", "Knee"),
    ("ankle", "Ankle"),
    ("mean", "Mean"),
    ("mean_plain", "Mean (plain)"),
)
_pct = decimals(2)
# The core's parameters that eval spells otherwise (fpdctl.cli.app.flag_table).
CORE_PARAMS = {"eval": {"num_workers": "workers"}}


# Over 80 lines only through its Typer option declarations (one per flag); the body parses, calls
# fpdctl.api.evaluate or the file scorer, and renders.
def eval_command(
    ctx: typer.Context,
    model: Optional[str] = typer.Argument(
        None,
        metavar="MODEL_OR_CHECKPOINT",
        help="A checkpoint file, a pretrained name such as synthetic-hg2x64 (list them: fpdctl models), "
        "or a model name such as hg4x128 (random weights).",
    ),
    predictions: Optional[Path] = typer.Option(
        None,
        "--predictions",
        "-p",
        help="Prediction file to score (.mat, .npy or .json; a COCO results .json).",
        dir_okay=False,
    ),
    ground_truth: Optional[Path] = typer.Option(
        None,
        "--ground-truth",
        "-g",
        help="With --predictions: the official MPII ground-truth .mat, or a COCO person_keypoints_*.json.",
        dir_okay=False,
    ),
    data: Optional[str] = typer.Option(
        None,
        "--data",
        help="Validation data for MODEL: synthetic[:KEY=VAL,...], mpii:PATH, lsp:PATH or coco:PATH "
        "(with --predictions: coco:PATH, the ground truth of COCO results).",
    ),
    flip_test: bool = typer.Option(
        True, "--flip-test/--no-flip-test", help="Average with the mirrored input (flip test)."
    ),
    old_flip_test: Optional[bool] = old_spelling("--flip/--no-flip"),
    batch_size: int = typer.Option(INFERENCE_BATCH_SIZE, "--batch-size", help="Persons per forward pass."),
    device: str = DEVICE,
    input_size: Optional[int] = typer.Option(
        None,
        "--input-size",
        help=f"Network input side in pixels {CHECKPOINT_SIZE_HELP}.",
    ),
    workers: int = typer.Option(0, "--workers", help="DataLoader worker processes."),
    save_predictions: Optional[Path] = typer.Option(
        None,
        "--save-predictions",
        help="Also write the predictions: .mat ('preds' N x 16 x 2, 1-based, pytorch-pose layout), "
        ".npy or .json (0-based); for COCO data a COCO results .json.",
        dir_okay=False,
    ),
    threshold: Optional[float] = typer.Option(
        None,
        "--threshold",
        help="Normalised-distance threshold (default 0.5 for PCKh, 0.2 for PCK).",
    ),
    per_joint: bool = typer.Option(False, "--per-joint", help="Also show the per-joint table."),
    fmt: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the report here instead of stdout."),
    input_convention: Optional[str] = INPUT_CONVENTION,
    input_order: Optional[str] = INPUT_ORDER,
    input_mean: Optional[str] = INPUT_MEAN,
    input_std: Optional[str] = INPUT_STD,
    backend: str = RUN_BACKEND,
    boxes: Optional[Path] = typer.Option(
        None,
        "--boxes",
        help="With --data coco:DIR: a COCO detection-results JSON (\\[{image_id, category_id: 1, bbox \\[x, y, w, h], "
        "score}]); crop the val images at these person boxes instead of the ground-truth ones "
        "(HRNet's protocol: rescoring, OKS-NMS at 0.9).",
        dir_okay=False,
    ),
) -> None:
    flip_test = renamed(ctx, flip_test, old_flip_test, param="flip_test", flag="--flip-test", old_flag="--flip")
    fmt = check_format(fmt)
    check_outputs(output)
    override = convention_override(input_convention, input_order, input_mean, input_std)
    if per_joint and fmt == "json":
        warn_no_effect(ctx, ["per_joint"], "with --format json (its per_joint field is always there)")
    if predictions is not None or ground_truth is not None:  # the other form: a file is scored
        _check_file_form(model, data, ground_truth, boxes, override, save_predictions)
        warn_no_effect(
            ctx, _MODEL_RUN_OPTIONS + ("old_flip_test",), "with --predictions (it scores a file; no model runs)"
        )
        _score_files(predictions, ground_truth, data, threshold, fmt, per_joint, output)
        return
    if model is None:
        raise UsageError(
            "nothing to evaluate: give MODEL_OR_CHECKPOINT with --data, or --predictions with --ground-truth"
        )
    if data is None:
        raise UsageError("MODEL_OR_CHECKPOINT needs --data (synthetic, mpii:PATH, lsp:PATH or coco:PATH)")
    from fpdctl.api import evaluate
    from fpdctl.data.kinds import data_metric, parse_data_spec

    spec = parse_data_spec(data)  # parsed once, here; the core passes the spec on
    if per_joint and data_metric(spec) == "oks":  # before the network runs: AP has no per-joint figure
        raise UsageError("--per-joint applies to PCKh and PCK; COCO AP has no per-joint figure")
    with ProgressBar("evaluating", enabled=fmt == "table" and output is None) as progress:
        result = evaluate(
            model,
            spec,
            backend=backend,
            device=device,
            input_size=input_size,
            boxes=boxes,
            flip_test=flip_test,
            batch_size=batch_size,
            num_workers=workers,
            threshold=threshold,
            save_predictions=save_predictions,
            input_convention=override,
            progress=progress,
        )
    emit(_render(result.metric, result, fmt, per_joint, source=f"{model} on {data}"), output)
    if save_predictions is not None:
        typer.echo(f"wrote {save_predictions}", err=True)


# What only a model run reads: given with --predictions they change nothing.
_MODEL_RUN_OPTIONS = ("flip_test", "batch_size", "device", "input_size", "workers", "backend")


def _check_file_form(
    model: str | None,
    data: str | None,
    ground_truth: Path | None,
    boxes: Path | None,
    override: Any,
    save_predictions: Path | None,
) -> None:
    """Refuse what does not go with ``--predictions`` / ``--ground-truth`` (eval's second form,
    which scores a file): the options of the first form, which runs a model."""
    if boxes is not None:
        raise UsageError("--boxes applies to a model on --data coco:DIR, not to --predictions")
    if model is not None or (data is not None and ground_truth is not None):
        raise UsageError("give either MODEL_OR_CHECKPOINT with --data, or --predictions with --ground-truth, not both")
    if override is not None:
        raise UsageError(
            "--input-convention, --input-order, --input-mean and --input-std apply to a model, not to --predictions"
        )
    if save_predictions is not None:
        raise UsageError("--save-predictions applies to model evaluation only")


def _score_files(
    predictions: Path | None,
    ground_truth: Path | None,
    data: str | None,
    threshold: float | None,
    fmt: str,
    per_joint: bool,
    output: str | None,
) -> None:
    """``fpdctl eval --predictions P --ground-truth G`` (or ``--data coco:DIR``): score a file."""
    if predictions is None:
        raise UsageError("--ground-truth needs --predictions (the prediction file to score)")
    from fpdctl.metrics import score_prediction_file

    if ground_truth is None and data is None:
        raise UsageError("--predictions needs --ground-truth (an MPII .mat or a COCO .json) or --data coco:DIR")
    if ground_truth is None:
        from fpdctl.data.coco_source import coco_ground_truth_file

        ground_truth = coco_ground_truth_file(str(data))
    metric = score_prediction_file(predictions, ground_truth, threshold=threshold)
    emit(_render(metric, None, fmt, per_joint, source=str(predictions)), output)


def _report(metric: "MetricResult", result: "EvalResult | None") -> dict[str, Any]:
    report = metric.to_dict()
    if result is not None:
        report["backend"] = result.backend
        report["input_size"] = result.input_size
        report["seconds"] = round(result.seconds, 4)
        report["persons_per_second"] = round(result.persons_per_second, 3)
        if result.input_convention is not None:
            report["input_convention"] = result.input_convention.to_dict()
        boxes = getattr(result.reference, "boxes", None)  # COCO's reference says which boxes
        if callable(boxes):
            report["boxes"] = boxes()
    return report


def _run_notes(result: "EvalResult | None") -> list[str]:
    """What a model evaluation adds to a table's caption: speed, device, flip test, input."""
    if result is None:
        return []
    notes = [
        f"{result.num_persons} persons at {result.input_size} px in {result.seconds:.2f} s "
        f"({result.persons_per_second:.1f}/s) on {result.device}, flip test {'on' if result.flip_test else 'off'}"
    ]
    if result.input_convention is not None:
        notes.append(f"input {result.input_convention.describe()}")
    return notes


def _box_notes(report: dict[str, Any]) -> list[str]:
    """Which boxes the persons were cropped at, for a COCO table's caption."""
    boxes = report.get("boxes")
    if not boxes:
        return []
    if boxes["source"] == "ground truth":
        return ["ground-truth person boxes"]
    from fpdctl.metrics.coco_detections import OKS_NMS_THRESHOLD

    return [f"{boxes['count']} detector boxes from {boxes['file']} (rescored, OKS-NMS at {OKS_NMS_THRESHOLD:g})"]


def _render_coco(metric: "COCOResult", result: "EvalResult | None", fmt: str, source: str) -> str:
    """COCO's table: COCOeval's ten figures in percent ("-" where pycocotools has no person in
    the area range)."""
    report = _report(metric, result)
    if fmt == "json":
        return to_json(report)
    show = lambda v: "-" if v is None else v if isinstance(v, str) else _pct(v)  # noqa: E731
    if fmt == "csv":
        row = {**report["oks"], **{k: v for k, v in report.items() if not isinstance(v, dict)}}
        if "boxes" in report:
            row["boxes"] = report["boxes"].get("file", report["boxes"]["source"])
        return render_rows([row], [Column(k, k, show) for k in row], fmt)
    notes = [
        f"{metric.num_images} images, {metric.num_predictions} persons scored",
        *_run_notes(result),
        *_box_notes(report),
    ]
    caption = (
        "; ".join(notes) + ".\nCOCO keypoint AP/AR by pycocotools (OKS, thresholds 0.50:0.95), "
        "in percent; APm/APl: medium/large persons; AR at 20 persons per image."
    )
    return render_rows(
        [report["oks"]], [Column(k, k, show) for k in report["oks"]], fmt, title=f"COCO AP: {source}", caption=caption
    )


def _render(metric: "MetricResult", result: "EvalResult | None", fmt: str, per_joint: bool, source: str) -> str:
    if metric.metric == "oks":
        return _render_coco(metric, result, fmt, source)  # type: ignore[arg-type]
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
        notes.append(  # what HRNet / FPD print as "Mean@0.1"
            f"PCKh@0.1_hrnet (threshold 0.11, HRNet/FPD 'Mean@0.1') {metric.pckh_at_0_1_hrnet:.2f}"  # type: ignore[attr-defined]
        )
        notes.append(f"AUC@0..0.5 {metric.auc:.2f}")
    else:
        notes.append(f"AUC@0..0.2 {metric.auc:.2f}")
        excluded = getattr(metric, "num_excluded", 0)
        if excluded:
            notes.append(f"{excluded} persons without an annotated torso not scored")
    notes += _run_notes(result)
    caption = (
        "; ".join(notes) + ".\nMean: pooled over the 14 joints (MPII toolkit, HRNet, FPD paper). Mean (plain): "
        "average of the 14 per-joint figures (pytorch-pose)."
    )
    text = render_rows([row], columns, fmt, title=title, caption=caption)
    if per_joint:
        joint_rows = [{"joint": j, "value": v, "count": metric.counts[j]} for j, v in metric.per_joint.items()]
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
