"""Numba kernels for the two-layer ReLU network in 1D (private; see :mod:`toymodels.relu.model` and
:mod:`toymodels.relu.sam`; numpy references of the same names in :mod:`toymodels.relu._reference.net1d`).

Model (m hidden neurons, biases in the hidden layer only, no output bias):

    f_θ(x) = Σⱼ aⱼ ReLU(wⱼ x + bⱼ),      θ = (w, b, a) ∈ ℝ^{3m}  (stored in this order)

with ReLU'(0) := 0 (as torch). Gradient of f at x:
    ∂f/∂wⱼ = aⱼ 1[zⱼ > 0] x,   ∂f/∂bⱼ = aⱼ 1[zⱼ > 0],   ∂f/∂aⱼ = ReLU(zⱼ),   zⱼ = wⱼ x + bⱼ.

SGD with batch 1 (thesis eq. 6.2, loss (6.1) L = (1/2n) Σ (f(xᵢ) − yᵢ)²):
    θ ← θ − η_t (f(x_{i_t}) − y_{i_t}) ∇_θ f(x_{i_t}),   i_t drawn beforehand (``idx``).

Full-batch GD / normalized SAM (thesis Sec. 5.5.3, Fig. 5.7; :func:`gd_sam`):
    θ_{t+1} = θ_t − η_t ∇L(θ_t + ε_t),   ε_t = ρ ∇L(θ_t)/‖∇L(θ_t)‖ (ε_t = 0 for ρ = 0: GD).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True)
def predict(x, w, b, a, out):
    """out[i] = f_θ(x[i])."""
    for i in range(x.shape[0]):
        s = 0.0
        for j in range(w.shape[0]):
            z = w[j] * x[i] + b[j]
            if z > 0.0:
                s += a[j] * z
        out[i] = s


@nb.njit(cache=True)
def loss(x, y, w, b, a):
    """(1/2n) Σᵢ (f(xᵢ) − yᵢ)²."""
    s = 0.0
    for i in range(x.shape[0]):
        f = 0.0
        for j in range(w.shape[0]):
            z = w[j] * x[i] + b[j]
            if z > 0.0:
                f += a[j] * z
        r = f - y[i]
        s += r * r
    return 0.5 * s / x.shape[0]


@nb.njit(cache=True)
def jacobian(x, w, b, a, J):
    """J[i] = ∇_θ f(x[i]) with θ = (w, b, a): J has shape (n, 3m)."""
    m = w.shape[0]
    for i in range(x.shape[0]):
        for j in range(m):
            z = w[j] * x[i] + b[j]
            if z > 0.0:
                J[i, j] = a[j] * x[i]
                J[i, m + j] = a[j]
                J[i, 2 * m + j] = z
            else:
                J[i, j] = 0.0
                J[i, m + j] = 0.0
                J[i, 2 * m + j] = 0.0


@nb.njit(cache=True)
def sgd(x, y, w, b, a, lr, idx, rec_at, rec_w, rec_b, rec_a, rec_loss):
    """Run len(lr) SGD steps in place on (w, b, a). After step t (i.e. at iteration count t+1) equal
    to rec_at[k] (sorted; rec_at[k] = 0 records the initialization) the parameters and the full
    training loss are stored in row k of rec_*. Returns the first step whose loss is not finite, or −1.
    """
    m = w.shape[0]
    k = 0
    while k < rec_at.shape[0] and rec_at[k] == 0:
        rec_w[k] = w
        rec_b[k] = b
        rec_a[k] = a
        rec_loss[k] = loss(x, y, w, b, a)
        k += 1
    for t in range(lr.shape[0]):
        i = idx[t]
        xi = x[i]
        f = 0.0
        for j in range(m):
            z = w[j] * xi + b[j]
            if z > 0.0:
                f += a[j] * z
        g = lr[t] * (f - y[i])
        if not np.isfinite(g):
            return t
        for j in range(m):
            z = w[j] * xi + b[j]
            if z > 0.0:
                aj = a[j]
                a[j] = aj - g * z
                w[j] -= g * aj * xi
                b[j] -= g * aj
        while k < rec_at.shape[0] and rec_at[k] == t + 1:
            rec_w[k] = w
            rec_b[k] = b
            rec_a[k] = a
            rec_loss[k] = loss(x, y, w, b, a)
            if not np.isfinite(rec_loss[k]):
                return t
            k += 1
    return -1


@nb.njit(cache=True)
def jacobian_ranks(x, rec_w, rec_b, rec_a, rel_tol, ranks, svals):
    """For every recorded θ_k: singular values of φ_θ(X) = J (n × 3m), stored in svals[k] (descending),
    and ranks[k] = #{σ : σ > rel_tol · σ_max} (0 when J = 0)."""
    n = x.shape[0]
    m = rec_w.shape[1]
    J = np.empty((n, 3 * m))
    for k in range(rec_w.shape[0]):
        jacobian(x, rec_w[k], rec_b[k], rec_a[k], J)
        s = np.linalg.svd(J, full_matrices=False)[1]     # numba's svd has no compute_uv
        r = 0
        for q in range(s.shape[0]):
            svals[k, q] = s[q]
            if s[0] > 0.0 and s[q] > rel_tol * s[0]:
                r += 1
        ranks[k] = r


