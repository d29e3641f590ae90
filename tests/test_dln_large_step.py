"""Large-step schedules on the u⊙v DLN (thesis Sec. 6.4.1): checkpointed runs equal uninterrupted
runs, the Jacobian-rank / ℓ₀ metrics on matrices with known answers, and the quick figure renders.

Deterministic tests (fixed data seeds); no Monte-Carlo tolerances are involved."""
from __future__ import annotations

import numpy as np
import pytest

from toymodels.errors import ConfigError
from toymodels.datasets import make_sparse_regression
from toymodels.dln import DLNConfig, train_uv
from toymodels.dln.large_step import (fresh_points, jacobian_factor, large_step_config, log_checkpoints,
                                      metrics, train_uv_checkpoints)
from toymodels.sde.dln import jacobian_uv, rank_jacobian

DATA = make_sparse_regression(n=12, d=15, k=3, n_test=40, seed=4)
U0, V0 = 0.1, 0.0


@pytest.mark.parametrize("algo,lr", [("sgd", 0.05), ("gd", 0.2)])
def test_checkpoints_equal_uninterrupted_runs(algo, lr):
    T = 600
    cfg = DLNConfig(lr=lr, algo=algo, batch=(1 if algo == "sgd" else None), steps=T, seed=7)
    cps = [0, 1, 37, 200, 599, 600]
    res = train_uv_checkpoints(DATA, cfg, U0, V0, cps)
    assert list(res.extra["checkpoints"]) == cps
    np.testing.assert_array_equal(res.extra["u_path"][0], np.full(DATA.d, U0))
    np.testing.assert_array_equal(res.extra["v_path"][0], np.full(DATA.d, V0))
    for k, t in enumerate(cps[1:], start=1):
        # the same seed draws the same mini-batch stream, so a t-step run is the prefix of the T-step run
        ref = train_uv(DATA, DLNConfig(lr=lr, algo=cfg.algo, batch=cfg.batch, steps=t, seed=7), U0, V0)
        np.testing.assert_allclose(res.extra["u_path"][k], ref.extra["u"], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(res.extra["v_path"][k], ref.extra["v"], rtol=1e-12, atol=1e-14)
    full = train_uv(DATA, cfg, U0, V0)
    np.testing.assert_array_equal(res.extra["u"], full.extra["u"])
    np.testing.assert_array_equal(res.curve_train, full.curve_train)
    assert res.test_loss == full.test_loss


def test_step_schedule_checkpoints_equal_uninterrupted_run():
    T = 1000
    cfg = large_step_config(0.1, 0.01, 0.3, T, algo="sgd", seed=3)
    assert cfg.schedule == "step" and cfg.decay_at == (0.3,) and cfg.decay_factor == pytest.approx(0.1)
    res = train_uv_checkpoints(DATA, cfg, U0, V0, [300, 650, T])
    # before the decay the schedule is the constant large step
    pre = train_uv(DATA, DLNConfig(lr=0.1, algo="sgd", batch=1, steps=300, seed=3), U0, V0)
    np.testing.assert_allclose(res.extra["u_path"][0], pre.extra["u"], rtol=1e-12, atol=1e-14)
    full = train_uv(DATA, cfg, U0, V0)
    np.testing.assert_array_equal(res.extra["u_path"][-1], full.extra["u"])
    np.testing.assert_array_equal(res.extra["v_path"][-1], full.extra["v"])


def test_constant_small_schedule_config():
    cfg = large_step_config(0.1, 0.01, None, 50, algo="gd", batch=1)
    assert cfg.schedule == "constant" and cfg.lr == 0.01 and cfg.batch is None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_leaves_later_checkpoints_nan():
    res = train_uv_checkpoints(DATA, DLNConfig(lr=50.0, algo="gd", steps=400), 1.0, 0.5, [0, 10, 400])
    assert res.diverged and res.diverged_at < 10
    assert np.all(np.isfinite(res.extra["u_path"][0])) and np.all(np.isnan(res.extra["u_path"][1:]))


@pytest.mark.parametrize("cps", [[], [-1], [601]])
def test_bad_checkpoints_are_refused(cps):
    with pytest.raises(ConfigError, match="checkpoints"):
        train_uv_checkpoints(DATA, DLNConfig(steps=600), U0, V0, cps)


def test_log_checkpoints():
    c = log_checkpoints(1000, 20)
    assert c[0] == 0 and c[-1] == 1000 and np.all(np.diff(c) > 0)


def test_jacobian_factor_has_the_jacobian_singular_values():
    rng = np.random.default_rng(0)
    d = 9
    Xf = rng.standard_normal((2 * d, d))
    u, v = rng.standard_normal(d), rng.standard_normal(d)
    s_full = np.linalg.svd(jacobian_uv(Xf, u, v), compute_uv=False)   # 2d × 2d, rank ≤ d
    s_fac = np.linalg.svd(jacobian_factor(Xf, u, v), compute_uv=False)
    np.testing.assert_allclose(s_fac, s_full[:d], rtol=1e-10)
    assert np.all(s_full[d:] < 1e-10 * s_full[0])


def test_rank_and_l0_on_known_parameters():
    d = 12
    Xf = fresh_points(d, seed=1)
    u, v = np.zeros(d), np.zeros(d)
    # θ non-zero on coordinates {2, 5} only: φ φᵀ = X̃ diag(u² + v²) X̃ᵀ has rank 2; u⊙v ≠ 0 on {5}
    u[2], u[5], v[5] = 1.0, 0.3, 2.0
    assert rank_jacobian(jacobian_factor(Xf, u, v), 1e-3) == 2
    assert rank_jacobian(jacobian_uv(Xf, u, v), 1e-3) == 2
    # u = v = 1: φ φᵀ = 2 X̃X̃ᵀ with X̃ of full column rank d
    assert rank_jacobian(jacobian_factor(Xf, np.ones(d), np.ones(d)), 1e-3) == d
    # a coordinate 10⁻⁴ of the largest scale is below a 10⁻³ relative threshold (σ ∝ √(u²+v²))
    w = np.zeros(d)
    w[0], w[1] = 1.0, 1e-4
    Xe = np.eye(d)
    assert rank_jacobian(jacobian_factor(Xe, w, np.zeros(d)), 1e-3) == 1
    assert rank_jacobian(jacobian_factor(Xe, w, np.zeros(d)), 1e-5) == 2


def test_metrics_at_the_ground_truth():
    Xf = fresh_points(DATA.d)
    u = np.where(DATA.beta_star != 0, 1.0, 0.0)
    v = DATA.beta_star.copy()
    m = metrics(DATA, Xf, u, v)
    assert m["train_loss"] == 0.0 and m["test_loss"] == 0.0
    assert m["l0"] == 3 and m["rank"] == 3
    m0 = metrics(DATA, Xf, np.zeros(DATA.d), np.zeros(DATA.d))
    assert m0["train_loss"] == pytest.approx(0.25 * np.mean(DATA.y**2))
    assert m0["l0"] == 0 and m0["rank"] == 0
    bad = metrics(DATA, Xf, np.full(DATA.d, np.inf), np.ones(DATA.d))
    assert bad["rank"] == -1 and bad["l0"] == -1 and bad["test_loss"] == float("inf")


def test_quick_figures_render(tmp_path):
    import json
    import os

    import figures

    specs = figures.registry()
    for fid in ("6.2", "6.3", "6.11"):
        assert specs[fid].thesis_figure == fid
        rec = figures.render(specs[fid], tmp_path, figures.Context(quick=True))
        assert all(os.path.exists(f) for f in rec["files"])
        with open(rec["files"][1]) as fh:
            summ = json.load(fh)["summary"]
        if fid == "6.3":
            # β* − β_init is the first axis of the plane: its coordinates are (‖β*‖, 0)
            bs = summ["reference_points"]["beta_star"]
            assert bs[0] == pytest.approx(np.sqrt(20)) and abs(bs[1]) < 1e-12
        else:
            assert set(summ["runs"]) == {"small", "large_decay_10%", "large_decay_30%", "large_decay_50%"}
            for r in summ["runs"].values():
                assert {"final_test_loss", "final_l0", "final_rank"} <= set(r)
