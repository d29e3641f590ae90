"""Image datasets as torch tensors: the numpy readers of :mod:`toymodels.datasets`, converted.

``load(name, data_dir, n_train, n_test, seed)`` returns ``(x_train, y_train, x_test, y_test,
num_classes)``: float32 NCHW tensors in [0, 1] and int64 labels, on the CPU (the training loop moves
them). ``name`` is one of :data:`toymodels.datasets.IMAGE_DATASETS`: the generated sets (``synthetic``,
``photos``, ``strokes``; no files) or ``cifar10``, ``cifar100`` and ``svhn``, read from ``data_dir`` in
their standard formats — nothing is downloaded, a missing directory or file is a
:class:`~toymodels.errors.ConfigError` (field ``data_dir``).
"""
from __future__ import annotations

import numpy as np
import torch

from ..datasets import IMAGE_DATASETS, load_images

__all__ = ["IMAGE_DATASETS", "load", "channel_stats", "NORMALIZATION"]

#: per-channel (mean, std) used by the reference implementations (Wong et al. 2020 for CIFAR-10)
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}


def load(name: str = "synthetic", data_dir=None, n_train: int | None = None, n_test: int | None = None,
         seed: int = 0):
    """``(x_train, y_train, x_test, y_test, num_classes)``; subsets of ``n_train`` / ``n_test``
    images chosen from the named streams of ``seed`` (the generated sets are drawn at exactly these
    sizes), see :func:`toymodels.datasets.load_images`."""
    d = load_images(name, data_dir, n_train=n_train, n_test=n_test, seed=seed)

    def tx(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    def ty(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))

    return tx(d.x_train), ty(d.y_train), tx(d.x_test), ty(d.y_test), int(d.num_classes)


def channel_stats(name: str, x_train: torch.Tensor):
    """(mean, std) per channel for the model's :class:`~toymodels.torch.models.Normalize`: the
    standard constants for the real datasets, the training-set statistics for ``synthetic``."""
    if name in NORMALIZATION:
        return NORMALIZATION[name]
    x = x_train.double()
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
