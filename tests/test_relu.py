"""Two-layer ReLU model of thesis Sec. 6.4.2 (toymodels.relu): analytic gradient/Jacobian vs finite
differences, the public ``backend=`` switch, feature sparsity on hand-made activations, the random streams,
the ``regression1d`` payload. Kernel = reference: tests/test_kernel_parity.py (registry); the CLI contract:
tests/test_contract.py. Deterministic (fixed seeds); no Monte-Carlo assertions."""
from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import fd_grad, run_cli

from toymodels.errors import ConfigError
from toymodels.relu import (ReLUConfig, blanc_data, count_kinks, feature_sparsity, init_params, jacobian,
                            jacobian_rank, predict, train, warmup_decay_schedule)
from toymodels.relu._kernels import net1d as _kernels
from toymodels.relu.streams import sgd_indices


def _params(seed=3, m=20):
    return init_params(m, 1.0, 0.3, seed)


def test_data_is_blanc_et_al():
    x, y = blanc_data()
    assert x.shape == y.shape == (12,)
    assert x[0] == pytest.approx(-5.5 / 4 + 0.07) and x[-1] == pytest.approx(5.5 / 4 + 0.07)
    assert y[0] == pytest.approx(0.345 - 2) and y[1] == pytest.approx(0.345 + 1.5)


def test_jacobian_matches_finite_differences_away_from_kinks():
    x, _ = blanc_data()
    w, b, a = _params()
    z = np.outer(x, w) + b
    assert np.min(np.abs(z)) > 1e-4       # no pre-activation within 100 h of a kink (|δz| ≤ 1.4 h)
    J = jacobian(x, w, b, a)
    theta = np.concatenate([w, b, a])
    m = w.size
    for i in range(x.size):
        g = fd_grad(lambda t: predict(x[i:i + 1], t[:m], t[m:2 * m], t[2 * m:])[0], theta)
        np.testing.assert_allclose(J[i], g, atol=1e-7)


def test_one_sgd_step_is_minus_lr_times_loss_gradient():
    # one step on example i equals θ − η ∇_θ ½(f(x_i) − y_i)², the gradient by central differences
    x, y = blanc_data()
    w, b, a = _params()
    i, eta = 4, 1e-2
    theta = np.concatenate([w, b, a])
    m = w.size

    def li(t):
        return 0.5 * (predict(x[i:i + 1], t[:m], t[m:2 * m], t[2 * m:])[0] - y[i]) ** 2

    g = fd_grad(li, theta)
    w1, b1, a1 = w.copy(), b.copy(), a.copy()
    rec = np.zeros((0, m))
    _kernels.sgd(x, y, w1, b1, a1, np.array([eta]), np.array([i]), np.zeros(0, np.int64), rec, rec, rec,
                 np.zeros(0))
    np.testing.assert_allclose(np.concatenate([w1, b1, a1]), theta - eta * g, atol=1e-8)


def test_loss_normalization_is_one_over_2n():
    x, y = blanc_data()
    w, b, a = _params()
    r = predict(x, w, b, a) - y
    assert _kernels.loss(x, y, w, b, a) == pytest.approx(np.sum(r ** 2) / (2 * 12), rel=1e-13)


def test_backend_switch_and_streams():
    """The public ``backend=`` wiring (the kernels themselves: the registry's parity test), the rank
    recorded at checkpoints, and the documented streams: init from ``stream(seed)`` (= default_rng(seed)),
    SGD indices from ``sgd_indices(seed)``, so the kernel run by hand reproduces ``train``."""
    cfg = ReLUConfig(steps=3000, n_checkpoints=30, seed=5)
    r1, r2 = train(cfg, backend="numba"), train(cfg, backend="numpy")
    np.testing.assert_allclose(r1.w, r2.w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r1.a, r2.a, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r1.train_loss, r2.train_loss, rtol=1e-10)
    np.testing.assert_array_equal(r1.rank, r2.rank)
    x, y = blanc_data()
    for k in (0, r1.iters.size - 1):
        assert r1.rank[k] == jacobian_rank(jacobian(x, r1.w[k], r1.b[k], r1.a[k]))
    rng = np.random.default_rng(5)
    w = 2.5 * rng.choice([-1.0, 1.0], size=100)
    np.testing.assert_array_equal(r1.w[0], w)
    w, b, a = init_params(100, 1.0, cfg.s_a, 5)
    rec = np.zeros((1, 100))
    _kernels.sgd(x, y, w, b, a, r1.lr, sgd_indices(5, 12, 3000), np.array([3000]), rec, rec.copy(), rec.copy(),
                 np.zeros(1))
    np.testing.assert_array_equal(w, r1.w[-1])
    with pytest.raises(ConfigError, match="backend"):
        train(cfg, backend="nunba")


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="^n_checkpoints must be <= 33332 for m = 1000"):
        ReLUConfig(m=1000, n_checkpoints=50_000).validate()
    with pytest.raises(ConfigError, match="^warmup_factor must keep the peak step size"):
        ReLUConfig(lr=1e300, warmup_factor=1e300).validate()
    with pytest.raises(ConfigError, match="^transition must be"):
        warmup_decay_schedule(1.0, 10, 1.0, 2.0, 2.0)


