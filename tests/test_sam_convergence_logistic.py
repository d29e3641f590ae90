"""Logistic regression in toymodels.sam_convergence: constants (β, β_ind, μ, σ², L_*) against independent
computations, the stochastic SAM iteration against the problem's own gradients, and every logistic row of the
SAM-convergence table with ratio ≤ 1.

The Monte-Carlo rows use R = 100 runs (run r: random stream (SEED, "run", r)); the test passes for every SEED
in 0–99 (verified once by looping SAM_CONVERGENCE_SEED = 0..99 outside the suite, after the switch to named
streams). Kernel = numpy reference: tests/test_kernel_parity.py (registry).
"""
from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest
from helpers import fd_hessian

from toymodels.errors import ConfigError
from toymodels.sam_convergence import bounds as Bd
from toymodels.sam_convergence.problems import Logistic, logistic, logistic_sigma2_sup
from toymodels.sam_convergence.run import draw_batches, sam_stochastic, sam_stochastic_reference
from toymodels.sam_convergence.table import build_rows, logistic_rows

SEED = int(os.environ.get("SAM_CONVERGENCE_SEED", "0"))   # any value in 0–99 must pass


def _loss(X, y, lam, w):
    """Written out independently of problems.py: mean log(1 + e^{−y xᵀw}) + λ/2 ‖w‖²."""
    def sp(m):                                          # log(1 + e^{−m}) without overflow
        return math.log1p(math.exp(-m)) if m >= 0 else -m + math.log1p(math.exp(m))
    return float(np.mean([sp(yi * (xi @ w)) for xi, yi in zip(X, y)]) + lam / 2 * w @ w)


@pytest.mark.parametrize("lam", [0.1, 0.0])
def test_logistic_smoothness_and_strong_convexity_by_finite_differences(lam):
    p = logistic(lam=lam)
    f = lambda w: _loss(p.X, p.y, lam, w)
    # β = λ_max(∇²L) is attained at w = 0 (every p(1−p) = 1/4) and nowhere exceeded
    assert abs(np.linalg.eigvalsh(fd_hessian(f, np.zeros(p.d)))[-1] - p.beta) < 1e-6
    assert math.isclose(p.beta, np.linalg.eigvalsh(p.X.T @ p.X)[-1] / (4 * p.n) + lam)
    rng = np.random.default_rng(2)
    for _ in range(20):
        w = rng.standard_normal(p.d) * rng.choice([0.3, 1, 3])
        ev = np.linalg.eigvalsh(fd_hessian(f, w))
        assert ev[-1] <= p.beta + 1e-6 and ev[0] >= p.mu - 1e-6
    # individual smoothness: the largest per-example Hessian norm, at w = 0
    hi = max(np.linalg.eigvalsh(fd_hessian(lambda w, i=i: _loss(p.X[i:i + 1], p.y[i:i + 1], lam, w), np.zeros(p.d)))[-1]
             for i in range(p.n))
    assert abs(hi - p.beta_ind) < 1e-6 and p.beta_ind >= p.beta
    # gradient and minimizer
    w = rng.standard_normal(p.d)
    fd = np.array([(f(w + e) - f(w - e)) / 2e-6 for e in np.eye(p.d) * 1e-6])
    assert np.allclose(p.grad(w), fd, atol=1e-8) and math.isclose(p.loss(w), f(w), rel_tol=1e-12)
    ws = p.w_star()
    fd = np.array([(f(ws + e) - f(ws - e)) / 2e-6 for e in np.eye(p.d) * 1e-6])
    assert np.max(np.abs(fd)) < 1e-8 and math.isclose(p.L_star, f(ws), rel_tol=1e-12)
    assert all(f(ws + 0.1 * rng.standard_normal(p.d)) >= p.L_star for _ in range(50))


