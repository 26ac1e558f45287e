"""``fpdctl predict``: keypoints (JSON) and skeleton drawings for images, folders and videos."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fpdctl.cli.options import (
    DEVICE,
    INPUT_CONVENTION,
    INPUT_MEAN,
    INPUT_ORDER,
    INPUT_STD,
    RUN_BACKEND,
    convention_override,
)
from fpdctl.models.spec import DEFAULT_INPUT_SIZE

HELP = """Predict one person's keypoints per image or video frame.

MODEL is a checkpoint, an .onnx file from `fpdctl export` or a model name
(random weights). INPUT is an image, a folder of images, or a video
(anything OpenCV reads: .mp4, .avi, .mov ...).

The person: --bbox x,y,w,h (image pixels) crops around that box, enlarged
by the datasets' 1.25 margin; without it the whole frame is the person
(centre at the image centre, crop side = the longer image side).

Writes, in --out: keypoints.json (per image or frame: box, crop centre and
scale, and for each joint its name, x, y in 0-based image pixels and the
heatmap peak score), and the input with the skeleton drawn: one image per
input image, or STEM_pose.mp4 (mp4v) for a video.

Crops are normalised in the model's own input convention: what the
checkpoint or export records, or its format implies (pytorch-pose: RGB
minus its MPII mean, no std; official FPD: BGR). --input-* override it;
keypoints.json says which was used (input_convention).
"""


def predict_command(
    model: str = typer.Argument(..., metavar="MODEL", help="Checkpoint, .onnx file or model name."),
    input_path: Path = typer.Argument(..., metavar="INPUT", help="Image, folder of images, or video."),
    out: Path = typer.Option(Path("predictions"), "--out", help="Output folder."),
    bbox: Optional[str] = typer.Option(None, "--bbox", help="Person box x,y,w,h in image pixels."),
    device: str = DEVICE,
    threads: Optional[int] = typer.Option(None, "--threads", help="Intra-op threads."),
    input_size: Optional[int] = typer.Option(None, "--input-size", help=f"Input side for checkpoints (default: the size an fpdctl checkpoint was trained at, else {DEFAULT_INPUT_SIZE})."),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Write the drawn images or video."),
    min_score: float = typer.Option(0.0, "--min-score", help="Do not draw joints scoring below this."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop a video after this many frames."),
    input_convention: Optional[str] = INPUT_CONVENTION,
    input_order: Optional[str] = INPUT_ORDER,
    input_mean: Optional[str] = INPUT_MEAN,
    input_std: Optional[str] = INPUT_STD,
    backend: str = RUN_BACKEND,
) -> None:
    from fpdctl.deploy.predict import parse_bbox, predict
    from fpdctl.errors import UsageError

    override = convention_override(input_convention, input_order, input_mean, input_std)
    box = parse_bbox(bbox)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    result = predict(
        model, input_path, out_dir=out, bbox=box, device=device, threads=threads,
        input_size=input_size, draw=draw, min_score=min_score, max_frames=max_frames,
        input_convention=override, backend=backend,
    )
    what = "frames" if result.kind == "video" else "images"
    typer.echo(
        f"{len(result.predictions)} {what} in {result.seconds:.1f} s "
        f"({result.arch}, {result.input_size} px input)"
    )
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
