"""Two-layer ReLU network on 1D data, trained by SGD with batch 1 (thesis Sec. 6.4.2).

    f_θ(x) = Σ_{j=1}^m aⱼ ReLU(wⱼ x + bⱼ),   θ = (w, b, a) ∈ ℝ^{3m}   (hidden biases, no output bias)
    L(θ)   = (1/2n) Σᵢ (f_θ(xᵢ) − yᵢ)²                                   (thesis eq. 6.1)
    θ_{t+1} = θ_t − η_t (f_θt(x_{i_t}) − y_{i_t}) ∇_θ f_θt(x_{i_t}),  i_t ~ U{1..n}  (eq. 6.2)

Initialization (Blanc et al. as in the authors' code, ``init_blanc_et_al``): wⱼ = ±2.5 s_w (random
sign), bⱼ ~ N(0, (2.5 s_w)²), aⱼ ~ N(0, (4 s_a)²). The thesis gives no scales; the defaults are
documented on :class:`ReLUConfig`.

Public API: :func:`blanc_data`, :func:`init_params`, :class:`ReLUConfig`, :func:`train` →
:class:`ReLUResult` (parameter snapshots, training loss, rank of φ_θ(X) and feature sparsity at
every checkpoint).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..backends import check_backend
from ..errors import ConfigError, check_int, check_nonneg, check_positive, check_range
from ..rng import check_seed, stream
from ._kernels import net1d as _kernels
from .metrics import count_kinks, feature_sparsity
from .schedule import warmup_decay_schedule
from .streams import sgd_indices

__all__ = ["blanc_data", "init_params", "ReLUConfig", "ReLUResult", "train", "predict", "jacobian",
           "activations", "checkpoints", "MAX_M", "MAX_STEPS", "MAX_RECORDS"]

#: the most hidden neurons (the Jacobian has 3m columns per data point)
MAX_M = 100_000
#: the most SGD steps (the schedule and the indices take 16 bytes a step)
MAX_STEPS = 10 ** 8
#: the most recorded numbers (checkpoints × 3m parameters: 8 bytes each)
MAX_RECORDS = 10 ** 8


def blanc_data() -> tuple[np.ndarray, np.ndarray]:
    """The 12-point 1D regression of Blanc et al. (2020) as used in the thesis (Sec. 5 and 6.4.2):
    x = [−5.5, −4.5, …, 5.5]/4 + 0.07, y = 0.345 + [−2, 1.5, 0, 0, 2, 1, 0, −1, 0, 1, 2, −1]."""
    x = np.arange(-5.5, 6.0, 1.0) / 4 + 0.07
    y = 0.345 + np.array([-2, 1.5, 0, 0, 2, 1, 0, -1, 0, 1, 2, -1], dtype=np.float64)
    return x, y


def init_params(m: int, s_w: float, s_a: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, b, a) with wⱼ = ±2.5 s_w, bⱼ ~ N(0, (2.5 s_w)²), aⱼ ~ N(0, (4 s_a)²), from the stream ``(seed)``
    (that of ``numpy.random.default_rng(seed)``)."""
    rng = stream(seed)
    w = 2.5 * s_w * rng.choice([-1.0, 1.0], size=m)
    b = 2.5 * s_w * rng.standard_normal(m)
    a = 4.0 * s_a * rng.standard_normal(m)
    return w, b, a


def predict(x, w, b, a) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _kernels.predict(x, w, b, a, out)
    return out


def activations(x, w, b) -> np.ndarray:
    """ReLU(wⱼ xᵢ + bⱼ), shape (n, m): the hidden features whose sparsity the thesis measures."""
    return np.maximum(np.outer(x, w) + b, 0.0)


