"""Stochastic n-SAM (eq. 5.21) on x² + 3 sin² x (d = 2, n = 20, b = 4): :func:`toymodels.samconv.run._sam_sep_kernel`
vs :func:`toymodels.samconv.run.sam_stochastic_reference`.

``samconv_nsam_2e4``: one run of 2·10⁴ steps (``--quick``: 2·10³) with Thm 5.10.5's PL step sizes, batches
pre-drawn with seed 0 (the same for both backends, which must agree to 1e-12). Target: numba ≥ 20× numpy.
"""
from __future__ import annotations

import numpy as np

from ..samconv import bounds
from ..samconv.problems import sine
from ..samconv.run import _sam_sep_kernel, draw_batches, sam_stochastic_reference
from . import BenchContext, best_of, first_call, workload


def _args(T: int):
    p = sine(d=2)
    g, r = bounds.thm5105_pl_steps(p.beta, p.mu, T)
    I, J = draw_batches(np.random.default_rng(0), p.n, 4, T, same=False)
    return p, np.full(2, 2.0), g, r, I, J


@workload("samconv_nsam_2e4", target=20.0, description="n-SAM on x^2+3sin^2 x, 2*10^4 steps, b=4")
def samconv(ctx: BenchContext) -> dict:
    T = ctx.steps(20_000)

    def kargs(T):
        p, w0, g, r, I, J = _args(T)
        return (p.a, p.s, p.C, w0, g, r, I, J, np.empty(T + 1), np.empty(T + 1))

    compile_s, cached = first_call("samconv._sam_sep_kernel", _sam_sep_kernel, kargs(2))
    numba_s, nrep, a_nb = best_of(_sam_sep_kernel, lambda: kargs(T), ctx.repeats)
    numpy_s, prep, _ = best_of(sam_stochastic_reference, lambda: _args(T), ctx.repeats, budget_s=ctx.numpy_budget_s)
    ref = sam_stochastic_reference(*_args(T))
    diff = float(max(np.max(np.abs(a_nb[-2] - ref[0])), np.max(np.abs(a_nb[-1] - ref[1]))))
    return {"numpy_s": numpy_s, "numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": prep, "numba_repeats": nrep, "steps": T, "d": 2, "b": 4, "max_abs_diff": diff}


# ---------------------------------------------------------------------------------------------------------
# ``samconv_logistic_2e4``: stochastic n-SAM on regularized logistic regression (n = 16, d = 3, λ = 0.1,
# b = 4; :func:`toymodels.samconv.problems.logistic`), 2·10⁴ steps with Thm 5.10.5's PL step sizes:
# :func:`toymodels.samconv.run._sam_logistic_kernel` vs the generic numpy reference. Target ≥ 20×.
#
# ``relu_sam_fullbatch_2e4``: Fig. 5.7's full-batch normalized SAM (ρ = 0.3) on the two-layer ReLU net
# (100 units, Blanc et al.'s 12 points), 2·10⁴ steps, no early stop:
# :func:`toymodels.relu.sam._gd_sam_kernel` vs :func:`toymodels.relu.sam.gd_sam_reference`. Target ≥ 10×.

def _logistic_args(T: int):
    from ..samconv.problems import logistic

    p = logistic()
    g, r = bounds.thm5105_pl_steps(p.beta, p.mu, T)
    I, J = draw_batches(np.random.default_rng(0), p.n, 4, T, same=False)
    return p, np.zeros(p.X.shape[1]), g, r, I, J


@workload("samconv_logistic_2e4", target=20.0, description="n-SAM on logistic regression, 2*10^4 steps, b=4")
def samconv_logistic(ctx: BenchContext) -> dict:
    from ..samconv.run import _sam_logistic_kernel

    T = ctx.steps(20_000)

    def kargs(T):
        p, w0, g, r, I, J = _logistic_args(T)
        return (p.X, p.y, float(p.lam), w0, g, r, np.ascontiguousarray(I, np.int64),
                np.ascontiguousarray(J, np.int64), np.empty(T + 1), np.empty(T + 1))

    compile_s, cached = first_call("samconv._sam_logistic_kernel", _sam_logistic_kernel, kargs(2))
    numba_s, nrep, a_nb = best_of(_sam_logistic_kernel, lambda: kargs(T), ctx.repeats)
    numpy_s, prep, _ = best_of(sam_stochastic_reference, lambda: _logistic_args(T), ctx.repeats,
                               budget_s=ctx.numpy_budget_s)
    ref = sam_stochastic_reference(*_logistic_args(T))
    diff = float(max(np.max(np.abs(a_nb[-2] - ref[0])), np.max(np.abs(a_nb[-1] - ref[1]))))
    return {"numpy_s": numpy_s, "numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": prep, "numba_repeats": nrep, "steps": T, "n": 16, "d": 3, "b": 4,
            "max_abs_diff": diff}


def _relu_sam_args(T: int):
    from ..relu.model import blanc_data, init_params

    x, y = blanc_data()
    w, b, a = (np.ascontiguousarray(v) for v in init_params(100, 1.0, 1.0, 0))
    return (x, y, w, b, a, np.full(T, 6e-4), 0.3, 0.0, 1000, np.empty(T // 1000 + 1))


@workload("relu_sam_fullbatch_2e4", target=10.0, description="Fig. 5.7 normalized SAM, ReLU net m=100, 2*10^4 steps")
def relu_sam(ctx: BenchContext) -> dict:
    from ..relu.sam import _gd_sam_kernel, gd_sam_reference

    T = ctx.steps(20_000)
    compile_s, cached = first_call("relu.sam._gd_sam_kernel", _gd_sam_kernel, _relu_sam_args(2))
    numba_s, nrep, a_nb = best_of(_gd_sam_kernel, lambda: _relu_sam_args(T), ctx.repeats)
    numpy_s, prep, a_np = best_of(gd_sam_reference, lambda: _relu_sam_args(T), ctx.repeats,
                                  budget_s=ctx.numpy_budget_s)
    diff = float(max(np.max(np.abs(a_nb[i] - a_np[i])) for i in (2, 3, 4)))
    return {"numpy_s": numpy_s, "numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": prep, "numba_repeats": nrep, "steps": T, "m": 100, "n": 12, "max_abs_diff": diff}
