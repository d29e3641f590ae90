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
