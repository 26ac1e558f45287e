"""Who is in an image: the person boxes predict crops (:class:`PersonSource`, :class:`PersonBox`)
and the persons it returns (:class:`Person`, :class:`Prediction`, :class:`PredictResult`).

Where the persons come from, one of: the whole frame (one person, centre at the image centre,
side the longer image side); ``bbox`` (x, y, w, h: one person, the crop centred on the box, its
side the box's longer side times the datasets' 1.25 margin, :func:`~fpdctl.pipeline.person_box`);
a boxes file (:mod:`fpdctl.deploy.boxes`) or a person detector (:mod:`fpdctl.deploy.detector`),
where every box is a person cropped with the COCO top-down convention
(:func:`fpdctl.data.coco.box_center_scale`, as HRNet crops detection boxes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from fpdctl.errors import UsageError
from fpdctl.pipeline import Box, person_box

if TYPE_CHECKING:
    from fpdctl.deploy.boxes import FileBox
    from fpdctl.deploy.detector import PersonDetector
    from fpdctl.models.convention import InputConvention


def parse_bbox(text: str | None) -> Box | None:
    """``"x,y,w,h"`` (image px, top-left corner and size) -> a tuple; None -> None.

    Raises:
        UsageError: not four numbers, or a width or height that is not positive.
    """
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(np.isfinite(values)):
        raise UsageError(f"`bbox` must be x,y,w,h (four numbers, image pixels), got '{text}'", params="bbox")
    if values[2] <= 0 or values[3] <= 0:
        raise UsageError(f"`bbox` width and height must be positive, got '{text}'", params="bbox")
    return values[0], values[1], values[2], values[3]


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
        warnings: lines for the user (a box outside its image ...).
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
            "written": [p.name for p in self.drawn],
        }


@dataclass(frozen=True)
class PersonBox:
    """A person to crop: its box (x, y, w, h, image px), the box's score, crop centre and scale."""

    box: Box
    score: float | None
    center: np.ndarray
    scale: float


def outside_image(box: Box, width: int, height: int) -> bool:
    """True when the box ``(x, y, w, h)`` shares no pixel with a ``width`` x ``height`` image."""
    x, y, w, h = box
    return x + w <= 0 or y + h <= 0 or x >= width or y >= height


class PersonSource:
    """Where each image's persons come from: the whole image, one --bbox, a boxes file or a
    detector (exactly one; see the module docstring).

    Args:
        bbox: one box for every image.
        boxes: a boxes file's persons by image name or video frame (:func:`~fpdctl.deploy.boxes.read_boxes`).
        detector: a person detector.
    """

    def __init__(
        self,
        *,
        bbox: Box | None = None,
        boxes: "dict[Any, list[FileBox]] | None" = None,
        detector: "PersonDetector | None" = None,
    ) -> None:
        self.bbox, self.boxes, self.detector = bbox, boxes, detector
        self.kind = (
            "bbox"
            if bbox is not None
            else "boxes"
            if boxes is not None
            else ("detector" if detector is not None else "image")
        )
        self.bbox_outside: list[str] = []
        self.warnings: list[str] = []

    def find(self, image: np.ndarray, key: Any, label: str) -> list[PersonBox]:
        """The persons to crop in ``image`` (``key``: its name in the boxes file, or frame index;
        ``label``: how warnings name it)."""
        from fpdctl.data.coco import box_center_scale

        height, width = image.shape[:2]
        if self.kind in ("image", "bbox"):
            if self.bbox is not None and outside_image(self.bbox, width, height):
                self.bbox_outside.append(label)
            center, scale, box = person_box(width, height, self.bbox)
            return [PersonBox(box, None, center, scale)]
        if self.detector is not None:
            boxes, scores = self.detector(image)
            found = [(tuple(float(v) for v in b), float(s)) for b, s in zip(boxes, scores)]
        else:
            found = []
            for entry in (self.boxes or {}).get(key, []):
                if outside_image(entry.box, width, height):
                    self.warnings.append(
                        f"{label}: box of entry {entry.entry} lies wholly outside the {width}x{height} image; skipped"
                    )
                    continue
                found.append((entry.box, entry.score))
        persons = []
        for box, score in found:
            center, scale = box_center_scale(box)  # type: ignore[arg-type]
            persons.append(PersonBox(box, score, center, scale))  # type: ignore[arg-type]
        return persons

    def all_warnings(self) -> list[str]:
        """The warning lines of the run (one for a --bbox outside any number of images)."""
        lines = list(self.warnings)
        if self.bbox_outside and self.bbox is not None:
            shown = ", ".join(self.bbox_outside[:3]) + (" ..." if len(self.bbox_outside) > 3 else "")
            box = ",".join(f"{v:g}" for v in self.bbox)
            lines.insert(
                0,
                f"--bbox {box} lies wholly outside {len(self.bbox_outside)} image(s) or frame(s) "
                f"({shown}): their crops hold only padding",
            )
        return lines
