"""SDE model (6.58) on the ReLU teacher–student models (toymodels.sde.relu): numba kernels = numpy
references, the drift = −γ∇L by central finite differences of the loss, the noise = √γ·scale·φᵀz with
φᵀz = ∇_θ Σᵢ zᵢ f(xᵢ) by finite differences, chunking/backends agree, the matching SGD run is the
teacher module's run, and the ``python -m toymodels.sde relu2|relu3`` contract.
Deterministic (fixed seeds); no Monte-Carlo assertions."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from toymodels._cli import run_main
from toymodels.relu import _reference2, _reference3
from toymodels.relu.model import checkpoints
from toymodels.relu.teacher2 import Teacher2Config, train_teacher2
from toymodels.relu.teacher3 import Teacher3Config, train_teacher3
from toymodels.sde import __main__ as cli
from toymodels.sde import _kernels
from toymodels.sde._reference import em_relu_reference
from toymodels.sde.relu import (SDEReLUConfig, compare, jacobian, param_views, problem, resolve, run_sde_relu,
                                run_sgd_trace, teacher_config)

REF = {"relu2": _reference2, "relu3": _reference3}


def _small(model, n=12):
    tc = teacher_config(SDEReLUConfig(model=model, steps=100))
    tc = replace(tc, n=n, n_test=20, m=6 if model == "relu3" else 8)
    X, y, Xt, yt, th, shapes = problem(model, tc)
    return X, y, th, shapes


def _loss_ref(model, X, y, th, shapes):
    return REF[model].loss_reference(X, y, *param_views(np.array(th), shapes))


def _predict_ref(model, X, th, shapes):
    out = np.empty(X.shape[0])
    REF[model].predict_reference(X, *param_views(np.array(th), shapes), out)
    return out


@pytest.mark.parametrize("model", ["relu2", "relu3"])
@pytest.mark.parametrize("noisy", [True, False])
def test_kernel_matches_reference(model, noisy):
    X, y, th0, shapes = _small(model)
    S, n = 40, X.shape[0]
    gamma = np.full(S, 0.01)
    scale = np.linspace(0.05, 0.2, S) if noisy else np.zeros(S)
    Z = np.random.default_rng(3).standard_normal((S, n))
    outs = []
    for fn in ("numba", "numpy"):
        th = th0.copy()
        ps = param_views(th, shapes)
        rec = np.full(S // 4 + 1, np.nan)
        if fn == "numba":
            kern = _kernels._em_relu2 if model == "relu2" else _kernels._em_relu3
            st = kern(X, y, th, *ps, gamma, scale, Z, 0, S, np.empty((n, th.size)), np.empty(n), np.empty(n), 4, rec)
        else:
            R = REF[model]
            st = em_relu_reference(R.jacobian_reference, R.predict_reference, X, y, ps, th, gamma, scale, Z, 0, S, 4, rec)
        outs.append((st, th, rec))
    assert outs[0][0] == outs[1][0] == -1
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(outs[0][2], outs[1][2], rtol=1e-11, atol=1e-13)
    assert not np.allclose(outs[0][1], th0)


@pytest.mark.parametrize("model", ["relu2", "relu3"])
def test_divergence_detected_at_same_step(model):
    X, y, th0, shapes = _small(model)
    S = 40
    gamma, scale = np.full(S, 0.01), np.zeros(S)
    scale[5] = 1e300                   # θ₆ overflows: L(θ₆) is not finite
    a = run_sde_relu(X, y, th0, shapes, gamma, scale, seed=0)
    b = run_sde_relu(X, y, th0, shapes, gamma, scale, seed=0, backend="numpy")
    assert a["diverged_at"] == b["diverged_at"] == 6


def _fd_grad(fun, th, h=1e-6):
    g = np.empty_like(th)
    for q in range(th.size):
        e = np.zeros_like(th)
        e[q] = h
        g[q] = (fun(th + e) - fun(th - e)) / (2 * h)
    return g


@pytest.mark.parametrize("model", ["relu2", "relu3"])
def test_one_step_drift_and_noise_vs_finite_differences(model):
    """θ₁ = θ₀ − γ∇L(θ₀) + √γ·scale·∇_θ Σᵢ zᵢ f_θ(xᵢ), both gradients by central differences of the
    numpy references (kinks are hit with probability 0 at a generic θ; h = 1e-6)."""
    X, y, th0, shapes = _small(model)
    n = X.shape[0]
    g, sc = 0.03, 0.4
    z = np.random.default_rng(1).standard_normal(n)
    grad_L = _fd_grad(lambda t: _loss_ref(model, X, y, t, shapes), th0)
    jt_z = _fd_grad(lambda t: float(z @ _predict_ref(model, X, t, shapes)), th0)
    res = run_sde_relu(X, y, th0, shapes, np.array([g]), np.array([sc]), seed=0)
    # run_sde_relu draws Z from default_rng(seed): the same draw here
    Z0 = np.random.default_rng(0).standard_normal((1, n))[0]
    jt_z0 = _fd_grad(lambda t: float(Z0 @ _predict_ref(model, X, t, shapes)), th0)
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
    idx = np.random.default_rng([tc.seed, 1]).integers(0, tc.n, size=tc.steps)
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
    with pytest.raises(Exception, match="model"):
        resolve(SDEReLUConfig(model="relu4"))


def test_compare_gf_has_no_noise_and_runs_share_init():
    out = compare(SDEReLUConfig(model="relu3", steps=300, n_checkpoints=3, c=0.0))
    # with c = 0 the SDE is the GF discretization
    for k in ("train_loss", "test_loss", "rank_jacobian"):
        assert out["sde"][k] == out["gf"][k]
    for k in ("train_loss", "rank_jacobian"):
        assert out["sgd"]["series"][k][0] == out["sde"]["series"][k][0] == out["gf"]["series"][k][0]
    assert out["config"]["n_params"] == 5 * 10 + 100 + 10


@pytest.mark.parametrize("model", ["relu2", "relu3"])
def test_cli_json_contract(model, tmp_path, capsys):
    argv = [model, "--steps", "300", "--checkpoints", "3", "--json", "--out", str(tmp_path)]
    if model == "relu3":               # once as a user runs it
        p = subprocess.run([sys.executable, "-m", "toymodels.sde", *argv], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        assert p.stderr == ""
        stdout = p.stdout
    else:
        assert run_main(cli.main, argv, prog=cli.PROG) == 0
        stdout = capsys.readouterr().out
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["model"] == model and out["version"] and out["config"]["steps"] == 300
    for name in ("sgd", "sde", "gf"):
        assert {"train_loss", "test_loss", "rank_jacobian", "feature_sparsity"} <= set(out[name])
    assert json.loads((tmp_path / f"sde_{model}.json").read_text())["gf"] == out["gf"]
    z = np.load(tmp_path / f"sde_{model}.npz")
    assert z["sde_train_loss"].shape == (4,)


@pytest.mark.parametrize("args,param", [(["--transition", "1.5"], "--transition"),
                                        (["--steps", "0"], "--steps"), (["--lr", "-1"], "--lr"),
                                        (["--c", "-0.1"], "--c"), (["--checkpoints", "0"], "--checkpoints")])
def test_cli_bad_input_exit_2(args, param, capsys):
    assert run_main(cli.main, ["relu3", *args], prog=cli.PROG) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and param in err[0]
