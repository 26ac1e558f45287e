"""The pre-activation bottleneck Stacked Hourglass (Newell et al. 2016).

Module and parameter names follow pytorch-pose and the official FPD code exactly, so their
state_dicts load unchanged: ``conv1 bn1 layer1..3 hg.{s}.hg.{level}.{branch}.{block} res.{s}
fc.{s} score.{s} fc_.{s} score_.{s}``. Widths for channels C: stem C/4, bottleneck inner C/2,
features C.

The mobile block type (``HourglassSpec.block == "mobile"``, names ending in ``m``) makes the 3x3
convolution of every bottleneck depthwise, stem included, with conv1 and conv3 as its pointwise
halves: the layout and key names of yuanyuanli85/Fast_Human_Pose_Estimation_Pytorch's
``--mobile`` models (``hg2x256m`` is its 2.31M-parameter student), whose checkpoints load as-is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fpdctl.models.convention import NATIVE, InputConvention
from fpdctl.models.spec import MOBILE, HourglassSpec


class Bottleneck(nn.Module):
    """Pre-activation bottleneck: (BN, ReLU, conv) x 3 with widths in -> mid -> 2*mid, plus skip.

    The skip is a 1x1 conv (``downsample.0``) when the input and output widths differ. With
    ``depthwise`` the 3x3 convolution is depthwise (``groups=mid``; weight [mid, 1, 3, 3]), which
    with the 1x1 convolutions around it makes a depthwise-separable block.
    """

    expansion = 2

    def __init__(self, in_channels: int, mid_channels: int, depthwise: bool = False) -> None:
        super().__init__()
        out_channels = mid_channels * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid_channels, kernel_size=1)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        groups = mid_channels if depthwise else 1
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, kernel_size=3, padding=1, groups=groups)
        self.bn3 = nn.BatchNorm2d(mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        skip = x if self.downsample is None else self.downsample(x)
        return out + skip


def _residual_stack(channels: int, num_blocks: int, depthwise: bool = False) -> nn.Sequential:
    """``num_blocks`` width-preserving bottlenecks (C -> C/2 -> C)."""
    return nn.Sequential(*[Bottleneck(channels, channels // 2, depthwise) for _ in range(num_blocks)])


class Hourglass(nn.Module):
    """One hourglass of ``depth`` levels.

    ``hg[level]`` holds the branches of one level: 0 the skip at this resolution, 1 after the
    max-pool, 2 before upsampling, and at level 0 (the innermost, lowest resolution) a branch 3
    in place of the recursion.
    """

    def __init__(self, channels: int, num_blocks: int, depth: int, depthwise: bool = False) -> None:
        super().__init__()
        self.depth = depth
        self.hg = nn.ModuleList(
            nn.ModuleList(_residual_stack(channels, num_blocks, depthwise) for _ in range(4 if level == 0 else 3))
            for level in range(depth)
        )

    def _forward_level(self, level: int, x: Tensor) -> Tensor:
        branches = self.hg[level]
        up1 = branches[0](x)
        low = branches[1](F.max_pool2d(x, kernel_size=2, stride=2))
        low = self._forward_level(level - 1, low) if level > 0 else branches[3](low)
        low = branches[2](low)
        return up1 + F.interpolate(low, scale_factor=2.0, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        return self._forward_level(self.depth - 1, x)


class HourglassNet(nn.Module):
    """A Stacked Hourglass network built from an :class:`HourglassSpec`.

    Input: [N, 3, H, W] normalised in ``input_convention`` (fpdctl's own, NATIVE, unless the
    checkpoint it was loaded from says otherwise), H and W multiples of ``spec.input_multiple``.
    Output: [N, S, J, H/4, W/4], the heatmaps of every stack (the last is the prediction).
    """

    def __init__(self, spec: HourglassSpec) -> None:
        super().__init__()
        self.spec = spec
        # How pixels become this network's input: part of what the model is (saved with it).
        self.input_convention: InputConvention = NATIVE
        # The input side it was trained at, when the file it came from says (as timm's
        # pretrained_cfg): set by create_model, read by resolve_input_size, saved by save_model.
        self.input_size: int | None = None
        c = spec.channels
        dw = spec.block == MOBILE
        self.conv1 = nn.Conv2d(3, c // 4, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(c // 4)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(Bottleneck(c // 4, c // 4, dw))  # -> C/2
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.layer2 = nn.Sequential(Bottleneck(c // 2, c // 2, dw))  # -> C
        self.layer3 = nn.Sequential(Bottleneck(c, c // 2, dw))  # C -> C
        s, b, j = spec.stacks, spec.blocks, spec.joints
        self.hg = nn.ModuleList(Hourglass(c, b, spec.depth, dw) for _ in range(s))
        self.res = nn.ModuleList(_residual_stack(c, b, dw) for _ in range(s))
        self.fc = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, kernel_size=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)) for _ in range(s)
        )
        self.score = nn.ModuleList(nn.Conv2d(c, j, kernel_size=1) for _ in range(s))
        self.fc_ = nn.ModuleList(nn.Conv2d(c, c, kernel_size=1) for _ in range(s - 1))
        self.score_ = nn.ModuleList(nn.Conv2d(j, c, kernel_size=1) for _ in range(s - 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(self.layer1(x))
        x = self.layer3(self.layer2(x))
        outputs = []
        for i in range(self.spec.stacks):
            y = self.fc[i](self.res[i](self.hg[i](x)))
            score = self.score[i](y)
            outputs.append(score)
            if i < self.spec.stacks - 1:
                x = x + self.fc_[i](y) + self.score_[i](score)
        return torch.stack(outputs, dim=1)


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters (not BN running statistics)."""
    return sum(p.numel() for p in model.parameters())
