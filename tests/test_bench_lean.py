"""The lean numpy baselines of the benchmark (issue 17) compute what the readable references compute.

Each lean loop of ``toymodels/bench/{quad1d,relu,sde,fgsm,square,sam_convergence,sharpness}.py`` is run
against the project's reference (the test oracle, an independent implementation) on the same
arguments: bit for bit where the lean loop performs the same floating-point operations in the same
order (quad1d, fgsm, square), to rounding where it reorders sums or folds two products into one
(relu, sde, sam_convergence, sharpness). No timings are asserted (speed is the benchmark's business).
The SDE runs of the DLN drift along the flat rescaling direction u → cu, v → v/c, so the long-horizon
comparison is made on a short horizon (200 steps) and on the losses, not on u and v after 2·10⁴ steps.
No test here is Monte-Carlo: every input is fixed, nothing depends on a seed range.
"""
from __future__ import annotations

import numpy as np
import pytest

from toymodels.bench import (_BANDWIDTH, BenchContext, load_builtin, memory_bandwidth_gbs,
                             physical_limit, run_workload)


def _fresh(make):
    """Two independent copies of the arguments ``make()`` returns."""
    return make(), make()


# ---------------------------------------------------------------------------------------------- quad1d
@pytest.mark.parametrize("variant", ["uniform", "points", "partly_diverging"])
def test_quad1d_lean_ensemble_is_bit_identical_to_the_reference(variant):
    from toymodels.bench.quad1d import lean_ensemble
    from toymodels.quad1d._reference import _ensemble_args, ensemble

    def make():
        a = list(_ensemble_args("small", points=() if variant == "uniform" else (0.5, 1.0, 1.3)))
        if variant == "partly_diverging":
            a[4] = 2.0          # η = 2 on the points: most runs pass |θ| > 10³ (stop there), some do not
        return tuple(a)

    a1, a2 = _fresh(make)
    lean_ensemble(*a1)
    ensemble(*a2)
    if variant == "partly_diverging":
        div = a2[-3][:, 4]
        assert 0 < np.sum(div >= 0) < div.size, "the case must mix diverging and surviving runs"
    assert np.array_equal(a1[-3], a2[-3])
    assert np.array_equal(a1[-2], a2[-2], equal_nan=True)
    assert np.array_equal(a1[-1], a2[-1], equal_nan=True)


# ------------------------------------------------------------------------------------------------ relu
def test_relu1d_lean_sgd_and_ranks_match_the_reference():
    from toymodels.bench import relu as R
    from toymodels.relu._reference import net1d

    prob = R._problem(3000)
    a1, a2 = R._args(prob), R._args(prob)
    R.lean_relu1d(*a1)
    R._make_run(net1d.sgd, net1d.jacobian_ranks)(*a2)
    for i in (2, 3, 4, 8, 9, 10, 11, 14):           # w, b, a, the records, their losses, the singular values
        np.testing.assert_allclose(a1[i], a2[i], rtol=1e-10, atol=1e-11)
    assert np.array_equal(a1[13], a2[13])           # the ranks


