"""Plain-numpy reference of :func:`toymodels.quad1d._kernels.ensemble` (same name, signature and
semantics), vectorized over runs with one Python iteration per step (never deliberately slow). It
is the test oracle of the numba kernel and the baseline of ``python -m toymodels.bench``; it
performs the same floating-point operations in the same order, so results are bit-identical.
"""
from __future__ import annotations

import numpy as np

from ..kernels import KernelCase
from ..rng import key64, uniform_np
from . import _kernels
from ._kernels import (F_LOSS_FINAL, F_LOSS_MAX, F_LOSS_MIN, F_THETA0, F_THETA_FINAL, F_THMAX, F_THMIN,
                       I_ARGMAX, I_ARGMIN, I_BAND, I_BOUNCE, I_DIV, N_FSTAT, N_ISTAT)


def uniforms(key, runs: np.ndarray, t: int) -> np.ndarray:
    """The stream's u ∈ [0, 1) for the runs ``runs`` (uint64 array) at step ``t``."""
    return uniform_np(key, (runs << np.uint64(32)) + np.uint64(t))


def ensemble(key, key0, start, theta0, eta, theta_star, a, b, points, cF, lo_band, hi_band,
             div_bound, steps, istat, fstat, traj):
    """The kernel's computation, vectorized over runs, one Python iteration per step.

    Long because it mirrors the kernel statement by statement (that is what makes it a readable
    oracle)."""
    nr = istat.shape[0]
    runs = np.arange(start, start + nr, dtype=np.uint64)
    ts2 = theta_star * theta_star
    npts = len(points)
    th = np.full(nr, theta0) if not np.isnan(theta0) else theta_star * uniforms(key0, runs, 0)
    fstat[:, F_THETA0] = th
    ntr = traj.shape[0]
    rec = ntr > 0
    if rec:
        traj[:, 0] = th[:ntr]
    lmin = np.full(nr, np.inf)
    lmax = np.full(nr, -np.inf)
    amin = np.full(nr, -1, dtype=np.int64)
    amax = np.full(nr, -1, dtype=np.int64)
    thmin = np.full(nr, np.inf)
    thmax = np.full(nr, -np.inf)
    last_nb = np.zeros(nr, dtype=np.int64)
    last_nband = np.zeros(nr, dtype=np.int64)
    div = np.full(nr, -1, dtype=np.int64)
    alive = np.ones(nr, dtype=bool)
    t_done = np.zeros(nr, dtype=np.int64)
    loss = np.full(nr, np.nan)
    prev_d = np.zeros(nr)
    prev_lo = np.zeros(nr, dtype=bool)
    prev_hi = np.zeros(nr, dtype=bool)
    for t in range(steps):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        u = uniforms(key, runs[idx], t)
        if npts > 0:
            x = np.asarray(points)[np.minimum((u * npts).astype(np.int64), npts - 1)]
        else:
            x = a + (b - a) * u
        y = x * ts2
        th_i = th[idx]
        with np.errstate(over="ignore", invalid="ignore"):
            th_i = th_i + eta * th_i * x * (y - x * th_i * th_i)
        th[idx] = th_i
        s = t + 1
        if rec:
            m = idx < ntr
            traj[idx[m], s] = th_i[m]
        bad = ~np.isfinite(th_i) | (np.abs(th_i) > div_bound)
        div[idx[bad]] = s
        alive[idx[bad]] = False
        idx, th_i = idx[~bad], th_i[~bad]
        t_done[idx] = s
        d2 = ts2 - th_i * th_i
        lo = cF * d2 * d2
        loss[idx] = lo
        m = lo < lmin[idx]
        lmin[idx[m]] = lo[m]
        amin[idx[m]] = s
        m = lo > lmax[idx]
        lmax[idx[m]] = lo[m]
        amax[idx[m]] = s
        thmin[idx] = np.minimum(thmin[idx], th_i)
        thmax[idx] = np.maximum(thmax[idx], th_i)
        d = th_i - theta_star
        is_lo = (th_i > lo_band[0]) & (th_i < lo_band[1])
        is_hi = (th_i > hi_band[0]) & (th_i < hi_band[1])
        if s >= 2:
            last_nb[idx[~(prev_d[idx] * d < 0.0)]] = s - 1
            ok = (prev_lo[idx] & is_hi) | (prev_hi[idx] & is_lo)
            last_nband[idx[~ok]] = s - 1
        prev_d[idx] = d
        prev_lo[idx] = is_lo
        prev_hi[idx] = is_hi
    if rec:
        for j in np.flatnonzero(div[:ntr] >= 0):
            traj[j, div[j] + 1:] = np.nan
    write_stats(istat, fstat, amin, amax, div, t_done, last_nb, last_nband, steps, th, lmin, lmax, loss, thmin, thmax)


def _ensemble_args(size: str, points=()):
    """Prop. 6.7.1's setting (η = 1.1, ρ̂ = U[1, 1.05], θ* = 1, θ₀ random; bands of its ε_o) or ρ̂ on points;
    traj records the first 3 runs. small: 64 runs × 300 steps; bench: 10⁵ runs × 10³ steps."""
    runs, steps = (64, 300) if size == "small" else (100_000, 1000)
    pts = np.asarray(points, dtype=np.float64)
    return (key64(0, "quad1d/x"), key64(0, "quad1d/theta0"), 0, np.nan, 1.1, 1.0, 1.0, 1.05, pts,
            (1.0 + 1.05 + 1.05 ** 2) / 12.0, np.array([0.8, 0.95]), np.array([1.05, 1.2]), 1e3, steps,
            np.empty((runs, N_ISTAT), np.int64), np.empty((runs, N_FSTAT)), np.empty((3, steps + 1)))


CASES = [
    KernelCase("quad1d.ensemble", _kernels.ensemble, ensemble, _ensemble_args),
    KernelCase("quad1d.ensemble.points", _kernels.ensemble, ensemble,
               lambda size: _ensemble_args(size, points=(0.5, 1.0, 1.3))),
]


def write_stats(istat, fstat, amin, amax, div, t_done, last_nb, last_nband, steps, th, lmin, lmax, loss, thmin,
                thmax) -> None:
    """Fill the per-run statistics rows (``I_*`` / ``F_*`` columns) at the end of a run; shared with the
    lean benchmark baseline (:func:`toymodels.bench.quad1d.lean_ensemble`)."""
    istat[:, I_ARGMIN] = amin
    istat[:, I_ARGMAX] = amax
    istat[:, I_DIV] = div
    qual = (div < 0) & (t_done >= 2)
    istat[:, I_BOUNCE] = np.where(qual, last_nb + 1, steps)
    istat[:, I_BAND] = np.where(qual, last_nband + 1, steps)
    fstat[:, F_THETA_FINAL] = th
    fstat[:, F_LOSS_MIN] = lmin
    fstat[:, F_LOSS_MAX] = lmax
    fstat[:, F_LOSS_FINAL] = np.where(div < 0, loss, np.nan)
    fstat[:, F_THMIN] = thmin
    fstat[:, F_THMAX] = thmax
