"""state.pt: plain data only (weights_only=True), RNG streams restored exactly."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from fpdctl.errors import CheckpointError, InputError
from fpdctl.training.state import TrainState, capture_rng_state, load_state, restore_rng_state, save_state


def _draws() -> tuple[torch.Tensor, np.ndarray, float, float]:
    return torch.rand(4), np.random.rand(4), random.random(), random.gauss(0.0, 1.0)


def test_rng_streams_continue_identically_after_a_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    random.gauss(0.0, 1.0)  # leaves a cached gaussian in Python's state
    np.random.standard_normal()  # and one in NumPy's
    state = TrainState(step=7, epoch=1, batch_in_epoch=3, rng=capture_rng_state())
    save_state(state, tmp_path / "state.pt")
    expected = _draws()
    _draws()  # move every stream on
    loaded = load_state(tmp_path / "state.pt")
    restore_rng_state(loaded.rng)
    got = _draws()
    assert torch.equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2:] == expected[2:]
    assert (loaded.step, loaded.epoch, loaded.batch_in_epoch) == (7, 1, 3)


def test_state_file_is_plain_data(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state = TrainState(step=1, model=model.state_dict(), optimizer=optimizer.state_dict(), rng=capture_rng_state())
    save_state(state, tmp_path / "state.pt")
    payload = torch.load(tmp_path / "state.pt", weights_only=True)  # raises on any pickled object
    assert payload["format"] == "fpdctl-train-state"
    assert torch.equal(payload["model"]["weight"], model.weight.detach())
    assert payload["optimizer"]["state"][0]["exp_avg"].shape == (2, 3)
    assert payload["rng"]["numpy"]["key"].dtype == torch.int64


def test_foreign_or_corrupt_files_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"step": 3}, other)
    with pytest.raises(CheckpointError, match="is not an fpdctl training state"):
        load_state(other)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="cannot read training state"):
        load_state(corrupt)
    with pytest.raises(InputError, match="training state not found"):
        load_state(tmp_path / "missing.pt")
