"""Image datasets as torch tensors: the numpy readers of :mod:`toymodels.datasets`, converted.

``load(name, data_dir, n_train, n_test, seed)`` returns ``(x_train, y_train, x_test, y_test,
num_classes)``: float32 NCHW tensors in [0, 1] and int64 labels, on the CPU (the training loop moves
them). ``name`` is one of :data:`toymodels.datasets.IMAGE_DATASETS`: the generated sets (``synthetic``,
``photos``, ``strokes``; no files) or ``cifar10``, ``cifar100`` and ``svhn``, read from ``data_dir`` in
their standard formats — nothing is downloaded, a missing directory or file is a
:class:`~toymodels.errors.ConfigError` (field ``data_dir``).

:func:`prepare` adds the settings of a training run: a held-out split of the training set (early
stopping) and uniform label noise (thesis Figs. 5.12, 5.22).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..datasets import IMAGE_DATASETS, load_images
from ..errors import ConfigError
from ..rng import stream

__all__ = ["IMAGE_DATASETS", "load", "channel_stats", "NORMALIZATION", "noisy_count", "add_label_noise",
           "heldout_split", "prepare"]

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


def noisy_count(n: int, p: float) -> int:
    """⌊p·n⌋, the number of labels :func:`add_label_noise` replaces (p·n rounded to 9 decimals first, so
    that e.g. 0.29 · 100 gives 29, not 28)."""
    return int(math.floor(round(p * n, 9)))


def add_label_noise(y: torch.Tensor, num_classes: int, p: float, seed: int):
    """Uniform ("symmetric") label noise as in the thesis's SAM code (Figs. 5.12, 5.22):
    ``(y_noisy, noisy)`` where exactly :func:`noisy_count` (n, p) labels, at positions drawn uniformly
    without replacement, are each replaced by a class drawn uniformly among the num_classes − 1
    *other* classes (so every replaced label is wrong); ``noisy`` is the boolean mask of those positions.
    Drawn once from the stream ``(seed, "label-noise")`` of :mod:`toymodels.rng`: the same for every
    epoch, rank and resume."""
    n, k = len(y), noisy_count(len(y), p)
    rng = stream(seed, "label-noise")
    idx = rng.permutation(n)[:k]
    shift = rng.integers(1, num_classes, size=k)           # uniform on {1, ..., K − 1}
    y_np = y.cpu().numpy().astype(np.int64).copy()
    y_np[idx] = (y_np[idx] + shift) % num_classes
    noisy = np.zeros(n, dtype=bool)
    noisy[idx] = True
    return torch.from_numpy(y_np).to(y.device), torch.from_numpy(noisy).to(y.device)


def heldout_split(n: int, n_hold: int, seed: int):
    """``(train_idx, hold_idx)``: ``n_hold`` of ``n`` training positions drawn uniformly without
    replacement from the stream ``(seed, "heldout-split")`` (the held-out set, e.g. for early stopping),
    and the others in their original order."""
    perm = stream(seed, "heldout-split").permutation(n) if n_hold else np.arange(n)
    hold = np.sort(perm[:n_hold])
    keep = np.ones(n, dtype=bool)
    keep[hold] = False
    return torch.from_numpy(np.flatnonzero(keep)), torch.from_numpy(hold)


def prepare(name: str = "synthetic", data_dir=None, n_train: int | None = None, n_test: int | None = None,
            seed: int = 0, *, label_noise: float = 0.0, heldout: int = 0) -> dict:
    """The data of a training run: :func:`load`, then ``heldout`` images split off the training set
    (:func:`heldout_split`; they keep their clean labels), then label noise on the remaining training
    labels (:func:`add_label_noise`). A dict with ``x_train, y_train`` (noisy labels), ``y_clean``,
    ``noisy`` (mask), ``x_test, y_test, x_hold, y_hold, num_classes``."""
    xtr, ytr, xte, yte, K = load(name, data_dir, n_train, n_test, seed=seed)
    if heldout >= len(ytr):
        raise ConfigError("early_stop_n", f"must be < the {len(ytr)} training images of {name}", heldout)
    tr, ho = heldout_split(len(ytr), heldout, seed)
    x_hold, y_hold = xtr[ho], ytr[ho]
    xtr, ytr = xtr[tr], ytr[tr]
    y_noisy, noisy = add_label_noise(ytr, K, label_noise, seed) if label_noise > 0 else \
        (ytr, torch.zeros(len(ytr), dtype=torch.bool))
    return {"x_train": xtr, "y_train": y_noisy, "y_clean": ytr, "noisy": noisy, "x_test": xte, "y_test": yte,
            "x_hold": x_hold, "y_hold": y_hold, "num_classes": K}
