"""``fpdctl data``: the built-in synthetic dataset on disk, and a preview of any dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fpdctl.cli.options import old_spelling, renamed
from fpdctl.errors import UsageError
from fpdctl.models.spec import DEFAULT_INPUT_SIZE
from fpdctl.utils.choices import parse_choice

# The synthetic splits `data synth` writes (preview reads the first two).
SPLITS = ("train", "val", "both")

data_app = typer.Typer(
    help="Datasets: export the built-in synthetic data, preview samples.",
    no_args_is_help=True,
)

SYNTH_HELP = """Write synthetic persons as an MPII dataset (HRNet / official FPD layout) or,
with --layout coco, as a COCO keypoints dataset.

MPII: DIR gets images/*.jpg and annot/valid.json (annot/train.json with --split
train, both files with --split both, which train and distill can read): a list of {image, center,
scale, joints [16][2], joints_vis [16]} in
MATLAB 1-based pixels. A val export also gets annot/gt_valid.mat (pos_gt_src,
jnt_missing, headboxes_src), the MPII evaluation ground truth with the head
boxes PCKh needs. Read it back with --data mpii:DIR. The same --seed and
--split give the same persons as --data synthetic:seed=N.

COCO: DIR gets annotations/person_keypoints_val2017.json and val2017/*.jpg
(train2017 with --split train, both with --split both): one person per
image, COCO's 17 keypoints (body keypoints from the figure's joints; nose,
eyes and ears placed on the drawn head and visible when the face turns to
the camera), a person box and an area of half the box. Read it back with
--data coco:DIR; the same persons as --data synthetic:layout=coco,seed=N.

Crowds (--layout coco --persons N): COUNT images of 1..N persons each, drawn
overlapping, a later person over the earlier ones; a keypoint a later person
covers has v=1 (labelled, not visible), a seen one v=2, one outside the
image (or under an occluder, or a face point turned away) v=0. The same
persons as --data synthetic:layout=coco,persons=N.

--detections FILE (COCO layout) also writes a SIMULATED person detector's
boxes for the val split (the train split with --split train) as a COCO
detection-results JSON, for fpdctl eval --boxes: the ground-truth boxes,
jittered (centre 5% of the box, size 8%), about 5% of the persons missed
and a false positive in about 10% of the images, seeded by --seed. It is
not a real detector (no detector weights can be downloaded here).
"""

PREVIEW_HELP = """Draw dataset samples, as the network sees them, in a PNG grid.

Each tile is one sample after the standard crop, with its skeleton: the
person's right limbs orange, left limbs blue, spine and head green (as
fpdctl predict draws them); visible joints are dots, invisible ones rings.
The head box used by PCKh is outlined.
"""


@data_app.command("synth", help=SYNTH_HELP)
def synth_command(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Output folder (new or empty).", file_okay=False),
    count: int = typer.Option(
        ..., "--count", "-n", help="Number of persons (one image each); of images with --persons above 1."
    ),
    image_size: int = typer.Option(
        256,
        "--image-size",
        help="Image side in pixels (as synthetic:image_size=N).",
    ),
    old_size: Optional[int] = old_spelling("--size"),
    seed: int = typer.Option(0, "--seed", help="Dataset seed."),
    split: str = typer.Option(
        "val",
        "--split",
        help="Synthetic split to export: train, val, or both (COUNT persons each: a folder train and distill read).",
    ),
    layout: str = typer.Option("mpii", "--layout", help="Annotation layout: mpii (16 joints) or coco (17 keypoints)."),
    persons: int = typer.Option(
        1,
        "--persons",
        help="Most persons per image (--layout coco): above 1, COUNT images of overlapping persons.",
    ),
    detections: Optional[Path] = typer.Option(
        None,
        "--detections",
        help=(
            "Also write a SIMULATED detector's person boxes (jittered ground truth) as a COCO detection-results .json."
        ),
        dir_okay=False,
    ),
) -> None:
    from fpdctl.data.synthetic import LAYOUTS, export_coco, export_mpii

    image_size = renamed(ctx, image_size, old_size, param="image_size", flag="--image-size", old_flag="--size")
    split, layout = parse_choice(split, SPLITS, "--split"), parse_choice(layout, LAYOUTS, "--layout")
    if layout != "coco" and (persons != 1 or detections is not None):
        raise UsageError("--persons and --detections need --layout coco")
    if layout == "coco":
        result = export_coco(
            out,
            count,
            image_size=image_size,
            seed=seed,
            split=split,  # type: ignore[arg-type]
            persons=persons,
            detections=detections,
        )
    else:
        result = export_mpii(out, count, image_size=image_size, seed=seed, split=split)  # type: ignore[arg-type]
    folders = (
        "images/" if result.layout == "mpii" else ", ".join(f"{a.stem.rsplit('_', 1)[-1]}/" for a in result.annotations)
    )
    files = ", ".join(a.relative_to(result.out_dir).as_posix() for a in result.annotations)
    if result.ground_truth is not None:
        files += ", " + result.ground_truth.relative_to(result.out_dir).as_posix()
    if persons > 1:
        split = "train + val" if result.split == "both" else result.split
        what = f"{result.count} {split} persons in {result.num_images} images"
    else:
        what = (
            f"{f'{count} train + {count} val' if result.split == 'both' else f'{result.count} {result.split}'} persons"
        )
    typer.echo(
        f"wrote {what} ({result.image_size} px, seed {result.seed}) "
        f"to {result.out_dir}: {folders}, {files}; "
        f"{result.visible_joints} of {result.total_joints} joints visible"
    )
    if result.detections is not None:
        typer.echo(f"wrote {result.detections}: {result.num_detections} simulated detector boxes")


@data_app.command("preview", help=PREVIEW_HELP)
def preview_command(
    ctx: typer.Context,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="PNG file to write (required).", dir_okay=False),
    old_out: Optional[Path] = old_spelling("--out", dir_okay=False),
    count: int = typer.Option(16, "--count", "-n", help="Number of samples."),
    data: str = typer.Option("synthetic", "--data", help="synthetic[:KEY=VAL,...], mpii:PATH, lsp:PATH or coco:PATH."),
    split: str = typer.Option("val", "--split", help="train or val."),
    input_size: int = typer.Option(DEFAULT_INPUT_SIZE, "--input-size", help="Network input side in pixels."),
    start: int = typer.Option(0, "--start", help="Index of the first sample."),
    augment: bool = typer.Option(False, "--augment/--no-augment", help="Show training augmentation."),
) -> None:
    from fpdctl.data.preview import save_preview
    from fpdctl.data.registry import build_dataset
    from fpdctl.data.transforms import AugmentConfig

    output = renamed(ctx, output, old_out, param="output", flag="--output", old_flag="--out")
    if output is None:
        raise UsageError("data preview needs --output (-o), the PNG file to write")
    split = parse_choice(split, SPLITS[:2], "--split")
    if input_size <= 0:
        raise UsageError(f"--input-size must be positive, got {input_size}")
    dataset = build_dataset(
        data,
        split,  # type: ignore[arg-type]
        input_size=input_size,
        augment=AugmentConfig() if augment else None,
    )
    result = save_preview(output, dataset, count, start=start)
    typer.echo(
        f"wrote {result.path}: {result.count} samples ({result.columns} per row, "
        f"{result.tile_size} px); {result.visible_joints} of {result.total_joints} joints visible"
    )


def register(app: typer.Typer) -> None:
    """Add ``fpdctl data`` to the application."""
    app.add_typer(data_app, name="data")
