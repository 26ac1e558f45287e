"""COCO keypoints (2017): top-down, one person per crop, COCO's 17 keypoints in COCO's order.

``coco:PATH`` is the dataset folder. The annotations are always
``PATH/annotations/person_keypoints_{train,val}2017.json``; the images are looked for in two
layouts, in this order (:attr:`COCOSource.layout` says which was found):

* ``"official"``: ``PATH/train2017/``, ``PATH/val2017/``, the folders the official zips unpack to
  next to ``annotations/``;
* ``"images"``: ``PATH/images/train2017/``, ``PATH/images/val2017/`` (HRNet's and mmpose's layout).

Persons (as HRNet's ``lib/dataset/coco.py`` and mmpose take them from the ground truth):

* crowd annotations, annotations of other categories and annotations without a labelled keypoint
  are skipped, as are boxes that are empty once clipped to the image;
* the person box is the annotation's ``bbox`` clipped to the image (its far edge on the last
  pixel, ``x + w - 1``); ``center`` is the box centre; the box is widened or heightened to the crop's
  aspect ratio (square here: fpdctl crops are ``input_size`` x ``input_size``) and enlarged by
  ``fpdctl.boxes.SCALE_MARGIN`` = 1.25, so ``scale = 1.25 * max(w, h) / 200``;
* a keypoint counts as annotated when its v > 0 (labelled, visible or not).

Coordinates are COCO's image px, used as they are. The evaluation reference
(:class:`~fpdctl.metrics.coco.COCOReference`) carries each person's image id, area and annotation
id and the annotation file, which pycocotools scores against (OKS AP, not PCK).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fpdctl.boxes import PIXEL_STD, box_center_scale, check_box, clip_box
from fpdctl.data.coco_source import (
    SPLIT_FOLDERS,
    find_coco_source,
)
from fpdctl.data.file_dataset import AnnotationTable, FilePoseDataset
from fpdctl.errors import DataError
from fpdctl.metrics.coco import PERSON_CATEGORY_ID, COCOReference, load_coco_annotations
from fpdctl.metrics.coco_detections import DetectionBoxes, load_detections
from fpdctl.skeleton import COCO

NUM_JOINTS = COCO.num_joints
# Crop width / height; fpdctl's network inputs are square.
ASPECT_RATIO = 1.0


@dataclass
class COCOPersons:
    """The persons of a split: the table the dataset reads, and the ids pycocotools needs.

    Attributes:
        table: image files relative to the image folder, joints [N, 17, 3], centres, scales.
        image_ids, annotation_ids: int64 [N]. areas: float64 [N] (the annotations' ``area``).
    """

    table: AnnotationTable
    image_ids: np.ndarray
    annotation_ids: np.ndarray
    areas: np.ndarray


def _image_entry(image: dict[str, Any], source: Path) -> tuple[str, float, float]:
    name, width, height = image.get("file_name"), image.get("width"), image.get("height")
    if not isinstance(name, str) or not all(isinstance(v, (int, float)) for v in (width, height)):
        raise DataError(f"{source}: image {image['id']} needs file_name, width and height")
    return name, float(width), float(height)


def read_coco_persons(annotation_file: str | Path) -> COCOPersons:
    """The usable persons of a ``person_keypoints_*.json``, in image order then annotation order.

    Raises:
        InputError: missing file. DataError: not COCO, a bad record, or no usable person.
    """
    source = Path(annotation_file)
    gt = load_coco_annotations(source)
    images = {image["id"]: _image_entry(image, source) for image in gt["images"]}
    by_image: dict[int, list[dict[str, Any]]] = {image_id: [] for image_id in images}
    for ann in gt["annotations"]:
        if ann.get("category_id") == PERSON_CATEGORY_ID and not ann["iscrowd"]:
            by_image[ann["image_id"]].append(ann)
    files, joints, centers, scales, image_ids, ann_ids, areas = [], [], [], [], [], [], []
    for image_id, anns in by_image.items():
        name, width, height = images[image_id]
        for ann in anns:
            keypoints = np.asarray(ann["keypoints"], np.float32).reshape(NUM_JOINTS, 3)
            box = clip_box(ann["bbox"], width, height)
            if not (keypoints[:, 2] > 0).any() or box is None or not ann["area"] > 0:
                continue
            keypoints[:, 2] = keypoints[:, 2] > 0
            center, scale = box_center_scale(box, ASPECT_RATIO)
            files.append(name)
            joints.append(keypoints)
            centers.append(center)
            scales.append(scale)
            image_ids.append(image_id)
            ann_ids.append(ann["id"])
            areas.append(ann["area"])
    if not files:
        raise DataError(f"{source} has no person with labelled keypoints")
    table = AnnotationTable(
        image_files=files, joints=np.stack(joints), centers=np.stack(centers), scales=np.asarray(scales, np.float32)
    )
    return COCOPersons(
        table, np.asarray(image_ids, np.int64), np.asarray(ann_ids, np.int64), np.asarray(areas, np.float64)
    )


def check_images(persons: COCOPersons, image_dir: Path, annotation_file: Path) -> None:
    """Refuse a split whose images are not all there, naming the first missing one.

    Raises:
        DataError: an image file is missing.
    """
    present = set(os.listdir(image_dir))  # one listing, not one stat per person
    for k, name in enumerate(persons.table.image_files):
        if name not in present:
            raise DataError(f"{annotation_file}: image {int(persons.image_ids[k])} ({name}) not found in {image_dir}")


class COCODataset(FilePoseDataset):
    """COCO 2017 person keypoints, train or val split (17 COCO keypoints, OKS AP).

    Args:
        path: the COCO folder (see the module docstring).
        split: "train" or "val".
        **kwargs: :class:`~fpdctl.data.dataset.PoseDataset` options.

    Attributes:
        source: the annotation file, image folder and layout found.
        persons: the persons with their COCO image ids, annotation ids and areas.
    """

    def __init__(self, path: str | Path, split: Literal["train", "val"] = "train", **kwargs: Any) -> None:
        if split not in SPLIT_FOLDERS:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.split = split
        self.source = find_coco_source(path, split)
        self.persons = read_coco_persons(self.source.annotation_file)
        check_images(self.persons, self.source.image_dir, self.source.annotation_file)
        super().__init__(self.persons.table, self.source.image_dir, joint_set=COCO, metric="oks", **kwargs)

    def eval_reference(self) -> COCOReference:
        """The split's persons with what pycocotools needs to score them (no head boxes)."""
        joints = self.table.joints
        return COCOReference(
            joints=joints[:, :, :2].astype(np.float64),
            visible=joints[:, :, 2] > 0,
            headboxes=None,
            annotation_file=self.source.annotation_file,
            image_ids=self.persons.image_ids.copy(),
            areas=self.persons.areas.copy(),
            annotation_ids=self.persons.annotation_ids.copy(),
        )


def read_detection_persons(
    annotation_file: str | Path, detections_file: str | Path
) -> tuple[COCOPersons, DetectionBoxes]:
    """One top-down person per detector box of ``detections_file`` (images from the annotations).

    Each box goes through the crop code of every person box (:func:`fpdctl.boxes.check_box`,
    then :func:`fpdctl.boxes.box_center_scale`), the ground truth's and ``predict --boxes``'s, so a
    detection equal to a ground-truth box gives the same crop, and ``predict --boxes`` crops the
    same file's boxes the same way. (HRNet crops a detection box unclipped; the two differ only
    for boxes running off the image and by the last-pixel convention of the far edge.) A
    person's ``area`` is its crop box's, ``(scale x 200)^2``, as HRNet gives OKS-NMS; its
    annotation id is its position in the file.

    Raises:
        InputError: a missing file. DataError: a bad annotation or detection (named), a box the
            one rule refuses (not finite, smaller than 1 px, no area in its image), or no box at
            all.
    """
    source = Path(annotation_file)
    gt = load_coco_annotations(source)
    images = {image["id"]: _image_entry(image, source) for image in gt["images"]}
    detections = load_detections(detections_file, set(images))
    files, centers, scales, areas = [], [], [], []
    for k in range(len(detections)):
        image_id = int(detections.image_ids[k])
        name, width, height = images[image_id]
        check = check_box(detections.boxes[k], width, height)
        if check.clipped is None:
            raise DataError(
                f"{detections_file}: detection {int(detections.record_index[k])} (image {image_id}): bbox "
                f"{detections.boxes[k].tolist()} refused: {check.reason} (a {width:g} x {height:g} image)"
            )
        center, scale = box_center_scale(check.clipped, ASPECT_RATIO)
        files.append(name)
        centers.append(center)
        scales.append(scale)
        areas.append((scale * PIXEL_STD) ** 2)
    if not files:
        raise DataError(f"{detections_file} has no person box scoring at least the threshold")
    table = AnnotationTable(
        image_files=files,
        joints=np.zeros((len(files), NUM_JOINTS, 3), np.float32),
        centers=np.stack(centers),
        scales=np.asarray(scales, np.float32),
    )
    persons = COCOPersons(
        table, detections.image_ids.copy(), detections.record_index.copy(), np.asarray(areas, np.float64)
    )
    return persons, detections


class COCODetections(FilePoseDataset):
    """The val split's images cropped at detector boxes (``fpdctl eval --boxes``), for COCO AP on
    detections: one sample per box, no ground truth of its own (see :func:`read_detection_persons`).

    Args:
        path: the COCO folder (see the module docstring).
        detections: a COCO detection-results JSON of that split.
        split: the split the boxes are for (default "val").
        **kwargs: :class:`~fpdctl.data.dataset.PoseDataset` options.
    """

    def __init__(
        self, path: str | Path, detections: str | Path, split: Literal["train", "val"] = "val", **kwargs: Any
    ) -> None:
        if split not in SPLIT_FOLDERS:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.split = split
        self.source = find_coco_source(path, split)
        self.detections_file = Path(detections)
        self.persons, self.detections = read_detection_persons(self.source.annotation_file, detections)
        check_images(self.persons, self.source.image_dir, self.source.annotation_file)
        super().__init__(self.persons.table, self.source.image_dir, joint_set=COCO, metric="oks", **kwargs)

    def eval_reference(self) -> COCOReference:
        """The boxes' persons: no keypoints of their own; box scores and crop areas for HRNet's
        rescoring and OKS-NMS, scored against the split's annotation file."""
        n = len(self.persons.image_ids)
        return COCOReference(
            joints=np.zeros((n, NUM_JOINTS, 2)),
            visible=np.zeros((n, NUM_JOINTS), bool),
            headboxes=None,
            annotation_file=self.source.annotation_file,
            image_ids=self.persons.image_ids.copy(),
            areas=self.persons.areas.copy(),
            annotation_ids=self.persons.annotation_ids.copy(),
            box_scores=self.detections.scores.copy(),
            boxes_file=self.detections_file,
        )
