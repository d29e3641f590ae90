"""The implicit bias of diagonal linear networks: the potential φ_α and its constrained minimizer.

Gradient flow on ``β = w₊² − w₋²`` started from ``w₊ = w₋ = α`` converges (when it interpolates) to

    β_∞ = argmin_β φ_α(β)  s.t.  Xβ = y,      φ_α(β) = Σ_k α_k² q(β_k / α_k²),      (thesis eq. 5.12–5.13)

with ``q(z) = ∫₀^z arcsinh(u/2) du = 2 − √(4+z²) + z·arcsinh(z/2)``.  The SAM variants converge to
the same problem with a smaller effective ``α`` (Thm 5.9.2/5.9.3, corrected constants in ERRATA.md).

The solver works on the convex dual: with ``s = Xᵀν`` the Lagrangian is minimized in closed form by
``β(ν) = 2α² ⊙ sinh(Xᵀν)`` (because ``∇φ_α(β) = arcsinh(β / (2α²))``), and ``ν`` minimizes

    D(ν) = Σ_k 2α_k² cosh((Xᵀν)_k) − νᵀy,   ∇D = Xβ(ν) − y,   ∇²D = X diag(2α² cosh(Xᵀν)) Xᵀ,

which is strictly convex on the row space of X.  ``−D`` is the Lagrange dual of the primal up to the
constant ``Σ 2α²`` (the convex conjugate of ``α² q(·/α²)`` is ``s ↦ 2α²(cosh s − 1)``).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, RunError, check_int, check_positive

__all__ = ["q", "q_prime", "phi_alpha", "solve_implicit_bias"]

# Largest change of any coordinate of s = Xᵀν in one Newton step: e^20 ≈ 5e8 keeps cosh far from
# overflow while still letting a cold start from ν = 0 reach the ℓ₁-like regime (|s| ≈ ln(1/α²) ≈ 18
# for α = 1e-4) in a couple of steps.
_MAX_DS = 20.0


def q(z):
    """The hyperbolic-entropy profile ``q(z) = 2 − √(4+z²) + z·arcsinh(z/2)``, elementwise.

    Evaluated as ``q(z) = |z|·(arcsinh(|z|/2) − |z|/(2 + √(4+z²)))``, which uses the exact identity
    ``2 − √(4+z²) = −z²/(2 + √(4+z²))`` and the evenness of ``q``: no cancellation between ``2`` and
    ``√(4+z²)``, and no overflow of ``z²`` (``√(4+z²)`` is computed with ``hypot``).  Accurate to a
    few ulps from ``|z| = 0`` to beyond ``1e300``.

    Parameters
    ----------
    z : array_like

    Returns
    -------
    ndarray or float
        ``q(z) ≥ 0``, with ``q(z) = z²/4 + O(z⁴)`` at 0 and ``q(z) = |z| ln|z| − |z| + O(ln|z|/|z|)``
        at infinity.
    """
    a = np.abs(np.asarray(z, dtype=float))
    out = a * (np.arcsinh(0.5 * a) - a / (2.0 + np.hypot(2.0, a)))
    return out[()] if out.ndim == 0 else out


def q_prime(z):
    """``q′(z) = arcsinh(z/2)``, elementwise (so ``∇φ_α(β) = arcsinh(β / (2α²))``)."""
    out = np.arcsinh(0.5 * np.asarray(z, dtype=float))
    return out[()] if out.ndim == 0 else out


def _check_alpha(alpha, d: int) -> np.ndarray:
    a = np.asarray(alpha, dtype=float)
    if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != d):
        raise ConfigError("alpha", f"must be a scalar or a vector of length d = {d}", f"shape {a.shape}")
    if not (np.all(np.isfinite(a)) and np.all(a > 0)):
        raise ConfigError("alpha", "must be finite and > 0 (every coordinate)", alpha)
    return np.broadcast_to(a, (d,)).copy()


def phi_alpha(beta, alpha) -> float:
    """The potential ``φ_α(β) = Σ_k α_k² q(β_k / α_k²)`` of thesis eq. (5.12).

    Parameters
    ----------
    beta : array_like, shape (d,)
    alpha : float or array_like of shape (d,)
        Initialization scale, every coordinate finite and > 0.

    Returns
    -------
    float
        ``φ_α(β) ≥ 0``, with equality iff ``β = 0``.  Limits (checked in ``proofs_check``):
        ``φ_α(β) / ln(1/α²) → ‖β‖₁`` as ``α → 0`` and ``4α²·φ_α(β) → ‖β‖₂²`` as ``α → ∞``.
    """
    b = np.asarray(beta, dtype=float)
    if b.ndim != 1:
        raise ConfigError("beta", "must be a vector", f"shape {b.shape}")
    a2 = _check_alpha(alpha, b.shape[0]) ** 2
    return float(np.sum(a2 * q(b / a2)))


def _dual(A, b, a2, mu):
    """``D``, ``β(μ)`` and the weights ``2α² cosh(s)`` for the (reduced) dual at ``μ``."""
    s = A.T @ mu
    with np.errstate(over="ignore", invalid="ignore"):
        w = 2.0 * a2 * np.cosh(s)
        beta = 2.0 * a2 * np.sinh(s)
        D = float(np.sum(w) - mu @ b)
    return D, beta, w


def _newton(A, b, a2, mu, target, max_iter):
    """Damped Newton on the reduced dual; returns ``(μ, converged)``.

    A step is accepted on the Armijo condition or, once ``D`` has stopped changing at floating-point
    resolution (near the optimum ``D`` decreases by ~‖∇D‖², far below ``eps·|D|``), on a decrease of
    ``‖∇D‖`` without an increase of ``D`` beyond rounding.
    """
    D, beta, w = _dual(A, b, a2, mu)
    for _ in range(max_iter):
        g = A @ beta - b
        gn = float(np.linalg.norm(g))
        if gn <= target:
            return mu, True
        H = (A * w) @ A.T
        try:
            step = -np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(H, g, rcond=None)[0]
        ds = A.T @ step
        t = min(1.0, _MAX_DS / max(float(np.max(np.abs(ds))), 1e-300))
        slope = float(g @ step)
        if not (np.isfinite(slope) and slope < 0):
            return mu, False
        for _ in range(60):
            mu_new = mu + t * step
            D_new, beta_new, w_new = _dual(A, b, a2, mu_new)
            if np.isfinite(D_new) and np.all(np.isfinite(w_new)):
                if D_new <= D + 1e-4 * t * slope:
                    break
                if (D_new <= D + 64 * np.finfo(float).eps * (abs(D) + 1.0)
                        and np.linalg.norm(A @ beta_new - b) < gn):
                    break
            t *= 0.5
        else:
            return mu, False  # no acceptable step: stalled at floating-point resolution
        mu, D, beta, w = mu_new, D_new, beta_new, w_new
    return mu, bool(np.linalg.norm(A @ beta - b) <= target)


def _continuation(A, b, a2, target, max_iter, factor=10.0):
    """Fallback: solve for ``α·c`` with ``c`` decreasing geometrically to 1, warm-starting each stage.

    For large α the dual is nearly quadratic (Newton converges in a few steps), and the solution
    moves continuously with α, so each stage starts close to its optimum.
    """
    c0 = max(1.0, 1.0 / float(np.sqrt(np.min(a2))))
    n_stages = int(np.ceil(np.log(c0) / np.log(factor))) + 1
    mu = np.zeros(A.shape[0])
    ok = False
    for c in np.geomspace(c0, 1.0, n_stages):
        # intermediate stages only need a warm start, not full accuracy
        tgt = target if c == 1.0 else max(target, 1e-6 * (1.0 + np.linalg.norm(b)))
        mu, ok = _newton(A, b, a2 * c * c, mu, tgt, max_iter)
    return mu, ok


def solve_implicit_bias(X, y, alpha, *, tol: float = 1e-10, max_iter: int = 500,
                        return_dual: bool = False):
    """Solve ``argmin_β φ_α(β) s.t. Xβ = y`` (thesis eq. 5.13) through its convex dual.

    The solution is ``β = 2α² ⊙ sinh(Xᵀν)`` where ``ν`` minimizes
    ``D(ν) = Σ_k 2α_k² cosh((Xᵀν)_k) − νᵀy`` (KKT: ``∇φ_α(β) = arcsinh(β/(2α²)) = Xᵀν``, ``Xβ = y``).
    The problem is first reduced to the row space of X by a thin SVD, ``X = U S Vᵀ``: the constraint
    becomes ``(S_r V_rᵀ) β = U_rᵀ y`` with ``r = rank X``, on which ``D`` is strictly convex, so
    redundant rows (rank-deficient but consistent X) and ``n ≥ d`` with full column rank are handled.
    ``D`` is minimized by damped Newton (backtracking line search rejecting overflow, steps capped to
    ``max |Δ(Xᵀν)| ≤ 20``) from ``ν = 0``; should it stall, by continuation in the scale of α.

    Parameters
    ----------
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
    alpha : float or array_like of shape (d,)
        Initialization scale, finite and > 0; robust for ``1e-4 ≤ α ≤ 10``.
    tol : float, optional
        Stop when ``‖Xβ − y‖₂ ≤ tol · max(1, ‖y‖₂)``.
    max_iter : int, optional
        Newton iterations per attempt.
    return_dual : bool, optional
        Also return the multiplier ``ν`` (the minimum-norm one when X has dependent rows).

    Returns
    -------
    beta : ndarray, shape (d,)
    nu : ndarray, shape (n,)
        Only if ``return_dual``; ``β == 2α² ⊙ sinh(Xᵀν)`` up to rounding.

    Raises
    ------
    toymodels.errors.ConfigError
        On malformed input (shapes, non-finite values, ``α ≤ 0``, ``tol ≤ 0``) or when the constraint
        is infeasible (``y`` not in the range of X).
    toymodels.errors.RunError
        When the solver does not reach ``tol``.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ConfigError("X", "must be a non-empty 2-D array (n, d)", f"shape {X.shape}")
    n, d = X.shape
    if y.shape != (n,):
        raise ConfigError("y", f"must have shape (n,) = ({n},)", f"shape {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ConfigError("X", "and y must be finite (no NaN/inf)")
    check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter, 1)
    a2 = _check_alpha(alpha, d) ** 2

    U, sv, Vt = np.linalg.svd(X, full_matrices=False)
    r = int(np.sum(sv > sv[0] * max(n, d) * np.finfo(float).eps)) if sv[0] > 0 else 0
    scale = max(1.0, float(np.linalg.norm(y)))
    target = tol * scale
    y_out = y - U[:, :r] @ (U[:, :r].T @ y)
    if np.linalg.norm(y_out) > 0.5 * target:
        raise ConfigError("y", f"must lie in the range of X (infeasible constraint Xβ = y: rank {r} < n = {n} "
                               f"rows; distance of y to range(X) = {np.linalg.norm(y_out):.3g})")
    A = sv[:r, None] * Vt[:r]           # reduced constraint matrix, orthogonal rows
    b = U[:, :r].T @ y
    mu = np.zeros(r)
    if r > 0:
        mu, ok = _newton(A, b, a2, mu, 0.5 * target, int(max_iter))
        if not ok:
            mu, ok = _continuation(A, b, a2, 0.5 * target, int(max_iter))
    beta = 2.0 * a2 * np.sinh(A.T @ mu)
    res = float(np.linalg.norm(X @ beta - y))
    if not (np.isfinite(res) and res <= target):
        raise RunError(f"solve_implicit_bias did not converge: ‖Xβ − y‖ = {res:.3g} > "
                       f"tol·max(1,‖y‖) = {target:.3g} (try a larger tol or max_iter)")
    if return_dual:
        return beta, U[:, :r] @ mu
    return beta
