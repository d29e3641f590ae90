"""SGD vs its SDE model vs gradient flow on the ReLU teacher–student models (thesis Sec. 6.8, Fig. 6.9).

Models (:mod:`toymodels.relu`), loss L(θ) = 1/(2n) Σᵢ (f_θ(xᵢ) − yᵢ)² (the project's ½-normalization):

* ``relu2``: f = Σⱼ aⱼReLU(wⱼ·x), d = 2, 3-neuron teacher, 50-neuron student
  (:mod:`toymodels.relu.teacher2`, Fig. 6.10/6.14), θ = (vec W, a);
* ``relu3``: f = aᵀReLU(W₂ReLU(W₁x)), d = 5, 2-2 teacher, 10-10 student, n = 50
  (:mod:`toymodels.relu.teacher3`, Fig. 6.5), θ = (vec W₁, vec W₂, a).

Three runs from the same initialization on the same data:

* SGD: the teacher module's batch-1 SGD run of the large-step schedule η_t decayed at ``transition``·T
  (same data, init, sampling indices and kernel as ``python -m toymodels.relu teacher{2,3}``); its
  full-batch loss L(θ_t^SGD) is recorded at every step.
* SDE, eq. (6.58): θ ← θ − γ_t∇L(θ) + √γ_t √(η_t δ_t) φ_θ(X)ᵀZ_t, Z_t ~ N(0, I_n), for s·T steps
  (s = ``substeps`` = 10 as in the thesis), γ_t = η_{⌊t/s⌋}/s, δ_t = c·L(θ^SGD_{⌊t/s⌋}).
* GF: the same recursion without the noise term.

The constant c. The thesis tunes c per setting; our default is derived as for the DLN
(:mod:`toymodels.sde.dln`): one SGD step is −η∇L + (η/n)φᵀξ (Prop. 6.3.1, ½-normalization) with
E‖ξ‖² = (n − 1)‖r‖² = 2n(n − 1)L; replacing Cov ξ by (E‖ξ‖²/n)·I gives the per-step noise covariance
η²·2(n − 1)L/n² · φᵀφ, and the SDE over the time η of one SGD step has covariance η·ηδ·φᵀφ, so
δ = 2(n − 1)L/n², c = 2(n − 1)/n² (the DLN's (n − 1)/n² with its ¼-normalization: in both,
δ = (n − 1)‖r‖²/n³).

Metrics at ``n_checkpoints`` evenly spaced SGD steps (SDE/GF at s× the step index, i.e. the same
continuous time): training and test loss; ``rank_jacobian`` = #{σ > ``rank_tol``·σ_max} of φ_θ(X̃) on
p fresh points X̃ ~ N(0, I_d), p = #parameters (thesis l. 3155; the same X̃ for the three runs — note
that ``relu teacher{2,3}`` compute their rank on the n training points instead, which caps it at n);
``feature_sparsity`` (:func:`toymodels.relu.metrics.feature_sparsity`, training set, correlation
threshold ``corr_threshold``): one number for relu2, one per hidden layer for relu3.

Random streams (:mod:`toymodels.rng`): the data, teacher, student init, SGD sample indices and fresh
points X̃ are the relu package's (:mod:`toymodels.relu.streams`: the same as ``python -m toymodels.relu
teacher{2,3}``); the SDE noise Z_t is the stream of ``child_seed(seed, "sde/noise")``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..backends import check_backend
from ..errors import ConfigError, check_choice, check_int, check_nonneg, check_range
from ..progress import progress
from ..relu._kernels import teacher2 as _relu2, teacher3 as _relu3
from ..relu.metrics import feature_sparsity, jacobian_rank
from ..relu.model import checkpoints
from ..relu.streams import fresh_points, sgd_indices
from ..rng import check_seed, child_seed, stream
from . import _kernels, _reference
from .dln import MAX_SDE_STEPS, SDE_WHY

__all__ = ["SDEReLUConfig", "MODELS", "resolve", "teacher_config", "problem", "param_views", "jacobian",
           "features", "run_sgd_trace", "run_sde_relu", "compare"]

MODELS = ("relu2", "relu3")


@dataclass(frozen=True)
class SDEReLUConfig:
    """``None`` fields take the teacher module's default (:class:`toymodels.relu.teacher2.Teacher2Config`
    or :class:`toymodels.relu.teacher3.Teacher3Config`); ``c=None`` resolves to 2(n − 1)/n²."""

    model: str = "relu3"
    steps: int | None = None
    transition: float = 0.5
    lr: float | None = None
    warmup_factor: float | None = None
    decay_factor: float | None = None
    init_scale: float | None = None
    substeps: int = 10
    c: float | None = None
    n_checkpoints: int = 50
    rank_tol: float | None = None
    corr_threshold: float = 0.95
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def teacher_config(cfg: SDEReLUConfig):
    """The teacher module's config of the matching SGD run (validated)."""
    if cfg.model == "relu2":
        from ..relu.teacher2 import Teacher2Config as C
    else:
        from ..relu.teacher3 import Teacher3Config as C
    over = {k: getattr(cfg, k) for k in ("steps", "lr", "warmup_factor", "decay_factor", "init_scale",
                                         "rank_tol") if getattr(cfg, k) is not None}
    tc = C(**over, transition=cfg.transition, corr_threshold=cfg.corr_threshold, seed=cfg.seed,
           n_checkpoints=cfg.n_checkpoints)
    tc.validate()
    return tc


