"""``fpdctl predict``: keypoints (JSON) and skeleton drawings for images, folders and videos."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

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
    warn_no_effect,
)
from fpdctl.deploy.detector import DEFAULT_DET_IOU, DEFAULT_DET_SCORE
from fpdctl.errors import UsageError
from fpdctl.pipeline import INFERENCE_BATCH_SIZE

HELP = """Predict the keypoints of every person in each image or video frame.

MODEL is a checkpoint, an .onnx file from `fpdctl export` or a model name
(random weights). INPUT is an image, a folder of images, or a video
(anything OpenCV reads: .mp4, .avi, .mov ...).

The persons (one source at most):

\b
  (none)          the whole frame is one person (centre at the image centre,
                  crop side = the longer image side)
  --bbox x,y,w,h  one person in that box (image px), enlarged by 1.25
  --boxes FILE    every box of a COCO detection-results JSON list is a person:
                  [{"file_name": "a.jpg", "bbox": \\[x, y, w, h], "score": .9}]
                  file_name relative to INPUT (or image_id with --annotations,
                  a COCO file whose "images" map ids to file names); for a
                  video, "frame" (0-based, or 1-based with --frame-base 1);
                  category_id, if given, must be 1. Boxes scoring under
                  --det-score and entries for images INPUT does not hold are
                  skipped and counted
  --detector DET  an Ultralytics ONNX export (`yolo export format=onnx`):
                  YOLOv8/11 heads [1,4+C,A] or transposed, YOLOv5 [1,A,5+C],
                  end-to-end [1,N,6] (nms=True, YOLOv10, YOLO26) or a pose
                  head (read as persons); segmentation, classify and OBB
                  heads are refused. Run with ONNX Runtime (OpenVINO when
                  --backend runs the pose model there); class 0 = person

Boxes are clipped to the image and cropped as `eval --boxes` and COCO
top-down models crop them (box centre, longer side x 1.25); a box that is not
finite, thinner than 1 px or with no area in its image is skipped and
counted. The boxes run --batch-size crops at a time, so memory stays flat
however many boxes an image has. An image with no box gets an empty list of
persons.

Writes, in --out (empty or new; --overwrite replaces an earlier predict's
output and nothing else; a folder holding other files is refused):
keypoints.json and the input with every skeleton (and box) drawn: one image
per input image, or STEM_pose.mp4 (mp4v) for a video. keypoints.json has
one entry per image or frame:

\b
  {"file": "a.jpg", "frame": null, "width": W, "height": H, "persons": [
    {"box": \\[x, y, w, h], "box_score": 0.9 or null, "center": \\[cx, cy],
     "scale": s, "keypoints": [{"name": "r_ankle", "x": .., "y": .., "score": ..}, ...]}]}

The run writes into a hidden folder beside --out and swaps it in at the end:
a failed or interrupted run leaves --out as it was.

A single person (whole frame or --bbox) is a list of one, box_score null.
Coordinates are 0-based image px; the file also says which backend ran
("backend"), where the persons came from ("persons_from") and which files
the run wrote ("written").

