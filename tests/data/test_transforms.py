"""Crop affines, point transforms, augmentation draws and normalisation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from fpdctl.data.transforms import (
    MEAN,
    PIXEL_STD,
    STD,
    AugmentConfig,
    compose_affine,
    crop_affine,
    denormalize_image,
    hflip_affine,
    invert_affine,
    normalize_image,
    sample_augmentation,
    transform_points,
)


def test_crop_affine_maps_the_box_onto_the_output() -> None:
    center, scale, size = np.array([300.0, 200.0]), 1.5, 256
    affine = crop_affine(center, scale, 0.0, size)
    half = scale * PIXEL_STD / 2
    corners = np.array([[300 - half, 200 - half], [300 + half, 200 + half], [300, 200]])
    np.testing.assert_allclose(transform_points(corners, affine), [[0, 0], [256, 256], [128, 128]], atol=1e-4)


def test_rotation_matches_opencv_convention() -> None:
    center, rot = (100.0, 80.0), 30.0
    ours = crop_affine(center, 256 / PIXEL_STD, rot, 256)  # zoom 1
    theirs = cv2.getRotationMatrix2D(center, rot, 1.0)
    theirs[:, 2] += np.array([128.0, 128.0]) - np.array(center)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    # A point straight above the centre turns counter-clockwise on screen: toward the left.
    up = transform_points(np.array([[100.0, 70.0]]), ours)[0] - [128, 128]
    np.testing.assert_allclose(up, [-10 * math.sin(math.radians(30)), -10 * math.cos(math.radians(30))], atol=1e-4)


def test_invert_and_batched_transform_round_trip() -> None:
    rng = np.random.default_rng(0)
    affines = np.stack([crop_affine(rng.uniform(0, 500, 2), rng.uniform(0.5, 4), rng.uniform(-40, 40), 256) for _ in range(4)])
    points = rng.uniform(0, 600, (4, 16, 2))
    mapped = transform_points(points, affines)
    for k in range(4):
        np.testing.assert_allclose(mapped[k], transform_points(points[k], affines[k]), rtol=1e-5, atol=1e-3)
        back = transform_points(mapped[k], invert_affine(affines[k]))
        np.testing.assert_allclose(back, points[k], atol=2e-3)


def test_hflip_affine_is_array_mirroring() -> None:
    image = np.random.default_rng(1).integers(0, 255, (10, 17, 3), dtype=np.uint8)
    warped = cv2.warpAffine(image, hflip_affine(17), (17, 10), flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(warped, image[:, ::-1])
    both = compose_affine(hflip_affine(17), hflip_affine(17))
    np.testing.assert_allclose(both, [[1, 0, 0], [0, 1, 0]])


def test_normalize_image_golden() -> None:
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 128, 255  # B, G, R
    out = normalize_image(bgr)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    expected = [(255 / 255 - MEAN[0]) / STD[0], (128 / 255 - MEAN[1]) / STD[1], (10 / 255 - MEAN[2]) / STD[2]]
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-5)
    np.testing.assert_array_equal(denormalize_image(out), bgr)
    gained = normalize_image(bgr, color_gain=np.array([2.0, 1.0, 1.0], np.float32))
    np.testing.assert_allclose(gained[2, 0, 0], (20 / 255 - MEAN[2]) / STD[2], rtol=1e-5)
    np.testing.assert_allclose(normalize_image(bgr, np.array([1, 1, 2], np.float32))[0], out[0])  # clipped at 255


def test_augmentation_draws_stay_in_range() -> None:
    config = AugmentConfig()
    rng = np.random.default_rng(0)
    draws = [sample_augmentation(config, rng) for _ in range(4000)]
    scales = np.array([d.scale_factor for d in draws])
    rots = np.array([d.rotation for d in draws])
    assert scales.min() >= 0.75 and scales.max() <= 1.25
    assert np.abs(rots).max() <= 30.0
    assert abs((rots != 0).mean() - 0.6) < 0.03
    assert abs(np.mean([d.flip for d in draws]) - 0.5) < 0.03
    gains = np.stack([d.color_gain for d in draws])
    assert gains.min() >= 0.8 and gains.max() <= 1.2
    identity = sample_augmentation(None, rng)
    assert (identity.scale_factor, identity.rotation, identity.flip, identity.color_gain) == (1.0, 0.0, False, None)


@pytest.mark.parametrize("kwargs", [{"scale": 1.0}, {"rotation": -1}, {"flip_prob": 1.5}, {"color": -0.1}])
def test_augment_config_validation(kwargs) -> None:
    with pytest.raises(ValueError):
        AugmentConfig(**kwargs)
