"""What :class:`fpdctl.Pose <fpdctl.deploy.pose.Pose>` takes and gives for images in memory:
images as arrays or paths, the persons' boxes in the forms a caller has them (an array, a
detection list, a detector), and :class:`PoseResult`, one image's persons as arrays.

Boxes are (x, y, w, h) in image px, as COCO, ``fpdctl predict --bbox`` and ``--boxes``; each is
cropped by the one box rule of eval and predict (:mod:`fpdctl.boxes`: clipped to the image, then
centred and scaled as HRNet crops detection boxes). Without boxes the whole image is one person
(:func:`fpdctl.boxes.image_center_scale`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from fpdctl.deploy.persons import Person, PersonBox, Prediction
from fpdctl.errors import DataError, InputError, UsageError

if TYPE_CHECKING:
    from fpdctl.skeleton import JointSet


# An image: a uint8 BGR [H, W, 3] array (cv2.imread's layout) or a path to an image file.
ImageLike = "np.ndarray | str | os.PathLike[str]"
# A detector: image -> (boxes [N, 4] x, y, w, h in image px, scores [N]) (fpdctl.deploy.detector).
DetectorLike = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


@dataclass(frozen=True)
class PoseResult:
    """The persons of one image: arrays, one row per person, in box order.

    Attributes:
        image: the uint8 BGR [H, W, 3] image they were found in.
        boxes: float64 [P, 4] person boxes (x, y, w, h) in image px (the whole image without boxes).
        box_scores: float64 [P] the detector's (or boxes') score of each box; NaN where none was given.
        centers: float32 [P, 2] crop centres in image px; scales: float32 [P] crop side / 200 px.
        keypoints: float32 [P, J, 2] (x, y) in image px, 0-based.
        scores: float32 [P, J] heatmap peak of each joint.
        joint_set: what the J channels are (names, flip pairs, skeleton).
        source: the image's file name ("" for an array); frame: the frame index in a video.
    """

    image: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    joint_set: JointSet
    source: str = ""
    frame: int | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(self.joint_set.names)

    @property
    def persons(self) -> tuple[Person, ...]:
        """The same persons as :class:`~fpdctl.deploy.persons.Person` records (keypoints.json's)."""
        return tuple(
            Person(
                tuple(float(v) for v in self.boxes[p]),  # type: ignore[arg-type]
                None if np.isnan(self.box_scores[p]) else float(self.box_scores[p]),
                self.centers[p],
                float(self.scales[p]),
                self.keypoints[p],
                self.scores[p],
            )
            for p in range(len(self))
        )

    def to_dict(self) -> dict[str, Any]:
        """One entry of ``fpdctl predict``'s keypoints.json ``results``: file, frame, width,
        height and ``persons`` (box, box score, crop centre and scale, named keypoints)."""
        height, width = self.image.shape[:2]
        return Prediction(self.source, self.frame, width, height, self.persons).to_dict(self.joint_names)

    def plot(self, min_score: float = 0.0, boxes: bool = True) -> np.ndarray:
        """A copy of the image with every skeleton drawn (and each person's box, with ``boxes``).

        Args:
            min_score: joints whose score is below this are not drawn.
            boxes: draw the person boxes too.

        Returns:
            uint8 BGR [H, W, 3].
        """
        from fpdctl.viz import draw_persons

        if not len(self):
            return np.ascontiguousarray(self.image).copy()
        return draw_persons(
            self.image,
            self.keypoints,
            self.joint_set,
            scores=self.scores,
            min_score=min_score,
            boxes=self.boxes if boxes else None,
        )


def load_image(image: Any) -> tuple[np.ndarray, str]:
    """(uint8 BGR [H, W, 3] image, its name) from an array or a path.

    Raises:
        UsageError: an array that is not uint8 [H, W, 3]; UnreadableImage: a bad file.
    """
    if isinstance(image, (str, os.PathLike)):
        from fpdctl.data.dataset import read_image

        return read_image(image), Path(image).name
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise UsageError(
            f"`images` must be uint8 BGR [H, W, 3] arrays (as cv2.imread gives) or paths, got "
            f"{array.dtype} {list(array.shape)}",
            params="images",
        )
    return array, ""


def person_boxes(image: np.ndarray, boxes: Any) -> list[PersonBox]:
    """The persons to crop in ``image`` from one image's ``boxes`` (see :meth:`Pose.__call__`).

    Every box goes through the one box rule of eval and predict (:func:`fpdctl.boxes.check_box`:
    clipped to the image, then centred and scaled): a box the rule refuses (not finite, under
    1 px, no area in the image) is an error for boxes given as numbers, and is skipped (as
    ``fpdctl predict`` skips it) for a detector's.

    Raises:
        UsageError: boxes that are not [N, 4] / [N, 5] numbers, or a box the rule refuses.
    """
    from fpdctl.boxes import box_center_scale, check_box, image_center_scale

    height, width = image.shape[:2]
    if boxes is None:
        center, scale = image_center_scale(width, height)
        return [PersonBox((0.0, 0.0, float(width), float(height)), None, center, scale)]
    detected = callable(boxes)
    if detected:
        found, scores = boxes(image)
        rows = np.concatenate(
            [np.asarray(found, np.float64).reshape(-1, 4), np.asarray(scores, np.float64).reshape(-1, 1)], axis=1
        )
    elif isinstance(boxes, (list, tuple)) and boxes and all(isinstance(b, PersonBox) for b in boxes):
        return list(boxes)
    elif isinstance(boxes, (list, tuple)) and boxes and all(isinstance(b, dict) for b in boxes):
        try:
            rows = np.array([[*b["bbox"], b.get("score", np.nan)] for b in boxes], np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"each detection in `boxes` needs a 'bbox' [x, y, w, h] (and a 'score'): {exc}", params="boxes"
            ) from exc
    else:
        try:
            rows = np.asarray(boxes, np.float64)
        except (TypeError, ValueError) as exc:
            raise UsageError(
                f"`boxes` must be an [N, 4] array of x, y, w, h in image px: {exc}", params="boxes"
            ) from exc
        if rows.ndim == 1 and rows.size in (4, 5):
            rows = rows[None]
        if rows.size == 0:
            return []
    if rows.ndim != 2 or rows.shape[1] not in (4, 5):
        raise UsageError(
            "`boxes` must be an [N, 4] array of x, y, w, h in image px (or [N, 5] with scores), "
            f"got shape {list(rows.shape)}",
            params="boxes",
        )
    persons = []
    for index, row in enumerate(rows):
        box = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
        check = check_box(box, width, height)
        if check.clipped is None:
            if detected:
                continue
            shown = ", ".join(f"{v:g}" for v in box)
            raise UsageError(
                f"`boxes`[{index}] ({shown}) is refused in the {width} x {height} image: {check.reason}", params="boxes"
            )
        score = None if rows.shape[1] == 4 or np.isnan(row[4]) else float(row[4])
        center, scale = box_center_scale(check.clipped)
        persons.append(PersonBox(box, score, center, scale))
    return persons


def read_frames(path: Path, max_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, uint8 BGR frame) of a video, in order, up to ``max_frames``.

    Raises:
        InputError: a file OpenCV cannot open as a video; DataError: no frame could be read.
    """
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"cannot open video {path} (unsupported codec or not a video)")
    try:
        index = 0
        while max_frames is None or index < max_frames:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            yield index, frame
            index += 1
        if index == 0:
            raise DataError(f"no frames could be read from {path}")
    finally:
        capture.release()


__all__ = ["DetectorLike", "ImageLike", "PoseResult", "load_image", "person_boxes", "read_frames"]
