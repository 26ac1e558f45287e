"""Who is in an image: the person boxes predict crops (:class:`PersonSource`, :class:`PersonBox`)
and the persons it returns (:class:`Person`, :class:`Prediction`, :class:`PredictResult`).

Where the persons come from, one of: the whole frame (one person, centre at the image centre,
side the longer image side, :func:`fpdctl.boxes.image_center_scale`); ``bbox`` (x, y, w, h: one
person for every image); a boxes file (:mod:`fpdctl.deploy.boxes`) or a person detector
(:mod:`fpdctl.deploy.detector`), where every box is a person. Every box is checked, clipped to
its image and cropped by :mod:`fpdctl.boxes`, the geometry ``eval --boxes`` crops with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from fpdctl.boxes import NO_AREA, NOT_FINITE, REFUSALS, TOO_SMALL, Box, box_center_scale, check_box, image_center_scale

if TYPE_CHECKING:
    from fpdctl.deploy.boxes import BoxesFile
    from fpdctl.deploy.detector import Detector
    from fpdctl.models.convention import InputConvention


def _rounded(values: Any, digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in values]


@dataclass(frozen=True)
class Person:
    """One person in one image or frame.

    Attributes:
        box: (x, y, w, h) in image px the crop was built from: the box file's or detector's box,
            --bbox, or the whole image.
        box_score: the detector's (or boxes file's) score of the box; None without one.
        center: float32 [2] crop centre in image px.
        scale: crop side / 200 px.
        keypoints: float32 [J, 2] (x, y) in image px, 0-based.
        scores: float32 [J] heatmap peak values.
    """

    box: Box
    box_score: float | None
    center: np.ndarray
    scale: float
    keypoints: np.ndarray
    scores: np.ndarray

    def to_dict(self, joint_names: Sequence[str]) -> dict[str, Any]:
        return {
            "box": _rounded(self.box),
            "box_score": None if self.box_score is None else round(float(self.box_score), 5),
            "center": _rounded(self.center),
            "scale": round(float(self.scale), 6),
            "keypoints": [
                {"name": name, "x": round(float(x), 3), "y": round(float(y), 3), "score": round(float(s), 5)}
                for name, (x, y), s in zip(joint_names, self.keypoints, self.scores)
            ],
        }


@dataclass(frozen=True)
class Prediction:
    """The persons of one image or frame.

    Attributes:
        source: the image's file name (relative to a folder INPUT), or the video's.
        frame: the frame index in a video, else None.
        width, height: image size in px.
        persons: every person found (none, one, or many).

    The single-person attributes of earlier versions (``box``, ``center``, ``scale``,
    ``keypoints``, ``scores``) read the only person's, and raise when there is not exactly one.
    """

    source: str
    frame: int | None
    width: int
    height: int
    persons: tuple[Person, ...]

    def _only(self) -> Person:
        if len(self.persons) != 1:
            raise ValueError(f"{self.source} has {len(self.persons)} persons; read .persons")
        return self.persons[0]

    @property
    def box(self) -> Box:
        return self._only().box

    @property
    def center(self) -> np.ndarray:
        return self._only().center

    @property
    def scale(self) -> float:
        return self._only().scale

    @property
    def keypoints(self) -> np.ndarray:
        return self._only().keypoints

    @property
    def scores(self) -> np.ndarray:
        return self._only().scores

    def to_dict(self, joint_names: Sequence[str]) -> dict[str, Any]:
        return {
            "file": self.source,
            "frame": self.frame,
            "width": self.width,
            "height": self.height,
            "persons": [person.to_dict(joint_names) for person in self.persons],
        }


@dataclass(frozen=True)
class PredictResult:
    """What ``fpdctl predict`` did.

    Attributes:
        model: the MODEL argument; arch: its architecture name.
        input: the INPUT argument; kind: "image", "folder" or "video".
        joint_names, skeleton: of the model's channels.
        predictions: one per image or frame.
        json_path: the keypoints file written.
        drawn: the drawn images or video written.
        skipped: "file: reason" for folder images that could not be read.
        seconds: wall time.
        input_convention: how the crops were normalised (the model's own, or the override).
        backend: the backend row the pose model ran on ("torch", "ort", "ov-fp32" ...).
        persons_from: "image", "bbox", "boxes" or "detector" (:class:`PersonSource`).
        detector: the detector's file and settings, when one ran.
        warnings: lines for the user (boxes skipped, and why ...).
        skipped_boxes: reason -> boxes skipped for it (:attr:`PersonSource.skipped`).
    """

    model: str
    arch: str
    input: str
    kind: str
    input_size: int
    joint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    predictions: list[Prediction]
    json_path: Path
    drawn: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    input_convention: "InputConvention | None" = None
    backend: str = ""
    persons_from: str = "image"
    detector: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    skipped_boxes: dict[str, int] = field(default_factory=dict)

    @property
    def num_persons(self) -> int:
        return sum(len(p.persons) for p in self.predictions)

    def to_dict(self) -> dict[str, Any]:
        from fpdctl import __version__

        return {
            "fpdctl": __version__,
            "model": self.model,
            "arch": self.arch,
            "input": self.input,
            "kind": self.kind,
            "input_size": self.input_size,
            "backend": self.backend,
            "persons_from": self.persons_from,
            "detector": self.detector,
            "input_convention": None if self.input_convention is None else self.input_convention.to_dict(),
            "coordinates": "image pixels, 0-based, x right, y down",
            "score": "heatmap peak value of the joint",
            "joint_names": list(self.joint_names),
            "skeleton": [list(p) for p in self.skeleton],
            "results": [p.to_dict(self.joint_names) for p in self.predictions],
            "skipped": list(self.skipped),
            "skipped_boxes": dict(self.skipped_boxes),
            "written": [p.name for p in self.drawn],
        }


@dataclass(frozen=True)
class PersonBox:
    """A person to crop: its box (x, y, w, h, image px), the box's score, crop centre and scale."""

    box: Box
    score: float | None
    center: np.ndarray
    scale: float


# Why a box was skipped, beside fpdctl.boxes' refusals (PredictResult.skipped_boxes' keys).
BELOW_SCORE = "below det_score"
UNKNOWN_IMAGE = "image not in the input"
# Warning lines name this many images (or boxes) of each kind, then "...".
SHOWN = 3


class PersonSource:
    """Where each image's persons come from: the whole image, one ``bbox``, a boxes file or a
    detector (exactly one; see the module docstring).

    Every box goes through :func:`fpdctl.boxes.check_box`: a box that is not finite, thinner than
    1 px, or has no area in its image is skipped and counted (:attr:`skipped`); the others are
    clipped to the image and cropped by :func:`fpdctl.boxes.box_center_scale`.

    Args:
        bbox: one box for every image.
        boxes: a boxes file's persons (:func:`~fpdctl.deploy.boxes.read_boxes`).
        detector: a person detector.

    Attributes:
        skipped: reason -> boxes skipped for it (:data:`BELOW_SCORE`, :data:`UNKNOWN_IMAGE`, and
            :data:`fpdctl.boxes.REFUSALS`).
    """

    def __init__(
        self,
        *,
        bbox: Box | None = None,
        boxes: "BoxesFile | None" = None,
        detector: "Detector | None" = None,
    ) -> None:
        self.bbox, self.boxes, self.detector = bbox, boxes, detector
        self.kind = (
            "bbox"
            if bbox is not None
            else "boxes"
            if boxes is not None
            else ("detector" if detector is not None else "image")
        )
        self.skipped: dict[str, int] = {}
        if boxes is not None:
            if boxes.below_score:
                self.skipped[BELOW_SCORE] = boxes.below_score
            if boxes.unknown_images:
                self.skipped[UNKNOWN_IMAGE] = sum(boxes.unknown_images.values())
        # reason -> where (the first SHOWN, and whether there were more), for the warning lines.
        self._where: dict[str, list[str]] = {}

    def _skip(self, reason: str, where: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        seen = self._where.setdefault(reason, [])
        if len(seen) < SHOWN:
            seen.append(where)

    def find(self, image: np.ndarray, key: Any, label: str) -> list[PersonBox]:
        """The persons to crop in ``image`` (``key``: its name in the boxes file, or frame index;
        ``label``: how warnings name it)."""
        height, width = image.shape[:2]
        if self.kind == "image":
            center, scale = image_center_scale(width, height)
            return [PersonBox((0.0, 0.0, float(width), float(height)), None, center, scale)]
        found: list[tuple[Box, float | None, str]]
        if self.bbox is not None:
            found = [(self.bbox, None, label)]
        elif self.detector is not None:
            boxes, scores = self.detector(image)
            found = [(tuple(float(v) for v in b), float(s), label) for b, s in zip(boxes, scores)]  # type: ignore[misc]
        else:
            entries = self.boxes.persons.get(key, []) if self.boxes is not None else []
            found = [(entry.box, entry.score, f"{label} (detection {entry.entry})") for entry in entries]
        persons = []
        for box, score, where in found:
            check = check_box(box, width, height)
            if check.clipped is None:
                self._skip(str(check.reason), where)
                continue
            center, scale = box_center_scale(check.clipped)
            persons.append(PersonBox(box, score, center, scale))
        return persons

    def check_frames(self, frames: int, video: str) -> None:
        """After a whole video was read (``frames`` frames): refuse boxes past its end.

        Raises:
            DataError: a boxes file names a frame the video does not have.
        """
        if self.boxes is not None:
            self.boxes.check_frames(frames, video)

    def all_warnings(self) -> list[str]:
        """The warning lines of the run: one per reason boxes were skipped, with a count."""
        lines = []
        if BELOW_SCORE in self.skipped:
            lines.append(f"{self.skipped[BELOW_SCORE]} box(es) scoring under det_score: skipped")
        if self.boxes is not None and self.boxes.unknown_images:
            names = sorted(self.boxes.unknown_images)
            shown = ", ".join(names[:SHOWN]) + (" ..." if len(names) > SHOWN else "")
            lines.append(
                f"{self.skipped[UNKNOWN_IMAGE]} box(es) of {len(names)} image(s) the input does not hold "
                f"({shown}): skipped"
            )
        for reason in REFUSALS:
            count = self.skipped.get(reason, 0)
            if not count:
                continue
            shown = ", ".join(self._where[reason]) + (" ..." if count > SHOWN else "")
            if self.bbox is not None:
                box = ",".join(f"{v:g}" for v in self.bbox)
                lines.append(
                    f"bbox {box} {_BBOX_PHRASES[reason]} ({count} image(s) or frame(s): {shown}): no person there"
                )
            else:
                lines.append(f"{count} box(es) {_BOX_PHRASES[reason]} ({shown}): skipped")
        return lines


# fpdctl.boxes' refusals in the warning lines, for the boxes of a file or detector and for bbox.
_BOX_PHRASES = {NO_AREA: "with no area in their image", TOO_SMALL: "smaller than 1 px", NOT_FINITE: "not finite"}
_BBOX_PHRASES = {NO_AREA: "has no area in the image", TOO_SMALL: "is smaller than 1 px", NOT_FINITE: "is not finite"}
