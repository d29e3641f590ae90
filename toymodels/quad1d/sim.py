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

from ..backends import check_backend
from ..errors import ConfigError, check_finite, check_int, check_positive
from ..progress import progress
from ..rng import check_seed, key64
from . import _kernels as K
from . import _reference as R
from . import theory as T

__all__ = ["Quad1DConfig", "Quad1DResult", "resolve", "simulate", "stream_keys", "DIV_FACTOR", "CHUNK"]

#: a run diverges at the first step with θ non-finite or |θ| > DIV_FACTOR·θ*
DIV_FACTOR = 1e3
#: runs per kernel call (bounds memory: 12 numbers per run, plus a trajectory if recorded)
CHUNK = 1 << 18
#: at most this many runs (the per-run statistics take 96 bytes a run: 10⁸ runs = 9.6 GB)
MAX_RUNS = 10 ** 8
#: at most this many steps (the stream counter is r·2³² + t)
MAX_STEPS = 2 ** 32 - 1


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
    """(key for x, key for θ₀): the counter-stream keys of the named streams (seed, "quad1d/x") and
    (seed, "quad1d/theta0") of :mod:`toymodels.rng`."""
    return key64(seed, "quad1d/x"), key64(seed, "quad1d/theta0")


def resolve(cfg: Quad1DConfig) -> Quad1DConfig:
    """Validate (:class:`~toymodels.errors.ConfigError` naming the field and its range) and return a
    normalized copy.

    Scales are bounded so that every closed form of :func:`derived` stays finite: η·θ*²·x_max² ≤ 1e100
    (beyond ~2 every run diverges at the first step anyway) and θ*, x in [1e-100, 1e100]."""
    c = Quad1DConfig(**asdict(cfg))
    check_positive("theta_star", c.theta_star)
    check_range_("theta_star", c.theta_star)
    c.steps = check_int("steps", c.steps, 1, MAX_STEPS)
    c.runs = check_int("runs", c.runs, 1, MAX_RUNS)
    c.seed = check_seed(c.seed)
    if c.points is not None:
        p = list(c.points) if isinstance(c.points, (list, tuple, np.ndarray)) else None
        if not p or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in p):
            raise ConfigError("points", "must be a non-empty list of finite numbers > 0", c.points)
        p = [float(v) for v in p]
        for v in p:
            check_range_("points", v)
        c.points, c.x_min, c.x_max = p, min(p), max(p)
    else:
        check_finite("x_min", c.x_min)
        check_finite("x_max", c.x_max)
        if not c.x_min > 0:
            raise ConfigError("x_min", "must be > 0 (Prop. 6.7.1 assumes positive inputs)", c.x_min)
        check_range_("x_min", c.x_min)
        if not c.x_max > c.x_min:
            raise ConfigError("x_max", f"must be > x_min = {c.x_min!r}", c.x_max)
        check_range_("x_max", c.x_max)
    check_positive("eta", c.eta)
    if c.eta * (c.theta_star * c.x_max) ** 2 > 1e100:
        raise ConfigError("eta", f"must be <= 1e100 / (theta_star·x_max)² = {1e100 / (c.theta_star * c.x_max) ** 2:.3g} "
                                 "(every run diverges at the first step long before)", c.eta)
    if isinstance(c.theta0, str):
        if c.theta0 != "random":
            raise ConfigError("theta0", "must be a number or 'random'", c.theta0)
    else:
        c.theta0 = check_finite("theta0", c.theta0)
        if abs(c.theta0) > 1e100:
            raise ConfigError("theta0", "must be in [-1e100, 1e100]", c.theta0)
    return c


def check_range_(field: str, value: float) -> None:
    if not 1e-100 <= abs(value) <= 1e100:
        raise ConfigError(field, "must have a magnitude in [1e-100, 1e100]", value)


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
    fn = {"numba": K.ensemble, "numpy": R.ensemble}[check_backend(backend)]
    c = resolve(cfg)
    dv = derived(c)
    key, key0 = stream_keys(c.seed)
    th0 = np.nan if c.theta0 == "random" else float(c.theta0)
    pts = np.asarray(c.points if c.points is not None else [], dtype=np.float64)
    lo_b, hi_b = (np.asarray(b, dtype=np.float64) for b in dv["bands"])
    istat = np.empty((c.runs, K.N_ISTAT), dtype=np.int64)
    fstat = np.empty((c.runs, K.N_FSTAT))
    rec = check_int("record", record, 0, c.runs)
    if rec * (c.steps + 1) > 2 ** 30:
        raise ConfigError("record", f"must be <= {2 ** 30 // (c.steps + 1)} at {c.steps} steps "
                                    "(trajectories take 8 bytes a step: at most 8 GB)", record)
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
