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

from .._cli import UsageError, check_int_range, check_positive
from . import _kernels
from .metrics import count_kinks, feature_sparsity
from .schedule import warmup_decay_schedule

__all__ = ["blanc_data", "init_params", "ReLUConfig", "ReLUResult", "train", "predict", "jacobian",
           "activations", "checkpoints"]


def blanc_data() -> tuple[np.ndarray, np.ndarray]:
    """The 12-point 1D regression of Blanc et al. (2020) as used in the thesis (Sec. 5 and 6.4.2):
    x = [−5.5, −4.5, …, 5.5]/4 + 0.07, y = 0.345 + [−2, 1.5, 0, 0, 2, 1, 0, −1, 0, 1, 2, −1]."""
    x = np.arange(-5.5, 6.0, 1.0) / 4 + 0.07
    y = 0.345 + np.array([-2, 1.5, 0, 0, 2, 1, 0, -1, 0, 1, 2, -1], dtype=np.float64)
    return x, y


def init_params(m: int, s_w: float, s_a: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, b, a) with wⱼ = ±2.5 s_w, bⱼ ~ N(0, (2.5 s_w)²), aⱼ ~ N(0, (4 s_a)²) (seeded)."""
    rng = np.random.default_rng(seed)
    w = 2.5 * s_w * rng.choice([-1.0, 1.0], size=m)
    b = 2.5 * s_w * rng.standard_normal(m)
    a = 4.0 * s_a * rng.standard_normal(m)
    return w, b, a


def predict(x, w, b, a) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _kernels._predict(x, w, b, a, out)
    return out


def activations(x, w, b) -> np.ndarray:
    """ReLU(wⱼ xᵢ + bⱼ), shape (n, m): the hidden features whose sparsity the thesis measures."""
    return np.maximum(np.outer(x, w) + b, 0.0)


def jacobian(x, w, b, a) -> np.ndarray:
    """φ_θ(X) = [∇_θ f(x₁), …, ∇_θ f(xₙ)]ᵀ, shape (n, 3m), columns ordered (w, b, a)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    J = np.empty((x.shape[0], 3 * w.shape[0]))
    _kernels._jacobian(x, w, b, a, J)
    return J


def checkpoints(steps: int, n_checkpoints: int) -> np.ndarray:
    """n_checkpoints + 1 iteration counts 0 = c₀ < … < c_K = T, evenly spaced (deduplicated)."""
    return np.unique(np.round(np.linspace(0, steps, n_checkpoints + 1)).astype(np.int64))


@dataclass
class ReLUConfig:
    """One SGD run. Defaults: Fig. 6.4, transition at 50 %. The thesis states neither T, D nor the init
    scales; T = 10⁵, D = 3, s_w = 1, s_a = 0.05 were chosen (small sweep, seed 0) so that both schedules
    stabilize and then (nearly) fit within the run.

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
        check_int_range("m", self.m, 1, 100_000)
        check_int_range("steps", self.steps, 1, 10**9)
        check_positive("lr", self.lr)
        check_int_range("n_checkpoints", self.n_checkpoints, 1, 100_000)
        check_positive("s_w", self.s_w)
        check_positive("s_a", self.s_a)
        if not -1.0 <= self.corr_threshold <= 1.0:
            raise UsageError(f"corr_threshold must lie in [-1, 1], got {self.corr_threshold!r}")
        check_positive("rank_tol", self.rank_tol)
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
    """Run SGD (batch 1, with replacement) under the Fig. 6.4 schedule and record every checkpoint."""
    cfg.validate()
    if x is None:
        x, y = blanc_data()
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    w, b, a = init_params(cfg.m, cfg.s_w, cfg.s_a, cfg.seed if cfg.init_seed is None else cfg.init_seed)
    lr = warmup_decay_schedule(cfg.lr, cfg.steps, cfg.transition, cfg.warmup_factor, cfg.decay_factor)
    idx = np.random.default_rng([cfg.seed, 1]).integers(0, x.shape[0], size=cfg.steps)
    rec_at = checkpoints(cfg.steps, cfg.n_checkpoints)
    K = rec_at.shape[0]
    rw, rb, ra = (np.full((K, cfg.m), np.nan) for _ in range(3))
    rl = np.full(K, np.nan)
    if backend == "numba":
        div = _kernels._sgd(x, y, w, b, a, lr, idx, rec_at, rw, rb, ra, rl)
    elif backend == "numpy":
        from ._reference import sgd_reference
        div = sgd_reference(x, y, w, b, a, lr, idx, rec_at, rw, rb, ra, rl)
    else:
        raise UsageError(f"backend must be one of {{numba, numpy}}, got {backend!r}")
    done = np.isfinite(rl)
    ranks = np.zeros(K, dtype=np.int64)
    sv = np.zeros((K, min(x.shape[0], 3 * cfg.m)))
    if done.all():
        _kernels._jacobian_ranks(x, rw, rb, ra, cfg.rank_tol, ranks, sv)
    else:
        for k in np.flatnonzero(done):
            _kernels._jacobian_ranks(x, rw[k:k + 1], rb[k:k + 1], ra[k:k + 1], cfg.rank_tol,
                                     ranks[k:k + 1], sv[k:k + 1])
    sp = np.array([feature_sparsity(activations(x, rw[k], rb[k]), cfg.corr_threshold) if done[k]
                   else np.nan for k in range(K)])
    return ReLUResult(cfg, rec_at, rl, ranks, sp, rw, rb, ra, lr, None if div < 0 else int(div))


def config_dict(cfg: ReLUConfig) -> dict:
    return asdict(cfg)
