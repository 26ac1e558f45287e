"""An independent re-statement of pytorch-pose's HourglassNet, used only as a test oracle.

It is written the way the reference project builds the network (a mutable ``inplanes`` counter and
``_make_residual``), not the way fpdctl does, so that agreement of keys, shapes and outputs is
evidence that fpdctl loads those checkpoints correctly.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class RefBottleneck(nn.Module):
    expansion = 2

    def __init__(self, inplanes, planes, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=True)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 2, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.downsample is not None:
            residual = self.downsample(x)
        return out + residual


class RefHourglass(nn.Module):
    def __init__(self, num_blocks, planes, depth):
        super().__init__()
        self.depth = depth
        hg = []
        for i in range(depth):
            res = [self._residual(num_blocks, planes) for _ in range(3)]
            if i == 0:
                res.append(self._residual(num_blocks, planes))
            hg.append(nn.ModuleList(res))
        self.hg = nn.ModuleList(hg)

    @staticmethod
    def _residual(num_blocks, planes):
        return nn.Sequential(*[RefBottleneck(planes * 2, planes) for _ in range(num_blocks)])

    def _forward(self, n, x):
        up1 = self.hg[n - 1][0](x)
        low1 = self.hg[n - 1][1](F.max_pool2d(x, 2, stride=2))
        low2 = self._forward(n - 1, low1) if n > 1 else self.hg[n - 1][3](low1)
        low3 = self.hg[n - 1][2](low2)
        return up1 + F.interpolate(low3, scale_factor=2)

    def forward(self, x):
        return self._forward(self.depth, x)


class RefHourglassNet(nn.Module):
    """pytorch-pose's layout; ``num_feats`` is half the output width (128 for the 256-wide net)."""

    def __init__(self, num_stacks=2, num_blocks=1, num_classes=16, num_feats=128, depth=4):
        super().__init__()
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
            hg.append(RefHourglass(num_blocks, self.num_feats, depth))
            res.append(self._make_residual(self.num_feats, num_blocks))
            fc.append(nn.Sequential(nn.Conv2d(ch, ch, 1), nn.BatchNorm2d(ch), nn.ReLU(inplace=True)))
            score.append(nn.Conv2d(ch, num_classes, 1))
            if i < num_stacks - 1:
                fc_.append(nn.Conv2d(ch, ch, 1))
                score_.append(nn.Conv2d(num_classes, ch, 1))
        self.hg, self.res, self.fc = nn.ModuleList(hg), nn.ModuleList(res), nn.ModuleList(fc)
        self.score, self.fc_, self.score_ = nn.ModuleList(score), nn.ModuleList(fc_), nn.ModuleList(score_)

    def _make_residual(self, planes, blocks):
        downsample = None
        if self.inplanes != planes * 2:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 2, kernel_size=1, bias=True))
        layers = [RefBottleneck(self.inplanes, planes, downsample)]
        self.inplanes = planes * 2
        layers += [RefBottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        out = []
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(self.layer1(x))
        x = self.layer3(self.layer2(x))
        for i in range(self.num_stacks):
            y = self.fc[i](self.res[i](self.hg[i](x)))
            score = self.score[i](y)
            out.append(score)
            if i < self.num_stacks - 1:
                x = x + self.fc_[i](y) + self.score_[i](score)
        return out
