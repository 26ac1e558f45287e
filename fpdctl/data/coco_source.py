"""Where a COCO split lives under ``coco:PATH``: the annotation file and the image folder.

Paths only (no torch, no numpy), so scoring a COCO results file against ``--data coco:DIR`` runs
without the deep-learning stack; :mod:`fpdctl.data.coco` builds the dataset on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fpdctl.errors import InputError, UsageError

SPLIT_FOLDERS: dict[str, str] = {"train": "train2017", "val": "val2017"}
ANNOTATION_PATTERN = "annotations/person_keypoints_{}.json"
# (layout name, image folder relative to the dataset folder), tried in this order.
IMAGE_LAYOUTS: tuple[tuple[str, str], ...] = (("official", "{}"), ("images", "images/{}"))

Layout = Literal["official", "images"]


@dataclass(frozen=True)
class COCOSource:
    """Where one COCO split lives.

    Attributes:
        annotation_file: ``annotations/person_keypoints_<split>2017.json``.
        image_dir: the split's image folder.
        layout: "official" (``<split>2017/`` beside ``annotations/``) or "images"
            (``images/<split>2017/``).
    """

    annotation_file: Path
    image_dir: Path
    layout: Layout


def _annotation_file(root: Path, split: str) -> Path:
    """``root/annotations/person_keypoints_<split>2017.json``; InputError when absent."""
    if not root.is_dir():
        raise InputError(f"coco:PATH must be the COCO folder (holding annotations/ and the image folders), got {root}")
    annotation_file = root / ANNOTATION_PATTERN.format(SPLIT_FOLDERS[split])
    if not annotation_file.is_file():
        raise InputError(f"no COCO {split} annotations in {root}: {annotation_file} is missing")
    return annotation_file


def find_coco_source(path: str | Path, split: str) -> COCOSource:
    """The annotation file and image folder of ``split`` under the dataset folder ``path``.

    Raises:
        InputError: ``path`` is not a folder, or the annotation file or image folder is missing.
    """
    root = Path(path)
    annotation_file = _annotation_file(root, split)
    folder = SPLIT_FOLDERS[split]
    candidates = [(layout, root / pattern.format(folder)) for layout, pattern in IMAGE_LAYOUTS]
    for layout, image_dir in candidates:
        if image_dir.is_dir():
            return COCOSource(annotation_file, image_dir, layout)  # type: ignore[arg-type]
    tried = " or ".join(str(d) for _, d in candidates)
    raise InputError(f"no COCO {split} images in {root}: expected {tried}")


def coco_ground_truth_file(data: str, split: str = "val") -> Path:
    """The ``person_keypoints_<split>2017.json`` of a ``coco:PATH`` data spec (images not needed).

    Raises:
        UsageError: ``data`` is not ``coco:PATH``. InputError: no such folder or annotation file.
    """
    from fpdctl.data.kinds import parse_data_spec

    spec = parse_data_spec(data)
    if spec.kind != "coco" or spec.path is None:
        raise UsageError(
            f"`predictions` with `data` scores COCO results against coco:DIR, got {data!r}; "
            "score MPII predictions with `ground_truth`",
            params=("predictions", "data", "ground_truth"),
        )
    return _annotation_file(spec.path, split)
