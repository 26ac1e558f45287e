"""Person boxes from a detections file for ``predict``: a JSON list in COCO's detection-results
form, read by the one detections reader (:func:`fpdctl.metrics.coco_detections.load_detections`)
and grouped here by image or video frame.

Each entry is one person::

    {"file_name": "a.jpg", "bbox": [x, y, w, h], "score": 0.98, "category_id": 1}
    {"image_id": 397133, "bbox": [...], "score": 0.91}            # with an annotation file
    {"frame": 12, "bbox": [...], "score": 0.87}                     # a video's frame 12

* the image: ``file_name``, relative to the INPUT folder (for a single image INPUT, its own
  name), or ``image_id`` with an annotation file whose COCO ``images`` list maps ids to file
  names (``annotations``). Entries naming an image INPUT does not hold are skipped and counted
  (a file for a whole dataset serves any subset of it);
* a video: ``frame``, counted from ``frame_base`` (0, or 1 as MOT files count); ``file_name``, if
  given, must be the video's name. A frame past the video's end is refused when the video has
  been read (:meth:`BoxesFile.check_frames`);
* ``bbox``: ``[x, y, w, h]`` in image px, width and height positive;
* ``score``: the detector's score (optional, reported as ``box_score``); a box scoring under
  ``det_score`` is skipped and counted;
* ``category_id``: optional; if given it must be 1 (COCO's person).

Every malformed entry is a :class:`~fpdctl.errors.DataError` naming the file and the entry
(0-based, as in the JSON list), raised before the model is loaded. Where a box lies in its image
is checked per image, with the rule every crop follows (:func:`fpdctl.boxes.check_box`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from fpdctl.errors import DataError, InputError, UsageError
from fpdctl.metrics.coco_detections import BOX_KEYS, MISSING, load_detections

# Where video frames are counted from: 0 (fpdctl's own frame indices), or 1 (MOT's files).
FRAME_BASES: tuple[int, ...] = (0, 1)


@dataclass(frozen=True)
class FileBox:
    """One person's box from the file.

    Attributes:
        box: (x, y, w, h) in image px, as written in the file.
        score: the detector's score, or None when the entry has none.
        entry: the entry's index in the file (0-based).
    """

    box: tuple[float, float, float, float]
    score: float | None
    entry: int


@dataclass(frozen=True)
class BoxesFile:
    """A detections file's persons for one INPUT.

    Attributes:
        source: the file.
        persons: image name (or 0-based frame index) -> its persons in file order. An image
            with no entry is not a key (it has no persons).
        unknown_images: image name -> entries naming it, for images INPUT does not hold (skipped).
        below_score: entries skipped for scoring under ``det_score``.
        frame_base: what the file's first frame is numbered.
    """

    source: Path
    persons: dict[Any, list[FileBox]]
    unknown_images: dict[str, int] = field(default_factory=dict)
    below_score: int = 0
    frame_base: int = 0

    def check_frames(self, frames: int, video: str) -> None:
        """Refuse boxes for frames past the end of a video that has ``frames`` frames.

        Raises:
            DataError: naming the first such entry, the video's length and ``frame_base``.
        """
        beyond = [box for frame, boxes in self.persons.items() if frame >= frames for box in boxes]
        if beyond:
            first = min(beyond, key=lambda b: b.entry)
            frame = next(k for k, v in self.persons.items() if first in v) + self.frame_base
            raise DataError(
                f"{self.source}: detection {first.entry} names frame {frame}, past the end of {video} "
                f"({frames} frames, numbered {self.frame_base}..{frames - 1 + self.frame_base} "
                f"with frame_base={self.frame_base}); {len(beyond)} boxes are past the end"
            )


def _load_json(path: Path, what: str) -> Any:
    from fpdctl.utils.io import require_file

    require_file(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{what} {path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def read_image_names(annotations: str | os.PathLike[str]) -> dict[int, str]:
    """COCO ``images``: image id -> file name, from an annotation file.

    Raises:
        InputError: missing file. DataError: not JSON, or no valid ``images`` list.
    """
    path = Path(annotations)
    data = _load_json(path, "annotation file")
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise DataError(f"annotation file {path} has no COCO 'images' list (id -> file_name)")
    names: dict[int, str] = {}
    for i, image in enumerate(images):
        if not (
            isinstance(image, dict) and isinstance(image.get("id"), int) and isinstance(image.get("file_name"), str)
        ):
            raise DataError(f"annotation file {path} images entry {i}: needs an integer id and a file_name")
        names[image["id"]] = image["file_name"]
    return names


def check_frame_base(frame_base: int) -> None:
    """Raises UsageError unless ``frame_base`` is 0 or 1 (what a video's boxes file numbers its
    first frame)."""
    if frame_base not in FRAME_BASES:
        raise UsageError(f"`frame_base` must be 0 or 1, got {frame_base!r}", params="frame_base")


def read_boxes(
    path: str | os.PathLike[str],
    *,
    image_names: Sequence[str] = (),
    video: str | None = None,
    annotations: str | os.PathLike[str] | None = None,
    det_score: float = 0.0,
    frame_base: int = 0,
) -> BoxesFile:
    """The persons of a detections file, grouped by image (or video frame).

    Args:
        path: the detections file.
        image_names: the INPUT's images, relative to INPUT (an image or folder INPUT).
        video: the video's file name (a video INPUT); then entries are keyed by frame.
        annotations: a COCO annotation file mapping ``image_id`` to ``file_name``.
        det_score: boxes scoring under it are skipped (and counted).
        frame_base: the number of a video's first frame in the file, 0 or 1.

    Raises:
        InputError: a missing file. DataError: a malformed file or entry (one line naming the
        file and the entry). UsageError: a ``frame_base`` other than 0 or 1.
    """
    check_frame_base(frame_base)
    source = Path(path)
    detections = load_detections(source, score_threshold=-math.inf, keys=BOX_KEYS)
    ids = read_image_names(annotations) if annotations is not None else None
    known = set(image_names)
    persons: dict[Any, list[FileBox]] = {}
    unknown: dict[str, int] = {}
    below = 0
    for k in range(len(detections)):
        i = int(detections.record_index[k])
        where = f"{source}: detection {i}"
        name = detections.file_names[k]
        image_id = int(detections.image_ids[k])
        if name is None and image_id != MISSING:
            if ids is None:
                raise DataError(
                    f"{where}: names image_id {image_id} but no file_name; "
                    "pass `annotations` FILE (COCO images: id -> file_name)",
                    params="annotations",
                )
            name = ids.get(image_id)
            if name is None:
                raise DataError(f"{where}: image_id {image_id} is not in {annotations}")
        if video is not None:
            frame = int(detections.frames[k])
            if frame == MISSING:
                raise DataError(f"{where}: a video's entries need frame (an integer, {frame_base} or more)")
            if frame < frame_base:
                raise DataError(f"{where}: frame {frame} is before the first frame ({frame_base}, frame_base)")
            if name is not None and name != video:
                raise DataError(f"{where}: file_name '{name}' is not the input video '{video}'")
            key: Any = frame - frame_base
        else:
            if name is None:
                raise DataError(f"{where}: needs file_name (or image_id with `annotations`)", params="annotations")
            if name not in known:
                unknown[name] = unknown.get(name, 0) + 1
                continue
            key = name
        score = None if math.isnan(detections.scores[k]) else float(detections.scores[k])
        if score is not None and score < det_score:
            below += 1
            continue
        box = tuple(float(v) for v in detections.boxes[k])
        persons.setdefault(key, []).append(FileBox(box, score, i))  # type: ignore[arg-type]
    return BoxesFile(source, persons, unknown, below, frame_base)


__all__ = ["FRAME_BASES", "BoxesFile", "FileBox", "read_boxes", "read_image_names"]
