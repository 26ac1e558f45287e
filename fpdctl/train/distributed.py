"""Multi-process training: torchrun environment, reductions, and a resumable sampler.

``torchrun --nproc_per_node N -m fpdctl train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. Each process trains its
shard of every epoch; DistributedDataParallel averages gradients; only rank 0 writes files. The
backend is NCCL on CUDA and gloo otherwise (CPU runs, tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sized

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from fpdctl.errors import RuntimeFailure


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job.

    Attributes:
        rank: global rank (0 writes the run directory).
        world_size: number of processes.
        local_rank: rank on this node (picks the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

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
    return DistInfo(rank=rank, world_size=max(world, 1), local_rank=local)


def init_distributed(info: DistInfo, device: torch.device) -> None:
    """Join the process group when running under torchrun (no-op for one process)."""
    if not info.distributed or (dist.is_available() and dist.is_initialized()):
        return
    if not dist.is_available():
        raise RuntimeFailure("this PyTorch build has no torch.distributed support")
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    except Exception as exc:  # RuntimeError, DistNetworkError, TimeoutError
        raise RuntimeFailure(f"could not join the {backend} process group: {exc}") from exc


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


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process if ``flag`` is true on any (e.g. a stop request)."""
    if not is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


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
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True
        )
        self._skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select epoch ``epoch`` and skip its first ``skip`` samples (of this rank)."""
        super().set_epoch(epoch)
        self._skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self._skip:])

    def __len__(self) -> int:
        return max(self.num_samples - self._skip, 0)


__all__ = [
    "DistInfo",
    "ResumableSampler",
    "all_reduce_sum",
    "any_process",
    "barrier",
    "env_dist_info",
    "init_distributed",
    "is_initialized",
    "shutdown_distributed",
]