def test_divergence_is_reported_with_its_step():
    r = train(ReLUConfig(steps=2000, lr=5.0, n_checkpoints=20))
    assert r.diverged_at is not None and 0 <= r.diverged_at < 2000


def test_feature_sparsity_hand_made():
    # 4 points × 4 neurons; neuron 1 = 2 × neuron 0 (correlation 1, counted once); neuron 3 all zero
    A = np.array([[1.0, 2.0, 0.0, 0.0],
                  [2.0, 4.0, 1.0, 0.0],
                  [0.0, 0.0, 3.0, 0.0],
                  [3.0, 6.0, 0.0, 0.0]])
    # kept: neuron 0 (3 non-zeros) and neuron 2 (2 non-zeros) → 5 / 16
    assert feature_sparsity(A) == pytest.approx(5 / 16)
    assert feature_sparsity(np.zeros((3, 5))) == 0.0
    # all distinct, all active: 1
    B = np.array([[1.0, 5.0], [2.0, 1.0], [3.0, 4.0]])      # correlation < 0.95
    assert feature_sparsity(B) == 1.0
    # threshold: columns with correlation 0.9 are merged at 0.85, not at 0.95
    u = np.array([1.0, -1.0, 0.0, 0.0])
    v = np.array([0.0, 0.0, 1.0, -1.0])
    c1, c2 = 10 + u, 10 + 0.9 * u + np.sqrt(1 - 0.81) * v    # Pearson correlation exactly 0.9
    C = np.stack([c1, c2], axis=1)
    assert np.corrcoef(C.T)[0, 1] == pytest.approx(0.9)
    assert feature_sparsity(C, 0.95) == 1.0 and feature_sparsity(C, 0.85) == 0.5
    # a constant non-zero column has no correlation: kept
    D = np.array([[1.0, 2.0], [1.0, 3.0]])
    assert feature_sparsity(D) == 1.0


def test_kinks_and_rank_on_hand_made_networks():
    # f(x) = ReLU(x) − ReLU(x − 0.5) + 2 ReLU(−x − 0.3): kinks at 0, 0.5, −0.3
    w, b, a = np.array([1.0, 1.0, -1.0]), np.array([0.0, -0.5, -0.3]), np.array([1.0, -1.0, 2.0])
    assert count_kinks(w, b, a, -1, 1) == 3
    assert count_kinks(w, b, a, -0.2, 1) == 2
    # two neurons with the same kink and cancelling jumps: no kink
    assert count_kinks(np.array([1.0, 2.0]), np.array([-0.2, -0.4]), np.array([1.0, -0.5]), -1, 1) == 0
    assert jacobian_rank(np.zeros((3, 4))) == 0
    assert jacobian_rank(np.outer([1.0, 2.0, 3.0], [1.0, -1.0, 0.5, 2.0])) == 1
    assert jacobian_rank(np.eye(3)) == 3


def test_schedule_follows_the_authors_formula():
    lr = warmup_decay_schedule(1.0, 100, 0.5, 401.0, 4.0)
    assert lr[0] == 1.0 and lr[10] == pytest.approx(1 + 400 * 0.1)
    assert lr[49] == pytest.approx(1 + 400 * 0.49)
    np.testing.assert_allclose(lr[50:], (1 + 400 * 0.5) / 4)


def test_regression1d_payload_and_files(tmp_path):
    """The payload's content (the contract test covers the format): one run per transition with its
    metrics, the files under --out."""
    r = run_cli("toymodels.relu", ["regression1d", "--steps", "20000", "--checkpoints", "20", "--json",
                                   "--out", tmp_path])
    assert r.rc == 0, r.err
    out = r.json
    assert out["config"]["steps"] == 20000 and out["config"]["transitions"] == [0.02, 0.5]
    assert out["config"]["command"] == "regression1d" and out["config"]["seed"] == 0
    assert [q["decay_fraction"] for q in out["runs"]] == [0.02, 0.5]
    for q in out["runs"]:
        assert {"train_loss", "test_loss", "feature_sparsity", "rank_jacobian", "n_kinks",
                "stabilization_loss", "slope_variation"} <= set(q)
        assert q["diverged_at"] is None and q["test_loss"] is None
        assert 0 <= q["feature_sparsity"] <= 1 and 0 <= q["rank_jacobian"] <= 12
    assert {"result.json", "regression1d.npz", "regression1d.png"} <= set(os.listdir(tmp_path))


def test_short_run_divergence_is_a_result():
    # η = 1 (peak 200 at the 50 % transition) blows up for every seed; the run is reported, exit status 0
    r = run_cli("toymodels.relu", ["regression1d", "--steps", "2000", "--lr", "1", "--checkpoints", "20", "--json"])
    assert r.rc == 0
    runs = r.json["runs"]
    assert all(q["diverged_at"] is not None and q["train_loss"] is None for q in runs)
    assert "diverged at step" in r.err and "--lr" in r.err


def test_quick_figures_render(tmp_path):
    import figures

    specs = figures.registry()
    for fid in ("6.4", "6.12", "6.13"):
        rec = figures.render(specs[fid], tmp_path, figures.Context(quick=True))
        assert all(os.path.exists(f) for f in rec["files"])