@nb.njit(cache=True)
def _loss_grad(x, y, w, b, a, gw, gb, ga):
    """Fill (gw, gb, ga) with ∇L at (w, b, a); return L = (1/2n) Σ (f − y)²."""
    n, m = x.shape[0], w.shape[0]
    for j in range(m):
        gw[j] = 0.0
        gb[j] = 0.0
        ga[j] = 0.0
    L = 0.0
    for i in range(n):
        f = 0.0
        for j in range(m):
            z = w[j] * x[i] + b[j]
            if z > 0.0:
                f += a[j] * z
        r = (f - y[i]) / n
        L += 0.5 * n * r * r
        for j in range(m):
            z = w[j] * x[i] + b[j]
            if z > 0.0:
                ra = r * a[j]
                gw[j] += ra * x[i]
                gb[j] += ra
                ga[j] += r * z
    return L


@nb.njit(cache=True)
def gd_sam(x, y, w, b, a, lrs, rho, stop_loss, loss_every, loss_out):
    """len(lrs) steps of full-batch GD (``rho`` = 0) or normalized SAM, in place on (w, b, a).

    ``loss_out[t // loss_every] = L(θ_t)`` for t % loss_every == 0. Stops before the update at the first t
    whose loss at the descent-gradient point (θ_t, or θ_t + ε_t) satisfies n·L ≤ ``stop_loss`` and returns
    that t; returns −(t + 1) when a loss is not finite at step t; otherwise len(lrs)."""
    n, m = x.shape[0], w.shape[0]
    gw, gb, ga = np.empty(m), np.empty(m), np.empty(m)
    pw, pb, pa = np.empty(m), np.empty(m), np.empty(m)
    for t in range(lrs.shape[0]):
        L = _loss_grad(x, y, w, b, a, gw, gb, ga)
        if t % loss_every == 0:
            loss_out[t // loss_every] = L
        Lp = L
        if rho > 0.0:
            nrm = 0.0
            for j in range(m):
                nrm += gw[j] * gw[j] + gb[j] * gb[j] + ga[j] * ga[j]
            nrm = math.sqrt(nrm)
            s = rho / nrm if nrm > 0.0 else 0.0
            for j in range(m):
                pw[j] = w[j] + s * gw[j]
                pb[j] = b[j] + s * gb[j]
                pa[j] = a[j] + s * ga[j]
            Lp = _loss_grad(x, y, pw, pb, pa, gw, gb, ga)
        if not (math.isfinite(L) and math.isfinite(Lp)):
            return -(t + 1)
        if n * Lp <= stop_loss:
            return t
        for j in range(m):
            w[j] -= lrs[t] * gw[j]
            b[j] -= lrs[t] * gb[j]
            a[j] -= lrs[t] * ga[j]
    return lrs.shape[0]