@pytest.mark.parametrize("model,steps", [("teacher2", 50_000), ("teacher2", 5000), ("teacher3", 50_000)])
def test_teacher_lean_sgd_matches_the_reference(model, steps):
    """50 000 steps: the workload's run; teacher2 at 5 000 steps (a compressed large-step schedule)
    diverges, and both must stop at the same step with the same records so far."""
    from toymodels.bench import relu as R
    from toymodels.relu._reference import teacher2, teacher3

    lean, ref = ((R.lean_teacher3_sgd, teacher3.sgd) if model == "teacher3"
                 else (R.lean_teacher2_sgd, teacher2.sgd))
    a1, a2 = _fresh(lambda: R._teacher_args(model, steps, 40))
    with np.errstate(over="ignore", invalid="ignore"):
        r1, r2 = lean(*a1), ref(*a2)
    assert r1 == r2
    n_par = 3 if model == "teacher3" else 2
    if r2 < 0:
        for i in range(2, 2 + n_par):
            np.testing.assert_allclose(a1[i], a2[i], rtol=1e-10, atol=1e-12)
        k = len(a2[-1])
    else:
        k = int(np.searchsorted(a2[6], r2, side="right"))   # records written before the divergence
        assert 0 < k < len(a2[-1])
    for i in range(6 + 1, 6 + 1 + n_par + 1):               # the records and their losses
        np.testing.assert_allclose(a1[i][:k], a2[i][:k], rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------- sde
@pytest.mark.parametrize("kind", ["noisy", "gf", "diverging"])
def test_sde_lean_em_dln_matches_the_reference_small(kind):
    from toymodels.bench.sde import lean_em_dln
    from toymodels.sde import _reference as S

    a1, a2 = _fresh(lambda: S._dln_args("small", kind))
    with np.errstate(over="ignore", invalid="ignore"):
        r1, r2 = lean_em_dln(*a1), S.em_dln(*a2)
    assert r1 == r2
    if r2 < 0:
        np.testing.assert_allclose(a1[2], a2[2], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a1[3], a2[3], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a1[-1], a2[-1], rtol=1e-12, atol=1e-14)
    else:
        assert r2 > 0                                 # the diverging case diverges, at the same step


def test_sde_lean_em_dln_matches_the_reference_at_bench_size_short_horizon():
    """The workload's size (n = 80, d = 200), 200 steps: u, v to 1e-10; the loss records to 1e-10 over
    the full 2·10⁴ steps (u and v themselves drift apart along u → cu, v → v/c, which the loss does
    not see)."""
    from toymodels.bench.sde import lean_em_dln
    from toymodels.sde import _reference as S

    def short():
        a = list(S._dln_args("bench"))
        a[8], a[9], a[10] = 200, 10, np.full(21, np.nan)
        return tuple(a)

    a1, a2 = _fresh(short)
    assert lean_em_dln(*a1) == S.em_dln(*a2) == -1
    for i in (2, 3, 10):
        np.testing.assert_allclose(a1[i], a2[i], rtol=1e-10)
    a1, a2 = _fresh(lambda: S._dln_args("bench"))
    assert lean_em_dln(*a1) == S.em_dln(*a2) == -1
    np.testing.assert_allclose(a1[-1][1:], a2[-1][1:], rtol=1e-10)


@pytest.mark.parametrize("size,noisy", [("small", True), ("small", False), ("bench", True)])
def test_sde_lean_em_relu3_matches_the_reference(size, noisy):
    from toymodels.bench.sde import lean_em_relu3
    from toymodels.sde import _reference as S

    def make():
        a = list(S._relu_args("relu3", size, noisy))
        if size == "bench":                               # a short horizon of the workload's problem
            S_ = 500
            a[5], a[6], a[7], a[9], a[11] = a[5][:S_], a[6][:S_], a[7][:S_], S_, np.full((S_ - 1) // 10 + 1, np.nan)
        return tuple(a)

    a1, a2 = _fresh(make)
    assert lean_em_relu3(*a1) == S.em_relu3(*a2) == -1
    np.testing.assert_allclose(a1[2], a2[2], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(a1[-1], a2[-1], rtol=1e-11, atol=1e-13)


# ------------------------------------------------------------------------------------------------ fgsm
@pytest.mark.parametrize("case", [0, 1, 2])
def test_fgsm_lean_sq_norms_is_bit_identical(case):
    from toymodels.bench.fgsm import lean_sq_norms
    from toymodels.fgsm._reference import CASES, sq_norms

    a1, a2 = _fresh(lambda: CASES[case].make_args("small"))
    lean_sq_norms(*a1)
    sq_norms(*a2)
    assert np.array_equal(a1[-1], a2[-1])


def test_fgsm_lean_sq_norms_bit_identical_across_blocks():
    """The workload's arguments on 3000 samples (d = 100: three lean blocks, the last one partial)."""
    from toymodels.bench.fgsm import LEAN_BLOCK, _args, lean_sq_norms
    from toymodels.fgsm._reference import sq_norms

    n = 3000
    assert n * 100 > 2 * LEAN_BLOCK and n % (LEAN_BLOCK // 100) != 0
    a1, a2 = _fresh(lambda: _args(n))
    lean_sq_norms(*a1)
    sq_norms(*a2)
    assert np.array_equal(a1[-1], a2[-1])


# ---------------------------------------------------------------------------------------------- square
@pytest.mark.parametrize("size", ["small", "bench"])
def test_square_lean_linf_propose_is_bit_identical(size):
    from toymodels.bench.square import lean_linf_propose
    from toymodels.square._reference import _linf_propose_args, linf_propose

    a1, a2 = _fresh(lambda: _linf_propose_args(size))
    lean_linf_propose(*a1)
    linf_propose(*a2)
    assert np.array_equal(a1[-2], a2[-2]) and np.array_equal(a1[-1], a2[-1])
    if size == "small":
        assert set(a2[-1].tolist()) >= {1, 16} and np.any((a2[-1] > 1) & (a2[-1] < 16))   # all three paths


# ------------------------------------------------------------------------------------- sam_convergence
@pytest.mark.parametrize("which", ["separable", "logistic"])
def test_sam_lean_stochastic_matches_the_reference(which):
    from toymodels.bench import sam_convergence as M
    from toymodels.sam_convergence.run import sam_stochastic_reference

    lean, args = ((M.lean_sam_separable, M._args) if which == "separable"
                  else (M.lean_sam_logistic, M._logistic_args))
    l1, g1 = lean(*args(2000))
    l2, g2 = sam_stochastic_reference(*args(2000))
    np.testing.assert_allclose(l1, l2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("rho,stop", [(0.3, 0.0), (0.0, 0.0), (0.3, 1e-5)])
def test_relu_lean_gd_sam_matches_the_reference(rho, stop):
    from toymodels.bench.sam_convergence import lean_gd_sam
    from toymodels.relu._reference.net1d import _gd_sam_args, gd_sam

    def make():
        a = list(_gd_sam_args("small", rho))
        a[7] = stop
        return tuple(a)

    a1, a2 = _fresh(make)
    r1, r2 = lean_gd_sam(*a1), gd_sam(*a2)
    assert r1 == r2
    for i in (2, 3, 4):
        np.testing.assert_allclose(a1[i], a2[i], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a1[9], a2[9], rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------- sharpness
@pytest.mark.parametrize("k", [16, 100, 4096])
def test_sharpness_lean_relu_loss_batch_matches_the_reference(k):
    from toymodels.bench.sharpness import lean_relu_loss_batch
    from toymodels.sharpness._reference import _relu_args, relu_loss_batch

    T, x, y, _ = _relu_args("bench")
    o1, o2 = np.empty(k), np.empty(k)
    lean_relu_loss_batch(T[:k], x, y, o1)
    relu_loss_batch(T[:k], x, y, o2)
    np.testing.assert_allclose(o1, o2, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------- the result rows
def test_physical_limit_is_the_larger_of_the_two_floors(monkeypatch):
    monkeypatch.setitem(_BANDWIDTH, "copy", 20.0)
    lim = physical_limit(76.0, 40.0, 1e9, 3.0, "x")
    # 1e9 steps × 76 flops at 76e9 flop/s = 1 s; × 40 B at 20e9 B/s = 2 s: bytes bound
    assert lim["flop_floor_s"] == pytest.approx(1.0) and lim["byte_floor_s"] == pytest.approx(2.0)
    assert lim["floor_s"] == pytest.approx(2.0) and lim["bound"] == "bytes" and lim["ratio"] == pytest.approx(1.5)


def test_memory_bandwidth_units_best_repeat_and_memo(monkeypatch):
    """A clock that makes the copies of 20 MB take 0.004 s, then 0.002 s: 40 MB of traffic in the best
    0.002 s is 20 GB/s; a second call returns the memoized value without copying."""
    import toymodels.bench as bench

    ticks = iter([0.0, 0.004, 1.0, 1.002])
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(ticks))
    monkeypatch.delitem(_BANDWIDTH, "copy", raising=False)      # measured afresh; the old value restored after
    assert memory_bandwidth_gbs(mbytes=20, repeats=2) == pytest.approx(20.0)
    assert memory_bandwidth_gbs(mbytes=20, repeats=2) == pytest.approx(20.0)     # no more clock reads


@pytest.mark.parametrize("name", ["sam_convergence_nsam_2e4", "square_linf_update", "sharpness_relu_m100_k4096"])
def test_audited_rows_name_their_baseline_and_limit(name):
    row = run_workload(load_builtin()[name], BenchContext(repeats=1, quick=True, numpy_budget_s=0.5))
    assert row["baseline"].startswith("lean numpy")
    assert row["numpy_s"] > 0 and row["reference_s"] > 0 and row["numba_s"] > 0
    assert row["speedup"] == pytest.approx(row["numpy_s"] / row["numba_s"])
    assert row["speedup_vs_reference"] == pytest.approx(row["reference_s"] / row["numba_s"])
    lim = row["limit"]
    assert lim["floor_s"] == pytest.approx(max(lim["flop_floor_s"], lim["byte_floor_s"]))
    assert lim["ratio"] == pytest.approx(row["numba_s"] / lim["floor_s"])
    assert any(n.startswith("baseline = lean numpy") for n in row["notes"])
    for key in ("lean_max_abs_diff",):
        assert row[key] <= 1e-10
