"""The mobile hourglass (depthwise-separable residual blocks, names ending in ``m``)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from fpdctl import HourglassSpec, create_model, save_model
from fpdctl.errors import CheckpointError, UsageError
from fpdctl.models.checkpoint import SPEC_KEY, infer_spec, read_checkpoint
from fpdctl.models.hourglass import count_parameters
from tests.models.reference_mobile_hourglass import MobileRefHourglassNet


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _reference(stacks=2, blocks=1, feats=8, seed=0):
    torch.manual_seed(seed)
    ref = MobileRefHourglassNet(num_stacks=stacks, num_blocks=blocks, num_feats=feats).eval()
    for module in ref.modules():  # non-trivial BN parameters and statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return ref


def test_published_student_has_exactly_its_parameters():
    # The reimplementation's hg_s2_b1_mobile: 2 stacks, 1 block, 16 joints, its fixed 128 features
    # (a 256-wide network), published as "2.31m" weights.
    with torch.device("meta"):
        ours = create_model("hg2x256m")
        ref = MobileRefHourglassNet(num_stacks=2, num_blocks=1, num_classes=16, mobile=True)
    assert ours.spec == HourglassSpec(2, 256, block="mobile")
    assert count_parameters(ours) == count_parameters(ref) == 2_305_504
    assert round(count_parameters(ours) / 1e6, 2) == 2.31
    assert _shapes(ours) == _shapes(ref)
    assert infer_spec(ref.state_dict()) == ours.spec


@pytest.mark.parametrize("stacks, blocks, feats", [(1, 1, 8), (2, 2, 8), (3, 1, 32)])
def test_keys_and_shapes_match_reference_construction(stacks, blocks, feats):
    with torch.device("meta"):
        ours = create_model(HourglassSpec(stacks, 2 * feats, blocks, block="mobile"))
        ref = MobileRefHourglassNet(num_stacks=stacks, num_blocks=blocks, num_feats=feats)
    assert _shapes(ours) == _shapes(ref)
    # Every 3x3 convolution is depthwise; the 7x7 stem and 1x1 heads are dense.
    assert ours.hg[0].hg[0][0][0].conv2.weight.shape == (feats, 1, 3, 3)
    assert ours.layer1[0].conv2.weight.shape == (feats // 2, 1, 3, 3)
    assert ours.conv1.weight.shape == (feats // 2, 3, 7, 7)


@pytest.mark.parametrize("legacy", [False, True])
def test_reimplementation_checkpoint_loads_with_same_outputs(tmp_path, legacy):
    """A ``model_best.pth.tar`` as the reimplementation's trainer writes it (pytorch-pose's dict,
    DataParallel ``module.`` keys): fpdctl infers the mobile spec and computes the same heatmaps."""
    ref = _reference(stacks=2, feats=8)
    path = tmp_path / "model_best.pth.tar"
    torch.save(
        {
            "epoch": 150,
            "arch": "hg",
            "state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()},
            "best_acc": 0.8541,
            "optimizer": {"state": {}, "param_groups": [{"lr": 2.5e-4, "params": [0, 1]}]},
        },
        path,
        _use_new_zipfile_serialization=not legacy,
    )
    model = create_model(path)
    assert model.spec == HourglassSpec(2, 16, block="mobile") and model.spec.name == "hg2x16m"
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected = torch.stack(ref(x), dim=1)
        got = model(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    _, meta = read_checkpoint(path)
    assert meta["format"] == "pytorch-pose" and meta["epoch"] == "150"


def test_standard_and_mobile_weights_do_not_cross_load(tmp_path):
    path = tmp_path / "model_best.pth.tar"
    torch.save({"arch": "hg", "state_dict": _reference(stacks=1).state_dict()}, path)
    with pytest.raises(
        CheckpointError,
        match=r"does not fit hg1x16: tensor 'layer1\.0\.conv2\.weight' "
        r"has shape \(4, 1, 3, 3\), expected \(4, 4, 3, 3\)",
    ):
        create_model(path, spec="hg1x16")
    assert create_model(path, spec="hg1x16m").spec.block == "mobile"


def test_native_checkpoint_stores_the_block_type(tmp_path):
    model = _reference(stacks=1)
    ours = create_model("hg1x16m")
    ours.load_state_dict(model.state_dict())
    path = save_model(ours, tmp_path / "mobile.safetensors")
    with safe_open(str(path), "pt") as handle:
        stored = json.loads(handle.metadata()[SPEC_KEY])
    assert stored == {"stacks": 1, "channels": 16, "blocks": 1, "joints": 16, "depth": 4, "block": "mobile"}
    loaded = create_model(path)
    assert loaded.spec == ours.spec
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), ours.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "name, spec",
    [
        ("hg2x256m", HourglassSpec(2, 256, block="mobile")),
        ("hg2x64b2m", HourglassSpec(2, 64, blocks=2, block="mobile")),
        ("hg1x16j14d3m", HourglassSpec(1, 16, joints=14, depth=3, block="mobile")),
    ],
)
def test_mobile_names_round_trip(name, spec):
    assert HourglassSpec.from_name(name) == spec
    assert spec.name == name
    assert HourglassSpec.from_json(spec.to_json()) == spec


def test_standard_spec_serialises_as_before_block_types():
    # Checkpoints and ONNX files of standard models keep the exact spec JSON they always had, and
    # files written before block types existed (no "block") load as standard.
    assert HourglassSpec(4, 128).to_json() == ('{"blocks": 1, "channels": 128, "depth": 4, "joints": 16, "stacks": 4}')
    assert HourglassSpec.from_json('{"stacks": 4, "channels": 128, "blocks": 1}').block == "standard"
    assert HourglassSpec(4, 128, block="mobile").to_dict()["block"] == "mobile"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: HourglassSpec(2, 64, block="dw"), "block must be one of standard, mobile, got 'dw'"),
        (lambda: HourglassSpec.from_dict({"stacks": 2, "channels": 64, "block": 1}), "block must be a string"),
        (lambda: HourglassSpec.from_name("hg2x64mm"), "unknown model name 'hg2x64mm'"),
        (lambda: HourglassSpec.from_name("hg2x64mb2"), "unknown model name 'hg2x64mb2'"),
    ],
)
def test_invalid_block_types(make, message):
    with pytest.raises(UsageError, match=message):
        make()


def test_forward_shape_and_gradients():
    model = create_model("hg2x16m").train()
    out = model(torch.randn(2, 3, 64, 128))
    assert out.shape == (2, 2, 16, 16, 32)
    out.square().mean().backward()
    assert model.hg[1].hg[3][2][0].conv2.weight.grad.abs().sum() > 0
