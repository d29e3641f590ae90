"""Training diagonal linear networks with GD, SGD and the SAM family (thesis Ch. 5).

Model and loss (thesis eq. 5.5), β = w₊² − w₋²,

    L(w) = 1/(4n) Σᵢ (⟨w₊² − w₋², xᵢ⟩ − yᵢ)²,   ℓᵢ(w) = ¼(⟨β, xᵢ⟩ − yᵢ)²,

initialized at w₊ = w₋ = α (scalar or vector). Algorithms (``DLNConfig.sam`` × ``algo``):

* ``none``  — GD (full batch) or SGD (batch B, with or without replacement).
* ``1``     — 1-SAM, eq. 5.8: each ℓᵢ of the (full or stochastic) batch is ascended by ρ∇ℓᵢ.
* ``n``     — n-SAM, eq. 5.8: the batch loss is ascended by ρ∇L_batch (full batch: n-SAM; SGD: m-SAM
              with m = B, eq. 5.4). ``ascent="independent"`` takes the ascent on a separately drawn
              batch (eq. 5.21).
* ``m``     — m-SAM: ascent per chunk of m consecutive examples of the batch (m divides the batch).
``normalize=True`` uses ρ/‖∇L_G‖ (Foret et al.). ``switch_at`` turns SAM on (ERM→SAM) or off
(SAM→ERM) at that step (Fig. 5.15); step sizes follow :mod:`toymodels.schedules`.

The result carries the effective initialization scale α_eff = √(w₊ ⊙ w₋) of the final iterate and
its leading-order prediction (``theory.py``), which together make Thm 5.9.2/5.9.3 checkable.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .._cli import UsageError, check_choice, check_int_range, check_nonneg, check_positive, progress
from ..datasets import RegressionData
from ..schedules import SCHEDULES, make_schedule
from . import _kernels
from ._reference import run_reference

__all__ = ["DLNConfig", "DLNResult", "train", "resolve", "method_name", "uv_to_w", "w_to_uv", "train_uv"]

SAM_KINDS = ("none", "1", "n", "m")


@dataclass(frozen=True)
class DLNConfig:
    """Hyperparameters of one DLN run. ``None`` means "resolve from the data" (see :func:`resolve`):
    lr = 1/d, rho = 1/d for SAM (0 for ERM), batch = 1 for SGD, m = batch."""

    sam: str = "none"
    rho: float | None = None
    m: int | None = None
    lr: float | None = None
    alpha: float = 0.01
    steps: int = 20_000
    algo: str = "gd"
    batch: int | None = None
    replacement: bool = True
    normalize: bool = False
    ascent: str = "same"
    ascent_batch: int | None = None
    switch_at: int | None = None
    switch_mode: str = "erm-to-sam"
    schedule: str = "constant"
    decay_at: tuple = ()
    decay_factor: float = 0.1
    warmup_steps: int = 0
    warmup_ratio: float = 1e-3
    rho_schedule: str = "constant"
    tol: float = 1e-8
    record_every: int | None = None
    seed: int = 0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["decay_at"] = list(self.decay_at)
        return out


@dataclass
class DLNResult:
    """Outcome of one run. Losses use the ¼-normalization of eq. 5.5; ``alpha_eff*`` are vectors."""

    method: str
    config: dict
    beta: np.ndarray
    w_plus: np.ndarray
    w_minus: np.ndarray
    train_loss: float
    test_loss: float
    converged: bool
    diverged: bool
    diverged_at: int | None
    steps_run: int
    alpha: np.ndarray
    alpha_eff: np.ndarray
    alpha_eff_theory: np.ndarray
    alpha_eff_theory_discrete: np.ndarray
    curve_steps: np.ndarray
    curve_train: np.ndarray
    curve_test: np.ndarray
    beta_star: np.ndarray | None = None
    runtime_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def beta_l1(self) -> float:
        return float(np.abs(self.beta).sum())

    @property
    def beta_error(self) -> float | None:
        return None if self.beta_star is None else float(np.linalg.norm(self.beta - self.beta_star))

    def summary(self) -> dict:
        """JSON-ready scalars and vectors (without the curves)."""
        return {
            "method": self.method, "config": self.config, "train_loss": self.train_loss,
            "test_loss": self.test_loss, "beta": self.beta, "beta_l1": self.beta_l1,
            "beta_error": self.beta_error, "converged": self.converged, "diverged": self.diverged,
            "diverged_at": self.diverged_at, "steps_run": self.steps_run, "alpha_eff": self.alpha_eff,
            "alpha_eff_theory": self.alpha_eff_theory,
            "alpha_eff_theory_discrete": self.alpha_eff_theory_discrete, "runtime_s": self.runtime_s,
        }


def method_name(cfg: DLNConfig, n: int | None = None) -> str:
    base = {"none": "ERM", "1": "1-SAM", "n": "n-SAM", "m": f"{cfg.m}-SAM"}[cfg.sam]
    if cfg.sam == "n" and cfg.ascent == "independent":
        base = "n-SAM (independent ascent batch)"
    if cfg.sam != "none" and cfg.normalize:
        base += " (normalized)"
    if cfg.sam != "none" and cfg.switch_at is not None:
        base = f"ERM→{base}" if cfg.switch_mode == "erm-to-sam" else f"{base}→ERM"
        base += f" @ {cfg.switch_at}"
    algo = "GD" if cfg.algo == "gd" else f"SGD B={cfg.batch}"
    return f"{base} ({algo})"


def resolve(cfg: DLNConfig, n: int, d: int) -> DLNConfig:
    """Validate ``cfg`` against a data set of n examples in dimension d and fill in defaults.

    Raises :class:`UsageError` naming the offending parameter and its valid range."""
    check_choice("sam", cfg.sam, SAM_KINDS)
    check_choice("algo", cfg.algo, ("gd", "sgd"))
    check_choice("ascent", cfg.ascent, ("same", "independent"))
    check_choice("switch_mode", cfg.switch_mode, ("erm-to-sam", "sam-to-erm"))
    check_choice("schedule", cfg.schedule, SCHEDULES)
    check_choice("rho_schedule", cfg.rho_schedule, ("constant", "same-as-lr"))
    check_int_range("steps", cfg.steps, 1)
    check_int_range("seed", cfg.seed, 0, 2**63 - 1)
    alpha = np.asarray(cfg.alpha, dtype=np.float64)
    if alpha.ndim > 1 or (alpha.ndim == 1 and alpha.shape[0] != d):
        raise UsageError(f"alpha must be a scalar or a vector of length d={d}")
    if not np.all(np.isfinite(alpha)) or not np.all(alpha > 0):
        raise UsageError(f"alpha must be > 0 (and finite), got {cfg.alpha!r}")
    lr = 1.0 / d if cfg.lr is None else cfg.lr
    check_positive("lr", lr)
    rho = (0.0 if cfg.sam == "none" else 1.0 / d) if cfg.rho is None else cfg.rho
    check_nonneg("rho", rho)
    check_positive("tol", cfg.tol)
    if cfg.algo == "gd":
        if cfg.batch not in (None, n):
            raise UsageError(f"batch applies to --algo sgd only (gd uses all n={n} examples)")
        batch = n
        if cfg.ascent == "independent":
            raise UsageError("ascent 'independent' (eq. 5.21) needs --algo sgd: with full batches "
                             "both batches are the whole data set")
    else:
        batch = 1 if cfg.batch is None else cfg.batch
        check_int_range("batch", batch, 1, None if cfg.replacement else n)
    if cfg.sam == "m":
        if cfg.m is None:
            raise UsageError(f"--sam m needs --m M, an integer in [1, {batch}] dividing the batch size {batch}")
        check_int_range("m", cfg.m, 1, batch)
        if batch % cfg.m:
            raise UsageError(f"m must divide the batch size {batch}, got {cfg.m}")
        m = cfg.m
    else:
        m = {"none": batch, "1": 1, "n": batch}[cfg.sam]
        if cfg.m is not None and cfg.m != m:
            raise UsageError(f"--m applies to --sam m only (--sam {cfg.sam} uses m={m})")
    ascent_batch = None
    if cfg.ascent == "independent":
        if cfg.sam != "n":
            raise UsageError("ascent 'independent' (eq. 5.21) applies to --sam n only")
        ascent_batch = batch if cfg.ascent_batch is None else cfg.ascent_batch
        check_int_range("ascent_batch", ascent_batch, 1, None if cfg.replacement else n)
    elif cfg.ascent_batch is not None:
        raise UsageError("ascent_batch applies to ascent 'independent' only")
    if cfg.switch_at is not None:
        check_int_range("switch_at", cfg.switch_at, 0, cfg.steps)
        if cfg.sam == "none":
            raise UsageError("switch_at needs a SAM variant (--sam 1, n or m) to switch to or from")
    rec = cfg.record_every or max(1, cfg.steps // 2000)
    check_int_range("record_every", rec, 1, cfg.steps)
    return replace(cfg, lr=float(lr), rho=float(rho), batch=batch, m=m, ascent_batch=ascent_batch,
                   record_every=rec, alpha=(float(alpha) if alpha.ndim == 0 else alpha.tolist()),
                   decay_at=tuple(cfg.decay_at))


def schedules_of(cfg: DLNConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-step (γ_t, ρ_t) of a resolved config; ρ_t encodes SAM on/off and the switch."""
    lr = make_schedule(cfg.lr, cfg.steps, cfg.schedule, decay_at=cfg.decay_at, factor=cfg.decay_factor,
                       warmup_steps=cfg.warmup_steps, warmup_ratio=cfg.warmup_ratio)
    if cfg.rho_schedule == "same-as-lr":
        rho = lr * (cfg.rho / cfg.lr)
    else:
        rho = np.full(cfg.steps, cfg.rho)
    if cfg.sam == "none":
        rho[:] = 0.0
    elif cfg.switch_at is not None:
        if cfg.switch_mode == "erm-to-sam":
            rho[:cfg.switch_at] = 0.0
        else:
            rho[cfg.switch_at:] = 0.0
    return lr, rho


