"""Converting input tensors between conventions (numpy and torch, one affine), the adapter that
feeds a model its own convention, the override object, and the one normalisation path of the
pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fpdctl.errors import UsageError
from fpdctl.models.convention import (
    FPD_OFFICIAL,
    NATIVE,
    PRESETS,
    PYTORCH_POSE_LSP,
    PYTORCH_POSE_MPII,
    ConventionOverride,
    InputConvention,
    conversion,
    convert_array,
)
from fpdctl.models.input_adapter import InputAdapter, adapt_input, convert_tensor
from tests.conftest import make_net

CUSTOM = InputConvention("bgr", (0.3, 0.5, 0.7), (0.5, 1.0, 2.0), max_pixel_value=65535.0)
CONVENTIONS = [*PRESETS.values(), CUSTOM]
IDS = [c.name for c in CONVENTIONS]


def _rgb(shape: tuple[int, ...] = (2, 9, 11, 3), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _normalized(convention: InputConvention, rgb: np.ndarray) -> np.ndarray:
    """``convention``'s input for uint8 RGB pixels (a 16-bit convention sees them x 257)."""
    pixels = rgb.astype(np.float32) * np.float32(convention.max_pixel_value / 255.0)
    return convention.normalize_batch(pixels)


@pytest.mark.parametrize("target", CONVENTIONS, ids=IDS)
@pytest.mark.parametrize("source", CONVENTIONS, ids=IDS)
def test_converting_equals_normalising_the_pixels_directly(source, target) -> None:
    rgb = _rgb()
    got = convert_array(_normalized(source, rgb), source, target)
    np.testing.assert_allclose(got, _normalized(target, rgb), rtol=0, atol=2e-5)
    assert got.dtype == np.float32 and got.shape == (2, 3, 9, 11)


def test_native_to_pytorch_pose_by_hand() -> None:
    """Pure red (255, 0, 0) in NATIVE is ((1 - .485)/.229, -.456/.224, -.406/.225); pytorch-pose
    wants (1 - .4404, -.4440, -.4327): scale = std_native / 1, shift = mean_native - mean_pp."""
    channels, scale, shift = conversion(NATIVE, PYTORCH_POSE_MPII)
    assert channels == (0, 1, 2)
    np.testing.assert_allclose(scale, NATIVE.std, rtol=1e-7)
    np.testing.assert_allclose(shift, np.subtract(NATIVE.mean, PYTORCH_POSE_MPII.mean), rtol=1e-6)
    red = np.array([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], np.float32).reshape(3, 1, 1)
    expected = np.subtract((1.0, 0.0, 0.0), PYTORCH_POSE_MPII.mean).reshape(3, 1, 1)
    np.testing.assert_allclose(convert_array(red, NATIVE, PYTORCH_POSE_MPII), expected, atol=1e-6)


def test_native_to_fpd_official_reverses_the_channels() -> None:
    """FPD's channel 0 is blue normalised with ImageNet's red statistics."""
    channels, _, _ = conversion(NATIVE, FPD_OFFICIAL)
    assert channels == (2, 1, 0)
    blue_only = np.zeros((3, 1, 1), np.float32)
    blue_only[2] = (1.0 - NATIVE.mean[2]) / NATIVE.std[2]  # NATIVE channel 2: blue at 255
    blue_only[0] = -NATIVE.mean[0] / NATIVE.std[0]
    blue_only[1] = -NATIVE.mean[1] / NATIVE.std[1]
    got = convert_array(blue_only, NATIVE, FPD_OFFICIAL)[:, 0, 0]
    expected = [(1.0 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225]  # B, G, R with R, G, B stats
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_round_trip_and_identity() -> None:
    x = _normalized(NATIVE, _rgb())
    back = convert_array(convert_array(x, NATIVE, CUSTOM), CUSTOM, NATIVE)
    np.testing.assert_allclose(back, x, atol=1e-5)
    assert convert_array(x, NATIVE, NATIVE) is x
    # Equality ignores the name and the training sigma: nothing to convert.
    assert convert_array(x, NATIVE, InputConvention(name="mine", train_sigma=1.0)) is x
    with pytest.raises(ValueError, match=r"expected input tensors \[\.\.\., 3, H, W\], got shape \(4, 9, 11\)"):
        convert_array(np.zeros((4, 9, 11), np.float32), NATIVE, FPD_OFFICIAL)


@pytest.mark.parametrize("target", CONVENTIONS, ids=IDS)
def test_torch_side_equals_numpy_side(target) -> None:
    x = _normalized(NATIVE, _rgb((3, 8, 8, 3), seed=1))
    expected = convert_array(x, NATIVE, target)
    got = convert_tensor(torch.from_numpy(x), NATIVE, target)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-6)
    # channels_last in, channels_last out (the teacher's layout in training); same values.
    last = convert_tensor(torch.from_numpy(x).contiguous(memory_format=torch.channels_last), NATIVE, target)
    assert last.is_contiguous(memory_format=torch.channels_last) or target == NATIVE
    np.testing.assert_allclose(last.numpy(), expected, rtol=0, atol=1e-6)


