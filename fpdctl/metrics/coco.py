"""COCO keypoint AP and AR, computed by pycocotools, and COCO's results JSON.

The figures come from the ecosystem's reference implementation (``pycocotools``' ``COCOeval`` with
``iouType="keypoints"``: OKS with COCO's per-keypoint sigmas, 10 OKS thresholds 0.50:0.05:0.95,
area ranges medium and large); nothing here re-implements OKS. pycocotools prints as it works;
its output is captured and the figures are returned as numbers in a :class:`COCOResult`.

Files:

* **Ground truth**: a ``person_keypoints_*.json`` (or the same content as a dict): ``images``,
  ``annotations`` and ``categories``, a person being an annotation of category 1 with
  ``keypoints`` = 17 x [x, y, v] flattened (v: 0 not labelled, 1 labelled but hidden, 2 visible).
* **Results** (predictions): a JSON list of ``{"image_id", "category_id": 1, "keypoints": 17 x
  [x, y, s], "score"}``, the format of COCO's evaluation server, HRNet and mmpose. The third value
  of a keypoint is a confidence and does not enter OKS.

Coordinates are COCO's own image px, as in the files. Only numpy and pycocotools are imported
(pycocotools on first use); torch and ``fpdctl.data`` never are.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from fpdctl.errors import DataError, UsageError
from fpdctl.metrics.accuracy import PERCENT
from fpdctl.metrics.coco_results import (
    NUM_KEYPOINTS,
    PERSON_CATEGORY_ID,
    VALUES_PER_KEYPOINT,
    check_record,
    coco_results,
)
from fpdctl.metrics.reference import EvalReference
from fpdctl.skeleton import COCO
from fpdctl.utils.io import atomic_write_text, ensure_parent_writable, require_file

# ``COCOeval.stats`` for iouType "keypoints", in this order (see ``COCOeval.summarize``).
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
# pycocotools' figure for a statistic with nothing to average (e.g. APm with no medium persons).
NO_DATA = -1.0
GROUND_TRUTH_KEYS: tuple[str, ...] = ("images", "annotations", "categories")
RESULT_KEYS: tuple[str, ...] = ("image_id", "category_id", "keypoints", "score")


@dataclass(frozen=True)
class COCOResult:
    """COCO keypoint AP / AR (fractions in [0, 1]; :data:`NO_DATA` where pycocotools gives -1).

    Attributes:
        ap: AP averaged over OKS 0.50:0.95, all areas. ``ap50`` / ``ap75``: at OKS 0.50 / 0.75.
        ap_medium, ap_large: AP over persons of area 32^2..96^2 and above 96^2 px^2.
        ar, ar50, ar75, ar_medium, ar_large: the matching recalls (at most 20 detections).
        num_images: images evaluated; num_predictions: result records scored.
    """

    # The metric's id, as datasets and references name it (PCKh's is "pckh").
    metric: ClassVar[str] = "oks"

    ap: float
    ap50: float
    ap75: float
    ap_medium: float
    ap_large: float
    ar: float
    ar50: float
    ar75: float
    ar_medium: float
    ar_large: float
    num_images: int = 0
    num_predictions: int = 0

    @classmethod
    def from_stats(cls, stats: Sequence[float], num_images: int, num_predictions: int) -> "COCOResult":
        """Wrap ``COCOeval.stats`` (10 values in :data:`STAT_NAMES` order)."""
        values = [float(v) for v in stats]
        if len(values) != len(STAT_NAMES):
            raise ValueError(f"expected {len(STAT_NAMES)} COCOeval stats, got {len(values)}")
        return cls(*values, num_images=int(num_images), num_predictions=int(num_predictions))

    def as_dict(self) -> dict[str, float]:
        """The ten figures under COCO's names ("AP", "AP50", ..., "ARl")."""
        values = (
            self.ap,
            self.ap50,
            self.ap75,
            self.ap_medium,
            self.ap_large,
            self.ar,
            self.ar50,
            self.ar75,
            self.ar_medium,
            self.ar_large,
        )
        return dict(zip(STAT_NAMES, values))

    @property
    def mean(self) -> float:
        """The headline figure, AP, in percent (the scale of PCKh's mean, which training and the
        sweep compare); NaN when pycocotools had no ground truth to average over."""
        return math.nan if self.ap == NO_DATA else PERCENT * self.ap

    @property
    def num_persons(self) -> int:
        """Persons scored: one prediction (result record) per person."""
        return self.num_predictions

    def percent(self) -> dict[str, float | None]:
        """The ten figures in percent under COCO's names; None where pycocotools gives -1."""
        return {k: None if v == NO_DATA else PERCENT * v for k, v in self.as_dict().items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"oks": {"AP": .., ..., "ARl": ..}, "images", "predictions"}``,
        figures in percent (pycocotools' fractions x 100, None for its -1)."""
        return {"oks": self.percent(), "images": self.num_images, "predictions": self.num_predictions}


@dataclass(frozen=True)
class COCOReference(EvalReference):
    """Ground truth of N COCO persons, with what pycocotools needs to score them.

    The inherited arrays hold the persons' keypoints (``joints`` float64 [N, 17, 2], ``visible``
    bool [N, 17] where v > 0) in the order of the dataset; ``headboxes`` is None.

    Attributes:
        annotation_file: the ground-truth ``person_keypoints_*.json``.
        image_ids: int64 [N], each person's COCO image id.
        areas: float64 [N], each person's annotated area (OKS's scale).
        annotation_ids: int64 [N], each person's COCO annotation id.
        ground_truth: the ground truth's content instead of a file (the synthetic data's COCO
            layout builds it in memory), else None.
        box_scores: float64 [N] when the N persons are detector boxes (``--boxes``), else None
            (ground-truth boxes). Detector persons carry no ground truth of their own
            (``visible`` is all False, ``areas`` are their crop boxes' areas): they are
            rescored, pruned by OKS-NMS and scored against every image of the ground truth
            (:mod:`fpdctl.metrics.coco_detections`).
        boxes_file: the detections file the boxes were read from, else None.
    """

    metric: str = "oks"  # type: ignore[assignment]
    joint_set: str = COCO.name
    annotation_file: Path | None = None
    image_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    areas: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    annotation_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ground_truth: dict[str, Any] | None = None
    box_scores: np.ndarray | None = None
    boxes_file: Path | None = None

    def first(self, count: int) -> "COCOReference":
        """The first ``count`` persons (a split's prefix, as ``--val-limit`` evaluates)."""
        n = int(count)
        return replace(
            self,
            joints=self.joints[:n],
            visible=self.visible[:n],
            image_ids=self.image_ids[:n],
            areas=self.areas[:n],
            annotation_ids=self.annotation_ids[:n],
            box_scores=None if self.box_scores is None else self.box_scores[:n],
        )

    def boxes(self) -> dict[str, Any]:
        """How the persons were boxed, for reports: ``{"source": "ground truth"}`` or
        ``{"source": "detections", "file", "count"}``."""
        from fpdctl.metrics.coco_detections import boxes_report

        if self.box_scores is None:
            return boxes_report(None, None)
        return boxes_report(self.boxes_file or "detections", len(self.box_scores))


# ---------------------------------------------------------------------------------------------
# Reading and checking files
def _read_json(path: str | os.PathLike[str], what: str) -> Any:
    file = require_file(path, what)
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {what} {file} as JSON: {exc}") from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _found(payload: Any) -> str:
    if isinstance(payload, dict):
        keys = ", ".join(sorted(str(k) for k in payload)[:6])
        return f"an object with keys {keys}" if keys else "an empty object"
    return {list: "a list", str: "a string"}.get(type(payload), type(payload).__name__)


def _check_keypoints(values: Any, where: str) -> None:
    """``values`` must be 17 x 3 finite numbers; ``where`` names the file and the record."""
    expected = NUM_KEYPOINTS * VALUES_PER_KEYPOINT
    if not isinstance(values, list):
        raise DataError(f"{where}: keypoints must be a list of {expected} numbers")
    if len(values) != expected:
        raise DataError(
            f"{where} has {len(values)} keypoint values, expected {expected} ({NUM_KEYPOINTS} keypoints x [x, y, v])"
        )
    if not all(_is_number(v) for v in values):
        raise DataError(f"{where}: keypoints must be finite numbers")


def _check_annotation(ann: Any, index: int, source: str, image_ids: set[int]) -> dict[str, Any]:
    """A person annotation with COCOeval's fields filled where the file leaves them out."""
    if not isinstance(ann, dict):
        raise DataError(f"{source}: annotations[{index}] is not an object")
    name = f"{source}: annotation {ann.get('id', f'[{index}]')} (image {ann.get('image_id')})"
    if ann.get("image_id") not in image_ids:
        raise DataError(f"{name} refers to an image that is not in the file's images")
    if "keypoints" not in ann:
        raise DataError(f"{name} has no keypoints")
    _check_keypoints(ann["keypoints"], name)
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        raise DataError(f"{name}: bbox must be [x, y, width, height]")
    out = dict(ann)
    out.setdefault("id", index + 1)
    out.setdefault("iscrowd", 0)
    out.setdefault("area", float(bbox[2]) * float(bbox[3]))
    out.setdefault("num_keypoints", int(sum(v > 0 for v in ann["keypoints"][2::3])))
    return out


def load_coco_annotations(ground_truth: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    """Read and check a COCO keypoints ground truth (a ``person_keypoints_*.json`` or its dict).

    Person annotations (category 1) must have 17 keypoints, a known image and a bbox; ``id``,
    ``iscrowd``, ``area`` and ``num_keypoints`` are filled in where missing (from the bbox and the
    keypoints), as COCOeval needs them. Other categories are kept as they are.

    Returns:
        A new dict with "images", "annotations" and "categories" (the input is not modified).

    Raises:
        InputError: the file does not exist. DataError: not JSON, not COCO, or a bad record
            (the message names the file and the record).
    """
    if isinstance(ground_truth, dict):
        payload, source = ground_truth, "COCO ground truth"
    else:
        payload = _read_json(ground_truth, "COCO annotation file")
        source = str(ground_truth)
    if not isinstance(payload, dict) or not all(isinstance(payload.get(key), list) for key in GROUND_TRUTH_KEYS):
        raise DataError(
            f"{source} is not a COCO keypoints file: expected a JSON object with "
            f'"images", "annotations" and "categories" lists, found {_found(payload)}'
        )
    categories = [c for c in payload["categories"] if isinstance(c, dict)]
    person = [c for c in categories if c.get("id") == PERSON_CATEGORY_ID]
    if not person:
        raise DataError(f"{source} is not a COCO keypoints file: no person category (id 1)")
    names = person[0].get("keypoints")
    if names is not None and (not isinstance(names, list) or len(names) != NUM_KEYPOINTS):
        raise DataError(
            f"{source}: the person category names {len(names) if isinstance(names, list) else 0} "
            f"keypoints, expected COCO's {NUM_KEYPOINTS}"
        )
    image_ids: set[int] = set()
    for index, image in enumerate(payload["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("id"), int):
            raise DataError(f"{source}: images[{index}] has no integer id")
        image_ids.add(image["id"])
    annotations = []
    for index, ann in enumerate(payload["annotations"]):
        if isinstance(ann, dict) and ann.get("category_id") != PERSON_CATEGORY_ID:
            annotations.append(ann)
        else:
            annotations.append(_check_annotation(ann, index, source, image_ids))
    from fpdctl.metrics.coco_checks import check_ground_truth  # ids, areas, boxes, a scorable person

    return check_ground_truth({**payload, "annotations": annotations}, source)


def check_results(results: Any, source: str, image_ids: set[int] | None = None) -> list[dict[str, Any]]:
    """Check predictions in COCO's results format and keep only the four fields COCOeval reads.

    Args:
        results: a list of ``{"image_id", "category_id", "keypoints", "score"}``.
        source: how to name them in errors (the file).
        image_ids: the ground truth's image ids, to check against (None: not checked).

    Returns:
        New dicts with image_id (int), category_id, keypoints (51 floats) and score (float).

    Raises:
        DataError: a record that is not in the format, naming ``source`` and the record.
    """
    if not isinstance(results, list):
        raise DataError(
            f"{source} is not a COCO results file: expected a JSON list of "
            f"{{image_id, category_id, keypoints, score}}, found {_found(results)}"
        )
    clean = []
    for index, record in enumerate(results):
        name = check_record(
            record,
            index,
            source=source,
            what="result",
            keys=RESULT_KEYS,
            image_ids=image_ids,
            images_from="the ground truth",
        )
        image_id = record["image_id"]
        _check_keypoints(record["keypoints"], name)
        if not _is_number(record["score"]):
            raise DataError(f"{name}: score must be a finite number")
        clean.append(
            {
                "image_id": int(image_id),
                "category_id": PERSON_CATEGORY_ID,
                "keypoints": [float(v) for v in record["keypoints"]],
                "score": float(record["score"]),
            }
        )
    return clean


def load_coco_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a COCO keypoint results JSON (see :func:`check_results`).

    Raises:
        InputError: missing file. DataError: not JSON or not in the results format.
    """
    return check_results(_read_json(path, "COCO results file"), str(path))


def write_coco_results(path: str | os.PathLike[str], results: list[dict[str, Any]]) -> Path:
    """Write predictions as a COCO keypoint results JSON, atomically.

    Raises:
        InputError: the folder cannot be written. DataError: records not in the format.
    """
    clean = check_results(results, "results to save")
    target = ensure_parent_writable(path)
    atomic_write_text(target, json.dumps(clean))
    return target


# ---------------------------------------------------------------------------------------------
# Scoring
def evaluate_coco(
    ground_truth: str | os.PathLike[str] | dict[str, Any],
    predictions: str | os.PathLike[str] | list[dict[str, Any]],
    *,
    image_ids: Sequence[int] | None = None,
) -> COCOResult:
    """COCO keypoint AP / AR of ``predictions``, computed by pycocotools' COCOeval.

    Args:
        ground_truth: a ``person_keypoints_*.json`` path or its content.
        predictions: a results JSON path or its records (see :func:`check_results`).
        image_ids: evaluate only these images (default: every image of the ground truth).

    Raises:
        InputError: a missing file. DataError: a malformed file or record.
    """
    from pycocotools.coco import COCO as CocoApi
    from pycocotools.cocoeval import COCOeval

    gt = load_coco_annotations(ground_truth)
    known = {image["id"] for image in gt["images"]}
    if isinstance(predictions, list):
        results = check_results(predictions, "predictions", known)
    else:
        results = check_results(_read_json(predictions, "COCO results file"), str(predictions), known)
    chosen = sorted(known if image_ids is None else {int(i) for i in image_ids})
    missing = sorted(set(chosen) - known)
    if missing:
        raise DataError(f"image {missing[0]} is not in the COCO ground truth")
    # pycocotools reports progress with print(); the figures are returned instead.
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = CocoApi()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(results)  # loadRes adds fields; these dicts are our copies
        else:  # loadRes cannot take an empty list: an empty result set scores as no detections
            coco_dt = CocoApi()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.params.catIds = [PERSON_CATEGORY_ID]
        evaluator.params.imgIds = chosen
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return COCOResult.from_stats(evaluator.stats, len(chosen), len(results))


def evaluate_coco_reference(
    keypoints: np.ndarray,
    reference: COCOReference,
    joint_scores: np.ndarray | None = None,
) -> COCOResult:
    """Score one prediction per reference person against the reference's annotation file.

    Only the images of the reference's labelled persons are evaluated, so a subset of a split
    scores what it holds (a COCO split has no unlabelled person; the synthetic COCO layout can,
    and pycocotools would count a prediction on its image as a false positive).

    Args:
        keypoints: float [N, 17, 2] in image px, in the reference's person order.
        reference: from a COCO dataset's ``eval_reference()``.
        joint_scores: float [N, 17] confidences (heatmap peaks), or None.

    Raises:
        DataError: no ground truth in the reference, wrong shapes, or a bad file.
    """
    ground_truth = reference.ground_truth if reference.ground_truth is not None else reference.annotation_file
    if ground_truth is None:
        raise DataError("this COCO reference has no annotation file to score against")
    results, image_ids = reference_results(keypoints, reference, joint_scores)
    return evaluate_coco(ground_truth, results, image_ids=image_ids)


def reference_results(
    keypoints: np.ndarray,
    reference: COCOReference,
    joint_scores: np.ndarray | None = None,
) -> tuple[list[dict[str, Any]], list[int]]:
    """The results records of the reference's labelled persons, and their images' ids; for
    detector boxes (``reference.box_scores``), the rescored persons OKS-NMS keeps and every image
    of the ground truth (HRNet's protocol, :mod:`fpdctl.metrics.coco_detections`).

    Args: as :func:`evaluate_coco_reference`.

    Raises:
        DataError: wrong shapes, or no labelled person.
    """
    if len(keypoints) != len(reference):
        raise DataError(f"{len(keypoints)} predictions for {len(reference)} ground-truth persons")
    if reference.box_scores is not None:  # detector boxes: rescored, OKS-NMS, every image
        from fpdctl.metrics.coco_detections import detection_results

        if joint_scores is None:
            joint_scores = np.ones((len(keypoints), NUM_KEYPOINTS))
        records = detection_results(keypoints, joint_scores, reference.image_ids, reference.box_scores, reference.areas)
        truth = reference.ground_truth if reference.ground_truth is not None else reference.annotation_file
        if truth is None:
            raise DataError("this COCO reference has no annotation file to score against")
        return records, [image["id"] for image in load_coco_annotations(truth)["images"]]
    labelled = np.asarray(reference.visible).any(axis=1)
    if not labelled.any():
        raise DataError(f"none of the {len(reference)} ground-truth persons has a labelled keypoint to score")
    records = coco_results(keypoints, reference.image_ids, joint_scores)
    kept = [record for record, keep in zip(records, labelled) if keep]
    return kept, np.unique(reference.image_ids[labelled]).tolist()


def check_results_output(path: str | os.PathLike[str]) -> Path:
    """Check, before any work, that a COCO results JSON can be written at ``path``.

    Raises:
        UsageError: not a .json file. InputError: the folder cannot be created or written.
    """
    target = Path(path)
    if target.suffix.lower() != ".json":
        raise UsageError(
            f"COCO predictions are saved as a COCO results .json file, got '{target.suffix or target.name}'"
        )
    return ensure_parent_writable(target)