def jacobian(x, w, b, a) -> np.ndarray:
    """φ_θ(X) = [∇_θ f(x₁), …, ∇_θ f(xₙ)]ᵀ, shape (n, 3m), columns ordered (w, b, a)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    J = np.empty((x.shape[0], 3 * w.shape[0]))
    _kernels.jacobian(x, w, b, a, J)
    return J


def checkpoints(steps: int, n_checkpoints: int) -> np.ndarray:
    """n_checkpoints + 1 iteration counts 0 = c₀ < … < c_K = T, evenly spaced (deduplicated)."""
    return np.unique(np.round(np.linspace(0, steps, n_checkpoints + 1)).astype(np.int64))


@dataclass
class ReLUConfig:
    """One SGD run. Defaults: Fig. 6.4, transition at 50 %. The thesis states neither T, D nor the init
    scales; T = 10⁵, D = 3, s_w = 1, s_a = 0.05 were chosen by a small sweep on one seed. Measured on seeds
    0–4 (the streams of :mod:`toymodels.relu.streams`): the 2 % run fits (final loss ≤ 1.4·10⁻³); the 50 %
    run stabilizes at a median loss 0.25–0.36 during its large-step phase and ends at 0.17–0.23 (it does
    not fit within T).

    ``lr`` is η of eq. 6.2 in this project's normalization (loss with ½); the authors' torch code
    minimizes mean (f − y)² with step γ = 2·10⁻⁴, i.e. η = 2γ = 4·10⁻⁴ here.
    """

    m: int = 100
    steps: int = 100_000
    lr: float = 4e-4
    transition: float = 0.5
    warmup_factor: float = 400.0
    decay_factor: float = 3.0
    s_w: float = 1.0
    s_a: float = 0.05
    n_checkpoints: int = 250
    corr_threshold: float = 0.95
    rank_tol: float = 1e-4
    kink_tol: float = 1e-2
    seed: int = 0
    init_seed: int | None = None      # defaults to seed; the same init for every schedule of a figure

    def validate(self) -> "ReLUConfig":
        """Check every field (:class:`~toymodels.errors.ConfigError` naming the field)."""
        check_int("m", self.m, 1, MAX_M)
        check_int("steps", self.steps, 1, MAX_STEPS)
        check_positive("lr", self.lr)
        check_int("n_checkpoints", self.n_checkpoints, 1, 100_000)
        if (self.n_checkpoints + 1) * 3 * self.m > MAX_RECORDS:
            raise ConfigError("n_checkpoints", f"must be <= {MAX_RECORDS // (3 * self.m) - 1} for m = {self.m} "
                              "(the parameter snapshots take 24·m bytes each)", self.n_checkpoints)
        check_positive("s_w", self.s_w)
        check_positive("s_a", self.s_a)
        check_range("corr_threshold", self.corr_threshold, -1.0, 1.0)
        check_range("rank_tol", self.rank_tol, 0.0, 1.0, lo_open=True)
        check_nonneg("kink_tol", self.kink_tol)
        check_seed(self.seed)
        if self.init_seed is not None:
            check_seed(self.init_seed, "init_seed")
        warmup_decay_schedule(self.lr, self.steps, self.transition, self.warmup_factor, self.decay_factor)
        return self


@dataclass
class ReLUResult:
    config: ReLUConfig
    iters: np.ndarray            # (K,) iteration counts of the checkpoints
    train_loss: np.ndarray       # (K,) L(θ) at each checkpoint
    rank: np.ndarray             # (K,) rank φ_θ(X)
    sparsity: np.ndarray         # (K,) feature sparsity coefficient
    w: np.ndarray                # (K, m) snapshots
    b: np.ndarray
    a: np.ndarray
    lr: np.ndarray               # (T,) step sizes
    diverged_at: int | None = None
    extra: dict = field(default_factory=dict)

    def final(self, x_lo: float, x_hi: float) -> dict:
        c = self.config
        return {"decay_fraction": c.transition, "warmup_factor": c.warmup_factor,
                "train_loss": float(self.train_loss[-1]), "feature_sparsity": float(self.sparsity[-1]),
                "rank_jacobian": int(self.rank[-1]),
                "n_kinks": count_kinks(self.w[-1], self.b[-1], self.a[-1], x_lo, x_hi, c.kink_tol),
                "diverged_at": self.diverged_at}


def train(cfg: ReLUConfig, x: np.ndarray | None = None, y: np.ndarray | None = None,
          backend: str = "numba") -> ReLUResult:
    """Run SGD (batch 1, with replacement; indices from :func:`~toymodels.relu.streams.sgd_indices`) under
    the Fig. 6.4 schedule and record every checkpoint. ``backend``: the numba kernels or their numpy
    references (:mod:`toymodels.relu._reference.net1d`)."""
    cfg.validate()
    backend = check_backend(backend)
    if x is None:
        x, y = blanc_data()
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    w, b, a = init_params(cfg.m, cfg.s_w, cfg.s_a, cfg.seed if cfg.init_seed is None else cfg.init_seed)
    lr = warmup_decay_schedule(cfg.lr, cfg.steps, cfg.transition, cfg.warmup_factor, cfg.decay_factor)
    idx = sgd_indices(cfg.seed, x.shape[0], cfg.steps)
    rec_at = checkpoints(cfg.steps, cfg.n_checkpoints)
    K = rec_at.shape[0]
    rw, rb, ra = (np.full((K, cfg.m), np.nan) for _ in range(3))
    rl = np.full(K, np.nan)
    if backend == "numba":
        div = _kernels.sgd(x, y, w, b, a, lr, idx, rec_at, rw, rb, ra, rl)
    else:
        from ._reference.net1d import sgd
        div = sgd(x, y, w, b, a, lr, idx, rec_at, rw, rb, ra, rl)
    done = np.isfinite(rl)
    ranks = np.zeros(K, dtype=np.int64)
    sv = np.zeros((K, min(x.shape[0], 3 * cfg.m)))
    if done.all():
        _kernels.jacobian_ranks(x, rw, rb, ra, cfg.rank_tol, ranks, sv)
    else:
        for k in np.flatnonzero(done):
            _kernels.jacobian_ranks(x, rw[k:k + 1], rb[k:k + 1], ra[k:k + 1], cfg.rank_tol,
                                     ranks[k:k + 1], sv[k:k + 1])
    sp = np.array([feature_sparsity(activations(x, rw[k], rb[k]), cfg.corr_threshold) if done[k]
                   else np.nan for k in range(K)])
    return ReLUResult(cfg, rec_at, rl, ranks, sp, rw, rb, ra, lr, None if div < 0 else int(div))


def config_dict(cfg: ReLUConfig) -> dict:
    return asdict(cfg)
