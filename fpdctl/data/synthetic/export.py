"""Export synthetic persons as a dataset on disk: MPII's layout (HRNet / official FPD) or COCO's
(``annotations/person_keypoints_<split>2017.json`` and ``<split>2017/`` images)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from fpdctl.boxes import SCALE_MARGIN
from fpdctl.data.synthetic.dataset import SyntheticPose, check_sample_args, synthetic_record
from fpdctl.data.synthetic.pose import DEFAULT_CONFIG, NUM_JOINTS, Split, SyntheticConfig
from fpdctl.errors import InputError, RuntimeFailure, UsageError
from fpdctl.metrics.mpii_files import MATLAB_ORIGIN, write_mpii_ground_truth
from fpdctl.metrics.reference import EvalReference
from fpdctl.skeleton import COCO

JPEG_QUALITY = 95


@dataclass(frozen=True)
class SynthExportResult:
    """What :func:`export_mpii` wrote.

    Attributes:
        out_dir: the dataset folder (``images/``, ``annot/``).
        split: the synthetic split exported ("train", "val" or "both").
        count: persons (one per image), over every split written.
        image_size: image side, px.
        seed: dataset seed.
        annotation: ``annot/train.json`` or ``annot/valid.json``.
        ground_truth: ``annot/gt_valid.mat`` with the head boxes (val only), else None.
        visible_joints: joints with visibility 1, over all persons.
        annotations: every annotation file written (both of them for split "both").
        layout: "mpii" or "coco"; num_joints: joints per person (16 or 17).
        num_images: images written (``count`` per split; as many as persons unless crowds).
        detections: the simulated detector's boxes file, if one was asked for; num_detections:
            its boxes.
    """

    out_dir: Path
    split: str
    count: int
    image_size: int
    seed: int
    annotation: Path
    ground_truth: Path | None
    visible_joints: int
    annotations: tuple[Path, ...] = ()
    layout: str = "mpii"
    num_joints: int = NUM_JOINTS
    num_images: int = 0
    detections: Path | None = None
    num_detections: int = 0

    @property
    def total_joints(self) -> int:
        return self.count * self.num_joints


@contextmanager
def _staged_folder(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` that becomes ``out`` when the block ends without error.

    The folder appears complete or not at all: on any error the temporary is removed, and an
    OSError becomes one ``could not write OUT`` RuntimeFailure.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        os.rename(tmp, out)  # replaces an empty folder atomically on POSIX
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeFailure(f"could not write {out}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InputError(f"output path exists and is not a folder: {out_dir}")
        if any(out_dir.iterdir()):
            raise InputError(f"output folder is not empty: {out_dir}")
    from fpdctl.utils.io import check_folder_creatable

    check_folder_creatable(out_dir)  # a file in the path: one clear line, nothing created
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out_dir.parent}: {exc.strerror or exc}") from exc
    if not os.access(out_dir.parent, os.W_OK):
        raise InputError(f"output folder is not writable: {out_dir.parent}")


def export_mpii(
    out_dir: str | os.PathLike[str],
    count: int,
    *,
    image_size: int = 256,
    seed: int = 0,
    split: Split | Literal["both"] = "val",
    config: SyntheticConfig = DEFAULT_CONFIG,
) -> SynthExportResult:
    """Write ``count`` synthetic persons as an MPII dataset that ``--data mpii:DIR`` reads.

    Layout (HRNet / official FPD code): ``images/<id>.jpg``; ``annot/valid.json`` (or
    ``train.json``), a list of ``{image, center, scale, joints [16][2], joints_vis [16]}`` in
    MATLAB 1-based px with MPII's raw centre and scale (the loaders' centre shift and 1.25 margin
    undone, so reading it back gives the same Records); for val, ``annot/gt_valid.mat`` in the
    evaluation layout (``pos_gt_src``, ``jnt_missing``, ``headboxes_src``, ``dataset_joints``) for
    the head boxes. ``split="both"`` writes ``count`` persons of each split into the one folder
    (image names carry the split), which ``train`` and ``distill`` read as a whole dataset. The
    folder appears complete or not at all: it is written beside ``out_dir`` under a temporary
    name and renamed at the end.

    Raises:
        UsageError: count, image size, seed or split out of range.
        InputError: ``out_dir`` exists and is not an empty folder, or cannot be created.
        RuntimeFailure: writing failed (disk full, ...).
    """
    splits = _check_export_args(count, split, seed, image_size)
    out = Path(out_dir)
    _check_out_dir(out)

    with _staged_folder(out) as tmp:
        (tmp / "images").mkdir()
        (tmp / "annot").mkdir()
        written = [_write_split(tmp, out, one, count, image_size, seed, config) for one in splits]
    annotation, ground_truth, _ = written[-1]
    return SynthExportResult(
        out_dir=out,
        split=split,
        count=count * len(splits),
        image_size=image_size,
        seed=seed,
        annotation=out / "annot" / annotation.name,
        ground_truth=None if ground_truth is None else out / "annot" / ground_truth.name,
        visible_joints=sum(visible for _, _, visible in written),
        annotations=tuple(out / "annot" / a.name for a, _, _ in written),
    )


def _write_split(
    tmp: Path,
    out: Path,
    split: Split,
    count: int,
    image_size: int,
    seed: int,
    config: SyntheticConfig,
) -> tuple[Path, Path | None, int]:
    """One split's images and annotations into the folder being built: (annotation, gt, visible)."""
    from fpdctl.data.mpii import CENTER_SHIFT_Y, HRNET_JSON

    persons = []
    joints = np.zeros((count, NUM_JOINTS, 3), dtype=np.float32)
    headboxes = np.zeros((count, 2, 2), dtype=np.float32)
    for index in range(count):
        record = synthetic_record(seed, split, index, image_size, config)
        name = f"{record.image_id}.jpg"
        written = cv2.imwrite(str(tmp / "images" / name), record.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not written:
            raise RuntimeFailure(f"could not write {out / 'images' / name}")
        raw_scale = record.scale / SCALE_MARGIN
        center = record.center.astype(np.float64) + MATLAB_ORIGIN
        center[1] -= CENTER_SHIFT_Y * raw_scale
        persons.append(
            {
                "image": name,
                "center": center.tolist(),
                "scale": raw_scale,
                "joints": (record.joints[:, :2].astype(np.float64) + MATLAB_ORIGIN).tolist(),
                "joints_vis": record.joints[:, 2].astype(int).tolist(),
            }
        )
        joints[index] = record.joints
        headboxes[index] = record.headbox
    annotation = tmp / "annot" / HRNET_JSON[split]
    annotation.write_text(json.dumps(persons), encoding="utf-8")
    ground_truth = None
    if split == "val":
        reference = EvalReference(
            joints=np.float64(joints[:, :, :2]),
            visible=joints[:, :, 2] != 0,
            headboxes=np.float64(headboxes),
            metric="pckh",
        )
        ground_truth = write_mpii_ground_truth(tmp / "annot" / "gt_valid.mat", reference)
    return annotation, ground_truth, int(joints[:, :, 2].sum())


def _check_export_args(count: int, split: str, seed: int, image_size: int) -> tuple[Split, ...]:
    """The splits to write; UsageError for a bad count, split, seed or image size."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count <= 0:
        raise UsageError(f"`count` must be a positive integer, got {count!r}", params="count")
    if split not in ("train", "val", "both"):
        raise UsageError(f"`split` must be train, val or both, got '{split}'", params="split")
    splits: tuple[Split, ...] = ("train", "val") if split == "both" else (split,)  # type: ignore[assignment]
    for one in splits:
        check_sample_args(seed, one, image_size)
    return splits


def export_coco(
    out_dir: str | os.PathLike[str],
    count: int,
    *,
    image_size: int = 256,
    seed: int = 0,
    split: Split | Literal["both"] = "val",
    config: SyntheticConfig = DEFAULT_CONFIG,
    persons: int = 1,
    detections: str | os.PathLike[str] | None = None,
) -> SynthExportResult:
    """Write ``count`` synthetic persons as a COCO keypoints folder that ``--data coco:DIR`` reads.

    With ``persons`` > 1, ``count`` images of 1..``persons`` persons each (crowds,
    :mod:`fpdctl.data.synthetic.crowd`). ``detections``: also write a SIMULATED detector's boxes
    for the last split written (val with ``split="both"``) as a COCO detection-results JSON
    (:mod:`fpdctl.data.synthetic.simulated_detections`), for ``fpdctl eval --boxes``.

    Layout (the official release's): ``annotations/person_keypoints_<split>2017.json`` (images,
    one person annotation per image, the person category) and the images in ``<split>2017/``; the
    persons are those of ``synthetic:layout=coco`` with the same seed and split
    (:meth:`SyntheticPose.coco_ground_truth`, :mod:`fpdctl.data.synthetic.coco`). ``split="both"``
    writes both splits, ``count`` persons each. The folder appears complete or not at all.

    Raises:
        UsageError: count, image size, seed or split out of range.
        InputError: ``out_dir`` exists and is not an empty folder, or cannot be created.
        RuntimeFailure: writing failed (disk full, ...).
    """
    from fpdctl.data.coco_source import ANNOTATION_PATTERN, SPLIT_FOLDERS
    from fpdctl.data.synthetic.dataset import check_persons
    from fpdctl.data.synthetic.simulated_detections import simulate_detections

    splits = _check_export_args(count, split, seed, image_size)
    check_persons(persons, "coco")
    out = Path(out_dir)
    target = None
    if detections is not None:
        from fpdctl.utils.io import ensure_parent_writable

        target = Path(detections)
        if target.suffix.lower() != ".json":
            raise UsageError(
                f"`detections` is written as a COCO detection results .json file, got '{target.name}'",
                params="detections",
            )
        ensure_parent_writable(target)
    _check_out_dir(out)
    annotations, visible, total, boxes = [], 0, 0, []
    with _staged_folder(out) as tmp:
        (tmp / "annotations").mkdir()
        for one in splits:
            dataset = SyntheticPose(
                one, length=int(count), seed=seed, image_size=image_size, config=config, layout="coco", persons=persons
            )
            truth = dataset.coco_ground_truth()
            folder = tmp / SPLIT_FOLDERS[one]
            folder.mkdir()
            for index, image in enumerate(truth["images"]):
                if not cv2.imwrite(
                    str(folder / image["file_name"]), dataset.image(index), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
                ):
                    raise RuntimeFailure(f"could not write {out / folder.name / image['file_name']}")
            name = ANNOTATION_PATTERN.format(SPLIT_FOLDERS[one])
            (tmp / name).write_text(json.dumps(truth), encoding="utf-8")
            annotations.append(out / name)
            visible += sum(a["num_keypoints"] for a in truth["annotations"])
            total += len(truth["annotations"])
            boxes = simulate_detections(truth, seed, one) if target is not None else []
    if target is not None:  # after the folder is in place: the file may be inside it
        from fpdctl.utils.io import atomic_write_text

        atomic_write_text(target, json.dumps(boxes))
    return SynthExportResult(
        out_dir=out,
        split=split,
        count=total,
        image_size=image_size,
        seed=seed,
        annotation=annotations[-1],
        ground_truth=None,
        visible_joints=visible,
        annotations=tuple(annotations),
        layout="coco",
        num_joints=COCO.num_joints,
        num_images=count * len(splits),
        detections=target,
        num_detections=len(boxes),
    )
