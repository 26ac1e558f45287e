"""Pose datasets read from annotation files (MPII, LSP, COCO): the arrays a file loader
produces (:class:`AnnotationTable`) and the dataset over them (:class:`FilePoseDataset`). The
``.mat`` reader is :func:`fpdctl.utils.matfile.load_mat`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fpdctl.boxes import PIXEL_STD
from fpdctl.data.dataset import PoseDataset, Record, choose_reduction, image_flag_block, read_image
from fpdctl.errors import DataError
from fpdctl.metrics.reference import EvalReference
from fpdctl.skeleton import MPII, JointSet


@dataclass
class AnnotationTable:
    """Annotations of N persons in one split, as arrays (what the file loaders produce).

    Attributes:
        image_files: N image paths relative to the dataset's image folder.
        joints: float32 [N, J, 3], 0-based x, y and vis.
        centers: float32 [N, 2] person centres (0-based px).
        scales: float32 [N] person scales in units of 200 px.
        headboxes: float32 [N, 2, 2] or None.
    """

    image_files: list[str]
    joints: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    headboxes: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.image_files)
        self.joints = np.asarray(self.joints, np.float32)
        self.centers = np.asarray(self.centers, np.float32).reshape(n, 2)
        self.scales = np.asarray(self.scales, np.float32).reshape(n)
        if self.joints.ndim != 3 or self.joints.shape[0] != n or self.joints.shape[2] != 3:
            raise ValueError(f"joints must be [{n}, J, 3], got {self.joints.shape}")
        if self.headboxes is not None:
            self.headboxes = np.asarray(self.headboxes, np.float32).reshape(n, 2, 2)

    def __len__(self) -> int:
        return len(self.image_files)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "AnnotationTable":
        idx = np.asarray(indices, dtype=np.int64)
        return AnnotationTable(
            image_files=[self.image_files[i] for i in idx],
            joints=self.joints[idx],
            centers=self.centers[idx],
            scales=self.scales[idx],
            headboxes=None if self.headboxes is None else self.headboxes[idx],
        )


class FilePoseDataset(PoseDataset):
    """A dataset of image files described by an :class:`AnnotationTable`.

    Images are decoded at 1/2, 1/4 or 1/8 size when the crop would shrink them at least that
    much anyway (see :func:`choose_reduction`), which is what makes the loader fast on large
    photos.

    Args:
        table: the split's annotations.
        image_dir: folder the table's image paths are relative to.
        joint_set: joint set of ``table.joints``.
        metric: "pckh" or "pck".
        **kwargs: :class:`PoseDataset` options.
    """

    def __init__(
        self,
        table: AnnotationTable,
        image_dir: str | Path,
        *,
        joint_set: JointSet = MPII,
        metric: str = "pckh",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if table.joints.shape[1] != joint_set.num_joints:
            raise DataError(
                f"annotations have {table.joints.shape[1]} joints but the {joint_set.name} "
                f"joint set has {joint_set.num_joints}"
            )
        usable = np.isfinite(table.scales) & (table.scales > 0) & np.isfinite(table.centers).all(axis=1)
        if not usable.all():
            k = int(np.argmin(usable))
            raise DataError(
                f"person {k} ({table.image_files[k]}) has no usable box: centre "
                f"{table.centers[k].tolist()}, scale {float(table.scales[k])} (must be positive)"
            )
        self.table = table
        self.image_dir = Path(image_dir)
        self.joint_set = joint_set
        self.metric = metric
        self._image_flags = image_flag_block(len(table))

    def __len__(self) -> int:
        return len(self.table)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.table.image_files[index]

    def load_annotation(self, index: int) -> Record:
        t = self.table
        return Record(
            image=None,
            joints=t.joints[index].copy(),
            center=t.centers[index].copy(),
            scale=float(t.scales[index]),
            headbox=None if t.headboxes is None else t.headboxes[index].copy(),
            image_id=t.image_files[index],
        )

    def load_record(self, index: int) -> Record:
        record = self.load_annotation(index)
        record.image = read_image(self.image_path(index))
        return record

    def load_record_reduced(self, index: int, scale_factor: float) -> tuple[Record, int]:
        record = self.load_annotation(index)
        zoom = self.input_size / (record.scale * scale_factor * PIXEL_STD)
        reduction = choose_reduction(zoom)
        record.image = read_image(self.image_path(index), reduction)
        return record, reduction

    def eval_reference(self) -> EvalReference:
        t = self.table
        visible = (t.joints[:, :, 2] > 0) & np.isfinite(t.joints[:, :, :2]).all(axis=2)
        return self._make_reference(t.joints[:, :, :2].astype(np.float64), visible, t.headboxes)
