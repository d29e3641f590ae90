"""Numba kernels of stochastic SAM on the test problems (private; see :mod:`toymodels.sam_convergence.run`).

Both kernels run, for t = 0..T−1 with T = I.shape[0] and b = I.shape[1],

    w_{t+1} = w_t − γ_t ∇L_{I_t}(w_t + ρ_t ∇L_{J_t}(w_t)),   ∇L_B = (1/b) Σ_{i∈B} ∇ℓ_i,

(n-SAM eq. 5.21 with independent batches J_t, I_t; m-SAM eq. 5.4 when J = I), and record the full loss
``loss_out[t] = L(w_t)`` and ``g2_out[t] = ‖∇L(w_t)‖²`` for t = 0..T. They return the first t whose loss is
not finite (nothing after it is written), or −1. The numpy references of the same names and parameters are
in :mod:`toymodels.sam_convergence._reference`.
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def sam_separable(a, s, C, w0, gammas, rhos, I, J, loss_out, g2_out):
    """SAM on :class:`~toymodels.sam_convergence.problems.Separable`: ℓ_i(w) = Σ_k a_k w_k²/2 + 3 s_k sin² w_k
    − c_iᵀw, so ∇ℓ_i(w) = a⊙w + 3 s⊙sin(2w) − c_i; the batch mean of the c_i is the only noise."""
    d = a.size
    T, b = I.shape
    w = w0.copy()
    for t in range(T + 1):
        L = 0.0
        g2 = 0.0
        for k in range(d):
            sk = np.sin(w[k])
            L += a[k] * w[k] * w[k] / 2 + 3 * s[k] * sk * sk
            gk = a[k] * w[k] + 3 * s[k] * np.sin(2 * w[k])
            g2 += gk * gk
        loss_out[t] = L
        g2_out[t] = g2
        if t == T:
            break
        if not np.isfinite(L):
            return t
        for k in range(d):
            cj = 0.0
            ci = 0.0
            for m in range(b):
                cj += C[J[t, m], k]
                ci += C[I[t, m], k]
            gj = a[k] * w[k] + 3 * s[k] * np.sin(2 * w[k]) - cj / b
            wh = w[k] + rhos[t] * gj
            gi = a[k] * wh + 3 * s[k] * np.sin(2 * wh) - ci / b
            w[k] = w[k] - gammas[t] * gi
    return -1


@nb.njit(cache=True)
def _logistic_batch_grad(X, y, lam, w, idx, out):
    # out = (1/b) Σ_{i∈idx} ∇ℓ_i(w), ∇ℓ_i(w) = −y_i x_i σ(−y_i x_iᵀw) + λw
    d = w.size
    for k in range(d):
        out[k] = lam * w[k]
    b = idx.size
    for q in range(b):
        i = idx[q]
        m = 0.0
        for k in range(d):
            m += X[i, k] * w[k]
        m *= y[i]
        s = 1.0 / (1.0 + np.exp(m)) if m > -30.0 else 1.0 - np.exp(m)   # σ(−m), no overflow
        for k in range(d):
            out[k] -= y[i] * X[i, k] * s / b


@nb.njit(cache=True)
def sam_logistic(X, y, lam, w0, gammas, rhos, I, J, loss_out, g2_out):
    """SAM on :class:`~toymodels.sam_convergence.problems.Logistic`: ℓ_i(w) = log(1 + e^{−y_i x_iᵀw}) + λ‖w‖²/2;
    the full loss and gradient norm at every iterate, batch gradients for the two half-steps."""
    n, d = X.shape
    T = I.shape[0]
    w = w0.copy()
    g = np.empty(d)
    wh = np.empty(d)
    allidx = np.arange(n)
    for t in range(T + 1):
        L = 0.0
        w2 = 0.0
        for k in range(d):
            w2 += w[k] * w[k]
        for i in range(n):
            m = 0.0
            for k in range(d):
                m += X[i, k] * w[k]
            m *= y[i]
            L += max(-m, 0.0) + np.log1p(np.exp(-abs(m)))                 # log(1 + e^{−m}), stable
        loss_out[t] = L / n + lam * w2 / 2
        _logistic_batch_grad(X, y, lam, w, allidx, g)
        g2 = 0.0
        for k in range(d):
            g2 += g[k] * g[k]
        g2_out[t] = g2
        if t == T:
            break
        if not np.isfinite(loss_out[t]):
            return t
        _logistic_batch_grad(X, y, lam, w, J[t], g)
        for k in range(d):
            wh[k] = w[k] + rhos[t] * g[k]
        _logistic_batch_grad(X, y, lam, wh, I[t], g)
        for k in range(d):
            w[k] -= gammas[t] * g[k]
    return -1
