"""Lean DLN kernels and the lean numpy baselines of the benchmark (issue 17).

* ``run_lean`` / ``run_many_lean`` (no implicit-bias logs, fused plain GD/SGD step) end at the same
  w₊, w₋, recorded losses and divergence step as ``run`` / ``run_many`` — bit for bit — on every code
  path of the kernel, and leave the log rows untouched; ``train``/``train_ensemble``/the CLI with
  ``theory=False`` / ``--no-theory`` give the same runs with the prediction NaN (JSON null).
* The lean numpy loops of :mod:`toymodels.bench.dln` (independent, plainly written implementations)
  agree with the kernel to rounding: otherwise the benchmark would compare different computations.

Deterministic (fixed data seeds and batch streams); no Monte-Carlo tolerances are involved.
"""
from __future__ import annotations

import numpy as np
import pytest
from helpers import run_cli

from toymodels.bench import dln as bench_dln
from toymodels.datasets import make_sparse_regression
from toymodels.dln import DLNConfig, train
from toymodels.dln import _kernels
from toymodels.dln.ensemble import stack_states, train_ensemble
from toymodels.dln.train import prepare

DATA = make_sparse_regression(n=20, d=30, k=3, n_test=50, seed=3)

# every code path of _run_impl: fused lean GD/SGD step (b = 1 and b > 1), closed-form full-batch 1-SAM,
# fused 1-SAM ascent, radius/normalization, chunks, independent ascent, switches (mixed lean/generic steps)
PATHS = {
    "gd": dict(sam="none"),
    "sgd-b1": dict(sam="none", algo="sgd", batch=1),
    "sgd-b6-noreplace": dict(sam="none", algo="sgd", batch=6, replacement=False),
    "sgd-b7": dict(sam="none", algo="sgd", batch=7),
    "1sam-gd": dict(sam="1"),
    "1sam-gd-normalized": dict(sam="1", normalize=True, rho=0.002),
    "1sam-sgd-b4": dict(sam="1", algo="sgd", batch=4),
    "1sam-sgd-b1": dict(sam="1", algo="sgd", batch=1),
    "nsam-gd": dict(sam="n"),
    "nsam-sgd-normalized": dict(sam="n", algo="sgd", batch=4, normalize=True, rho=0.002),
    "msam-sgd": dict(sam="m", m=2, algo="sgd", batch=4, replacement=False),
    "nsam-independent": dict(sam="n", algo="sgd", batch=4, ascent="independent", ascent_batch=3),
    "erm-to-sam": dict(sam="n", switch_at=400, rho=0.2),
    "sam-to-erm-sgd": dict(sam="n", algo="sgd", batch=5, switch_at=400, switch_mode="sam-to-erm", rho=0.2),
    "1sam-erm-to-sam": dict(sam="1", switch_at=400, rho=0.2),
    "warmup-decay": dict(sam="none", schedule="linear-warmup", warmup_steps=100, decay_at=(0.5,)),
}


def _kernel_args(kw, steps=1000, alpha=0.3, lr=0.02, data=DATA, seed=0):
    cfg = DLNConfig(**{"alpha": alpha, "lr": lr, "steps": steps, "record_every": 7, "seed": seed, **kw})
    st = prepare(data, cfg)
    idx, aidx = st.batches(0, steps)
    return st, (st.data_tuple(), st.state.copy(), st.rates, 0, idx, aidx, st.opts, st.rec.copy())


def _copy(args):
    return (args[0], args[1].copy(), args[2], args[3], args[4], args[5], args[6], args[7].copy())


@pytest.mark.parametrize("name", list(PATHS))
def test_lean_kernel_is_the_full_kernel_without_logs(name):
    _, args = _kernel_args(PATHS[name])
    full, lean = _copy(args), _copy(args)
    lean[1][2:] = 7.0                                   # sentinel in the log rows
    s_full, s_lean = _kernels.run(*full), _kernels.run_lean(*lean)
    assert s_full == s_lean == -1
    np.testing.assert_array_equal(lean[1][:2], full[1][:2])             # w₊, w₋ bit for bit
    np.testing.assert_array_equal(lean[7], full[7])                     # the recorded losses
    assert np.all(lean[1][2:] == 7.0)                                   # the logs were not touched
    assert np.abs(full[1][:2] - args[1][:2]).max() > 1e-3               # the run moved w
    if PATHS[name].get("sam", "none") != "none":
        assert np.abs(full[1][_kernels.LOG_FLOW]).max() > 0             # (the full kernel did log)


@pytest.mark.parametrize("name", ["gd", "sgd-b1", "sgd-b7", "1sam-gd", "nsam-independent"])
def test_lean_kernel_stops_at_the_same_divergence_step(name):
    _, args = _kernel_args(PATHS[name], lr=4.0, alpha=1.0)
    full, lean = _copy(args), _copy(args)
    with np.errstate(all="ignore"):
        s_full, s_lean = _kernels.run(*full), _kernels.run_lean(*lean)
    assert 0 <= s_full < 1000 and s_lean == s_full


def test_lean_kernel_in_chunks_equals_one_call():
    """The fused step keeps β(w) between steps; split calls must not depend on it."""
    st, args = _kernel_args(PATHS["sgd-b1"], steps=900)
    whole = _copy(args)
    _kernels.run_lean(*whole)
    parts = _copy(args)
    for t0, t1 in ((0, 1), (1, 350), (350, 900)):
        _kernels.run_lean(parts[0], parts[1], parts[2], t0, args[4][t0:t1], args[5][t0:t1], parts[6], parts[7])
    np.testing.assert_array_equal(parts[1][:2], whole[1][:2])
    np.testing.assert_array_equal(parts[7], whole[7])


