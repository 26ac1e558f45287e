"""Heatmap codec: joints in input pixels <-> Gaussian heatmaps.

Coordinate convention (pytorch-pose / HRNet): heatmap pixel ``i`` corresponds to input pixel
``i * stride`` with ``stride = input_size / heatmap_size`` (4 for 256 -> 64).

Encoding centres each Gaussian at the joint's exact sub-pixel heatmap position (the reference code
rounds it to the nearest heatmap pixel first). With exact centres, the standard decode (argmax plus
a quarter-pixel step toward the higher neighbour) recovers every joint to within a quarter heatmap
pixel, so targets carry no extra quantisation error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fpdctl.skeleton import JOINT_SETS, MPII, JointSet

if TYPE_CHECKING:
    import torch

# Input px per heatmap px of every network here: the Stacked Hourglass stem (a stride-2 conv,
# then a 2x max-pool) outputs heatmaps at a quarter of the input side. The one place that says so.
HEATMAP_STRIDE: int = 4


def heatmap_size(input_size: int) -> int:
    """The heatmap side a network outputs for an ``input_size`` input (256 -> 64)."""
    return int(input_size) // HEATMAP_STRIDE


# Decoding steps this far (in heatmap px) from the argmax toward the higher neighbour: the
# classic sub-pixel refinement of Newell et al. and every code base derived from it.
QUARTER_PIXEL_SHIFT: float = 0.25


def _size_wh(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (tuple, list)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


class HeatmapCodec:
    """Encode joints as Gaussian heatmaps and decode heatmaps back to joints.

    Args:
        input_size: network input side in px, or (width, height).
        heatmap_size: heatmap side in px, or (width, height).
        sigma: Gaussian standard deviation in heatmap px (2 at 64x64, as in the reference code).
    """

    def __init__(
        self,
        input_size: int | tuple[int, int],
        heatmap_size: int | tuple[int, int],
        sigma: float = 2.0,
    ) -> None:
        self.input_w, self.input_h = _size_wh(input_size)
        self.heatmap_w, self.heatmap_h = _size_wh(heatmap_size)
        if min(self.input_w, self.input_h, self.heatmap_w, self.heatmap_h) <= 0:
            raise ValueError("input and heatmap sizes must be positive")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)
        self.stride_x = self.input_w / self.heatmap_w
        self.stride_y = self.input_h / self.heatmap_h
        self._grid_x = np.arange(self.heatmap_w, dtype=np.float32)
        self._grid_y = np.arange(self.heatmap_h, dtype=np.float32)

    def __repr__(self) -> str:
        return (
            f"HeatmapCodec(input_size=({self.input_w}, {self.input_h}), "
            f"heatmap_size=({self.heatmap_w}, {self.heatmap_h}), sigma={self.sigma})"
        )

    def encode(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Render one person's target heatmaps.

        A joint gets weight 1 when it is annotated (``vis > 0``) and lies inside the input crop
        (``0 <= x < input_w`` and ``0 <= y < input_h``); otherwise weight 0 and an all-zero map.

        Args:
            joints: float [J, 3], (x, y) in input px and vis (> 0 annotated).

        Returns:
            heatmaps: float32 [J, heatmap_h, heatmap_w], peak 1 at each weighted joint.
            weights: float32 [J].
        """
        joints = np.asarray(joints, dtype=np.float32)
        if joints.ndim != 2 or joints.shape[1] < 3:
            raise ValueError(f"expected joints [J, 3], got shape {joints.shape}")
        x, y, vis = joints[:, 0], joints[:, 1], joints[:, 2]
        inside = (
            (vis > 0) & np.isfinite(x) & np.isfinite(y) & (x >= 0) & (x < self.input_w) & (y >= 0) & (y < self.input_h)
        )
        weights = inside.astype(np.float32)
        mu_x = np.where(inside, x / self.stride_x, 0.0)[:, None]
        mu_y = np.where(inside, y / self.stride_y, 0.0)[:, None]
        # The 2-D Gaussian is separable: an outer product of two 1-D profiles per joint.
        two_sigma_sq = 2.0 * self.sigma * self.sigma
        gx = np.exp(-((self._grid_x[None, :] - mu_x) ** 2) / two_sigma_sq) * weights[:, None]
        gy = np.exp(-((self._grid_y[None, :] - mu_y) ** 2) / two_sigma_sq)
        heatmaps = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)
        return heatmaps, weights

    def decode(self, heatmaps: "np.ndarray | torch.Tensor") -> tuple[np.ndarray, np.ndarray]:
        """Find each joint's heatmap peak and return it in input px.

        Args:
            heatmaps: [N, J, h, w] numpy array or torch tensor (any device).

        Returns:
            coords: float32 [N, J, 2], (x, y) in input px (heatmap px times the stride).
            scores: float32 [N, J], the peak value.
        """
        if not isinstance(heatmaps, np.ndarray):  # a torch tensor
            heatmaps = heatmaps.detach().float().cpu().numpy()
        hm = np.asarray(heatmaps, dtype=np.float32)
        if hm.ndim != 4:
            raise ValueError(f"expected heatmaps [N, J, h, w], got shape {hm.shape}")
        coords_hm, scores = decode_heatmaps(hm)
        coords = np.empty_like(coords_hm)
        # Scale with the stride of the maps actually given (normally the codec's own).
        coords[..., 0] = coords_hm[..., 0] * (self.input_w / hm.shape[3])
        coords[..., 1] = coords_hm[..., 1] * (self.input_h / hm.shape[2])
        return coords, scores


def decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax plus the quarter-pixel shift, in heatmap px.

    Args:
        heatmaps: float32 [N, J, h, w].

    Returns:
        coords: float32 [N, J, 2] in heatmap px; scores: float32 [N, J] peak values.
    """
    n, j, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, j, h * w)
    idx = flat.argmax(axis=2)
    scores = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    px = idx % w
    py = idx // w
    coords = np.stack([px, py], axis=-1).astype(np.float32)

    rows = heatmaps.reshape(n * j, h, w)
    k = np.arange(n * j)
    fx, fy = px.reshape(-1), py.reshape(-1)
    # Only step where both neighbours exist; at the border the peak's side is unknown.
    has_x = (fx > 0) & (fx < w - 1)
    has_y = (fy > 0) & (fy < h - 1)
    left = rows[k, fy, np.clip(fx - 1, 0, w - 1)]
    right = rows[k, fy, np.clip(fx + 1, 0, w - 1)]
    up = rows[k, np.clip(fy - 1, 0, h - 1), fx]
    down = rows[k, np.clip(fy + 1, 0, h - 1), fx]
    dx = np.where(has_x, np.sign(right - left), 0.0) * QUARTER_PIXEL_SHIFT
    dy = np.where(has_y, np.sign(down - up), 0.0) * QUARTER_PIXEL_SHIFT
    coords[..., 0] += dx.reshape(n, j).astype(np.float32)
    coords[..., 1] += dy.reshape(n, j).astype(np.float32)
    return coords, scores.astype(np.float32)


def flip_back(heatmaps: "torch.Tensor", joint_set: JointSet | str = MPII) -> "torch.Tensor":
    """Undo a horizontal input flip on predicted heatmaps (for flip-test averaging).

    Mirrors the maps left-right, swaps each left/right channel pair, then shifts the maps one
    heatmap pixel to the right, as the official FPD / HRNet code does: mirroring the input maps
    input x to ``W - 1 - x``, which on a 4x smaller map lands 0.75 px left of a plain mirror of
    the map, and the one-pixel shift is the reference code's (integer) correction.

    Args:
        heatmaps: [N, J, h, w] tensor predicted from horizontally flipped inputs.
        joint_set: the joint set of the J channels (a JointSet or its name).

    Returns:
        [N, J, h, w] tensor aligned with the unflipped input (a new tensor).
    """
    import torch

    if isinstance(joint_set, str):
        joint_set = JOINT_SETS[joint_set]
    if heatmaps.dim() != 4 or heatmaps.shape[1] != joint_set.num_joints:
        raise ValueError(
            f"expected heatmaps [N, {joint_set.num_joints}, h, w] for joint set "
            f"{joint_set.name!r}, got shape {tuple(heatmaps.shape)}"
        )
    perm = torch.as_tensor(joint_set.flip_permutation(), device=heatmaps.device)
    out = torch.flip(heatmaps, dims=[3]).index_select(1, perm)
    shifted = out.clone()
    shifted[..., 1:] = out[..., :-1]
    return shifted
