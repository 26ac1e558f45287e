"""Crop affines, point transforms, augmentation draws and normalisation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from fpdctl.boxes import PIXEL_STD
from fpdctl.data.transforms import (
    MEAN,
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
    affines = np.stack(
        [crop_affine(rng.uniform(0, 500, 2), rng.uniform(0.5, 4), rng.uniform(-40, 40), 256) for _ in range(4)]
    )
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
    """The "uniform" style (fpdctl's earlier recipe, kept as an option)."""
    config = AugmentConfig.for_style("uniform")
    assert (config.style, config.color) == ("uniform", 0.2)
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


def _official_reference(seed: int, count: int) -> list[tuple[float, float, bool]]:
    """The official JointsDataset's draws, written from its code (sf 0.25, rf 30, flip):
    ``s * clip(randn() * sf + 1, 1 - sf, 1 + sf)``; ``r = clip(randn() * rf, -2 rf, 2 rf) if
    random() <= 0.6 else 0``; flip ``if random() <= 0.5``; on one numpy stream."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        s = float(np.clip(rng.standard_normal() * 0.25 + 1, 0.75, 1.25))
        r = float(np.clip(rng.standard_normal() * 30, -60, 60))
        r = r if rng.random() <= 0.6 else 0.0
        out.append((s, r, bool(rng.random() <= 0.5)))
    return out


def test_official_draws_are_the_official_codes() -> None:
    config = AugmentConfig()  # the default is the official recipe
    assert (config.style, config.scale, config.rotation, config.rotation_prob, config.flip_prob, config.color) == (
        "official",
        0.25,
        30.0,
        0.6,
        0.5,
        0.0,
    )
    assert AugmentConfig.for_style("official") == config
    rng = np.random.default_rng(2024)
    draws = [sample_augmentation(config, rng) for _ in range(500)]
    assert [(d.scale_factor, d.rotation, d.flip) for d in draws] == _official_reference(2024, 500)
    assert all(d.color_gain is None for d in draws)  # no colour jitter


def test_official_draws_statistics() -> None:
    """10000 draws, seed 0: clip bounds, rotation probability, flip, no jitter; each statistic
    within 4 standard errors of the distribution's value."""
    n = 10000
    rng = np.random.default_rng(0)
    draws = [sample_augmentation(AugmentConfig(), rng) for _ in range(n)]
    scales = np.array([d.scale_factor for d in draws])
    rots = np.array([d.rotation for d in draws])
    flips = np.array([d.flip for d in draws])
    # Exact for this seed (the reference draws), and near 0.6.
    rotated = int((rots != 0).sum())
    assert rotated == sum(1 for _s, r, _f in _official_reference(0, n) if r != 0) == 6025
    assert abs(rotated / n - 0.6) < 4 * math.sqrt(0.6 * 0.4 / n)
    assert abs(flips.mean() - 0.5) < 4 * math.sqrt(0.25 / n)
    # Scale: N(1, 0.25) clipped at 0.75 / 1.25, so P(at each bound) = P(z < -1) = 0.1587.
    assert scales.min() == 0.75 and scales.max() == 1.25
    p_bound = 0.5 * math.erfc(1 / math.sqrt(2))
    for bound in (0.75, 1.25):
        assert abs((scales == bound).mean() - p_bound) < 4 * math.sqrt(p_bound * (1 - p_bound) / n)
    inside = scales[(scales > 0.75) & (scales < 1.25)]
    assert abs(inside.mean() - 1.0) < 0.01
    # Rotation: N(0, 30) clipped at +-60 when rotated: P(at a bound | rotated) = P(z > 2).
    turned = rots[rots != 0]
    assert np.abs(turned).max() == 60.0
    p_clip = math.erfc(2 / math.sqrt(2))  # both bounds
    assert abs((np.abs(turned) == 60.0).mean() - p_clip) < 4 * math.sqrt(p_clip * (1 - p_clip) / rotated)
    # The median |angle| of a half-normal with sigma 30 is 30 x 0.6745 (clipping leaves it).
    assert abs(np.median(np.abs(turned)) - 30 * 0.67449) < 1.0
    assert abs(turned.mean()) < 4 * 30 / math.sqrt(rotated)
    assert all(d.color_gain is None for d in draws)


def test_probabilities_of_zero_and_one() -> None:
    rng = np.random.default_rng(5)
    never = [sample_augmentation(AugmentConfig(rotation_prob=0.0, flip_prob=0.0), rng) for _ in range(300)]
    assert all(d.rotation == 0.0 and not d.flip for d in never)
    always = [sample_augmentation(AugmentConfig(rotation_prob=1.0, flip_prob=1.0), rng) for _ in range(300)]
    assert all(d.rotation != 0.0 and d.flip for d in always)


@pytest.mark.parametrize(
    "kwargs", [{"scale": 1.0}, {"rotation": -1}, {"flip_prob": 1.5}, {"color": -0.1}, {"style": "gaussian"}]
)
def test_augment_config_validation(kwargs) -> None:
    with pytest.raises(ValueError):
        AugmentConfig(**kwargs)
