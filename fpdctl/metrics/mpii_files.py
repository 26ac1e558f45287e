"""Prediction and ground-truth files of the MPII evaluation, read and written strictly.

This is the one place that reads and writes the MPII evaluation ``.mat`` layout; the MPII
dataset loader (``fpdctl.data.mpii``) and the synthetic MPII export use it from here.

Coordinate origins (they matter: a one-pixel shift of every joint moves PCKh):

- ``.mat`` files use MATLAB's 1-based pixel coordinates. That is how the official ground truth
  (``pos_gt_src``, ``headboxes_src``) is stored and how pytorch-pose and HRNet write their
  ``preds`` (HRNet adds 1.0 to its 0-based predictions before saving).
- ``.npy`` and ``.json`` files use 0-based pixel coordinates, fpdctl's own convention.

Everything returned here is 0-based, so a ``.mat`` and a ``.npy`` holding the same predictions
evaluate identically.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from fpdctl.errors import DataError, InputError, UsageError
from fpdctl.metrics.pckh import PCKH_THRESHOLD, PCKhResult, compute_pckh
from fpdctl.metrics.reference import EvalReference
from fpdctl.skeleton import MPII
from fpdctl.utils.io import atomic_save, ensure_parent_writable, require_file
from fpdctl.utils.matfile import load_mat

# Subtracted from MATLAB coordinates to reach 0-based pixels (and added back when writing).
MATLAB_ORIGIN = 1.0
PREDICTION_SUFFIXES: tuple[str, ...] = (".mat", ".npy", ".json")

# The official file's joint abbreviations (its ``dataset_joints``), in MPII channel order.
MPII_MAT_JOINT_NAMES: tuple[str, ...] = (
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
)
_GT_FIELDS = ("jnt_missing", "pos_gt_src", "headboxes_src")
_NUM_JOINTS = MPII.num_joints


def _shape_text(shape: tuple[int, ...]) -> str:
    return " x ".join(str(n) for n in shape) if shape else "a scalar"


def _numeric(value: Any, path: Path, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: '{name}' must be numeric, got {array.dtype}")
    return array.astype(np.float64)


def load_mpii_ground_truth(path: str | os.PathLike[str]) -> EvalReference:
    """Read the official MPII ground truth (``gt_valid.mat`` / ``detections_our_format.mat``).

    Fields: ``jnt_missing`` 16 x N (1 = not annotated), ``pos_gt_src`` 16 x 2 x N and
    ``headboxes_src`` 2 x 2 x N in 1-based pixels, and optionally ``dataset_joints`` 1 x 16.

    Returns:
        EvalReference (0-based pixels, MPII order, metric "pckh").

    Raises:
        InputError: the file does not exist.
        DataError: not a .mat, missing fields, wrong shapes or joint order.
    """
    file = require_file(path, "ground-truth file")
    data = load_mat(file, "ground-truth file")
    missing = [name for name in _GT_FIELDS if name not in data]
    if missing:
        raise DataError(
            f"{file} is not an MPII ground-truth .mat: missing {', '.join(missing)} (expected {', '.join(_GT_FIELDS)})"
        )
    jnt_missing = _numeric(data["jnt_missing"], file, "jnt_missing")
    pos_gt = _numeric(data["pos_gt_src"], file, "pos_gt_src")
    boxes = _numeric(data["headboxes_src"], file, "headboxes_src")
    if pos_gt.ndim != 3 or pos_gt.shape[:2] != (_NUM_JOINTS, 2):
        raise DataError(f"{file}: pos_gt_src must be 16 x 2 x N, got {_shape_text(pos_gt.shape)}")
    count = pos_gt.shape[2]
    if jnt_missing.shape != (_NUM_JOINTS, count):
        raise DataError(f"{file}: jnt_missing must be 16 x {count}, got {_shape_text(jnt_missing.shape)}")
    if boxes.shape != (2, 2, count):
        raise DataError(f"{file}: headboxes_src must be 2 x 2 x {count}, got {_shape_text(boxes.shape)}")
    if "dataset_joints" in data:
        names = tuple(
            str(np.asarray(n).ravel()[0]) if np.size(n) else ""
            for n in np.asarray(data["dataset_joints"], dtype=object).ravel()
        )
        if names != MPII_MAT_JOINT_NAMES:
            raise DataError(
                f"{file}: dataset_joints must list the MPII order {' '.join(MPII_MAT_JOINT_NAMES)}, "
                f"got {' '.join(names)}"
            )
    joints = pos_gt.transpose(2, 0, 1) - MATLAB_ORIGIN
    visible = jnt_missing.T == 0
    if not np.isfinite(joints[visible]).all():
        raise DataError(f"{file}: pos_gt_src has NaN or infinite coordinates for annotated joints")
    return EvalReference(
        joints=joints,
        visible=visible,
        headboxes=boxes.transpose(2, 0, 1) - MATLAB_ORIGIN,
        metric="pckh",
        joint_set="mpii",
    )


def write_mpii_ground_truth(path: str | os.PathLike[str], reference: EvalReference) -> Path:
    """Write ``reference`` as an MPII evaluation ground truth that :func:`load_mpii_ground_truth`
    (and HRNet's and pytorch-pose's evaluation) read back: ``dataset_joints``, ``jnt_missing``
    16 x N, ``pos_gt_src`` 16 x 2 x N and ``headboxes_src`` 2 x 2 x N in 1-based pixels.

    Not atomic: it is meant for a file inside a folder that is itself being built (the synthetic
    MPII export renames the whole folder into place).

    Args:
        path: the ``.mat`` file to write.
        reference: 16 MPII joints per person, with head boxes.

    Raises:
        DataError: not 16 joints, or no head boxes.
    """
    from scipy.io import savemat

    joints = np.asarray(reference.joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (_NUM_JOINTS, 2) or reference.headboxes is None:
        raise DataError(
            f"an MPII ground truth needs N x 16 x 2 joints and head boxes, got joints "
            f"{_shape_text(joints.shape)}{'' if reference.headboxes is not None else ' and no head boxes'}"
        )
    names = np.empty((1, _NUM_JOINTS), dtype=object)
    names[0, :] = [np.array([n]) for n in MPII_MAT_JOINT_NAMES]
    savemat(
        Path(path),
        {
            "dataset_joints": names,
            "jnt_missing": (~np.asarray(reference.visible, dtype=bool)).astype(np.uint8).T,
            "pos_gt_src": (joints + MATLAB_ORIGIN).transpose(1, 2, 0),
            "headboxes_src": (np.asarray(reference.headboxes, np.float64) + MATLAB_ORIGIN).transpose(1, 2, 0),
        },
    )
    return Path(path)


def _as_n16x2(array: np.ndarray, file: Path, name: str) -> np.ndarray:
    """Accept pytorch-pose's N x 16 x 2 or the official 16 x 2 x N layout."""
    if array.ndim == 3 and array.shape[1:] == (_NUM_JOINTS, 2):
        return array
    if array.ndim == 3 and array.shape[:2] == (_NUM_JOINTS, 2):
        return array.transpose(2, 0, 1)
    raise DataError(f"{file}: '{name}' must be N x 16 x 2 (or 16 x 2 x N), got {_shape_text(array.shape)}")


