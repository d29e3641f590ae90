"""Plain-numpy references of :mod:`toymodels.sam_convergence._kernels` (same names, parameters and
semantics), vectorized over coordinates and batch members with one Python iteration per SAM step: the
test oracle of the kernels and the baseline of ``python -m toymodels.bench``.

Sums run in the kernels' order (``np.cumsum`` adds sequentially, unlike ``np.sum``'s pairwise
summation), so that both agree to the last bit wherever numpy's elementwise functions agree with the C library's
(sin does here; the vectorized exp and log1p of the logistic loss differ by an ulp).
"""
from __future__ import annotations

import numpy as np

from ..kernels import KernelCase
from . import _kernels


def _seq_sum(v, axis=-1):
    """Σ v along ``axis`` added one term after the other, as a loop does."""
    return np.cumsum(v, axis=axis).take(-1, axis=axis)


def sam_separable(a, s, C, w0, gammas, rhos, I, J, loss_out, g2_out):
    """:func:`toymodels.sam_convergence._kernels.sam_separable` in numpy."""
    T, b = I.shape
    w = np.array(w0, dtype=np.float64)
    for t in range(T + 1):
        sw = np.sin(w)
        g = a * w + 3 * s * np.sin(2 * w)
        loss_out[t] = _seq_sum(a * w * w / 2 + 3 * s * sw * sw)
        g2_out[t] = _seq_sum(g * g)
        if t == T:
            break
        if not np.isfinite(loss_out[t]):
            return t
        cj, ci = _seq_sum(C[J[t]], axis=0), _seq_sum(C[I[t]], axis=0)
        wh = w + rhos[t] * (g - cj / b)
        w = w - gammas[t] * (a * wh + 3 * s * np.sin(2 * wh) - ci / b)
    return -1


def _logistic_margins(X, y, w):
    """yᵢ xᵢᵀw for the rows of X."""
    return _seq_sum(X * w) * y


def _logistic_batch_grad(X, y, lam, w, idx):
    """(1/b) Σ_{i∈idx} ∇ℓᵢ(w) = λw − (1/b) Σ yᵢ xᵢ σ(−yᵢxᵢᵀw), σ(−m) written without overflow."""
    Xb, yb = X[idx], y[idx]
    m = _logistic_margins(Xb, yb, w)
    sig = np.where(m > -30.0, 1.0 / (1.0 + np.exp(m)), 1.0 - np.exp(m))
    terms = yb[:, None] * Xb * sig[:, None] / idx.size
    return _seq_sum(np.vstack([lam * w, -terms]), axis=0)


def sam_logistic(X, y, lam, w0, gammas, rhos, I, J, loss_out, g2_out):
    """:func:`toymodels.sam_convergence._kernels.sam_logistic` in numpy."""
    n = X.shape[0]
    T = I.shape[0]
    w = np.array(w0, dtype=np.float64)
    allidx = np.arange(n)
    for t in range(T + 1):
        m = _logistic_margins(X, y, w)
        loss = _seq_sum(np.maximum(-m, 0.0) + np.log1p(np.exp(-np.abs(m))))
        loss_out[t] = loss / n + lam * _seq_sum(w * w) / 2
        g = _logistic_batch_grad(X, y, lam, w, allidx)
        g2_out[t] = _seq_sum(g * g)
        if t == T:
            break
        if not np.isfinite(loss_out[t]):
            return t
        wh = w + rhos[t] * _logistic_batch_grad(X, y, lam, w, J[t])
        w = w - gammas[t] * _logistic_batch_grad(X, y, lam, wh, I[t])
    return -1


def _batches(n, b, T):
    rng = np.random.default_rng(3)
    return rng.integers(0, n, size=(T, b)), rng.integers(0, n, size=(T, b))


def _separable_args(size: str):
    """x² + 3 sin² x in d = 3 (n = 20, b = 4), Thm 5.10.5's PL steps; small: T = 200, bench: T = 2·10⁴."""
    from .bounds import thm5105_pl_steps
    from .problems import sine

    T = 200 if size == "small" else 20_000
    p = sine(d=3)
    I, J = _batches(p.n, 4, T)
    g, r = thm5105_pl_steps(p.beta, p.mu, T)
    return (p.a, p.s, p.C, np.full(3, 1.7), g, r, I, J, np.empty(T + 1), np.empty(T + 1))


def _logistic_args(size: str):
    """Logistic regression (n = 16, d = 3, λ = 0.1, b = 4), Thm 5.10.5's PL steps with β_ind;
    small: T = 150, bench: T = 2·10⁴."""
    from .bounds import thm5105_pl_steps
    from .problems import logistic

    T = 150 if size == "small" else 20_000
    p = logistic()
    I, J = _batches(p.n, 4, T)
    g, r = thm5105_pl_steps(p.beta_ind, p.mu, T)
    return (p.X, p.y, float(p.lam), np.array([3.0, -2.0, 1.0]), g, r, I, J, np.empty(T + 1), np.empty(T + 1))


CASES = [
    KernelCase("sam_convergence.sam_separable", _kernels.sam_separable, sam_separable, _separable_args),
    KernelCase("sam_convergence.sam_logistic", _kernels.sam_logistic, sam_logistic, _logistic_args,
               rtol=1e-12, atol=1e-15,
               why="numpy's vectorized exp and log1p differ from the C library's (used by numba) by an ulp"),
]
