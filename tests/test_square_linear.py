"""The linear (softmax) target of the Square Attack: exact input gradient, monotone training, PGD
invariants, and the ``attack --model linear`` payload."""
import numpy as np
import pytest
from helpers import fd_grad, run_cli

from toymodels.square.linear_model import LinearClassifier, pgd_linf, train_softmax


def _toy(seed=0, n=60, K=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 2, 4, 4))
    y = rng.integers(0, K, n)
    return x, y, K


def test_input_grad_matches_finite_differences():
    x, y, K = _toy()
    rng = np.random.default_rng(1)
    m = LinearClassifier(rng.standard_normal((K, 32)), rng.standard_normal(K))
    g = m.input_grad(x[:3], y[:3])
    for i in range(3):
        fd = fd_grad(lambda v: m.loss(v, y[i:i + 1]), x[i:i + 1])
        np.testing.assert_allclose(g[i:i + 1], fd, rtol=1e-6, atol=1e-9)


def test_training_decreases_the_loss_monotonically():
    x, y, K = _toy()
    losses = [train_softmax(x, y, K, steps=s).loss(x, y) for s in (0, 1, 5, 20, 80)]
    assert losses[0] == pytest.approx(np.log(K), rel=1e-12)         # W = 0: uniform prediction
    assert all(a > b for a, b in zip(losses, losses[1:]))


def test_pgd_invariants_and_it_increases_the_loss():
    x, y, K = _toy(2)
    m = train_softmax(x, y, K, steps=50)
    eps = 0.05
    d = pgd_linf(m, x, y, eps, eps / 4, 10, seed=3)
    assert np.abs(d).max() <= eps + 1e-12
    assert (x + d).min() >= 0 and (x + d).max() <= 1
    assert m.loss(x + d, y) > m.loss(x, y)


def test_cli_linear_target():
    out = run_cli("toymodels.square", ["attack", "--model", "linear", "--n-points", "20", "--queries", "50",
                                       "--n-train", "300", "--epochs", "1", "--pgd-steps", "5", "--json"]).json
    assert out["config"]["model"] == "linear" and out["config"]["linear_gd_steps"] == 100
    assert out["max_perturbation_norm"] <= out["config"]["eps"] + 1e-12
    assert 0 <= out["pgd_robust_acc"] <= 1 and 0 <= out["failure_rate"] <= 1
