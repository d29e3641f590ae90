"""Numba kernels for the bias-free two-layer ReLU network in ℝᵈ of the Chizat et al. teacher–student
setup (thesis Fig. 6.10, 6.14; private, see :mod:`toymodels.relu.teacher2`; numpy references of the same names in
:mod:`toymodels.relu._reference.teacher2`).

    f_θ(x) = Σⱼ aⱼ ReLU(wⱼ·x),   θ = (vec W, a) ∈ ℝ^{md + m}  (row-major, stored in this order)

with ReLU'(0) := 0:  ∂f/∂wⱼ = aⱼ 1[wⱼ·x > 0] x,  ∂f/∂aⱼ = ReLU(wⱼ·x).
SGD with batch 1 on L = (1/2n) Σᵢ (f(xᵢ) − yᵢ)²:  θ ← θ − η_t (f(x_{i_t}) − y_{i_t}) ∇_θ f(x_{i_t}).
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _f(xi, W, a):
    s = 0.0
    for j in range(W.shape[0]):
        z = 0.0
        for q in range(W.shape[1]):
            z += W[j, q] * xi[q]
        if z > 0.0:
            s += a[j] * z
    return s


@nb.njit(cache=True)
def predict(X, W, a, out):
    for i in range(X.shape[0]):
        out[i] = _f(X[i], W, a)


@nb.njit(cache=True)
def loss(X, y, W, a):
    s = 0.0
    for i in range(X.shape[0]):
        r = _f(X[i], W, a) - y[i]
        s += r * r
    return 0.5 * s / X.shape[0]


@nb.njit(cache=True)
def jacobian(X, W, a, J):
    """J[i] = ∇_θ f(X[i]), shape (n, md + m)."""
    m, d = W.shape
    for i in range(X.shape[0]):
        for j in range(m):
            z = 0.0
            for q in range(d):
                z += W[j, q] * X[i, q]
            on = z > 0.0
            for q in range(d):
                J[i, j * d + q] = a[j] * X[i, q] if on else 0.0
            J[i, m * d + j] = z if on else 0.0


@nb.njit(cache=True)
def sgd(X, y, W, a, lr, idx, rec_at, rec_W, rec_a, rec_loss):
    """len(lr) SGD steps in place; parameters and training loss after step t with t+1 = rec_at[k] go to
    row k (rec_at[k] = 0: the initialization). Returns the first non-finite step, or −1."""
    m, d = W.shape
    k = 0
    while k < rec_at.shape[0] and rec_at[k] == 0:
        rec_W[k] = W; rec_a[k] = a
        rec_loss[k] = loss(X, y, W, a)
        k += 1
    for t in range(lr.shape[0]):
        xi = X[idx[t]]
        g = lr[t] * (_f(xi, W, a) - y[idx[t]])
        if not np.isfinite(g):
            return t
        for j in range(m):
            z = 0.0
            for q in range(d):
                z += W[j, q] * xi[q]
            if z > 0.0:
                aj = a[j]
                a[j] = aj - g * z
                for q in range(d):
                    W[j, q] -= g * aj * xi[q]
        while k < rec_at.shape[0] and rec_at[k] == t + 1:
            rec_W[k] = W; rec_a[k] = a
            rec_loss[k] = loss(X, y, W, a)
            if not np.isfinite(rec_loss[k]):
                return t
            k += 1
    return -1
