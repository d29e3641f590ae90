"""Label-noise GD on the 2-parameter diagonal linear network of thesis Fig. 6.8 (App. 6.6, l. 3239).

One example (n = 1) in d = 2 with balanced layers u = v, so h_u(x) = ⟨u⊙u, x⟩ and, in this
project's DLN normalization (¼, eq. 5.5),

    L(u) = ¼ (⟨u⊙u, x⟩ − y)²,   ∇L(u) = r · u⊙x,   r = ⟨u⊙u, x⟩ − y.

With n = 1 SGD is GD; the thesis adds label noise "of the shape given by (6.9)": the step on labels
y + σz_t, z_t ~ N(0, 1),

    u_{t+1} = u_t − η (r_t − σz_t) u_t⊙x,

whose noise ησz_t u⊙x is exactly the multiplicative v⊙[Xᵀ dB] of (6.9) with v = u. The bottom of the
valley is the ellipse {x₁u₁² + x₂u₂² = y} (x > 0, y > 0); on it the Hessian is 2(u⊙x)(u⊙x)ᵀ, so
GD is stable only where η < 1/‖u⊙x‖². The noise drives the slow drift along the valley that
decreases ‖∇h_u(x)‖² = 4‖u⊙x‖² (the conjecture after (6.9)); with wₖ = xₖuₖ² (Σwₖ = y) that is
Σₖ xₖwₖ, minimized at the *sparse* solution on the axis of the smallest xₖ: u = (0, ±√(y/x₂)) when
x₂ < x₁.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numba as nb
import numpy as np

from .._cli import UsageError, check_choice, check_int_range, check_nonneg, check_positive

__all__ = ["DLN2DConfig", "loss", "grad", "sparse_solution", "simulate", "label_noise_gd_reference",
           "loss_grid"]


@dataclass(frozen=True)
class DLN2DConfig:
    """Defaults (chosen by eye for a readable Fig. 6.8): x = (1, 0.5), y = 1, u₀ = (1.2, 0.45), η = 0.8,
    σ = 0.3, 600 steps. The GD stability limit 1/‖u⊙x‖² is 1 at the u₁-sparse solution (1, 0) and 2
    at the favoured sparse solution (0, √2): η = 0.8 is close to the limit where the run starts, so the
    iterates bounce across the valley there."""

    x: tuple = (1.0, 0.5)
    y: float = 1.0
    u0: tuple = (1.2, 0.45)
    eta: float = 0.8
    sigma: float = 0.3
    steps: int = 600
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def loss(u, x, y):
    """L(u) = ¼(⟨u⊙u, x⟩ − y)²; ``u`` may have leading batch axes (…, 2)."""
    u = np.asarray(u, dtype=np.float64)
    r = (u * u) @ np.asarray(x, dtype=np.float64) - y
    return 0.25 * r * r


def grad(u, x, y):
    """∇L(u) = r·u⊙x."""
    u = np.asarray(u, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    return ((u * u) @ x - y) * u * x


def sparse_solution(x, y) -> np.ndarray:
    """The minimizer of ‖u⊙x‖² on the valley, in the positive quadrant (module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    k = int(np.argmin(x))
    u = np.zeros(2)
    u[k] = np.sqrt(y / x[k])
    return u


@nb.njit(cache=True)
def _label_noise_gd(x, y, u, eta, sigma, z, traj):
    """traj[0] = u₀; traj[t+1] = traj[t] − η(r_t − σz_t)·traj[t]⊙x. Returns −1 or the first t with a
    non-finite iterate (rows after it stay as filled: NaN)."""
    traj[0, 0] = u[0]
    traj[0, 1] = u[1]
    for t in range(z.shape[0]):
        u0 = traj[t, 0]
        u1 = traj[t, 1]
        g = eta * (x[0] * u0 * u0 + x[1] * u1 * u1 - y - sigma * z[t])
        traj[t + 1, 0] = u0 - g * u0 * x[0]
        traj[t + 1, 1] = u1 - g * u1 * x[1]
        if not (np.isfinite(traj[t + 1, 0]) and np.isfinite(traj[t + 1, 1])):
            return t + 1
    return -1


def label_noise_gd_reference(x, y, u, eta, sigma, z, traj):
    """Numpy oracle of :func:`_label_noise_gd` (same signature and semantics)."""
    traj[0] = u
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(z.shape[0]):
            w = traj[t]
            traj[t + 1] = w - eta * (float((w * w) @ x) - y - sigma * z[t]) * w * x
            if not np.all(np.isfinite(traj[t + 1])):
                return t + 1
    return -1


def simulate(cfg: DLN2DConfig = DLN2DConfig(), backend: str = "numba") -> dict:
    """Run label-noise GD; returns ``traj`` (steps + 1, 2), ``loss`` (steps + 1,), ``diverged_at``,
    ``sparse_solution`` and ``config``."""
    x = np.asarray(cfg.x, dtype=np.float64)
    u0 = np.asarray(cfg.u0, dtype=np.float64)
    if x.shape != (2,) or u0.shape != (2,) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(u0))):
        raise UsageError("x and u0 must be two finite numbers each")
    check_positive("eta", cfg.eta)
    check_nonneg("sigma", cfg.sigma)
    check_int_range("steps", cfg.steps, 1, 10**8)
    check_choice("backend", backend, ("numba", "numpy"))
    z = np.random.default_rng(cfg.seed).standard_normal(cfg.steps)
    traj = np.full((cfg.steps + 1, 2), np.nan)
    fn = _label_noise_gd if backend == "numba" else label_noise_gd_reference
    st = fn(x, float(cfg.y), u0, float(cfg.eta), float(cfg.sigma), z, traj)
    return {"traj": traj, "loss": loss(traj, x, cfg.y), "diverged_at": None if st < 0 else int(st),
            "sparse_solution": sparse_solution(x, cfg.y), "config": cfg.as_dict()}


def loss_grid(x, y, lim: tuple, num: int = 300):
    """(U1, U2, L) on a num × num grid of [lim[0], lim[1]]² for contour plots."""
    g = np.linspace(lim[0], lim[1], num)
    U1, U2 = np.meshgrid(g, g)
    return U1, U2, loss(np.stack([U1, U2], axis=-1), x, y)
