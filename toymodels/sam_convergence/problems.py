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

:class:`ConcaveCap` is the 1-D counterexample for ρ = 1/β (Thm 5.10.1 remark, l.2614),
:class:`LeastSquares` a full-batch least-squares problem with computed β, μ, L_*, and :class:`Logistic`
(ridge-)regularized logistic regression with computed smoothness β (of L and of every ℓ_i), μ = λ, L_*
(Newton) and the exact (A1) constant σ² (brute force over the 2ⁿ vertices of a box, see its docstring).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit

from ..errors import ConfigError, RunError
from ..rng import stream

__all__ = ["Separable", "ConcaveCap", "LeastSquares", "Logistic", "sine_pl_constant", "quadratic", "sine",
           "convex_quadratic", "least_squares", "logistic", "logistic_sigma2_sup"]


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
            raise ConfigError("s", "must be 0 (a quadratic coordinate) or a/2 (a scaled x² + 3 sin² x "
                                   "coordinate) in every coordinate")
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
    rng = stream(seed)
    return Separable(np.linspace(mu, beta, d), np.zeros(d), noise * rng.standard_normal((n, d)),
                     name=f"quad(mu={mu:g},beta={beta:g})")


def convex_quadratic(d=5, beta=4.0, n=20, noise=1.0, seed=0) -> Separable:
    """Convex, not strongly convex: eigenvalues linspace(0, β) (μ = 0)."""
    rng = stream(seed)
    return Separable(np.linspace(0.0, beta, d), np.zeros(d), noise * rng.standard_normal((n, d)),
                     name=f"cvxquad(beta={beta:g})")


def sine(d=1, n=20, noise=1.0, seed=0) -> Separable:
    """L(w) = Σ_k w_k² + 3 sin² w_k: non-convex, PL with μ ≈ 0.1755, β = 8."""
    rng = stream(seed)
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
    rng = stream(seed)
    X = rng.standard_normal((n, d))
    return LeastSquares(X, X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n))


def logistic_sigma2_sup(V: np.ndarray) -> tuple[float, np.ndarray]:
    """max over s ∈ {0,1}ⁿ of (1/n) Σᵢ ‖sᵢvᵢ‖² − ‖(1/n) Σᵢ sᵢvᵢ‖² (rows vᵢ of V), and a maximizing s.

    This quadratic form in s is a variance, hence ≥ 0 for every real s: its matrix is positive
    semi-definite, the form is convex, and its maximum over the box [0,1]ⁿ is attained at a vertex.
    Brute force over the 2ⁿ vertices (n ≤ 20), in chunks."""
    V = np.asarray(V, float)
    n = V.shape[0]
    if n > 20:
        raise ConfigError("V", "must have at most 20 rows (brute force over the 2^n vertices)", n)
    Q = np.diag(np.sum(V * V, 1)) / n - V @ V.T / n ** 2
    best, arg = -np.inf, None
    bits = np.arange(n)
    for start in range(0, 2 ** n, 1 << 14):
        S = ((np.arange(start, min(start + (1 << 14), 2 ** n))[:, None] >> bits) & 1).astype(float)
        vals = np.einsum("ki,ij,kj->k", S, Q, S)
        k = int(np.argmax(vals))
        if vals[k] > best:
            best, arg = float(vals[k]), S[k]
    return best, arg