Crops are normalised in the model's own input convention: what the
checkpoint or export records, or its format implies (pytorch-pose: RGB
minus its MPII mean, no std; official FPD: BGR). --input-* override it;
keypoints.json says which was used (input_convention).
"""


def parse_bbox(text: Optional[str]) -> Optional[tuple[float, float, float, float]]:
    """``"x,y,w,h"`` (image px, top-left corner and size) -> a tuple; None -> None.

    Raises:
        UsageError: not four numbers, or a width or height that is not positive.
    """
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise UsageError(f"--bbox must be x,y,w,h (four numbers, image pixels), got '{text}'")
    if values[2] <= 0 or values[3] <= 0:
        raise UsageError(f"--bbox width and height must be positive, got '{text}'")
    return values[0], values[1], values[2], values[3]


def predict_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., metavar="MODEL", help="Checkpoint, .onnx file or model name."),
    input_path: Path = typer.Argument(..., metavar="INPUT", help="Image, folder of images, or video."),
    out: Path = typer.Option(Path("predictions"), "--out", help="Output folder."),
    bbox: Optional[str] = typer.Option(None, "--bbox", help="Person box x,y,w,h in image pixels."),
    boxes: Optional[Path] = typer.Option(None, "--boxes", help="Person boxes: a COCO detection-results JSON list."),
    annotations: Optional[Path] = typer.Option(
        None, "--annotations", help="COCO annotation file mapping the --boxes image_id to file names."
    ),
    detector: Optional[Path] = typer.Option(
        None,
        "--detector",
        help="Person detector: an Ultralytics YOLO .onnx export (v5, v8/11, v10, YOLO26; detect or pose).",
    ),
    det_score: float = typer.Option(
        DEFAULT_DET_SCORE,
        "--det-score",
        help="Person score threshold, in [0, 1], of the detector and of --boxes (lower boxes are skipped).",
    ),
    det_iou: float = typer.Option(DEFAULT_DET_IOU, "--det-iou", help="Detector NMS IoU threshold, in [0, 1]."),
    frame_base: int = typer.Option(
        0, "--frame-base", help="What a video's --boxes file numbers the first frame: 0, or 1 (MOT files)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier predict's output in --out."),
    device: str = DEVICE,
    threads: Optional[int] = typer.Option(None, "--threads", help="Intra-op threads."),
    input_size: Optional[int] = typer.Option(
        None,
        "--input-size",
        help=f"Input side for checkpoints {CHECKPOINT_SIZE_HELP}.",
    ),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Write the drawn images or video."),
    min_score: float = typer.Option(0.0, "--min-score", help="Do not draw joints scoring below this."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop a video after this many frames."),
    input_convention: Optional[str] = INPUT_CONVENTION,
    input_order: Optional[str] = INPUT_ORDER,
    input_mean: Optional[str] = INPUT_MEAN,
    input_std: Optional[str] = INPUT_STD,
    backend: str = RUN_BACKEND,
    batch_size: int = typer.Option(
        INFERENCE_BATCH_SIZE, "--batch-size", help="Persons per forward pass (bounds memory in crowds)."
    ),
) -> None:
    from fpdctl.api import predict
    from fpdctl.deploy.boxes import check_frame_base
    from fpdctl.errors import UsageError

    override = convention_override(input_convention, input_order, input_mean, input_std)
    box = parse_bbox(bbox)
    if boxes is not None:
        warn_no_effect(ctx, ["det_iou"], "with --boxes (a boxes file's boxes are not suppressed)")
    if boxes is None:
        check_frame_base(frame_base)  # a bad value is refused before it is called unused
        warn_no_effect(ctx, ["frame_base"], "without --boxes (it numbers a boxes file's frames)")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    result = predict(
        model,
        input_path,
        out,
        bbox=box,
        boxes=boxes,
        annotations=annotations,
        detector=detector,
        det_score=det_score,
        det_iou=det_iou,
        frame_base=frame_base,
        overwrite=overwrite,
        device=device,
        threads=threads,
        input_size=input_size,
        draw=draw,
        min_score=min_score,
        max_frames=max_frames,
        input_convention=override,
        backend=backend,
        batch_size=batch_size,
    )
    what = "frames" if result.kind == "video" else "images"
    typer.echo(
        f"{len(result.predictions)} {what}, {result.num_persons} persons in {result.seconds:.1f} s "
        f"({result.arch}, {result.input_size} px input, {result.backend})"
    )
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for skipped in result.skipped:
        typer.echo(f"skipped {skipped}", err=True)
    typer.echo(f"wrote {result.json_path}")
    if result.drawn:
        where = result.drawn[0] if len(result.drawn) == 1 else f"{len(result.drawn)} files in {out}"
        typer.echo(f"wrote {where}")


def register(app: typer.Typer) -> None:
    app.command("predict", help=HELP, short_help="Keypoints and drawings for images, folders and videos.")(
        predict_command
    )
