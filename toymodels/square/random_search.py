"""Prop. 3.5.1 (thesis l.1047–1059, proof l.1240–1278): random search on an L-smooth g : ℝ^d → ℝ.

Algorithm of the proposition (no projection): x_{t+1} = x_t + δ_t if g(x_t + δ_t) < g(x_t), else
x_t, with δ_t = γ_t ξ_t, γ_t = γ/√T and ξ_t i.i.d. with E ξ = 0 and

    E‖δ_t‖₂² ≤ γ_t² C,      E|⟨δ_t, v⟩| ≥ C̃ γ_t ‖v‖₂  ∀v                        (3.3)

Claim:  min_{t=0..T} E‖∇g(x_t)‖₂ ≤ 2/(γ C̃ √T) · (g(x₀) − E g(x_{T+1}) + γ² C L / 2).

Samplers (exact constants, C = d for both):

* ``gaussian``: ξ ~ N(0, I_d); E|⟨ξ, v⟩| = √(2/π)‖v‖ exactly, so C̃ = √(2/π);
* ``rademacher``: ξ uniform on {−1, 1}^d; C̃ = 1/√2 (Szarek's optimal Khintchine constant,
  attained at v = e₁ + e₂).

Test functions with a known global smoothness constant L = sup‖∇²g‖₂:

* ``quadratic``: g(x) = ½ xᵀ A x, A = Q diag(λ) Qᵀ, λ log-spaced in [L/κ, L];
* ``cosine``: g(x) = Σᵢ [½ yᵢ² + α cos(ω yᵢ)], y = Qx (non-convex when αω² > 1);
  ∇²g = Qᵀ diag(1 − αω² cos ω yᵢ) Q, so L = 1 + αω².

The proof (l.1270) in fact bounds the time average (1/T) Σ_{t=0}^{T−1} E‖∇g(x_t)‖ by the same
right-hand side (with E g(x_T) ≥ E g(x_{T+1})); we measure both the minimum over t of the per-t
Monte-Carlo means and that time average, whose per-run values are i.i.d. over runs, so that
``slack = bound − average`` has an honest standard error (the bound is linear in E g(x_{T+1})).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, RunError, check_choice, check_int, check_nonneg, check_positive
from ..rng import stream

__all__ = ["SAMPLERS", "FUNCTIONS", "TestFunction", "make_function", "sampler_constants", "RSResult",
           "random_search"]

SAMPLERS = ("gaussian", "rademacher")
FUNCTIONS = ("quadratic", "cosine")


@dataclass
class TestFunction:
    """g, ∇g (vectorized over rows of x), L = sup‖∇²g‖₂ and inf g."""

    name: str
    d: int
    L: float
    g_inf: float
    Q: np.ndarray
    lam: np.ndarray | None = None
    alpha: float = 0.0
    omega: float = 0.0

    def value(self, x):
        y = x @ self.Q.T
        if self.name == "quadratic":
            return 0.5 * (y * y * self.lam).sum(axis=-1)
        return (0.5 * y * y + self.alpha * np.cos(self.omega * y)).sum(axis=-1)

    def grad(self, x):
        y = x @ self.Q.T
        if self.name == "quadratic":
            gy = y * self.lam
        else:
            gy = y - self.alpha * self.omega * np.sin(self.omega * y)
        return gy @ self.Q


def make_function(name: str, d: int, *, L: float = 1.0, kappa: float = 10.0, alpha: float = 0.5,
                  omega: float = 3.0, seed: int = 0) -> TestFunction:
    """Build a test function (see the module docstring); Q is a Haar-random rotation from ``seed``."""
    check_choice("function", name, FUNCTIONS)
    check_int("d", d, 1)
    rng = stream(seed)
    Q, r = np.linalg.qr(rng.standard_normal((d, d)))
    Q = Q * np.sign(np.diag(r))
    if name == "quadratic":
        check_positive("L", L)
        check_positive("kappa", kappa)
        lam = L * np.logspace(-np.log10(kappa), 0, d) if d > 1 else np.array([L])
        return TestFunction(name, d, float(L), 0.0, Q, lam=lam)
    check_positive("omega", omega)
    check_nonneg("alpha", alpha)
    return TestFunction(name, d, 1.0 + alpha * omega ** 2, -alpha * d, Q, alpha=float(alpha), omega=float(omega))


def sampler_constants(sampler: str, d: int) -> tuple[float, float]:
    """(C, C̃) of eq. (3.3) for δ = γ ξ: E‖ξ‖² = d; C̃ = √(2/π) (Gaussian), 1/√2 (Rademacher)."""
    check_choice("sampler", sampler, SAMPLERS)
    return float(d), (np.sqrt(2 / np.pi) if sampler == "gaussian" else 1 / np.sqrt(2))


@dataclass
class RSResult:
    """Per-run and aggregated measurements of :func:`random_search` (R runs, T + 2 iterates)."""

    grad_norm_mean: np.ndarray     # (T+1,) MC mean of ‖∇g(x_t)‖ over runs, t = 0..T
    grad_norm_se: np.ndarray       # (T+1,) its standard error
    min_t: int                     # argmin_t of grad_norm_mean
    avg_runs: np.ndarray           # (R,) (1/T) Σ_{t<T} ‖∇g(x_t)‖ per run
    bound_runs: np.ndarray         # (R,) printed RHS with g(x_{T+1}) of that run (linear in it)
    g0: float
    gT1_mean: float
    C: float
    C_tilde: float
    L: float

    @staticmethod
    def _mse(a):
        return float(a.mean()), float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else float("nan")

    def summary(self) -> dict:
        bound, bound_se = self._mse(self.bound_runs)
        avg, avg_se = self._mse(self.avg_runs)
        slack, slack_se = self._mse(self.bound_runs - self.avg_runs)
        m = float(self.grad_norm_mean[self.min_t])
        return {"bound": bound, "bound_se": bound_se, "min_t_grad_norm": m,
                "min_t_grad_norm_se": float(self.grad_norm_se[self.min_t]), "argmin_t": self.min_t,
                "time_avg_grad_norm": avg, "time_avg_grad_norm_se": avg_se,
                "ratio_min": m / bound, "ratio_avg": avg / bound, "slack_avg": slack, "slack_avg_se": slack_se,
                "g0": self.g0, "E_g_T_plus_1": self.gT1_mean, "C": self.C, "C_tilde": self.C_tilde, "L": self.L}


def random_search(fn: TestFunction, x0, T: int, gamma: float, runs: int, *, sampler: str = "gaussian",
                  seed: int = 0) -> RSResult:
    """Run ``runs`` independent copies of the random search of Prop. 3.5.1 from x0 for T + 1 steps
    (iterates x_0..x_{T+1}) with γ_t = γ/√T; vectorized over runs (numpy, one step per iteration)."""
    check_int("T", T, 1)
    check_int("runs", runs, 2)
    check_positive("gamma", gamma)
    C, Ct = sampler_constants(sampler, fn.d)
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.shape != (fn.d,):
        raise ConfigError("x0", f"must have shape ({fn.d},)", x0.shape)
    rng = stream(seed)
    gt = gamma / np.sqrt(T)
    x = np.repeat(x0[None], runs, axis=0)
    gx = fn.value(x)
    norms = np.empty((T + 1, runs))
    for t in range(T + 1):
        norms[t] = np.linalg.norm(fn.grad(x), axis=1)
        xi = rng.standard_normal((runs, fn.d)) if sampler == "gaussian" else \
            rng.choice(np.array([-1.0, 1.0]), size=(runs, fn.d))
        xn = x + gt * xi
        gn = fn.value(xn)
        acc = gn < gx
        x[acc] = xn[acc]
        gx[acc] = gn[acc]
        if not np.all(np.isfinite(gx)):
            raise RunError(f"non-finite objective at step {t} (x0 or gamma too large for float64)")
    g0 = float(fn.value(x0[None])[0])
    mean = norms.mean(axis=1)
    se = norms.std(axis=1, ddof=1) / np.sqrt(runs)
    bound_runs = 2.0 / (gamma * Ct * np.sqrt(T)) * (g0 - gx + gamma ** 2 * C * fn.L / 2)
    return RSResult(mean, se, int(mean.argmin()), norms[:T].mean(axis=0), bound_runs, g0, float(gx.mean()),
                    C, Ct, fn.L)
