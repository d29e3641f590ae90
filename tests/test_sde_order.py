"""Strong and weak order of Euler–Maruyama on geometric Brownian motion (the diffrax-style check).

dX = μX dt + σX dW, μ = 0.5, σ = 0.5, x₀ = 1, T = 1; 20 000 paths × 512 fine increments, EM step
sizes h = 2⁻³ … 2⁻⁸ on the same Brownian paths. Orders are log-log least-squares slopes with
jackknife standard errors over 20 groups of paths (toymodels.sde.em.em_orders). Theory: strong 1/2,
weak 1; for the weak order the reference is the slope of the exact weak error x₀(e^{μT} − (1+μh)^{T/h})
on the same grid (0.988; its distance to 1 is checked deterministically). Tolerance: 5 s.e.
Fixed seed 0; passes for every seed 0–99 (verified once outside the suite).
"""
from __future__ import annotations

import numpy as np

from toymodels.sde.em import em_orders, gbm_em_terminal, weak_error_exact

MU, SIGMA, N, LEVELS, PATHS = 0.5, 0.5, 512, (64, 32, 16, 8, 4, 2), 20_000


def order_checks(seed):
    f = em_orders(mu=MU, sigma=SIGMA, N=N, levels=LEVELS, paths=PATHS, groups=20, seed=seed)
    exact = weak_error_exact(f.h, MU)
    p_exact = np.polyfit(np.log(f.h), np.log(exact), 1)[0]
    return {
        "strong": abs(f.strong_order - 0.5) <= 5 * f.strong_se,
        "weak": abs(f.weak_order - p_exact) <= 5 * f.weak_se,
        "grid": abs(p_exact - 1.0) < 0.02,
        "se_small": f.strong_se < 0.02 and f.weak_se < 0.2,
    }, f


def test_em_orders_on_gbm():
    checks, f = order_checks(0)
    assert all(checks.values()), (checks, f)


def test_weak_errors_match_closed_form_per_step_size():
    rng = np.random.default_rng(0)
    M, Nf = 20_000, 64
    dW = rng.standard_normal((M, Nf)) * np.sqrt(1.0 / Nf)
    levels = np.array([16, 8, 4])
    Xh = gbm_em_terminal(dW, levels, MU, SIGMA)
    XT = np.exp((MU - 0.5 * SIGMA**2) + SIGMA * dW.sum(1))
    diff = Xh - XT
    h = levels / Nf
    est = -diff.mean(1)                     # E X_T − E X_T^h
    se = diff.std(1, ddof=1) / np.sqrt(M)
    assert np.all(np.abs(est - weak_error_exact(h, MU)) <= 5 * se), (est, weak_error_exact(h, MU), se)
