"""ℓ∞ Square Attack proposal step (Alg. 2 + the resample-until-changed rule):
:func:`toymodels.square._kernels.linf_propose` vs :func:`toymodels.square._reference.linf_propose`.

``square_linf_update``: a batch of 1,000 images 3×32×32 (uniform in [0, 1], seed 0), x̂ = clip(x ± ε)
with random signs, ε = 8/255, window side h = 7 (p = 0.05 on 32×32), 16 pre-drawn sign tries per
point, 100 proposal calls (``--quick``: 10) with pre-drawn positions; each backend writes fresh
candidates per call. The two backends must agree exactly (``max_abs_diff`` = 0, equal tries).
No target: the kernel is memory-bound and the reference is already vectorized (informative only).
"""
from __future__ import annotations

import numpy as np

from ..square import _kernels
from ..square._reference import linf_propose
from ..rng import stream
from . import BenchContext, best_of, first_call, workload

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
    numpy_s, numpy_rep, a_np = best_of(_numpy_loop, setup, ctx.repeats, budget_s=ctx.numpy_budget_s)
    # outputs of the last call of each backend
    diff = float(np.abs(a_nb[4] - a_np[4]).max())
    return {"numpy_s": numpy_s, "numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": numpy_rep, "numba_repeats": numba_rep, "steps": calls, "n": N, "d": C * H * W,
            "side": SIDE, "tries": TRIES, "max_abs_diff": diff, "tries_equal": bool(np.array_equal(a_nb[5], a_np[5]))}