def resolve(cfg: SDEReLUConfig) -> SDEReLUConfig:
    """Validate and fill every ``None`` (raises :class:`~toymodels.errors.ConfigError` naming the field)."""
    check_choice("model", cfg.model, MODELS)
    check_seed(cfg.seed)
    substeps = check_int("substeps", cfg.substeps, 1, 1000)
    check_int("n_checkpoints", cfg.n_checkpoints, 1, 10_000)
    check_range("transition", cfg.transition, 0.0, 1.0, lo_open=True, hi_open=True)
    if cfg.steps is not None:
        check_int("steps", cfg.steps, 1, MAX_SDE_STEPS)
    if cfg.c is not None:
        check_nonneg("c", cfg.c)
    tc = teacher_config(cfg)
    if tc.steps * substeps > MAX_SDE_STEPS:
        raise ConfigError("steps", f"must be <= {MAX_SDE_STEPS // substeps} at substeps = {substeps} ({SDE_WHY})",
                          tc.steps)
    c = 2.0 * (tc.n - 1) / tc.n**2 if cfg.c is None else cfg.c
    return replace(cfg, steps=tc.steps, lr=tc.lr, warmup_factor=tc.warmup_factor, decay_factor=tc.decay_factor,
                   init_scale=tc.init_scale, rank_tol=tc.rank_tol, c=float(c))


def problem(model: str, tc):
    """(X, y, X_test, y_test, θ₀ flat, shapes) of ``model`` with teacher config ``tc`` (the same draws
    as its teacher module)."""
    check_choice("model", model, MODELS)
    ds = tc.seed if tc.data_seed is None else tc.data_seed
    isd = tc.seed if tc.init_seed is None else tc.init_seed
    if model == "relu2":
        from ..relu.teacher2 import init_student2, teacher2_data
        X, y, Xt, yt, _ = teacher2_data(tc.d, tc.m_teacher, tc.n, tc.n_test, ds)
        params = init_student2(tc.d, tc.m, tc.init_scale, isd)
    else:
        from ..relu.teacher3 import init_student, teacher_data
        X, y, Xt, yt, _ = teacher_data(tc.d, tc.m_teacher, tc.n, tc.n_test, ds)
        params = init_student(tc.d, tc.m, tc.init_scale, isd)
    shapes = tuple(p.shape for p in params)
    return X, y, Xt, yt, np.concatenate([p.ravel() for p in params]), shapes


def param_views(theta: np.ndarray, shapes) -> tuple:
    """C-contiguous views (W, a) or (W₁, W₂, a) into the flat θ (writes through)."""
    out, o = [], 0
    for s in shapes:
        k = int(np.prod(s))
        out.append(theta[o:o + k].reshape(s))
        o += k
    return tuple(out)