def test_torch_identity_and_bad_shape() -> None:
    x = torch.zeros(1, 3, 4, 4)
    assert convert_tensor(x, NATIVE, NATIVE) is x
    with pytest.raises(ValueError, match=r"got shape \(1, 4, 4, 3\)"):
        convert_tensor(torch.zeros(1, 4, 4, 3), NATIVE, FPD_OFFICIAL)


def test_adapter_feeds_the_network_its_own_convention() -> None:
    net = make_net()
    assert adapt_input(net, NATIVE) is net  # a native network needs nothing
    net.input_convention = PYTORCH_POSE_LSP
    adapter = adapt_input(net, NATIVE)
    assert isinstance(adapter, InputAdapter) and adapter.net is net and adapter.spec is net.spec
    assert adapter.input_convention is NATIVE and adapter.target is PYTORCH_POSE_LSP
    rgb = _rgb((2, 64, 64, 3), seed=2)
    with torch.no_grad():
        through = adapter(torch.from_numpy(NATIVE.normalize_batch(rgb)))
        direct = net(torch.from_numpy(PYTORCH_POSE_LSP.normalize_batch(rgb)))
    np.testing.assert_allclose(through.numpy(), direct.numpy(), rtol=0, atol=1e-5)
    assert adapter.to(memory_format=torch.channels_last) is adapter  # moves like any module


# --- the override object ------------------------------------------------------------------------


def test_override_object() -> None:
    assert not ConventionOverride().given
    override = ConventionOverride(mean="0.4442,0.4302,0.4039")
    assert override.given and override.check() is override
    lsp = override.apply(PYTORCH_POSE_MPII)
    assert lsp.name == "custom" and lsp.std == (1.0, 1.0, 1.0) and lsp.train_sigma == 1.0
    assert ConventionOverride(preset="fpd-official").apply(NATIVE) is FPD_OFFICIAL


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (ConventionOverride(std="0,1,1"), "`input_std` must be positive (1 divides by nothing), got 0"),
        (
            ConventionOverride(std="1,1,0", param_prefix="teacher_input"),
            "`teacher_input_std` must be positive (1 divides by nothing), got 0",
        ),
        (
            ConventionOverride(mean="0.5,0.5,1.5", param_prefix="teacher_input"),
            "`teacher_input_mean` must lie in [0, 1] (pixels are scaled to [0, 1] first), got 1.5",
        ),
        (
            ConventionOverride(order="rbg", param_prefix="teacher_input"),
            "`teacher_input_order` must be 'rgb' or 'bgr', got 'rbg'",
        ),
        (
            ConventionOverride(preset="caffe", param_prefix="teacher_input"),
            "`teacher_input_convention` must be one of native, pytorch-pose-mpii, pytorch-pose-lsp, "
            "fpd-official; got 'caffe'",
        ),
    ],
)
def test_override_check_names_the_parameter(override: ConventionOverride, message: str) -> None:
    with pytest.raises(UsageError) as info:
        override.check()
    assert str(info.value) == message
    assert info.value.params == (message.split()[0].strip("`"),)


# --- one normalisation path ---------------------------------------------------------------------


@pytest.mark.parametrize("convention", CONVENTIONS[:-1], ids=IDS[:-1])
def test_pipeline_normalise_is_the_conventions_own(convention) -> None:
    from fpdctl.pipeline import normalise

    bgr = _rgb((3, 16, 16, 3), seed=3)
    expected = convention.normalize_batch(bgr[..., ::-1])
    np.testing.assert_array_equal(normalise(bgr, convention), expected)
    np.testing.assert_array_equal(normalise(bgr[0], convention), expected[0])


def test_the_datasets_samples_are_native() -> None:
    """What every dataset yields (transforms.normalize_image of an OpenCV crop) is NATIVE."""
    from fpdctl.data.transforms import MEAN, STD, normalize_image

    assert (MEAN, STD) == (NATIVE.mean, NATIVE.std)
    bgr = _rgb((16, 16, 3), seed=4)
    np.testing.assert_allclose(normalize_image(bgr), NATIVE.normalize(bgr, source_order="bgr"), rtol=0, atol=1e-6)
