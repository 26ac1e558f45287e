"""Heatmap codec: golden values, round trips and flip_back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fpdctl.codec import HeatmapCodec, decode_heatmaps, flip_back
from fpdctl.skeleton import LSP, MPII


def test_encode_golden_values() -> None:
    codec = HeatmapCodec(256, 64, sigma=2.0)
    joints = np.array([[40.0, 80.0, 1.0]] + [[0, 0, 0]] * 15, np.float32)
    heatmaps, weights = codec.encode(joints)
    assert heatmaps.shape == (16, 64, 64) and heatmaps.dtype == np.float32
    # Joint at input (40, 80) -> heatmap (10, 20); one heatmap pixel away: exp(-1 / (2 sigma^2)).
    assert heatmaps[0, 20, 10] == pytest.approx(1.0)
    assert heatmaps[0, 20, 11] == pytest.approx(math.exp(-1 / 8), rel=1e-6)
    assert heatmaps[0, 22, 12] == pytest.approx(math.exp(-8 / 8), rel=1e-6)
    assert weights.tolist() == [1.0] + [0.0] * 15
    assert not heatmaps[1:].any()


def test_weights_for_unannotated_and_outside_joints() -> None:
    codec = HeatmapCodec(256, 64)
    joints = np.array(
        [[10, 10, 1], [10, 10, 0], [-0.5, 10, 1], [256, 10, 1], [255.9, 255.9, 1], [np.nan, 3, 1]], np.float32
    )
    heatmaps, weights = codec.encode(joints)
    assert weights.tolist() == [1, 0, 0, 0, 1, 0]
    assert not heatmaps[[1, 2, 3, 5]].any()


def test_round_trip_within_a_quarter_heatmap_pixel() -> None:
    rng = np.random.default_rng(0)
    for input_size, heatmap_size in ((256, 64), (128, 32), (64, 16)):
        codec = HeatmapCodec(input_size, heatmap_size)
        stride = input_size / heatmap_size
        joints = np.concatenate(
            [rng.uniform(2 * stride, input_size - 2 * stride, (16, 2)), np.ones((16, 1))], axis=1
        ).astype(np.float32)
        heatmaps, _ = codec.encode(joints)
        coords, scores = codec.decode(torch.from_numpy(heatmaps)[None])
        assert coords.shape == (1, 16, 2) and scores.shape == (1, 16)
        err = np.abs(coords[0] - joints[:, :2]) / stride
        assert err.max() <= 0.25 + 1e-5
        assert scores.min() > math.exp(-0.5 / 8) - 1e-6  # the peak pixel is within half a pixel


def test_decode_quarter_shift_golden() -> None:
    heatmaps = np.zeros((1, 3, 5, 6), np.float32)
    heatmaps[0, 0, 2, 3], heatmaps[0, 0, 2, 4], heatmaps[0, 0, 1, 3] = 1.0, 0.5, 0.2  # right, up
    heatmaps[0, 1, 2, 0], heatmaps[0, 1, 2, 1] = 1.0, 0.9  # at the border: no x shift
    heatmaps[0, 2, 3, 2] = 1.0  # symmetric: no shift
    coords, scores = decode_heatmaps(heatmaps)
    np.testing.assert_allclose(coords[0], [[3.25, 1.75], [0.0, 2.0], [2.0, 3.0]])
    np.testing.assert_allclose(scores[0], [1.0, 1.0, 1.0])
    scaled, _ = HeatmapCodec((24, 10), (6, 5)).decode(heatmaps)  # strides 4 on x, 2 on y
    np.testing.assert_allclose(scaled[0, 0], [3.25 * 4, 1.75 * 2])


def test_flip_back_matches_the_reference_shift() -> None:
    """Heatmaps of a flipped input, flipped back, equal the unflipped heatmaps moved one quarter
    heatmap pixel right (the official code's one-pixel shift over-corrects the 0.75 px offset)."""
    codec = HeatmapCodec(256, 64)
    rng = np.random.default_rng(3)
    joints = np.concatenate([rng.uniform(20, 230, (16, 2)), np.ones((16, 1))], axis=1).astype(np.float32)
    flipped = joints[MPII.flip_permutation()].copy()
    flipped[:, 0] = 255.0 - flipped[:, 0]  # what image[:, ::-1] does to x on a 256 px input
    hm_flipped, _ = codec.encode(flipped)
    back = flip_back(torch.from_numpy(hm_flipped)[None], MPII)[0].numpy()
    shifted = joints.copy()
    shifted[:, 0] += 0.25 * 4
    expected, _ = codec.encode(shifted)
    np.testing.assert_allclose(back[:, :, 1:], expected[:, :, 1:], atol=1e-5)
    np.testing.assert_array_equal(back[:, :, 0], hm_flipped[MPII.flip_permutation()][:, :, -1])


def test_flip_back_checks_channels_and_accepts_names() -> None:
    x = torch.rand(2, 14, 8, 8)
    out = flip_back(x, "lsp")
    np.testing.assert_array_equal(out[:, 6, :, 1:].numpy(), torch.flip(x, dims=[3])[:, 11, :, :-1].numpy())
    assert flip_back(x, LSP).shape == x.shape
    with pytest.raises(ValueError, match=r"expected heatmaps \[N, 16, h, w\] for joint set 'mpii'"):
        flip_back(x, MPII)
