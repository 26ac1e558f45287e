"""Checks of a COCO keypoints ground truth that pycocotools would otherwise mis-score silently.

pycocotools trusts its ground truth. It indexes annotations and images by id, so a repeated id
drops a record without a word (perfect predictions then score AP 89 on a set where every
person is found); a NaN ``area`` turns OKS into NaN and takes the person out of every area
range; a file without a scorable person gives -1 for every figure. :func:`check_ground_truth`
refuses such a file before pycocotools sees it, with one line naming the file and the record.

Only the standard library and :mod:`fpdctl.metrics.coco`'s constants: no numpy, no torch, no
``fpdctl.data`` (a metrics module). :func:`~fpdctl.metrics.coco.load_coco_annotations` calls it,
so every path to a COCO ground truth (``eval --ground-truth``, ``coco:DIR``, the synthetic COCO
layout) is checked.
"""

from __future__ import annotations

import math
from typing import Any

from fpdctl.errors import DataError
from fpdctl.metrics.coco_results import PERSON_CATEGORY_ID

# A keypoint counts as labelled (and its person as scorable) when its v is above this value.
UNLABELLED = 0


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _first_repeat(ids: list[Any], where: str) -> tuple[Any, int, int] | None:
    """The first id that appears twice, with the positions of both records; None if unique.

    ``where`` names the list in errors (e.g. "FILE: annotations").
    """
    seen: dict[Any, int] = {}
    for index, value in enumerate(ids):
        try:
            if value in seen:
                return value, seen[value], index
            seen[value] = index
        except TypeError:  # an unhashable id (a list...): pycocotools cannot index it either
            raise DataError(f"{where}[{index}]: id must be a number, got {value!r}") from None
    return None


def _labelled(keypoints: Any) -> bool:
    values = keypoints if isinstance(keypoints, list) else []
    return any(isinstance(v, (int, float)) and v > UNLABELLED for v in values[2::3])


def check_ground_truth(gt: dict[str, Any], source: str) -> dict[str, Any]:
    """Refuse a COCO keypoints ground truth that pycocotools would mis-score; return it unchanged.

    Checked: image ids and annotation ids are unique; every person annotation (category 1) has
    a finite ``area`` > 0 and a ``bbox`` whose width and height are finite and > 0; at least one
    person is scorable (not a crowd, at least one labelled keypoint).

    Args:
        gt: the ground truth with ``images``, ``annotations`` and ``categories`` lists, each
            record a dict (as :func:`fpdctl.metrics.coco.load_coco_annotations` returns it).
        source: how to name the ground truth in errors (its file).

    Raises:
        DataError: one line naming ``source`` and the first offending record.
    """
    images = gt["images"]
    repeat = _first_repeat([image.get("id") for image in images], f"{source}: images")
    if repeat is not None:
        image_id, first, second = repeat
        raise DataError(
            f"{source}: image id {image_id} appears twice (images[{first}] and images[{second}]); "
            "image ids must be unique"
        )
    annotations = gt["annotations"]
    repeat = _first_repeat([ann.get("id") for ann in annotations], f"{source}: annotations")
    if repeat is not None:
        ann_id, first, second = repeat
        raise DataError(
            f"{source}: annotation id {ann_id} appears twice (annotations[{first}] and "
            f"annotations[{second}]); pycocotools would keep only one of them"
        )
    scorable = 0
    for ann in annotations:
        if ann.get("category_id") != PERSON_CATEGORY_ID:
            continue
        name = f"{source}: annotation {ann.get('id')} (image {ann.get('image_id')})"
        area = ann.get("area")
        if not _positive(area):
            raise DataError(f"{name}: area must be a finite number > 0, got {area!r}")
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not (_positive(bbox[2]) and _positive(bbox[3])):
            raise DataError(f"{name}: bbox width and height must be finite numbers > 0, got {bbox!r}")
        scorable += int(not ann.get("iscrowd") and _labelled(ann.get("keypoints")))
    if not scorable:
        persons = sum(ann.get("category_id") == PERSON_CATEGORY_ID for ann in annotations)
        raise DataError(
            f"{source} has no person to score: {persons} person annotation(s), none of them a "
            "non-crowd person with a labelled keypoint"
        )
    return gt


__all__ = ["check_ground_truth"]
