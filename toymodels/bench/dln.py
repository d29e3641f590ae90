"""DLN benchmark workloads: :func:`toymodels.dln._kernels.run` / ``run_many`` vs
:func:`toymodels.dln._reference.run`.

Fixed workloads (all: data ``make_sparse_regression(n, d, k=3, n_test=100, seed=0)``, noiseless;
w₊ = w₋ = α = 0.01; lr = 1/d; ρ = 1/d (forced to 0 for ``sam="none"``); ``record_every = steps//100``
so the train and test losses are recorded 100 times; run seed 0; targets are numba-vs-numpy speed-ups):

===========================  ==========================================  ======  =========  =========
name                         algorithm                                   n × d   steps      target
===========================  ==========================================  ======  =========  =========
dln_1sam_n20_d30_10k         full-batch 1-SAM (sam="1", algo="gd")       20×30   10⁴        ≥ 25×
dln_1sam_n80_d200_1k         full-batch 1-SAM                            80×200  10³        ≥ 10×
dln_gd_n80_d200_10k          full-batch GD (sam="none")                  80×200  10⁴        ≥ 3×
dln_sgd_b1_n80_d200_100k     SGD, batch 1, with replacement              80×200  10⁵        ≥ 40×
dln_sgd_ensemble_16          16 seeds (0..15) of the SGD workload        80×200  16 × 10⁵   ≥ 1.8× *
===========================  ==========================================  ======  =========  =========

\\* the ensemble target is on ``parallel_speedup = serial_s / parallel_s`` (16 ``run`` calls one
after another vs one ``run_many`` over the 16 stacked runs, on ≥ 2 numba threads); its
``numba_s`` is ``parallel_s`` and its ``numpy_s`` is 16 × one reference run (``numpy_estimated``).

Each repeat calls the kernel once over the whole horizon, on freshly copied initial state, with the
same data and the same mini-batches drawn once beforehand (``prepare(...).batches(0, steps)``), so
the comparison is kernel against reference, without the chunking of :func:`toymodels.dln.train`.
Every workload also checks that both backends end at the same w (``max_rel_diff``; at α = 0.01 the
per-step changes of w are mostly below its rounding unit, so this is often exactly 0). ``--quick``
divides every step count by 10 (``record_every`` follows, = steps//100).

The ensemble's serial and parallel repeats alternate, so that both see the same background load;
``serial_cores_used`` / ``parallel_cores_used`` (process CPU time / wall time of the best repeat,
≈ 1 and ≈ 2 on two free cores) show whether the cores were actually free. When other processes
keep the machine busy the parallel run cannot get its second core and ``parallel_speedup`` says
nothing about the kernel (the CLI then prints a warning).
"""
from __future__ import annotations

import numpy as np

from ..datasets import make_sparse_regression
from ..dln import _kernels
from ..dln._reference import run as run_reference
from ..dln.train import DLNConfig, prepare
from . import BenchContext, first_call, timed, numba_threads, workload

ALPHA = 0.01
K = 3
N_TEST = 100
ENSEMBLE_SIZE = 16


