"""Geometry and pixel transforms shared by every dataset: crop affines, augmentation, normalisation.

Conventions:
    * Pixel coordinates are 0-based and refer to pixel centres: pixel (0, 0) covers [-0.5, 0.5]^2.
    * A person box is given by ``center`` (image px) and ``scale`` in units of ``PIXEL_STD`` = 200 px
      (the MPII convention): the crop is a square of side ``scale * 200`` image pixels.
    * An affine is a float32 [2, 3] matrix ``A`` mapping column vectors ``(x, y, 1)`` from the source
      image to the output: the form ``cv2.warpAffine`` takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A person's size is in units of PIXEL_STD = 200 px (defined with the box geometry).
from fpdctl.boxes import PIXEL_STD

# ImageNet statistics (RGB, 0..1 scale), defined once in fpdctl.models.convention: the samples'
# normalisation is the NATIVE input convention (tests/models/test_convention_goldens.py).
from fpdctl.models.convention import IMAGENET_MEAN as MEAN
from fpdctl.models.convention import IMAGENET_STD as STD

_MEAN_BGR_255 = np.array(MEAN[::-1], dtype=np.float32) * 255.0
_INV_STD_BGR_255 = 1.0 / (np.array(STD[::-1], dtype=np.float32) * 255.0)


def _size_wh(output_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(output_size, (tuple, list)):
        return int(output_size[0]), int(output_size[1])
    return int(output_size), int(output_size)


def crop_affine(
    center: np.ndarray | tuple[float, float],
    scale: float,
    rotation_deg: float,
    output_size: int | tuple[int, int],
) -> np.ndarray:
    """Affine mapping a rotated person box in the image onto an output crop.

    The box of side ``scale * PIXEL_STD`` image px centred at ``center`` fills the output's width;
    ``center`` lands on the output centre ``(w / 2, h / 2)`` (the pytorch-pose / HRNet convention).
    A positive ``rotation_deg`` turns the image content counter-clockwise on screen, as
    ``cv2.getRotationMatrix2D`` does.

    Args:
        center: float [2], box centre (x, y) in image px.
        scale: box side in units of 200 px; must be > 0.
        rotation_deg: rotation in degrees.
        output_size: output side in px, or (width, height).

    Returns:
        float32 [2, 3], image px -> output px.
    """
    if not scale > 0:
        raise ValueError(f"crop scale must be positive, got {scale}")
    out_w, out_h = _size_wh(output_size)
    cx, cy = float(center[0]), float(center[1])
    zoom = out_w / (float(scale) * PIXEL_STD)
    theta = math.radians(rotation_deg)
    # Image y points down, so this matrix is a counter-clockwise turn on screen (cv2's convention).
    cos_t, sin_t = math.cos(theta) * zoom, math.sin(theta) * zoom
    affine = np.array(
        [
            [cos_t, sin_t, out_w * 0.5 - cos_t * cx - sin_t * cy],
            [-sin_t, cos_t, out_h * 0.5 + sin_t * cx - cos_t * cy],
        ],
        dtype=np.float64,
    )
    return affine.astype(np.float32)


def hflip_affine(width: int) -> np.ndarray:
    """The affine of a horizontal mirror of an image ``width`` px wide: x -> width - 1 - x.

    This is exactly what ``image[:, ::-1]`` does to pixel centres.

    Returns:
        float32 [2, 3].
    """
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]], dtype=np.float32)


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The affine ``outer(inner(p))``, both [2, 3]; returns float32 [2, 3]."""
    outer3 = np.vstack([np.asarray(outer, np.float64), [0.0, 0.0, 1.0]])
    inner3 = np.vstack([np.asarray(inner, np.float64), [0.0, 0.0, 1.0]])
    return (outer3 @ inner3)[:2].astype(np.float32)


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """The inverse of a [2, 3] affine (e.g. input px -> original image px); float32 [2, 3]."""
    full = np.vstack([np.asarray(affine, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2].astype(np.float32)


def transform_points(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a [2, 3] affine to points.

    Args:
        points: float [..., 2] (x, y).
        affine: float [2, 3], or [N, 2, 3] to apply one affine per leading item of ``points``
            (``points`` then has shape [N, ..., 2]).

    Returns:
        float32 [..., 2], same shape as ``points``.
    """
    pts = np.asarray(points, dtype=np.float64)
    mat = np.asarray(affine, dtype=np.float64)
    if mat.ndim == 2:
        out = pts @ mat[:, :2].T + mat[:, 2]
    else:
        flat = pts.reshape(pts.shape[0], -1, 2)
        out = np.einsum("nkj,nij->nki", flat, mat[:, :, :2]) + mat[:, None, :, 2]
        out = out.reshape(pts.shape)
    return out.astype(np.float32)


# How augmentation factors are drawn: "official" as the official FPD / HRNet code draws them
# (JointsDataset: clipped normal scale and rotation, no colour jitter), "uniform" as fpdctl did
# before (uniform scale and rotation, plus per-channel colour gains).
AUGMENT_STYLES: tuple[str, ...] = ("official", "uniform")
DEFAULT_AUGMENT_STYLE = "official"
# The colour jitter of the "uniform" style (the official recipe has none).
UNIFORM_COLOR_JITTER = 0.2


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation, applied by :class:`~fpdctl.data.dataset.PoseDataset`.

    The defaults are the official FPD recipe (``SCALE_FACTOR 0.25``, ``ROT_FACTOR 30``,
    ``FLIP true``, no colour jitter). With ``style="official"`` each sample draws, in this order
    and as the official ``JointsDataset`` does:

    - scale factor ``clip(N(1, scale), 1 - scale, 1 + scale)``;
    - rotation ``clip(N(0, rotation), -2 rotation, 2 rotation)`` degrees, kept when a uniform
      draw is ``<= rotation_prob``, else 0 (both draws are made either way);
    - a flip when a uniform draw is ``<= flip_prob``.

    With ``style="uniform"``: scale factor uniform in ``[1 - scale, 1 + scale]``; rotation uniform
    in ``[-rotation, rotation]`` with probability ``rotation_prob``; flip with probability
    ``flip_prob``; and, with ``color`` > 0, per-channel gains uniform in ``[1 - color, 1 + color]``.

    Attributes:
        style: "official" or "uniform" (see :data:`AUGMENT_STYLES`).
        scale: spread of the scale factor (the normal's sigma, or the uniform half-width).
        rotation: spread of the rotation in degrees (sigma, or uniform half-width).
        rotation_prob: probability of a rotation (else 0).
        flip_prob: probability of a horizontal flip (left and right joints are swapped).
        color: each colour channel is multiplied by a gain drawn from [1 - color, 1 + color]
            (0: no colour jitter, the official recipe).
    """

    style: str = DEFAULT_AUGMENT_STYLE
    scale: float = 0.25
    rotation: float = 30.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    color: float = 0.0

    def __post_init__(self) -> None:
        if self.style not in AUGMENT_STYLES:
            raise ValueError(f"augment style must be one of {', '.join(AUGMENT_STYLES)}, got {self.style!r}")
        if not 0.0 <= self.scale < 1.0:
            raise ValueError(f"augment scale must be in [0, 1), got {self.scale}")
        if self.rotation < 0.0:
            raise ValueError(f"augment rotation must be >= 0, got {self.rotation}")
        for name in ("rotation_prob", "flip_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment {name} must be in [0, 1], got {value}")
        if not 0.0 <= self.color < 1.0:
            raise ValueError(f"augment color must be in [0, 1), got {self.color}")

    @classmethod
    def for_style(cls, style: str) -> "AugmentConfig":
        """The recipe of a named style: the official draws, or uniform draws with colour jitter."""
        if style == "uniform":
            return cls(style="uniform", color=UNIFORM_COLOR_JITTER)
        return cls(style=style)


@dataclass(frozen=True)
class Augmentation:
    """One draw of :class:`AugmentConfig`: what is applied to one sample.

    Attributes:
        scale_factor: multiplies the person scale (> 1 zooms out).
        rotation: degrees, counter-clockwise on screen.
        flip: horizontal flip with left/right joint swap.
        color_gain: float32 [3] per-channel gain in BGR order.
    """

    scale_factor: float = 1.0
    rotation: float = 0.0
    flip: bool = False
    color_gain: np.ndarray | None = None


IDENTITY_AUGMENTATION = Augmentation()


def _official_draw(config: AugmentConfig, rng: np.random.Generator) -> tuple[float, float, bool]:
    """Scale factor, rotation and flip as the official JointsDataset draws them."""
    sf, rf = config.scale, config.rotation
    scale_factor = float(np.clip(rng.standard_normal() * sf + 1.0, 1.0 - sf, 1.0 + sf))
    rotation = float(np.clip(rng.standard_normal() * rf, -2.0 * rf, 2.0 * rf))
    # Both uniform draws are made whatever the probabilities; a probability of 0 never fires.
    if not (config.rotation_prob > 0 and rng.random() <= config.rotation_prob):
        rotation = 0.0
    flip = bool(rng.random() <= config.flip_prob and config.flip_prob > 0)
    return scale_factor, rotation, flip


def _uniform_draw(config: AugmentConfig, rng: np.random.Generator) -> tuple[float, float, bool]:
    scale_factor = float(rng.uniform(1.0 - config.scale, 1.0 + config.scale))
    rotation = 0.0
    if config.rotation > 0 and rng.random() < config.rotation_prob:
        rotation = float(rng.uniform(-config.rotation, config.rotation))
    return scale_factor, rotation, bool(rng.random() < config.flip_prob)


def sample_augmentation(config: AugmentConfig | None, rng: np.random.Generator) -> Augmentation:
    """Draw one :class:`Augmentation` from ``config`` (None: the identity)."""
    if config is None:
        return IDENTITY_AUGMENTATION
    draw = _official_draw if config.style == "official" else _uniform_draw
    scale_factor, rotation, flip = draw(config, rng)
    gain = None
    if config.color > 0:
        gain = rng.uniform(1.0 - config.color, 1.0 + config.color, size=3).astype(np.float32)
    return Augmentation(scale_factor=scale_factor, rotation=rotation, flip=flip, color_gain=gain)


def normalize_image(bgr: np.ndarray, color_gain: np.ndarray | None = None) -> np.ndarray:
    """Turn an OpenCV BGR image into a normalised network input.

    Args:
        bgr: uint8 (or float in 0..255) [H, W, 3], BGR channel order.
        color_gain: optional float [3] per-channel gain (BGR) applied before normalising; the
            result is clipped to the 0..255 range, like a real exposure change.

    Returns:
        float32 [3, H, W], RGB, ``(pixel / 255 - MEAN) / STD``.
    """
    img = np.asarray(bgr)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an image [H, W, 3], got shape {img.shape}")
    gain = None if color_gain is None else np.asarray(color_gain, np.float32)
    if img.dtype == np.uint8:
        # A 256-entry table per channel does the gain, clip and normalisation in one lookup,
        # several times faster than float arithmetic on the whole image.
        levels = np.arange(256, dtype=np.float32)[:, None]
        levels = np.broadcast_to(levels, (256, 3)) if gain is None else np.clip(levels * gain, 0.0, 255.0)
        lut = (levels - _MEAN_BGR_255) * _INV_STD_BGR_255  # [256, 3], BGR columns
        out = np.empty((3,) + img.shape[:2], dtype=np.float32)
        for rgb_channel in range(3):
            bgr_channel = 2 - rgb_channel
            np.take(lut[:, bgr_channel], img[:, :, bgr_channel], out=out[rgb_channel])
        return out
    values = img.astype(np.float32)
    if gain is not None:
        values = np.clip(values * gain, 0.0, 255.0)
    values = (values - _MEAN_BGR_255) * _INV_STD_BGR_255
    # BGR -> RGB and HWC -> CHW in one copy.
    return np.ascontiguousarray(values[:, :, ::-1].transpose(2, 0, 1))


def denormalize_image(chw: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize_image` (without colour gain): float [3, H, W] RGB -> uint8 BGR [H, W, 3]."""
    rgb = np.asarray(chw, dtype=np.float32).transpose(1, 2, 0)
    bgr = rgb[:, :, ::-1] / _INV_STD_BGR_255 + _MEAN_BGR_255
    return np.clip(np.rint(bgr), 0, 255).astype(np.uint8)