class _IndexStream:
    """Mini-batch indices, drawn chunk by chunk from one Generator so that the sequence does not
    depend on how the run is split into kernel calls. Without replacement: consecutive slices of a
    stream of independent permutations (batches may straddle epochs)."""

    def __init__(self, rng: np.random.Generator, n: int, b: int, replacement: bool):
        self.rng, self.n, self.b, self.replacement = rng, n, b, replacement
        self.buf = np.empty(0, dtype=np.int64)

    def take(self, steps: int) -> np.ndarray:
        need = steps * self.b
        if self.replacement:
            return self.rng.integers(0, self.n, size=need).reshape(steps, self.b)
        while self.buf.size < need:
            self.buf = np.concatenate([self.buf, self.rng.permutation(self.n)])
        out, self.buf = self.buf[:need], self.buf[need:]
        return out.reshape(steps, self.b)


def _init_w(cfg: DLNConfig, d: int, init):
    if init is None:
        a = np.broadcast_to(np.asarray(cfg.alpha, dtype=np.float64), (d,))
        return a.copy(), a.copy()
    wp, wm = (np.array(v, dtype=np.float64).reshape(d) for v in init)
    if not (np.all(np.isfinite(wp)) and np.all(np.isfinite(wm))):
        raise UsageError("initial weights must be finite")
    return wp, wm


