"""InputConvention: presets, normalisation by hand-computed values, serialisation, inference from
the checkpoint kind, and the user's override flags with their exact error lines."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from fpdctl.errors import InputError, UsageError
from fpdctl.models.convention import (
    FPD_OFFICIAL,
    METADATA_KEY,
    NATIVE,
    PRESETS,
    PYTORCH_POSE_LSP,
    PYTORCH_POSE_MPII,
    InputConvention,
    infer_convention,
    parse_convention_override,
)


def _random_rgb(shape: tuple[int, ...] = (5, 7, 3), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# --- presets ---------------------------------------------------------------------------------


def test_presets_hold_the_documented_values() -> None:
    assert (NATIVE.order, NATIVE.mean, NATIVE.std) == ("rgb", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert PYTORCH_POSE_MPII.order == "rgb" and PYTORCH_POSE_MPII.std == (1.0, 1.0, 1.0)
    # The values of pytorch-pose's data/mpii/mean.pth.tar, quoted to 4 places as (0.4404, 0.4440, 0.4327).
    assert np.allclose(PYTORCH_POSE_MPII.mean, (0.4404, 0.4440, 0.4327), atol=5e-5)
    assert np.allclose(PYTORCH_POSE_LSP.mean, (0.4442, 0.4302, 0.4039), atol=5e-5)
    assert (FPD_OFFICIAL.order, FPD_OFFICIAL.mean, FPD_OFFICIAL.std) == ("bgr", NATIVE.mean, NATIVE.std)
    assert all(p.max_pixel_value == 255.0 for p in PRESETS.values())
    assert (NATIVE.train_sigma, PYTORCH_POSE_MPII.train_sigma, FPD_OFFICIAL.train_sigma) == (None, 1.0, 2.0)
    assert sorted(PRESETS) == ["fpd-official", "native", "pytorch-pose-lsp", "pytorch-pose-mpii"]


def test_native_is_what_the_data_pipeline_uses_today() -> None:
    from fpdctl.data import transforms

    assert NATIVE.mean == transforms.MEAN and NATIVE.std == transforms.STD


def test_equality_ignores_name_and_sigma() -> None:
    assert InputConvention("bgr", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) == FPD_OFFICIAL
    assert NATIVE != FPD_OFFICIAL and NATIVE != PYTORCH_POSE_MPII
    assert hash(InputConvention()) == hash(NATIVE)


def test_describe_is_one_line_per_preset() -> None:
    assert NATIVE.describe() == "native (RGB, x/255, mean 0.485,0.456,0.406, std 0.229,0.224,0.225)"
    assert PYTORCH_POSE_MPII.describe() == (
        "pytorch-pose-mpii (RGB, x/255, mean 0.4404,0.444,0.4327, std none, trained at sigma 1)"
    )
    assert FPD_OFFICIAL.describe() == (
        "fpd-official (BGR, x/255, mean 0.485,0.456,0.406, std 0.229,0.224,0.225, trained at sigma 2)"
    )


# --- normalize -------------------------------------------------------------------------------


def test_normalize_pure_red_by_hand() -> None:
    red = np.zeros((2, 3, 3), np.uint8)
    red[..., 0] = 255
    native = NATIVE.normalize(red)
    assert native.shape == (3, 2, 3) and native.dtype == np.float32
    np.testing.assert_allclose(native[:, 0, 0], [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6)
    # pytorch-pose: only the mean comes off.
    np.testing.assert_allclose(
        PYTORCH_POSE_MPII.normalize(red)[:, 1, 2], np.subtract((1, 0, 0), PYTORCH_POSE_MPII.mean), rtol=1e-6
    )
    # Official FPD: channel 0 is blue (0 here) under red's statistics; red lands in channel 2.
    np.testing.assert_allclose(
        FPD_OFFICIAL.normalize(red)[:, 0, 0], [-0.485 / 0.229, -0.456 / 0.224, (1 - 0.406) / 0.225], rtol=1e-6
    )


def test_normalize_is_the_formula_on_random_pixels() -> None:
    rgb = _random_rgb()
    for preset in PRESETS.values():
        source = rgb if preset.order == "rgb" else rgb[..., ::-1]
        expected = (source.astype(np.float64) / 255 - np.array(preset.mean)) / np.array(preset.std)
        np.testing.assert_allclose(preset.normalize(rgb), expected.transpose(2, 0, 1), atol=1e-6)


def test_source_order_bgr_reads_opencv_images() -> None:
    rgb = _random_rgb()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    for preset in PRESETS.values():
        np.testing.assert_array_equal(preset.normalize(bgr, source_order="bgr"), preset.normalize(rgb))


def test_float_pixels_match_uint8() -> None:
    rgb = _random_rgb()
    for preset in PRESETS.values():
        np.testing.assert_allclose(preset.normalize(rgb.astype(np.float32)), preset.normalize(rgb), atol=1e-6)


def test_batch_matches_one_by_one() -> None:
    batch = _random_rgb((4, 5, 6, 3))
    for preset in (NATIVE, FPD_OFFICIAL):
        out = preset.normalize_batch(batch)
        assert out.shape == (4, 3, 5, 6) and out.dtype == np.float32
        for i in range(4):
            np.testing.assert_array_equal(out[i], preset.normalize(batch[i]))
        np.testing.assert_array_equal(preset.normalize_batch(batch[..., ::-1], source_order="bgr"), out)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 4), (2, 5, 7, 3)])
def test_normalize_refuses_other_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expected an image \[H, W, 3\]"):
        NATIVE.normalize(np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match=r"expected images \[N, H, W, 3\]"):
        NATIVE.normalize_batch(np.zeros((5, 7, 3), np.uint8))


def test_normalize_refuses_an_unknown_source_order() -> None:
    with pytest.raises(UsageError, match="^source order must be 'rgb' or 'bgr', got 'hsv'$"):
        NATIVE.normalize(_random_rgb(), source_order="hsv")


# --- serialisation ---------------------------------------------------------------------------


def test_dict_round_trip_keeps_everything() -> None:
    for preset in PRESETS.values():
        data = preset.to_dict()
        assert set(data) == {"name", "order", "mean", "std", "max_pixel_value", "train_sigma"}
        back = InputConvention.from_dict(json.loads(json.dumps(data)))
        assert back == preset and back.to_dict() == data
        assert InputConvention.from_json(preset.to_json()).to_dict() == data


def test_json_is_stable() -> None:
    assert FPD_OFFICIAL.to_json() == (
        '{"max_pixel_value":255.0,"mean":[0.485,0.456,0.406],"name":"fpd-official","order":"bgr",'
        '"std":[0.229,0.224,0.225],"train_sigma":2.0}'
    )


def test_from_dict_defaults_the_optional_keys() -> None:
    back = InputConvention.from_dict({"order": "BGR", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    assert back == FPD_OFFICIAL and back.name == "custom" and back.train_sigma is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"order": "rgb", "mean": [0.5] * 3}, "header: missing key 'std'"),
        (
            {"order": "rgb", "mean": [0.5] * 3, "std": [0, 1, 1]},
            "header: input std must be positive (1 divides by nothing), got 0",
        ),
        ({"order": "yuv", "mean": [0.5] * 3, "std": [1] * 3}, "header: input order must be 'rgb' or 'bgr', got 'yuv'"),
        (
            {"order": "rgb", "mean": [0.5] * 2, "std": [1] * 3},
            "header: input mean takes 3 numbers (one per channel), got 2",
        ),
        ([1, 2], "header: expected a JSON object, got list"),
    ],
)
def test_from_dict_errors(data: object, message: str) -> None:
    with pytest.raises(InputError) as info:
        InputConvention.from_dict(data, source="header")  # type: ignore[arg-type]
    assert str(info.value) == message


def test_from_json_refuses_bad_json() -> None:
    with pytest.raises(InputError, match="^header: not valid JSON"):
        InputConvention.from_json("{nope", source="header")


# --- inference from the checkpoint kind ------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "preset"),
    [
        ("fpdctl-safetensors", NATIVE),
        ("pytorch-pose", PYTORCH_POSE_MPII),
        ("fpd-checkpoint", FPD_OFFICIAL),
        ("state_dict", FPD_OFFICIAL),
    ],
)
def test_infer_convention_by_kind(kind: str, preset: InputConvention) -> None:
    found = infer_convention(kind)
    assert found is preset and found.name == preset.name


def test_stored_convention_wins_over_the_kind() -> None:
    metadata = {"format": "fpdctl-safetensors", METADATA_KEY: PYTORCH_POSE_MPII.to_json()}
    found = infer_convention("fpdctl-safetensors", metadata)
    assert found == PYTORCH_POSE_MPII and found.name == "pytorch-pose-mpii" and found.train_sigma == 1.0
    assert infer_convention("pytorch-pose", {"format": "pytorch-pose"}) is PYTORCH_POSE_MPII


def test_infer_convention_errors() -> None:
    with pytest.raises(UsageError) as info:
        infer_convention("onnx")
    assert str(info.value) == (
        "unknown checkpoint kind 'onnx': expected one of fpdctl-safetensors, pytorch-pose, fpd-checkpoint, state_dict"
    )
    with pytest.raises(InputError, match=f"^'{METADATA_KEY}' metadata: missing key 'order'$"):
        infer_convention("fpdctl-safetensors", {METADATA_KEY: "{}"})


def test_infer_convention_matches_what_read_checkpoint_reports(tmp_path) -> None:
    import torch

    from fpdctl.models.checkpoint import read_checkpoint, save_model
    from tests.conftest import make_net

    net = make_net()
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    files = {
        "pytorch-pose": ({"epoch": 1, "arch": "hg", "state_dict": state, "best_acc": torch.tensor(0.5)}, "a.pth.tar"),
        "fpd-checkpoint": ({"epoch": 1, "model": "hg", "state_dict": state, "perf": 0.5}, "checkpoint.pth"),
        "state_dict": (net.state_dict(), "model_best.pth"),
    }
    expected = {"pytorch-pose": PYTORCH_POSE_MPII, "fpd-checkpoint": FPD_OFFICIAL, "state_dict": FPD_OFFICIAL}
    for kind, (payload, name) in files.items():
        torch.save(payload, tmp_path / name)
        _, metadata = read_checkpoint(tmp_path / name)
        assert metadata["format"] == kind
        assert infer_convention(metadata["format"], metadata) is expected[kind]
    save_model(net, tmp_path / "native.safetensors")
    _, metadata = read_checkpoint(tmp_path / "native.safetensors")
    assert infer_convention(metadata["format"], metadata) is NATIVE


# --- user overrides --------------------------------------------------------------------------


def test_no_override_keeps_the_inferred_convention() -> None:
    assert parse_convention_override(PYTORCH_POSE_MPII) is PYTORCH_POSE_MPII


def test_preset_override() -> None:
    found = parse_convention_override(NATIVE, preset=" Pytorch-Pose-LSP ")
    assert found is PYTORCH_POSE_LSP and found.train_sigma == 1.0


def test_field_overrides_make_a_custom_convention() -> None:
    lsp = parse_convention_override(PYTORCH_POSE_MPII, mean="0.4442, 0.4302, 0.4039")
    assert lsp.name == "custom" and lsp.order == "rgb" and lsp.std == (1.0, 1.0, 1.0)
    assert lsp.mean == (0.4442, 0.4302, 0.4039) and lsp.train_sigma == 1.0  # the base's sigma
    # Mean and std are in the network's order: swapping the order alone gives the FPD convention.
    assert parse_convention_override(NATIVE, order="BGR") == FPD_OFFICIAL
    both = parse_convention_override(FPD_OFFICIAL, preset="native", order="rgb", std=[1, 1, 1])
    assert both == InputConvention("rgb", NATIVE.mean, (1.0, 1.0, 1.0)) and both.train_sigma is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"std": "0,1,1"}, "`input_std` must be positive (1 divides by nothing), got 0"),
        ({"std": "0.2,-0.2,0.2"}, "`input_std` must be positive (1 divides by nothing), got -0.2"),
        ({"mean": "0.4,1.5,0.4"}, "`input_mean` must lie in [0, 1] (pixels are scaled to [0, 1] first), got 1.5"),
        ({"mean": "-0.1,0.4,0.4"}, "`input_mean` must lie in [0, 1] (pixels are scaled to [0, 1] first), got -0.1"),
        ({"mean": "124,117,104"}, "`input_mean` must lie in [0, 1] (pixels are scaled to [0, 1] first), got 124"),
        ({"order": "rbg"}, "`input_order` must be 'rgb' or 'bgr', got 'rbg'"),
        ({"order": ""}, "`input_order` must be 'rgb' or 'bgr', got ''"),
        ({"mean": "0.4,0.5"}, "`input_mean` takes 3 comma-separated numbers (one per channel), got 2: '0.4,0.5'"),
        ({"std": "1,1,1,1"}, "`input_std` takes 3 comma-separated numbers (one per channel), got 4: '1,1,1,1'"),
        ({"std": ""}, "`input_std` takes 3 comma-separated numbers (one per channel), got 0: ''"),
        ({"std": [1.0, 1.0]}, "`input_std` takes 3 comma-separated numbers (one per channel), got 2: [1.0, 1.0]"),
        ({"mean": "0.4,x,0.4"}, "`input_mean`: 'x' is not a number (in '0.4,x,0.4')"),
        ({"mean": "0.4,nan,0.4"}, "`input_mean` must be finite, got nan"),
        ({"std": "1,inf,1"}, "`input_std` must be finite, got inf"),
        (
            {"preset": "caffe"},
            "`input_convention` must be one of native, pytorch-pose-mpii, pytorch-pose-lsp, fpd-official; got 'caffe'",
        ),
    ],
)
def test_bad_override_messages(flags: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_convention_override(NATIVE, **flags)  # type: ignore[arg-type]
    assert str(info.value) == message
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"std": (1, 1, 0)}, "input std must be positive (1 divides by nothing), got 0"),
        ({"mean": (0.5, 0.5, 2)}, "input mean must lie in [0, 1] (pixels are scaled to [0, 1] first), got 2"),
        ({"order": "RGBA"}, "input order must be 'rgb' or 'bgr', got 'RGBA'"),
        ({"mean": (0.5, 0.5)}, "input mean takes 3 numbers (one per channel), got 2"),
        ({"max_pixel_value": 0}, "max_pixel_value must be positive, got 0"),
        ({"train_sigma": -1}, "train_sigma must be positive, got -1"),
    ],
)
def test_constructor_validates(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as info:
        InputConvention(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_module_does_not_load_torch() -> None:
    code = "import sys, fpdctl.models.convention; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
