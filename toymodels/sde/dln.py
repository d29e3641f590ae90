"""SGD vs its SDE model vs gradient flow on a diagonal linear network (thesis Fig. 6.2 setting, Sec. 6.8).

Model h(x) = ⟨u⊙v, x⟩, loss L(u, v) = 1/(4n) Σᵢ (⟨u⊙v, xᵢ⟩ − yᵢ)² (this project's ¼-normalization),
θ = (u, v) ∈ R^{2d}, Jacobian φ_θ(X) = [X diag(v), X diag(u)] ∈ R^{n×2d}.

* SGD: batch 1, step η (constant), :func:`toymodels.dln.train_uv`, θ ← θ − η∇ℓ_{i_t}.
* SDE (eq. 6.58): θ ← θ − γ_t∇L(θ) + √γ_t √(η_t δ_t) φ_θ(X)ᵀZ_t, Z_t ~ N(0, I_n), γ_t = η/s
  (s = ``substeps`` = 10 in the thesis) for s·T steps, δ_t = c·L(θ^SGD_{⌊t/s⌋}).
* GF: the same recursion without the noise term.

The constant c. The thesis tunes c per setting. Our default is derived, not tuned: one SGD step is
−η∇L + (η/(2n))φᵀξ (Prop. 6.3.1 in the ¼-normalization) with E‖ξ‖² = 4n(n−1)L; replacing Cov ξ by
its isotropic part (E‖ξ‖²/n)·I gives per-step noise covariance η²(n−1)L/n² · φᵀφ, and the SDE over
the time η of one SGD step has covariance η·ηδ·φᵀφ, so δ = (n−1)L/n², i.e. c = (n−1)/n².

Metrics (as in Sec. 6.4): ``rank_jacobian`` is the number of singular values of φ_θ(X̃) above
``rank_tol`` × the largest, on p = 2d fresh points X̃ ~ N(0, I) (as many as parameters; the same
points for all three runs); ``l0`` = #{k : |uₖvₖ| > l0_tol} (absolute; β* has ±1 entries).

Random streams (:mod:`toymodels.rng`): the data are ``make_sparse_regression(seed)``, the SGD run is
``train_uv``'s (seed), the fresh points X̃ are the stream (seed, "sde/fresh") and the SDE noise
Z_t the stream of ``child_seed(seed, "sde/noise")``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..backends import check_backend
from ..datasets import RegressionData, make_sparse_regression
from ..dln.train import DLNConfig, train_uv
from ..errors import ConfigError, check_int, check_nonneg, check_positive, check_range
from ..progress import progress
from ..rng import check_seed, child_seed, stream
from . import _kernels, _reference

__all__ = ["SDEDLNConfig", "resolve", "jacobian_uv", "rank_jacobian", "l0", "run_sde_dln", "compare",
           "MAX_D", "MAX_DATA", "MAX_SDE_STEPS", "MAX_INIT", "D_WHY", "DATA_WHY", "SDE_WHY"]

#: the largest dimension: the rank is an SVD of the 2d × 2d Jacobian on 2d fresh points (3.2 GB at 10⁴)
MAX_D = 10_000
D_WHY = "the Jacobian rank is an SVD of a 2d x 2d matrix: 3.2 GB at d = 10^4"
#: (n + n_test)·d at most: the data take 8 bytes an entry
MAX_DATA = 10 ** 9
DATA_WHY = "(n + n_test)·d <= 10^9: the data take 8 bytes an entry, at most 8 GB"
#: steps·substeps at most: the SDE's per-step step sizes, scales and indices take 32 bytes a step
MAX_SDE_STEPS = 10 ** 8
SDE_WHY = "steps·substeps <= 10^8: the SDE's per-step arrays take 32 bytes a step, at most 3.2 GB"
#: |u0|, |v0| at most: |u0·v0| <= 1e100 keeps the initial loss finite
MAX_INIT = 1e50
#: noise rows drawn per kernel call, at most (Z is chunk × n; results do not depend on it)
NOISE_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class SDEDLNConfig:
    """Defaults: Fig. 6.2's data (n = 80, d = 200, r = 20, u₀ = 0.1, v₀ = 0) with η = 0.09 (the
    largest step of {0.01, …, 0.1} at which batch-1 SGD stabilizes rather than converges or diverges on
    seed 0 of the original data stream) for T = 20 000 SGD steps; ``c=None`` resolves to (n − 1)/n²,
    ``record_every=None`` to min(100, steps)."""

    n: int = 80
    d: int = 200
    k: int = 20
    n_test: int = 1000
    u0: float = 0.1
    v0: float = 0.0
    lr: float = 0.09
    steps: int = 20_000
    substeps: int = 10
    c: float | None = None
    rank_tol: float = 1e-3
    l0_tol: float = 1e-3
    record_every: int | None = None
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def resolve(cfg: SDEDLNConfig) -> SDEDLNConfig:
    """Validate; fill ``c`` and ``record_every``. Raises :class:`~toymodels.errors.ConfigError` naming
    the field and its range."""
    n = check_int("n", cfg.n, 2)
    d = check_int("d", cfg.d, 1, MAX_D)
    check_int("k", cfg.k, 0, d)
    n_test = check_int("n_test", cfg.n_test, 1)
    if (n + n_test) * d > MAX_DATA:
        raise ConfigError("n" if n >= n_test else "n_test", f"must satisfy {DATA_WHY}", n if n >= n_test else n_test)
    check_positive("lr", cfg.lr)
    steps = check_int("steps", cfg.steps, 1, MAX_SDE_STEPS)
    substeps = check_int("substeps", cfg.substeps, 1, 1000)
    if steps * substeps > MAX_SDE_STEPS:
        raise ConfigError("steps", f"must be <= {MAX_SDE_STEPS // substeps} at substeps = {substeps} ({SDE_WHY})",
                          steps)
    c = (n - 1) / n**2 if cfg.c is None else check_nonneg("c", cfg.c)
    check_range("rank_tol", cfg.rank_tol, 0.0, 1.0, lo_open=True, hi_open=True)
    check_positive("l0_tol", cfg.l0_tol)
    for name in ("u0", "v0"):
        check_range(name, getattr(cfg, name), -MAX_INIT, MAX_INIT)
    every = min(100, steps) if cfg.record_every is None else check_int("record_every", cfg.record_every, 1, steps)
    return replace(cfg, c=float(c), record_every=every, seed=check_seed(cfg.seed))


def jacobian_uv(X, u, v) -> np.ndarray:
    """φ_θ(X) = [X diag(v), X diag(u)]: row i is ∇_{(u,v)} ⟨u⊙v, xᵢ⟩ = (v⊙xᵢ, u⊙xᵢ)."""
    X = np.asarray(X, dtype=np.float64)
    return np.hstack([X * v[None, :], X * u[None, :]])


def rank_jacobian(J, tol: float) -> int:
    """#{singular values > tol·σ_max} (0 for J = 0 or non-finite J)."""
    if not np.all(np.isfinite(J)):
        return -1
    s = np.linalg.svd(J, compute_uv=False)
    return 0 if s.size == 0 or s[0] == 0 else int(np.sum(s > tol * s[0]))


