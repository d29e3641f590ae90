"""Teacher–student ReLU models of thesis Fig. 6.5 (toymodels.relu.teacher3) and Fig. 6.10/6.14
(toymodels.relu.teacher2): analytic gradient/Jacobian vs central finite differences and torch autograd (away
from kinks), one SGD step vs the loss gradient, the public ``backend=`` switch, the commands' payloads, quick
figures. Kernel = reference: tests/test_kernel_parity.py (registry); the CLI contract: tests/test_contract.py.
Deterministic (fixed seeds); no Monte-Carlo assertions."""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
from helpers import run_cli

from toymodels.relu._kernels import teacher3 as _kernels3
from toymodels.relu.metrics import feature_sparsity
from toymodels.relu.schedule import warmup_decay_schedule
from toymodels.relu.teacher3 import (Teacher3Config, hidden_activations, init_student, jacobian3, predict3,
                                     teacher_data, teacher_params, train_teacher3)

D, M = 5, 10


def _setup(seed=2):
    X, y, Xt, yt, T = teacher_data(D, 2, 50, 200, seed)
    return X, y, init_student(D, M, 1.0, seed)


def _unflat(t):
    return t[:M * D].reshape(M, D), t[M * D:M * D + M * M].reshape(M, M), t[M * D + M * M:]


def _margin(X, W1, W2):
    h1 = X @ W1.T
    return min(np.abs(h1).min(), np.abs(np.maximum(h1, 0) @ W2.T).min())


def test_shapes_and_teacher_is_fitted_by_itself():
    X, y, Xt, yt, T = teacher_data(D, 2, 50, 200, 0)
    assert X.shape == (50, D) and Xt.shape == (200, D) and T[0].shape == (2, D) and T[1].shape == (2, 2)
    r2 = np.maximum(np.maximum(X @ T[0].T, 0) @ T[1].T, 0)     # independent forward pass
    np.testing.assert_allclose(y, r2 @ T[2], rtol=1e-13, atol=1e-14)
    assert np.std(y) > 0.1                                       # the teacher is not (nearly) constant
    assert _kernels3.loss(X, y, *teacher_params(D, 2, 0)) == 0.0


def test_jacobian_matches_finite_differences_and_autograd_away_from_kinks():
    torch = pytest.importorskip("torch")
    X, _, (W1, W2, a) = _setup()
    assert _margin(X, W1, W2) > 1e-4       # no pre-activation within ~50 h of a kink
    J = jacobian3(X, W1, W2, a)
    assert J.shape == (50, M * D + M * M + M)
    theta = np.concatenate([W1.ravel(), W2.ravel(), a])
    h = 1e-6
    fd = np.empty_like(J)
    for k in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[k] += h
        tm[k] -= h
        fd[:, k] = (predict3(X, *_unflat(tp)) - predict3(X, *_unflat(tm))) / (2 * h)
    np.testing.assert_allclose(J, fd, atol=1e-7)

    def f(t):
        w1, w2, aa = t[:M * D].reshape(M, D), t[M * D:M * D + M * M].reshape(M, M), t[M * D + M * M:]
        return torch.relu(torch.relu(torch.from_numpy(X) @ w1.T) @ w2.T) @ aa
    Jt = torch.autograd.functional.jacobian(f, torch.from_numpy(theta)).numpy()
    np.testing.assert_allclose(J, Jt, rtol=1e-12, atol=1e-13)


