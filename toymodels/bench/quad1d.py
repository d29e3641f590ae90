"""1D quadratic-parameterization SGD ensemble (thesis eq. 6.5): :func:`toymodels.quad1d._kernels.ensemble`
vs a lean vectorized-numpy loop (:func:`lean_ensemble`, the baseline of the speed-up) and the readable
reference :func:`toymodels.quad1d._reference.ensemble`.

``quad1d_1e6x1e3``: 10⁶ independent runs × 10³ steps (10⁹ updates, each with one counter-based
uniform draw), ρ̂ = U[1, 1.05], θ* = 1, η = 1.1, θ₀ ~ U(0, 1), seed 0, in one kernel call
(``--quick``: 10⁵ runs). The numpy baselines (vectorized over runs, one Python iteration per step)
are timed on 10⁵ runs and their times scaled ×10 (cost linear in runs; at 10⁶ runs a single
reference repeat takes ~35 s on 2 cores); kernel and reference must agree bit for bit on those 10⁵
runs (``max_abs_diff`` = 0), and so must the lean loop (``lean_max_abs_diff``).

Baselines (issue 17): ``numpy_s`` is :func:`lean_ensemble` — the same statistics with in-place
ufuncs on preallocated buffers, the counter base ``key + (r·2³²)·φ`` computed once (``φ`` the
SplitMix64 increment; the same uint64 sum mod 2⁶⁴), one ``max |θ|`` reduction per step for the
divergence test and no index compaction while no run has diverged; ``reference_s`` is the
readable reference (per-step fancy indexing over the live runs). Target: numba ≥ 2× the lean loop
(issue 17: it was 5× against the reference; measured on the loaded 2-core machine, 2 numba threads
against one-core numpy, three runs: 2.2–3.1× the lean loop, 6.0–6.7× the reference).

Physical limit, per update (one run, one step): SplitMix64 = 3 shift-xor pairs + 2 multiplies + 1 add
+ counter add + shift + int→float + scale ≈ 12 integer/float ops; x, y and the update ≈ 9 flops;
loss, min/max and argmin/argmax, the two bands and the bounce test ≈ 16 compares/flops: ≈ 37 scalar
operations. Counted as FLOPs at one core's dgemm peak (76 GFLOP/s, i.e. assuming full 4-wide FMA
vectorization, which integer multiplies of 64 bits do not have on AVX2): 10⁹ × 37 / 76e9 ≈ 0.49 s,
over the 2 cores of the machine ≈ 0.24 s. Bytes: a run's state lives in registers; the 12 output
numbers per run (96 B, 96 MB in all) are written once: 0.1 ns per update, negligible. The workload
is compute-bound; ``limit.ratio`` = kernel time / the one-core floor (per-core: ×½ with 2 threads).
"""
from __future__ import annotations

import numpy as np

from ..quad1d import _kernels
from ..quad1d._kernels import F_THETA0
from ..quad1d._reference import ensemble as ensemble_reference, write_stats
from ..quad1d.sim import stream_keys
from ..rng import GOLDEN, mix64_inplace, mix64_np
from . import BenchContext, audit, best_of, first_call, workload

STEPS = 1000
ETA, A, B = 1.1, 1.0, 1.05
#: scalar operations per update (module docstring)
OPS_PER_UPDATE = 37

_S11 = np.uint64(11)


def _mix_uniform(z, tmp, u):
    """u = SplitMix64 uniform of the counters-plus-key ``z`` (uint64, destroyed), as
    :func:`toymodels.rng.uniform` (bit-identical), with the buffer ``tmp``."""
    mix64_inplace(z, tmp)
    z >>= _S11
    np.multiply(z, 2.0 ** -53, out=u, casting="unsafe")


