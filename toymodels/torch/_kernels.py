"""Numba kernels of the torch layer: the two passes of the fused batch-norm second derivative
(:mod:`toymodels.torch.batchnorm`); numpy references of the same names in :mod:`._reference`.

Arrays are (B, C, H·W) views of contiguous NCHW tensors; the innermost loop runs over contiguous
memory. Sums accumulate in float64 whatever the input precision."""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["bn_sums", "bn_combine", "channel_sums", "combine"]


@numba.njit(cache=True)
def bn_sums(x, gy, v, mu, out):
    """Add Σ g_y, Σ g_y (x − μ), Σ v, Σ v g_y, Σ v (x − μ) per channel to ``out`` (5, C)."""
    B, C, K = x.shape
    for b in range(B):
        for c in range(C):
            m = mu[c]
            s0 = s1 = s2 = s3 = s4 = 0.0
            for k in range(K):
                xc = x[b, c, k] - m
                g = gy[b, c, k]
                vv = v[b, c, k]
                s0 += g
                s1 += g * xc
                s2 += vv
                s3 += vv * g
                s4 += vv * xc
            out[0, c] += s0
            out[1, c] += s1
            out[2, c] += s2
            out[3, c] += s3
            out[4, c] += s4


@numba.njit(cache=True)
def bn_combine(x, gy, v, mu, coef, dx, dgy):
    """dx, dgy of :func:`combine`, written in place."""
    B, C, K = x.shape
    for b in range(B):
        for c in range(C):
            m = mu[c]
            k_xc, x_xc, x_v, x_0, g_v, g_0 = coef[0, c], coef[1, c], coef[2, c], coef[3, c], coef[4, c], coef[5, c]
            for k in range(K):
                xc = x[b, c, k] - m
                g = gy[b, c, k]
                vv = v[b, c, k]
                dx[b, c, k] = x_xc * xc + k_xc * g + x_v * vv + x_0
                dgy[b, c, k] = g_v * vv + k_xc * xc + g_0


def channel_sums(x: np.ndarray, gy: np.ndarray, v: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """(5, C) float64: Σ g_y, Σ g_y (x − μ), Σ v, Σ v g_y, Σ v (x − μ) per channel."""
    out = np.zeros((5, x.shape[1]))
    bn_sums(x, gy, v, mu, out)
    return out


def combine(x, gy, v, mu, coef, dx, dgy) -> None:
    """dx = c₁(x − μ) + c₀ g_y + c₂ v + c₃ and dgy = c₄ v + c₀ (x − μ) + c₅ per channel (``coef`` rows
    k_xc, x_xc, x_v, x_0, g_v, g_0), written into the preallocated dx, dgy."""
    bn_combine(x, gy, v, mu, np.ascontiguousarray(coef, dtype=np.float64), dx, dgy)
