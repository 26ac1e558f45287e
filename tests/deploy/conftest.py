"""Fixtures of the deployment tests: a tiny hourglass (1 stack, 16 channels, 64 px) with
non-trivial batch-norm statistics, its checkpoint, and one verified fp32 export shared by the
tests that only read it (an export takes seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fpdctl.models.checkpoint import save_model
from fpdctl.models.hourglass import HourglassNet, create_model

INPUT_SIZE = 64
HEATMAP_SIZE = INPUT_SIZE // 4


def make_net(name: str = "hg1x16", seed: int = 0) -> HourglassNet:
    """A randomly initialised network whose BNs are not the identity (fresh BNs are, and would
    hide any error in how BN is exported, folded or quantised)."""
    torch.manual_seed(seed)
    net = create_model(name)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.fixture(scope="session")
def tiny_net() -> HourglassNet:
    return make_net()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_net: HourglassNet) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "hg1x16.safetensors"
    save_model(tiny_net, path)
    return path


@pytest.fixture(scope="session")
def fp32_export(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path):
    """(ExportResult, path) of the default export: fp32, dynamic batch, final stack."""
    from fpdctl.deploy.export import export_onnx

    path = tmp_path_factory.mktemp("export") / "hg1x16.onnx"
    result = export_onnx(tiny_checkpoint, path, input_size=INPUT_SIZE)
    return result, path
