"""The resumable training state (``state.pt``): plain tensors and numbers only.

Everything in ``state.pt`` loads with ``torch.load(weights_only=True)``: optimizer, scheduler and
grad-scaler state_dicts are already plain; the RNG states are converted to tensors and lists
(NumPy's Mersenne-Twister key as a uint32 tensor, Python's as a list of ints) instead of pickled
objects. Written atomically beside the weights, so a kill at any moment leaves the previous
complete pair.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fpdctl.errors import CheckpointError, UsageError
from fpdctl.models.checkpoint import torch_load_safely
from fpdctl.utils.io import atomic_save, require_file

STATE_FORMAT = "fpdctl-train-state"
# 2: records the world size and global batch the run was trained with (1 did not).
STATE_VERSION = 2


def capture_rng_state() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), NumPy and Python as plain data."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "algorithm": str(np_state[0]),
            "key": torch.from_numpy(np.asarray(np_state[1], dtype=np.uint32).astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "internal": [int(x) for x in py_internal],
            "gauss": None if py_gauss is None else float(py_gauss),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng_state` returned."""
    torch.set_rng_state(state["torch"].to(torch.uint8))
    nps = state["numpy"]
    key = nps["key"].numpy().astype(np.uint32)
    np.random.set_state((nps["algorithm"], key, int(nps["pos"]), int(nps["has_gauss"]), float(nps["cached_gaussian"])))
    pys = state["python"]
    random.setstate((int(pys["version"]), tuple(int(x) for x in pys["internal"]), pys["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda_states])


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped.

    Attributes:
        step: optimizer steps done.
        epoch: the epoch the next step belongs to.
        batch_in_epoch: batches of ``epoch`` already consumed (skipped on resume).
        best_metric: best validation PCKh so far (None before the first evaluation).
        best_step: the step of ``best_metric``.
        model: the trained network's state_dict, so one file holds a consistent resume point
            (``last.safetensors`` is written beside it for users, but a kill between the two
            writes must not pair weights of one step with optimizer state of another).
        optimizer: ``optimizer.state_dict()``.
        scheduler: ``scheduler.state_dict()``.
        scaler: ``GradScaler.state_dict()`` ({} when not used).
        rng: :func:`capture_rng_state` output.
        extra: other plain fields (e.g. wall time so far).
        world_size: processes the run was trained with (None in a version-1 state).
        global_batch: images per step over all processes (None in a version-1 state).
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    model: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    world_size: int | None = None
    global_batch: int | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "step": int(self.step),
            "epoch": int(self.epoch),
            "batch_in_epoch": int(self.batch_in_epoch),
            "best_metric": None if self.best_metric is None else float(self.best_metric),
            "best_step": None if self.best_step is None else int(self.best_step),
            "model": self.model,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "rng": self.rng,
            "extra": self.extra,
            "world_size": None if self.world_size is None else int(self.world_size),
            "global_batch": None if self.global_batch is None else int(self.global_batch),
        }


def save_state(state: TrainState, path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    payload = state.to_payload()

    def write(tmp: Path) -> None:
        # Through a Python file object: a failed write (full disk, size limit) then surfaces as
        # the OSError behind torch's RuntimeError, which atomic_save reports with the path.
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)

    atomic_save(path, write)
    return Path(path)


def load_state(path: str | os.PathLike[str]) -> TrainState:
    """Read a ``state.pt`` with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: missing, corrupt, or not an fpdctl training state.
    """
    file = require_file(path, "training state")
    payload = torch_load_safely(file, "training state")  # the checks and messages of checkpoints
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{file} is not an fpdctl training state")
    if int(payload.get("version", 0)) > STATE_VERSION:
        raise CheckpointError(f"{file} was written by a newer fpdctl (state version {payload['version']})")
    return TrainState(
        step=int(payload["step"]),
        epoch=int(payload["epoch"]),
        batch_in_epoch=int(payload["batch_in_epoch"]),
        best_metric=payload.get("best_metric"),
        best_step=payload.get("best_step"),
        model=payload.get("model") or {},
        optimizer=payload.get("optimizer") or {},
        scheduler=payload.get("scheduler") or {},
        scaler=payload.get("scaler") or {},
        rng=payload.get("rng") or {},
        extra=payload.get("extra") or {},
        world_size=_optional_int(payload.get("world_size")),
        global_batch=_optional_int(payload.get("global_batch")),
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def check_same_world(state: TrainState, world_size: int, global_batch: int, path: Path | str) -> None:
    """Refuse to resume a run on another number of processes.

    The data order (each rank's shard of each epoch's permutation), the global batch and the
    steps per epoch all depend on the world size, so a run resumed on another one would not
    continue its trajectory; fpdctl refuses rather than change it silently.

    Raises:
        UsageError: one line with both world sizes and what to do.
    """
    if state.world_size is None or state.world_size == world_size:
        return
    raise UsageError(
        f"cannot resume {path}: it was trained with {state.world_size} process(es) (global batch "
        f"{state.global_batch}) and this run has {world_size} (global batch {global_batch}); "
        f"resume it with {state.world_size} process(es) (torchrun --nproc_per_node "
        f"{state.world_size} on one node), or start a new run with `out`",
        params="out",
    )


__all__ = [
    "TrainState",
    "capture_rng_state",
    "check_same_world",
    "load_state",
    "restore_rng_state",
    "save_state",
]
