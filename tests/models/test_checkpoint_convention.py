"""The input convention travels with the model: stored by save_model, inferred from the format of
foreign checkpoints, carried by the loaded network, overridden on request, inherited by a slice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fpdctl.errors import CheckpointError, UsageError
from fpdctl.models.checkpoint import describe_checkpoint, read_checkpoint, save_model
from fpdctl.models.convention import (
    FPD_OFFICIAL,
    METADATA_KEY,
    NATIVE,
    PYTORCH_POSE_LSP,
    PYTORCH_POSE_MPII,
    ConventionOverride,
    InputConvention,
)
from fpdctl.models.factory import create_model
from tests.conftest import make_net


def write_foreign(net: torch.nn.Module, folder: Path, kind: str) -> Path:
    """``net``'s weights in a reference project's own file layout (checkpoint-formats.md)."""
    state = net.state_dict()
    wrapped = {f"module.{k}": v for k, v in state.items()}  # DataParallel
    if kind == "pytorch-pose":
        path = folder / "checkpoint.pth.tar"
        payload = {
            "epoch": 3,
            "arch": "hg",
            "state_dict": wrapped,
            "best_acc": torch.tensor(0.71),
            "optimizer": {"state": {}, "param_groups": []},
        }
    elif kind == "fpd-checkpoint":
        path = folder / "checkpoint.pth"
        payload = {
            "epoch": 3,
            "model": "get_pose_net",
            "state_dict": wrapped,
            "best_state_dict": state,
            "perf": 0.71,
            "optimizer": {"state": {}, "param_groups": []},
        }
    else:
        path = folder / "model_best.pth"
        payload = state
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("pytorch-pose", PYTORCH_POSE_MPII), ("fpd-checkpoint", FPD_OFFICIAL), ("state_dict", FPD_OFFICIAL)],
)
def test_foreign_checkpoints_load_with_their_projects_convention(tmp_path, kind, expected) -> None:
    net = make_net()
    path = write_foreign(net, tmp_path, kind)
    loaded = create_model(path)
    assert loaded.input_convention is expected
    assert describe_checkpoint(path)["input_convention"] is expected
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_native_files_store_the_convention_and_old_ones_are_native(tmp_path) -> None:
    from safetensors.torch import save_file

    net = make_net()
    assert net.input_convention is NATIVE  # a new network is fpdctl's own
    custom = InputConvention("bgr", (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), name="custom", train_sigma=1.5)
    net.input_convention = custom
    path = save_model(net, tmp_path / "custom.safetensors")
    _, header = read_checkpoint(path)
    assert json.loads(header[METADATA_KEY]) == custom.to_dict()
    loaded = create_model(path)
    assert loaded.input_convention == custom and loaded.input_convention.to_dict() == custom.to_dict()

    # A file written before the key existed (no fpdctl.input_convention in its header) is NATIVE.
    old = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in make_net().state_dict().items()}, str(old))
    assert create_model(old).input_convention is NATIVE


def test_override_applies_to_what_the_file_implies(tmp_path) -> None:
    path = write_foreign(make_net(), tmp_path, "pytorch-pose")
    lsp = create_model(path, input_convention=ConventionOverride(preset="pytorch-pose-lsp"))
    assert lsp.input_convention is PYTORCH_POSE_LSP
    mean_only = create_model(path, input_convention=ConventionOverride(mean="0.5,0.5,0.5"))
    assert mean_only.input_convention == InputConvention("rgb", (0.5, 0.5, 0.5), (1.0, 1.0, 1.0))
    assert mean_only.input_convention.train_sigma == 1.0  # pytorch-pose's sigma is kept
    named = create_model("hg1x16", input_convention=ConventionOverride(order="bgr"))
    assert named.input_convention == FPD_OFFICIAL
    with pytest.raises(UsageError, match="`input_std` must be positive"):
        create_model(path, input_convention=ConventionOverride(std="0,1,1"))


def test_a_damaged_stored_convention_is_a_checkpoint_error(tmp_path) -> None:
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    tensors = {k: v.contiguous() for k, v in make_net().state_dict().items()}
    save_file(tensors, str(bad), metadata={METADATA_KEY: '{"order": "rgb", "mean": [0, 0, 2], "std": [1, 1, 1]}'})
    with pytest.raises(CheckpointError) as info:
        create_model(bad)
    assert str(info.value) == (
        f"{bad}: '{METADATA_KEY}' metadata: input mean must lie in [0, 1] (pixels are scaled to [0, 1] first), got 2"
    )


def test_a_slice_inherits_the_teachers_convention_and_records_it(tmp_path) -> None:
    from fpdctl.prune.slicing import prune_checkpoint, slice_model

    teacher = create_model(write_foreign(make_net("hg2x32"), tmp_path, "fpd-checkpoint"))
    student, _ = slice_model(teacher, "hg1x16")
    assert student.input_convention is FPD_OFFICIAL
    out = tmp_path / "student.safetensors"
    prune_checkpoint(
        tmp_path / "checkpoint.pth", "hg1x16", out, input_size=64, input_convention=ConventionOverride(preset="native")
    )
    assert create_model(out).input_convention is NATIVE  # the override, recorded
