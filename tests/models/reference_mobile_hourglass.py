"""An independent re-statement of the mobile hourglass of yuanyuanli85/Fast_Human_Pose_Estimation_Pytorch
(``pose/models/hourglass.py``, ``hg(num_stacks, num_blocks, num_classes, mobile)``), used only as
a test oracle.

It is built the way that project builds it: a mutable ``inplanes`` counter, ``_make_residual``,
a ``mobile`` flag handed to every bottleneck (its 3x3 convolution becomes depthwise, stem
included), ``nn.Upsample`` in the hourglass and one ReLU module shared by the ``fc`` heads. The
project fixes the stem at 64 and the features at 128 (a 256-wide network); ``num_feats`` is a
parameter here only so tests can build tiny copies. Agreement of keys, shapes and outputs with
fpdctl's ``hg{S}x{C}m`` is evidence that its checkpoints load.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class MobileRefBottleneck(nn.Module):
    expansion = 2

    def __init__(self, inplanes, planes, downsample=None, mobile=False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=True, groups=planes if mobile else 1)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 2, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + residual


class MobileRefHourglass(nn.Module):
    def __init__(self, num_blocks, planes, depth, mobile):
        super().__init__()
        self.depth = depth
        self.upsample = nn.Upsample(scale_factor=2)
        levels = []
        for i in range(depth):
            branches = [self._residual(num_blocks, planes, mobile) for _ in range(4 if i == 0 else 3)]
            levels.append(nn.ModuleList(branches))
        self.hg = nn.ModuleList(levels)

    @staticmethod
    def _residual(num_blocks, planes, mobile):
        return nn.Sequential(*[MobileRefBottleneck(planes * 2, planes, mobile=mobile) for _ in range(num_blocks)])

    def _forward(self, n, x):
        up1 = self.hg[n - 1][0](x)
        low1 = self.hg[n - 1][1](F.max_pool2d(x, 2, stride=2))
        low2 = self._forward(n - 1, low1) if n > 1 else self.hg[n - 1][3](low1)
        return up1 + self.upsample(self.hg[n - 1][2](low2))

    def forward(self, x):
        return self._forward(self.depth, x)


class MobileRefHourglassNet(nn.Module):
    """``num_feats`` is half the feature width (the project's fixed 128: a 256-wide network)."""

    def __init__(self, num_stacks=2, num_blocks=1, num_classes=16, mobile=True, num_feats=128):
        super().__init__()
        self.mobile = mobile
        self.inplanes = num_feats // 2
        self.num_feats = num_feats
        self.num_stacks = num_stacks
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_residual(self.inplanes, 1)
        self.layer2 = self._make_residual(self.inplanes, 1)
        self.layer3 = self._make_residual(self.num_feats, 1)
        self.maxpool = nn.MaxPool2d(2, stride=2)
        ch = self.num_feats * 2
        hg, res, fc, score, fc_, score_ = [], [], [], [], [], []
        for i in range(num_stacks):
            hg.append(MobileRefHourglass(num_blocks, self.num_feats, 4, mobile))
            res.append(self._make_residual(self.num_feats, num_blocks))
            fc.append(nn.Sequential(nn.Conv2d(ch, ch, 1, bias=True), nn.BatchNorm2d(ch), self.relu))
            score.append(nn.Conv2d(ch, num_classes, 1, bias=True))
            if i < num_stacks - 1:
                fc_.append(nn.Conv2d(ch, ch, 1, bias=True))
                score_.append(nn.Conv2d(num_classes, ch, 1, bias=True))
        self.hg, self.res, self.fc = nn.ModuleList(hg), nn.ModuleList(res), nn.ModuleList(fc)
        self.score, self.fc_, self.score_ = nn.ModuleList(score), nn.ModuleList(fc_), nn.ModuleList(score_)

    def _make_residual(self, planes, blocks):
        downsample = None
        if self.inplanes != planes * 2:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 2, kernel_size=1, bias=True))
        layers = [MobileRefBottleneck(self.inplanes, planes, downsample, self.mobile)]
        self.inplanes = planes * 2
        layers += [MobileRefBottleneck(self.inplanes, planes, mobile=self.mobile) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        out = []
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.maxpool(self.layer1(x))))
        for i in range(self.num_stacks):
            y = self.fc[i](self.res[i](self.hg[i](x)))
            score = self.score[i](y)
            out.append(score)
            if i < self.num_stacks - 1:
                x = x + self.fc_[i](y) + self.score_[i](score)
        return out
