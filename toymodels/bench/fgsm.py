"""FGSM-RS benchmark workload: :func:`toymodels.fgsm._kernels.sq_norms` vs
:func:`toymodels.fgsm._reference.sq_norms`.

``fgsm_mc_1e6``: 10⁶ Monte-Carlo samples of ‖clip(η + αs, −ε, ε)‖₂² in d = 100 (10⁸ coordinate
draws), ε = 8/255, α = 1.25ε, i.i.d. random signs (``sign="random"``, two stream outputs per
coordinate), seed 0, in one kernel call (``--quick``: 10⁵ samples). d = 100 rather than CIFAR-10's
3072 keeps the numpy reference at a few seconds per repeat; the cost of both backends is linear in
samples × d, so the speed-up carries over. Target: numba ≥ 5× numpy (the kernel is parallel over
samples; with one thread it is ~5×, the rest comes from the extra cores). The two backends must
return bit-identical samples (``max_rel_diff`` = 0).
"""
from __future__ import annotations

import numpy as np

from ..fgsm import _kernels, _reference
from ..fgsm.mc import stream_keys
from . import BenchContext, best_of, first_call, workload

D = 100
EPS = 8 / 255
ALPHA = 1.25 * EPS


def _args(n: int) -> tuple:
    key_eta, key_sign = stream_keys(0)
    return (key_eta, key_sign, 0, D, EPS, ALPHA, _kernels.MODE_RANDOM, np.ones(D), np.empty(n))


@workload("fgsm_mc_1e6", target=5.0,
          description="FGSM-RS MC, 10^6 samples of ||delta||^2 in d=100, random signs")
def fgsm_mc(ctx: BenchContext) -> dict:
    n = ctx.steps(1_000_000)
    compile_s, cached = first_call("fgsm.sq_norms", _kernels.sq_norms, _args(1))
    numba_s, numba_rep, a_nb = best_of(_kernels.sq_norms, lambda: _args(n), ctx.repeats)
    numpy_s, numpy_rep, a_np = best_of(_reference.sq_norms, lambda: _args(n), ctx.repeats,
                                       budget_s=ctx.numpy_budget_s)
    x, y = a_nb[-1], a_np[-1]
    return {"numpy_s": numpy_s, "numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": numpy_rep, "numba_repeats": numba_rep, "samples": n, "d": D,
            "eps": EPS, "alpha": ALPHA, "sign": "random",
            "samples_per_s_numba": n / numba_s, "samples_per_s_numpy": n / numpy_s,
            "max_rel_diff": float(np.max(np.abs(x - y)) / np.max(np.abs(y)))}
