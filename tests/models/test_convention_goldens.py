"""Goldens: on a real LSPET photo, the network input each reference project builds (re-stated in
tests/reference_preprocessing.py from its own code) and fpdctl's InputConvention agree to 1e-5.

Every side starts from the SAME crop pixels, so only what happens after the crop (channel order,
scale, mean, std) is under test. Skipped when ../shared/data is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpdctl.models.convention import FPD_OFFICIAL, NATIVE, PYTORCH_POSE_MPII
from tests import reference_preprocessing as ref

TOLERANCE = 1e-5
CROP_SIZE = 256
PHOTO_INDEX = 0  # im00001.jpg


def _person_box(lspet400: Path) -> tuple[tuple[float, float], float]:
    """Centre and scale (box side / 200 px, enlarged 1.25x as both projects do) of the photo's
    annotated person, from its visible joints."""
    from scipy.io import loadmat

    joints = loadmat(str(lspet400 / "joints.mat"))["joints"][:, :, PHOTO_INDEX]  # [14, 3]: x, y, visible
    visible = joints[joints[:, 2] > 0, :2]
    low, high = visible.min(axis=0), visible.max(axis=0)
    centre = (float(low[0] + high[0]) / 2, float(low[1] + high[1]) / 2)
    return centre, float((high - low).max()) * 1.25 / 200.0


@pytest.fixture(scope="module")
def photo(lspet400: Path) -> Path:
    return lspet400 / "images" / f"im{PHOTO_INDEX + 1:05d}.jpg"


@pytest.fixture(scope="module")
def crop_bgr(lspet400: Path, photo: Path) -> np.ndarray:
    """The person in the photo, cropped once (the official FPD code's way, rotated by 20 degrees so
    the black border is in it too): uint8 [256, 256, 3], B, G, R."""
    centre, scale = _person_box(lspet400)
    crop = ref.fpd_crop(ref.fpd_read(photo), centre, scale, 20.0, CROP_SIZE)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3) and crop.dtype == np.uint8
    assert crop.min() == 0 and crop.max() > 200 and crop.std() > 20  # a real, varied crop
    return crop


@pytest.fixture(scope="module")
def crop_rgb(crop_bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(crop_bgr[..., ::-1])


def test_readers_differ_only_in_channel_order(photo: Path) -> None:
    """pytorch-pose decodes with PIL to RGB, the FPD code with OpenCV to BGR: the same pixels
    (to JPEG decoder rounding), channels reversed."""
    rgb = ref.pytorch_pose_read(photo)
    bgr = ref.fpd_read(photo)
    assert rgb.shape == bgr.shape and rgb.dtype == bgr.dtype == np.uint8
    assert np.abs(rgb.astype(np.int16) - bgr[..., ::-1]).mean() < 0.5
    assert np.abs(rgb.astype(np.int16) - bgr).mean() > 5  # the orders really differ


def test_pytorch_pose_golden(crop_rgb: np.ndarray) -> None:
    expected = ref.pytorch_pose_input(crop_rgb).numpy()
    got = PYTORCH_POSE_MPII.normalize(crop_rgb)
    assert got.shape == expected.shape == (3, CROP_SIZE, CROP_SIZE)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    # The preset's mean is the float32 content of pytorch-pose's mean.pth.tar.
    np.testing.assert_array_equal(np.float32(PYTORCH_POSE_MPII.mean), ref.PYTORCH_POSE_MPII_MEAN_PTH.numpy())


def test_fpd_official_golden(crop_rgb: np.ndarray, crop_bgr: np.ndarray) -> None:
    expected = ref.fpd_input(crop_bgr).numpy()
    np.testing.assert_allclose(FPD_OFFICIAL.normalize(crop_rgb), expected, rtol=0, atol=TOLERANCE)
    # From OpenCV's BGR directly (how fpdctl's pipeline reads images), the same tensor.
    np.testing.assert_allclose(FPD_OFFICIAL.normalize(crop_bgr, source_order="bgr"), expected, rtol=0, atol=TOLERANCE)


def test_batched_goldens(crop_rgb: np.ndarray, crop_bgr: np.ndarray) -> None:
    batch = np.stack([crop_rgb, crop_rgb[::-1]])  # the second one upside down
    got = PYTORCH_POSE_MPII.normalize_batch(batch)
    for i in range(2):
        np.testing.assert_allclose(got[i], ref.pytorch_pose_input(batch[i]).numpy(), rtol=0, atol=TOLERANCE)
    got = FPD_OFFICIAL.normalize_batch(batch)
    np.testing.assert_allclose(got[1], ref.fpd_input(np.ascontiguousarray(crop_bgr[::-1])).numpy(), atol=TOLERANCE)


def test_native_is_fpdctl_today(crop_rgb: np.ndarray, crop_bgr: np.ndarray) -> None:
    """The NATIVE preset is exactly what fpdctl's data pipeline feeds every model today."""
    from fpdctl.data.transforms import normalize_image

    np.testing.assert_allclose(NATIVE.normalize(crop_rgb), normalize_image(crop_bgr), rtol=0, atol=1e-6)


def test_pytorch_pose_inputs_are_4x_smaller_than_native(crop_rgb: np.ndarray) -> None:
    """What fpdctl fed a pytorch-pose checkpoint until now spans about 4x what it was trained on."""
    native = NATIVE.normalize(crop_rgb)
    theirs = ref.pytorch_pose_input(crop_rgb).numpy()
    ratio = native.std(axis=(1, 2)) / theirs.std(axis=(1, 2))
    np.testing.assert_allclose(ratio, 1.0 / np.array(NATIVE.std), rtol=1e-4)  # 4.37, 4.46, 4.44
    assert np.all((ratio > 4.0) & (ratio < 4.6))
    assert np.abs(native - theirs).mean() > 0.5


def test_fpd_inputs_have_red_and_blue_swapped_against_native(crop_rgb: np.ndarray, crop_bgr: np.ndarray) -> None:
    """The official FPD network's channel 0 holds blue; fpdctl fed it red until now."""
    native = NATIVE.normalize(crop_rgb)
    theirs = ref.fpd_input(crop_bgr).numpy()

    def correlation(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    assert correlation(theirs[0], native[2]) > 0.9999 and correlation(theirs[2], native[0]) > 0.9999
    np.testing.assert_allclose(theirs[1], native[1], atol=TOLERANCE)  # green sits in the middle of both
    assert np.abs(theirs[0] - native[0]).mean() > 0.1 and np.abs(theirs[2] - native[2]).mean() > 0.1
