"""ℓ∞ Square Attack proposal step (Alg. 2 + the resample-until-changed rule):
:func:`toymodels.square._kernels.linf_propose` vs :func:`toymodels.square._reference.linf_propose`.

``square_linf_update``: a batch of 1,000 images 3×32×32 (uniform in [0, 1], seed 0), x̂ = clip(x ± ε)
with random signs, ε = 8/255, window side h = 7 (p = 0.05 on 32×32), 16 pre-drawn sign tries per
point, 100 proposal calls (``--quick``: 10) with pre-drawn positions; each backend writes fresh
candidates per call. The two backends must agree exactly (``max_abs_diff`` = 0, equal tries).
No target: the kernel is memory-bound and the reference is already vectorized (informative only).

Baselines (issue 17): ``numpy_s`` is :func:`lean_linf_propose`: the window candidate of a channel is
clip(x ± ε, 0, 1), so only the two candidates per channel are built (not one per try: 2 instead of 16
windows) and a try's "changed" flag is looked up from them; bit-identical to the reference
(``lean_max_abs_diff`` = 0). ``reference_s`` is :func:`toymodels.square._reference.linf_propose`.

Physical limit, per call: x_new = x̂ outside the windows, i.e. read x̂ and write x_new, N·C·H·W·8 B each
= 24.6 MB + 24.6 MB (the window reads of x are 1.2 MB); 49 MB per call at the measured copy bandwidth
(≈ 24 GB/s here: ≈ 2 ms per call). Memory-bound; the flops (a few per window pixel) are negligible.
The 49 MB working set partly stays in the 32 MB L3 between calls, so a ratio slightly below 1 is
possible: the floor is that of DRAM bandwidth measured on 200 MB.
"""
from __future__ import annotations

import numpy as np

from ..square import _kernels
from ..square._reference import linf_propose
from ..rng import stream
from . import BenchContext, audit, best_of, first_call, workload

N, C, H, W, SIDE, TRIES, EPS = 1000, 3, 32, 32, 7, 16, 8 / 255


def _data(n: int, calls: int):
    rng = stream(0)
    x = rng.uniform(0, 1, size=(n, C, H, W))
    xb = np.clip(x + EPS * rng.choice(np.array([-1.0, 1.0]), size=x.shape), 0, 1)
    pos = rng.integers(0, H - SIDE + 1, size=(calls, n, 2)).astype(np.int64)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(calls, TRIES, n, C))
    return x, xb, pos, signs


def _numba_loop(x, xb, pos, signs, out, used):
    for k in range(pos.shape[0]):
        _kernels.linf_propose(x, xb, EPS, pos[k], SIDE, signs[k], out, used)
    return out, used


def _numpy_loop(x, xb, pos, signs, out, used):
    for k in range(pos.shape[0]):
        linf_propose(x, xb, EPS, pos[k], SIDE, signs[k], out, used)
    return out, used


def lean_linf_propose(x, x_best, eps, pos, side, signs, x_new, tries_used):
    """:func:`toymodels.square._reference.linf_propose` (same arguments and outputs, bit-identical)
    building the two window candidates clip(x ± ε, 0, 1) per channel once, instead of one per try."""
    N, C = x.shape[:2]
    T = signs.shape[0]
    ar = np.arange(side)
    nn = np.arange(N)[:, None, None, None]
    cc = np.arange(C)[None, :, None, None]
    rr = (pos[:, 0][:, None] + ar)[:, None, :, None]
    col = (pos[:, 1][:, None] + ar)[:, None, None, :]
    xw = x[nn, cc, rr, col]                                              # (N, C, side, side)
    bw = x_best[nn, cc, rr, col]
    plus = np.clip(xw + eps, 0.0, 1.0)
    minus = np.clip(xw + eps * -1.0, 0.0, 1.0)
    ch_p = (np.abs(plus - bw) >= 1e-12).any(axis=(2, 3))                  # (N, C)
    ch_m = (np.abs(minus - bw) >= 1e-12).any(axis=(2, 3))
    changed = np.where(signs > 0, ch_p[None], ch_m[None]).any(axis=2)     # (T, N)
    first = np.where(changed.any(axis=0), changed.argmax(axis=0), T - 1)
    chosen = signs[first, np.arange(N)][:, :, None, None] > 0             # (N, C, 1, 1)
    np.copyto(x_new, x_best)
    x_new[nn, cc, rr, col] = np.where(chosen, plus, minus)
    tries_used[...] = first + 1


def _lean_loop(x, xb, pos, signs, out, used):
    for k in range(pos.shape[0]):
        lean_linf_propose(x, xb, EPS, pos[k], SIDE, signs[k], out, used)
    return out, used


@workload("square_linf_update", target=None,
          description="Square Attack l-inf proposal, 1000 x 3x32x32, h=7, 16 tries, 100 calls")
def square_linf_update(ctx: BenchContext) -> dict:
    calls = ctx.steps(100)
    x, xb, pos, signs = _data(N, calls)

    def setup():
        return x, xb, pos, signs, np.empty_like(x), np.empty(N, dtype=np.int64)

    tiny = _data(1, 1)
    compile_s, cached = first_call("square.linf_propose", _kernels.linf_propose,
                                   (tiny[0], tiny[1], EPS, tiny[2][0], SIDE, tiny[3][0], np.empty_like(tiny[0]),
                                    np.empty(1, dtype=np.int64)))
    numba_s, numba_rep, a_nb = best_of(_numba_loop, setup, ctx.repeats)
    lean_s, lean_rep, a_ln = best_of(_lean_loop, setup, ctx.repeats, budget_s=ctx.numpy_budget_s)
    ref_s, numpy_rep, a_np = best_of(_numpy_loop, setup, ctx.repeats, budget_s=ctx.numpy_budget_s)
    # outputs of the last call of each backend
    diff = float(np.abs(a_nb[4] - a_np[4]).max())
    res = {"numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
           "numpy_repeats": lean_rep, "reference_repeats": numpy_rep, "numba_repeats": numba_rep, "steps": calls,
           "n": N, "d": C * H * W, "side": SIDE, "tries": TRIES, "max_abs_diff": diff,
           "tries_equal": bool(np.array_equal(a_nb[5], a_np[5])),
           "lean_max_abs_diff": float(np.abs(a_ln[4] - a_np[4]).max()),
           "lean_tries_equal": bool(np.array_equal(a_ln[5], a_np[5]))}
    win = N * C * SIDE * SIDE
    return audit(res, "lean numpy", lean_s, ref_s, 6 * win, 2 * 8 * N * C * H * W + 8 * win, calls,
                 "memory-bound: copy x_best -> x_new (24.6 MB read + 24.6 MB written per call); the floor uses the "
                 "DRAM bandwidth, part of the 49 MB working set stays in the 32 MB L3")