def _load_mat_predictions(file: Path) -> np.ndarray:
    data = load_mat(file, "predictions file")
    for name in ("preds", "pos_pred_src"):
        if name in data:
            array = _as_n16x2(_numeric(data[name], file, name), file, name)
            return array - MATLAB_ORIGIN
    raise DataError(
        f"{file} holds no predictions: expected a variable 'preds' (N x 16 x 2) or 'pos_pred_src' (16 x 2 x N)"
    )


def _load_npy_predictions(file: Path) -> np.ndarray:
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read predictions file {file}: not a .npy array ({reason})") from exc
    if not isinstance(array, np.ndarray):
        raise DataError(f"cannot read predictions file {file}: not a single .npy array")
    if array.ndim != 3 or array.shape[1:] != (_NUM_JOINTS, 2):
        raise DataError(f"{file}: predictions must be N x 16 x 2, got {_shape_text(array.shape)}")
    return _numeric(array, file, "predictions")


def _load_json_predictions(file: Path) -> np.ndarray:
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse JSON predictions {file}: {exc}") from exc
    if isinstance(payload, dict):
        if "preds" not in payload:
            raise DataError(f'{file}: a JSON object must hold the predictions under "preds"')
        payload = payload["preds"]
    layout = f"{file}: JSON predictions must be a list of N persons, each 16 [x, y] pairs"
    if not isinstance(payload, list):
        raise DataError(layout)
    for i, person in enumerate(payload):
        if not isinstance(person, list) or len(person) != _NUM_JOINTS:
            raise DataError(f"{layout} (person {i} is not a list of 16)")
        for j, point in enumerate(person):
            if (
                not isinstance(point, list)
                or len(point) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
            ):
                raise DataError(f"{layout} (person {i}, joint {j} is {json.dumps(point)})")
    if not payload:
        return np.zeros((0, _NUM_JOINTS, 2))
    return np.asarray(payload, dtype=np.float64)