def test_run_many_lean_equals_run_many():
    datas = [make_sparse_regression(12, 16, 3, n_test=20, seed=s) for s in range(4)]
    cfgs = [DLNConfig(sam=sam, algo="sgd", batch=4, rho=rho, lr=lr, alpha=0.3, steps=600, record_every=10, seed=s)
            for s, (sam, rho, lr) in enumerate([("none", 0.0, 0.02), ("n", 0.05, 3.0), ("1", 0.02, 0.02),
                                                ("none", 0.0, 0.05)])]
    states = [prepare(dt, c) for dt, c in zip(datas, cfgs)]
    args = stack_states(states, 0, 600)
    full = (args[0], args[1].copy(), *args[2:7], args[7].copy(), np.full(4, -1, dtype=np.int64))
    lean = (args[0], args[1].copy(), *args[2:7], args[7].copy(), np.full(4, -1, dtype=np.int64))
    with np.errstate(all="ignore"):
        _kernels.run_many(*full)
        _kernels.run_many_lean(*lean)
    np.testing.assert_array_equal(lean[8], full[8])
    assert lean[8][1] >= 0 and (lean[8][[0, 2, 3]] == -1).all()         # the second run diverges (γ = 3)
    ok = lean[8] < 0
    np.testing.assert_array_equal(lean[1][ok, :2], full[1][ok, :2])
    np.testing.assert_array_equal(lean[7][ok], full[7][ok])


@pytest.mark.parametrize("kw", [dict(sam="1"), dict(sam="none", algo="sgd", batch=2)])
def test_train_and_ensemble_without_theory(kw):
    cfgs = [DLNConfig(steps=2000, seed=s, **kw) for s in range(3)]
    for c in cfgs[:1]:
        a, b = train(DATA, c), train(DATA, c, theory=False)
        np.testing.assert_array_equal(b.w_plus, a.w_plus)
        np.testing.assert_array_equal(b.curve_test, a.curve_test)
        assert np.all(np.isfinite(a.alpha_eff_theory)) and np.all(np.isnan(b.alpha_eff_theory))
        assert np.all(np.isnan(b.alpha_eff_theory_discrete))
    ens, lean = train_ensemble(DATA, cfgs), train_ensemble(DATA, cfgs, theory=False)
    for e, le in zip(ens, lean):
        np.testing.assert_array_equal(le.w_minus, e.w_minus)
        np.testing.assert_array_equal(le.curve_train, e.curve_train)
        assert np.all(np.isnan(le.alpha_eff_theory))


def test_cli_no_theory():
    args = ["--steps", "2000", "--json", "--no-baseline"]
    with_logs = run_cli("toymodels.dln", args).json
    lean = run_cli("toymodels.dln", [*args, "--no-theory"]).json
    assert lean["beta"] == with_logs["beta"] and lean["test_loss"] == with_logs["test_loss"]
    assert lean["config"]["theory"] is False and with_logs["config"]["theory"] is True
    assert lean["alpha_eff_theory"] == [None] * 30 and lean["alpha_eff_theory_mean"] is None
    assert all(v is not None for v in with_logs["alpha_eff_theory"])


# the lean numpy baselines of the benchmark: the same computation as the kernel, to rounding
LEAN = {
    "lean_gd": (dict(sam="none"), bench_dln.lean_gd),
    "lean_sgd": (dict(sam="none", algo="sgd", batch=1), bench_dln.lean_sgd),
    "lean_1sam": (dict(sam="1", rho=0.05), bench_dln.lean_1sam),
    "lean_1sam_closed": (dict(sam="1", rho=0.05), bench_dln.lean_1sam_closed),
}


@pytest.mark.parametrize("name", list(LEAN))
def test_lean_numpy_baseline_equals_the_kernel(name):
    kw, fn = LEAN[name]
    for seed, steps in ((0, 1000), (1, 997)):       # record_every = 7 does (1000) and does not (997) divide
        st, args = _kernel_args(kw, steps=steps, seed=seed)
        _kernels.run_lean(*args)
        data, wp, wm, *rest = bench_dln.lean_args(st, args[4])
        lean = fn(data, wp, wm, *rest)
        rec = rest[-1]
        assert np.abs(args[1][0] - st.wp).max() > 1e-3                # the run moved w
        np.testing.assert_allclose(lean[0], args[1][0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(lean[1], args[1][1], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(rec, args[7], rtol=1e-11, atol=1e-15)


def test_bench_workloads_use_the_lean_baseline():
    """The bench row says what its numpy_s is, and the lean loop ended where the kernel did (a short run)."""
    from toymodels.bench import BenchContext, WORKLOADS, run_workload

    row = run_workload(WORKLOADS["dln_sgd_b1_n80_d200_100k"], BenchContext(repeats=1, quick=True,
                                                                          numpy_budget_s=0.01))
    assert row["baseline"].startswith("lean numpy") and row["numpy_s"] == row["lean_sgd_s"]
    assert row["max_rel_diff_lean_numpy"] < 1e-10 and row["max_rel_diff"] < 1e-10
    assert row["lean_equals_full"] is True
    assert row["numba_full_s"] > 0 and row["reference_s"] > 0
    assert row["limit"]["flops_per_step"] == 10 * 200 and row["limit"]["floor_s"] > 0
