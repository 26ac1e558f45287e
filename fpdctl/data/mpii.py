"""MPII Human Pose: the official release ``.mat`` and the two common JSON layouts.

``mpii:PATH`` accepts a dataset folder or an annotation file. The layout is chosen by what is
there (and, for JSON, by the file's content, not its name):

* **HRNet / official FPD code**: ``annot/train.json`` and ``annot/valid.json``, each a list of
  persons ``{"image", "center", "scale", "joints" [16][2], "joints_vis" [16]}``. The split is the
  file. Head boxes come from ``annot/gt_valid.mat``.
* **pytorch-pose**: ``mpii_annotations.json``, a list of persons ``{"img_paths", "joint_self"
  [16][3], "objpos", "scale_provided", "isValidation", ...}`` (optionally wrapped as
  ``{"root": [...]}``). The split is ``isValidation``. ``joint_self``'s third value is
  ``is_visible``; an unannotated joint is the all-zero row the generating script pads with, so a
  joint counts as annotated when its coordinates are not (0, 0), occluded joints included.
* **Official release**: ``mpii_human_pose_v1_u12_1.mat`` (``RELEASE``: annolist, img_train, ...).
  The release has no validation split, only ``img_train``. The standard split (Tompson et al.,
  CVPR 2015; 2958 validation persons) is taken from a file beside the annotations, in this order:
  Tompson's ``detections.mat`` (``RELEASE_img_index``, ``RELEASE_person_index``), or a validation
  ground truth in the evaluation layout (``gt_valid.mat``, ``mpii_val_gt_tompson.mat``,
  ``detections_our_format.mat``), whose persons are found in the release by their head box and
  joints. Training persons are the annotated persons of ``img_train`` images that contain no
  validation person (the rule of the scripts that made the JSON files). Without such a file the
  loader refuses (DataError) rather than guess a split that would not match published numbers.

Images are read from an ``images/`` folder beside the annotation file, its parent, or PATH.

Conventions (as in pytorch-pose and HRNet): coordinates in the files are MATLAB 1-based, so joints
and centres get -1; where a centre is given, it moves down by ``15 * scale`` px and the scale grows
by 1.25 so the crop does not cut off limbs. Head boxes for PCKh come from the release ``annorect``
(x1, y1, x2, y2) or, for the JSON layouts, from the validation ground-truth ``.mat`` above, checked
to line up person by person with the annotations. With such a ``.mat`` attached, PCKh scores
against its joints and visibility (``pos_gt_src``, ``jnt_missing``), as HRNet and the official
FPD code do, not against the annotation file's copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np

from fpdctl.boxes import SCALE_MARGIN
from fpdctl.data.file_dataset import AnnotationTable, FilePoseDataset
from fpdctl.errors import DataError, InputError
from fpdctl.metrics.mpii_files import MATLAB_ORIGIN, load_mpii_ground_truth
from fpdctl.metrics.reference import EvalReference
from fpdctl.skeleton import MPII
from fpdctl.utils.matfile import load_mat

NUM_JOINTS = MPII.num_joints
# The pytorch-pose / HRNet centre and scale adjustment: move the centre down 15 px per unit of
# scale and enlarge the box by a quarter (fpdctl.boxes.SCALE_MARGIN), so crops keep the feet and hands.
CENTER_SHIFT_Y = 15.0
# Largest joint disagreement (px) allowed when lining up a ground-truth file with annotations;
# the files store coordinates in single precision and JSON with 3 decimals.
LINE_UP_TOLERANCE_PX = 0.5

RELEASE_MAT = "mpii_human_pose_v1_u12_1.mat"
PYTORCH_POSE_JSON = "mpii_annotations.json"
HRNET_JSON = {"train": "train.json", "val": "valid.json"}
GROUND_TRUTH_FILES: tuple[str, ...] = (
    "gt_valid.mat",
    "mpii_val_gt_tompson.mat",
    "detections_our_format.mat",
)
TOMPSON_DETECTIONS = "detections.mat"

Layout = Literal["release", "pytorch-pose", "hrnet"]


def adjust_center_scale(centers: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the reference centre/scale adjustment and the 1-based -> 0-based shift.

    Args:
        centers: float [N, 2] MATLAB 1-based centres (x = -1 marks "no centre").
        scales: float [N].

    Returns:
        (centers float32 [N, 2] 0-based, scales float32 [N]).
    """
    c = np.asarray(centers, np.float64).reshape(-1, 2).copy()
    s = np.asarray(scales, np.float64).reshape(-1).copy()
    has_center = c[:, 0] != -1
    c[has_center, 1] += CENTER_SHIFT_Y * s[has_center]
    s[has_center] *= SCALE_MARGIN
    return (c - MATLAB_ORIGIN).astype(np.float32), s.astype(np.float32)


