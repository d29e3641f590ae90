"""The SDE (6.58) on the DLN u⊙v: the public ``backend=`` and chunking wiring of ``run_sde_dln``, the
generic Euler–Maruyama scheme, the Jacobian/rank helpers and the drift and noise of one EM step (the
kernels' parity with their references is tests/test_kernel_parity.py).

Gradients and Jacobians are checked against central finite differences (:func:`helpers.fd_grad`), and
once against torch autograd when torch is installed.

Monte-Carlo test (one EM step's mean and second moment): N = 20 000 draws, 5 s.e., fixed seed 0; it
passes for every seed 0–99 (verified once outside the suite via ``_one_step_mc(seed)``; the draws are
the stream ``toymodels.rng.stream(seed)`` = ``default_rng(seed)``, unchanged by the migration).
"""
from __future__ import annotations

import numpy as np
import pytest
from helpers import fd_grad

from toymodels.errors import ConfigError
from toymodels.rng import stream
from toymodels.sde import _kernels
from toymodels.sde._reference import euler_maruyama
from toymodels.sde.dln import jacobian_uv, l0, rank_jacobian, run_sde_dln
from toymodels.sde.em import gbm_em_terminal

RNG = stream(2024)
n, d = 7, 5
X = RNG.standard_normal((n, d))
y = RNG.standard_normal(n)
U0, V0 = RNG.normal(0.5, 0.3, d), RNG.normal(0.2, 0.3, d)


def _loss(w):
    r = X @ (w[:d] * w[d:]) - y
    return 0.25 * float(r @ r) / n


def _grad(u, v):
    """∇L = (v⊙g, u⊙g), g = Xᵀr/(2n) (the closed form; checked against finite differences below)."""
    g = X.T @ (X @ (u * v) - y) / (2 * n)
    return np.concatenate([v * g, u * g])


def test_run_sde_dln_independent_of_chunking_and_backend():
    S = 90
    gamma, scale = np.full(S, 0.01), np.full(S, 0.2)
    r1 = run_sde_dln(X, y, U0, V0, gamma, scale, seed=5, chunk=1000)
    r2 = run_sde_dln(X, y, U0, V0, gamma, scale, seed=5, chunk=7)
    r3 = run_sde_dln(X, y, U0, V0, gamma, scale, seed=5, chunk=1000, backend="numpy")
    np.testing.assert_array_equal(r1["u"], r2["u"])
    np.testing.assert_allclose(r1["u"], r3["u"], rtol=1e-12)
    np.testing.assert_allclose(r1["curve"][-1], r3["curve"][-1], rtol=1e-12)
    with pytest.raises(ConfigError, match="^backend must be one of"):
        run_sde_dln(X, y, U0, V0, gamma, scale, seed=5, backend="nunba")


def test_run_sde_dln_reports_divergence_on_both_backends():
    S = 200
    gamma, scale = np.full(S, 3.0), np.zeros(S)
    a = run_sde_dln(X, y, U0, V0, gamma, scale, seed=0)
    b = run_sde_dln(X, y, U0, V0, gamma, scale, seed=0, backend="numpy")
    assert a["diverged_at"] is not None and a["diverged_at"] == b["diverged_at"]


def test_gbm_terminal_matches_generic_em():
    M, N = 50, 16
    dW = stream(1).standard_normal((M, N)) * np.sqrt(1.0 / N)
    levels = np.array([4, 2, 1])
    a = gbm_em_terminal(dW, levels, 0.7, 0.4)
    np.testing.assert_allclose(a, gbm_em_terminal(dW, levels, 0.7, 0.4, backend="numpy"), rtol=1e-13)
    # generic callable EM on the finest level, all paths at once
    c = euler_maruyama(lambda x, t: 0.7 * x, lambda x, t, db: 0.4 * x * db, np.ones(M), 1.0 / N, dW.T)
    np.testing.assert_allclose(a[2], c, rtol=1e-13)
    with pytest.raises(ConfigError, match="^levels must be integers >= 1 that divide"):
        gbm_em_terminal(dW, [3], 0.7, 0.4)


def test_gradient_and_jacobian_vs_finite_differences():
    w0 = np.concatenate([U0, V0])
    np.testing.assert_allclose(_grad(U0, V0), fd_grad(_loss, w0), rtol=1e-7, atol=1e-10)
    J = np.array([fd_grad(lambda w, i=i: float(X[i] @ (w[:d] * w[d:])), w0) for i in range(n)])
    np.testing.assert_allclose(jacobian_uv(X, U0, V0), J, rtol=1e-7, atol=1e-10)


def test_gradient_and_jacobian_vs_torch_autograd():
    torch = pytest.importorskip("torch")
    ut = torch.tensor(U0, requires_grad=True)
    vt = torch.tensor(V0, requires_grad=True)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    L = 0.25 * torch.mean((Xt @ (ut * vt) - yt) ** 2)
    gu, gv = torch.autograd.grad(L, (ut, vt))
    np.testing.assert_allclose(_grad(U0, V0), np.concatenate([gu.numpy(), gv.numpy()]), rtol=1e-13)
    J = torch.autograd.functional.jacobian(lambda w: Xt @ (w[:d] * w[d:]), torch.tensor(np.concatenate([U0, V0])))
    np.testing.assert_allclose(jacobian_uv(X, U0, V0), J.numpy(), rtol=1e-13)


def test_rank_and_l0_helpers():
    u = np.array([1.0, 0.0, 2.0, 0.0, 0.0])
    v = np.array([0.0, 0.0, 3.0, 1e-9, 0.0])
    Xf = stream(3).standard_normal((10, 5))
    # φ's nonzero columns: 3x₂ and 1e-9·x₃ (v block), 1·x₀ and 2x₂ (u block); 3x₂ ∥ 2x₂, so the rank
    # is 2 above the 1e-9 column and 3 when the threshold is below it
    assert rank_jacobian(jacobian_uv(Xf, u, v), 1e-3) == 2
    assert rank_jacobian(jacobian_uv(Xf, u, v), 1e-12) == 3
    assert l0(u * v, 1e-3) == 1


def _one_step_mc(seed, N=20_000):
    """One EM step from θ₀: E Δθ = −γ∇L, E‖Δθ + γ∇L‖² = γ·scale²·‖φ‖_F² (∇L, φ in closed form)."""
    gamma, scale = 0.01, 0.7
    grad, J = _grad(U0, V0), jacobian_uv(X, U0, V0)
    Z = stream(seed).standard_normal((N, n))
    th0 = np.concatenate([U0, V0])
    steps = np.empty((N, 2 * d))
    for k in range(N):
        u, v = U0.copy(), V0.copy()
        _kernels.em_dln(X, y, u, v, np.array([gamma]), np.array([scale]), Z[k:k + 1], 0, 1, 10, np.empty(1))
        steps[k] = np.concatenate([u, v]) - th0
    noise = steps + gamma * grad
    sd = np.sqrt(gamma) * scale * np.linalg.norm(J, axis=0)          # closed-form sd per coordinate
    ok_mean = np.all(np.abs(noise.mean(0)) <= 5 * sd / np.sqrt(N))
    sq = (noise**2).sum(1)
    cf = gamma * scale**2 * np.sum(J**2)
    ok_sq = abs(sq.mean() - cf) <= 5 * sq.std(ddof=1) / np.sqrt(N)
    return bool(ok_mean), bool(ok_sq), (sq.mean(), cf)


def test_one_em_step_has_the_drift_and_noise_of_eq_6_58():
    ok_mean, ok_sq, detail = _one_step_mc(0)
    assert ok_mean and ok_sq, detail