@dataclass
class Logistic:
    """Regularized logistic regression, labels yᵢ ∈ {−1, +1}:

        ℓᵢ(w) = log(1 + exp(−yᵢ xᵢᵀw)) + (λ/2)‖w‖²,     L(w) = (1/n) Σᵢ ℓᵢ(w).

    Constants (derived, and checked independently in the tests):

    * ∇ℓᵢ(w) = −yᵢ xᵢ σ(−yᵢ xᵢᵀw) + λw and ∇²ℓᵢ(w) = pᵢ(1 − pᵢ) xᵢxᵢᵀ + λI with pᵢ = σ(yᵢxᵢᵀw) ∈ (0, 1),
      so p(1 − p) ≤ 1/4 with equality iff xᵢᵀw = 0. Hence ∇²L(w) = (1/n) Xᵀ D(w) X + λI ⪯ XᵀX/(4n) + λI with
      equality at w = 0: L is β-smooth (A2') with the tight β = λ_max(XᵀX)/(4n) + λ, and each ℓᵢ with
      β_ind = maxᵢ ‖xᵢ‖²/4 + λ (A2, individual smoothness; also tight at w = 0).
    * ∇²L ⪰ λI: λ-strongly convex (so PL, A3, with μ = λ); convex with μ = 0 when λ = 0. The infimum of
      the curvature over ℝᵈ is λ (pᵢ(1 − pᵢ) → 0 along any direction that increases every |xᵢᵀw|).
    * (A1): ∇ℓᵢ(w) − ∇L(w) = −(sᵢ vᵢ − (1/n) Σⱼ sⱼ vⱼ), vᵢ = yᵢxᵢ, sᵢ = σ(−yᵢxᵢᵀw) ∈ (0, 1) (the ridge term
      cancels). The variance is a convex quadratic form in s, so sup_w E_i‖∇ℓᵢ(w) − ∇L(w)‖² ≤ its maximum
      over the box s ∈ [0,1]ⁿ, attained at a vertex; ``sigma2`` is that maximum, by brute force
      (:func:`logistic_sigma2_sup`). It bounds the variance at *every* w, which is what (A1) demands
      ("for all w"; the proofs of Lemmas 5–6 apply it at the iterates and ascent points, wherever those
      land). :meth:`sigma2_at` gives the exact finite-sum variance at a given w for comparison.
    * L_* and w_* by Newton's method (requires λ > 0 or non-separable data).
    """

    X: np.ndarray
    y: np.ndarray
    lam: float = 0.0
    name: str = "logreg"

    def __post_init__(self):
        self.X = np.asarray(self.X, float)
        self.y = np.asarray(self.y, float)
        if not np.all(np.abs(self.y) == 1):
            raise ConfigError("y", "must hold labels -1 or +1 only")
        n = self.X.shape[0]
        self.beta = float(np.linalg.eigvalsh(self.X.T @ self.X)[-1] / (4 * n) + self.lam)
        self.beta_ind = float(np.max(np.sum(self.X ** 2, 1)) / 4 + self.lam)
        self.mu = float(self.lam)
        self.convex = True
        self.sigma2, _ = logistic_sigma2_sup(self.X * self.y[:, None])
        self._w_star = self._newton()
        self.L_star = float(self.loss(self._w_star))

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    def _margins(self, w):
        return (np.asarray(w, float) @ self.X.T) * self.y            # (..., n)

    def loss(self, w):
        w = np.asarray(w, float)
        return np.mean(np.logaddexp(0.0, -self._margins(w)), -1) + self.lam / 2 * np.sum(w * w, -1)

    def grad(self, w):
        w = np.asarray(w, float)
        s = expit(-self._margins(w))                                   # σ(−yᵢxᵢᵀw)
        return -(s * self.y) @ self.X / self.n + self.lam * w

    def per_example_grads(self, w):
        """(n, d): ∇ℓᵢ(w)."""
        w = np.asarray(w, float)
        s = expit(-self._margins(w))
        return -(s * self.y)[:, None] * self.X + self.lam * w

    def grad_batch(self, w, idx):
        """(1/b) Σ_{i∈idx} ∇ℓᵢ(w) (repetitions allowed)."""
        idx = np.asarray(idx)
        w = np.asarray(w, float)
        m = (self.X[idx] @ w) * self.y[idx]
        return -(expit(-m) * self.y[idx]) @ self.X[idx] / idx.size + self.lam * w

    def sigma2_at(self, w) -> float:
        """Exact E_i‖∇ℓᵢ(w) − ∇L(w)‖² over the n examples at w."""
        G = self.per_example_grads(w)
        return float(np.mean(np.sum((G - G.mean(0)) ** 2, 1)))

    def hessian(self, w):
        p = expit(self._margins(w))
        return (self.X.T * (p * (1 - p))) @ self.X / self.n + self.lam * np.eye(self.d)

    def _newton(self):
        if self.lam == 0 and self._separable():
            raise ConfigError("lam", "must be > 0 for linearly separable data (L has no minimizer; "
                                     "Newton's method would not converge)", self.lam)
        w = np.zeros(self.d)
        for _ in range(100):
            g = self.grad(w)
            if np.sqrt(g @ g) < 1e-14:
                break
            w = w - np.linalg.solve(self.hessian(w), g)
        if not np.all(np.isfinite(w)) or np.sqrt(self.grad(w) @ self.grad(w)) > 1e-10:
            raise RunError("Newton's method did not converge (separable data and lam = 0?)")
        return w

    def _separable(self) -> bool:
        """Is there v with yᵢ xᵢᵀv ≥ 1 for all i (an LP feasibility problem)?"""
        from scipy.optimize import linprog

        res = linprog(np.zeros(self.d), A_ub=-(self.X * self.y[:, None]), b_ub=-np.ones(self.n),
                      bounds=[(None, None)] * self.d, method="highs")
        return res.status == 0

    def w_star(self, w0=None):
        return self._w_star


def logistic(n=16, d=3, lam=0.1, flip=0.25, seed=0) -> Logistic:
    """Gaussian inputs, labels sign(xᵀw_true) with a fraction ``flip`` flipped (non-separable for the
    default seed, so that λ = 0 still has a minimizer)."""
    rng = stream(seed)
    X = rng.standard_normal((n, d))
    y = np.sign(X @ rng.standard_normal(d))
    y[y == 0] = 1.0
    y[rng.random(n) < flip] *= -1
    return Logistic(X, y, lam, name=f"logreg(lam={lam:g})")
