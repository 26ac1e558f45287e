"""Images without labels, mixed into every training batch (``fpdctl distill --unlabeled``).

``--unlabeled DIR``: a folder of images (searched recursively), each one person crop: the crop is
the whole image, centred on it with the longer side as its size, as ``fpdctl predict`` crops an
image given without ``--bbox``. ``--unlabeled synthetic[:length=N]``: synthetic training images
with their labels thrown away; they are the training stream's samples that follow the labelled
set (indices ``L .. L + N - 1`` for a labelled ``synthetic:length=L`` of the same seed), so they
are different images from the same distribution, and never validation images. N defaults to the
synthetic training split's length.

Unlabeled samples go through the same augmentation as the labelled ones and arrive with all-zero
targets and target weights and ``labelled`` False, so the loss gives them the teacher's term only
(:func:`fpdctl.training.loss.fpd_loss`). :class:`MixedDataset` puts both sets behind one index
space and :class:`MixedSampler` fills each batch with a fixed number of each: the labelled part
walks the labelled set's epoch permutation exactly as without unlabeled images, the unlabeled
part walks one endless stream of permutations of the unlabeled set (block ``k`` seeded by
``(seed, k)``), shared by every process. Both are functions of (seed, epoch, position), so a
resumed run meets the same batches.

Importing this module loads neither torch nor the datasets (the options code checks
``--unlabeled`` with it); building the sets does.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from fpdctl.data.kinds import DataSpec
from fpdctl.errors import DataError, InputError, UsageError

# The fraction of each batch that is unlabeled when --unlabeled is given without a ratio.
DEFAULT_UNLABELED_RATIO: float = 0.5
SYNTHETIC = "synthetic"
# What a folder of unlabeled images may hold (by suffix, case-insensitive).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# The stream of the unlabeled permutations, apart from every other use of the run's seed.
_UNLABELED_STREAM = 0x756E6C62  # "unlb"


def _synthetic_length(text: str) -> int | None:
    """The N of ``synthetic[:length=N]`` (None for plain ``synthetic``).

    Raises:
        UsageError: any other ``synthetic:...`` form, or N not a positive integer.
    """
    _, sep, rest = text.partition(":")
    if not sep:
        return None
    key, eq, value = rest.partition("=")
    if eq and key.strip() in ("length", "size"):
        try:
            length = int(value.strip())
        except ValueError:
            length = 0
        if length > 0:
            return length
    raise UsageError(
        f"`unlabeled` must be a folder of images, synthetic or synthetic:length=N, got {text!r}", params="unlabeled"
    )


def is_synthetic(text: str) -> bool:
    return text == SYNTHETIC or text.startswith(SYNTHETIC + ":")


def absolute_unlabeled(text: str) -> str:
    """``--unlabeled`` with a folder made absolute (a resumed run may start elsewhere)."""
    if is_synthetic(text):
        return text
    return os.path.abspath(os.path.expanduser(text))


def split_batch(batch_size: int, ratio: float) -> tuple[int, int]:
    """(labelled, unlabeled) images per batch: ``round(batch_size * ratio)`` unlabeled.

    Raises:
        UsageError: a ratio outside (0, 1), or one that leaves a part of the batch empty.
    """
    value = float(ratio)
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise UsageError(f"unlabeled ratio must be in (0, 1), got {ratio:g}")
    unlabeled = int(math.floor(batch_size * value + 0.5))
    if not 0 < unlabeled < batch_size:
        raise UsageError(
            f"`unlabeled_ratio` {value:g} of a batch of {batch_size} leaves "
            f"{'no unlabeled' if unlabeled <= 0 else 'no labelled'} image; change the ratio or the batch size",
            params="unlabeled_ratio",
        )
    return batch_size - unlabeled, unlabeled


def check_unlabeled(text: str, ratio: float, batch_size: int) -> None:
    """Check ``--unlabeled`` and ``--unlabeled-ratio`` without reading any image.

    Raises:
        UsageError: a bad spec or ratio; InputError: the folder does not exist.
    """
    if batch_size > 0:
        split_batch(batch_size, ratio)
    if is_synthetic(text):
        _synthetic_length(text)
        return
    folder = Path(text).expanduser()
    if not folder.exists():
        raise InputError(f"unlabeled image folder not found: {folder}")
    if not folder.is_dir():
        raise InputError(
            f"`unlabeled` {folder} is not a folder (give a folder of images, or synthetic)", params="unlabeled"
        )


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The images in ``folder`` and its subfolders, by suffix, in sorted path order.

    Raises:
        InputError: no folder, or no image in it.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"unlabeled image folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    return files


def image_folder_dataset(folder: str | os.PathLike[str], *, joint_set: Any = None, **kwargs: Any) -> Any:
    """A :class:`~fpdctl.data.file_dataset.FilePoseDataset` of a folder of person crops, unlabelled.

    Each image is one person whose crop is the whole image (centre at the image centre, side the
    longer image side, as ``fpdctl.pipeline.person_box`` without a box); joints all unannotated.
    Image sizes come from the file headers (Pillow, a matplotlib dependency), so building reads
    no pixels; a file Pillow cannot open keeps a placeholder box and is counted as a bad image
    when loaded.

    Args:
        folder: the folder.
        joint_set: the heatmap channels of the samples (default MPII).
        **kwargs: :class:`~fpdctl.data.dataset.PoseDataset` options (input_size, sigma, augment).
    """
    from PIL import Image

    from fpdctl.boxes import PIXEL_STD
    from fpdctl.data.file_dataset import AnnotationTable, FilePoseDataset
    from fpdctl.skeleton import MPII

    joint_set = joint_set or MPII
    root = Path(folder)
    files = image_files(root)
    centers = np.zeros((len(files), 2), np.float32)
    scales = np.ones(len(files), np.float32)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # placeholder box; the loader reports the file as unreadable
        centers[i] = ((width - 1) / 2.0, (height - 1) / 2.0)
        scales[i] = max(width, height) / PIXEL_STD
    table = AnnotationTable(
        image_files=[str(p.relative_to(root)) for p in files],
        joints=np.zeros((len(files), joint_set.num_joints, 3), np.float32),
        centers=centers,
        scales=scales,
    )
    return FilePoseDataset(table, root, joint_set=joint_set, **kwargs)


class UnlabeledView:
    """Samples ``offset .. offset + length - 1`` of a pose dataset with their labels thrown away.

    Sample ``i`` is the parent's sample ``offset + i`` (same image, same augmentation draw) with
    its target and target weights zeroed. ``set_epoch`` reaches the parent.
    """

    def __init__(self, dataset: Any, offset: int = 0, length: int | None = None) -> None:
        self.dataset = dataset
        self.offset = int(offset)
        self.length = len(dataset) - self.offset if length is None else int(length)
        if self.offset < 0 or self.length <= 0 or self.offset + self.length > len(dataset):
            raise ValueError(
                f"samples {self.offset}..{self.offset + self.length - 1} are not in a dataset of {len(dataset)}"
            )

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int, seed: int | None = None) -> None:
        self.dataset.set_epoch(epoch, seed)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"unlabeled index {index} out of range for {self.length} images")
        sample = self.dataset[self.offset + index]
        sample["target"].zero_()
        sample["target_weight"].zero_()
        return sample


def build_unlabeled(
    text: str, labelled_data: "str | DataSpec", *, joint_set: Any = None, **kwargs: Any
) -> UnlabeledView:
    """The unlabeled set ``--unlabeled`` names.

    Args:
        text: a folder, ``synthetic`` or ``synthetic:length=N``.
        labelled_data: the run's ``--data`` (a synthetic one decides the seed, image options
            and the offset past its own samples).
        joint_set: the heatmap channels of the labelled set (a folder's samples get the same;
            default MPII).
        **kwargs: PoseDataset options (input_size, sigma, augment).

    Raises:
        UsageError / InputError: a bad spec, a missing folder or one without images.
    """
    if not is_synthetic(text):
        return UnlabeledView(image_folder_dataset(text, joint_set=joint_set, **kwargs))
    from fpdctl.data.kinds import SYNTHETIC_ALIASES, parse_data_spec
    from fpdctl.data.synthetic import DEFAULT_LENGTHS, SyntheticPose

    length = _synthetic_length(text) or DEFAULT_LENGTHS["train"]
    options: dict[str, Any] = {}
    offset = 0
    labelled = parse_data_spec(labelled_data)
    if labelled.kind == SYNTHETIC:
        options = {SYNTHETIC_ALIASES.get(k, k): v for k, v in labelled.options.items()}
        offset = int(options.pop("length", DEFAULT_LENGTHS["train"]))
    source = SyntheticPose("train", length=offset + length, **options, **kwargs)
    return UnlabeledView(source, offset=offset, length=length)


class MixedDataset:
    """A labelled and an unlabeled set behind one index space: ``[0, L)`` labelled, then
    ``[L, L + U)`` unlabeled. Each sample gains ``labelled``, a numpy bool (a [N] bool tensor
    once collated)."""

    def __init__(self, labelled: Any, unlabeled: Any) -> None:
        self.labelled = labelled
        self.unlabeled = unlabeled
        self.num_labelled = len(labelled)

    def __len__(self) -> int:
        return self.num_labelled + len(self.unlabeled)

    def set_epoch(self, epoch: int, seed: int | None = None) -> None:
        self.labelled.set_epoch(epoch, seed)
        self.unlabeled.set_epoch(epoch, seed)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < self.num_labelled:
            sample = self.labelled[index]
            sample["labelled"] = np.bool_(True)
        else:
            sample = self.unlabeled[index - self.num_labelled]
            sample["labelled"] = np.bool_(False)
        return sample


class EpochSampler(Protocol):
    """What :class:`MixedSampler` needs of the labelled set's sampler (ResumableSampler)."""

    num_samples: int

    def set_epoch(self, epoch: int, skip: int = 0) -> None: ...

    def __iter__(self) -> Iterator[int]: ...