@dataclass
class _RunState:
    """Everything one run's kernel calls need, prepared by :func:`_prepare` (shared by :func:`train`
    and :func:`toymodels.dln.ensemble.train_ensemble`)."""

    cfg: DLNConfig
    data: RegressionData
    X: np.ndarray
    y: np.ndarray
    Xte: np.ndarray
    yte: np.ndarray
    wp: np.ndarray
    wm: np.ndarray
    alpha0: np.ndarray
    lr: np.ndarray
    rho: np.ndarray
    rec_train: np.ndarray
    rec_test: np.ndarray
    log_flow: np.ndarray
    log_disc: np.ndarray
    stream: _IndexStream | None
    astream: _IndexStream | None
    mode: int

    def batches(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        idx = (self.stream.take(t1 - t0) if self.stream is not None
               else np.empty((t1 - t0, 0), dtype=np.int64))
        aidx = (self.astream.take(t1 - t0) if self.astream is not None
                else np.empty((t1 - t0, 0), dtype=np.int64))
        return idx, aidx


def _prepare(data: RegressionData, config: DLNConfig, init=None) -> _RunState:
    cfg = resolve(config, data.n, data.d)
    n, d = data.n, data.d
    X = np.ascontiguousarray(data.X, dtype=np.float64)
    y = np.ascontiguousarray(data.y, dtype=np.float64)
    Xte = np.ascontiguousarray(data.X_test, dtype=np.float64)
    yte = np.ascontiguousarray(data.y_test, dtype=np.float64)
    wp, wm = _init_w(cfg, d, init)
    lr, rho = schedules_of(cfg)
    n_rec = cfg.steps // cfg.record_every + 1
    rec_train = np.full(n_rec, np.nan)
    rec_test = np.full(n_rec, np.nan)
    rec_train[0] = 0.25 * np.mean((X @ (wp**2 - wm**2) - y) ** 2)
    rec_test[0] = 0.25 * np.mean((Xte @ (wp**2 - wm**2) - yte) ** 2)
    rng = np.random.default_rng(cfg.seed)
    stream = _IndexStream(rng, n, cfg.batch, cfg.replacement) if cfg.algo == "sgd" else None
    astream = (_IndexStream(rng.spawn(1)[0], n, cfg.ascent_batch, cfg.replacement)
               if cfg.ascent == "independent" else None)
    return _RunState(cfg, data, X, y, Xte, yte, wp, wm, np.sqrt(np.abs(wp * wm)), lr, rho, rec_train,
                     rec_test, np.zeros(d), np.zeros(d), stream, astream,
                     1 if cfg.ascent == "independent" else 0)


def _finish(st: _RunState, status: int, runtime: float) -> DLNResult:
    cfg, wp, wm = st.cfg, st.wp, st.wm
    diverged = status >= 0
    steps_run = status if diverged else cfg.steps
    beta = wp**2 - wm**2
    if diverged:
        train_loss = test_loss = float("inf")
    else:
        r = st.X @ beta - st.y
        train_loss = 0.25 * float(r @ r) / st.X.shape[0]
        rt = st.Xte @ beta - st.yte
        test_loss = 0.25 * float(rt @ rt) / st.Xte.shape[0]
    keep = np.arange(st.rec_train.size) * cfg.record_every <= steps_run
    prod = wp * wm
    # √(w₊w₋) is the effective scale only while w₊ and w₋ keep a common sign (they do under
    # the flow from w₊ = w₋ = α > 0); otherwise it is undefined and reported as NaN.
    alpha_eff = np.sqrt(prod) if np.all(prod >= 0) else np.full(prod.shape, np.nan)
    return DLNResult(
        method=method_name(cfg), config=cfg.as_dict(), beta=beta, w_plus=wp, w_minus=wm,
        train_loss=train_loss, test_loss=test_loss,
        converged=bool(not diverged and train_loss <= cfg.tol), diverged=diverged,
        diverged_at=(int(status) if diverged else None), steps_run=int(steps_run),
        alpha=st.alpha0, alpha_eff=alpha_eff, alpha_eff_theory=st.alpha0 * np.exp(st.log_flow),
        alpha_eff_theory_discrete=st.alpha0 * np.exp(st.log_flow + st.log_disc),
        curve_steps=np.arange(st.rec_train.size)[keep] * cfg.record_every,
        curve_train=st.rec_train[keep], curve_test=st.rec_test[keep],
        beta_star=st.data.beta_star, runtime_s=runtime)


def train(data: RegressionData, config: DLNConfig = DLNConfig(), *, init=None, backend: str = "numba",
          show_progress: bool = False, chunks: int = 50) -> DLNResult:
    """Train one DLN on ``data`` (see the module docstring for the algorithms).

    Parameters
    ----------
    data : RegressionData
    config : DLNConfig
        Unresolved or resolved hyperparameters; resolved here against the data.
    init : (w_plus, w_minus), optional
        Explicit initialization instead of w₊ = w₋ = α; the effective scale then starts at
        √|w₊⊙w₋|.
    backend : {"numba", "numpy"}
        The numba kernel or its plain-numpy reference (identical semantics; the test oracle).
    show_progress : bool
        tqdm bar on stderr.
    chunks : int
        Number of kernel calls the run is split into (progress granularity; results do not depend
        on it).

    Returns
    -------
    DLNResult
        A run that becomes non-finite stops there: ``diverged=True``, ``diverged_at`` = the step.
    """
    check_choice("backend", backend, ("numba", "numpy"))
    st = _prepare(data, config, init)
    cfg = st.cfg
    fn = _kernels._run if backend == "numba" else run_reference
    T = cfg.steps
    step = max(1, -(-T // max(1, int(chunks))))
    status = -1
    t_start = time.perf_counter()
    with progress(T, disable=not show_progress, desc=method_name(cfg), unit="step") as bar:
        for t0 in range(0, T, step):
            t1 = min(T, t0 + step)
            idx, aidx = st.batches(t0, t1)
            status = fn(st.X, st.y, st.Xte, st.yte, st.wp, st.wm, st.lr, st.rho, t0, t1, idx, aidx,
                        st.mode, cfg.m, cfg.normalize, st.log_flow, st.log_disc, cfg.record_every,
                        st.rec_train, st.rec_test)
            bar.update(t1 - t0)
            if status >= 0:
                break
    return _finish(st, int(status), time.perf_counter() - t_start)


# --- the u ⊙ v parameterization (Ch. 6–7) -------------------------------------------------------
def uv_to_w(u, v):
    """w₊ = (u + v)/2, w₋ = (u − v)/2, so that w₊² − w₋² = u ⊙ v."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    return (u + v) / 2.0, (u - v) / 2.0


def w_to_uv(wp, wm):
    """Inverse of :func:`uv_to_w`: u = w₊ + w₋, v = w₊ − w₋."""
    wp, wm = np.asarray(wp, dtype=np.float64), np.asarray(wm, dtype=np.float64)
    return wp + wm, wp - wm


def train_uv(data: RegressionData, config: DLNConfig, u0, v0, **kwargs) -> DLNResult:
    """Train β = u ⊙ v with L(u, v) = 1/(4n) Σ (⟨u⊙v, xᵢ⟩ − yᵢ)² from any (u₀, v₀).

    (u, v) = (w₊ + w₋, w₊ − w₋) is √2 times an orthogonal map of (w₊, w₋), so a gradient step γ in
    (u, v) is a gradient step γ/2 in w± and an unnormalized ascent ρ is an ascent ρ/2 (normalized:
    ρ/√2). ``config.lr``/``config.rho`` are read in the (u, v) parameterization; the result's
    ``extra`` holds the final ``u`` and ``v``."""
    d = data.d
    cfg = resolve(config, data.n, d)
    u0 = np.broadcast_to(np.asarray(u0, dtype=np.float64), (d,))
    v0 = np.broadcast_to(np.asarray(v0, dtype=np.float64), (d,))
    rho_w = cfg.rho / (np.sqrt(2.0) if cfg.normalize else 2.0)
    res = train(data, replace(cfg, lr=cfg.lr / 2.0, rho=rho_w), init=uv_to_w(u0, v0), **kwargs)
    u, v = w_to_uv(res.w_plus, res.w_minus)
    res.config = cfg.as_dict() | {"parameterization": "uv", "u0": u0.tolist(), "v0": v0.tolist()}
    res.extra.update(u=u, v=v)
    return res
