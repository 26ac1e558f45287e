"""The dataset contract every pose data source follows, and the shared sample pipeline.

A data source (MPII, LSP, synthetic) only says how to get one person as a :class:`Record`;
:class:`PoseDataset` turns Records into training / evaluation samples the same way for all of
them: one ``cv2.warpAffine`` crop, the same affine applied to the joints, augmentation, and
Gaussian targets in the heatmap channels of the source's joint set
(:attr:`PoseDataset.channel_joint_set`: MPII's 16 for MPII and LSP, COCO's 17 for COCO).

Bad images: a source raises :class:`UnreadableImage` for an image that cannot be decoded. The
sample then becomes a mean-grey image (all zeros after normalisation) with every target weight 0,
so it teaches nothing and keeps its index (evaluation stays aligned with the ground truth). Bad
images are counted in :attr:`PoseDataset.bad_images` (shared across DataLoader workers; a file data
source counts each sample once, however often it is read); once more
than :data:`BAD_IMAGE_GRACE` images are bad *and* they exceed ``max_bad_fraction`` of the images
seen, the next bad image raises :class:`~fpdctl.errors.DataError`. The sample's
``meta["image_error"]`` says why its image could not be read, so that evaluation can refuse to
score it (the protocol scores every person) and training can name what it skipped.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from fpdctl.codec import HeatmapCodec
from fpdctl.codec import heatmap_size as heatmap_side
from fpdctl.data.transforms import (
    Augmentation,
    AugmentConfig,
    compose_affine,
    crop_affine,
    hflip_affine,
    normalize_image,
    sample_augmentation,
    transform_points,
)
from fpdctl.errors import DataError
from fpdctl.metrics.reference import EvalReference
from fpdctl.models.spec import DEFAULT_INPUT_SIZE
from fpdctl.skeleton import MPII, JointSet, channel_joint_set, to_channel_order

# The first few bad images never stop a run, whatever the fraction: a shuffled epoch can meet a
# corrupt file among its first samples, where any fraction would look huge.
BAD_IMAGE_GRACE: int = 3

# Per-process counter slots (main process + DataLoader workers, modulo this many).
_COUNTER_SLOTS: int = 64

# Decode-time reductions cv2 offers for JPEG (libjpeg DCT scaling); tried largest first.
_REDUCTIONS: tuple[int, ...] = (8, 4, 2)


# Datasets share one shared-memory tensor (one file descriptor per process, not one per dataset);
# each takes the next block, reused after this many datasets.
_COUNTER_BLOCKS: int = 1024
_counter_pool: torch.Tensor | None = None
_counter_next = itertools.count()


def _counter_block() -> torch.Tensor:
    """A zeroed int64 [_COUNTER_SLOTS, 2] view into the shared counter pool."""
    global _counter_pool
    if _counter_pool is None:
        _counter_pool = torch.zeros(_COUNTER_BLOCKS, _COUNTER_SLOTS, 2, dtype=torch.int64).share_memory_()
    block = _counter_pool[next(_counter_next) % _COUNTER_BLOCKS]
    block.zero_()
    return block


# Which samples' images were already counted: one byte per sample (bit 0 seen, bit 1 bad), so a
# sample read again (a later epoch, or an --unlabeled set smaller than the run) counts once. The
# bytes come from one shared pool (one file descriptor, as the counters), handed out in turn and
# reused after it wraps; a dataset larger than the pool counts reads instead.
_FLAG_POOL_BYTES: int = 1 << 22
_flag_pool: torch.Tensor | None = None
_flag_next: int = 0
_SEEN, _BAD = 1, 2


def image_flag_block(length: int) -> torch.Tensor | None:
    """A zeroed uint8 [length] view into the shared flag pool (None when it does not fit)."""
    global _flag_pool, _flag_next
    if length <= 0 or length > _FLAG_POOL_BYTES:
        return None
    if _flag_pool is None:
        _flag_pool = torch.zeros(_FLAG_POOL_BYTES, dtype=torch.uint8).share_memory_()
    if _flag_next + length > _FLAG_POOL_BYTES:
        _flag_next = 0
    block = _flag_pool[_flag_next : _flag_next + length]
    _flag_next += length
    block.zero_()
    return block


class UnreadableImage(DataError):
    """An image file that is missing, empty or cannot be decoded."""


@dataclass
class Record:
    """One annotated person.

    Attributes:
        image: uint8 [H, W, 3] BGR (OpenCV order); None when only the annotation was loaded.
        joints: float32 [J, 3]: x, y (0-based px in ``image``), vis (1 annotated, 0 not).
        center: float32 [2], person centre in image px.
        scale: person size in units of 200 px (MPII convention).
        headbox: float32 [2, 2] ((x1, y1), (x2, y2)) or None.
        image_id: file name or synthetic id, for reports.
    """

    image: np.ndarray | None
    joints: np.ndarray
    center: np.ndarray
    scale: float
    headbox: np.ndarray | None
    image_id: str = ""


def read_image(path: str | Path, reduction: int = 1) -> np.ndarray:
    """Decode an image file as uint8 BGR [H, W, 3], optionally at 1/2, 1/4 or 1/8 size.

    Reduced decoding uses libjpeg's DCT scaling (``cv2.IMREAD_REDUCED_COLOR_*``), several times
    faster than a full decode for JPEGs. Reduced pixel ``i`` covers original pixels
    ``[r*i, r*i + r - 1]`` (see :func:`reduction_affine`).

    Raises:
        UnreadableImage: the file is missing or cannot be decoded.
    """
    import cv2

    flags = {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    }
    if reduction not in flags:
        raise ValueError(f"reduction must be 1, 2, 4 or 8, got {reduction}")
    path = Path(path)
    if not path.is_file():
        raise UnreadableImage(f"image not found: {path}")
    image = cv2.imread(str(path), flags[reduction])
    if image is None or image.size == 0:
        raise UnreadableImage(f"cannot decode image: {path}")
    return image


def reduction_affine(reduction: int) -> np.ndarray:
    """Affine from a 1/``reduction`` decoded image's px to the full image's px; float32 [2, 3].

    A reduced pixel ``i`` averages full pixels ``r*i .. r*i + r - 1``, so its centre is at
    ``r * (i + 0.5) - 0.5`` in full-image px.
    """
    r = float(reduction)
    offset = (r - 1.0) / 2.0
    return np.array([[r, 0.0, offset], [0.0, r, offset]], dtype=np.float32)


def choose_reduction(zoom: float) -> int:
    """Largest decode reduction that keeps at least one source px per output px.

    Args:
        zoom: output px per original image px of the crop (``input_size / (scale * 200)``).
    """
    for r in _REDUCTIONS:
        if r * zoom <= 1.0:
            return r
    return 1


class PoseDataset(Dataset):
    """Base class of every pose dataset: Records in, network samples out.

    Subclasses implement ``__len__`` and :meth:`load_record` (and may override
    :meth:`load_annotation` to skip image decoding, and :meth:`load_record_reduced` to decode at
    reduced size).

    Args:
        input_size: network input side in px.
        heatmap_size: heatmap side in px (default ``input_size // 4``).
        sigma: Gaussian sigma in heatmap px.
        augment: training augmentation, or None for none (evaluation).
        max_bad_fraction: the largest tolerated fraction of undecodable images.

    Attributes:
        joint_set: the joint set of the Records (MPII, LSP or COCO).
        metric: "pckh", "pck" or "oks" (COCO AP).
    """

    joint_set: JointSet = MPII
    metric: str = "pckh"

    def __init__(
        self,
        *,
        input_size: int = DEFAULT_INPUT_SIZE,
        heatmap_size: int | None = None,
        sigma: float = 2.0,
        augment: AugmentConfig | None = None,
        max_bad_fraction: float = 0.01,
    ) -> None:
        if input_size <= 0:
            raise ValueError(f"input_size must be positive, got {input_size}")
        self.input_size = int(input_size)
        self.heatmap_size = int(heatmap_size) if heatmap_size is not None else heatmap_side(self.input_size)
        self.sigma = float(sigma)
        self.codec = HeatmapCodec(self.input_size, self.heatmap_size, self.sigma)
        self.augment = augment
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
        self.max_bad_fraction = float(max_bad_fraction)
        # [slot, (seen, bad)] in shared memory so DataLoader workers' counts reach the parent;
        # one slot per process avoids lost updates between workers.
        self._image_counts = _counter_block()
        # Per-sample flags (see image_flag_block), set by data sources whose images can be unreadable.
        self._image_flags: torch.Tensor | None = None

    @property
    def channel_joint_set(self) -> JointSet:
        """The joint set of the heatmap channels (targets, and the model trained on them)."""
        return channel_joint_set(self.joint_set)

    # ------------------------------------------------------------------ subclass interface
    def __len__(self) -> int:
        raise NotImplementedError

    def load_record(self, index: int) -> Record:
        """The person at ``index`` with its image decoded.

        Raises:
            UnreadableImage: the image cannot be read.
        """
        raise NotImplementedError

    def load_annotation(self, index: int) -> Record:
        """The person at ``index``; the image may be None. Default: :meth:`load_record`."""
        return self.load_record(index)

    def load_record_reduced(self, index: int, scale_factor: float) -> tuple[Record, int]:
        """The Record with its image, possibly decoded at 1/r size, and r.

        ``scale_factor`` is the augmentation's scale multiplier, so a source can pick the largest
        reduction the final crop allows. Default: full size (r = 1).
        """
        return self.load_record(index), 1

    # ------------------------------------------------------------------ bad-image accounting
    @property
    def images_seen(self) -> int:
        """Images this dataset tried to decode for samples (all processes)."""
        return int(self._image_counts[:, 0].sum())

    @property
    def bad_images(self) -> int:
        """Images that could not be decoded (all processes)."""
        return int(self._image_counts[:, 1].sum())

    def reset_counters(self) -> None:
        self._image_counts.zero_()
        if self._image_flags is not None:
            self._image_flags.zero_()

    def _count_image(self, bad: bool, error: UnreadableImage | None = None, index: int | None = None) -> None:
        """Count sample ``index``'s image as seen (and bad); a sample already counted is not
        counted again, so the counts are of distinct samples, not of reads."""
        if self._image_flags is not None and index is not None:
            flags = self._image_flags.numpy()
            if flags[index] & _SEEN:
                return
            flags[index] |= _SEEN | (_BAD if bad else 0)
        info = torch.utils.data.get_worker_info()
        slot = 0 if info is None else (info.id + 1) % _COUNTER_SLOTS
        counts = self._image_counts.numpy()  # a view of the shared memory, cheaper to update
        counts[slot, 0] += 1
        if bad:
            counts[slot, 1] += 1
            seen, num_bad = self.images_seen, self.bad_images
            if num_bad > BAD_IMAGE_GRACE and num_bad > self.max_bad_fraction * seen:
                raise DataError(
                    f"{num_bad} of {seen} images could not be read (more than "
                    f"max_bad_fraction={self.max_bad_fraction:g}); last: {error}"
                )

    # ------------------------------------------------------------------ samples
    # Reproducible augmentation (set by the trainer through set_epoch): when ``augment_seed`` is
    # not None, sample ``index`` of epoch ``epoch`` draws its augmentation from
    # ``default_rng([augment_seed, epoch, index])``, independent of workers and of what ran
    # before, which is what lets a resumed run repeat the uninterrupted one exactly.
    augment_seed: int | None = None
    epoch: int = 0

    def set_epoch(self, epoch: int, seed: int | None = None) -> None:
        """Make augmentation a function of (seed, epoch, index) for the coming epoch.

        Call before creating the DataLoader iterator of each epoch (workers copy the dataset
        when they start). ``seed`` None keeps the current ``augment_seed``.
        """
        self.epoch = int(epoch)
        if seed is not None:
            self.augment_seed = int(seed)

    def _augmentation(self, index: int | None = None) -> Augmentation:
        if self.augment is None:
            return sample_augmentation(None, np.random.default_rng(0))
        if self.augment_seed is not None and index is not None:
            rng = np.random.default_rng([self.augment_seed, self.epoch, int(index)])
            return sample_augmentation(self.augment, rng)
        # Seeded from torch's RNG so torch.manual_seed and DataLoader worker seeding both apply.
        seed = int(torch.randint(0, 2**62, (1,)).item())
        return sample_augmentation(self.augment, np.random.default_rng(seed))

    def sample_affine(self, record: Record, augmentation: Augmentation) -> np.ndarray:
        """The original-image px -> input px affine of a sample, flip included; float32 [2, 3]."""
        scale = float(record.scale) * augmentation.scale_factor
        affine = crop_affine(record.center, scale, augmentation.rotation, self.input_size)
        if augmentation.flip:
            affine = compose_affine(hflip_affine(self.input_size), affine)
        return affine

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One network sample.

        Returns:
            dict with "image" float32 tensor [3, S, S] (RGB, normalised), "target" float32 tensor
            [J, h, h], "target_weight" float32 tensor [J] and "meta": "index", "center" float32
            [2], "scale" (after augmentation), "rotation", "affine" float32 [2, 3] (original px ->
            input px, flip included), "joints" float32 [J, 3] (original px, channel order,
            unflipped), "flipped", "image_error" (why the image could not be read, "" when it
            was); J channels of :attr:`channel_joint_set`.
        """
        import cv2

        n = len(self)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n}")
        aug = self._augmentation(index)
        image_error = ""
        try:
            record, reduction = self.load_record_reduced(index, aug.scale_factor)
        except UnreadableImage as exc:
            self._count_image(bad=True, error=exc, index=index)
            record, reduction = self.load_annotation(index), 0
            image_error = str(exc)
        else:
            self._count_image(bad=False, index=index)

        affine = self.sample_affine(record, aug)
        size = self.input_size
        if reduction:
            warp = affine if reduction == 1 else compose_affine(affine, reduction_affine(reduction))
            crop = cv2.warpAffine(
                record.image,
                warp,
                (size, size),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(0, 0, 0),
            )
            image = normalize_image(crop, aug.color_gain)
        else:  # unreadable image: mean grey, which normalises to zeros
            image = np.zeros((3, size, size), dtype=np.float32)

        joints = to_channel_order(np.asarray(record.joints, np.float32)[:, :3], self.joint_set)
        joints[:, 2] = (joints[:, 2] > 0) & np.isfinite(joints[:, :2]).all(axis=1)
        crop_joints = joints.copy()
        crop_joints[:, :2] = transform_points(joints[:, :2], affine)
        if aug.flip:
            crop_joints = crop_joints[self.channel_joint_set.flip_permutation()]
        target, weight = self.codec.encode(crop_joints)
        if not reduction:
            target[:] = 0.0
            weight[:] = 0.0

        meta = {
            "index": index,
            "center": np.asarray(record.center, np.float32).reshape(2),
            "scale": float(record.scale) * aug.scale_factor,
            "rotation": float(aug.rotation),
            "affine": affine.astype(np.float32),
            "joints": joints.astype(np.float32),
            "flipped": bool(aug.flip),
            # Why the image could not be read ("" when it was): evaluation refuses such a
            # sample, training skips it and names it in the run directory.
            "image_error": image_error,
        }
        return {
            "image": torch.from_numpy(image),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight),
            "meta": meta,
        }

    # ------------------------------------------------------------------ evaluation
    def headbox_hint(self) -> str:
        """What a user must provide when PCKh head boxes are missing (for the error message)."""
        return "this dataset has no head boxes, which PCKh needs"

    def eval_reference(self) -> EvalReference:
        """The ground truth of the whole split, in original image px and the Records' joint set.

        Raises:
            DataError: the metric is PCKh and some person has no head box.
        """
        n = len(self)
        records = [self.load_annotation(i) for i in range(n)]
        j = self.joint_set.num_joints
        joints = np.zeros((n, j, 2), dtype=np.float64)
        visible = np.zeros((n, j), dtype=bool)
        for i, rec in enumerate(records):
            joints[i] = rec.joints[:, :2]
            visible[i] = (rec.joints[:, 2] > 0) & np.isfinite(rec.joints[:, :2]).all(axis=1)
        headboxes = _stack_headboxes([rec.headbox for rec in records])
        return self._make_reference(joints, visible, headboxes)

    def _make_reference(self, joints: np.ndarray, visible: np.ndarray, headboxes: np.ndarray | None) -> EvalReference:
        if self.metric == "pckh" and headboxes is None:
            raise DataError(self.headbox_hint())
        return EvalReference(
            joints=np.nan_to_num(joints.astype(np.float64)),
            visible=visible.astype(bool),
            headboxes=None if headboxes is None else headboxes.astype(np.float64),
            metric=self.metric,  # type: ignore[arg-type]
            joint_set=self.joint_set.name,
        )


def _stack_headboxes(boxes: Sequence[np.ndarray | None]) -> np.ndarray | None:
    if not boxes or any(box is None for box in boxes):
        return None
    return np.stack([np.asarray(box, np.float64).reshape(2, 2) for box in boxes])
