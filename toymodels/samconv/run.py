"""SAM iterations on the test problems: full-batch SAM (eq. 5.20) and stochastic n-SAM (eq. 5.21) /
m-SAM (eq. 5.4).

Full batch (any problem with ``grad``/``loss``):  w_{t+1} = w_t − γ_t ∇L(w_t + ρ_t ∇L(w_t)).
Stochastic (:class:`~.problems.Separable`): with I_t, J_t two batches of b i.i.d. uniform indices
(with replacement, so the batch-gradient variance is exactly σ²/b),

    w_{t+1} = w_t − γ_t ∇L_{I_t}(w_t + ρ_t ∇L_{J_t}(w_t)),   ∇L_I = (1/b) Σ_{i∈I} ∇ℓ_i;

n-SAM draws J_t independently of I_t, m-SAM uses J_t = I_t. The hot stochastic loops (many seeds × T
steps) are the numba kernels :func:`_sam_sep_kernel` (:class:`~.problems.Separable`) and
:func:`_sam_logistic_kernel` (:class:`~.problems.Logistic`); :func:`sam_stochastic_reference` (generic:
any problem with ``loss``, ``grad``, ``grad_batch``) is their numpy oracle.
"""
from __future__ import annotations

import numba
import numpy as np

from .problems import Logistic, Separable

__all__ = ["sam_full_batch", "draw_batches", "sam_stochastic", "sam_stochastic_reference",
           "sam_stochastic_many"]


def sam_full_batch(problem, w0, gammas, rhos):
    """Run (5.20) for T = len(gammas) steps. Returns (W (T+1, d), losses (T+1,), grad_norm2 (T+1,)).

    Raises FloatingPointError at the first non-finite iterate (naming the step)."""
    gammas, rhos = np.asarray(gammas, float), np.asarray(rhos, float)
    T = gammas.size
    w = np.array(w0, float)
    W = np.empty((T + 1, w.size))
    W[0] = w
    for t in range(T):
        g = problem.grad(w)
        w = w - gammas[t] * problem.grad(w + rhos[t] * g)
        if not np.all(np.isfinite(w)):
            raise FloatingPointError(f"SAM diverged at step {t + 1}")
        W[t + 1] = w
    G = problem.grad(W)
    return W, problem.loss(W), np.sum(G * G, -1)


def draw_batches(rng, n, b, T, same: bool):
    """I, J of shape (T, b), i.i.d. uniform in [0, n); J is I for m-SAM (same=True)."""
    I = rng.integers(0, n, size=(T, b))
    J = I if same else rng.integers(0, n, size=(T, b))
    return I, J


@numba.njit(cache=True)
def _sam_sep_kernel(a, s, C, w0, gammas, rhos, I, J, loss_out, g2_out):
    # Separable problem: ∇ℓ_i(w) = a⊙w + 3 s⊙sin(2w) − c_i; the batch mean of c_i is the only noise.
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


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def _sam_logistic_kernel(X, y, lam, w0, gammas, rhos, I, J, loss_out, g2_out):
    # Logistic problem: full loss and gradient norm at every iterate, batch gradients for the two steps.
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


def sam_stochastic_reference(problem, w0, gammas, rhos, I, J):
    """Numpy oracle of :func:`_sam_sep_kernel`: returns (losses (T+1,), grad_norm2 (T+1,))."""
    w = np.array(w0, float)
    T = len(gammas)
    losses, g2 = np.empty(T + 1), np.empty(T + 1)
    for t in range(T + 1):
        g = problem.grad(w)
        losses[t], g2[t] = problem.loss(w), g @ g
        if t == T:
            break
        wh = w + rhos[t] * problem.grad_batch(w, J[t])
        w = w - gammas[t] * problem.grad_batch(wh, I[t])
    return losses, g2


def sam_stochastic(problem, w0, gammas, rhos, I, J):
    """Numba version of :func:`sam_stochastic_reference` (same inputs, same outputs) for
    :class:`~.problems.Separable` and :class:`~.problems.Logistic`."""
    T = len(gammas)
    losses, g2 = np.empty(T + 1), np.empty(T + 1)
    args = (np.asarray(w0, float), np.asarray(gammas, float), np.asarray(rhos, float),
            np.ascontiguousarray(I, np.int64), np.ascontiguousarray(J, np.int64), losses, g2)
    if isinstance(problem, Separable):
        bad = _sam_sep_kernel(problem.a, problem.s, problem.C, *args)
    elif isinstance(problem, Logistic):
        bad = _sam_logistic_kernel(problem.X, problem.y, float(problem.lam), *args)
    else:
        raise TypeError(f"no stochastic kernel for {type(problem).__name__}; use sam_stochastic_reference")
    if bad >= 0:
        raise FloatingPointError(f"stochastic SAM diverged at step {bad}")
    return losses, g2


def sam_stochastic_many(problem, w0, gammas, rhos, b, seeds, same=False):
    """Independent runs, one per seed (numpy default_rng(seed) draws the batches).
    Returns (losses (R, T+1), grad_norm2 (R, T+1))."""
    T = len(gammas)
    out_L, out_g = np.empty((len(seeds), T + 1)), np.empty((len(seeds), T + 1))
    for r, seed in enumerate(seeds):
        I, J = draw_batches(np.random.default_rng(seed), problem.n, b, T, same)
        out_L[r], out_g[r] = sam_stochastic(problem, w0, gammas, rhos, I, J)
    return out_L, out_g
