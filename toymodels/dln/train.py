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

Randomness: only SGD draws, its mini-batch indices from the stream ``(seed, "dln/batches")`` and the
independent ascent batches of eq. 5.21 from ``(seed, "dln/ascent-batches")`` (:mod:`toymodels.rng`).

The result carries the effective initialization scale α_eff = √(w₊ ⊙ w₋) of the final iterate and
its leading-order prediction, which together make Thm 5.9.2/5.9.3 checkable. The prediction needs
the implicit-bias logs the kernel accumulates every step; ``theory=False`` runs the lean kernel
(:func:`toymodels.dln._kernels.run_lean`: the same w₊, w₋ and loss curves bit for bit, 1–3× faster)
and leaves the prediction NaN.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..backends import check_backend
from ..datasets import RegressionData
from ..errors import ConfigError, check_choice, check_int, check_nonneg, check_positive, check_range
from ..progress import progress
from ..rng import check_seed, stream
from ..schedules import SCHEDULES, make_schedule
from . import _kernels, _reference
from ._kernels import N_OPTS, N_STATE, O_M, O_NORMALIZE, O_RECORD_EVERY

__all__ = ["DLNConfig", "DLNResult", "train", "resolve", "method_name", "uv_to_w", "w_to_uv", "train_uv",
           "uv_as_w_config", "erm_baseline", "schedules_of", "IndexStream", "index_streams", "RunState", "prepare",
           "finish", "chunk_steps", "MAX_STEPS", "MAX_BATCH"]

SAM_KINDS = ("none", "1", "n", "m")
#: the longest run: the schedules γ_t, ρ_t are materialized (16 bytes a step)
MAX_STEPS = 10 ** 8
#: the largest mini-batch (with replacement it may exceed n)
MAX_BATCH = 10 ** 6
#: mini-batch indices drawn per kernel call at most (memory), see :func:`train`
_MAX_INDICES = 1 << 22
DEFAULT_DECAY_FACTOR = 0.1
DEFAULT_WARMUP_RATIO = 1e-3


@dataclass(frozen=True)
class DLNConfig:
    """Hyperparameters of one DLN run. ``None`` means "resolve from the data" (see :func:`resolve`):
    lr = 1/d, rho = 1/d for SAM (0 for ERM), batch = 1 for SGD, m = batch, record_every = steps // 2000;
    decay_factor = 0.1 where decays are given, warmup_ratio = 1e-3 for ``exp-warmup``. A setting
    that does not apply to the chosen algorithm or schedule is an error, never silently ignored."""

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
    decay_factor: float | None = None
    warmup_steps: int = 0
    warmup_ratio: float | None = None
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


# ----------------------------------------------------------------------------------------------------
# configuration

def _check_choices(cfg: DLNConfig) -> None:
    check_choice("sam", cfg.sam, SAM_KINDS)
    check_choice("algo", cfg.algo, ("gd", "sgd"))
    check_choice("ascent", cfg.ascent, ("same", "independent"))
    check_choice("switch_mode", cfg.switch_mode, ("erm-to-sam", "sam-to-erm"))
    check_choice("schedule", cfg.schedule, SCHEDULES)
    check_choice("rho_schedule", cfg.rho_schedule, ("constant", "same-as-lr"))


def _check_alpha(alpha, d: int):
    a = np.asarray(alpha, dtype=np.float64)
    if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != d):
        raise ConfigError("alpha", f"must be a number or a vector of length d = {d}", alpha)
    if not np.all(np.isfinite(a)) or not np.all(a > 0):
        raise ConfigError("alpha", "must be finite and > 0 (every coordinate)", alpha)
    return float(a) if a.ndim == 0 else a.tolist()


