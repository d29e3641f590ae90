"""1-sharpness of linear models (thesis Sec. 5.4, l.2188): closed forms, and the fact that all global
minimizers of an overparameterized least-squares problem are equally 1-sharp.

For a linear model f_x(w) = ⟨w, x⟩ and per-point loss ℓᵢ, the (worst-case, standard, ℓ₂) 1-sharpness
is the mean over points of the per-point ascent, E_{S~P₁} of eq. 7.1 with c = 1:

    S₁^ρ(w) = (1/n) Σᵢ max_{‖δ‖₂≤ρ} ℓᵢ(w + δ) − ℓᵢ(w)

(the thesis writes the sum, n × this). Because ⟨δ, xᵢ⟩ ranges exactly over [−ρ‖xᵢ‖, ρ‖xᵢ‖] on the
ball (Cauchy–Schwarz, equality at δ = ±ρxᵢ/‖xᵢ‖):

* margin loss ℓᵢ(w) = ℓ(yᵢ⟨w, xᵢ⟩), ℓ decreasing (as printed, l.2188):
  S₁ = (1/n) Σ ℓ(yᵢ⟨w, xᵢ⟩ − ρ‖xᵢ‖) − ℓ(yᵢ⟨w, xᵢ⟩);
* squared loss ℓᵢ(w) = (⟨w, xᵢ⟩ − yᵢ)² with residual rᵢ:
  S₁ = (1/n) Σ (|rᵢ| + ρ‖xᵢ‖)² − rᵢ² = (1/n) Σ 2ρ|rᵢ|‖xᵢ‖ + ρ²‖xᵢ‖².

Every global minimizer of an overparameterized (d > n, rank n) least-squares problem interpolates
(r = 0), so S₁ = ρ²/n Σ‖xᵢ‖² for all of them: 1-sharpness (like any standard sharpness of a quadratic
loss, whose Hessian does not depend on w) cannot tell minimizers apart, although their test errors
differ. The average case agrees: E_{γ~N(0,ρ²I)} ⟨γ, xᵢ⟩² = ρ²‖xᵢ‖². Elementwise adaptive sharpness
(c = |w|) does depend on the minimizer.

Streams (:mod:`toymodels.rng`): the demo's data from ``(seed, "one-sharpness/data")``, the null-space
directions of :func:`interpolating_solutions` from ``(seed, "one-sharpness/null-directions")``; point i
of solution j draws its Monte-Carlo γ from ``child_seed(seed, "one-sharpness/avg", j, i)`` and its
Auto-PGD starts from ``child_seed(seed, "one-sharpness/pgd", j, i)``.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, check_choice, check_int
from ..rng import child_seed, stream
from .measures import avg_sharpness, check_radius, max_sharpness

__all__ = ["one_sharpness_square_closed", "one_sharpness_margin_closed", "one_sharpness_pgd",
           "interpolating_solutions", "demo_equal_one_sharpness"]


def one_sharpness_square_closed(w, X, y, rho):
    """(1/n) Σ (|rᵢ| + ρ‖xᵢ‖)² − rᵢ² for ℓᵢ = (⟨w, xᵢ⟩ − yᵢ)²."""
    r = X @ w - y
    nx = np.linalg.norm(X, axis=1)
    return float(np.mean((np.abs(r) + rho * nx) ** 2 - r * r))


def one_sharpness_margin_closed(w, X, y, rho, ell=lambda t: np.logaddexp(0.0, -t)):
    """(1/n) Σ ℓ(yᵢ⟨w, xᵢ⟩ − ρ‖xᵢ‖) − ℓ(yᵢ⟨w, xᵢ⟩) for a decreasing ℓ (default logistic)."""
    mrg = y * (X @ w)
    return float(np.mean(ell(mrg - rho * np.linalg.norm(X, axis=1)) - ell(mrg)))


def one_sharpness_pgd(w, X, y, rho, loss="square", n_iter=30, n_restarts=2, seed=0, index=()):
    """Per-point Auto-PGD (ℓ₂, c = 1) estimate of S₁ (a lower bound; an independent check of the
    closed forms). ``loss``: "square" ((⟨w,x⟩ − y)²) or "logistic" (log(1 + e^{−y⟨w,x⟩})). Point i
    starts from ``child_seed(seed, "one-sharpness/pgd", *index, i)``."""
    check_choice("loss", loss, ("square", "logistic"))
    vals = []
    for i in range(X.shape[0]):
        x, t = X[i], y[i]
        if loss == "square":
            lf = lambda W, x=x, t=t: (W @ x - t) ** 2  # noqa: E731
            gf = lambda v, x=x, t=t: 2.0 * (v @ x - t) * x  # noqa: E731
        else:
            lf = lambda W, x=x, t=t: np.logaddexp(0.0, -t * (W @ x))  # noqa: E731
            gf = lambda v, x=x, t=t: -t * np.exp(-np.logaddexp(0.0, t * (v @ x))) * x  # noqa: E731
        vals.append(max_sharpness(lf, gf, w, np.ones_like(w), rho, p="2", n_iter=n_iter, n_restarts=n_restarts,
                                  seed=child_seed(seed, "one-sharpness/pgd", *index, i)).value)
    return float(np.mean(vals))


def interpolating_solutions(X, y, k=5, spread=1.0, seed=0):
    """The min-norm interpolator w₀ = X⁺y and k − 1 others w₀ + spread·z, z a random unit vector of
    null(X) (scaled by j/(k−1)·3 so that their norms differ). Returns (k, d)."""
    n, d = X.shape
    if np.linalg.matrix_rank(X) != n or d <= n:
        raise ConfigError("X", "must be overparameterized with full row rank (d > n)", f"n = {n}, d = {d}")
    w0 = np.linalg.pinv(X) @ y
    null = np.linalg.svd(X)[2][n:]                      # orthonormal basis of null(X), (d − n, d)
    rng = stream(seed, "one-sharpness/null-directions")
    sols = [w0]
    for j in range(1, k):
        z = null.T @ rng.standard_normal(d - n)
        sols.append(w0 + spread * 3.0 * j / max(k - 1, 1) * z / np.linalg.norm(z))
    return np.array(sols)


def _solution_row(j, w, X, y, Xte, beta, rho, n_samples, seed) -> dict:
    """The demo's numbers for solution j (standard and adaptive average 1-sharpness use common random
    numbers: point i draws from the same seed in both)."""
    n, d = X.shape
    seeds = [child_seed(seed, "one-sharpness/avg", j, i) for i in range(n)]
    per = [avg_sharpness(lambda W, x=x, t=t: (W @ x - t) ** 2, w, np.ones(d), rho, n_samples=n_samples, seed=s)
           for x, t, s in zip(X, y, seeds)]
    adap = [avg_sharpness(lambda W, x=x, t=t: (W @ x - t) ** 2, w, np.abs(w), rho, n_samples=n_samples, seed=s)[0]
            for x, t, s in zip(X, y, seeds)]
    return {
        "w_norm": float(np.linalg.norm(w)),
        "train_loss": float(np.mean((X @ w - y) ** 2)),
        "test_loss": float(np.mean((Xte @ (w - beta)) ** 2)),
        "one_sharpness_closed": one_sharpness_square_closed(w, X, y, rho),
        "one_sharpness_pgd": one_sharpness_pgd(w, X, y, rho, seed=seed, index=(j,)),
        "avg_one_sharpness": float(np.mean([p[0] for p in per])),
        "avg_one_sharpness_se": float(np.sqrt(np.sum([p[1] ** 2 for p in per])) / n),
        "n_sharpness_closed": float(rho ** 2 * np.linalg.eigvalsh(X.T @ X / n)[-1]),
        "adaptive_avg_one_sharpness": float(np.mean(adap)),
    }


def demo_equal_one_sharpness(n=10, d=30, k=5, rho=0.1, n_samples=4000, seed=0):
    """k interpolating least-squares solutions of a random sparse problem: their 1-sharpness (closed
    form, Auto-PGD, MC average case), n-sharpness (closed form ρ²λ_max(XᵀX)/n of the mean loss),
    adaptive (c = |w|) average 1-sharpness, training and test loss.

    The average case of the per-point loss at interpolation is exactly ρ²‖xᵢ‖², so
    ``avg_one_sharpness`` estimates the same closed form (with a Monte-Carlo s.e.)."""
    check_int("n", n, 1)
    check_int("d", d, n + 1)
    check_int("k", k, 2)
    rng = stream(seed, "one-sharpness/data")
    X = rng.standard_normal((n, d))
    beta = np.zeros(d)
    beta[:3] = 1.0
    y = X @ beta
    Xte = rng.standard_normal((1000, d))
    sols = interpolating_solutions(X, y, k, seed=seed)
    # |⟨w', xᵢ⟩| ≤ ‖xᵢ‖₁ max|w'| (degree 1); c = 1 or |w|
    check_radius(rho, sols, np.maximum(1.0, np.abs(sols)), float(np.max(np.sum(np.abs(X), axis=1))), 1)
    closed_common = float(rho ** 2 * np.mean(np.sum(X * X, axis=1)))
    rows = [_solution_row(j, w, X, y, Xte, beta, rho, n_samples, seed) for j, w in enumerate(sols)]
    cl = np.array([r["one_sharpness_closed"] for r in rows])
    pg = np.array([r["one_sharpness_pgd"] for r in rows])
    return {"solutions": rows, "closed_form_at_interpolation": closed_common,
            "max_spread_closed": float(cl.max() - cl.min()),
            "max_rel_err_pgd": float(np.max(np.abs(pg - closed_common)) / closed_common),
            "test_loss_range": [min(r["test_loss"] for r in rows), max(r["test_loss"] for r in rows)],
            "adaptive_range": [min(r["adaptive_avg_one_sharpness"] for r in rows),
                               max(r["adaptive_avg_one_sharpness"] for r in rows)]}
