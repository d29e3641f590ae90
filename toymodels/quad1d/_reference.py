"""Plain-numpy reference of :func:`toymodels.quad1d._kernels._ensemble` (same signature and
semantics), vectorized over runs with one Python iteration per step (never deliberately slow). It
is the test oracle of the numba kernel and the baseline of ``python -m toymodels.bench``; it
performs the same floating-point operations in the same order, so results are bit-identical.
"""
from __future__ import annotations

import numpy as np

from ._kernels import (F_LOSS_FINAL, F_LOSS_MAX, F_LOSS_MIN, F_THETA0, F_THETA_FINAL, F_THMAX, F_THMIN,
                       GOLDEN, I_ARGMAX, I_ARGMIN, I_BAND, I_BOUNCE, I_DIV)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniforms(key, runs: np.ndarray, t: int) -> np.ndarray:
    """The stream's u ∈ [0, 1) for the runs ``runs`` (uint64 array) at step ``t``."""
    n = (runs << np.uint64(32)) + np.uint64(t)
    return (mix64(np.uint64(key) + n * GOLDEN) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def ensemble_reference(key, key0, start, theta0, eta, theta_star, a, b, points, cF, lo_band, hi_band,
                       div_bound, steps, istat, fstat, traj):
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
