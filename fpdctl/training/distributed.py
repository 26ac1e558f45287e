"""Multi-process training: torchrun environment, the per-step reduction, and a resumable sampler.

``torchrun --nproc_per_node N -m fpdctl train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. Each process trains its
shard of every epoch; DistributedDataParallel averages gradients; only rank 0 writes files. The
backend is NCCL on CUDA and gloo otherwise (CPU runs, tests).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sized

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler

from fpdctl.errors import RuntimeFailure


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job.

    Attributes:
        rank: global rank (0 writes the run directory).
        world_size: number of processes.
        local_rank: rank on this node (picks the GPU).
        launched: started by torchrun (which sets ``TORCHELASTIC_RUN_ID``): the process joins a
            process group and trains under DistributedDataParallel even alone, so a
            one-process torchrun run takes the multi-process path (NCCL on a GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False

    @property
    def distributed(self) -> bool:
        """Whether this process is one of a process group (several, or launched by torchrun)."""
        return self.world_size > 1 or self.launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_dist_info() -> DistInfo:
    """Read the torchrun variables (a single process when they are absent)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise RuntimeFailure(f"bad torchrun environment: {exc}") from exc
    return DistInfo(rank=rank, world_size=max(world, 1), local_rank=local, launched="TORCHELASTIC_RUN_ID" in os.environ)


def init_distributed(info: DistInfo, device: torch.device) -> str | None:
    """Join the process group when running under torchrun (no-op for a plain single process).

    Returns:
        The backend joined ("nccl" on CUDA, "gloo" otherwise), or None.
    """
    if not info.distributed:
        return None
    if dist.is_available() and dist.is_initialized():
        return str(dist.get_backend())
    if not dist.is_available():
        raise RuntimeFailure("this PyTorch build has no torch.distributed support")
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    except Exception as exc:  # RuntimeError, DistNetworkError, TimeoutError
        raise RuntimeFailure(f"could not join the {backend} process group: {exc}") from exc
    return backend


def shutdown_distributed() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all processes (returns the input unchanged for one process)."""
    if is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


@dataclass(frozen=True)
class StepTotals:
    """One step's figures summed over every process: the loop's one reduction per step.

    Attributes:
        loss, gt_loss, kd_loss: each process's loss terms, summed (``kd_loss`` 0 without a
            teacher); divide by the world size for the mean.
        non_finite: how many processes had a NaN or infinite total loss.
        stop_requests: how many processes had been asked to stop (a signal, ``request_stop``).
        skipped_images: images of this step's batches that could not be read, all processes.
    """

    loss: float
    gt_loss: float
    kd_loss: float
    non_finite: int
    stop_requests: int
    skipped_images: int = 0


def reduce_step(
    loss: torch.Tensor, gt_loss: torch.Tensor, kd_loss: torch.Tensor | None, *, stop: bool, skipped: int = 0
) -> StepTotals:
    """Sum one step's loss terms and flags over all processes, so that every process sees the
    same figures and stops (or diverges) at the same step.

    Exactly one host-device synchronisation per step: the loss terms and the flags (loss not
    finite, stop requested, images skipped) are stacked into one float64 tensor on the loss's
    device, all-reduced once (with several processes) and copied back once. The host-side flags
    enter through ``torch.full``, a fill kernel, never a blocking host-to-device copy.

    Args:
        loss, gt_loss, kd_loss: this process's scalar loss terms (``kd_loss`` None without a
            teacher).
        stop: whether this process has been asked to stop.
        skipped: images of this process's batch that could not be read.
    """
    parts = [loss, gt_loss, loss.new_zeros(()) if kd_loss is None else kd_loss]
    if not is_initialized():
        values = torch.stack([p.detach() for p in parts]).tolist()
        return StepTotals(
            values[0],
            values[1],
            values[2],
            non_finite=int(not math.isfinite(values[0])),
            stop_requests=int(stop),
            skipped_images=int(skipped),
        )
    device = loss.device
    flags = [
        ~torch.isfinite(loss.detach()),
        torch.full((), bool(stop), device=device),
        torch.full((), float(skipped), device=device),
    ]
    packed = torch.stack([p.detach().double() for p in parts] + [f.double() for f in flags])
    total = all_reduce_sum(packed).tolist()
    return StepTotals(
        total[0],
        total[1],
        total[2],
        non_finite=int(total[3]),
        stop_requests=int(total[4]),
        skipped_images=int(total[5]),
    )


def gather_strings(items: list[str]) -> list[str]:
    """Every process's ``items``, concatenated in rank order (``items`` alone for one process).

    A collective: every process must call it. The loop calls it only in a step whose reduction
    counted skipped images, so a normal step pays nothing for it.
    """
    if not is_initialized():
        return list(items)
    gathered: list[list[str] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, list(items))
    return [item for part in gathered for item in (part or [])]


def barrier() -> None:
    if is_initialized():
        dist.barrier()


class ResumableSampler(DistributedSampler):
    """A :class:`DistributedSampler` that can start an epoch part-way through.

    The order of epoch ``e`` is a permutation seeded by ``seed + e`` (DistributedSampler's rule),
    split across ranks; so the data order is a function of (seed, epoch) alone and a resumed run
    meets the same batches by skipping the ones already consumed. Works without a process group
    for a single process (``num_replicas=1, rank=0``).

    Args:
        dataset: anything with ``__len__``.
        num_replicas: world size.
        rank: this process's rank.
        seed: base seed of the permutations.
        shuffle: permute (training) or keep the dataset order.
    """

    def __init__(
        self, dataset: Sized, *, num_replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True
    ) -> None:
        # drop_last: every rank gets the same number of samples and no padding duplicates.
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self._skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select epoch ``epoch`` and skip its first ``skip`` samples (of this rank)."""
        super().set_epoch(epoch)
        self._skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self._skip :])

    def __len__(self) -> int:
        return max(self.num_samples - self._skip, 0)


class EpochTaggedSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)`` for each index of an epoch sampler, the epoch read at the start
    of each pass.

    With persistent DataLoader workers the workers keep the copy of the dataset they started
    with, so an epoch set on the main process's dataset never reaches them; the epoch travels
    with each index instead (see :class:`EpochSamples`). Reshuffling and skipping stay the wrapped
    sampler's (its ``set_epoch(epoch, skip)`` before each pass).

    Args:
        sampler: a sampler with an ``epoch`` attribute, e.g. :class:`ResumableSampler`.
    """

    def __init__(self, sampler: Sampler[int]) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = int(getattr(self.sampler, "epoch"))
        return ((epoch, int(index)) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


class EpochSamples(Dataset):
    """A dataset indexed by ``(epoch, index)``: sets its dataset's epoch (and augmentation seed)
    before fetching, in whatever process runs it.

    So sample ``index`` of epoch ``e`` draws its augmentation from ``(seed, e, index)`` in a
    persistent worker too, which keeps training exactly resumable.

    Args:
        dataset: a dataset with ``set_epoch(epoch, seed)``.
        seed: the augmentation seed.
    """

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if epoch != self._epoch:
            self.dataset.set_epoch(epoch, self.seed)
            self._epoch = epoch
        return self.dataset[index]


__all__ = [
    "DistInfo",
    "EpochSamples",
    "EpochTaggedSampler",
    "ResumableSampler",
    "StepTotals",
    "all_reduce_sum",
    "barrier",
    "env_dist_info",
    "gather_strings",
    "init_distributed",
    "is_initialized",
    "reduce_step",
    "shutdown_distributed",
]
