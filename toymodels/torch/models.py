"""Models of the torch layer: PreAct ResNet-18 (BN or GN), WRN-28-10, ResNet-34, DenseNet-BC-100-12 and
the single-layer CNN.

Every model takes images x ∈ [0, 1]^{C×H×W} (NCHW) and returns logits; input normalization
(x − μ)/σ happens *inside* the model (a :class:`Normalize` module whose μ, σ are buffers), so
attacks and the ℓ∞ ball live in pixel space, as in Wong et al. (2020) and the thesis (Ch. 2).

* ``"preact-resnet18"`` — the PreAct ResNet-18 of He et al. (2016) exactly as in the code of Wong
  et al. (2020) / Andriushchenko & Flammarion (2020): a 3×3 stem conv (64 channels), four stages of
  two pre-activation basic blocks (64, 128, 256, 512 channels, strides 1, 2, 2, 2; 1×1 projection
  shortcut on the pre-activated input when the shape changes), BN-ReLU, global average pooling, a
  linear layer. (Global pooling equals their ``avg_pool2d(·, 4)`` on 32×32 inputs and also works for
  other sizes.)
* ``"preact-resnet18-gn"`` — the same with GroupNorm (width/2 = 32 groups) in place of every BatchNorm,
  as the thesis's sharpness experiments (Figs. 5.2–5.4, 5.16–5.17); ``width`` sets the model width
  factor of both (Fig. 5.18).
* ``"wrn-28-10"`` and ``"resnet34"`` — :mod:`toymodels.torch.resnets`.
* ``"densenet100-12"`` — DenseNet-BC (Huang et al. 2017) with depth L = 100 and growth k = 12: a 3×3
  stem conv to 2k channels, three dense blocks of (L − 4)/6 = 16 bottleneck layers
  (BN-ReLU-1×1 conv to 4k, BN-ReLU-3×3 conv to k, concatenated), transitions with compression ½
  (BN-ReLU-1×1 conv, 2×2 average pooling), BN-ReLU, global average pooling, linear.
* ``"cnn"`` — the single-layer CNN of thesis Sec. 2.5, the twin built by
  :func:`toymodels.cnn.torch_twin.make_torch_model` (Conv2d 3×3 pad 1 → ReLU → Flatten → Linear);
  :func:`cnn_to_numba` / :func:`cnn_from_numba` convert its weights to and from
  :class:`toymodels.cnn.model.CNNParams` (with ``normalize`` the twin is wrapped as
  ``nn.Sequential(Normalize, twin)``; the numba model itself has no normalization).

:func:`build_model` and :func:`cnn_from_numba` return their convolutions as
:class:`toymodels.torch.conv.Conv2d` (``nn.Conv2d`` with a cheap double backward, for GradAlign).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, check_choice, check_int
from .config import MODELS, WIDTH_MODELS
from .conv import use_fast_convs

__all__ = ["MODELS", "WIDTH_MODELS", "build_model", "norm_layer", "Normalize", "PreActResNet18", "DenseNetBC", "cnn_to_numba",
           "cnn_from_numba", "cnn_twin"]

class Normalize(nn.Module):
    """(x − mean) / std per channel; mean and std are buffers (saved in the state dict, moved with
    ``.to(device)``, never trained)."""

    def __init__(self, mean, std):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if (std <= 0).any():
            raise ConfigError("normalize", "std must be > 0 in every channel", tuple(std.flatten().tolist()))
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x):
        return (x - self.mean) / self.std


def norm_layer(kind: str, channels: int, groups: int = 32) -> nn.Module:
    """``nn.BatchNorm2d(channels)`` (``kind="bn"``) or ``nn.GroupNorm(groups, channels)`` (``"gn"``);
    both have 2·channels parameters (BN's running statistics are buffers)."""
    return nn.BatchNorm2d(channels) if kind == "bn" else nn.GroupNorm(groups, channels)


class PreActBlock(nn.Module):
    """Pre-activation basic block: out = conv(ReLU(N(conv(ReLU(N(x)))))) + shortcut, N = BN or GN."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, norm: str = "bn", groups: int = 32):
        super().__init__()
        self.bn1 = norm_layer(norm, in_planes, groups)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_layer(norm, planes, groups)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        # the projection acts on the pre-activated input, the identity on the raw input (as Wong et al.)
        sc = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + sc


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 with model width factor ``width`` (stages of width, 2·, 4·, 8·width channels;
    64 is the standard network) and normalization ``norm``: ``"bn"`` (BatchNorm) or ``"gn"`` (GroupNorm
    with width/2 groups, 32 at width 64, as the thesis's code for the GN experiments, Figs. 5.2–5.4,
    5.16–5.17; one group when the width is odd)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64, norm: str = "bn"):
        super().__init__()
        groups = width // 2 if width % 2 == 0 else 1
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        layers, in_planes = [], width
        for planes, stride in ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)):
            blocks = []
            for s in (stride, 1):
                blocks.append(PreActBlock(in_planes, planes, s, norm, groups))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.bn = norm_layer(norm, 8 * width, groups)
        self.linear = nn.Linear(8 * width, num_classes)

    def features(self, x):
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return F.relu(self.bn(out)).mean((2, 3))   # global average pooling; deterministic backward on cuda

    def forward(self, x):
        return self.linear(self.features(x))


class _Bottleneck(nn.Module):
    def __init__(self, in_planes: int, growth: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class _Transition(nn.Module):
    def __init__(self, in_planes: int, out_planes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNetBC(nn.Module):
    """DenseNet-BC of depth ``depth`` (= 6n + 4) and growth rate ``growth``, compression ½."""

    def __init__(self, depth: int = 100, growth: int = 12, num_classes: int = 10, in_channels: int = 3,
                 reduction: float = 0.5):
        super().__init__()
        if (depth - 4) % 6:
            raise ConfigError("depth", "must be 6n + 4 (DenseNet-BC)", depth)
        n = (depth - 4) // 6
        planes = 2 * growth
        self.conv1 = nn.Conv2d(in_channels, planes, 3, padding=1, bias=False)
        stages = []
        for i in range(3):
            blocks = []
            for _ in range(n):
                blocks.append(_Bottleneck(planes, growth))
                planes += growth
            stages.append(nn.Sequential(*blocks))
            if i < 2:
                out_planes = int(planes * reduction)
                stages.append(_Transition(planes, out_planes))
                planes = out_planes
        self.dense1, self.trans1, self.dense2, self.trans2, self.dense3 = stages
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)

    def features(self, x):
        out = self.trans1(self.dense1(self.conv1(x)))
        out = self.dense3(self.trans2(self.dense2(out)))
        return F.relu(self.bn(out)).mean((2, 3))   # global average pooling; deterministic backward on cuda

    def forward(self, x):
        return self.linear(self.features(x))


def cnn_twin(model: nn.Module) -> nn.Sequential:
    """The bare single-layer CNN twin inside ``model`` (``model`` itself, or the second element of
    ``nn.Sequential(Normalize, twin)``); unwraps DDP."""
    model = getattr(model, "module", model)
    if isinstance(model, nn.Sequential) and len(model) == 2 and isinstance(model[0], Normalize):
        return model[1]
    return model


def cnn_to_numba(model: nn.Module):
    """:class:`toymodels.cnn.model.CNNParams` (float64 numpy copies) of a ``"cnn"`` model."""
    from ..cnn.torch_twin import from_torch

    return from_torch(cnn_twin(model))


def cnn_from_numba(params, image_size: int | None = None, *, dtype=torch.float64) -> nn.Sequential:
    """A ``"cnn"`` model (no normalization) holding a copy of ``params`` (CNNParams)."""
    from ..cnn.torch_twin import to_torch

    H = W = image_size
    return use_fast_convs(to_torch(params, H, W, dtype=dtype))


def build_model(name: str, num_classes: int = 10, in_channels: int = 3, image_size: int = 32, *,
                normalize=None, filters: int = 4, width: int | None = None,
                dtype: torch.dtype = torch.float32) -> nn.Module:
    """Build ``name`` (one of :data:`MODELS`) for ``in_channels``×``image_size``² inputs in [0, 1].

    ``normalize=(mean, std)`` (per-channel sequences) prepends a :class:`Normalize` module; None
    feeds the raw pixels. ``filters`` is the number M of conv filters of ``"cnn"`` (thesis: 4).
    ``width`` is the model width factor of ``preact-resnet18``, ``preact-resnet18-gn`` and
    ``resnet34`` (None: 64, the standard networks; thesis Fig. 5.18 varies it); other models take none.
    torch's default initialization (``wrn-28-10``: its reference initialization, see
    :mod:`toymodels.torch.resnets`), drawn from torch's global RNG (seed it first).

    Parameter counts on 10 classes, 3 input channels (width 64), equal to the reference code (Wong et
    al. 2020 / the thesis's SAM code for PreAct ResNet-18, TRADES for WRN-28-10, kuangliu's
    pytorch-cifar for ResNet-34) and checked in tests/test_torch_models.py by a per-layer formula:
    ``preact-resnet18`` and ``preact-resnet18-gn`` 11,173,962; ``wrn-28-10`` 36,479,194; ``resnet34``
    21,282,122 (21,328,292 on CIFAR-100)."""
    check_choice("model", name, MODELS)
    check_int("num_classes", num_classes, 2)
    check_int("in_channels", in_channels, 1)
    check_int("image_size", image_size, 1)
    if width is not None:
        if name not in WIDTH_MODELS:
            raise ConfigError("width", "applies only to the models " + ", ".join(WIDTH_MODELS), width)
        check_int("width", width, 1)
    if name in ("preact-resnet18", "preact-resnet18-gn"):
        net = PreActResNet18(num_classes, in_channels, width or 64, "gn" if name.endswith("-gn") else "bn")
    elif name == "wrn-28-10":
        from .resnets import WideResNet

        net = WideResNet(28, 10, num_classes, in_channels)
    elif name == "resnet34":
        from .resnets import ResNet34

        net = ResNet34(num_classes, in_channels, width or 64)
    elif name == "densenet100-12":
        net = DenseNetBC(100, 12, num_classes, in_channels)
    else:
        from ..cnn.torch_twin import make_torch_model

        check_int("filters", filters, 1)
        net = make_torch_model(in_channels, image_size, image_size, filters, num_classes, dtype=torch.float32)
    if normalize is not None:
        mean, std = normalize
        if len(mean) != in_channels or len(std) != in_channels:
            raise ConfigError("normalize", f"mean and std must have {in_channels} entries (one per channel)",
                              normalize)
        net = nn.Sequential(Normalize(mean, std), net)
    return use_fast_convs(net).to(dtype)
