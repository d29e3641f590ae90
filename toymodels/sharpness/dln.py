"""Closed forms for the sharpness of diagonal linear networks (thesis Sec. 7.6.2, App. 7.8.2).

Project normalization (as :mod:`toymodels.dln`): weights w = [u; v] ∈ R^{2d}, β = u ⊙ v, and

    L(w) = 1/(4n) ‖X(u⊙v) − y‖² = 1/(4n) Σᵢ (⟨β, xᵢ⟩ − yᵢ)².

The thesis (eq. 7.6) uses L = ‖Xβ − y‖² with X^T X = I; ours is that loss times 1/(4n), and our
"whitened" data means X^T X = n I (identity covariance). Conversion: thesis Hessian at a minimum
(correctly computed, i.e. 2× the printed eq. 7.9) = 4 × ours under the two whitenings.

With G = X^T X, r = Xβ − y, V = diag(v), U = diag(u):

    ∇²L = 1/(2n) [[V G V,               V G U + diag(X^T r)],
                  [U G V + diag(X^T r),  U G U             ]].

At a minimum with G = n I this is ½ [[diag(v²), diag(uv)], [diag(uv), diag(u²)]], whose 2×2 block
for coordinate i has eigenvalues 0 and (uᵢ² + vᵢ²)/2.

Invariant rescaling: c = [√|u/v|; √|v/u|] (scales like w under (αu, v/α)). Then the rescaled
Hessian H_c = ∇²L ⊙ c c^T at a minimum equals 1/(2n) J_c^T J_c with J_c = X[diag(sign(v)√|β|),
diag(sign(u)√|β|)], so

    tr H_c = (1/n) Σᵢ Gᵢᵢ |βᵢ|,      λ_max H_c = (1/n) λ_max(D^{1/2} G D^{1/2}),  D = diag|β|,

which for G = n I are ‖β‖₁ and ‖β‖_∞. Hence (Prop. 7.8.1/7.8.2) S_avg^ρ → ρ²/2 ‖β‖₁ and
S_max^ρ (ℓ₂) → ρ²/2 ‖β‖_∞. The thesis prints c with u and v swapped (see ERRATA.md).

:func:`measure_dln` measures batch b (of n // m) with the seeds ``child_seed(seed, "sharpness/avg", b)``
(Monte Carlo) and ``child_seed(seed, "sharpness/max", b)`` (Auto-PGD); :func:`whitened_problem` draws
its data from the stream ``(seed, "sharpness/whitened-problem")``.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, check_int
from ..rng import child_seed, stream

__all__ = ["dln_loss", "dln_grad", "dln_hessian", "hessian_whitened_min", "block_eigenvalues",
           "dln_rescaling", "rescaled_hessian", "rescaled_trace_closed", "rescaled_lambda_max_closed",
           "check_uvxy", "whitened_problem", "measure_dln"]


def check_uvxy(u, v, X, y):
    """Validate shapes/finiteness of a DLN and its data; return float64 arrays. Problems are a
    :class:`~toymodels.errors.ConfigError` for the field ``weights`` (the bundle u, v, X, y)."""
    u, v, X, y = (np.asarray(a, dtype=np.float64) for a in (u, v, X, y))
    if X.ndim != 2 or X.size == 0 or u.shape != (X.shape[1],) or v.shape != u.shape or y.shape != (X.shape[0],):
        raise ConfigError("weights", f"must be u, v of shape (d,), X of shape (n, d), y of shape (n,) with n, d >= 1; "
                                     f"got u{u.shape} v{v.shape} X{X.shape} y{y.shape}")
    if not all(np.all(np.isfinite(a)) for a in (u, v, X, y)):
        raise ConfigError("weights", "must be finite (u, v, X, y)")
    return u, v, X, y


def whitened_problem(seed: int = 0, n: int = 40, d: int = 10, k: int = 3):
    """Whitened data XᵀX = nI, β* with k ±1 entries plus 0.05·N(0, 1) elsewhere (approximately sparse:
    at an exact zero βᵢ = 0 one of uᵢ, vᵢ vanishes and c is undefined), y = Xβ*, and a DLN trained
    by GD (:mod:`toymodels.dln`, α = 0.1, γ = 0.5, 4000 steps) to a minimum. Returns
    ``((u, v, X, y), None)``, or ``(None, step)`` if the training diverged."""
    from ..datasets import RegressionData
    from ..dln import DLNConfig, train, w_to_uv

    rng = stream(seed, "sharpness/whitened-problem")
    Q, _ = np.linalg.qr(rng.standard_normal((n, d)))
    X = np.sqrt(n) * Q
    beta = 0.05 * rng.standard_normal(d)
    beta[rng.choice(d, k, replace=False)] = rng.choice([-1.0, 1.0], k)
    y = X @ beta
    data = RegressionData(X=X, y=y, X_test=X[:1], y_test=y[:1], beta_star=beta, source="whitened")
    res = train(data, DLNConfig(alpha=0.1, lr=0.5, steps=4000, tol=1e-30, seed=seed))
    if res.diverged:
        return None, res.diverged_at
    u, v = w_to_uv(res.w_plus, res.w_minus)
    return (u, v, X, y), None


def dln_loss(u, v, X, y):
    """L = 1/(4n) ‖X(u⊙v) − y‖². ``u``, ``v`` may carry leading batch axes (…, d)."""
    r = (np.asarray(u) * np.asarray(v)) @ X.T - y
    return np.sum(r * r, axis=-1) / (4.0 * X.shape[0])


def dln_grad(u, v, X, y):
    """(∇_u L, ∇_v L) = (v ⊙ g, u ⊙ g), g = X^T r / (2n)."""
    r = (u * v) @ X.T - y
    g = r @ X / (2.0 * X.shape[0])
    return v * g, u * g


def dln_hessian(u, v, X, y):
    """Full 2d × 2d Hessian of L at (u, v) (any point, residual term included)."""
    n = X.shape[0]
    G = X.T @ X
    r = X @ (u * v) - y
    off = v[:, None] * G * u[None, :] + np.diag(X.T @ r)
    H = np.block([[v[:, None] * G * v[None, :], off], [off.T, u[:, None] * G * u[None, :]]])
    return H / (2.0 * n)


def hessian_whitened_min(u, v):
    """Closed form of :func:`dln_hessian` at a minimum with X^T X = n I: ½[[v², uv], [uv, u²]]."""
    return 0.5 * np.block([[np.diag(v * v), np.diag(u * v)], [np.diag(u * v), np.diag(u * u)]])


def block_eigenvalues(u, v):
    """Eigenvalues of :func:`hessian_whitened_min`: d zeros and (uᵢ² + vᵢ²)/2 (sorted ascending)."""
    return np.sort(np.concatenate([np.zeros_like(u), 0.5 * (u * u + v * v)]))


def dln_rescaling(u, v):
    """The invariant scaling c = [√|u/v|; √|v/u|] (needs all uᵢ, vᵢ ≠ 0)."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if np.any(u == 0) or np.any(v == 0):
        raise ConfigError("weights", "must have u, v nonzero elementwise for the DLN rescaling c = "
                                     "[sqrt|u/v|, sqrt|v/u|]")
    return np.concatenate([np.sqrt(np.abs(u / v)), np.sqrt(np.abs(v / u))])


