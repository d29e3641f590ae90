"""SDE benchmark workload: :func:`toymodels.sde._kernels.em_dln` vs
:func:`toymodels.sde._reference.em_dln`.

``sde_dln_em_2e4``: 20 000 Euler–Maruyama steps of eq. (6.58) on the DLN u⊙v of Fig. 6.2 (n = 80,
d = 200, 20-sparse β*, seed 0), γ = 0.009, noise scale √(ηδ) = 0.01, pre-drawn Z, loss recorded every
100 steps, in one kernel call (``--quick``: 2 000 steps). Target: numba ≥ 2× numpy (both are
dominated by three n×d matrix–vector products per step; numpy's BLAS is already efficient at this
size, the kernel saves the per-step Python and temporary-array overhead).
"""
from __future__ import annotations

import numpy as np

from ..datasets import make_sparse_regression
from ..sde import _kernels, _reference
from ..rng import stream
from . import BenchContext, best_of, first_call, workload


def _args(data, steps: int, Z) -> tuple:
    n, d = data.X.shape
    rec = np.full(steps // 100 + 1, np.nan)
    return (data.X, data.y, np.full(d, 0.1), np.full(d, 0.01), np.full(steps, 0.009), np.full(steps, 0.01),
            Z, 0, steps, 100, rec)


@workload("sde_dln_em_2e4", target=2.0, description="SDE (6.58) EM on the DLN u*v, n=80, d=200, 2e4 steps")
def sde_dln(ctx: BenchContext) -> dict:
    data = make_sparse_regression(n=80, d=200, k=20, n_test=10, seed=0)
    steps = ctx.steps(20_000)
    Z = stream(0).standard_normal((steps, 80))
    compile_s, cached = first_call("sde.em_dln", _kernels.em_dln, _args(data, 1, Z[:1]))
    numba_s, numba_rep, a_nb = best_of(_kernels.em_dln, lambda: _args(data, steps, Z), ctx.repeats)
    numpy_s, numpy_rep, a_np = best_of(_reference.em_dln, lambda: _args(data, steps, Z), ctx.repeats,
                                       budget_s=ctx.numpy_budget_s)
    u, w = a_nb[2], a_np[2]
    return {"numpy_s": numpy_s, "numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": numpy_rep, "numba_repeats": numba_rep, "steps": steps, "n": 80, "d": 200,
            "max_rel_diff": float(np.max(np.abs(u - w)) / np.max(np.abs(w)))}


@workload("sde_relu3_em_2e4", target=2.0,
          description="SDE (6.58) EM on the 3-layer ReLU student (10-10, d=5, n=50), 2e4 steps")
def sde_relu3(ctx: BenchContext) -> dict:
    """:func:`toymodels.sde._kernels.em_relu3` vs :func:`toymodels.sde._reference.em_relu3`:
    20 000 steps of (6.58) from Fig. 6.5's student init (seed 0), γ = 10⁻⁴, noise scale 0.05,
    pre-drawn Z, loss recorded every 10 steps (``--quick``: 2 000). Each step builds the 50 × 160
    Jacobian. Target numba ≥ 2× numpy."""
    from ..sde.relu import SDEReLUConfig, problem, teacher_config

    X, y, _, _, th0, shapes = problem("relu3", teacher_config(SDEReLUConfig(model="relu3", steps=10)))
    steps = ctx.steps(20_000)
    n = X.shape[0]
    Z = stream(0).standard_normal((steps, n))

    def args(S):
        return (X, y, th0.copy(), shapes[0][0], shapes[1][0], np.full(S, 1e-4), np.full(S, 0.05), Z[:S], 0, S,
                10, np.full((S - 1) // 10 + 1, np.nan))

    compile_s, cached = first_call("sde.em_relu3", _kernels.em_relu3, args(1))
    numba_s, numba_rep, a_nb = best_of(_kernels.em_relu3, lambda: args(steps), ctx.repeats)
    numpy_s, numpy_rep, a_np = best_of(_reference.em_relu3, lambda: args(steps), ctx.repeats,
                                       budget_s=ctx.numpy_budget_s)
    return {"numpy_s": numpy_s, "numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": numpy_rep, "numba_repeats": numba_rep, "steps": steps, "n": n, "p": int(th0.size),
            "max_rel_diff": float(np.max(np.abs(a_nb[2] - a_np[2])) / np.max(np.abs(a_np[2])))}
