"""Ensemble simulation of SGD on the 1D quadratic parameterization (thesis eq. 6.5) and the test
of Prop. 6.3.2 / 6.7.1's claims on it.

    θ_{t+1} = θ_t + ηθ_t x_t (y_t − x_t θ_t²),  y_t = x_t θ*²,  x_t ~ ρ̂ i.i.d.,
    F(θ) = ¼ E_ρ̂ (y − xθ²)² = (m₂/4)(θ*² − θ²)²,  m₂ = E_ρ̂[x²].

ρ̂ is U[x_min, x_max] or uniform on a finite set of points. Runs are independent; run r's draws
depend only on (seed, r, t) (see :mod:`toymodels.quad1d._kernels`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .._cli import UsageError, check_finite, check_int_range, check_positive
from . import _kernels as K
from . import theory as T

__all__ = ["Quad1DConfig", "Quad1DResult", "resolve", "simulate", "stream_keys", "DIV_FACTOR", "CHUNK"]

#: a run diverges at the first step with θ non-finite or |θ| > DIV_FACTOR·θ*
DIV_FACTOR = 1e3
#: runs per kernel call (bounds memory: 12 numbers per run, plus a trajectory if recorded)
CHUNK = 1 << 18


@dataclass
class Quad1DConfig:
    """eta: step size η > 0; x_min < x_max (x_min > 0): support of ρ̂ = U[x_min, x_max], or the
    hull of ``points`` (ρ̂ uniform on them) when given; theta_star > 0; theta0: a number or
    "random" (θ₀ ~ U(0, θ*) per run); steps, runs ≥ 1; seed."""

    eta: float = 1.1
    x_min: float = 1.0
    x_max: float = 1.05
    theta_star: float = 1.0
    theta0: float | str = "random"
    steps: int = 1000
    runs: int = 10_000
    seed: int = 0
    points: list[float] | None = None


@dataclass
class Quad1DResult:
    config: Quad1DConfig
    theta0: np.ndarray
    theta_final: np.ndarray
    loss_min: np.ndarray          # per run, min over 1 ≤ t ≤ steps (before divergence)
    loss_max: np.ndarray
    loss_final: np.ndarray        # NaN for diverged runs
    argmin: np.ndarray            # step of loss_min
    argmax: np.ndarray
    theta_min: np.ndarray         # min/max of θ_t over t ≥ 1
    theta_max: np.ndarray
    bounce_start: np.ndarray      # first s from which θ alternates around θ* (== steps: not bouncing)
    band_start: np.ndarray        # same, alternating between Prop. 6.7.1's two bands
    div_step: np.ndarray          # −1, or the first step with θ non-finite or |θ| > DIV_FACTOR θ*
    m2: float
    traj: np.ndarray | None = None
    derived: dict = field(default_factory=dict)


def stream_keys(seed: int) -> tuple[np.uint64, np.uint64]:
    """(key for x, key for θ₀): two SplitMix64 outputs of the seed (decorrelated streams)."""
    from ._reference import mix64

    s = np.array([2 * int(seed) + 1, 2 * int(seed) + 2], dtype=np.uint64) * K.GOLDEN
    k = mix64(s)
    return np.uint64(k[0]), np.uint64(k[1])


def resolve(cfg: Quad1DConfig) -> Quad1DConfig:
    """Validate (UsageError naming the parameter and its range) and return a normalized copy."""
    c = Quad1DConfig(**asdict(cfg))
    check_positive("eta", c.eta)
    check_positive("theta_star", c.theta_star)
    c.steps = check_int_range("steps", c.steps, 1)
    c.runs = check_int_range("runs", c.runs, 1)
    c.seed = check_int_range("seed", c.seed, 0, 2 ** 62)
    if c.points is not None:
        p = [float(v) for v in c.points]
        if not p or not all(math.isfinite(v) and v > 0 for v in p):
            raise UsageError(f"points must be a non-empty list of finite numbers > 0, got {c.points!r}")
        c.points, c.x_min, c.x_max = p, min(p), max(p)
    else:
        check_finite("x_min", c.x_min)
        check_finite("x_max", c.x_max)
        if not c.x_min > 0:
            raise UsageError(f"x_min must be > 0 (Prop. 6.7.1 assumes positive inputs), got {c.x_min!r}")
        if not c.x_max > c.x_min:
            raise UsageError(f"x_max must be > x_min = {c.x_min!r}, got {c.x_max!r}")
    if isinstance(c.theta0, str):
        if c.theta0 != "random":
            try:
                c.theta0 = float(c.theta0)
            except ValueError:
                raise UsageError(f"theta0 must be a number or 'random', got {c.theta0!r}") from None
    if not isinstance(c.theta0, str):
        c.theta0 = float(check_finite("theta0", c.theta0))
    return c


def derived(c: Quad1DConfig) -> dict:
    """Prop. 6.7.1's constants for this config (γ range, ε_o, levels, bands) and the premises."""
    lo, hi = T.eta_interval(c.x_min, c.x_max, c.theta_star)
    g0, g1 = T.gamma_range(c.eta, c.x_min, c.x_max, c.theta_star)
    m2 = T.m2_of(c.x_min, c.x_max, c.points)
    eps = T.eps_o(g0) if g0 > 1 else float("nan")
    d1, d2 = T.thesis_levels(c.theta_star, eps)
    c1, c2 = T.corrected_levels(c.theta_star, m2, eps)
    init_ok = c.theta0 == "random" or 0 < c.theta0 < c.theta_star
    return {"eta_interval": [lo, hi], "eta_in_interval": bool(lo < c.eta < hi),
            "gamma_range": [g0, g1], "m2": m2, "eps_o": eps, "delta1": d1, "delta2": d2,
            "corrected_levels": [c1, c2], "all_time_upper": T.all_time_upper(c.theta_star, m2),
            "bands": [list(b) for b in T.bands(c.theta_star, eps if eps == eps else 0.0)],
            "theta0_in_premise": bool(init_ok), "div_bound": DIV_FACTOR * c.theta_star}