def lean_ensemble(key, key0, start, theta0, eta, theta_star, a, b, points, cF, lo_band, hi_band,
                  div_bound, steps, istat, fstat, traj):
    """The computation of :func:`toymodels.quad1d._reference.ensemble` (same arguments and outputs,
    bit-identical) as a lean numpy loop: in-place ufuncs on preallocated buffers, one ``max |θ|``
    reduction per step as the divergence test, and, once a run diverges, masks instead of index
    compaction.

    Long because it is a one-pass loop with a dozen per-run statistics (as the kernel), written
    out so that each step is ~40 ufunc calls on whole arrays and nothing else."""
    nr = istat.shape[0]
    runs = np.arange(start, start + nr, dtype=np.uint64)
    ts2 = theta_star * theta_star
    pts = np.asarray(points, dtype=np.float64)
    npts = pts.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        base = np.uint64(key) + (runs << np.uint64(32)) * GOLDEN
        if np.isnan(theta0):
            z0 = mix64_np(np.uint64(key0) + (runs << np.uint64(32)) * GOLDEN) >> _S11
            th = theta_star * (z0.astype(np.int64).astype(np.float64) * 2.0 ** -53)
        else:
            th = np.full(nr, float(theta0))
    fstat[:, F_THETA0] = th
    ntr = traj.shape[0]
    if ntr:
        traj[:, 0] = th[:ntr]
    lmin, lmax = np.full(nr, np.inf), np.full(nr, -np.inf)
    amin, amax = np.full(nr, -1, np.int64), np.full(nr, -1, np.int64)
    thmin, thmax = np.full(nr, np.inf), np.full(nr, -np.inf)
    last_nb, last_nband = np.zeros(nr, np.int64), np.zeros(nr, np.int64)
    div = np.full(nr, -1, np.int64)
    t_done = np.zeros(nr, np.int64)
    loss = np.full(nr, np.nan)
    z, tmp = np.empty(nr, np.uint64), np.empty(nr, np.uint64)
    u, x, e, d2, lo = (np.empty(nr) for _ in range(5))
    d, prev_d = np.empty(nr), np.zeros(nr)
    m, is_lo, is_hi, t1, t2 = (np.empty(nr, bool) for _ in range(5))
    prev_lo, prev_hi = np.zeros(nr, bool), np.zeros(nr, bool)
    alive = None                      # None: every run alive (the fast path); else the bool mask
    old = np.empty(nr)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps):
            s = t + 1
            np.add(base, np.uint64(t) * GOLDEN, out=z)
            _mix_uniform(z, tmp, u)
            if npts > 0:
                np.multiply(u, npts, out=e)
                k = e.astype(np.int64)
                np.minimum(k, npts - 1, out=k)
                np.take(pts, k, out=x)
            else:
                np.multiply(u, b - a, out=x)
                x += a
            if alive is not None:
                np.copyto(old, th)
            # th + eta*th*x*(y - x*th*th), y = x*ts2, in the reference's order of operations
            np.multiply(x, th, out=d2)
            d2 *= th
            np.multiply(x, ts2, out=lo)
            np.subtract(lo, d2, out=d2)
            np.multiply(th, eta, out=e)
            e *= x
            e *= d2
            th += e
            if alive is not None:
                np.copyto(th, old, where=~alive)
            if ntr:
                traj[:, s] = th[:ntr]
            if not np.abs(th).max(initial=0.0, where=alive if alive is not None else True) <= div_bound:
                bad = ~(np.abs(th) <= div_bound)
                if alive is not None:
                    bad &= alive
                if bad.any():
                    div[bad] = s
                    alive = ~bad if alive is None else alive & ~bad
            live = alive if alive is not None else True
            np.copyto(t_done, s, where=live)
            np.multiply(th, th, out=d2)
            np.subtract(ts2, d2, out=d2)
            np.multiply(d2, cF, out=lo)
            lo *= d2
            np.copyto(loss, lo, where=live)
            np.less(lo, lmin, out=m)
            if alive is not None:
                m &= alive
            np.copyto(lmin, lo, where=m)
            np.copyto(amin, s, where=m)
            np.greater(lo, lmax, out=m)
            if alive is not None:
                m &= alive
            np.copyto(lmax, lo, where=m)
            np.copyto(amax, s, where=m)
            np.minimum(thmin, th, out=thmin, where=live)
            np.maximum(thmax, th, out=thmax, where=live)
            np.subtract(th, theta_star, out=d)
            np.greater(th, lo_band[0], out=is_lo)
            np.less(th, lo_band[1], out=t1)
            is_lo &= t1
            np.greater(th, hi_band[0], out=is_hi)
            np.less(th, hi_band[1], out=t1)
            is_hi &= t1
            if s >= 2:
                np.multiply(prev_d, d, out=e)
                np.less(e, 0.0, out=m)
                np.logical_not(m, out=m)
                if alive is not None:
                    m &= alive
                np.copyto(last_nb, s - 1, where=m)
                np.logical_and(prev_lo, is_hi, out=t1)
                np.logical_and(prev_hi, is_lo, out=t2)
                t1 |= t2
                np.logical_not(t1, out=t1)
                if alive is not None:
                    t1 &= alive
                np.copyto(last_nband, s - 1, where=t1)
            np.copyto(prev_d, d, where=live)
            np.copyto(prev_lo, is_lo, where=live)
            np.copyto(prev_hi, is_hi, where=live)
    if ntr:
        for j in np.flatnonzero(div[:ntr] >= 0):
            traj[j, div[j] + 1:] = np.nan
    write_stats(istat, fstat, amin, amax, div, t_done, last_nb, last_nband, steps, th, lmin, lmax, loss, thmin, thmax)


