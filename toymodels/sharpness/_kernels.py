"""Numba kernels: the losses of a *stack* of perturbed weight vectors (the hot loop of the Monte-Carlo
average-case sharpness, which evaluates L(w + c⊙γ) for thousands of draws γ).

Plain-numpy references of the same names and semantics are in :mod:`toymodels.sharpness._reference`
(test oracle and benchmark baseline). All kernels write into a preallocated ``out`` of shape (k,).
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, fastmath={"reassoc", "contract"}, inline="always")
def _dot(W, s, base, X, i, d):
    # reassociation lets LLVM vectorize this reduction (the logits are most of the work)
    t = 0.0
    for j in range(d):
        t += W[s, base + j] * X[i, j]
    return t


@nb.njit(cache=True)
def linear_loss_batch(W, X, y, K, normalize, out):
    """Mean loss over the n points of the linear classifier with weights ``W[s]`` for each s.

    K = 1: binary logistic, one logit z = ⟨w, x⟩, labels y ∈ {−1, +1}, ℓ = log(1 + e^{−yz}).
    K ≥ 2: W[s] is the row-major flattening of a (K, d) matrix, logits z = W x, labels in {0..K−1},
    ℓ = logsumexp(z̃) − z̃_y with z̃ = z (normalize = False) or z̃ = z / std(z) (eq. 7.5, population
    std over the K logits).
    """
    k = W.shape[0]
    n, d = X.shape
    z = np.empty(K)
    for s in range(k):
        acc = 0.0
        for i in range(n):
            for c in range(K):
                z[c] = _dot(W, s, c * d, X, i, d)
            if K == 1:
                mrg = y[i] * z[0]
                # log(1 + e^{−m}) without overflow
                acc += (np.log1p(np.exp(-mrg)) if mrg > 0 else -mrg + np.log1p(np.exp(mrg)))
                continue
            if normalize:
                mu = 0.0
                for c in range(K):
                    mu += z[c]
                mu /= K
                var = 0.0
                for c in range(K):
                    var += (z[c] - mu) * (z[c] - mu)
                sd = np.sqrt(var / K)
                for c in range(K):
                    z[c] = z[c] / sd
            zmax = z[0]
            for c in range(1, K):
                if z[c] > zmax:
                    zmax = z[c]
            se = 0.0
            for c in range(K):
                se += np.exp(z[c] - zmax)
            acc += zmax + np.log(se) - z[y[i]]
        out[s] = acc / n


@nb.njit(cache=True)
def relu_loss_batch(T, x, y, out):
    """L(θ) = 1/(2n) Σᵢ (Σⱼ aⱼ ReLU(wⱼ xᵢ + bⱼ) − yᵢ)² for each row θ = (w, b, a) of ``T`` (k, 3m)."""
    k = T.shape[0]
    m = T.shape[1] // 3
    n = x.shape[0]
    for s in range(k):
        acc = 0.0
        for i in range(n):
            f = 0.0
            for j in range(m):
                h = T[s, j] * x[i] + T[s, m + j]
                if h > 0.0:
                    f += T[s, 2 * m + j] * h
            r = f - y[i]
            acc += r * r
        out[s] = acc / (2.0 * n)
