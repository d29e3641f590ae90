"""Stochastic n-SAM (eq. 5.21) on x² + 3 sin² x (d = 2, n = 20, b = 4): :func:`toymodels.sam_convergence._kernels.sam_separable`
vs :func:`toymodels.sam_convergence.run.sam_stochastic_reference`.

``sam_convergence_nsam_2e4``: one run of 2·10⁴ steps (``--quick``: 2·10³) with Thm 5.10.5's PL step sizes, batches
pre-drawn with seed 0 (the same for both backends, which must agree to 1e-12). Target: numba ≥ 20× numpy.
"""
from __future__ import annotations

import numpy as np

from ..sam_convergence import bounds
from ..sam_convergence._kernels import sam_separable
from ..sam_convergence.problems import sine
from ..sam_convergence.run import draw_batches, sam_stochastic_reference
from ..rng import stream
from . import BenchContext, best_of, first_call, workload


def _args(T: int):
    p = sine(d=2)
    g, r = bounds.thm5105_pl_steps(p.beta, p.mu, T)
    I, J = draw_batches(stream(0), p.n, 4, T, same=False)
    return p, np.full(2, 2.0), g, r, I, J


@workload("sam_convergence_nsam_2e4", target=20.0, description="n-SAM on x^2+3sin^2 x, 2*10^4 steps, b=4")
def sam_convergence_nsam(ctx: BenchContext) -> dict:
    T = ctx.steps(20_000)

    def kargs(T):
        p, w0, g, r, I, J = _args(T)
        return (p.a, p.s, p.C, w0, g, r, I, J, np.empty(T + 1), np.empty(T + 1))

    compile_s, cached = first_call("sam_convergence.sam_separable", sam_separable, kargs(2))
    numba_s, nrep, a_nb = best_of(sam_separable, lambda: kargs(T), ctx.repeats)
    numpy_s, prep, _ = best_of(sam_stochastic_reference, lambda: _args(T), ctx.repeats, budget_s=ctx.numpy_budget_s)
    ref = sam_stochastic_reference(*_args(T))
    diff = float(max(np.max(np.abs(a_nb[-2] - ref[0])), np.max(np.abs(a_nb[-1] - ref[1]))))
    return {"numpy_s": numpy_s, "numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": prep, "numba_repeats": nrep, "steps": T, "d": 2, "b": 4, "max_abs_diff": diff}


# ---------------------------------------------------------------------------------------------------------
# ``sam_convergence_logistic_2e4``: stochastic n-SAM on regularized logistic regression (n = 16, d = 3,
# λ = 0.1, b = 4; :func:`toymodels.sam_convergence.problems.logistic`), 2·10⁴ steps with Thm 5.10.5's PL step
# sizes: :func:`toymodels.sam_convergence._kernels.sam_logistic` vs the generic numpy reference. Target ≥ 20×.
#
# ``relu_sam_fullbatch_2e4``: Fig. 5.7's full-batch normalized SAM (ρ = 0.3) on the two-layer ReLU net
# (100 units, Blanc et al.'s 12 points), 2·10⁴ steps, no early stop:
# :func:`toymodels.relu._kernels.net1d.gd_sam` vs :func:`toymodels.relu._reference.net1d.gd_sam`. Target ≥ 10×.

def _logistic_args(T: int):
    from ..sam_convergence.problems import logistic

    p = logistic()
    g, r = bounds.thm5105_pl_steps(p.beta, p.mu, T)
    I, J = draw_batches(stream(0), p.n, 4, T, same=False)
    return p, np.zeros(p.X.shape[1]), g, r, I, J


@workload("sam_convergence_logistic_2e4", target=20.0,
          description="n-SAM on logistic regression, 2*10^4 steps, b=4")
def sam_convergence_logistic(ctx: BenchContext) -> dict:
    from ..sam_convergence._kernels import sam_logistic

    T = ctx.steps(20_000)

    def kargs(T):
        p, w0, g, r, I, J = _logistic_args(T)
        return (p.X, p.y, float(p.lam), w0, g, r, np.ascontiguousarray(I, np.int64),
                np.ascontiguousarray(J, np.int64), np.empty(T + 1), np.empty(T + 1))

    compile_s, cached = first_call("sam_convergence.sam_logistic", sam_logistic, kargs(2))
    numba_s, nrep, a_nb = best_of(sam_logistic, lambda: kargs(T), ctx.repeats)
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
    from ..relu._kernels.net1d import gd_sam
    from ..relu._reference.net1d import gd_sam as gd_sam_reference

    T = ctx.steps(20_000)
    compile_s, cached = first_call("relu.gd_sam", gd_sam, _relu_sam_args(2))
    numba_s, nrep, a_nb = best_of(gd_sam, lambda: _relu_sam_args(T), ctx.repeats)
    numpy_s, prep, a_np = best_of(gd_sam_reference, lambda: _relu_sam_args(T), ctx.repeats,
                                  budget_s=ctx.numpy_budget_s)
    diff = float(max(np.max(np.abs(a_nb[i] - a_np[i])) for i in (2, 3, 4)))
    return {"numpy_s": numpy_s, "numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": prep, "numba_repeats": nrep, "steps": T, "m": 100, "n": 12, "max_abs_diff": diff}
