"""COCO keypoint results records: the constants and the two functions every COCO module of
:mod:`fpdctl.metrics` shares (a leaf: it imports none of them, so they import it without a cycle).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fpdctl.errors import DataError
from fpdctl.skeleton import COCO

NUM_KEYPOINTS = COCO.num_joints
# A person's ``keypoints`` list: x, y and v (or a score, in results) per keypoint.
VALUES_PER_KEYPOINT = 3
PERSON_CATEGORY_ID = 1
# HRNet's rescoring: a person's score is the mean confidence of its joints above this value
# (``TEST.IN_VIS_THRE``); with ground-truth boxes the box score is 1.
CONFIDENT_JOINT_SCORE = 0.2


def coco_results(
    keypoints: np.ndarray,
    image_ids: Sequence[int] | np.ndarray,
    joint_scores: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Predicted keypoints of N persons as COCO results records.

    Args:
        keypoints: float [N, 17, 2] in image px.
        image_ids: N COCO image ids.
        joint_scores: float [N, 17] confidences (heatmap maxima), or None for 1.

    Returns:
        N records; the keypoint triplets carry the confidences and a person's score is the mean
        confidence of its joints above :data:`CONFIDENT_JOINT_SCORE` (HRNet's rescoring with
        ground-truth boxes), 0 when none is.
    """
    coords = np.asarray(keypoints, np.float64)
    n = coords.shape[0] if coords.ndim == 3 else -1
    if coords.shape != (n, NUM_KEYPOINTS, 2) or len(image_ids) != n:
        raise DataError(
            f"predictions must be N x {NUM_KEYPOINTS} x 2 with N image ids, got "
            f"{tuple(coords.shape)} and {len(image_ids)} ids"
        )
    scores = np.ones((n, NUM_KEYPOINTS)) if joint_scores is None else np.asarray(joint_scores, np.float64)
    if scores.shape != (n, NUM_KEYPOINTS):
        raise DataError(f"joint scores must be {n} x {NUM_KEYPOINTS}, got {tuple(scores.shape)}")
    person = person_scores(scores)
    records = []
    for i in range(n):
        triplets = np.concatenate([coords[i], scores[i][:, None]], axis=1)
        records.append(
            {
                "image_id": int(image_ids[i]),
                "category_id": PERSON_CATEGORY_ID,
                "keypoints": triplets.reshape(-1).tolist(),
                "score": float(person[i]),
            }
        )
    return records


def person_scores(joint_scores: np.ndarray) -> np.ndarray:
    """HRNet's keypoint score of each person: the mean of its joint scores above
    :data:`CONFIDENT_JOINT_SCORE`, 0 when none is (float [N, 17] -> float64 [N])."""
    scores = np.asarray(joint_scores, np.float64)
    confident = scores > CONFIDENT_JOINT_SCORE
    counts = confident.sum(axis=1)
    totals = np.where(confident, scores, 0.0).sum(axis=1)
    return np.where(counts > 0, totals / np.maximum(counts, 1), 0.0)


def check_record(
    record: Any,
    index: int,
    *,
    source: str,
    what: str,
    keys: Sequence[str],
    image_ids: "set[int] | None",
    images_from: str,
) -> str:
    """The checks every record of a COCO results-like list shares (results, detections): an
    object with ``keys``, an integer ``image_id`` among ``image_ids`` (None: not checked), the
    person category. ``image_id`` and ``category_id`` are checked when present (``keys`` says
    which must be).

    Args:
        what: how a record is called in errors ("result", "detection").
        images_from: what ``image_ids`` came from, for the unknown-image error.

    Returns:
        The record's name for further errors: ``SOURCE: WHAT INDEX (image ID)``.

    Raises:
        DataError: the first failed check, in one line naming ``source`` and the record.
    """
    name = f"{source}: {what} {index}"
    if not isinstance(record, dict) or not all(key in record for key in keys):
        raise DataError(f"{name} must be an object with {', '.join(keys)}")
    if "image_id" in record:
        image_id = record["image_id"]
        name = f"{name} (image {image_id})"
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise DataError(f"{name}: image_id must be an integer")
        if image_ids is not None and image_id not in image_ids:
            raise DataError(f"{name}: no such image in {images_from}")
    if record.get("category_id", PERSON_CATEGORY_ID) != PERSON_CATEGORY_ID:
        raise DataError(
            f"{name}: category_id is {record['category_id']!r}, only persons "
            f"(category {PERSON_CATEGORY_ID}) have keypoints"
        )
    return name


__all__ = [
    "CONFIDENT_JOINT_SCORE",
    "check_record",
    "NUM_KEYPOINTS",
    "PERSON_CATEGORY_ID",
    "VALUES_PER_KEYPOINT",
    "coco_results",
    "person_scores",
]