def l0(beta, tol: float) -> int:
    beta = np.asarray(beta)
    return int(np.sum(np.abs(beta) > tol)) if np.all(np.isfinite(beta)) else -1


def run_sde_dln(X, y, u0, v0, gamma, scale, *, seed: int, record_every: int = 1, backend: str = "numba",
                chunk: int = 20_000, show_progress: bool = False) -> dict:
    """Run recursion (6.58) for len(gamma) steps from (u0, v0) (see :func:`._kernels.em_dln`).

    ``scale[t]`` = √(η_t δ_t); all zeros gives the gradient-flow discretization (no noise drawn).
    Z_t are drawn chunk by chunk (at most ``chunk`` steps, and 2²⁴ numbers, a chunk) from the stream
    ``toymodels.rng.stream(seed)`` (= ``default_rng(seed)``), so results do not depend on ``chunk``.

    Returns
    -------
    dict with ``u``, ``v``, ``curve`` (loss every ``record_every`` steps, from step 0),
    ``diverged_at`` (step or None).
    """
    fn = {"numba": _kernels.em_dln, "numpy": _reference.em_dln}[check_backend(backend)]
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    gamma = np.ascontiguousarray(gamma, dtype=np.float64)
    scale = np.ascontiguousarray(scale, dtype=np.float64)
    n, d = X.shape
    S = gamma.size
    record_every = check_int("record_every", record_every, 1)
    chunk = max(1, min(check_int("chunk", chunk, 1), NOISE_ELEMENTS // n))
    u = np.array(np.broadcast_to(u0, (d,)), dtype=np.float64)
    v = np.array(np.broadcast_to(v0, (d,)), dtype=np.float64)
    rec = np.full(S // record_every + 1, np.nan)
    r0 = X @ (u * v) - y
    rec[0] = 0.25 * float(r0 @ r0) / n
    rng = stream(seed)
    noisy = bool(np.any(scale != 0))
    status = -1
    with progress(S, disable=not show_progress, desc="SDE" if noisy else "GF", unit="step") as bar:
        for t0 in range(0, S, chunk):
            t1 = min(S, t0 + chunk)
            Z = rng.standard_normal((t1 - t0, n)) if noisy else np.zeros((t1 - t0, n))
            status = fn(X, y, u, v, gamma, scale, Z, t0, t1, record_every, rec)
            bar.update(t1 - t0)
            if status >= 0:
                break
    return {"u": u, "v": v, "curve": rec, "diverged_at": None if status < 0 else int(status)}


def _metrics(data: RegressionData, Xf, u, v, cfg, diverged_at, extra: dict) -> dict:
    with np.errstate(all="ignore"):
        beta = u * v
    ok = diverged_at is None and np.all(np.isfinite(beta))
    if ok:
        r, rt = data.X @ beta - data.y, data.X_test @ beta - data.y_test
        tr, te = 0.25 * float(r @ r) / data.n, 0.25 * float(rt @ rt) / data.n_test
    else:
        tr = te = float("inf")
    return {"train_loss": tr, "test_loss": te,
            "rank_jacobian": rank_jacobian(jacobian_uv(Xf, u, v), cfg.rank_tol) if ok else None,
            "l0": l0(beta, cfg.l0_tol) if ok else None, "diverged": not ok, "diverged_at": diverged_at,
            "beta": beta, **extra}


def compare(config: SDEDLNConfig = SDEDLNConfig(), *, backend: str = "numba",
            show_progress: bool = False) -> dict:
    """SGD, its SDE model and gradient flow from the same init on the same data (module docstring).

    Returns
    -------
    dict: ``config`` (resolved), ``sgd``/``sde``/``gf`` (train_loss, test_loss, rank_jacobian, l0,
    diverged, diverged_at, beta, curve_steps, curve_train — the last two in SGD-step units), initial
    ``rank_jacobian_init`` and ``l0_init``, ``beta_star``.
    """
    cfg = resolve(config)
    check_backend(backend)
    data = make_sparse_regression(n=cfg.n, d=cfg.d, k=cfg.k, n_test=cfg.n_test, seed=cfg.seed)
    Xf = stream(cfg.seed, "sde/fresh").standard_normal((2 * cfg.d, cfg.d))
    T, s = cfg.steps, cfg.substeps
    t_start = time.perf_counter()
    sgd = train_uv(data, DLNConfig(lr=cfg.lr, algo="sgd", batch=1, steps=T, seed=cfg.seed, record_every=1),
                   cfg.u0, cfg.v0, show_progress=show_progress)
    L_sgd = np.full(T + 1, np.nan)
    L_sgd[: sgd.curve_train.size] = sgd.curve_train       # NaN after an SGD divergence → SDE stops too
    gamma = np.full(T * s, cfg.lr / s)
    delta = cfg.c * L_sgd[np.arange(T * s) // s]
    scale = np.sqrt(cfg.lr * delta)
    every = cfg.record_every
    out = {"config": cfg.as_dict() | {"c_default": (cfg.n - 1) / cfg.n**2}, "beta_star": data.beta_star}
    u0 = np.full(cfg.d, cfg.u0)
    v0 = np.full(cfg.d, cfg.v0)
    out["rank_jacobian_init"] = rank_jacobian(jacobian_uv(Xf, u0, v0), cfg.rank_tol)
    out["l0_init"] = l0(u0 * v0, cfg.l0_tol)
    u, v = sgd.extra["u"], sgd.extra["v"]
    steps_sgd = np.arange(0, sgd.curve_train.size, every)
    out["sgd"] = _metrics(data, Xf, u, v, cfg, sgd.diverged_at,
                          {"curve_steps": steps_sgd, "curve_train": sgd.curve_train[steps_sgd]})
    for name, sc in (("sde", scale), ("gf", np.zeros_like(scale))):
        res = run_sde_dln(data.X, data.y, u0, v0, gamma, sc, seed=child_seed(cfg.seed, "sde/noise"),
                          record_every=every * s, backend=backend, show_progress=show_progress)
        da = None if res["diverged_at"] is None else res["diverged_at"] // s
        out[name] = _metrics(data, Xf, res["u"], res["v"], cfg, da,
                             {"curve_steps": np.arange(res["curve"].size) * every, "curve_train": res["curve"]})
    out["runtime_s"] = time.perf_counter() - t_start
    return out
