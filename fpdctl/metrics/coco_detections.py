"""COCO top-down on detector boxes: the detections file, HRNet's rescoring and OKS-NMS.

The protocol of HRNet's ``lib/dataset/coco.py`` (``_load_coco_person_detection_results`` and
``evaluate``) and ``lib/nms/nms.py`` (``oks_iou``, ``oks_nms``), which the FPD code and mmpose
follow:

1. **Boxes.** A COCO detection-results JSON: a list of ``{"image_id", "category_id": 1, "bbox":
   [x, y, w, h], "score"}``. Boxes scoring below :data:`BOX_SCORE_THRESHOLD` (``TEST.IMAGE_THRE``
   = 0.0) are dropped; every other box becomes one top-down crop.
2. **Rescoring.** A person's score is its box score times the mean of its joint scores (heatmap
   peaks) above :data:`~fpdctl.metrics.coco_results.CONFIDENT_JOINT_SCORE` (``TEST.IN_VIS_THRE`` = 0.2),
   0 when no joint is that confident (:func:`rescore`).
3. **OKS-NMS** per image at :data:`OKS_NMS_THRESHOLD` (``TEST.OKS_THRE`` = 0.9): greedily, in
   decreasing rescored order, a person is kept and every remaining person whose OKS with it
   exceeds the threshold is dropped (:func:`oks_nms`). OKS here is HRNet's ``oks_iou``: over all
   17 keypoints, with COCO's sigmas, the two persons' mean area as the scale, and each person's
   area the area of its crop box (``(scale x 200)^2``, as HRNet stores it for a detection).
4. The kept persons go to pycocotools' COCOeval ``keypoints`` (:func:`fpdctl.metrics.coco.
   evaluate_coco`) over every image of the ground truth.

Only numpy: no torch, nothing from ``fpdctl.data`` (an import-linter contract).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fpdctl.boxes import nms
from fpdctl.errors import DataError, InputError
from fpdctl.metrics.coco_results import (
    NUM_KEYPOINTS,
    check_record,
    coco_results,
    person_scores,
)
from fpdctl.utils.io import require_file

# COCO's per-keypoint OKS sigmas, in COCO's keypoint order (pycocotools'
# ``Params.kpt_oks_sigmas``; HRNet's ``oks_iou`` default).
COCO_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)
# HRNet's TEST.OKS_THRE: a person whose OKS with a better-scored one of its image exceeds this
# is a duplicate and is dropped.
OKS_NMS_THRESHOLD = 0.9
# HRNet's TEST.IMAGE_THRE: boxes scoring below this are not cropped.
BOX_SCORE_THRESHOLD = 0.0
# The fields of a detection record ``fpdctl eval --boxes`` needs; ``predict --boxes`` needs only
# the bbox and names the image by ``file_name`` (or ``image_id``) or a video's ``frame``.
DETECTION_KEYS: tuple[str, ...] = ("image_id", "category_id", "bbox", "score")
BOX_KEYS: tuple[str, ...] = ("bbox",)
# Where a record has no image id or frame.
MISSING = -1


@dataclass(frozen=True)
class DetectionBoxes:
    """Person boxes read from a detection-results file (those at or above the score threshold).

    Attributes:
        source: the file (or how the records were named).
        image_ids: int64 [N] (:data:`MISSING` where a record has none).
        boxes: float64 [N, 4] COCO ``[x, y, w, h]`` in image px.
        scores: float64 [N] box scores (NaN where a record has none).
        num_records: records in the file, before the score threshold.
        record_index: int64 [N], each box's position in the file (for messages).
        file_names: each box's ``file_name``, None where a record has none.
        frames: int64 [N], each box's video ``frame`` as written (:data:`MISSING` where none).
        num_below: boxes dropped for scoring under the threshold.
    """

    source: str
    image_ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    num_records: int
    record_index: np.ndarray
    file_names: tuple[str | None, ...] = ()
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    num_below: int = 0

    def __len__(self) -> int:
        return int(self.image_ids.shape[0])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_detections(
    records: Any,
    source: str,
    image_ids: set[int] | None = None,
    score_threshold: float = BOX_SCORE_THRESHOLD,
    *,
    keys: tuple[str, ...] = DETECTION_KEYS,
) -> DetectionBoxes:
    """Check COCO detection results and keep the person boxes scoring at least ``score_threshold``:
    the one reader of detection files, for ``eval --boxes`` and ``predict --boxes``.

    Args:
        records: a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``
            (optionally ``file_name`` and a video's ``frame``).
        source: how to name them in errors (the file).
        image_ids: the ground truth's image ids, to check against (None: not checked).
        score_threshold: scored boxes below it are dropped (HRNet's ``TEST.IMAGE_THRE``) and
            counted (``num_below``); a box without a score is kept.
        keys: the fields every record must have (:data:`DETECTION_KEYS` for evaluation,
            :data:`BOX_KEYS` for prediction); the others are checked when present.

    Raises:
        DataError: not a list, or a bad record (one line naming ``source`` and the record): a
            missing field, an image that is not in the ground truth, a category other than
            person, a box that is not four finite numbers or has no positive width and height,
            a score that is not a finite number, a file name that is not a string, a frame that
            is not an integer of 0 or more.
    """
    if not isinstance(records, list):
        kind = "an object" if isinstance(records, dict) else type(records).__name__
        raise DataError(
            f"{source} is not a COCO detection results file: expected a JSON list of "
            f"{{{', '.join(keys if keys != BOX_KEYS else ('file_name', 'bbox', 'score'))}}}, found {kind}"
        )
    ids, boxes, scores, positions, names, frames = [], [], [], [], [], []
    below = 0
    for index, record in enumerate(records):
        name = check_record(
            record,
            index,
            source=source,
            what="detection",
            keys=keys,
            image_ids=image_ids,
            images_from="the annotations",
        )
        bbox = record["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise DataError(f"{name}: bbox must be [x, y, width, height], four finite numbers")
        if not (bbox[2] > 0 and bbox[3] > 0):
            raise DataError(f"{name}: bbox {bbox} has no area (width and height must be positive)")
        score = record.get("score")
        if "score" in record and not _is_number(score):
            raise DataError(f"{name}: score must be a finite number")
        file_name = record.get("file_name")
        if file_name is not None and not isinstance(file_name, str):
            raise DataError(f"{name}: file_name must be a string, got {file_name!r}")
        frame = record.get("frame", MISSING)
        if "frame" in record and not (isinstance(frame, int) and not isinstance(frame, bool) and frame >= 0):
            raise DataError(f"{name}: frame must be an integer, 0 or more, got {frame!r}")
        if score is not None and score < score_threshold:
            below += 1
            continue
        ids.append(record.get("image_id", MISSING))
        boxes.append([float(v) for v in bbox])
        scores.append(math.nan if score is None else float(score))
        positions.append(index)
        names.append(file_name)
        frames.append(frame)
    return DetectionBoxes(
        source=source,
        image_ids=np.asarray(ids, np.int64),
        boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
        scores=np.asarray(scores, np.float64),
        num_records=len(records),
        record_index=np.asarray(positions, np.int64),
        file_names=tuple(names),
        frames=np.asarray(frames, np.int64),
        num_below=below,
    )


def load_detections(
    path: str | os.PathLike[str],
    image_ids: set[int] | None = None,
    score_threshold: float = BOX_SCORE_THRESHOLD,
    *,
    keys: tuple[str, ...] = DETECTION_KEYS,
) -> DetectionBoxes:
    """Read a COCO detection-results JSON (see :func:`check_detections`).

    Raises:
        InputError: no such file. DataError: not JSON, or a bad record.
    """
    file = require_file(path, "detections file")
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse detections file {file} as JSON: {exc}") from exc
    except OSError as exc:
        raise InputError(f"cannot read detections file {file}: {exc.strerror or exc}") from exc
    return check_detections(payload, str(path), image_ids, score_threshold, keys=keys)


def rescore(box_scores: np.ndarray, joint_scores: np.ndarray) -> np.ndarray:
    """HRNet's person score: box score x the mean joint score above ``IN_VIS_THRE`` (0 if none).

    Args:
        box_scores: float [N]. joint_scores: float [N, 17] heatmap peaks.

    Returns:
        float64 [N].
    """
    return np.asarray(box_scores, np.float64) * person_scores(joint_scores)


def oks_iou(keypoints: np.ndarray, others: np.ndarray, area: float, other_areas: np.ndarray) -> np.ndarray:
    """HRNet's ``oks_iou`` between one person and M others, over all 17 keypoints.

    ``OKS = mean_k exp(-d_k^2 / (2 s^2 (2 sigma_k)^2))`` with ``s^2`` the mean of the two areas.

    Args:
        keypoints: float [17, 2]. others: float [M, 17, 2]. area: the person's area (px^2).
        other_areas: float [M].

    Returns:
        float64 [M] in [0, 1].
    """
    variances = (2.0 * COCO_SIGMAS) ** 2
    d2 = ((np.asarray(others, np.float64) - np.asarray(keypoints, np.float64)[None]) ** 2).sum(axis=2)
    scale = (float(area) + np.asarray(other_areas, np.float64)) / 2.0 + np.spacing(1)
    e = d2 / variances[None] / scale[:, None] / 2.0
    return np.exp(-e).mean(axis=1)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    threshold: float = OKS_NMS_THRESHOLD,
) -> list[int]:
    """Greedy OKS non-maximum suppression of the persons of one image (HRNet's ``oks_nms``).

    :func:`fpdctl.boxes.nms` with HRNet's :func:`oks_iou` as the overlap: the best-scored
    remaining person is kept, and every remaining person whose OKS with it is above ``threshold``
    is dropped; repeat. Ties keep the earlier person first (stable order).

    Args:
        keypoints: float [N, 17, 2]. scores: float [N]. areas: float [N] (px^2).
        threshold: OKS above which a person is a duplicate.

    Returns:
        The indices kept, best score first.
    """
    coords = np.asarray(keypoints, np.float64)
    areas = np.asarray(areas, np.float64)

    def overlap(best: int, rest: np.ndarray) -> np.ndarray:
        return oks_iou(coords[best], coords[rest], areas[best], areas[rest])

    return nms(scores, overlap, threshold).tolist()


def detection_results(
    keypoints: np.ndarray,
    joint_scores: np.ndarray,
    image_ids: np.ndarray,
    box_scores: np.ndarray,
    areas: np.ndarray,
    threshold: float = OKS_NMS_THRESHOLD,
) -> list[dict[str, Any]]:
    """The COCO results of persons predicted in detector boxes: rescored, then OKS-NMS per image.

    Args:
        keypoints: float [N, 17, 2] image px. joint_scores: float [N, 17] heatmap peaks.
        image_ids: int [N]. box_scores: float [N]. areas: float [N], each crop box's area.
        threshold: the OKS-NMS threshold.

    Returns:
        The kept persons' records (image order, best score first within an image), ``score`` the
        rescored value.
    """
    coords = np.asarray(keypoints, np.float64)
    n = coords.shape[0]
    for name, values in (("image ids", image_ids), ("box scores", box_scores), ("areas", areas)):
        if len(values) != n:
            raise DataError(f"{n} predicted persons but {len(values)} {name}")
    records = coco_results(coords, np.asarray(image_ids), joint_scores)
    person = rescore(box_scores, np.asarray(joint_scores, np.float64).reshape(n, NUM_KEYPOINTS))
    for record, score in zip(records, person):
        record["score"] = float(score)
    ids = np.asarray(image_ids, np.int64)
    kept: list[dict[str, Any]] = []
    for image_id in np.unique(ids):
        members = np.flatnonzero(ids == image_id)
        for k in oks_nms(coords[members], person[members], np.asarray(areas)[members], threshold):
            kept.append(records[int(members[k])])
    return kept


def boxes_report(source: Path | str | None, count: int | None) -> dict[str, Any]:
    """How an evaluation's persons were boxed, for reports: ground truth or a detections file."""
    if source is None:
        return {"source": "ground truth"}
    return {"source": "detections", "file": str(source), "count": int(count or 0)}


__all__ = [
    "BOX_KEYS",
    "BOX_SCORE_THRESHOLD",
    "DETECTION_KEYS",
    "COCO_SIGMAS",
    "DetectionBoxes",
    "OKS_NMS_THRESHOLD",
    "boxes_report",
    "check_detections",
    "detection_results",
    "load_detections",
    "oks_iou",
    "oks_nms",
    "rescore",
]
