"""The wide ResNet and the (post-activation) ResNet-34 of the torch layer's thesis settings.

* :class:`WideResNet` — WRN-d-k of Zagoruyko & Komodakis (2016) exactly as in the code of
  TRADES (Zhang et al. 2019), which the thesis's SAM code and RobustBench's WRN-28-10 entries use:
  a 3×3 stem conv to 16 channels, three groups of (d − 4)/6 pre-activation basic blocks with
  16k, 32k, 64k channels (strides 1, 2, 2; a 1×1 projection of the pre-activated input when the
  width changes), BN-ReLU, global average pooling, linear. Initialization as that code: convs
  N(0, 2/(3·3·out_channels)), BN weight 1 / bias 0, linear bias 0 (linear weight: torch's default).
  WRN-28-10 on 10 classes has 36,479,194 parameters.
* :class:`ResNet34` — the standard (post-activation) ResNet-34 of He et al. (2016) in its CIFAR form
  (the "kuangliu" variant the thesis's large-step-SGD code uses, Fig. 6.16): a 3×3 stem conv with
  ``width`` (64) channels + BN-ReLU and no max-pooling, stages of 3, 4, 6, 3 basic blocks
  conv-BN-ReLU-conv-BN (+ shortcut, a 1×1 conv + BN when the shape changes) then ReLU, with
  width, 2·, 4·, 8·width channels (strides 1, 2, 2, 2), global average pooling, linear. 21,282,122
  parameters on 10 classes, 21,328,292 on 100 (CIFAR-100, Fig. 6.16).

Global average pooling replaces their fixed ``avg_pool2d`` (equal on 32×32 inputs; works for other
sizes, and has a deterministic backward on cuda).
"""
from __future__ import annotations

import math

import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["WideResNet", "ResNet34"]


class _WideBlock(nn.Module):
    """TRADES' WRN block: BN-ReLU-conv-BN-ReLU-conv + shortcut (identity, or a 1×1 conv of the
    pre-activated input when the width changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None if in_planes == planes else nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        sc = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + sc


class WideResNet(nn.Module):
    """WRN-``depth``-``widen`` (depth = 6n + 4) for ``num_classes`` classes."""

    def __init__(self, depth: int = 28, widen: int = 10, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6 or depth < 10:
            raise ConfigError("depth", "must be 6n + 4 with n >= 1 (wide ResNet)", depth)
        n = (depth - 4) // 6
        ch = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, ch[0], 3, stride=1, padding=1, bias=False)
        groups = []
        for i, stride in enumerate((1, 2, 2)):
            groups.append(nn.Sequential(*[_WideBlock(ch[i] if j == 0 else ch[i + 1], ch[i + 1], stride if j == 0 else 1)
                                          for j in range(n)]))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(ch[3])
        self.linear = nn.Linear(ch[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.bias.data.zero_()

    def features(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return F.relu(self.bn(out)).mean((2, 3))

    def forward(self, x):
        return self.linear(self.features(x))


class _BasicBlock(nn.Module):
    """Post-activation basic block: ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet34(nn.Module):
    """ResNet-34, CIFAR variant, model width ``width`` (64: the standard network)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, in_planes = [], width
        for mult, blocks, stride in ((1, 3, 1), (2, 4, 2), (4, 6, 2), (8, 3, 2)):
            stage = []
            for j in range(blocks):
                stage.append(_BasicBlock(in_planes, mult * width, stride if j == 0 else 1))
                in_planes = mult * width
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(8 * width, num_classes)

    def features(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(out)))).mean((2, 3))

    def forward(self, x):
        return self.linear(self.features(x))
