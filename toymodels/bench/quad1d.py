"""1D quadratic-parameterization SGD ensemble (thesis eq. 6.5): :func:`toymodels.quad1d._kernels.ensemble`
vs :func:`toymodels.quad1d._reference.ensemble`.

``quad1d_1e6x1e3``: 10⁶ independent runs × 10³ steps (10⁹ updates, each with one counter-based
uniform draw), ρ̂ = U[1, 1.05], θ* = 1, η = 1.1, θ₀ ~ U(0, 1), seed 0, in one kernel call
(``--quick``: 10⁵ runs). The numpy reference (vectorized over runs, one Python iteration per step)
is timed on 10⁵ runs and its time scaled ×10 (its cost is linear in runs; at 10⁶ runs a single
repeat takes ~35 s on 2 cores); the two backends must agree bit for bit on those 10⁵ runs
(``max_abs_diff`` = 0). Target: numba ≥ 5× numpy.
"""
from __future__ import annotations

import numpy as np

from ..quad1d import _kernels
from ..quad1d._reference import ensemble as ensemble_reference
from ..quad1d.sim import stream_keys
from . import BenchContext, best_of, first_call, workload

STEPS = 1000
ETA, A, B = 1.1, 1.0, 1.05


def _args(n: int, steps: int = STEPS) -> tuple:
    key, key0 = stream_keys(0)
    m2 = (A * A + A * B + B * B) / 3
    return (key, key0, 0, np.nan, ETA, 1.0, A, B, np.empty(0), m2 / 4, np.array([0.65, 0.98]),
            np.array([1.02, 1.162]), 1e3, steps, np.empty((n, _kernels.N_ISTAT), np.int64),
            np.empty((n, _kernels.N_FSTAT)), np.empty((0, steps + 1)))


@workload("quad1d_1e6x1e3", target=5.0,
          description="quad1d SGD ensemble, 10^6 runs x 10^3 steps (numpy timed on 10^5 runs, x10)")
def quad1d(ctx: BenchContext) -> dict:
    n = ctx.steps(1_000_000)
    n_ref = max(1, n // 10)
    compile_s, cached = first_call("quad1d._ensemble", _kernels.ensemble, _args(1, 2))
    numba_s, numba_rep, a_nb = best_of(_kernels.ensemble, lambda: _args(n), ctx.repeats)
    ref_s, numpy_rep, a_np = best_of(ensemble_reference, lambda: _args(n_ref), ctx.repeats,
                                     budget_s=ctx.numpy_budget_s)
    numpy_s = ref_s * n / n_ref
    diff = float(np.nanmax(np.abs(a_nb[-2][:n_ref] - a_np[-2]))) if n_ref else 0.0
    same_int = bool(np.array_equal(a_nb[-3][:n_ref], a_np[-3]))
    return {"numpy_s": numpy_s, "numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": numpy_rep, "numba_repeats": numba_rep, "runs": n, "steps": STEPS,
            "numpy_runs_timed": n_ref, "updates_per_s_numba": n * STEPS / numba_s,
            "updates_per_s_numpy": n * STEPS / numpy_s, "max_abs_diff": diff, "int_stats_equal": same_int}