def _resolve_batches(cfg: DLNConfig, n: int) -> tuple[int, int | None]:
    """(batch, ascent_batch) of a config on n examples."""
    most = MAX_BATCH if cfg.replacement else n
    if cfg.algo == "gd":
        if cfg.batch not in (None, n):
            raise ConfigError("batch", f"applies to algo 'sgd' only (gd uses all n = {n} examples)", cfg.batch)
        if not cfg.replacement:
            raise ConfigError("replacement", "applies to algo 'sgd' only (gd uses all examples every step)")
        if cfg.ascent == "independent":
            raise ConfigError("ascent", "'independent' (eq. 5.21) needs algo 'sgd': with full batches both "
                                        "batches are the whole data set", cfg.ascent)
        batch = n
    else:
        batch = check_int("batch", 1 if cfg.batch is None else cfg.batch, 1, most)
    if cfg.ascent != "independent":
        if cfg.ascent_batch is not None:
            raise ConfigError("ascent_batch", "applies to ascent 'independent' only", cfg.ascent_batch)
        return batch, None
    if cfg.sam != "n":
        raise ConfigError("ascent", "'independent' (eq. 5.21) applies to sam 'n' only", cfg.ascent)
    return batch, check_int("ascent_batch", batch if cfg.ascent_batch is None else cfg.ascent_batch, 1, most)


def _resolve_m(cfg: DLNConfig, batch: int) -> int:
    if cfg.sam == "m":
        if cfg.m is None:
            raise ConfigError("m", f"is needed by sam 'm': an integer in [1, {batch}] dividing the batch size {batch}")
        check_int("m", cfg.m, 1, batch)
        if batch % cfg.m:
            raise ConfigError("m", f"must divide the batch size {batch}", cfg.m)
        return cfg.m
    m = {"none": batch, "1": 1, "n": batch}[cfg.sam]
    if cfg.m is not None and cfg.m != m:
        raise ConfigError("m", f"applies to sam 'm' only (sam '{cfg.sam}' uses m = {m})", cfg.m)
    return m


def _check_sam_settings(cfg: DLNConfig) -> None:
    """SAM-only settings on an ERM config are errors (they would be ignored)."""
    if cfg.sam != "none":
        return
    if cfg.rho not in (None, 0, 0.0):
        raise ConfigError("rho", "applies to a SAM variant (sam 1, n or m); ERM has no ascent", cfg.rho)
    if cfg.normalize:
        raise ConfigError("normalize", "applies to a SAM variant (sam 1, n or m)")
    if cfg.rho_schedule != "constant":
        raise ConfigError("rho_schedule", "applies to a SAM variant (sam 1, n or m)", cfg.rho_schedule)
    if cfg.switch_at is not None:
        raise ConfigError("switch_at", "needs a SAM variant (sam 1, n or m) to switch to or from", cfg.switch_at)


def _resolve_schedule(cfg: DLNConfig, steps: int) -> tuple[float | None, float | None]:
    """(decay_factor, warmup_ratio) after checking that every schedule setting applies."""
    warm = cfg.schedule in ("linear-warmup", "exp-warmup")
    if cfg.schedule == "constant" and cfg.decay_at:
        raise ConfigError("decay_at", "applies to schedule 'step' or a warmup schedule", list(cfg.decay_at))
    if cfg.schedule == "step" and not cfg.decay_at:
        raise ConfigError("decay_at", "is needed by schedule 'step': fractions of the run in (0, 1)")
    if cfg.decay_factor is not None and not cfg.decay_at:
        raise ConfigError("decay_factor", "applies where decays are given (decay_at)", cfg.decay_factor)
    if cfg.warmup_steps and not warm:
        raise ConfigError("warmup_steps", "applies to schedule 'linear-warmup' or 'exp-warmup'", cfg.warmup_steps)
    if cfg.warmup_ratio is not None and cfg.schedule != "exp-warmup":
        raise ConfigError("warmup_ratio", "applies to schedule 'exp-warmup' only", cfg.warmup_ratio)
    for a in cfg.decay_at:
        if not (isinstance(a, (int, float, np.floating)) and 0.0 < a < 1.0):
            raise ConfigError("decay_at", "must be fractions of the run in (0, 1)", list(cfg.decay_at))
    if warm:
        check_int("warmup_steps", cfg.warmup_steps, 1, steps)
    factor = ratio = None
    if cfg.decay_at:
        factor = check_positive("decay_factor", DEFAULT_DECAY_FACTOR if cfg.decay_factor is None else cfg.decay_factor)
    if cfg.schedule == "exp-warmup":
        ratio = check_range("warmup_ratio", DEFAULT_WARMUP_RATIO if cfg.warmup_ratio is None else cfg.warmup_ratio,
                            0.0, 1.0, lo_open=True)
    return factor, ratio


