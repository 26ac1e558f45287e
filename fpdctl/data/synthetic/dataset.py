"""The synthetic dataset: Records and a PoseDataset generated from ``(seed, split, index)``.

A sample's layout and pixels come from two independent random streams of that triple
(:func:`fpdctl.data.synthetic.pose.sample_rng`), so ``load_annotation`` samples only the layout,
and any DataLoader worker produces the same sample as any other.

Two annotation layouts of the same figures and pixels (``LAYOUTS``): ``"mpii"`` (16 joints, head
boxes, PCKh; the default) and ``"coco"`` (17 keypoints, person boxes, OKS AP scored by pycocotools;
see :mod:`fpdctl.data.synthetic.coco`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fpdctl.data.dataset import PoseDataset, Record
from fpdctl.data.synthetic.pose import (
    DEFAULT_CONFIG,
    DEFAULT_LENGTHS,
    LAYOUT_STREAM,
    MIN_IMAGE_SIZE,
    SCENE_STREAM,
    SPLIT_STREAMS,
    Split,
    SyntheticConfig,
    SyntheticLayout,
    sample_layout,
    sample_rng,
)
from fpdctl.data.synthetic.render import render_layout
from fpdctl.errors import UsageError
from fpdctl.metrics.coco import COCOReference
from fpdctl.skeleton import COCO, MPII, JointSet

# Annotation layouts (``synthetic:layout=NAME``): the joint set each annotates the figures with.
LAYOUTS: dict[str, JointSet] = {MPII.name: MPII, COCO.name: COCO}


def check_sample_args(seed: int, split: str, image_size: int) -> None:
    """Raise UsageError unless a seed, split and image size can name a synthetic sample."""
    if split not in SPLIT_STREAMS:
        raise UsageError(f"split must be train or val, got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"synthetic seed must be a non-negative integer, got {seed!r}")
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, (int, np.integer))
        or image_size < MIN_IMAGE_SIZE
    ):
        raise UsageError(
            f"synthetic image size must be an integer of at least {MIN_IMAGE_SIZE}, got {image_size!r}"
        )


def check_layout(layout: str) -> JointSet:
    """The joint set of an annotation layout name; UsageError naming the valid ones."""
    if layout not in LAYOUTS:
        raise UsageError(f"synthetic layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return LAYOUTS[layout]


def synthetic_record(
    seed: int,
    split: str,
    index: int,
    image_size: int,
    config: SyntheticConfig = DEFAULT_CONFIG,
    *,
    render: bool = True,
    layout: str = MPII.name,
) -> Record:
    """Sample ``index`` of ``split`` for ``seed`` as a Record.

    Args:
        seed: dataset seed (non-negative).
        split: "train" or "val".
        index: sample index (non-negative).
        image_size: side of the square image, px.
        config: difficulty knobs.
        render: draw the image (uint8 [S, S, 3] BGR); False leaves ``image`` None and is ~10x faster.
        layout: "mpii" or "coco" (see ``LAYOUTS``).

    Returns:
        A Record with joints float32 [16, 3] (x, y, visibility), MPII order, and the head box; or,
        for the COCO layout, float32 [17, 3] (x, y, v) in COCO order, the crop of the person box
        and no head box.
    """
    check_sample_args(seed, split, image_size)
    check_layout(layout)
    if index < 0:
        raise IndexError(f"synthetic index must be non-negative, got {index}")
    figure = sample_layout(sample_rng(seed, split, index, LAYOUT_STREAM), image_size, config)
    image = None
    if render:
        image = render_layout(figure, sample_rng(seed, split, index, SCENE_STREAM), config)
    image_id = f"synthetic-{split}-{seed}-{index:06d}"
    if layout == COCO.name:
        from fpdctl.data.synthetic.coco import coco_keypoints, person_bbox, person_crop

        center, scale = person_crop(person_bbox(figure), image_size)
        keypoints = coco_keypoints(figure)
        keypoints[:, 2] = keypoints[:, 2] > 0  # a Record's vis is 1 or 0; COCO's file says 2
        # float32 like the COCO loader's table, so the exported folder reads back identically.
        return Record(image=image, joints=keypoints, center=center, scale=float(np.float32(scale)),
                      headbox=None, image_id=image_id)
    return Record(
        image=image,
        joints=figure.joints_with_visibility(),
        center=figure.center.copy(),
        scale=figure.scale,
        headbox=figure.headbox.copy(),
        image_id=image_id,
    )


class SyntheticPose(PoseDataset):
    """Procedural MPII-style persons, generated on the fly and deterministic from (seed, index).

    Args:
        split: "train" or "val"; the two draw from disjoint random streams.
        length: number of samples (default 20000 for train, 500 for val).
        seed: dataset seed (a non-negative integer).
        image_size: side of the rendered image, px (default: the input size).
        config: difficulty knobs.
        layout: annotations: "mpii" (16 joints, PCKh) or "coco" (17 keypoints, OKS AP).
        **kwargs: PoseDataset options (input_size, heatmap_size, sigma, augment, max_bad_fraction).
    """

    joint_set: JointSet = MPII
    metric = "pckh"

    def __init__(
        self,
        split: Split = "train",
        *,
        length: int | None = None,
        seed: int = 0,
        image_size: int | None = None,
        config: SyntheticConfig = DEFAULT_CONFIG,
        layout: str = MPII.name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.joint_set = check_layout(layout)
        # The attribute is not ``layout``: that is the method giving a sample's SyntheticLayout.
        self.annotation_layout = layout
        if layout == COCO.name:
            self.metric = "oks"
        if length is None:
            length = DEFAULT_LENGTHS.get(split, 0)
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise UsageError(f"synthetic length must be a positive integer, got {length!r}")
        if image_size is None:
            image_size = self.input_size
        check_sample_args(seed, split, image_size)
        if not isinstance(config, SyntheticConfig):
            raise UsageError(f"synthetic config must be a SyntheticConfig, got {config!r}")
        self.split = split
        self.length = length
        self.seed = seed
        self.image_size = image_size
        self.config = config

    def __len__(self) -> int:
        return self.length

    def _check_index(self, index: int) -> int:
        if not -self.length <= index < self.length:
            raise IndexError(f"synthetic index {index} out of range for {self.length} samples")
        return index % self.length

    def layout(self, index: int) -> SyntheticLayout:
        """The layout (pose, placement, occluders, visibility) of sample ``index``."""
        index = self._check_index(index)
        rng = sample_rng(self.seed, self.split, index, LAYOUT_STREAM)
        return sample_layout(rng, self.image_size, self.config)

    def load_annotation(self, index: int) -> Record:
        """The Record of sample ``index`` without its image (no rendering)."""
        index = self._check_index(index)
        return synthetic_record(self.seed, self.split, index, self.image_size, self.config, render=False,
                                layout=self.annotation_layout)

    def load_record(self, index: int) -> Record:
        """The Record of sample ``index`` with its rendered uint8 [S, S, 3] BGR image."""
        index = self._check_index(index)
        return synthetic_record(self.seed, self.split, index, self.image_size, self.config,
                                layout=self.annotation_layout)

    def coco_ground_truth(self) -> dict[str, Any]:
        """The split in COCO's layout as a ``person_keypoints_*.json`` payload: image ``k + 1``
        is sample ``k`` (file ``<record id>.jpg``), holding one person, annotation ``k + 1``."""
        from fpdctl.data.synthetic.coco import coco_annotation, coco_ground_truth, coco_keypoints

        images, annotations = [], []
        for index in range(self.length):
            figure = self.layout(index)
            image_id = index + 1
            images.append({"id": image_id, "file_name": f"synthetic-{self.split}-{self.seed}-{index:06d}.jpg",
                           "width": self.image_size, "height": self.image_size})
            annotations.append(coco_annotation(figure, coco_keypoints(figure), image_id))
        return coco_ground_truth(images, annotations, f"fpdctl synthetic persons, {self.split} split, seed {self.seed}")

    def eval_reference(self) -> Any:
        """PCKh's reference (MPII layout), or COCO's, scored by pycocotools against
        :meth:`coco_ground_truth` held in memory (COCO layout)."""
        if self.annotation_layout != COCO.name:
            return super().eval_reference()
        truth = self.coco_ground_truth()
        keypoints = np.array([a["keypoints"] for a in truth["annotations"]], np.float64).reshape(
            self.length, COCO.num_joints, 3)
        ids = np.arange(1, self.length + 1, dtype=np.int64)
        return COCOReference(
            joints=keypoints[:, :, :2], visible=keypoints[:, :, 2] > 0, headboxes=None,
            image_ids=ids, annotation_ids=ids.copy(),
            areas=np.array([a["area"] for a in truth["annotations"]], np.float64), ground_truth=truth,
        )

