"""Person boxes from a detections file: a JSON list in COCO's detection-results form.

Each entry is one person::

    {"file_name": "a.jpg", "bbox": [x, y, w, h], "score": 0.98, "category_id": 1}
    {"image_id": 397133, "bbox": [...], "score": 0.91}            # with an annotation file
    {"frame": 12, "bbox": [...], "score": 0.87}                     # a video's frame 12

* the image: ``file_name``, relative to the INPUT folder (for a single image INPUT, its own
  name), or ``image_id`` with an annotation file whose COCO ``images`` list maps ids to file
  names (``--annotations``);
* a video: ``frame`` (0-based); ``file_name``, if given, must be the video's name;
* ``bbox``: ``[x, y, w, h]`` in image px, width and height positive;
* ``score``: the detector's score (optional, reported as ``box_score``);
* ``category_id``: optional; if given it must be 1 (COCO's person).

Every problem is a :class:`~fpdctl.errors.DataError` naming the file and the entry (0-based, as
in the JSON list), raised before the model is loaded.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from fpdctl.errors import DataError, InputError

# COCO's category id of "person" (detection results of other categories are refused).
PERSON_CATEGORY_ID = 1


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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_boxes(
    path: str | os.PathLike[str],
    *,
    image_names: Sequence[str] = (),
    video: str | None = None,
    annotations: str | os.PathLike[str] | None = None,
    input_dir: str = "the input",
) -> dict[Any, list[FileBox]]:
    """The persons of a detections file, grouped by image (or video frame).

    Args:
        path: the detections file.
        image_names: the INPUT's images, relative to INPUT (an image or folder INPUT).
        video: the video's file name (a video INPUT); then entries are keyed by frame.
        annotations: a COCO annotation file mapping ``image_id`` to ``file_name``.
        input_dir: where the images are, for the error naming a missing one.

    Returns:
        image name (or frame index) -> its persons in file order. An image with no entry is not
        a key (it has no persons).

    Raises:
        InputError: a missing file. DataError: a malformed file or entry (one line naming the
        file and the entry).
    """
    source = Path(path)
    data = _load_json(source, "boxes file")
    if not isinstance(data, list):
        raise DataError(
            f"boxes file {source}: expected a JSON list of detections "
            f'([{{"file_name", "bbox", "score"}}, ...]), got {type(data).__name__}'
        )
    ids = read_image_names(annotations) if annotations is not None else None
    known = set(image_names)
    persons: dict[Any, list[FileBox]] = {}
    for i, entry in enumerate(data):
        where = f"boxes file {source} entry {i}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object with bbox and file_name (or image_id)")
        category = entry.get("category_id", PERSON_CATEGORY_ID)
        if category != PERSON_CATEGORY_ID:
            raise DataError(f"{where}: category_id {category!r} is not a person ({PERSON_CATEGORY_ID})")
        bbox = entry.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
            raise DataError(f"{where}: bbox must be [x, y, w, h] (four numbers, image px), got {bbox!r}")
        if bbox[2] <= 0 or bbox[3] <= 0:
            raise DataError(f"{where}: bbox width and height must be positive, got {bbox}")
        score = entry.get("score")
        if score is not None and not _number(score):
            raise DataError(f"{where}: score must be a number, got {score!r}")
        name = entry.get("file_name")
        if name is None and "image_id" in entry:
            if ids is None:
                raise DataError(
                    f"{where}: names image_id {entry['image_id']!r} but no file_name; "
                    "pass `annotations` FILE (COCO images: id -> file_name)",
                    params="annotations",
                )
            name = ids.get(entry["image_id"])
            if name is None:
                raise DataError(f"{where}: image_id {entry['image_id']!r} is not in {annotations}")
        if name is not None and not isinstance(name, str):
            raise DataError(f"{where}: file_name must be a string, got {name!r}")
        if video is not None:
            frame = entry.get("frame")
            if not (isinstance(frame, int) and not isinstance(frame, bool) and frame >= 0):
                raise DataError(f"{where}: a video's entries need frame (an integer, 0 or more), got {frame!r}")
            if name is not None and name != video:
                raise DataError(f"{where}: file_name '{name}' is not the input video '{video}'")
            key: Any = frame
        else:
            if name is None:
                raise DataError(f"{where}: needs file_name (or image_id with `annotations`)", params="annotations")
            if name not in known:
                raise DataError(f"{where}: image '{name}' not found in {input_dir}")
            key = name
        box = (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))
        persons.setdefault(key, []).append(FileBox(box, None if score is None else float(score), i))
    return persons


__all__ = ["PERSON_CATEGORY_ID", "FileBox", "read_boxes", "read_image_names"]
