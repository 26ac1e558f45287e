"""The synthetic dataset: Records and a PoseDataset generated from ``(seed, split, index)``.

A sample's layout and pixels come from two independent random streams of that triple
(:func:`fpdctl.data.synthetic.pose.sample_rng`), so ``load_annotation`` samples only the layout,
and any DataLoader worker produces the same sample as any other.

Two annotation layouts of the same figures and pixels (``LAYOUTS``): ``"mpii"`` (16 joints, head
boxes, PCKh; the default) and ``"coco"`` (17 keypoints, person boxes, OKS AP scored by pycocotools;
see :mod:`fpdctl.data.synthetic.coco`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from fpdctl.data.dataset import PoseDataset, Record
from fpdctl.data.synthetic.label_noise import (
    DEFAULT_LABEL_NOISE,
    LABEL_NOISE_STREAM,
    label_noise_model,
    noisy_joints,
)
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
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < MIN_IMAGE_SIZE:
        raise UsageError(f"synthetic image size must be an integer of at least {MIN_IMAGE_SIZE}, got {image_size!r}")


def check_persons(persons: int, layout: str) -> None:
    """Raise UsageError unless ``persons`` (the most persons per image) fits the layout."""
    from fpdctl.data.synthetic.crowd import MAX_PERSONS

    if isinstance(persons, bool) or not isinstance(persons, (int, np.integer)) or not 1 <= persons <= MAX_PERSONS:
        raise UsageError(f"synthetic persons must be an integer from 1 to {MAX_PERSONS}, got {persons!r}")
    if persons > 1 and layout != COCO.name:
        raise UsageError(f"synthetic persons={persons} draws crowds, annotated in COCO's layout only: add layout=coco")


@functools.lru_cache(maxsize=4)
def _crowd_image(
    seed: int, split: str, image: int, persons: int, image_size: int, config: SyntheticConfig
) -> np.ndarray:
    """The pixels of a crowd image (the last few kept: its persons are consecutive samples)."""
    from fpdctl.data.synthetic.crowd import crowd_layouts
    from fpdctl.data.synthetic.render import render_scene

    layouts = crowd_layouts(seed, split, image, persons, image_size, config)
    return render_scene(layouts, sample_rng(seed, split, image, SCENE_STREAM), config)


@functools.lru_cache(maxsize=64)
def _crowd_keypoints_cached(
    seed: int, split: str, image: int, persons: int, image_size: int, config: SyntheticConfig
) -> tuple[np.ndarray, ...]:
    from fpdctl.data.synthetic.crowd import crowd_keypoints, crowd_layouts

    return tuple(crowd_keypoints(crowd_layouts(seed, split, image, persons, image_size, config)))


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
        return Record(
            image=image,
            joints=keypoints,
            center=center,
            scale=float(np.float32(scale)),
            headbox=None,
            image_id=image_id,
        )
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
        persons: the most persons in one image (COCO layout only): 1, the default, is one person
            per image; above 1, ``length`` images of 1..``persons`` persons each, every person a
            sample of its own (:mod:`fpdctl.data.synthetic.crowd`).
        label_noise: annotator-like noise on the training split's labels (MPII layout, one
            person per image): "none" (exact labels, the default), "coco" (COCO's measured
            per-keypoint spread, 5 % of limbs side-swapped, half the self-occluded joints
            unlabelled) or "coco2" (twice the spread and swaps); see
            :mod:`fpdctl.data.synthetic.label_noise`. Seeded per sample; the val split's labels
            stay exact whatever it says.
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
        persons: int = 1,
        label_noise: str = DEFAULT_LABEL_NOISE,
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
        check_persons(persons, layout)
        noise = label_noise_model(label_noise)
        if noise is not None and (layout != MPII.name or persons != 1):
            raise UsageError("synthetic label_noise applies to the mpii layout with one person per image")
        self.label_noise = label_noise
        # Validation labels stay exact: the noise is the training annotations'.
        self._noise = noise if split == "train" else None
        self.split = split
        self.length = length
        self.seed = seed
        self.image_size = image_size
        self.config = config
        self.persons = persons
        # Crowds: the first sample of each image (a cumulative count), so sample -> (image, person).
        self._first = np.arange(length + 1)
        if persons > 1:
            from fpdctl.data.synthetic.crowd import crowd_size

            sizes = [crowd_size(seed, split, k, persons) for k in range(length)]
            self._first = np.concatenate([[0], np.cumsum(sizes)])

    def __len__(self) -> int:
        return int(self._first[-1])

    @property
    def num_images(self) -> int:
        """Images of the split (``length``); a crowd split has more samples (persons) than that."""
        return self.length

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"synthetic index {index} out of range for {n} samples")
        return index % n

    def _where(self, index: int) -> tuple[int, int]:
        """(image, person in the image) of sample ``index`` (checked)."""
        index = self._check_index(index)
        image = int(np.searchsorted(self._first, index, side="right")) - 1
        return image, index - int(self._first[image])

    def _crowd(self, image: int) -> tuple[SyntheticLayout, ...]:
        from fpdctl.data.synthetic.crowd import crowd_layouts

        return crowd_layouts(self.seed, self.split, image, self.persons, self.image_size, self.config)

    def layout(self, index: int) -> SyntheticLayout:
        """The layout (pose, placement, occluders, visibility) of sample ``index``."""
        if self.persons > 1:
            image, person = self._where(index)
            return self._crowd(image)[person]
        index = self._check_index(index)
        rng = sample_rng(self.seed, self.split, index, LAYOUT_STREAM)
        return sample_layout(rng, self.image_size, self.config)

    def load_annotation(self, index: int) -> Record:
        """The Record of sample ``index`` without its image (no rendering)."""
        if self.persons > 1:
            return self._crowd_record(index, render=False)
        index = self._check_index(index)
        record = synthetic_record(
            self.seed, self.split, index, self.image_size, self.config, render=False, layout=self.annotation_layout
        )
        return self._with_noise(index, record)

    def load_record(self, index: int) -> Record:
        """The Record of sample ``index`` with its rendered uint8 [S, S, 3] BGR image."""
        if self.persons > 1:
            return self._crowd_record(index, render=True)
        index = self._check_index(index)
        record = synthetic_record(
            self.seed, self.split, index, self.image_size, self.config, layout=self.annotation_layout
        )
        return self._with_noise(index, record)

    def _with_noise(self, index: int, record: Record) -> Record:
        """``record`` with this split's label noise (itself when there is none)."""
        if self._noise is None:
            return record
        rng = sample_rng(self.seed, self.split, index, LABEL_NOISE_STREAM)
        joints = noisy_joints(self.layout(index), record.joints, self._noise, rng)
        return dataclasses.replace(record, joints=joints)

    def image(self, image: int) -> np.ndarray:
        """Image ``image`` of the split (uint8 [S, S, 3] BGR), every person of a crowd drawn."""
        if not 0 <= image < self.length:
            raise IndexError(f"synthetic image {image} out of range for {self.length} images")
        if self.persons == 1:
            return self.load_record(image).image
        return _crowd_image(self.seed, self.split, image, self.persons, self.image_size, self.config).copy()

    def _crowd_record(self, index: int, render: bool) -> Record:
        from fpdctl.data.synthetic.coco import person_bbox, person_crop

        image, person = self._where(index)
        layouts = self._crowd(image)
        keypoints = _crowd_keypoints_cached(self.seed, self.split, image, self.persons, self.image_size, self.config)[
            person
        ].copy()
        keypoints[:, 2] = keypoints[:, 2] > 0
        center, scale = person_crop(person_bbox(layouts[person]), self.image_size)
        pixels = self.image(image) if render else None
        return Record(
            image=pixels,
            joints=keypoints,
            center=center,
            scale=float(np.float32(scale)),
            headbox=None,
            image_id=f"synthetic-{self.split}-{self.seed}-{image:06d}",
        )

    def coco_ground_truth(self) -> dict[str, Any]:
        """The split in COCO's layout as a ``person_keypoints_*.json`` payload: image ``k + 1``
        is image ``k`` of the split (file ``<record id>.jpg``); annotation ``n + 1`` is sample
        ``n`` (one person per image by default, so then the ids are the same)."""
        from fpdctl.data.synthetic.coco import coco_annotation, coco_ground_truth, coco_keypoints

        images, annotations = [], []
        for index in range(self.length):
            image_id = index + 1
            images.append(
                {
                    "id": image_id,
                    "file_name": f"synthetic-{self.split}-{self.seed}-{index:06d}.jpg",
                    "width": self.image_size,
                    "height": self.image_size,
                }
            )
            if self.persons == 1:
                figure = self.layout(index)
                annotations.append(coco_annotation(figure, coco_keypoints(figure), image_id))
                continue
            crowd = _crowd_keypoints_cached(self.seed, self.split, index, self.persons, self.image_size, self.config)
            for figure, keypoints in zip(self._crowd(index), crowd):
                annotation = coco_annotation(figure, keypoints, image_id)
                annotation["id"] = len(annotations) + 1
                annotations.append(annotation)
        what = "persons" if self.persons == 1 else f"crowds of up to {self.persons} persons"
        return coco_ground_truth(images, annotations, f"fpdctl synthetic {what}, {self.split} split, seed {self.seed}")

    def eval_reference(self) -> Any:
        """PCKh's reference (MPII layout), or COCO's, scored by pycocotools against
        :meth:`coco_ground_truth` held in memory (COCO layout)."""
        if self.annotation_layout != COCO.name:
            return super().eval_reference()
        truth = self.coco_ground_truth()
        n = len(self)
        keypoints = np.array([a["keypoints"] for a in truth["annotations"]], np.float64).reshape(n, COCO.num_joints, 3)
        return COCOReference(
            joints=keypoints[:, :, :2],
            visible=keypoints[:, :, 2] > 0,
            headboxes=None,
            image_ids=np.array([a["image_id"] for a in truth["annotations"]], np.int64),
            annotation_ids=np.arange(1, n + 1, dtype=np.int64),
            areas=np.array([a["area"] for a in truth["annotations"]], np.float64),
            ground_truth=truth,
        )