def test_logistic_sigma2_brute_force_and_bounds_every_w():
    """σ² = sup over the box of the per-example gradient variance: recomputed by plain enumeration of the
    2ⁿ label-weight vertices (np.var-style, independent of logistic_sigma2_sup) on an n = 10 instance; the
    exact finite-sum variance at any w (from per-example gradients by finite differences) never exceeds it."""
    p = logistic(n=10, d=2, seed=3)
    V = p.X * p.y[:, None]
    best = 0.0
    for s in itertools.product((0.0, 1.0), repeat=p.n):
        D = np.array(s)[:, None] * V
        best = max(best, float(np.mean(np.sum((D - D.mean(0)) ** 2, 1))))
    assert math.isclose(best, p.sigma2, rel_tol=1e-12)
    assert math.isclose(logistic_sigma2_sup(V)[0], best, rel_tol=1e-12)
    rng = np.random.default_rng(5)
    for scale in (0.1, 1.0, 10.0, 100.0):
        for _ in range(50):
            w = scale * rng.standard_normal(p.d)
            G = np.array([[(_loss(p.X[i:i + 1], p.y[i:i + 1], p.lam, w + e) - _loss(p.X[i:i + 1], p.y[i:i + 1], p.lam, w - e))
                           / 2e-6 for e in np.eye(p.d) * 1e-6] for i in range(p.n)])
            var = float(np.mean(np.sum((G - G.mean(0)) ** 2, 1)))
            assert abs(var - p.sigma2_at(w)) < 1e-7
            assert var <= p.sigma2 + 1e-7


def test_logistic_rejects_bad_labels_and_separable_unregularized():
    with pytest.raises(ConfigError, match="^y must hold labels -1 or \\+1"):
        Logistic(np.ones((3, 2)), np.array([1.0, 0.0, -1.0]))
    X = np.array([[1.0, 0.0], [2.0, 1.0], [-1.0, 0.5], [-2.0, -1.0]])
    y = np.sign(X[:, 0])
    with pytest.raises(ConfigError, match="^lam must be > 0 for linearly separable data"):
        Logistic(X, y, 0.0)
    assert np.isfinite(Logistic(X, y, 0.1).L_star)


@pytest.mark.parametrize("same,b", [(False, 1), (True, 3)])
def test_logistic_kernel_is_sam_on_the_problem(same, b):
    """The kernel against the iteration written with the problem's own gradients (an independent oracle)."""
    p = logistic()
    T = 150
    I, J = draw_batches(np.random.default_rng(11), p.n, b, T, same)
    g, r = Bd.thm5105_pl_steps(p.beta_ind, p.mu, T)
    w0 = np.array([3.0, -2.0, 1.0])
    L1, g1 = sam_stochastic(p, w0, g, r, I, J)
    L2, g2 = sam_stochastic_reference(p, w0, g, r, I, J)
    np.testing.assert_allclose(L1, L2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)
    assert math.isclose(L1[0], _loss(p.X, p.y, p.lam, w0), rel_tol=1e-12)


def test_every_logistic_row_ratio_at_most_one():
    rows = logistic_rows(seed=SEED, runs=100, fast=True)
    assert len(rows) >= 25
    for r in rows:
        assert r["ratio"] <= 1 + 1e-12, r
        assert r["holds"] and r["expect_hold"] and r["verdict"] == "holds", r
    kinds = {r["theorem"] for r in rows}
    for need in ("Lemma 3 (smooth, α=−β)", "Lemma 3 (convex, α=0)", "Lemma 3 (strongly convex, α=μ)",
                 "Lemma 4 (smooth)", "Lemma 5 (n-SAM alignment)", "Lemma 6 (n-SAM descent)",
                 "Lemma 7 (m-SAM alignment)", "Lemma 8 (m-SAM descent)",
                 "Thm 5.10.1 (avg grad)", "Thm 5.10.1 (PL)", "Thm 5.10.2 (sum t<T)", "Thm 5.10.3 (PL, linear)",
                 "Thm 5.10.4 (convex, avg iterate)", "Thm 5.10.4 (strongly convex)",
                 "Thm 5.10.5 n-SAM (avg grad, corrected 4β)", "Thm 5.6.1 m-SAM (avg grad, corrected 4β)",
                 "Thm 5.10.5 n-SAM (PL, decreasing steps)", "Thm 5.6.1 m-SAM (PL, decreasing steps)"):
        assert need in kinds, need


def test_table_covers_lemma3_in_all_three_cases():
    rows = [r for r in build_rows(seed=SEED, runs=5, fast=True) if r["theorem"].startswith("Lemma 3")]
    cases = {r["theorem"] for r in rows}
    assert cases == {"Lemma 3 (smooth, α=−β)", "Lemma 3 (convex, α=0)", "Lemma 3 (strongly convex, α=μ)"}
    assert all(r["holds"] and r["kind"] == "lower" and r["bound"] <= r["measured"] + 1e-12 * abs(r["measured"])
               for r in rows)
    assert any("logreg" in r["problem"] for r in rows)
