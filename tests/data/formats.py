"""Writers for tiny datasets in the real on-disk formats (MPII release .mat, pytorch-pose and HRNet
JSON, the evaluation-layout ground truth, LSP / LSPET joints.mat) and small JPEGs.

The files are what the real tools produce: MATLAB struct arrays written by scipy.io.savemat, JSON
lists of person dicts, and JPEG images decoded by OpenCV.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.io import savemat


@dataclass
class Person:
    """One annotated person, in MATLAB 1-based coordinates as the files store them."""

    joints: dict[int, tuple[float, float, Any]]  # id -> (x, y, is_visible as stored)
    objpos: tuple[float, float] | None
    scale: float | None
    headbox: tuple[float, float, float, float]  # x1, y1, x2, y2


@dataclass
class Image:
    name: str
    train: bool
    persons: list[Person | None] = field(default_factory=list)  # None: an annorect without annopoints


def write_jpeg(path: Path, width: int, height: int, seed: int = 0, marks: list[tuple[int, int]] = ()) -> None:
    """A smooth random-colour JPEG with optional white 5x5 squares centred at ``marks``."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(height // 16, 2), max(width // 16, 2), 3), dtype=np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    for x, y in marks:
        image[y - 2 : y + 3, x - 2 : x + 3] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])


def _struct_array(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> np.ndarray:
    """A 1 x N MATLAB struct array (numpy structured array of objects)."""
    out = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for k, row in enumerate(rows):
        for f in fields:
            out[0, k][f] = row.get(f, np.zeros((0, 0)))
    return out


def write_release_mat(path: Path, images: list[Image]) -> None:
    """An ``mpii_human_pose_v1_u12_1.mat`` with the official struct nesting."""
    annolist_rows = []
    for image in images:
        rects = []
        for person in image.persons:
            if person is None:  # a person box without joints, as on test images
                rects.append({"x1": 1.0, "y1": 1.0, "x2": 10.0, "y2": 10.0})
                continue
            points = [
                {"id": float(j), "x": float(x), "y": float(y), "is_visible": vis}
                for j, (x, y, vis) in sorted(person.joints.items())
            ]
            x1, y1, x2, y2 = person.headbox
            rects.append(
                {
                    "x1": float(x1),
                    "y1": float(y1),
                    "x2": float(x2),
                    "y2": float(y2),
                    "annopoints": {"point": _struct_array(points, ("id", "x", "y", "is_visible"))},
                    "scale": np.zeros((0, 0)) if person.scale is None else float(person.scale),
                    "objpos": np.zeros((0, 0))
                    if person.objpos is None
                    else {"x": float(person.objpos[0]), "y": float(person.objpos[1])},
                }
            )
        annorect = (
            _struct_array(rects, ("x1", "y1", "x2", "y2", "annopoints", "scale", "objpos"))
            if rects
            else np.zeros((0, 0))
        )
        annolist_rows.append(
            {
                "image": {"name": image.name},
                "annorect": annorect,
                "frame_sec": np.zeros((0, 0)),
                "vididx": np.zeros((0, 0)),
            }
        )
    release = {
        "annolist": _struct_array(annolist_rows, ("image", "annorect", "frame_sec", "vididx")),
        "img_train": np.array([[int(im.train) for im in images]], dtype=np.uint8),
        "single_person": np.empty((len(images), 1), dtype=object),
        "act": _struct_array(
            [{"cat_name": "", "act_name": "", "act_id": -1.0} for _ in images], ("cat_name", "act_name", "act_id")
        ),
        "video_list": np.array([["dummy"]], dtype=object),
    }
    for k in range(len(images)):
        release["single_person"][k, 0] = np.array([[1.0]])
    savemat(str(path), {"RELEASE": release})


def joints_array(person: Person) -> tuple[np.ndarray, np.ndarray]:
    """(xy [16, 2] 1-based with zeros where unannotated, annotated [16] bool)."""
    xy = np.zeros((16, 2))
    annotated = np.zeros(16, bool)
    for j, (x, y, _vis) in person.joints.items():
        xy[j] = (x, y)
        annotated[j] = True
    return xy, annotated


def write_ground_truth(path: Path, persons: list[Person]) -> None:
    """The evaluation layout (Tompson / HRNet gt_valid.mat), 1-based like the real files."""
    pos = np.zeros((16, 2, len(persons)))
    missing = np.ones((16, len(persons)), dtype=np.uint8)
    boxes = np.zeros((2, 2, len(persons)))
    for k, person in enumerate(persons):
        xy, annotated = joints_array(person)
        pos[:, :, k] = xy
        missing[:, k] = ~annotated
        boxes[:, :, k] = np.array(person.headbox).reshape(2, 2)
    names = np.array(
        [
            [
                "rank",
                "rkne",
                "rhip",
                "lhip",
                "lkne",
                "lank",
                "pelv",
                "thor",
                "neck",
                "head",
                "rwri",
                "relb",
                "rsho",
                "lsho",
                "lelb",
                "lwri",
            ]
        ],
        dtype=object,
    )
    savemat(str(path), {"dataset_joints": names, "pos_gt_src": pos, "jnt_missing": missing, "headboxes_src": boxes})


def _is_visible(vis: Any) -> float:
    """genJSON.m's rule: 0 or '0' is not visible, anything else (empty included) is."""
    if isinstance(vis, np.ndarray):
        return 1.0
    return 0.0 if vis in (0, "0") else 1.0


def pytorch_pose_entry(name: str, person: Person, is_validation: bool) -> dict[str, Any]:
    joint_self = [[0.0, 0.0, 0.0] for _ in range(16)]
    for j, (x, y, vis) in person.joints.items():
        joint_self[j] = [x, y, _is_visible(vis)]
    return {
        "dataset": "MPI",
        "isValidation": float(is_validation),
        "img_paths": name,
        "img_width": 320.0,
        "img_height": 240.0,
        "objpos": list(person.objpos),
        "joint_self": joint_self,
        "scale_provided": person.scale,
        "joint_others": [],
        "scale_provided_other": [],
        "objpos_other": [],
        "annolist_index": 1.0,
        "people_index": 1.0,
        "numOtherPeople": 0.0,
    }


def hrnet_entry(name: str, person: Person) -> dict[str, Any]:
    xy, annotated = joints_array(person)
    joints = np.where(annotated[:, None], xy, -1.0)
    return {
        "image": name,
        "center": list(person.objpos),
        "scale": person.scale,
        "joints": joints.tolist(),
        "joints_vis": annotated.astype(int).tolist(),
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def write_lsp_mat(path: Path, joints: np.ndarray, layout: str) -> None:
    """``joints`` [N, 14, 3] with the third value as the file stores it; layout "lsp" or "lspet"."""
    arr = joints.transpose(2, 1, 0) if layout == "lsp" else joints.transpose(1, 2, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"joints": arr})


def write_hrnet_mpii(
    root: Path, *, corrupt: str | None = None, ground_truth: bool = True, train: int = 8, val: int = 4
) -> Path:
    """A tiny MPII folder in the HRNet layout: ``train`` persons on train0.jpg..., ``val`` on
    val0.jpg... (160 x 140 px), annot/{train,valid}.json and annot/gt_valid.mat.

    Args:
        corrupt: an image name to overwrite with bytes no decoder reads.
        ground_truth: write annot/gt_valid.mat (PCKh needs its head boxes).
    """
    rng = np.random.default_rng(0)

    def person() -> Person:
        joints = {j: (float(rng.integers(40, 120)), float(rng.integers(30, 110)), 1) for j in range(16)}
        return Person(joints=joints, objpos=(80.0, 70.0), scale=0.5, headbox=(60.0, 20.0, 90.0, 50.0))

    train_persons = [(f"train{k}.jpg", person()) for k in range(train)]
    val_persons = [(f"val{k}.jpg", person()) for k in range(val)]
    write_json(root / "annot" / "train.json", [hrnet_entry(n, p) for n, p in train_persons])
    write_json(root / "annot" / "valid.json", [hrnet_entry(n, p) for n, p in val_persons])
    if ground_truth:
        write_ground_truth(root / "annot" / "gt_valid.mat", [p for _, p in val_persons])
    for k, (name, _) in enumerate(train_persons + val_persons):
        write_jpeg(root / "images" / name, 160, 140, seed=k)
    if corrupt:
        (root / "images" / corrupt).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg" * 4)
    return root
