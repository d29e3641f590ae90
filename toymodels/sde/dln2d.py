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

The label noise z_t is the unnamed stream ``toymodels.rng.stream(seed)`` (= ``default_rng(seed)``); the
recursion is the kernel :func:`toymodels.sde._kernels.label_noise_gd` (numpy reference of the same name
in :mod:`toymodels.sde._reference`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..backends import check_backend
from ..errors import ConfigError, check_finite, check_int, check_nonneg, check_positive
from ..rng import check_seed, stream
from . import _kernels, _reference

__all__ = ["DLN2DConfig", "loss", "grad", "sparse_solution", "simulate", "loss_grid", "MAX_STEPS"]

#: at most this many steps (the trajectory takes 16 bytes a step: 1.6 GB)
MAX_STEPS = 10 ** 8


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


def simulate(cfg: DLN2DConfig = DLN2DConfig(), backend: str = "numba") -> dict:
    """Run label-noise GD; returns ``traj`` (steps + 1, 2), ``loss`` (steps + 1,), ``diverged_at``,
    ``sparse_solution`` and ``config``."""
    fn = {"numba": _kernels.label_noise_gd, "numpy": _reference.label_noise_gd}[check_backend(backend)]
    x, u0 = (_pair(name, getattr(cfg, name)) for name in ("x", "u0"))
    y = check_finite("y", cfg.y)
    eta = check_positive("eta", cfg.eta)
    sigma = check_nonneg("sigma", cfg.sigma)
    steps = check_int("steps", cfg.steps, 1, MAX_STEPS)
    z = stream(check_seed(cfg.seed)).standard_normal(steps)
    traj = np.full((steps + 1, 2), np.nan)
    st = fn(x, y, u0, eta, sigma, z, traj)
    with np.errstate(over="ignore", invalid="ignore"):       # a diverged run's last iterate may be huge
        L = loss(traj, x, y)
    return {"traj": traj, "loss": L, "diverged_at": None if st < 0 else int(st),
            "sparse_solution": sparse_solution(x, cfg.y), "config": cfg.as_dict()}


def _pair(field: str, value) -> np.ndarray:
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        v = np.empty(0)
    if v.shape != (2,) or not np.all(np.isfinite(v)):
        raise ConfigError(field, "must be two finite numbers", value)
    return v


def loss_grid(x, y, lim: tuple, num: int = 300):
    """(U1, U2, L) on a num × num grid of [lim[0], lim[1]]² for contour plots."""
    g = np.linspace(lim[0], lim[1], num)
    U1, U2 = np.meshgrid(g, g)
    return U1, U2, loss(np.stack([U1, U2], axis=-1), x, y)
