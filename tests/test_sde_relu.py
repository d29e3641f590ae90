"""SDE model (6.58) on the ReLU teacher–student models (toymodels.sde.relu): the drift = −γ∇L by
central finite differences of the loss, the noise = √γ·scale·φᵀz with φᵀz = ∇_θ Σᵢ zᵢ f(xᵢ) by finite
differences, chunking/backends agree (the kernels' parity with their references is
tests/test_kernel_parity.py), the matching SGD run is the teacher module's run, and the payload of
``python -m toymodels.sde relu2|relu3`` (the CLI contract itself is tests/test_contract.py).
Deterministic (fixed seeds); no Monte-Carlo assertions."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers import fd_grad, run_cli

from toymodels.errors import ConfigError
from toymodels.relu._reference import teacher2 as _reference2
from toymodels.relu._reference import teacher3 as _reference3
from toymodels.relu.model import checkpoints
from toymodels.relu.streams import sgd_indices
from toymodels.relu.teacher2 import Teacher2Config, train_teacher2
from toymodels.relu.teacher3 import Teacher3Config, train_teacher3
from toymodels.rng import stream
from toymodels.sde.relu import (SDEReLUConfig, compare, jacobian, param_views, problem, resolve, run_sde_relu,
                                run_sgd_trace, teacher_config)

REF = {"relu2": _reference2, "relu3": _reference3}


def _small(model, n=12):
    tc = teacher_config(SDEReLUConfig(model=model, steps=100))
    tc = replace(tc, n=n, n_test=20, m=6 if model == "relu3" else 8)
    X, y, Xt, yt, th, shapes = problem(model, tc)
    return X, y, th, shapes


def _loss_ref(model, X, y, th, shapes):
    return REF[model].loss(X, y, *param_views(np.array(th), shapes))


def _predict_ref(model, X, th, shapes):
    out = np.empty(X.shape[0])
    REF[model].predict(X, *param_views(np.array(th), shapes), out)
    return out


@pytest.mark.parametrize("model", ["relu2", "relu3"])
def test_divergence_detected_at_same_step(model):
    X, y, th0, shapes = _small(model)
    S = 40
    gamma, scale = np.full(S, 0.01), np.zeros(S)
    scale[5] = 1e300                   # θ₆ overflows: L(θ₆) is not finite
    a = run_sde_relu(X, y, th0, shapes, gamma, scale, seed=0)
    b = run_sde_relu(X, y, th0, shapes, gamma, scale, seed=0, backend="numpy")
    assert a["diverged_at"] == b["diverged_at"] == 6


@pytest.mark.parametrize("model", ["relu2", "relu3"])
def test_one_step_drift_and_noise_vs_finite_differences(model):
    """θ₁ = θ₀ − γ∇L(θ₀) + √γ·scale·∇_θ Σᵢ zᵢ f_θ(xᵢ), both gradients by central differences of the
    numpy references (kinks are hit with probability 0 at a generic θ; h = 1e-6)."""
    X, y, th0, shapes = _small(model)
    n = X.shape[0]
    g, sc = 0.03, 0.4
    z = stream(1).standard_normal(n)
    grad_L = fd_grad(lambda t: _loss_ref(model, X, y, t, shapes), th0)
    jt_z = fd_grad(lambda t: float(z @ _predict_ref(model, X, t, shapes)), th0)
    res = run_sde_relu(X, y, th0, shapes, np.array([g]), np.array([sc]), seed=0)
    # run_sde_relu draws Z from the stream toymodels.rng.stream(seed): the same draw here
    Z0 = stream(0).standard_normal((1, n))[0]
    jt_z0 = fd_grad(lambda t: float(Z0 @ _predict_ref(model, X, t, shapes)), th0)
    np.testing.assert_allclose(res["theta"], th0 - g * grad_L + np.sqrt(g) * sc * jt_z0, rtol=1e-6, atol=1e-7)
    # and φᵀz from the analytic Jacobian (the term of 6.58) equals the finite-difference one
    np.testing.assert_allclose(jacobian(X, th0, shapes).T @ z, jt_z, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("model", ["relu2", "relu3"])
def test_run_independent_of_chunking_and_backend(model):
    X, y, th0, shapes = _small(model)
    S = 60
    gamma, scale = np.full(S, 0.01), np.full(S, 0.2)
    r1 = run_sde_relu(X, y, th0, shapes, gamma, scale, seed=5, at=[S], record_every=3)
    r2 = run_sde_relu(X, y, th0, shapes, gamma, scale, seed=5, at=[0, 7, 30, S], record_every=3)
    r3 = run_sde_relu(X, y, th0, shapes, gamma, scale, seed=5, at=[13, S], record_every=3, backend="numpy")
    np.testing.assert_array_equal(r1["theta"], r2["theta"])
    np.testing.assert_array_equal(r1["curve"], r2["curve"])
    np.testing.assert_allclose(r1["theta"], r3["theta"], rtol=1e-11)
    np.testing.assert_array_equal(r2["thetas"][0], th0)
    np.testing.assert_array_equal(r2["thetas"][-1], r1["theta"])
    assert r1["curve"][0] == pytest.approx(_loss_ref(model, X, y, th0, shapes), rel=1e-12)


@pytest.mark.parametrize("model,C,train", [("relu2", Teacher2Config, train_teacher2),
                                           ("relu3", Teacher3Config, train_teacher3)])
def test_sgd_trace_is_the_teacher_modules_run(model, C, train):
    tc = replace(C(steps=600, n_checkpoints=6, transition=0.5, n_test=50), seed=4, lr=5e-4)
    ref = train(tc)
    X, y, Xt, yt, th0, shapes = problem(model, tc)
    idx = sgd_indices(tc.seed, tc.n, tc.steps)
    at = checkpoints(tc.steps, tc.n_checkpoints)
    losses, thetas, div = run_sgd_trace(X, y, th0, shapes, tc.schedule(), idx, at, chunk=77)
    assert div is None and ref.diverged_at is None
    np.testing.assert_allclose(losses[at], ref.train_loss, rtol=1e-12)
    last = np.concatenate([v[-1].ravel() for v in ((ref.W, ref.a) if model == "relu2" else (ref.W1, ref.W2, ref.a))])
    np.testing.assert_array_equal(thetas[-1], last)
    # per-step losses are the full-batch loss of the numpy reference at θ_T
    assert losses[-1] == pytest.approx(_loss_ref(model, X, y, last, shapes), rel=1e-10)


def test_default_c_and_resolve():
    cfg = resolve(SDEReLUConfig(model="relu3"))
    assert cfg.c == pytest.approx(2 * 49 / 50**2)
    assert cfg.steps == Teacher3Config().steps and cfg.lr == Teacher3Config().lr
    with pytest.raises(ConfigError, match="^model must be one of"):
        resolve(SDEReLUConfig(model="relu4"))
    with pytest.raises(ConfigError, match="^steps must be <= 100000 at substeps = 1000"):
        resolve(SDEReLUConfig(steps=200_000, substeps=1000))


def test_compare_gf_has_no_noise_and_runs_share_init():
    out = compare(SDEReLUConfig(model="relu3", steps=300, n_checkpoints=3, c=0.0))
    # with c = 0 the SDE is the GF discretization
    for k in ("train_loss", "test_loss", "rank_jacobian"):
        assert out["sde"][k] == out["gf"][k]
    for k in ("train_loss", "rank_jacobian"):
        assert out["sgd"]["series"][k][0] == out["sde"]["series"][k][0] == out["gf"]["series"][k][0]
    assert out["config"]["n_params"] == 5 * 10 + 100 + 10


@pytest.mark.parametrize("model", ["relu2", "relu3"])
def test_cli_payload_and_files(model, tmp_path):
    r = run_cli("toymodels.sde", [model, "--steps", "300", "--checkpoints", "3", "--json", "--out", tmp_path])
    assert r.rc == 0, r.err
    out = r.json
    assert out["model"] == model and out["config"]["steps"] == 300 and out["config"]["n_checkpoints"] == 3
    for name in ("sgd", "sde", "gf"):
        assert {"train_loss", "test_loss", "rank_jacobian", "feature_sparsity", "diverged", "diverged_at"} <= set(out[name])
    z = np.load(tmp_path / f"sde_{model}.npz")
    assert z["sde_train_loss"].shape == (4,) and z["lr"].shape == (300,)


def test_cli_steps_times_substeps_bounded_before_work():
    r = run_cli("toymodels.sde", ["relu3", "--steps", "10000000", "--substeps", "20"])
    assert r.rc == 2 and len(r.err_lines) == 1 and "--steps must be <= 5000000 at substeps = 20" in r.err, r.err
