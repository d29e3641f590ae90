"""Numpy references of :mod:`toymodels.torch._kernels` (same names and signatures; the test oracle of
the kernel registry, :mod:`toymodels.kernels`). Arrays are (B, C, H·W); sums in float64."""
from __future__ import annotations

import numpy as np

from ..kernels import KernelCase
from . import _kernels

__all__ = ["bn_sums", "bn_combine", "CASES"]


def bn_sums(x, gy, v, mu, out):
    """Add Σ g_y, Σ g_y (x − μ), Σ v, Σ v g_y, Σ v (x − μ) per channel (over batch and pixels) to ``out``."""
    xc = x - mu[None, :, None]
    for k, t in enumerate((gy, gy * xc, v, v * gy, v * xc)):
        out[k] += t.sum(axis=(0, 2), dtype=np.float64)


def bn_combine(x, gy, v, mu, coef, dx, dgy):
    """dx = c₁(x − μ) + c₀ g_y + c₂ v + c₃ and dgy = c₄ v + c₀(x − μ) + c₅, per channel c = coef[:, channel]."""
    xc = x - mu[None, :, None]
    c = [coef[k][None, :, None] for k in range(6)]
    dx[...] = c[1] * xc + c[0] * gy + c[2] * v + c[3]
    dgy[...] = c[4] * v + c[0] * xc + c[5]


def _args(size: str, dtype=np.float64) -> tuple:
    g = np.random.default_rng(0)
    B, C, K = (4, 3, 25) if size == "small" else (128, 64, 1024)
    x, gy, v = (g.standard_normal((B, C, K)).astype(dtype) for _ in range(3))
    return x, gy, v, x.mean(axis=(0, 2)).astype(np.float64)


def _sums_args(size: str) -> tuple:
    x, gy, v, mu = _args(size)
    return x, gy, v, mu, np.zeros((5, x.shape[1]))


def _combine_args(size: str) -> tuple:
    x, gy, v, mu = _args(size)
    coef = np.random.default_rng(1).standard_normal((6, x.shape[1]))
    return x, gy, v, mu, coef, np.empty_like(x), np.empty_like(x)


_WHY = "sums accumulated per (batch, channel) row in the kernel, over whole axes in numpy: another order"
CASES = [
    KernelCase("torch.bn_sums", _kernels.bn_sums, bn_sums, _sums_args, rtol=1e-12, atol=1e-12, why=_WHY),
    KernelCase("torch.bn_combine", _kernels.bn_combine, bn_combine, _combine_args, rtol=1e-14, atol=1e-15,
               why="c₁(x − μ) + c₀ g_y + … evaluated in another association order"),
]