class MixedSampler:
    """Batches of ``labelled_per_batch`` labelled then ``unlabeled_per_batch`` unlabeled indices
    into a :class:`MixedDataset`, resumable like the labelled sampler.

    The epoch is the labelled set's: ``labelled.num_samples // labelled_per_batch`` batches. The
    unlabeled indices of batch ``b`` of epoch ``e`` on rank ``r`` are positions
    ``((e * B + b) * world + r) * u ...`` of an endless stream that walks a fresh permutation of
    the unlabeled set every ``U`` positions, so every unlabeled image is used once before any is
    used twice, and no two processes get the same one in a step.

    Args:
        labelled: the labelled set's sampler (epoch permutation, this rank's shard).
        num_labelled: L, the labelled set's size (the unlabeled indices start there).
        num_unlabeled: U.
        labelled_per_batch, unlabeled_per_batch: the batch's two parts (:func:`split_batch`).
        seed: the run's seed.
        num_replicas, rank: the process's place in the job.
    """

    def __init__(
        self,
        labelled: EpochSampler,
        *,
        num_labelled: int,
        num_unlabeled: int,
        labelled_per_batch: int,
        unlabeled_per_batch: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if num_unlabeled <= 0:
            raise DataError("the unlabeled set is empty")
        self.labelled = labelled
        self.num_labelled = int(num_labelled)
        self.num_unlabeled = int(num_unlabeled)
        self.per_batch = (int(labelled_per_batch), int(unlabeled_per_batch))
        self.batch_size = sum(self.per_batch)
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.batches = labelled.num_samples // self.per_batch[0]
        self.num_samples = self.batches * self.batch_size
        self.epoch = 0
        self._skip = 0
        self._cached: tuple[int, np.ndarray] | None = None

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select epoch ``epoch`` and skip its first ``skip`` indices (whole batches)."""
        self.epoch = int(epoch)
        self._skip = int(skip)
        self.labelled.set_epoch(epoch, 0)

    def _permutation(self, block: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != block:  # consecutive batches share blocks
            rng = np.random.default_rng([self.seed, _UNLABELED_STREAM, block])
            self._cached = (block, rng.permutation(self.num_unlabeled))
        return self._cached[1]

    def unlabeled_indices(self, epoch: int, batch: int) -> list[int]:
        """Indices into the unlabeled set (0-based) of batch ``batch`` of ``epoch`` on this rank."""
        n_u, size = self.per_batch[1], self.num_unlabeled
        start = ((epoch * self.batches + batch) * self.num_replicas + self.rank) * n_u
        out: list[int] = []
        block, perm = -1, np.empty(0, np.int64)
        for position in range(start, start + n_u):
            if position // size != block:
                block = position // size
                perm = self._permutation(block)
            out.append(int(perm[position % size]))
        return out

    def __iter__(self) -> Iterator[int]:
        # The whole epoch's order now, not lazily: a later set_epoch must not change it.
        n_l = self.per_batch[0]
        labelled = list(iter(self.labelled))
        order: list[int] = []
        for b in range(self._skip // self.batch_size, self.batches):
            order += labelled[b * n_l : (b + 1) * n_l]
            order += [self.num_labelled + u for u in self.unlabeled_indices(self.epoch, b)]
        return iter(order)

    def __len__(self) -> int:
        return max(self.num_samples - self._skip, 0)


__all__ = [
    "DEFAULT_UNLABELED_RATIO",
    "IMAGE_SUFFIXES",
    "MixedDataset",
    "MixedSampler",
    "UnlabeledView",
    "absolute_unlabeled",
    "build_unlabeled",
    "check_unlabeled",
    "image_files",
    "image_folder_dataset",
    "is_synthetic",
    "split_batch",
]