def _args(n: int, steps: int = STEPS) -> tuple:
    key, key0 = stream_keys(0)
    m2 = (A * A + A * B + B * B) / 3
    return (key, key0, 0, np.nan, ETA, 1.0, A, B, np.empty(0), m2 / 4, np.array([0.65, 0.98]),
            np.array([1.02, 1.162]), 1e3, steps, np.empty((n, _kernels.N_ISTAT), np.int64),
            np.empty((n, _kernels.N_FSTAT)), np.empty((0, steps + 1)))


@workload("quad1d_1e6x1e3", target=2.0,
          description="quad1d SGD ensemble, 10^6 runs x 10^3 steps (numpy timed on 10^5 runs, x10; "
                      "baseline: lean numpy)")
def quad1d(ctx: BenchContext) -> dict:
    n = ctx.steps(1_000_000)
    n_ref = max(1, n // 10)
    compile_s, cached = first_call("quad1d._ensemble", _kernels.ensemble, _args(1, 2))
    numba_s, numba_rep, a_nb = best_of(_kernels.ensemble, lambda: _args(n), ctx.repeats)
    lean_s, lean_rep, a_ln = best_of(lean_ensemble, lambda: _args(n_ref), ctx.repeats,
                                     budget_s=ctx.numpy_budget_s)
    ref_s, numpy_rep, a_np = best_of(ensemble_reference, lambda: _args(n_ref), ctx.repeats,
                                     budget_s=ctx.numpy_budget_s)
    scale = n / n_ref
    diff = float(np.nanmax(np.abs(a_nb[-2][:n_ref] - a_np[-2]))) if n_ref else 0.0
    lean_diff = float(np.nanmax(np.abs(a_ln[-2] - a_np[-2]))) if n_ref else 0.0
    same_int = bool(np.array_equal(a_nb[-3][:n_ref], a_np[-3]))
    res = {"numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
           "numpy_repeats": lean_rep, "reference_repeats": numpy_rep, "numba_repeats": numba_rep, "runs": n,
           "steps": STEPS, "numpy_runs_timed": n_ref, "updates_per_s_numba": n * STEPS / numba_s,
           "updates_per_s_numpy": n * STEPS / (lean_s * scale), "max_abs_diff": diff,
           "lean_max_abs_diff": lean_diff, "int_stats_equal": same_int,
           "lean_int_stats_equal": bool(np.array_equal(a_ln[-3], a_np[-3])),
           "numpy_estimated": True, "numpy_estimate": f"the lean loop's time on {n_ref} runs x {scale:g}"}
    return audit(res, "lean numpy", lean_s * scale, ref_s * scale, OPS_PER_UPDATE, 96 / STEPS, n * STEPS,
                 "compute-bound (SplitMix64 + update + statistics per update, state in registers); the "
                 "kernel runs on all numba threads, the floor is one core's")