def load_mpii_predictions(path: str | os.PathLike[str]) -> np.ndarray:
    """Read predicted MPII joints from ``.mat`` (1-based), ``.npy`` or ``.json`` (0-based).

    Formats:
        ``.mat``: variable ``preds`` N x 16 x 2 (pytorch-pose, HRNet) or 16 x 2 x N, or
        ``pos_pred_src`` 16 x 2 x N. ``.npy``: one float array N x 16 x 2. ``.json``: a list of
        N lists of 16 ``[x, y]``, or ``{"preds": that list}``.

    Returns:
        float64 [N, 16, 2] in 0-based pixels, MPII order (NaN is left for the metric to report).

    Raises:
        InputError: missing file or unsupported suffix.
        DataError: unreadable file or wrong layout.
    """
    file = require_file(path, "predictions file")
    suffix = file.suffix.lower()
    if suffix == ".mat":
        return _load_mat_predictions(file)
    if suffix == ".npy":
        return _load_npy_predictions(file)
    if suffix == ".json":
        return _load_json_predictions(file)
    raise InputError(
        f"unsupported predictions format '{file.suffix or file.name}': use {', '.join(PREDICTION_SUFFIXES)}"
    )


def check_prediction_output(path: str | os.PathLike[str]) -> Path:
    """Check, before any work, that predictions can be saved at ``path``.

    Raises:
        UsageError: the suffix is not .mat, .npy or .json.
        InputError: the folder cannot be created or written.
    """
    target = Path(path)
    if target.suffix.lower() not in PREDICTION_SUFFIXES:
        raise UsageError(
            f"cannot save predictions as '{target.suffix or target.name}': use {', '.join(PREDICTION_SUFFIXES)}"
        )
    return ensure_parent_writable(target)


def save_predictions(path: str | os.PathLike[str], coords: np.ndarray) -> Path:
    """Write predicted joints atomically, in the format given by the suffix.

    ``.mat`` gets ``preds`` N x J x 2 in 1-based pixels (pytorch-pose's layout, readable by its
    eval_PCKh and by the MPII toolkit); ``.npy`` gets the float64 array and ``.json``
    ``{"preds": [...]}``, both in 0-based pixels.

    Args:
        coords: [N, J, 2] 0-based pixel coordinates.

    Returns:
        The path written.

    Raises:
        UsageError: unsupported suffix. InputError: the folder cannot be written.
        DataError: wrong shape or non-finite coordinates.
    """
    target = check_prediction_output(path)
    array = np.asarray(coords, dtype=np.float64)
    if array.ndim != 3 or array.shape[2] != 2:
        raise DataError(f"predictions to save must be N x J x 2, got {_shape_text(array.shape)}")
    if not np.isfinite(array).all():
        raise DataError("refusing to save predictions with NaN or infinite coordinates")
    suffix = target.suffix.lower()

    def write(tmp: Path) -> None:
        if suffix == ".mat":
            from scipy.io import savemat

            with open(tmp, "wb") as handle:
                savemat(handle, {"preds": array + MATLAB_ORIGIN})
        elif suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, array)
        else:
            tmp.write_text(json.dumps({"preds": array.tolist()}), encoding="utf-8")

    atomic_save(target, write)
    return target


def evaluate_mpii_prediction_files(
    predictions: str | os.PathLike[str],
    ground_truth: str | os.PathLike[str],
    *,
    threshold: float = PCKH_THRESHOLD,
    inclusive: bool = True,
) -> PCKhResult:
    """MPII PCKh of a prediction file against the official ground-truth ``.mat``.

    Raises:
        InputError, DataError: see :func:`load_mpii_predictions`, :func:`load_mpii_ground_truth` and
            :func:`~fpdctl.metrics.pckh.compute_pckh`.
    """
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise UsageError(f"`threshold` must be a positive number, got {threshold}", params="threshold")
    coords = load_mpii_predictions(predictions)
    reference = load_mpii_ground_truth(ground_truth)
    return compute_pckh(coords, reference, threshold=threshold, inclusive=inclusive)
