"""FGSM-RS benchmark workload: :func:`toymodels.fgsm._kernels.sq_norms` vs
:func:`toymodels.fgsm._reference.sq_norms`.

``fgsm_mc_1e6``: 10⁶ Monte-Carlo samples of ‖clip(η + αs, −ε, ε)‖₂² in d = 100 (10⁸ coordinate
draws), ε = 8/255, α = 1.25ε, i.i.d. random signs (``sign="random"``, two stream outputs per
coordinate), seed 0, in one kernel call (``--quick``: 10⁵ samples). d = 100 rather than CIFAR-10's
3072 keeps the numpy reference at a few seconds per repeat; the cost of both backends is linear in
samples × d, so the speed-up carries over. Target: numba ≥ 2.5× the lean numpy loop below (issue 17: it
was 5× against the reference; measured 3.1–3.7× the lean loop, 13–16× the reference) (the kernel is parallel over
samples; with one thread it is ~5×, the rest comes from the extra cores). The two backends must
return bit-identical samples (``max_rel_diff`` = 0).

Baselines (issue 17): ``numpy_s`` is :func:`lean_sq_norms`, the reference's computation in blocks of
2¹⁶ samples × coordinates (512 KB temporaries that stay in L2, where the reference's 2²² = 32 MB
blocks go through DRAM) with in-place ufuncs and the counter base computed once per block; it returns
the same bits (``lean_max_rel_diff`` = 0). ``reference_s`` is :func:`toymodels.fgsm._reference.sq_norms`.

Physical limit, per coordinate draw: two SplitMix64 outputs (η and the sign: ≈ 12 integer ops each),
the affine map, clip, square and add ≈ 8 flops: ≈ 32 scalar operations, 10⁸ draws → 10⁸ × 32 / 76e9
≈ 42 ms on one core (21 ms on the 2 cores the kernel uses); 8 bytes written per sample (8 MB): the
workload is compute-bound.
"""
from __future__ import annotations

import numpy as np

from ..fgsm import _kernels, _reference
from ..fgsm.mc import stream_keys
from ..rng import GOLDEN, mix64_inplace
from . import BenchContext, audit, best_of, first_call, workload

D = 100
EPS = 8 / 255
ALPHA = 1.25 * EPS


def _args(n: int) -> tuple:
    key_eta, key_sign = stream_keys(0)
    return (key_eta, key_sign, 0, D, EPS, ALPHA, _kernels.MODE_RANDOM, np.ones(D), np.empty(n))


#: samples × coordinates per block of the lean baseline (512 KB float64 temporaries: L2-resident)
LEAN_BLOCK = 1 << 16
_mix_inplace = mix64_inplace      # SplitMix64's output function in place (toymodels.rng)


def lean_sq_norms(key_eta, key_sign, start, d, eps, alpha, mode, signs, out):
    """:func:`toymodels.fgsm._reference.sq_norms` (same arguments and output, bit-identical) in
    L2-sized blocks with in-place ufuncs. Only the random-sign mode (the workload's) has its own lean
    path; the other modes call the reference."""
    if mode != _kernels.MODE_RANDOM:
        return _reference.sq_norms(key_eta, key_sign, start, d, eps, alpha, mode, signs, out)
    n = out.shape[0]
    per = max(1, LEAN_BLOCK // d)
    coords = np.arange(d, dtype=np.uint64)[:, None]
    z, zs, tmp = (np.empty((d, per), np.uint64) for _ in range(3))
    x = np.empty((d, per))
    sg = np.empty((d, per))
    ke, ks = np.uint64(key_eta), np.uint64(key_sign)
    with np.errstate(over="ignore"):
        for j0 in range(0, n, per):
            j1 = min(n, j0 + per)
            B = j1 - j0
            zb, zsb, tb, xb, sb = z[:, :B], zs[:, :B], tmp[:, :B], x[:, :B], sg[:, :B]
            np.add(np.arange(start + j0, start + j1, dtype=np.uint64)[None, :] * np.uint64(d), coords, out=zb)
            zb *= GOLDEN
            np.add(zb, ks, out=zsb)
            zb += ke
            _mix_inplace(zb, tb)
            zb >>= np.uint64(11)
            np.multiply(zb, 2.0 ** -53, out=xb, casting="unsafe")
            xb *= 2.0
            xb -= 1.0
            xb *= eps
            _mix_inplace(zsb, tb)
            zsb >>= np.uint64(63)
            np.multiply(zsb, 2.0, out=sb, casting="unsafe")
            sb -= 1.0
            sb *= alpha
            xb += sb
            np.clip(xb, -eps, eps, out=xb)
            xb *= xb
            np.sum(xb, axis=0, out=out[j0:j1])


@workload("fgsm_mc_1e6", target=2.5,
          description="FGSM-RS MC, 10^6 samples of ||delta||^2 in d=100, random signs")
def fgsm_mc(ctx: BenchContext) -> dict:
    n = ctx.steps(1_000_000)
    compile_s, cached = first_call("fgsm.sq_norms", _kernels.sq_norms, _args(1))
    numba_s, numba_rep, a_nb = best_of(_kernels.sq_norms, lambda: _args(n), ctx.repeats)
    lean_s, lean_rep, a_ln = best_of(lean_sq_norms, lambda: _args(n), ctx.repeats, budget_s=ctx.numpy_budget_s)
    ref_s, numpy_rep, a_np = best_of(_reference.sq_norms, lambda: _args(n), ctx.repeats,
                                     budget_s=ctx.numpy_budget_s)
    x, y = a_nb[-1], a_np[-1]
    res = {"numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
           "numpy_repeats": lean_rep, "reference_repeats": numpy_rep, "numba_repeats": numba_rep, "samples": n,
           "d": D, "eps": EPS, "alpha": ALPHA, "sign": "random",
           "samples_per_s_numba": n / numba_s, "samples_per_s_numpy": n / lean_s,
           "max_rel_diff": float(np.max(np.abs(x - y)) / np.max(np.abs(y))),
           "lean_max_rel_diff": float(np.max(np.abs(a_ln[-1] - y)) / np.max(np.abs(y)))}
    return audit(res, "lean numpy", lean_s, ref_s, 32, 8 / D, n * D,
                 "compute-bound (two SplitMix64 outputs per coordinate); the kernel uses all numba threads, "
                 "the floor is one core's")
