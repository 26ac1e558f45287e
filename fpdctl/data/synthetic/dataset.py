"""The synthetic dataset: Records and a PoseDataset generated from ``(seed, split, index)``.

A sample's layout and pixels come from two independent random streams of that triple
(:func:`fpdctl.data.synthetic.pose.sample_rng`), so ``load_annotation`` samples only the layout,
and any DataLoader worker produces the same sample as any other.
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
from fpdctl.skeleton import MPII, JointSet


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


def synthetic_record(
    seed: int,
    split: str,
    index: int,
    image_size: int,
    config: SyntheticConfig = DEFAULT_CONFIG,
    *,
    render: bool = True,
) -> Record:
    """Sample ``index`` of ``split`` for ``seed`` as a Record.

    Args:
        seed: dataset seed (non-negative).
        split: "train" or "val".
        index: sample index (non-negative).
        image_size: side of the square image, px.
        config: difficulty knobs.
        render: draw the image (uint8 [S, S, 3] BGR); False leaves ``image`` None and is ~10x faster.

    Returns:
        A Record with joints float32 [16, 3] (x, y, visibility), MPII order.
    """
    check_sample_args(seed, split, image_size)
    if index < 0:
        raise IndexError(f"synthetic index must be non-negative, got {index}")
    layout = sample_layout(sample_rng(seed, split, index, LAYOUT_STREAM), image_size, config)
    image = None
    if render:
        image = render_layout(layout, sample_rng(seed, split, index, SCENE_STREAM), config)
    return Record(
        image=image,
        joints=layout.joints_with_visibility(),
        center=layout.center.copy(),
        scale=layout.scale,
        headbox=layout.headbox.copy(),
        image_id=f"synthetic-{split}-{seed}-{index:06d}",
    )


class SyntheticPose(PoseDataset):
    """Procedural MPII-style persons, generated on the fly and deterministic from (seed, index).

    Args:
        split: "train" or "val"; the two draw from disjoint random streams.
        length: number of samples (default 20000 for train, 500 for val).
        seed: dataset seed (a non-negative integer).
        image_size: side of the rendered image, px (default: the input size).
        config: difficulty knobs.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        return synthetic_record(self.seed, self.split, index, self.image_size, self.config, render=False)

    def load_record(self, index: int) -> Record:
        """The Record of sample ``index`` with its rendered uint8 [S, S, 3] BGR image."""
        index = self._check_index(index)
        return synthetic_record(self.seed, self.split, index, self.image_size, self.config)