def jacobian(X, theta, shapes) -> np.ndarray:
    """φ_θ(X) (n × p) with the relu package's numba kernels."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    J = np.empty((X.shape[0], theta.size))
    ps = param_views(np.ascontiguousarray(theta, dtype=np.float64), shapes)
    (_relu2.jacobian if len(shapes) == 2 else _relu3.jacobian)(X, *ps, J)
    return J


def features(X, theta, shapes) -> list:
    """Hidden-layer activations on X: [ReLU(XWᵀ)] or [ReLU(XW₁ᵀ), ReLU(ReLU(XW₁ᵀ)W₂ᵀ)]."""
    ps = param_views(theta, shapes)
    r1 = np.maximum(X @ ps[0].T, 0.0)
    return [r1] if len(shapes) == 2 else [r1, np.maximum(r1 @ ps[1].T, 0.0)]


def _loss(X, y, theta, shapes) -> float:
    ps = param_views(np.ascontiguousarray(theta), shapes)
    return float((_relu2.loss if len(shapes) == 2 else _relu3.loss)(X, y, *ps))


def run_sgd_trace(X, y, theta0, shapes, lr, idx, at, *, chunk: int = 5000):
    """Batch-1 SGD θ ← θ − η_t(f(x_{i_t}) − y_{i_t})∇f(x_{i_t}) with the relu package's ``_sgd`` kernel,
    recording the full-batch loss L(θ_t) at *every* step t = 0..T and θ at the steps ``at``.

    Returns (losses (T+1,), thetas (len(at), p), diverged_at or None); NaN after a divergence.
    """
    T = lr.size
    theta = np.array(theta0, dtype=np.float64)
    ps = param_views(theta, shapes)
    fn = _relu2.sgd if len(shapes) == 2 else _relu3.sgd
    losses = np.full(T + 1, np.nan)
    losses[0] = _loss(X, y, theta, shapes)
    snaps = np.full((len(at), theta.size), np.nan)
    at = np.asarray(at)
    snaps[at == 0] = theta
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        L = t1 - t0
        recs = [np.full((L, *s), np.nan) for s in shapes]
        rl = np.full(L, np.nan)
        st = fn(X, y, *ps, lr[t0:t1], idx[t0:t1], np.arange(1, L + 1), *recs, rl)
        losses[t0 + 1:t1 + 1] = rl
        for k in np.flatnonzero((at > t0) & (at <= t1)):
            snaps[k] = np.concatenate([r[at[k] - t0 - 1].ravel() for r in recs])
        if st >= 0:
            return losses, snaps, t0 + int(st)
    return losses, snaps, None


def _widths(shapes) -> tuple:
    """The hidden widths the kernels take: (m,) for (W, a), (m1, m2) for (W₁, W₂, a)."""
    return tuple(sh[0] for sh in shapes[:-1])


def run_sde_relu(X, y, theta0, shapes, gamma, scale, *, seed: int, at=None, record_every: int = 1,
                 backend: str = "numba", show_progress: bool = False, desc: str = "SDE") -> dict:
    """Recursion (6.58) for len(gamma) steps from θ₀ (kernels :func:`._kernels.em_relu2` / ``em_relu3``).

    ``scale[t]`` = √(η_t δ_t); all zeros = gradient-flow discretization (no noise drawn). Z_t come from
    ``toymodels.rng.stream(seed)`` (= ``default_rng(seed)``) in order, so results do not depend on the
    chunking by ``at``.

    Returns dict ``theta`` (final), ``thetas`` (θ at the steps ``at``), ``curve`` (L(θ_t) for
    t % record_every == 0), ``diverged_at`` (step or None).
    """
    two = len(shapes) == 2
    fn = {"numba": _kernels.em_relu2 if two else _kernels.em_relu3,
          "numpy": _reference.em_relu2 if two else _reference.em_relu3}[check_backend(backend)]
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    gamma = np.ascontiguousarray(gamma, dtype=np.float64)
    scale = np.ascontiguousarray(scale, dtype=np.float64)
    S, n = gamma.size, X.shape[0]
    record_every = check_int("record_every", record_every, 1)
    at = np.array([S] if at is None else at, dtype=np.int64)
    theta = np.array(theta0, dtype=np.float64)
    rec = np.full((S - 1) // record_every + 1, np.nan)
    rng = stream(seed)
    noisy = bool(np.any(scale != 0))
    thetas = np.full((at.size, theta.size), np.nan)
    status, t0 = -1, 0
    with progress(S, disable=not show_progress, desc=desc, unit="step") as bar:
        for k, t1 in enumerate(at):
            if t1 > t0:
                Z = rng.standard_normal((t1 - t0, n)) if noisy else np.zeros((t1 - t0, n))
                status = fn(X, y, theta, *_widths(shapes), gamma, scale, Z, t0, t1, record_every, rec)
                bar.update(t1 - t0)
                t0 = int(t1)
            if status >= 0:
                break
            thetas[k] = theta
    return {"theta": theta, "thetas": thetas, "curve": rec, "diverged_at": None if status < 0 else int(status)}


def _metrics(theta, X, y, Xt, yt, Xf, shapes, cfg) -> dict:
    if not np.all(np.isfinite(theta)):
        return {"train_loss": None, "test_loss": None, "rank_jacobian": None, "feature_sparsity": None}
    sp = [feature_sparsity(a, cfg.corr_threshold) for a in features(X, theta, shapes)]
    tr, te = _loss(X, y, theta, shapes), _loss(Xt, yt, theta, shapes)
    ok = np.isfinite(tr) and np.isfinite(te)
    return {"train_loss": tr if ok else None, "test_loss": te if ok else None,
            "rank_jacobian": jacobian_rank(jacobian(Xf, theta, shapes), cfg.rank_tol) if ok else None,
            "feature_sparsity": sp[0] if len(sp) == 1 else sp}


def _series(ms: list[dict], layers: int) -> dict:
    """The metrics over the checkpoints as arrays (NaN after a divergence; feature sparsity: one column
    per hidden layer when there are several)."""
    def arr(k):
        gap = [np.nan] * layers if k == "feature_sparsity" and layers > 1 else np.nan
        return np.array([gap if m[k] is None else m[k] for m in ms], dtype=np.float64)

    return {k: arr(k) for k in ("train_loss", "test_loss", "rank_jacobian", "feature_sparsity")}


def compare(config: SDEReLUConfig = SDEReLUConfig(), *, backend: str = "numba",
            show_progress: bool = False) -> dict:
    """SGD, its SDE model and gradient flow on a ReLU teacher–student model (module docstring).

    Returns
    -------
    dict: ``config`` (resolved, plus ``n``, ``d``, ``m``, ``n_params``, ``c_default``), ``iters``
    (checkpoint SGD steps), ``sgd``/``sde``/``gf`` each with the final ``train_loss``, ``test_loss``,
    ``rank_jacobian``, ``feature_sparsity``, ``diverged_at`` (SGD-step units) and ``series`` (the
    four metrics at every checkpoint, arrays), ``curve`` (training loss per SGD step; SDE/GF: at
    every s-th step); ``lr`` (η_t); ``runtime_s``.
    """
    cfg = resolve(config)
    check_backend(backend)
    tc = teacher_config(cfg)
    X, y, Xt, yt, theta0, shapes = problem(cfg.model, tc)
    p = theta0.size
    Xf = fresh_points(cfg.seed, p, tc.d)
    T, s = tc.steps, cfg.substeps
    lr = tc.schedule()
    idx = sgd_indices(tc.seed, tc.n, T)
    at = checkpoints(T, cfg.n_checkpoints)
    t_start = time.perf_counter()
    L_sgd, sgd_thetas, sgd_div = run_sgd_trace(X, y, theta0, shapes, lr, idx, at)
    gamma = np.repeat(lr / s, s)
    with np.errstate(invalid="ignore"):
        scale = np.sqrt(np.repeat(lr * cfg.c * L_sgd[:T], s))     # NaN after an SGD divergence: SDE stops
    out = {"config": cfg.as_dict() | {"n": tc.n, "d": tc.d, "m": tc.m, "n_params": p,
                                      "c_default": 2.0 * (tc.n - 1) / tc.n**2},
           "iters": at, "lr": lr}
    seed_noise = child_seed(cfg.seed, "sde/noise")
    runs = {"sgd": (sgd_thetas, L_sgd, sgd_div)}
    for name, sc in (("sde", scale), ("gf", np.zeros_like(scale))):
        res = run_sde_relu(X, y, theta0, shapes, gamma, sc, seed=seed_noise, at=at * s, record_every=s,
                           backend=backend, show_progress=show_progress, desc=name.upper())
        runs[name] = (res["thetas"], res["curve"], None if res["diverged_at"] is None else res["diverged_at"] // s)
    for name, (thetas, curve, div) in runs.items():
        ms = [_metrics(th, X, y, Xt, yt, Xf, shapes, cfg) for th in thetas]
        out[name] = ms[-1] | {"diverged": div is not None, "diverged_at": div, "series": _series(ms, len(shapes) - 1),
                              "curve": curve, "theta": thetas[-1]}
    out["runtime_s"] = time.perf_counter() - t_start
    return out
