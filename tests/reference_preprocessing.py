"""Independent re-statements of how each reference project turns an image file into a network
input, used only as test oracles for :mod:`fpdctl.models.convention`.

Written from the facts of each project's own code (read, not copied), step by step and with the
same libraries, so that agreement with fpdctl is evidence that fpdctl feeds a foreign checkpoint
what it was trained on.

pytorch-pose (bearpaw/pytorch-pose), ``pose/datasets/mpii.py`` ``__getitem__``:
    1. ``load_image`` (``pose/utils/imutils.py``): ``scipy.misc.imread(path, mode='RGB')``, i.e.
       PIL decoding converted to RGB, uint8 [H, W, 3]; ``im_to_torch`` makes it [3, H, W] float
       and divides by 255 only when its maximum exceeds 1.
    2. ``crop`` (``pose/utils/transforms.py``): a scale x 200 box, cut and resized to 256. Up to
       2019 (when its checkpoints were trained) the resize was ``scipy.misc.imresize``, which
       returns uint8 RGB; ``im_to_torch`` again scales it to [0, 1]. (Since 2020 it is
       ``cv2.resize`` of the float crop, with the same [0, 1] result.)
    3. ``color_normalize``: subtracts ``mean`` channel by channel (``t.sub_(m)``); the std it is
       given is never used. ``mean`` is ``data/mpii/mean.pth.tar``'s, float32 R, G, B.

Official FPD code (ilovepose/fast-human-pose-estimation.pytorch, HRNet's code base):
    1. ``lib/dataset/JointsDataset.py``: ``cv2.imread(path, IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION)``
       gives uint8 B, G, R; converted to RGB only when ``DATASET.COLOR_RGB`` is true, and the
       FPD configs (``experiments/fpd_mpii/hourglass/*.yaml``) and ``scripts/fpd_mpii/
       run_train_hg.sh`` set it false.
    2. ``get_affine_transform(c, s, r, image_size)`` (``lib/utils/transforms.py``): the affine
       through three point pairs (the centre, a point half a box width above it turned by ``r``,
       and the point a quarter turn from that), then ``cv2.warpAffine(..., INTER_LINEAR)``.
    3. ``tools/fpd_train.py``: ``transforms.ToTensor()`` ([3, H, W] float32, / 255, no channel
       swap), then ``transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224,
       0.225])`` applied to channels 0, 1, 2, which hold B, G, R.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

# data/mpii/mean.pth.tar of pytorch-pose: {'mean': float32 [3], 'std': float32 [3]}, R, G, B.
PYTORCH_POSE_MPII_MEAN_PTH = torch.tensor([0.440442830324173, 0.4440267086029053, 0.4326828420162201])
PYTORCH_POSE_MPII_STD_PTH = torch.tensor([0.24576245248317719, 0.24096255004405975, 0.2468130737543106])

# tools/fpd_train.py of the official FPD code: torchvision's Normalize arguments, as written.
FPD_NORMALIZE_MEAN = [0.485, 0.456, 0.406]
FPD_NORMALIZE_STD = [0.229, 0.224, 0.225]


# --- pytorch-pose ---------------------------------------------------------------------------


def pytorch_pose_read(path: str | Path) -> np.ndarray:
    """``scipy.misc.imread(path, mode='RGB')``: PIL's decoding, converted to RGB; uint8 [H, W, 3]."""
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def pytorch_pose_im_to_torch(rgb: np.ndarray) -> torch.Tensor:
    """``im_to_torch``: [H, W, C] -> [C, H, W] float32, divided by 255 only if its max exceeds 1."""
    tensor = torch.from_numpy(np.ascontiguousarray(np.transpose(rgb, (2, 0, 1)))).float()
    if tensor.max() > 1:
        tensor /= 255
    return tensor


def pytorch_pose_color_normalize(tensor: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """``color_normalize``: subtract each channel's mean, in place, channel by channel."""
    for channel, value in zip(tensor, mean):
        channel.sub_(value)
    return tensor


def pytorch_pose_input(rgb_crop: np.ndarray, mean: torch.Tensor = PYTORCH_POSE_MPII_MEAN_PTH) -> torch.Tensor:
    """The network input pytorch-pose builds from its uint8 RGB crop (what ``imresize`` returns).

    Returns:
        float32 [3, H, W], R, G, B.
    """
    return pytorch_pose_color_normalize(pytorch_pose_im_to_torch(rgb_crop), mean.clone())


# --- official FPD code (HRNet code base) ----------------------------------------------------


def fpd_read(path: str | Path) -> np.ndarray:
    """``cv2.imread`` as JointsDataset calls it, with ``COLOR_RGB: False``: uint8 [H, W, 3] B, G, R."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise FileNotFoundError(path)
    return image


def fpd_affine(center: tuple[float, float], scale: float, rotation: float, size: tuple[int, int]) -> np.ndarray:
    """``get_affine_transform(center, scale, rot, size)``: float [2, 3], image px -> crop px.

    Solved here from its three point pairs with numpy (the project calls
    ``cv2.getAffineTransform`` on the same points).
    """
    box = scale * 200.0
    out_w, out_h = size
    theta = math.radians(rotation)
    # [0, -box/2] turned by theta, as HRNet's get_dir turns it (x' = x cos - y sin, y' = x sin + y cos).
    up = np.array([0.5 * box * math.sin(theta), -0.5 * box * math.cos(theta)])
    src0 = np.asarray(center, dtype=np.float64)
    src1 = src0 + up
    src2 = src1 + np.array([-(src0 - src1)[1], (src0 - src1)[0]])
    dst0 = np.array([out_w * 0.5, out_h * 0.5])
    dst1 = dst0 + np.array([0.0, -0.5 * out_w])
    dst2 = dst1 + np.array([-(dst0 - dst1)[1], (dst0 - dst1)[0]])
    src = np.stack([src0, src1, src2]).astype(np.float32).astype(np.float64)
    dst = np.stack([dst0, dst1, dst2]).astype(np.float32).astype(np.float64)
    system = np.hstack([src, np.ones((3, 1))])  # [3, 3]: rows (x, y, 1)
    return np.linalg.solve(system, dst).T  # [2, 3]


def fpd_crop(bgr: np.ndarray, center: tuple[float, float], scale: float, rotation: float, size: int) -> np.ndarray:
    """JointsDataset's crop: ``cv2.warpAffine`` with the affine above, bilinear, black border."""
    affine = fpd_affine(center, scale, rotation, (size, size))
    return cv2.warpAffine(bgr, affine, (size, size), flags=cv2.INTER_LINEAR)


def fpd_to_tensor(image: np.ndarray) -> torch.Tensor:
    """torchvision ``ToTensor`` on a uint8 [H, W, C] array: [C, H, W] float32 / 255, same order."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous().float().div(255)


def fpd_normalize(tensor: torch.Tensor) -> torch.Tensor:
    """torchvision ``Normalize(mean, std)``: ``(x - mean[c]) / std[c]`` for channel c, whatever it holds."""
    mean = torch.as_tensor(FPD_NORMALIZE_MEAN, dtype=tensor.dtype).view(-1, 1, 1)
    std = torch.as_tensor(FPD_NORMALIZE_STD, dtype=tensor.dtype).view(-1, 1, 1)
    return tensor.sub(mean).div(std)


def fpd_input(bgr_crop: np.ndarray) -> torch.Tensor:
    """The network input the official FPD code builds from its uint8 BGR crop.

    Returns:
        float32 [3, H, W], B, G, R, each normalised with ImageNet's R, G, B statistics in turn.
    """
    return fpd_normalize(fpd_to_tensor(bgr_crop))
