"""SAM iterations on the test problems: full-batch SAM (eq. 5.20) and stochastic n-SAM (eq. 5.21) /
m-SAM (eq. 5.4).

Full batch (any problem with ``grad``/``loss``):  w_{t+1} = w_t − γ_t ∇L(w_t + ρ_t ∇L(w_t)).
Stochastic (:class:`~.problems.Separable`): with I_t, J_t two batches of b i.i.d. uniform indices
(with replacement, so the batch-gradient variance is exactly σ²/b),

    w_{t+1} = w_t − γ_t ∇L_{I_t}(w_t + ρ_t ∇L_{J_t}(w_t)),   ∇L_I = (1/b) Σ_{i∈I} ∇ℓ_i;

n-SAM draws J_t independently of I_t, m-SAM uses J_t = I_t. The hot stochastic loop (many seeds × T
steps) is the numba kernel :func:`_sam_sep_kernel`; :func:`sam_stochastic_reference` is its numpy oracle.
"""
from __future__ import annotations

import numba
import numpy as np

from .problems import Separable

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


def sam_stochastic_reference(problem: Separable, w0, gammas, rhos, I, J):
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


def sam_stochastic(problem: Separable, w0, gammas, rhos, I, J):
    """Numba version of :func:`sam_stochastic_reference` (same inputs, same outputs)."""
    T = len(gammas)
    losses, g2 = np.empty(T + 1), np.empty(T + 1)
    bad = _sam_sep_kernel(problem.a, problem.s, problem.C, np.asarray(w0, float),
                          np.asarray(gammas, float), np.asarray(rhos, float),
                          np.ascontiguousarray(I, np.int64), np.ascontiguousarray(J, np.int64), losses, g2)
    if bad >= 0:
        raise FloatingPointError(f"stochastic SAM diverged at step {bad}")
    return losses, g2


def sam_stochastic_many(problem: Separable, w0, gammas, rhos, b, seeds, same=False):
    """Independent runs, one per seed (numpy default_rng(seed) draws the batches).
    Returns (losses (R, T+1), grad_norm2 (R, T+1))."""
    T = len(gammas)
    out_L, out_g = np.empty((len(seeds), T + 1)), np.empty((len(seeds), T + 1))
    for r, seed in enumerate(seeds):
        I, J = draw_batches(np.random.default_rng(seed), problem.n, b, T, same)
        out_L[r], out_g[r] = sam_stochastic(problem, w0, gammas, rhos, I, J)
    return out_L, out_g