def rescaled_hessian(H, c):
    """H ⊙ c c^T = diag(c) H diag(c): the Hessian in the variable γ with δ = c ⊙ γ."""
    return H * np.outer(c, c)


def rescaled_trace_closed(beta, X):
    """tr(∇²L ⊙ cc^T) at a minimum, DLN rescaling: (1/n) Σᵢ Gᵢᵢ|βᵢ| (= ‖β‖₁ when G = nI)."""
    return float(np.sum(np.sum(X * X, axis=0) * np.abs(beta)) / X.shape[0])


def rescaled_lambda_max_closed(beta, X):
    """λ_max(∇²L ⊙ cc^T) at a minimum: (1/n) λ_max(D^½ G D^½), D = diag|β| (= ‖β‖_∞ if G = nI)."""
    s = np.sqrt(np.abs(beta))
    Xs = X * s[None, :]
    return float(np.linalg.eigvalsh(Xs.T @ Xs)[-1] / X.shape[0])


def measure_dln(u, v, X, y, rho=0.01, m=None, n_samples=2000, n_iter=100, n_restarts=10,
                seed=0):
    """All DLN sharpness numbers at (u, v) (project normalization, see module docstring).

    Plain Hessian trace/λ_max of the full-data loss; the same for the DLN-rescaled Hessian; and
    average-case (MC) / worst-case ℓ₂ (Auto-PGD, best of ``n_restarts``) m-sharpness at radius
    ``rho`` with the DLN rescaling, averaged over the n // m consecutive batches of size m (m = n:
    full batch; a remainder of n mod m examples is left out).
    """
    from .measures import avg_sharpness, check_radius, max_sharpness

    u, v, X, y = check_uvxy(u, v, X, y)
    n, d = X.shape
    m = n if m is None else check_int("m", m, 1, n)
    c = dln_rescaling(u, v)
    # |⟨(u + δu)(v + δv), xᵢ⟩| ≤ ‖xᵢ‖₁ max|w'|²: the model is of degree 2 in the weights
    check_radius(rho, np.concatenate([u, v]), c, float(np.max(np.sum(np.abs(X), axis=1))), 2, "weights")
    H = dln_hessian(u, v, X, y)
    ev = np.linalg.eigvalsh(H)
    evc = np.linalg.eigvalsh(rescaled_hessian(H, c))
    w = np.concatenate([u, v])
    avgs, ses, maxs = [], [], []
    for b in range(n // m):
        Xb, yb = X[b * m:(b + 1) * m], y[b * m:(b + 1) * m]
        loss = lambda W, Xb=Xb, yb=yb: dln_loss(W[:, :d], W[:, d:], Xb, yb)  # noqa: E731
        grad = lambda w_, Xb=Xb, yb=yb: np.concatenate(dln_grad(w_[:d], w_[d:], Xb, yb))  # noqa: E731
        a, s = avg_sharpness(loss, w, c, rho, n_samples=n_samples, seed=child_seed(seed, "sharpness/avg", b))
        avgs.append(a)
        ses.append(s)
        maxs.append(max_sharpness(loss, grad, w, c, rho, p="2", n_iter=n_iter, n_restarts=n_restarts,
                                  seed=child_seed(seed, "sharpness/max", b)).value)
    beta = u * v
    nb = len(avgs)
    return {
        "trace": float(np.trace(H)), "lambda_max": float(ev[-1]),
        "trace_rescaled": float(np.sum(np.diag(H) * c * c)), "lambda_max_rescaled": float(evc[-1]),
        "avg_sharpness": float(np.mean(avgs)),
        "avg_sharpness_se": float(np.sqrt(np.sum(np.square(ses))) / nb),
        "max_sharpness": float(np.mean(maxs)),
        "beta_l1": float(np.abs(beta).sum()), "beta_linf": float(np.abs(beta).max()),
        "loss": float(dln_loss(u, v, X, y)),
        "gradient_norm": float(np.linalg.norm(np.concatenate(dln_grad(u, v, X, y)))),
        "local_avg_prediction": float(rho ** 2 / 2 * np.sum(np.diag(H) * c * c)),
        "local_max_prediction": float(rho ** 2 / 2 * evc[-1]),
        "n_batches": nb,
    }
