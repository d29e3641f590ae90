"""Adaptive sharpness of linear/logistic classifiers and the two-layer ReLU net
(toymodels.sharpness.linear / .relu / .batches, the numba kernels and their numpy references).

Oracles: the plain-numpy references, finite differences of the loss / analytic gradient, closed-form
Hessians checked by finite differences, the Gauss–Newton matrix built from toymodels.relu.model's
own Jacobian kernel, exact invariances, and the Taylor limits of Prop. 7.8.1/7.8.2. Monte-Carlo
tests use N = 4000 draws and a 5 s.e. tolerance; they pass for every seed 0–99 (verified once by
looping the seeds outside the suite).
"""
from __future__ import annotations

import numpy as np
import pytest
from helpers import fd_grad
from hypothesis import given, settings, strategies as st

from toymodels.errors import ConfigError
from toymodels.relu.model import predict
from toymodels.sharpness.batches import batch_partition, m_sharpness
from toymodels.sharpness.linear import (check_linear, gaussian_mixture, linear_grad, linear_hessian,
                                        linear_loss, measure_linear)
from toymodels.sharpness.measures import avg_sharpness, max_sharpness
from toymodels.sharpness.relu import (relu_gauss_newton, relu_grad, relu_loss, relu_rescale)

MC_N = 4000
SEED = 0  # any seed in 0..99 passes


CASES = [(1, False), (2, False), (3, False), (3, True), (4, True)]


@pytest.mark.parametrize("K,norm", CASES)
def test_linear_kernel_matches_reference_and_gradient_matches_fd(K, norm):
    X, y = gaussian_mixture(15, 4, K=K, seed=3)
    rng = np.random.default_rng(4)
    w = rng.standard_normal(K * 4)
    W = w + 0.3 * rng.standard_normal((9, K * 4))
    np.testing.assert_allclose(linear_loss(W, X, y, K, norm, "numba"), linear_loss(W, X, y, K, norm, "numpy"),
                               rtol=1e-12, atol=1e-14)
    g_fd = fd_grad(lambda v: linear_loss(v, X, y, K, norm)[0], w)
    np.testing.assert_allclose(linear_grad(w, X, y, K, norm), g_fd, rtol=1e-6, atol=1e-8)


def test_linear_loss_independent_formula():
    # K = 2 softmax on logits (z0, z1) equals binary logistic on the margin z1 − z0
    X, y01 = gaussian_mixture(12, 3, K=2, seed=5)
    W = np.random.default_rng(6).standard_normal(6)
    z = W.reshape(2, 3) @ X.T
    sgn = np.where(y01 == 1, 1.0, -1.0)
    expect = np.mean(np.log1p(np.exp(-sgn * (z[1] - z[0]))))
    assert linear_loss(W, X, y01, 2)[0] == pytest.approx(expect, rel=1e-12)


@pytest.mark.parametrize("K", [1, 3])
def test_linear_hessian_closed_form_matches_fd_of_gradient(K):
    X, y = gaussian_mixture(10, 3, K=K, seed=7)
    w = np.random.default_rng(8).standard_normal(K * 3)
    H_fd = np.array([(linear_grad(w + 1e-5 * e, X, y, K) - linear_grad(w - 1e-5 * e, X, y, K)) / 2e-5
                     for e in np.eye(K * 3)])
    np.testing.assert_allclose(linear_hessian(w, X, y, K), H_fd, rtol=1e-6, atol=1e-9)


def test_relu_kernel_reference_predict_and_gradient():
    rng = np.random.default_rng(9)
    x, y = rng.uniform(-1.5, 1.5, 11), rng.standard_normal(11)
    th = rng.standard_normal(18)
    T = th + 0.2 * rng.standard_normal((6, 18))
    np.testing.assert_allclose(relu_loss(T, x, y), relu_loss(T, x, y, "numpy"), rtol=1e-12)
    f = predict(x, th[:6], th[6:12], th[12:])            # toymodels.relu's own kernel
    assert relu_loss(th, x, y)[0] == pytest.approx(0.5 * np.mean((f - y) ** 2), rel=1e-12)
    np.testing.assert_allclose(relu_grad(th, x, y), fd_grad(lambda t: relu_loss(t, x, y)[0], th),
                               rtol=1e-6, atol=1e-8)