def _state(n: int, d: int, steps: int, sam: str, algo: str, batch: int | None = None, seed: int = 0):
    data = make_sparse_regression(n, d, K, n_test=N_TEST, seed=0)
    cfg = DLNConfig(sam=sam, algo=algo, batch=batch, lr=1.0 / d, rho=None if sam == "none" else 1.0 / d,
                    alpha=ALPHA, steps=steps,
                    record_every=max(1, steps // 100), seed=seed)
    st = prepare(data, cfg)
    idx, aidx = st.batches(0, steps)
    return st, np.ascontiguousarray(idx), np.ascontiguousarray(aidx)


def _args(st, idx, aidx, t1: int | None = None) -> tuple:
    """Fresh copies of everything the kernel mutates (and of the batches): one repeat's arguments."""
    T = st.cfg.steps if t1 is None else t1
    return (st.data_tuple(), st.state.copy(), st.rates, 0, np.ascontiguousarray(idx[:T]),
            np.ascontiguousarray(aidx[:T]), st.opts, st.rec.copy())


def _tiny_args(st, idx, aidx) -> tuple:
    """One step with the exact argument types of the timed calls (compiles ``run`` for them)."""
    a = list(_args(st, idx, aidx, t1=1))
    a[6] = a[6].copy()
    a[6][_kernels.O_RECORD_EVERY] = 1             # record after the single step
    a[7] = np.full((2, 2), np.nan)
    return tuple(a)


def _rel_diff(w_a: np.ndarray, w_b: np.ndarray) -> float:
    return float(np.max(np.abs(w_a - w_b)) / max(np.max(np.abs(w_b)), 1e-300))


def _single(ctx: BenchContext, n: int, d: int, full_steps: int, sam: str, algo: str,
            batch: int | None = None) -> dict:
    steps = ctx.steps(full_steps)
    st, idx, aidx = _state(n, d, steps, sam, algo, batch)
    compile_s, cached = first_call("dln.run", _kernels.run, _tiny_args(st, idx, aidx))
    nb_t = timed(_kernels.run, lambda: _args(st, idx, aidx), ctx.repeats)
    np_t = timed(run_reference, lambda: _args(st, idx, aidx), ctx.repeats, budget_s=ctx.numpy_budget_s)
    numba_s, numpy_s = nb_t.best_s, np_t.best_s
    a_nb, a_np = nb_t.args, np_t.args
    diff = max(_rel_diff(a_nb[1][0], a_np[1][0]), _rel_diff(a_nb[1][1], a_np[1][1]))
    return {"numpy_s": numpy_s, "numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": np_t.repeats, "numba_repeats": nb_t.repeats,
            "numpy_cores_used": np_t.cores_used, "numba_cores_used": nb_t.cores_used,
            "steps": steps, "n": n, "d": d,
            "sam": sam, "algo": algo, "batch": st.cfg.batch, "record_every": st.cfg.record_every,
            "lr": st.cfg.lr, "rho": float(st.rho[0]), "alpha": ALPHA,
            "us_per_step_numba": 1e6 * numba_s / steps, "us_per_step_numpy": 1e6 * numpy_s / steps,
            "max_rel_diff": diff}


@workload("dln_1sam_n20_d30_10k", target=25.0,
          description="full-batch 1-SAM, n=20, d=30, 10^4 steps")
def dln_1sam_small(ctx: BenchContext) -> dict:
    return _single(ctx, 20, 30, 10_000, "1", "gd")


@workload("dln_1sam_n80_d200_1k", target=10.0,
          description="full-batch 1-SAM, n=80, d=200, 10^3 steps")
def dln_1sam_large(ctx: BenchContext) -> dict:
    return _single(ctx, 80, 200, 1_000, "1", "gd")


@workload("dln_gd_n80_d200_10k", target=3.0,
          description="full-batch GD, n=80, d=200, 10^4 steps")
def dln_gd(ctx: BenchContext) -> dict:
    return _single(ctx, 80, 200, 10_000, "none", "gd")


@workload("dln_sgd_b1_n80_d200_100k", target=40.0,
          description="SGD batch 1, n=80, d=200, 10^5 steps")
def dln_sgd(ctx: BenchContext) -> dict:
    return _single(ctx, 80, 200, 100_000, "none", "sgd", batch=1)


def _stack(arrays) -> np.ndarray:
    return np.ascontiguousarray(np.stack(list(arrays)))


@workload("dln_sgd_ensemble_16", target=1.8, metric="parallel_speedup", min_threads=2,
          description="16 seeds of dln_sgd_b1_n80_d200_100k: run_many (prange) vs 16 serial run")
def dln_sgd_ensemble(ctx: BenchContext) -> dict:
    n, d, S = 80, 200, ENSEMBLE_SIZE
    steps = ctx.steps(100_000)
    runs = [_state(n, d, steps, "none", "sgd", batch=1, seed=s) for s in range(S)]

    def serial_args():
        return ([_args(*r) for r in runs],)

    def serial(arg_list):
        for a in arg_list:
            _kernels.run(*a)

    def parallel_args():
        per = [_args(*r) for r in runs]
        data = tuple(_stack(a[0][j] for a in per) for j in range(4))
        cols = [_stack(a[j] for a in per) for j in (1, 2, 4, 5, 6, 7)]
        return (data, cols[0], cols[1], 0, *cols[2:], np.full(S, -1, dtype=np.int64))

    st0, idx0, aidx0 = runs[0]
    compile_run, cached_run = first_call("dln.run", _kernels.run, _tiny_args(st0, idx0, aidx0))
    tiny = list(parallel_args())
    tiny[4], tiny[5] = np.ascontiguousarray(tiny[4][:, :1]), np.ascontiguousarray(tiny[5][:, :1])
    tiny[6] = tiny[6].copy()
    tiny[6][:, _kernels.O_RECORD_EVERY] = 1
    tiny[7] = np.full((S, 2, 2), np.nan)
    compile_many, cached_many = first_call("dln.run_many", _kernels.run_many, tuple(tiny))

    # serial and parallel repeats interleaved, so that both see the same background load
    ser_t = par_t = None
    for _ in range(ctx.repeats):
        s1 = timed(serial, serial_args, 1)
        p1 = timed(_kernels.run_many, parallel_args, 1)
        ser_t = s1 if ser_t is None or s1.best_s < ser_t.best_s else ser_t
        par_t = p1 if par_t is None or p1.best_s < par_t.best_s else par_t
    serial_s, parallel_s, ser, par = ser_t.best_s, par_t.best_s, ser_t.args, par_t.args
    np_t = timed(run_reference, lambda: _args(*runs[0]), ctx.repeats, budget_s=ctx.numpy_budget_s)
    ref_s, numpy_rep, a_np = np_t.best_s, np_t.repeats, np_t.args
    wp_ser = np.stack([a[1][0] for a in ser[0]])
    diff_par = _rel_diff(par[1][:, 0], wp_ser)
    diff_np = _rel_diff(par[1][0, 0], a_np[1][0])
    numpy_s = S * ref_s
    return {"numpy_s": numpy_s, "numba_s": parallel_s, "compile_s": compile_many,
            "compile_cached": cached_many, "compile_s_run": compile_run,
            "serial_s": serial_s, "parallel_s": parallel_s, "parallel_speedup": serial_s / parallel_s,
            "speedup_serial": numpy_s / serial_s, "numpy_estimated": True,
            "numpy_estimate": f"{S} x one reference run (seed 0)", "numpy_single_run_s": ref_s,
            "serial_cpu_s": ser_t.cpu_s, "parallel_cpu_s": par_t.cpu_s,
            "serial_cores_used": ser_t.cores_used, "parallel_cores_used": par_t.cores_used,
            "numpy_repeats": numpy_rep, "numba_repeats": ctx.repeats,
            "runs": S, "numba_threads": numba_threads(), "steps": steps, "n": n, "d": d, "sam": "none", "algo": "sgd", "batch": 1,
            "record_every": st0.cfg.record_every, "lr": st0.cfg.lr, "rho": 0.0, "alpha": ALPHA,
            "max_rel_diff": diff_np, "max_rel_diff_parallel_vs_serial": diff_par}