# --------------------------------------------------------------------------- JSON layouts
def _load_json_records(path: Path) -> list[Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # jsonlab's savejson('root', ...) wrapper
    return data


def json_layout(records: Any, path: Path) -> Layout:
    """Tell the pytorch-pose layout from the HRNet one by the fields of the first person."""
    expected = (
        "expected a list of persons with img_paths, joint_self, objpos, scale_provided "
        "(pytorch-pose mpii_annotations.json) or image, center, scale, joints, joints_vis "
        "(HRNet annot/*.json)"
    )
    if not isinstance(records, list) or not records or not isinstance(records[0], dict):
        raise DataError(f"{path} is not an MPII annotation file: {expected}")
    keys = set(records[0])
    if {"img_paths", "joint_self", "objpos", "scale_provided"} <= keys:
        return "pytorch-pose"
    if {"image", "center", "scale", "joints", "joints_vis"} <= keys:
        return "hrnet"
    raise DataError(
        f"{path} is not an MPII annotation file: {expected}; the first person has "
        f"{', '.join(sorted(keys)) or 'no fields'}"
    )


def _field_array(records: list[dict], key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    try:
        return np.array([r[key] for r in records], dtype=np.float64).reshape((len(records),) + shape)
    except KeyError as exc:
        raise DataError(f"{path}: a person has no {key!r} field") from exc
    except (TypeError, ValueError) as exc:
        bad = next((i for i, r in enumerate(records) if np.shape(r.get(key)) != shape), None)
        where = f"person {bad}" if bad is not None else "some person"
        raise DataError(f"{path}: {key!r} of {where} is not {' x '.join(map(str, shape)) or 'a number'}") from exc


def table_from_pytorch_pose(records: list[dict], split: str, path: Path) -> AnnotationTable:
    """The ``split`` persons of a pytorch-pose ``mpii_annotations.json`` (order kept)."""
    try:
        is_val = np.array([bool(float(r["isValidation"])) for r in records])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: every person needs a numeric 'isValidation' field") from exc
    chosen = [r for r, v in zip(records, is_val) if v == (split == "val")]
    if not chosen:
        raise DataError(f"{path} has no {split} persons (isValidation is {int(split == 'val')} for none)")
    raw = _field_array(chosen, "joint_self", (NUM_JOINTS, 3), path)
    centers, scales = adjust_center_scale(
        _field_array(chosen, "objpos", (2,), path), _field_array(chosen, "scale_provided", (), path)
    )
    annotated = ~((raw[:, :, 0] == 0) & (raw[:, :, 1] == 0))
    joints = np.zeros((len(chosen), NUM_JOINTS, 3), np.float32)
    joints[:, :, :2] = np.where(annotated[..., None], raw[:, :, :2] - MATLAB_ORIGIN, 0.0)
    joints[:, :, 2] = annotated
    return AnnotationTable(
        image_files=[str(r["img_paths"]) for r in chosen], joints=joints, centers=centers, scales=scales
    )


def table_from_hrnet(records: list[dict], path: Path) -> AnnotationTable:
    """All persons of an HRNet ``annot/{train,valid}.json`` (order kept)."""
    raw = _field_array(records, "joints", (NUM_JOINTS, 2), path)
    vis = _field_array(records, "joints_vis", (NUM_JOINTS,), path) > 0
    centers, scales = adjust_center_scale(
        _field_array(records, "center", (2,), path), _field_array(records, "scale", (), path)
    )
    joints = np.zeros((len(records), NUM_JOINTS, 3), np.float32)
    joints[:, :, :2] = np.where(vis[..., None], raw - MATLAB_ORIGIN, 0.0)
    joints[:, :, 2] = vis
    return AnnotationTable(
        image_files=[str(r["image"]) for r in records], joints=joints, centers=centers, scales=scales
    )


# --------------------------------------------------------------------------- release .mat
@dataclass
class _ReleasePerson:
    image_index: int  # 1-based, as in RELEASE.annolist and Tompson's files
    person_index: int  # 1-based within the image's annorect
    image_name: str
    joints: np.ndarray  # float32 [16, 3], 0-based
    center: np.ndarray  # float64 [2], 1-based as stored
    scale: float
    headbox: np.ndarray | None  # float32 [2, 2], 0-based


def _items(value: Any) -> list[Any]:
    """A MATLAB struct array / cell as a list (squeeze_me gives a scalar, an array or [])."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.flat)
    return [value]


def _number(value: Any) -> float | None:
    """A MATLAB scalar as float; None for [] or anything non-numeric."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.flat[0]
    if isinstance(value, (str, bytes)):
        try:
            return float(value)
        except ValueError:
            return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _field(struct: Any, name: str) -> Any:
    return getattr(struct, name, None)


def _parse_person(rect: Any) -> tuple[np.ndarray, np.ndarray, float, np.ndarray | None] | None:
    """(joints, centre, scale, headbox) of one annorect, or None if it cannot be used."""
    points = _items(_field(_field(rect, "annopoints"), "point"))
    objpos = _field(rect, "objpos")
    cx, cy = _number(_field(objpos, "x")), _number(_field(objpos, "y"))
    scale = _number(_field(rect, "scale"))
    if not points or cx is None or cy is None or scale is None or scale <= 0:
        return None
    joints = np.zeros((NUM_JOINTS, 3), np.float32)
    for point in points:
        jid, x, y = _number(_field(point, "id")), _number(_field(point, "x")), _number(_field(point, "y"))
        if jid is None or x is None or y is None or not 0 <= int(jid) < NUM_JOINTS:
            continue
        joints[int(jid)] = (x - MATLAB_ORIGIN, y - MATLAB_ORIGIN, 1.0)
    box = [_number(_field(rect, k)) for k in ("x1", "y1", "x2", "y2")]
    headbox = None
    if all(v is not None for v in box):
        headbox = (np.array(box, np.float32).reshape(2, 2) - MATLAB_ORIGIN).astype(np.float32)
    return joints, np.array([cx, cy], np.float64), float(scale), headbox


def read_release_persons(path: Path) -> list[_ReleasePerson]:
    """Every usable annotated person of the ``img_train`` images of the official release.

    A person is usable with at least one joint, a centre (``objpos``) and a positive scale.

    Raises:
        DataError: the file has no ``RELEASE`` struct with ``annolist`` and ``img_train``.
    """
    mat = load_mat(path, "MPII release file", struct_as_record=False, squeeze_me=True)
    expected = "a struct RELEASE with annolist and img_train (mpii_human_pose_v1_u12_1.mat)"
    release = mat.get("RELEASE")
    annolist = _field(release, "annolist")
    img_train = _field(release, "img_train")
    if release is None or annolist is None or img_train is None:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "nothing"
        raise DataError(f"{path} is not the MPII release: expected {expected}, found {found}")
    images = _items(annolist)
    train_flags = np.atleast_1d(np.asarray(img_train)).reshape(-1)
    if train_flags.size != len(images):
        raise DataError(f"{path}: RELEASE.img_train has {train_flags.size} entries but annolist has {len(images)}")
    persons: list[_ReleasePerson] = []
    for i, (entry, is_train) in enumerate(zip(images, train_flags), start=1):
        if not is_train:
            continue
        name = _field(_field(entry, "image"), "name")
        if not isinstance(name, str):
            continue
        for p, rect in enumerate(_items(_field(entry, "annorect")), start=1):
            parsed = _parse_person(rect)
            if parsed is None:
                continue
            joints, center, scale, headbox = parsed
            persons.append(_ReleasePerson(i, p, name, joints, center, scale, headbox))
    if not persons:
        raise DataError(f"{path} contains no annotated training persons")
    return persons


def _match_ground_truth(persons: list[_ReleasePerson], gt: EvalReference, gt_path: Path) -> list[int]:
    """For each ground-truth person (of the file ``gt_path``), the index of the same person in
    ``persons``.

    Persons are found by their head box (rounded to whole px), then confirmed by their joints.
    """
    by_box: dict[tuple[int, ...], list[int]] = {}
    for k, person in enumerate(persons):
        if person.headbox is not None:
            by_box.setdefault(tuple(np.rint(person.headbox).astype(int).ravel()), []).append(k)
    order: list[int] = []
    used: set[int] = set()
    for g in range(len(gt)):
        key = tuple(np.rint(gt.headboxes[g]).astype(int).ravel())
        best, best_err = -1, np.inf
        for k in by_box.get(key, []):
            if k in used:
                continue
            both = gt.visible[g] & (persons[k].joints[:, 2] > 0)
            err = float(np.abs(persons[k].joints[both, :2] - gt.joints[g, both]).max(initial=0.0))
            if err < best_err:
                best, best_err = k, err
        if best < 0 or best_err > LINE_UP_TOLERANCE_PX:
            raise DataError(
                f"validation person {g + 1} of {gt_path} is not in the release annotations; "
                "is it the MPII validation ground truth of this release?"
            )
        used.add(best)
        order.append(best)
    return order


def _tompson_order(persons: list[_ReleasePerson], path: Path) -> list[int]:
    mat = load_mat(path, "Tompson split file")
    try:
        img = np.asarray(mat["RELEASE_img_index"]).reshape(-1).astype(int)
        per = np.asarray(mat["RELEASE_person_index"]).reshape(-1).astype(int)
    except KeyError as exc:
        raise DataError(
            f"{path} is not Tompson's split file: expected RELEASE_img_index and RELEASE_person_index"
        ) from exc
    where = {(q.image_index, q.person_index): k for k, q in enumerate(persons)}
    order = []
    for i, p in zip(img, per):
        if (i, p) not in where:
            raise DataError(f"{path}: validation person (image {i}, person {p}) is not annotated in the release")
        order.append(where[(i, p)])
    return order


def table_from_release(path: Path, split: str, split_files: Iterable[Path]) -> tuple[AnnotationTable, Path]:
    """The ``split`` persons of the official release, with the file that defined the split."""
    persons = read_release_persons(path)
    split_file = next((f for f in split_files if f.is_file()), None)
    if split_file is None:
        raise DataError(
            f"{path} has no train/validation split; put mpii_val_gt_tompson.mat (pytorch-pose's "
            "detections_our_format.mat or HRNet's gt_valid.mat) or Tompson's detections.mat "
            "beside it"
        )
    if split_file.name == TOMPSON_DETECTIONS:
        val_order = _tompson_order(persons, split_file)
    else:
        val_order = _match_ground_truth(persons, load_mpii_ground_truth(split_file), split_file)
    if split == "val":
        chosen = [persons[k] for k in val_order]
    else:
        val_images = {persons[k].image_index for k in val_order}
        chosen = [q for q in persons if q.image_index not in val_images]
    if not chosen:
        raise DataError(f"{path} has no {split} persons")
    centers, scales = adjust_center_scale(np.stack([q.center for q in chosen]), np.array([q.scale for q in chosen]))
    headboxes = None
    if all(q.headbox is not None for q in chosen):
        headboxes = np.stack([q.headbox for q in chosen])
    table = AnnotationTable(
        image_files=[q.image_name for q in chosen],
        joints=np.stack([q.joints for q in chosen]),
        centers=centers,
        scales=scales,
        headboxes=headboxes,
    )
    return table, split_file


# --------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class MPIISource:
    """Where an MPII dataset's annotations and images are.

    Attributes:
        layout: "release", "pytorch-pose" or "hrnet".
        annotation: the annotation file for the split.
        image_dir: the images folder.
        search_dirs: folders searched for the ground-truth / split files.
    """

    layout: Layout
    annotation: Path
    image_dir: Path
    search_dirs: tuple[Path, ...]


def _find_image_dir(candidates: Iterable[Path]) -> Path | None:
    for folder in candidates:
        if (folder / "images").is_dir():
            return folder / "images"
    return None


def find_mpii_source(path: str | Path, split: str) -> MPIISource:
    """Locate the annotations of ``split`` under ``path`` (a folder or an annotation file).

    Raises:
        InputError: nothing that looks like MPII annotations or no ``images/`` folder.
        DataError: an annotation file with the wrong layout.
    """
    root = Path(path)
    if not root.exists():
        raise InputError(f"MPII data not found: {root}")
    if root.is_file():
        annotation = root
        folders = [root.parent, root.parent.parent]
    else:
        folders = [root, root / "annot", root / "annotations"]
        annotation = None
        for folder in folders:
            for name in (
                *sorted(HRNET_JSON.values(), key=lambda n: n != HRNET_JSON[split]),
                PYTORCH_POSE_JSON,
                RELEASE_MAT,
            ):
                if (folder / name).is_file():
                    annotation = folder / name
                    break
            if annotation is not None:
                break
        if annotation is None:
            raise InputError(
                f"no MPII annotations in {root}: expected annot/train.json and annot/valid.json "
                f"(HRNet), {PYTORCH_POSE_JSON} (pytorch-pose) or {RELEASE_MAT} (official release)"
            )
    if annotation.suffix.lower() == ".mat":
        layout: Layout = "release"
    elif annotation.suffix.lower() == ".json":
        layout = json_layout(_load_json_records(annotation), annotation)
        if layout == "hrnet" and annotation.name != HRNET_JSON[split]:
            sibling = annotation.parent / HRNET_JSON[split]
            if not sibling.is_file():
                raise InputError(f"the HRNet layout keeps the {split} split in {sibling}, which is missing")
            annotation = sibling
    else:
        raise InputError(f"{annotation} is not an MPII annotation file (.json or .mat)")
    search = [annotation.parent, annotation.parent.parent]
    if root.is_dir():
        search.insert(0, root)
    search = list(dict.fromkeys(search))
    image_dir = _find_image_dir(search)
    if image_dir is None:
        raise InputError(f"no images/ folder for {annotation} (looked in {', '.join(str(s) for s in search)})")
    search_dirs = tuple(dict.fromkeys(search + [folder / "annot" for folder in search]))
    return MPIISource(layout, annotation, image_dir, search_dirs)


class MPIIDataset(FilePoseDataset):
    """The MPII Human Pose train or validation split (16 joints, PCKh).

    Args:
        path: dataset folder or annotation file (see the module docstring for the layouts).
        split: "train" or "val".
        ground_truth: the validation ground truth ``.mat`` (evaluation layout) to take head boxes
            (JSON layouts) or the split (release layout) from; default: searched beside the
            annotations under the names in ``GROUND_TRUTH_FILES``.
        **kwargs: :class:`~fpdctl.data.dataset.PoseDataset` options.

    Attributes:
        source: where the annotations and images were found.
        ground_truth_file: the ground-truth / split file used, if any.
        ground_truth: the validation ground truth in the evaluation layout (``gt_valid.mat``...)
            that :meth:`eval_reference` returns, when one is attached; else None.
    """

    def __init__(
        self,
        path: str | Path,
        split: Literal["train", "val"] = "train",
        *,
        ground_truth: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.split = split
        self.source = find_mpii_source(path, split)
        if ground_truth is not None:
            candidates = [Path(ground_truth)]
            if not candidates[0].is_file():
                raise InputError(f"MPII ground-truth file not found: {ground_truth}")
        else:
            names = GROUND_TRUTH_FILES
            if self.source.layout == "release":
                names = (TOMPSON_DETECTIONS,) + names
            candidates = [d / n for n in names for d in self.source.search_dirs]
        self.ground_truth_file: Path | None = None
        self.ground_truth: EvalReference | None = None
        if self.source.layout == "release":
            table, self.ground_truth_file = table_from_release(self.source.annotation, split, candidates)
            if split == "val" and self.ground_truth_file.name != TOMPSON_DETECTIONS:
                # The split came from a ground truth in the evaluation layout, in its order.
                self.ground_truth = load_mpii_ground_truth(self.ground_truth_file)
        else:
            records = _load_json_records(self.source.annotation)
            if self.source.layout == "hrnet":
                table = table_from_hrnet(records, self.source.annotation)
            else:
                table = table_from_pytorch_pose(records, split, self.source.annotation)
            if split == "val":
                table = self._attach_headboxes(table, candidates)
        super().__init__(table, self.source.image_dir, joint_set=MPII, metric="pckh", **kwargs)

    def _attach_headboxes(self, table: AnnotationTable, candidates: list[Path]) -> AnnotationTable:
        gt_file = next((f for f in candidates if f.is_file()), None)
        if gt_file is None:
            return table  # eval_reference() explains what is missing
        gt = load_mpii_ground_truth(gt_file)
        if len(gt) != len(table):
            raise DataError(
                f"{gt_file} has {len(gt)} persons but {self.source.annotation} has {len(table)} validation persons"
            )
        both = gt.visible & (table.joints[:, :, 2] > 0)
        diff = np.where(both, np.abs(gt.joints - table.joints[:, :, :2]).max(axis=2), 0.0)
        worst = int(diff.max(axis=1).argmax())
        if diff[worst].max() > LINE_UP_TOLERANCE_PX:
            raise DataError(
                f"{gt_file} does not line up with {self.source.annotation}: validation person "
                f"{worst} differs by {diff[worst].max():.1f} px"
            )
        self.ground_truth_file = gt_file
        self.ground_truth = gt
        table.headboxes = gt.headboxes.astype(np.float32)
        return table

    def eval_reference(self) -> EvalReference:
        """The ground truth scored against: the attached ground-truth ``.mat`` when there is one.

        As HRNet and the official FPD code do, PCKh then uses the file's own joints and
        visibility (``pos_gt_src``, ``jnt_missing``) and head boxes, not the annotation file's
        copy of them (which may differ slightly, e.g. in which joints count as annotated). The
        annotations still give the crops and the training targets.
        """
        if self.ground_truth is not None:
            return self.ground_truth
        return super().eval_reference()

    def headbox_hint(self) -> str:
        if self.split != "val":
            return (
                f"the MPII {self.source.layout} {self.split} split has no head boxes; PCKh is "
                "computed on the validation split"
            )
        return (
            f"PCKh needs head boxes, which {self.source.annotation.name} does not have: put the "
            f"validation ground truth ({' or '.join(GROUND_TRUTH_FILES)}) in "
            f"{self.source.annotation.parent}"
        )