def _relu_interp(seed=25, m=5, n=12):
    """A ReLU net and data it interpolates (y = f_θ(x)), no point within 0.06 of a kink."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.5, 1.5, n) + 0.01
    th = np.r_[rng.choice([-1, 1], m) * rng.uniform(0.5, 1.5, m), rng.uniform(-1, 1, m),
               rng.standard_normal(m)]
    assert np.min(np.abs(np.outer(x, th[:m]) + th[m:2 * m])) > 0.06
    return th, x, predict(x, th[:m], th[m:2 * m], th[2 * m:])


def test_relu_hessian_at_interpolation_is_gauss_newton():
    th, x, y = _relu_interp()
    H_fd = np.array([(relu_grad(th + 1e-6 * e, x, y) - relu_grad(th - 1e-6 * e, x, y)) / 2e-6
                     for e in np.eye(th.size)])
    np.testing.assert_allclose(H_fd, relu_gauss_newton(th, x), rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ local limits (Prop. 7.8.1 / 7.8.2)

def _logistic_minimum(K=1, n=40, d=3, seed=12):
    """Non-separable data (label noise) and its exact minimizer (Newton): a finite minimum."""
    X, y = gaussian_mixture(n, d, K=K, sep=0.5, seed=seed)
    w = np.zeros(K * d)
    for _ in range(60):
        H = linear_hessian(w, X, y, K) + (1e-12 * np.eye(K * d) if K > 1 else 0)
        w = w - np.linalg.lstsq(H, linear_grad(w, X, y, K), rcond=None)[0]
    assert np.linalg.norm(linear_grad(w, X, y, K)) < 1e-12
    return w, X, y


def _models():
    w, X, y = _logistic_minimum(1)
    yield "logistic", w, (lambda W: linear_loss(W, X, y, 1)), (lambda v: linear_grad(v, X, y, 1)), \
        linear_hessian(w, X, y, 1)
    th, x, yr = _relu_interp()
    yield "relu", th, (lambda T: relu_loss(T, x, yr)), (lambda t: relu_grad(t, x, yr)), relu_gauss_newton(th, x)


@pytest.mark.parametrize("name", ["logistic", "relu"])
def test_avg_sharpness_tends_to_half_rho2_trace_of_rescaled_hessian(name):
    _, w, loss, _, H = next(m for m in _models() if m[0] == name)
    c = np.abs(w)
    tr = np.trace(H * np.outer(c, c))
    for rho in ((1e-3, 1e-2) if name == "logistic" else (1e-3, 3e-3)):  # relu: stay off the kinks
        est, se = avg_sharpness(loss, w, c, rho, n_samples=MC_N, seed=SEED)
        # odd Taylor terms vanish in expectation; the O(ρ⁴) bias is < 1e-3 relative here
        assert abs(est - rho ** 2 / 2 * tr) <= 5 * se + 1e-3 * rho ** 2 / 2 * tr, (rho, est, se)


@pytest.mark.parametrize("name", ["logistic", "relu"])
def test_max_sharpness_at_minimum_tends_to_half_rho2_lambda_max(name):
    _, w, loss, grad, H = next(m for m in _models() if m[0] == name)
    c = np.abs(w)
    lam = np.linalg.eigvalsh(H * np.outer(c, c))[-1]
    rho = 1e-3
    val = max_sharpness(loss, grad, w, c, rho, p="2", n_iter=100, n_restarts=3, seed=SEED).value
    assert 0.97 <= val / (rho ** 2 / 2 * lam) <= 1.0 + 1e-2


@pytest.mark.parametrize("p,q", [("2", 2), ("inf", 1)])
def test_max_sharpness_away_from_minimum_is_first_order(p, q):
    X, y = gaussian_mixture(20, 4, K=3, seed=13)
    w = np.random.default_rng(14).standard_normal(12)
    c = np.abs(w)
    g = linear_grad(w, X, y, 3)
    rho = 1e-5
    val = max_sharpness(lambda W: linear_loss(W, X, y, 3), lambda v: linear_grad(v, X, y, 3), w, c,
                        rho, p=p, n_iter=30, seed=SEED).value
    assert val / (rho * np.linalg.norm(g * c, ord=q)) == pytest.approx(1.0, abs=1e-3)


def test_avg_sharpness_first_order_term_cancels_away_from_minimum():
    X, y = gaussian_mixture(20, 4, K=3, seed=13)
    w = np.random.default_rng(14).standard_normal(12)
    c, rho = np.abs(w), 1e-3
    tr = np.trace(linear_hessian(w, X, y, 3) * np.outer(c, c))
    est, se = avg_sharpness(lambda W: linear_loss(W, X, y, 3), w, c, rho, n_samples=MC_N, seed=SEED)
    # the first-order MC noise is large (ρ‖∇L⊙c‖ per draw) but has mean 0
    assert abs(est - rho ** 2 / 2 * tr) <= 5 * se + 1e-3 * rho ** 2 / 2 * tr


# ------------------------------------------------------------------ invariances

@settings(max_examples=25, deadline=None)
@given(alpha=st.floats(0.05, 30.0), seed=st.integers(0, 1000))
def test_logit_normalized_adaptive_sharpness_is_scale_invariant(alpha, seed):
    X, y = gaussian_mixture(12, 4, K=3, seed=seed)
    w = np.random.default_rng(seed).standard_normal(12)
    f = lambda W: linear_loss(W, X, y, 3, True)  # noqa: E731
    a0 = avg_sharpness(f, w, np.abs(w), 0.1, n_samples=200, seed=seed)[0]
    a1 = avg_sharpness(f, alpha * w, np.abs(alpha * w), 0.1, n_samples=200, seed=seed)[0]
    assert a1 == pytest.approx(a0, rel=1e-7, abs=1e-12)
    # without normalization the adaptive sharpness changes with the scale (Fig. 7.1)
    g = lambda W: linear_loss(W, X, y, 3)  # noqa: E731
    b0 = avg_sharpness(g, w, np.abs(w), 0.1, n_samples=200, seed=seed)[0]
    b1 = avg_sharpness(g, alpha * w, np.abs(alpha * w), 0.1, n_samples=200, seed=seed)[0]
    if abs(np.log(alpha)) > 0.5:
        assert abs(b1 - b0) > 1e-6 * max(abs(b0), abs(b1))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), log_alpha=st.lists(st.floats(-2.0, 2.0), min_size=5, max_size=5))
def test_relu_adaptive_sharpness_invariant_under_unit_rescaling(seed, log_alpha):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1.5, 1.5, 10), rng.standard_normal(10)
    th = rng.standard_normal(15)
    th2 = relu_rescale(th, np.exp(log_alpha))
    np.testing.assert_allclose(predict(x, th2[:5], th2[5:10], th2[10:]), predict(x, th[:5], th[5:10], th[10:]),
                               rtol=1e-10, atol=1e-12)
    f = lambda T: relu_loss(T, x, y)  # noqa: E731
    g = lambda t: relu_grad(t, x, y)  # noqa: E731
    a0 = avg_sharpness(f, th, np.abs(th), 0.1, n_samples=200, seed=seed)[0]
    a1 = avg_sharpness(f, th2, np.abs(th2), 0.1, n_samples=200, seed=seed)[0]
    assert a1 == pytest.approx(a0, rel=1e-7, abs=1e-12)
    m0 = max_sharpness(f, g, th, np.abs(th), 0.1, n_iter=20, seed=seed).value
    m1 = max_sharpness(f, g, th2, np.abs(th2), 0.1, n_iter=20, seed=seed).value
    assert m1 == pytest.approx(m0, rel=1e-6, abs=1e-12)


# ------------------------------------------------------------------ m-sharpness

def test_batch_partition_covers_disjoint_batches():
    parts = batch_partition(23, 5, seed=3)
    assert len(parts) == 4 and all(len(p) == 5 for p in parts)
    allidx = np.concatenate(parts)
    assert len(set(allidx.tolist())) == 20 and allidx.max() < 23
    assert [p.tolist() for p in batch_partition(7, 7)] == [list(range(7))]


def test_m_sharpness_is_mean_of_per_batch_values():
    X, y = gaussian_mixture(12, 3, K=1, seed=15)
    w = np.random.default_rng(16).standard_normal(3)

    def make(idx):
        Xb, yb = X[idx], y[idx]
        return (lambda W: linear_loss(W, Xb, yb, 1)), (lambda v: linear_grad(v, Xb, yb, 1))

    val, se, per = m_sharpness(make, w, np.abs(w), 12, 0.1, m=3, kind="max", n_iter=20, seed=SEED)
    assert len(per) == 4 and val == pytest.approx(per.mean())
    # each per-batch worst case is a feasible ascent: ≥ 0 and ≤ the first-order bound + curvature bound
    assert np.all(per >= 0)
    # m = 1 worst case on a linear logistic model: closed form ℓ(m_i − ρ‖c⊙x_i‖) − ℓ(m_i) per point
    val1, _, per1 = m_sharpness(make, w, np.abs(w), 12, 0.1, m=1, kind="max", n_iter=40, n_restarts=2,
                                seed=SEED)
    mrg = y * (X @ w)
    closed = np.logaddexp(0, -(mrg - 0.1 * np.linalg.norm(np.abs(w) * X, axis=1))) - np.logaddexp(0, -mrg)
    assert val1 == pytest.approx(closed.mean(), rel=1e-6)


def test_measure_linear_keys_and_validation():
    X, y = gaussian_mixture(10, 4, K=1, seed=17)
    w = np.random.default_rng(18).standard_normal(4)
    out = measure_linear(w, X, y, 1, rho=0.05, m=5, n_samples=100, n_iter=10, n_restarts=1)
    for k in ("avg_standard", "avg_standard_se", "max_standard", "avg_adaptive", "max_adaptive",
              "loss", "train_error", "n_batches"):
        assert k in out
    assert out["n_batches"] == 2
    with pytest.raises(ConfigError, match="rho"):
        measure_linear(w, X, y, 1, rho=0.0)
    with pytest.raises(ConfigError, match="m"):
        measure_linear(w, X, y, 1, m=0)
    with pytest.raises(ConfigError, match="K >= 2"):
        check_linear(X, y, 1, normalize=True)
    with pytest.raises(ConfigError, match="labels"):
        check_linear(X, np.zeros(10), 1)
