"""Plain-numpy references of :mod:`toymodels.relu._kernels.net1d` (same names, parameters and semantics),
and the numpy forms of the loss gradient and of the normalized-SAM direction (:func:`loss_and_grad`,
:func:`sam_direction`, public through :mod:`toymodels.relu.sam`).

Vectorized over neurons per step (the SGD / GD recursions themselves are sequential), never deliberately
slow: the test oracle of the numba kernels and the baseline of ``python -m toymodels.bench``.
"""
from __future__ import annotations

import math

import numpy as np

from ...kernels import KernelCase
from .._kernels import net1d as _k


def predict(x, w, b, a, out):
    out[:] = np.maximum(np.outer(x, w) + b, 0.0) @ a


def loss(x, y, w, b, a):
    r = np.maximum(np.outer(x, w) + b, 0.0) @ a - y
    return 0.5 * float(r @ r) / x.shape[0]


def jacobian(x, w, b, a, J):
    z = np.outer(x, w) + b
    on = z > 0.0
    m = w.shape[0]
    J[:, :m] = np.where(on, a * x[:, None], 0.0)
    J[:, m:2 * m] = np.where(on, a, 0.0)
    J[:, 2 * m:] = np.where(on, z, 0.0)


def sgd(x, y, w, b, a, lr, idx, rec_at, rec_w, rec_b, rec_a, rec_loss):
    k = 0
    K = rec_at.shape[0]
    while k < K and rec_at[k] == 0:
        rec_w[k], rec_b[k], rec_a[k] = w, b, a
        rec_loss[k] = loss(x, y, w, b, a)
        k += 1
    for t in range(lr.shape[0]):
        i = idx[t]
        xi = x[i]
        z = w * xi + b
        on = z > 0.0
        g = lr[t] * (float(a[on] @ z[on]) - y[i])
        if not np.isfinite(g):
            return t
        gz = np.where(on, g, 0.0)
        a_old = a.copy()
        a -= gz * np.where(on, z, 0.0)
        w -= gz * a_old * xi
        b -= gz * a_old
        while k < K and rec_at[k] == t + 1:
            rec_w[k], rec_b[k], rec_a[k] = w, b, a
            rec_loss[k] = loss(x, y, w, b, a)
            if not np.isfinite(rec_loss[k]):
                return t
            k += 1
    return -1


def jacobian_ranks(x, rec_w, rec_b, rec_a, rel_tol, ranks, svals):
    n, m = x.shape[0], rec_w.shape[1]
    J = np.empty((n, 3 * m))
    for k in range(rec_w.shape[0]):
        jacobian(x, rec_w[k], rec_b[k], rec_a[k], J)
        s = np.linalg.svd(J, compute_uv=False)
        svals[k, :s.shape[0]] = s
        ranks[k] = int(np.sum(s > rel_tol * s[0])) if s[0] > 0 else 0


def loss_and_grad(x, y, w, b, a):
    """L(θ) = (1/2n) Σ (f(xᵢ) − yᵢ)² and its gradient (g_w, g_b, g_a); ReLU'(0) := 0 (as torch)."""
    z = np.outer(x, w) + b                                   # (n, m)
    on = z > 0.0
    r = (np.where(on, z, 0.0) @ a - y) / x.shape[0]          # residuals / n
    ra = np.outer(r, a) * on
    return 0.5 * x.shape[0] * float(r @ r), x @ ra, ra.sum(0), r @ np.where(on, z, 0.0)


def sam_direction(x, y, w, b, a, rho):
    """∇L(θ + ε) with ε = ρ∇L(θ)/‖∇L(θ)‖ (the normalized-SAM descent direction), as (g_w, g_b, g_a),
    together with the loss at the ascent point."""
    _, gw, gb, ga = loss_and_grad(x, y, w, b, a)
    nrm = math.sqrt(gw @ gw + gb @ gb + ga @ ga)
    s = rho / nrm if (rho > 0 and nrm > 0) else 0.0
    Lp, pw, pb, pa = loss_and_grad(x, y, w + s * gw, b + s * gb, a + s * ga)
    return Lp, pw, pb, pa