def test_one_sgd_step_is_minus_lr_times_loss_gradient():
    X, y, (W1, W2, a) = _setup()
    i, eta = 7, 1e-2
    theta = np.concatenate([W1.ravel(), W2.ravel(), a])

    def li(t):
        return 0.5 * (predict3(X[i:i + 1], *_unflat(t))[0] - y[i]) ** 2
    h = 1e-6
    grad = np.array([(li(theta + h * e) - li(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])
    W1c, W2c, ac = W1.copy(), W2.copy(), a.copy()
    rec_at = np.array([1])
    rW1, rW2, ra, rl = np.empty((1, M, D)), np.empty((1, M, M)), np.empty((1, M)), np.empty(1)
    div = _kernels3.sgd(X, y, W1c, W2c, ac, np.array([eta]), np.array([i]), rec_at, rW1, rW2, ra, rl)
    assert div == -1
    np.testing.assert_allclose(np.concatenate([W1c.ravel(), W2c.ravel(), ac]), theta - eta * grad, atol=1e-9)
    r = predict3(X, W1c, W2c, ac) - y
    assert rl[0] == pytest.approx(0.5 * np.mean(r ** 2), rel=1e-12)


def test_backend_switch():
    """The public ``backend=`` wiring (the kernels themselves: the registry's parity test)."""
    cfg = Teacher3Config(steps=3000, n_checkpoints=15, transition=0.3, seed=4)
    a, b = train_teacher3(cfg, "numba"), train_teacher3(cfg, "numpy")
    assert a.diverged_at is None and b.diverged_at is None
    for f in ("W1", "W2", "a", "train_loss", "test_loss"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-9, atol=1e-11)
    np.testing.assert_array_equal(a.rank, b.rank)
    np.testing.assert_array_equal(a.iters, np.round(np.linspace(0, 3000, 16)).astype(int))


def test_schedule_and_per_layer_sparsity_are_wired_as_documented():
    cfg = Teacher3Config(steps=2000, n_checkpoints=4, transition=0.3, lr=1e-3, warmup_factor=5.0,
                         decay_factor=2.0)
    r = train_teacher3(cfg)
    t = np.arange(2000)
    expect = np.where(t < 600, 1e-3 * (1 + 4 * t / 2000), 1e-3 * (1 + 4 * 600 / 2000) / 2)
    np.testing.assert_allclose(r.lr, expect, rtol=1e-14)
    np.testing.assert_array_equal(train_teacher3(replace(cfg, transition=None, lr_const=0.01)).lr,
                                  np.full(2000, 0.01))
    X = teacher_data(D, 2, 50, 10, 0)[0]
    r1 = np.maximum(X @ r.W1[-1].T, 0)
    r2 = np.maximum(r1 @ r.W2[-1].T, 0)
    assert r.sparsity[-1, 0] == feature_sparsity(r1) and r.sparsity[-1, 1] == feature_sparsity(r2)
    for u, v in zip(hidden_activations(X, r.W1[-1], r.W2[-1]), (r1, r2)):
        np.testing.assert_array_equal(u, v)
    assert r.rank[-1] == np.linalg.matrix_rank(jacobian3(X, r.W1[-1], r.W2[-1], r.a[-1]),
                                               tol=1e-4 * np.linalg.norm(jacobian3(X, r.W1[-1], r.W2[-1],
                                                                                  r.a[-1]), 2))


def test_divergence_is_detected_with_its_step():
    """η = 10 blows up on seed 0 (on other seeds a too-large step may instead switch off every ReLU: f ≡ 0)."""
    r = train_teacher3(Teacher3Config(steps=500, n_checkpoints=5, transition=None, lr_const=10.0,
                                      init_scale=1.0, seed=0))
    assert r.diverged_at is not None and 0 <= r.diverged_at < 500
    assert np.isnan(r.train_loss[-1])


def test_teacher3_payload_and_files(tmp_path):
    """The payload's content (the contract test covers the format): the constant run and one run per
    transition, their metrics and the fresh-point rank; teacher3.npz under --out; the (O1)–(O3) printout."""
    r = run_cli("toymodels.relu", ["teacher3", "--steps", "3000", "--checkpoints", "10", "--json", "--out", tmp_path])
    assert r.rc == 0, r.err
    out = r.json
    assert out["config"]["steps"] == 3000 and out["config"]["d"] == 5 and out["config"]["command"] == "teacher3"
    assert out["config"]["transitions"] == [None, 0.1, 0.3, 0.5]
    assert [q["decay_fraction"] for q in out["runs"]] == [None, 0.1, 0.3, 0.5]
    for q in out["runs"]:
        assert {"train_loss", "test_loss", "feature_sparsity", "rank_jacobian", "stabilization_loss",
                "rank_jacobian_fresh"} <= set(q)
        assert q["diverged_at"] is None and q["train_loss"] > 0 and q["test_loss"] > 0
        assert len(q["feature_sparsity"]) == 2 and all(0 <= v <= 1 for v in q["feature_sparsity"])
        assert 0 <= q["rank_jacobian"] <= 50 and 0 <= q["rank_jacobian_fresh"] <= 160
    assert {"result.json", "teacher3.npz"} <= set(os.listdir(tmp_path))
    text = run_cli("toymodels.relu", ["teacher3", "--steps", "1000", "--checkpoints", "5", "--transitions", "0.5"])
    assert text.rc == 0, text.err
    for tag in ("(O1)", "(O2)", "(O3)", "decay at 50%"):
        assert tag in text.out


def test_quick_figure_renders(tmp_path):
    import figures

    rec = figures.render(figures.registry()["6.5"], tmp_path, figures.Context(quick=True))
    assert all(os.path.exists(f) for f in rec["files"])
    assert [r["decay_fraction"] for r in rec["summary"]["runs"]] == [None, 0.1, 0.3, 0.5]


# ---- two-layer teacher-student in d = 2 (Fig. 6.10, 6.14) -------------------------------------------

def test_teacher2_jacobian_matches_finite_differences_and_autograd():
    torch = pytest.importorskip("torch")
    from toymodels.relu.teacher2 import init_student2, jacobian2, predict2, teacher2_data

    X, y, _, _, _ = teacher2_data(2, 3, 50, 10, 1)
    W, a = init_student2(2, 20, 2.0, 1)
    assert np.abs(X @ W.T).min() > 1e-4                    # away from kinks
    J = jacobian2(X, W, a)
    theta = np.concatenate([W.ravel(), a])
    h = 1e-6
    fd = np.empty_like(J)
    for k in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[k] += h
        tm[k] -= h
        fd[:, k] = (predict2(X, tp[:40].reshape(20, 2), tp[40:]) - predict2(X, tm[:40].reshape(20, 2), tm[40:])) / (2 * h)
    np.testing.assert_allclose(J, fd, atol=1e-7)
    Jt = torch.autograd.functional.jacobian(
        lambda t: torch.relu(torch.from_numpy(X) @ t[:40].reshape(20, 2).T) @ t[40:], torch.from_numpy(theta)).numpy()
    np.testing.assert_allclose(J, Jt, rtol=1e-12, atol=1e-13)


def test_teacher2_backend_switch():
    from toymodels.relu.teacher2 import Teacher2Config, train_teacher2

    cfg = Teacher2Config(steps=3000, n_checkpoints=10, transition=0.5, seed=3, lr=5e-4)
    a, b = train_teacher2(cfg, "numba"), train_teacher2(cfg, "numpy")
    assert a.diverged_at is None and b.diverged_at is None
    for f in ("W", "a", "train_loss", "test_loss", "sparsity"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-9, atol=1e-11)
    np.testing.assert_array_equal(a.rank, b.rank)


def test_teacher2_alignment_is_one_on_the_teacher_and_below_off_it():
    from toymodels.relu.teacher2 import alignment, teacher2_params

    W, a = teacher2_params(2, 3, 0)
    assert alignment(3.0 * W, a, W) == pytest.approx(1.0, abs=1e-12)
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])               # 90°: cos with each teacher direction < 1
    assert alignment(W @ rot.T, a, W) < 0.999


