"""Test problems for the SAM convergence bounds (thesis §5.6.1, App. 5.10) with exactly known constants.

:class:`Separable` covers the stochastic problems: n losses on R^d,

    ℓ_i(w) = Σ_k [ a_k w_k² / 2 + 3 s_k sin²(w_k) ] − c_iᵀ w,     Σ_i c_i = 0,
    L(w)   = (1/n) Σ_i ℓ_i(w) = Σ_k a_k w_k²/2 + 3 s_k sin²(w_k),   L_* = 0 at w = 0.

* ∇ℓ_i − ∇L = −c_i exactly, so (A1) holds with σ² = (1/n) Σ_i ‖c_i‖² (tight, for every w).
* Every ℓ_i has the same Hessian diag(a_k + 6 s_k cos 2w_k): individual smoothness (A2) with
  β = max_k (a_k + 6 s_k) (attained at w_k = 0), curvature ≥ min_k (a_k − 6 s_k).
* s = 0: a quadratic, μ-strongly convex (PL) with μ = min_k a_k; convex (μ = 0) if some a_k = 0.
* a = 2, s = 1: f(x) = x² + 3 sin² x, the non-convex PL example of Karimi et al. (2016): f'' ∈ [−4, 8]
  so β = 8; the PL constant μ = min_x f'(x)²/(2 f(x)) ≈ 0.17553 is computed (attained near
  |x| ≈ 2.2017; Karimi et al. quote the valid but looser 1/32). ½‖∇L‖² = Σ_k ½ f_k'² ≥ Σ_k μ_k f_k,
  so the separable sum is PL with μ = min_k μ_k.

:class:`ConcaveCap` is the 1-D counterexample for ρ = 1/β (Thm 5.10.1 remark, l.2614) and
:class:`LeastSquares` a full-batch least-squares problem with computed β, μ, L_*.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["Separable", "ConcaveCap", "LeastSquares", "sine_pl_constant", "quadratic", "sine",
           "convex_quadratic", "least_squares"]


@lru_cache(maxsize=None)
def sine_pl_constant() -> float:
    """μ = min_{x≠0} f'(x)²/(2 f(x)) for f = x² + 3 sin² x (a PL constant, and the best one).

    The ratio tends to 8 at 0 and to 2 at ±∞ and is even; it is ≥ 1.5 for |x| ≥ 20, so a dense grid on
    (0, 20] followed by a bounded scalar refinement finds the global minimum.
    """
    def r(x):
        f = x * x + 3 * np.sin(x) ** 2
        fp = 2 * x + 3 * np.sin(2 * x)
        return fp * fp / (2 * f)
    x = np.linspace(1e-3, 20, 200_001)
    i = int(np.argmin(r(x)))
    res = minimize_scalar(r, bounds=(x[max(i - 1, 0)], x[min(i + 1, x.size - 1)]), method="bounded",
                          options={"xatol": 1e-12})
    return float(min(res.fun, r(x[i])))


@dataclass
class Separable:
    """ℓ_i(w) = Σ_k a_k w_k²/2 + 3 s_k sin²(w_k) − c_iᵀw (see module docstring); C is centred."""

    a: np.ndarray
    s: np.ndarray
    C: np.ndarray                      # (n, d), rows sum to zero
    name: str = "separable"
    beta: float = field(init=False)
    mu: float = field(init=False)
    sigma2: float = field(init=False)
    convex: bool = field(init=False)

    def __post_init__(self):
        self.a = np.asarray(self.a, float)
        self.s = np.asarray(self.s, float)
        self.C = np.asarray(self.C, float)
        self.C = self.C - self.C.mean(0)
        self.beta = float(np.max(self.a + 6 * self.s))
        self.convex = bool(np.all(self.a - 6 * self.s >= 0) and np.all((self.s == 0) | (self.a >= 6 * self.s)))
        mus = np.where(self.s == 0, self.a, np.where(np.isclose(self.a, 2 * self.s), sine_pl_constant(), np.nan))
        if np.any(np.isnan(mus)):
            raise ValueError("only s = 0 (quadratic) or a = 2 s (scaled x² + 3 sin² x) coordinates supported")
        self.mu = float(np.min(mus))
        self.sigma2 = float(np.mean(np.sum(self.C ** 2, 1)))

    @property
    def n(self) -> int:
        return self.C.shape[0]

    @property
    def d(self) -> int:
        return self.a.size

    L_star = 0.0

    def loss(self, w):
        w = np.asarray(w, float)
        return np.sum(self.a * w * w / 2 + 3 * self.s * np.sin(w) ** 2, axis=-1)

    def grad(self, w):
        w = np.asarray(w, float)
        return self.a * w + 3 * self.s * np.sin(2 * w)

    def grad_batch(self, w, idx):
        """(1/b) Σ_{i∈idx} ∇ℓ_i(w), idx with repetitions allowed (i.i.d. uniform draws)."""
        return self.grad(w) - self.C[np.asarray(idx)].mean(0)

    def w_star(self, w0):
        """Minimizer closest to w0 (coordinates with a_k = s_k = 0 are free)."""
        free = (self.a == 0) & (self.s == 0)
        return np.where(free, w0, 0.0)


def quadratic(d=5, mu=0.5, beta=4.0, n=20, noise=1.0, seed=0) -> Separable:
    """Strongly convex diagonal quadratic, eigenvalues linearly spaced in [μ, β]."""
    rng = np.random.default_rng(seed)
    return Separable(np.linspace(mu, beta, d), np.zeros(d), noise * rng.standard_normal((n, d)),
                     name=f"quad(mu={mu:g},beta={beta:g})")


def convex_quadratic(d=5, beta=4.0, n=20, noise=1.0, seed=0) -> Separable:
    """Convex, not strongly convex: eigenvalues linspace(0, β) (μ = 0)."""
    rng = np.random.default_rng(seed)
    return Separable(np.linspace(0.0, beta, d), np.zeros(d), noise * rng.standard_normal((n, d)),
                     name=f"cvxquad(beta={beta:g})")


def sine(d=1, n=20, noise=1.0, seed=0) -> Separable:
    """L(w) = Σ_k w_k² + 3 sin² w_k: non-convex, PL with μ ≈ 0.1755, β = 8."""
    rng = np.random.default_rng(seed)
    return Separable(np.full(d, 2.0), np.ones(d), noise * rng.standard_normal((n, d)), name="x2+3sin2x")


@dataclass
class ConcaveCap:
    """1-D, β-smooth, bounded below (min −β at x = ±2), with a concave quadratic cap at the maximum 0:

        L(x) = −β x²/2                 for |x| ≤ 1,
        L(x) = β (|x| − 2)²/2 − β      for |x| ≥ 1.

    L' is piecewise linear with slopes ±β, so ∇L is β-Lipschitz. With ρ = 1/β every x ∈ (−1, 1)
    ascends exactly to x + ρL'(x) = 0 where L'(0) = 0, so SAM (5.20) stays at x although L'(x) = −βx ≠ 0.
    """

    beta: float = 1.0
    name: str = "concave-cap"
    L_star: float = field(init=False)

    def __post_init__(self):
        self.L_star = -self.beta

    def loss(self, x):
        x = np.asarray(x, float)
        ax = np.abs(x)
        return np.where(ax <= 1, -self.beta * x * x / 2, self.beta * (ax - 2) ** 2 / 2 - self.beta).sum(-1)

    def grad(self, x):
        x = np.asarray(x, float)
        ax = np.abs(x)
        return np.where(ax <= 1, -self.beta * x, self.beta * np.sign(x) * (ax - 2))


@dataclass
class LeastSquares:
    """L(w) = (1/2n) ‖Xw − y‖²; β = λ_max(XᵀX/n), μ = λ_min(XᵀX/n) (strongly convex when n ≥ d and X has
    full column rank), L_* and w_* from the normal equations. Full-batch only: the per-sample gradient
    noise grows with ‖w‖, so (A1) holds on no unbounded set."""

    X: np.ndarray
    y: np.ndarray
    name: str = "least-squares"

    def __post_init__(self):
        n = self.X.shape[0]
        H = self.X.T @ self.X / n
        ev = np.linalg.eigvalsh(H)
        self.H, self.beta, self.mu = H, float(ev[-1]), float(max(ev[0], 0.0))
        self._w_star = np.linalg.lstsq(self.X, self.y, rcond=None)[0]
        self.L_star = float(self.loss(self._w_star))
        self.convex = True

    def loss(self, w):
        r = np.asarray(w, float) @ self.X.T - self.y
        return np.sum(r * r, -1) / (2 * self.X.shape[0])

    def grad(self, w):
        return (np.asarray(w, float) @ self.X.T - self.y) @ self.X / self.X.shape[0]

    def w_star(self, w0=None):
        return self._w_star


def least_squares(n=40, d=5, seed=0) -> LeastSquares:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return LeastSquares(X, X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n))