def gd_sam(x, y, w, b, a, lrs, rho, stop_loss, loss_every, loss_out):
    """Full-batch GD (``rho`` = 0) or normalized SAM; updates w, b, a in place. Returns the number of steps
    taken (≤ T; early stop once n·L ≤ ``stop_loss`` at the descent-gradient point), or −(t+1) if a loss
    was not finite at step t."""
    n = x.shape[0]
    for t in range(lrs.shape[0]):
        L = loss_and_grad(x, y, w, b, a)[0]
        if t % loss_every == 0:
            loss_out[t // loss_every] = L
        Lp, gw, gb, ga = sam_direction(x, y, w, b, a, rho)
        if not (math.isfinite(L) and math.isfinite(Lp)):
            return -(t + 1)
        if n * Lp <= stop_loss:
            return t
        w -= lrs[t] * gw
        b -= lrs[t] * gb
        a -= lrs[t] * ga
    return lrs.shape[0]


# ---------------------------------------------------------------- registry cases
def _net(size: str, s_a: float = 0.05):
    """Blanc et al.'s 12 points (small) or 10⁴ points on [−2, 2] (bench), the Fig. 6.4 init (m = 100, seed 0)."""
    from ..model import blanc_data, init_params

    x, y = blanc_data()
    if size != "small":
        x = np.linspace(-2.0, 2.0, 10_000)
        y = np.sin(3 * x)
    return (x, y, *init_params(100, 1.0, s_a, 0))


def _predict_args(size: str):
    x, _, w, b, a = _net(size)
    return x, w, b, a, np.empty(x.size)


def _jacobian_args(size: str):
    x, _, w, b, a = _net(size)
    return x, w, b, a, np.empty((x.size, 3 * w.size))


def _sgd_args(size: str):
    """Fig. 6.4's schedule (decay at 50 %): small 2000 steps, 20 records; bench 3·10⁴ steps, 250 records."""
    from ..model import ReLUConfig, blanc_data, checkpoints, init_params
    from ..schedule import warmup_decay_schedule

    steps, K = (2000, 20) if size == "small" else (30_000, 250)
    c = ReLUConfig()
    x, y = blanc_data()
    lr = warmup_decay_schedule(c.lr, steps, 0.5, c.warmup_factor, c.decay_factor)
    idx = np.random.default_rng(1).integers(0, x.shape[0], size=steps)
    rec_at = checkpoints(steps, K)
    rec = [np.zeros((rec_at.size, c.m)) for _ in range(3)]
    return (x, y, *init_params(c.m, c.s_w, c.s_a, 0), lr, idx, rec_at, *rec, np.zeros(rec_at.size))


def _ranks_args(size: str):
    """Ranks of φ_θ(X) at K perturbed copies of the init (K = 20 small, 250 bench)."""
    x, _, w, b, a = _net("small")
    K = 20 if size == "small" else 250
    rng = np.random.default_rng(2)
    rec = [v + 0.1 * rng.standard_normal((K, v.size)) for v in (w, b, a)]
    return (x, *rec, 1e-4, np.zeros(K, np.int64), np.zeros((K, min(x.size, 3 * w.size))))


def _gd_sam_args(size: str, rho: float):
    """Fig. 5.7's run (m = 100, init scales 1, η = 6·10⁻⁴ decayed linearly); small 300 steps, bench 2·10⁴."""
    from ..model import blanc_data, init_params

    T = 300 if size == "small" else 20_000
    x, y = blanc_data()
    lrs = 6e-4 * (1.0 - np.arange(1, T + 1) / T)
    return (x, y, *init_params(100, 1.0, 1.0, 0), lrs, rho, 1e-5, 7, np.full((T - 1) // 7 + 1, np.nan))


_BLAS = "the reference sums over neurons with BLAS dot products, in another order than the kernel's loops"
_SVD = "numba's and numpy's SVD call different LAPACK builds"
CASES = [
    KernelCase("relu.predict.net1d", _k.predict, predict, _predict_args, rtol=1e-13, atol=1e-14, why=_BLAS),
    KernelCase("relu.loss.net1d", _k.loss, loss, _net, rtol=1e-13, why=_BLAS),
    KernelCase("relu.jacobian.net1d", _k.jacobian, jacobian, _jacobian_args),
    KernelCase("relu.sgd.net1d", _k.sgd, sgd, _sgd_args, rtol=1e-10, atol=1e-12, why=_BLAS),
    KernelCase("relu.jacobian_ranks", _k.jacobian_ranks, jacobian_ranks, _ranks_args, rtol=1e-12, atol=1e-13,
               why=_SVD),
    KernelCase("relu.gd_sam", _k.gd_sam, gd_sam, lambda size: _gd_sam_args(size, 0.3), rtol=1e-10, atol=1e-12,
               why=_BLAS),
    KernelCase("relu.gd_sam.erm", _k.gd_sam, gd_sam, lambda size: _gd_sam_args(size, 0.0), rtol=1e-10,
               atol=1e-12, why=_BLAS),
]
