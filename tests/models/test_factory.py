"""The model factory's public names: one function, reachable from every place it was published."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fpdctl
import fpdctl.models
from fpdctl.errors import UsageError
from fpdctl.models import checkpoint, factory
from fpdctl.models.checkpoint import save_model
from fpdctl.models.spec import HourglassSpec


def test_every_published_name_is_the_factory_function() -> None:
    for create in (fpdctl.create_model, fpdctl.models.create_model):
        assert create is factory.create_model
    for load in (fpdctl.load_model, fpdctl.models.load_model):
        assert load is factory.load_model
    # their old home keeps no alias (issue 27: no compatibility shims at 0.1.0)
    assert not hasattr(checkpoint, "create_model") and not hasattr(checkpoint, "load_model")


def test_unknown_attributes_still_raise() -> None:
    with pytest.raises(AttributeError, match="no attribute 'make_model'"):
        checkpoint.make_model  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'make_model'"):
        fpdctl.models.make_model  # noqa: B018


def test_factory_round_trip_through_a_file(tmp_path: Path) -> None:
    net = factory.create_model("hg1x16")
    assert net.spec == HourglassSpec(stacks=1, channels=16, blocks=1, joints=16, depth=4)
    path = save_model(net, tmp_path / "m.safetensors")
    loaded = factory.load_model(path)
    assert not loaded.training and loaded.spec == net.spec
    for key, tensor in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    # a file is what checkpoint.model_from_checkpoint reads: the same weights, in eval mode
    direct = checkpoint.model_from_checkpoint(path)
    assert not direct.training and torch.equal(
        direct.state_dict()["score.0.weight"], net.state_dict()["score.0.weight"]
    )
    with pytest.raises(UsageError, match="spec= applies to a checkpoint file"):
        factory.create_model("hg1x16", spec="hg1x16")


def test_importing_the_spec_module_does_not_load_torch() -> None:
    code = "import sys, fpdctl.models.spec\nassert 'torch' not in sys.modules, 'torch loaded'\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
