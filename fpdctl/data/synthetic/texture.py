"""Background textures and sensor-noise fields of the synthetic images, built once per image size."""

from __future__ import annotations

import functools

import cv2
import numpy as np

_TEXTURE_TILES = 16
# Sensor noise levels: each noise tile sums three uniforms in [0, amplitude].
_NOISE_AMPLITUDES = (4, 8, 14)


@functools.lru_cache(maxsize=4)
def background_tiles(image_size: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Background textures and noise fields, built once per image size (per process).

    A background is the sum of random windows of two texture tiles, so every background differs
    while costing one saturating add (OpenCV's scalar and LUT paths are several times slower).
    Textures hold values 0..127 so that sums stay in range. Tiles come from a fixed seed, integer
    arithmetic and bit-exact resizes.

    Returns:
        (textures, noises): uint8 [T, T, 3] each, T = image_size + min(image_size, 256).
    """
    side = image_size + min(image_size, 256)
    rng = np.random.default_rng([0x5EED, image_size])
    textures = []
    for kind in range(_TEXTURE_TILES):
        # Mix of blob sizes: a few large smooth blobs to fine grain, with random weights.
        mix = np.zeros((side, side), dtype=np.int32)
        total = 0
        for cells in (3, 9, 27, side // 3):
            weight = int(rng.integers(1, 5))
            grid = rng.integers(0, 256, size=(cells, cells), dtype=np.uint8)
            smooth = cv2.resize(grid, (side, side), interpolation=cv2.INTER_LINEAR)
            mix += weight * smooth.astype(np.int32)
            total += weight
        level = (mix // total).astype(np.uint8)
        if kind % 4 == 1:  # stripes (walls, fences, fabric)
            step = int(rng.integers(6, 24))
            for x in range(0, 2 * side, step):
                shade, width = int(rng.integers(0, 256)), int(rng.integers(1, 4))
                cv2.line(level, (x, 0), (x - side, side), shade, width)
        elif kind % 4 == 3:  # tiles and windows
            step = int(rng.integers(16, 64))
            for x in range(0, side, step):
                cv2.line(level, (x, 0), (x, side), int(rng.integers(0, 256)), 2)
                cv2.line(level, (0, x), (side, x), int(rng.integers(0, 256)), 2)
        low = rng.integers(0, 256, size=3).astype(np.int32)
        high = rng.integers(0, 256, size=3).astype(np.int32)
        m = level.astype(np.int32)[:, :, None]
        textures.append(((low * (255 - m) + high * m) // 510).astype(np.uint8))
    noises = []
    for amplitude in _NOISE_AMPLITUDES:
        # Irwin-Hall (sum of uniforms) noise: near-Gaussian, exact integers.
        parts = rng.integers(0, amplitude + 1, size=(3, side, side, 3), dtype=np.int32)
        noises.append(parts.sum(axis=0).astype(np.uint8))
    return tuple(textures), tuple(noises)


__all__ = ["background_tiles"]