def test_teacher2_payload_and_divergence(tmp_path):
    r = run_cli("toymodels.relu", ["teacher2", "--steps", "2000", "--checkpoints", "10", "--lr", "5e-4", "--json",
                                   "--out", tmp_path])
    assert r.rc == 0, r.err
    out = r.json
    assert out["config"]["d"] == 2 and out["config"]["command"] == "teacher2"
    assert [q["decay_fraction"] for q in out["runs"]] == [None, 0.1, 0.3, 0.5]
    for q in out["runs"]:
        assert {"train_loss", "test_loss", "feature_sparsity", "rank_jacobian", "teacher_alignment"} <= set(q)
        assert 0 <= q["feature_sparsity"] <= 1 and 0 <= q["rank_jacobian"] <= 50
    assert {"result.json", "teacher2.npz"} <= set(os.listdir(tmp_path))
    # η = 0.5 (peak 25): the large-step runs blow up, reported with their step and a note, exit status 0
    d = run_cli("toymodels.relu", ["teacher2", "--steps", "2000", "--checkpoints", "10", "--lr", "0.5", "--json"])
    assert d.rc == 0
    runs = d.json["runs"]
    assert runs[0]["diverged_at"] is None and runs[-1]["diverged_at"] is not None
    assert runs[-1]["train_loss"] is None and runs[-1]["teacher_alignment"] is None
    assert "diverged at step" in d.err


@pytest.mark.parametrize("fid", ["6.10", "6.14"])
def test_teacher2_quick_figures_render(tmp_path, fid):
    import figures

    rec = figures.render(figures.registry()[fid], tmp_path, figures.Context(quick=True))
    assert all(os.path.exists(f) for f in rec["files"])
