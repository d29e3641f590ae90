"""Numba ensemble kernel for the 1D quadratic-parameterization SGD (private; see
:mod:`toymodels.quad1d.sim`).

Recursion (thesis eq. 6.5 / 6.21), one independent run per ``r``:

    θ_{t+1} = θ_t + η θ_t x_t (y_t − x_t θ_t²),   y_t = x_t θ*²,   x_t ~ ρ̂ i.i.d.

Random numbers come from the counter-based SplitMix64 stream of :mod:`toymodels.rng`: the draw of
run r at step t (t = 0, 1, …) is

    u = rng.uniform(key, n),   n = r·2³² + t,

so it depends only on (seed, r, t): not on the thread split, on the number of runs or of steps.
x = a + (b − a)·u for ρ̂ = U[a, b], or x = points[⌊u·K⌋] for ρ̂ uniform on K points. A random
θ₀ (uniform on (0, θ*)) of run r uses the key ``key0`` at n = r. The numpy reference
(:mod:`toymodels.quad1d._reference`) performs the same floating-point operations in the same order,
so both give bit-identical results.

Loss: F(θ) = ¼ E_ρ̂ (y − xθ²)² = (m₂/4)(θ*² − θ²)², m₂ = E_ρ̂[x²] (population loss under ρ̂, the
thesis' normalization); the kernel receives ``cF = m₂/4``.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from ..rng import uniform

_S32 = np.uint64(32)

#: per-run integer outputs (columns of ``istat``)
I_ARGMIN, I_ARGMAX, I_BOUNCE, I_BAND, I_DIV = 0, 1, 2, 3, 4
#: per-run float outputs (columns of ``fstat``)
F_THETA0, F_THETA_FINAL, F_LOSS_MIN, F_LOSS_MAX, F_LOSS_FINAL, F_THMIN, F_THMAX = 0, 1, 2, 3, 4, 5, 6
N_ISTAT, N_FSTAT = 5, 7


@nb.njit(cache=True, inline="always")
def _unif(key, r, t):
    return uniform(key, (np.uint64(r) << _S32) + np.uint64(t))


@nb.njit(cache=True, parallel=True, fastmath=False)
def ensemble(key, key0, start, theta0, eta, theta_star, a, b, points, cF, lo_band, hi_band,
              div_bound, steps, istat, fstat, traj):
    """Simulate runs ``start .. start + istat.shape[0] − 1`` for ``steps`` steps.

    theta0 : float; NaN means θ₀ ~ U(0, θ*) per run (key ``key0``).
    points : the support when ρ̂ is uniform on points (len ≥ 1); empty array means U[a, b].
    lo_band, hi_band : (lo, hi) open intervals of Prop. 6.7.1's bouncing bands (absolute θ).
    div_bound : a run diverges at the first t with θ_t non-finite or |θ_t| > div_bound; it stops
        there (istat[:, I_DIV] = t, else −1; loss statistics cover the steps before it).
    Outputs per run (t ranges over 1..steps): loss min/max and their steps, final loss and θ,
    min/max of θ, I_BOUNCE = first s ≥ 1 from which (θ_t − θ*)(θ_{t+1} − θ*) < 0 for all
    s ≤ t < steps, I_BAND = first s ≥ 1 from which consecutive iterates alternate between the two
    bands (both = steps when the last pair does not qualify). traj (k × (steps+1), k ≤ runs) receives θ_t of the first k runs
    (k = 0: nothing recorded).

    Long because one pass over the steps keeps every per-run statistic in registers; helpers would
    have to carry a dozen of them in and out at every step.
    """
    nr = istat.shape[0]
    npts = points.shape[0]
    ts2 = theta_star * theta_star
    ntr = traj.shape[0]
    for j in nb.prange(nr):
        rec = j < ntr
        r = start + j
        th = theta0
        if np.isnan(theta0):
            th = theta_star * _unif(key0, r, 0)
        fstat[j, F_THETA0] = th
        if rec:
            traj[j, 0] = th
        lmin = np.inf
        lmax = -np.inf
        amin = -1
        amax = -1
        thmin = np.inf
        thmax = -np.inf
        last_nb = 0          # last t ≥ 1 whose pair (t, t+1) does not bounce across θ*
        last_nband = 0       # last t ≥ 1 whose pair is not a band alternation
        div = -1
        prev_d = 0.0
        prev_lo = False
        prev_hi = False
        loss = np.nan
        t_done = 0
        for t in range(steps):
            u = _unif(key, r, t)
            if npts > 0:
                k = int(u * npts)
                if k >= npts:
                    k = npts - 1
                x = points[k]
            else:
                x = a + (b - a) * u
            y = x * ts2
            th = th + eta * th * x * (y - x * th * th)
            s = t + 1
            if rec:
                traj[j, s] = th
            if not np.isfinite(th) or abs(th) > div_bound:
                div = s
                break
            t_done = s
            d2 = ts2 - th * th
            loss = cF * d2 * d2
            if loss < lmin:
                lmin = loss
                amin = s
            if loss > lmax:
                lmax = loss
                amax = s
            thmin = min(thmin, th)
            thmax = max(thmax, th)
            d = th - theta_star
            is_lo = th > lo_band[0] and th < lo_band[1]
            is_hi = th > hi_band[0] and th < hi_band[1]
            if s >= 2:
                if not (prev_d * d < 0.0):
                    last_nb = s - 1
                if not ((prev_lo and is_hi) or (prev_hi and is_lo)):
                    last_nband = s - 1
            prev_d = d
            prev_lo = is_lo
            prev_hi = is_hi
        if rec and div >= 0:
            for s2 in range(div + 1, steps + 1):
                traj[j, s2] = np.nan
        istat[j, I_ARGMIN] = amin
        istat[j, I_ARGMAX] = amax
        istat[j, I_DIV] = div
        if div >= 0 or t_done < 2:
            istat[j, I_BOUNCE] = steps
            istat[j, I_BAND] = steps
        else:
            istat[j, I_BOUNCE] = last_nb + 1
            istat[j, I_BAND] = last_nband + 1
        fstat[j, F_THETA_FINAL] = th
        fstat[j, F_LOSS_MIN] = lmin
        fstat[j, F_LOSS_MAX] = lmax
        fstat[j, F_LOSS_FINAL] = loss if div < 0 else np.nan
        fstat[j, F_THMIN] = thmin
        fstat[j, F_THMAX] = thmax
