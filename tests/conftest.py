"""Shared test fixtures: the tiny model every area tests with, and the real data beside the
repository (skipped cleanly when absent).

Torch and the models are imported inside the fixtures, so that collecting a test that must run
without torch does not load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fpdctl.models.hourglass import HourglassNet

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
SHARED_DATA = SHARED_DIR / "data"

# The tiny model's input side (depth 4 needs a multiple of 64) and its heatmap side.
INPUT_SIZE = 64
HEATMAP_SIZE = INPUT_SIZE // 4


def make_net(name: str = "hg1x16", seed: int = 0) -> HourglassNet:
    """A randomly initialised network, in eval mode, whose BNs are not the identity (fresh BNs
    are, and would hide any error in how BN is exported, folded, sliced or quantised)."""
    import torch

    from fpdctl.models.factory import create_model

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
    """``make_net()``: hg1x16 (1 stack, 16 channels), shared by the whole session: do not train it."""
    return make_net()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_net: HourglassNet) -> Path:
    """``tiny_net`` saved as ``hg1x16.safetensors``: the teacher of the distillation tests and the
    model of the deployment tests (read-only: copy it before damaging it)."""
    from fpdctl.models.checkpoint import save_model

    path = tmp_path_factory.mktemp("ckpt") / "hg1x16.safetensors"
    save_model(tiny_net, path)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (MPII validation ground truth, LSPET sample); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (a user's clone has no shared data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mpii_val_gt(shared_data: Path) -> Path:
    path = shared_data / "mpii" / "mpii_val_gt_tompson.mat"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return path


@pytest.fixture(scope="session")
def lspet400(shared_data: Path) -> Path:
    path = shared_data / "lspet400"
    if not (path / "joints.mat").is_file():
        pytest.skip(f"{path} is not present")
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-report",
        default=None,
        metavar="PATH",
        help="write every tests/reliability case (what was tried, what happened) as JSON to PATH",
    )