def resolve(cfg: DLNConfig, n: int, d: int) -> DLNConfig:
    """Validate ``cfg`` against a data set of n examples in dimension d and fill in defaults.

    Raises :class:`~toymodels.errors.ConfigError` naming the offending field and its valid range."""
    _check_choices(cfg)
    steps = check_int("steps", cfg.steps, 1, MAX_STEPS)
    check_seed(cfg.seed)
    alpha = _check_alpha(cfg.alpha, d)
    lr = check_positive("lr", 1.0 / d if cfg.lr is None else cfg.lr)
    _check_sam_settings(cfg)
    rho = check_nonneg("rho", (0.0 if cfg.sam == "none" else 1.0 / d) if cfg.rho is None else cfg.rho)
    check_positive("tol", cfg.tol)
    batch, ascent_batch = _resolve_batches(cfg, n)
    m = _resolve_m(cfg, batch)
    if cfg.switch_at is not None:
        check_int("switch_at", cfg.switch_at, 0, steps)
    factor, ratio = _resolve_schedule(cfg, steps)
    rec = max(1, steps // 2000) if cfg.record_every is None else check_int("record_every", cfg.record_every, 1, steps)
    return replace(cfg, lr=float(lr), rho=float(rho), batch=batch, m=m, ascent_batch=ascent_batch, record_every=rec,
                   alpha=alpha, decay_at=tuple(cfg.decay_at), decay_factor=factor, warmup_ratio=ratio)


def erm_baseline(cfg: DLNConfig) -> DLNConfig:
    """The ERM run of ``cfg`` (same data, steps, step sizes, batches and seed; no SAM settings)."""
    return replace(cfg, sam="none", rho=0.0, m=None, normalize=False, ascent="same", ascent_batch=None,
                   switch_at=None, rho_schedule="constant", decay_at=tuple(cfg.decay_at))


def schedules_of(cfg: DLNConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-step (γ_t, ρ_t) of a resolved config; ρ_t encodes SAM on/off and the switch."""
    lr = make_schedule(cfg.lr, cfg.steps, cfg.schedule, decay_at=cfg.decay_at,
                       factor=DEFAULT_DECAY_FACTOR if cfg.decay_factor is None else cfg.decay_factor,
                       warmup_steps=cfg.warmup_steps,
                       warmup_ratio=DEFAULT_WARMUP_RATIO if cfg.warmup_ratio is None else cfg.warmup_ratio)
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


# ----------------------------------------------------------------------------------------------------
# mini-batches

class IndexStream:
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


def index_streams(cfg: DLNConfig, n: int) -> tuple[IndexStream | None, IndexStream | None]:
    """The descent and independent-ascent batch streams of a resolved config on n examples (None where
    the config draws none): streams ``(seed, "dln/batches")`` and ``(seed, "dln/ascent-batches")``."""
    desc = IndexStream(stream(cfg.seed, "dln/batches"), n, cfg.batch, cfg.replacement) if cfg.algo == "sgd" else None
    asc = (IndexStream(stream(cfg.seed, "dln/ascent-batches"), n, cfg.ascent_batch, cfg.replacement)
           if cfg.ascent == "independent" else None)
    return desc, asc


# ----------------------------------------------------------------------------------------------------
# one run's arrays

@dataclass
class RunState:
    """Everything one run's kernel calls need, prepared by :func:`prepare` (shared by :func:`train`,
    :func:`toymodels.dln.ensemble.train_ensemble` and :mod:`toymodels.dln.large_step`); the array
    layouts are those of :func:`toymodels.dln._kernels.run`."""

    cfg: DLNConfig
    data: RegressionData
    X: np.ndarray
    y: np.ndarray
    Xte: np.ndarray
    yte: np.ndarray
    state: np.ndarray          # (4, d): w₊, w₋, log_flow, log_disc
    rates: np.ndarray          # (2, T): γ_t, ρ_t
    opts: np.ndarray           # int64 [m, normalize, record_every]
    rec: np.ndarray            # (2, n_rec): recorded train / test losses
    alpha0: np.ndarray
    stream: IndexStream | None
    astream: IndexStream | None

    wp = property(lambda self: self.state[_kernels.W_PLUS])
    wm = property(lambda self: self.state[_kernels.W_MINUS])
    log_flow = property(lambda self: self.state[_kernels.LOG_FLOW])
    log_disc = property(lambda self: self.state[_kernels.LOG_DISC])
    lr = property(lambda self: self.rates[_kernels.LR])
    rho = property(lambda self: self.rates[_kernels.RHO])
    rec_train = property(lambda self: self.rec[_kernels.REC_TRAIN])
    rec_test = property(lambda self: self.rec[_kernels.REC_TEST])
    mode = property(lambda self: int(self.astream is not None))

    def data_tuple(self) -> tuple:
        return self.X, self.y, self.Xte, self.yte

    def batches(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        """The descent and ascent batches of steps t0 ≤ t < t1 (shape (t1 − t0, 0) where none)."""
        idx = (self.stream.take(t1 - t0) if self.stream is not None
               else np.empty((t1 - t0, 0), dtype=np.int64))
        aidx = (self.astream.take(t1 - t0) if self.astream is not None
                else np.empty((t1 - t0, 0), dtype=np.int64))
        return idx, aidx

    def advance(self, t0: int, t1: int, backend: str = "numba", theory: bool = True) -> int:
        """Run steps t0 ≤ t < t1 (the kernel or its numpy reference); the divergence step or −1.
        ``theory=False``: the lean kernel, without the implicit-bias logs (numba backend only; the
        reference always keeps them)."""
        fn = (_kernels.run if theory else _kernels.run_lean) if backend == "numba" else _reference.run
        idx, aidx = self.batches(t0, t1)
        return int(fn(self.data_tuple(), self.state, self.rates, t0, idx, aidx, self.opts, self.rec))


def _init_w(cfg: DLNConfig, d: int, init):
    if init is None:
        a = np.broadcast_to(np.asarray(cfg.alpha, dtype=np.float64), (d,))
        return a.copy(), a.copy()
    wp, wm = (np.array(v, dtype=np.float64).reshape(d) for v in init)
    if not (np.all(np.isfinite(wp)) and np.all(np.isfinite(wm))):
        raise ConfigError("init", "must be finite initial weights (w_plus, w_minus)")
    return wp, wm


def prepare(data: RegressionData, config: DLNConfig, init=None) -> RunState:
    """Resolve ``config`` on ``data`` and build the run's arrays and batch streams."""
    cfg = resolve(config, data.n, data.d)
    d = data.d
    X, y, Xte, yte = (np.ascontiguousarray(a, dtype=np.float64) for a in (data.X, data.y, data.X_test, data.y_test))
    wp, wm = _init_w(cfg, d, init)
    state = np.zeros((N_STATE, d))
    state[_kernels.W_PLUS], state[_kernels.W_MINUS] = wp, wm
    rates = np.ascontiguousarray(np.stack(schedules_of(cfg)))
    opts = np.zeros(N_OPTS, dtype=np.int64)
    opts[O_M], opts[O_NORMALIZE], opts[O_RECORD_EVERY] = cfg.m, int(cfg.normalize), cfg.record_every
    rec = np.full((2, cfg.steps // cfg.record_every + 1), np.nan)
    rec[:, 0] = (0.25 * np.mean((X @ (wp**2 - wm**2) - y) ** 2), 0.25 * np.mean((Xte @ (wp**2 - wm**2) - yte) ** 2))
    desc, asc = index_streams(cfg, data.n)
    return RunState(cfg, data, X, y, Xte, yte, state, rates, opts, rec, np.sqrt(np.abs(wp * wm)), desc, asc)


def finish(st: RunState, status: int, runtime: float, theory: bool = True) -> DLNResult:
    """The :class:`DLNResult` of a prepared run after its kernel calls (``status``: divergence step or −1);
    ``theory=False`` (lean kernel, no logs): ``alpha_eff_theory*`` are NaN."""
    cfg, wp, wm = st.cfg, st.wp.copy(), st.wm.copy()
    diverged = status >= 0
    steps_run = status if diverged else cfg.steps
    with np.errstate(over="ignore", invalid="ignore"):       # a diverged iterate is inf/NaN
        beta = wp**2 - wm**2
        prod = wp * wm
    if diverged:
        train_loss = test_loss = float("inf")
    else:
        r = st.X @ beta - st.y
        train_loss = 0.25 * float(r @ r) / st.X.shape[0]
        rt = st.Xte @ beta - st.yte
        test_loss = 0.25 * float(rt @ rt) / st.Xte.shape[0]
    keep = np.arange(st.rec.shape[1]) * cfg.record_every <= steps_run
    # √(w₊w₋) is the effective scale only while w₊ and w₋ keep a common sign (they do under
    # the flow from w₊ = w₋ = α > 0); otherwise it is undefined and reported as NaN.
    alpha_eff = np.sqrt(prod) if np.all(prod >= 0) else np.full(prod.shape, np.nan)
    log_flow, log_disc = (st.log_flow, st.log_disc) if theory else (np.nan, np.nan)
    return DLNResult(
        method=method_name(cfg), config=cfg.as_dict(), beta=beta, w_plus=wp, w_minus=wm,
        train_loss=train_loss, test_loss=test_loss,
        converged=bool(not diverged and train_loss <= cfg.tol), diverged=diverged,
        diverged_at=(int(status) if diverged else None), steps_run=int(steps_run),
        alpha=st.alpha0, alpha_eff=alpha_eff, alpha_eff_theory=st.alpha0 * np.exp(log_flow),
        alpha_eff_theory_discrete=st.alpha0 * np.exp(log_flow + log_disc),
        curve_steps=np.arange(st.rec.shape[1])[keep] * cfg.record_every,
        curve_train=st.rec_train[keep].copy(), curve_test=st.rec_test[keep].copy(),
        beta_star=st.data.beta_star, runtime_s=runtime)


def chunk_steps(cfg: DLNConfig, chunks: int) -> int:
    """Steps per kernel call: ``steps / chunks`` (progress granularity), at most 2²² batch indices
    drawn at once (memory). Results do not depend on it."""
    per_step = (cfg.batch if cfg.algo == "sgd" else 0) + (cfg.ascent_batch or 0)
    step = max(1, -(-cfg.steps // max(1, int(chunks))))
    return max(1, min(step, _MAX_INDICES // per_step)) if per_step else step


def train(data: RegressionData, config: DLNConfig = DLNConfig(), *, init=None, backend: str = "numba",
          show_progress: bool = False, chunks: int = 50, theory: bool = True) -> DLNResult:
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
    theory : bool
        Accumulate the implicit-bias logs (default). False runs the lean kernel: w₊, w₋ and the
        loss curves are the same bit for bit, ``alpha_eff_theory*`` are NaN; for runs that do not
        need the prediction (sweeps, ``--no-theory``).

    Returns
    -------
    DLNResult
        A run that becomes non-finite stops there: ``diverged=True``, ``diverged_at`` = the step.
    """
    check_backend(backend)
    st = prepare(data, config, init)
    T = st.cfg.steps
    step = chunk_steps(st.cfg, chunks)
    status = -1
    t_start = time.perf_counter()
    with progress(T, disable=not show_progress, desc=method_name(st.cfg), unit="step") as bar:
        for t0 in range(0, T, step):
            t1 = min(T, t0 + step)
            status = st.advance(t0, t1, backend, theory)
            bar.update(t1 - t0)
            if status >= 0:
                break
    return finish(st, status, time.perf_counter() - t_start, theory)


# --- the u ⊙ v parameterization (Ch. 6–7) -------------------------------------------------------
def uv_to_w(u, v):
    """w₊ = (u + v)/2, w₋ = (u − v)/2, so that w₊² − w₋² = u ⊙ v."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    return (u + v) / 2.0, (u - v) / 2.0


def w_to_uv(wp, wm):
    """Inverse of :func:`uv_to_w`: u = w₊ + w₋, v = w₊ − w₋."""
    wp, wm = np.asarray(wp, dtype=np.float64), np.asarray(wm, dtype=np.float64)
    return wp + wm, wp - wm


def uv_as_w_config(cfg: DLNConfig) -> DLNConfig:
    """A resolved (u, v) config in the w± parameterization: γ/2, and ρ/2 (normalized: ρ/√2)."""
    return replace(cfg, lr=cfg.lr / 2.0, rho=cfg.rho / (np.sqrt(2.0) if cfg.normalize else 2.0))


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
    res = train(data, uv_as_w_config(cfg), init=uv_to_w(u0, v0), **kwargs)
    u, v = w_to_uv(res.w_plus, res.w_minus)
    res.config = cfg.as_dict() | {"parameterization": "uv", "u0": u0.tolist(), "v0": v0.tolist()}
    res.extra.update(u=u, v=v)
    return res