def simulate(cfg: Quad1DConfig, *, record: int = 0, backend: str = "numba",
             show_progress: bool = False) -> Quad1DResult:
    """Run the ensemble. ``record``: keep θ_t (t = 0..steps) of the first ``record`` runs.
    ``backend``: "numba" (the kernel) or "numpy" (the reference; for tests and benchmarks)."""
    from .._cli import progress
    from ._reference import ensemble_reference

    c = resolve(cfg)
    dv = derived(c)
    fn = K._ensemble if backend == "numba" else ensemble_reference
    key, key0 = stream_keys(c.seed)
    th0 = np.nan if c.theta0 == "random" else float(c.theta0)
    pts = np.asarray(c.points if c.points is not None else [], dtype=np.float64)
    lo_b, hi_b = (np.asarray(b, dtype=np.float64) for b in dv["bands"])
    istat = np.empty((c.runs, K.N_ISTAT), dtype=np.int64)
    fstat = np.empty((c.runs, K.N_FSTAT))
    rec = min(int(record), c.runs)
    traj = np.empty((rec, c.steps + 1)) if rec else None
    with progress(c.runs, disable=not show_progress, desc="quad1d runs", unit="run") as bar:
        for s in range(0, c.runs, CHUNK):
            e = min(c.runs, s + CHUNK)
            tr = traj[s:min(e, rec)] if rec > s else np.empty((0, c.steps + 1))
            fn(key, key0, s, th0, float(c.eta), float(c.theta_star), float(c.x_min), float(c.x_max), pts,
               dv["m2"] / 4.0, lo_b, hi_b, dv["div_bound"], int(c.steps), istat[s:e], fstat[s:e], tr)
            bar.update(e - s)
    return Quad1DResult(
        config=c, theta0=fstat[:, K.F_THETA0], theta_final=fstat[:, K.F_THETA_FINAL],
        loss_min=fstat[:, K.F_LOSS_MIN], loss_max=fstat[:, K.F_LOSS_MAX], loss_final=fstat[:, K.F_LOSS_FINAL],
        argmin=istat[:, K.I_ARGMIN], argmax=istat[:, K.I_ARGMAX], theta_min=fstat[:, K.F_THMIN],
        theta_max=fstat[:, K.F_THMAX], bounce_start=istat[:, K.I_BOUNCE], band_start=istat[:, K.I_BAND],
        div_step=istat[:, K.I_DIV], m2=dv["m2"], traj=traj, derived=dv)
