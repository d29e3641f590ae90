"""Two-layer ReLU teacher–student in d = 2 (thesis App., "Illustration of neuron dynamics", Fig. 6.10
and 6.14; setup of Chizat et al. 2019, Fig. 1).

Bias-free two-layer nets f_θ(x) = Σⱼ aⱼ ReLU(wⱼ·x) (:mod:`toymodels.relu._kernels.teacher2`): a teacher with
``m_teacher`` = 3 neurons (wⱼ* unit vectors at uniformly random angles, aⱼ* = 1) and a student with m
neurons initialized at the large scale τ = ``init_scale``: wⱼ ~ N(0, τ² I/d), aⱼ ~ N(0, τ²/m) — at
which small steps train lazily. Data: n points xᵢ ~ N(0, I_d), yᵢ = f*(xᵢ) (no noise); test loss on
``n_test`` fresh points; L(θ) = (1/2n) Σᵢ (f_θ(xᵢ) − yᵢ)² minimized by SGD with batch 1, either with a
constant small step ``lr_const`` or the large-step schedule of
:func:`toymodels.relu.schedule.warmup_decay_schedule`. The thesis states none of m, n, τ, η, T; the
defaults on :class:`Teacher2Config` are a small seed-0 sweep's choice. The neuron-movement picture
plots |aⱼ| wⱼ (the neuron's contribution direction and size) over training.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ..backends import check_backend
from ..errors import check_int, check_positive, check_range
from ..rng import check_seed
from ._kernels import teacher2 as _kernels2
from .metrics import feature_sparsity, jacobian_rank
from .model import checkpoints
from .schedule import warmup_decay_schedule
from .streams import model_stream, sgd_indices

__all__ = ["Teacher2Config", "Teacher2Result", "teacher2_params", "teacher2_data", "init_student2",
           "predict2", "jacobian2", "train_teacher2", "run_schedules2", "summarize2", "DEFAULT_TRANSITIONS2"]

DEFAULT_TRANSITIONS2 = (None, 0.1, 0.3, 0.5)
#: the most SGD steps (the schedule and the indices take 16 bytes a step)
MAX_STEPS = 10 ** 8


def teacher2_params(d: int, m: int, seed: int):
    """(W*, a*): m unit vectors at uniformly random directions, a* = 1; stream ``(seed, "relu/teacher2/teacher")``."""
    rng = model_stream(seed, "teacher2", "teacher")
    W = rng.standard_normal((m, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    return W, np.ones(m)


def predict2(X, W, a) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float64)
    out = np.empty(X.shape[0])
    _kernels2.predict(X, np.ascontiguousarray(W), np.ascontiguousarray(a), out)
    return out


def jacobian2(X, W, a) -> np.ndarray:
    """φ_θ(X), shape (n, md + m), columns (vec W, a)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    J = np.empty((X.shape[0], W.size + a.size))
    _kernels2.jacobian(X, np.ascontiguousarray(W), np.ascontiguousarray(a), J)
    return J


def teacher2_data(d: int, m_teacher: int, n: int, n_test: int, seed: int):
    """(X, y, X_test, y_test, teacher), x ~ N(0, I_d) from the stream ``(seed, "relu/teacher2/data")``."""
    T = teacher2_params(d, m_teacher, seed)
    rng = model_stream(seed, "teacher2", "data")
    X = rng.standard_normal((n, d))
    Xt = rng.standard_normal((n_test, d))
    return X, predict2(X, *T), Xt, predict2(Xt, *T), T


def init_student2(d: int, m: int, scale: float, seed: int):
    """(W, a): wⱼ ~ N(0, τ² I/d), aⱼ ~ N(0, τ²/m), τ = ``scale``; stream ``(seed, "relu/teacher2/init")``."""
    rng = model_stream(seed, "teacher2", "init")
    return scale * rng.standard_normal((m, d)) / np.sqrt(d), scale * rng.standard_normal(m) / np.sqrt(m)


@dataclass
class Teacher2Config:
    d: int = 2
    m_teacher: int = 3
    m: int = 50
    n: int = 50
    n_test: int = 2000
    steps: int = 50_000
    lr: float = 2e-3
    lr_const: float = 2e-3
    transition: float | None = None
    warmup_factor: float = 100.0
    decay_factor: float = 10.0
    init_scale: float = 2.0
    n_checkpoints: int = 200
    corr_threshold: float = 0.95
    rank_tol: float = 1e-4
    seed: int = 0
    data_seed: int | None = None
    init_seed: int | None = None

    def validate(self) -> "Teacher2Config":
        """Check every field (:class:`~toymodels.errors.ConfigError` naming the field)."""
        for k, hi in (("d", 10_000), ("m_teacher", 10_000), ("m", 10_000), ("n", 10**6), ("n_test", 10**7),
                      ("steps", MAX_STEPS), ("n_checkpoints", 100_000)):
            check_int(k, getattr(self, k), 1, hi)
        for k in ("lr", "lr_const", "init_scale"):
            check_positive(k, getattr(self, k))
        check_range("rank_tol", self.rank_tol, 0.0, 1.0, lo_open=True)
        check_range("corr_threshold", self.corr_threshold, -1.0, 1.0)
        for f in ("seed", "data_seed", "init_seed"):
            if getattr(self, f) is not None:
                check_seed(getattr(self, f), f)
        self.schedule()
        return self

    def schedule(self) -> np.ndarray:
        if self.transition is None:
            return np.full(self.steps, float(self.lr_const))
        return warmup_decay_schedule(self.lr, self.steps, self.transition, self.warmup_factor,
                                     self.decay_factor)


@dataclass
class Teacher2Result:
    config: Teacher2Config
    iters: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    rank: np.ndarray               # −1 where not reached (divergence)
    sparsity: np.ndarray           # (K,)
    W: np.ndarray                  # (K, m, d)
    a: np.ndarray                  # (K, m)
    lr: np.ndarray
    teacher_W: np.ndarray
    diverged_at: int | None = None


def train_teacher2(cfg: Teacher2Config, backend: str = "numba") -> Teacher2Result:
    """SGD (batch 1; indices :func:`~toymodels.relu.streams.sgd_indices`) on the teacher's n points; metrics at
    every checkpoint. ``backend``: the numba kernels or their numpy references."""
    cfg.validate()
    backend = check_backend(backend)
    ds = cfg.seed if cfg.data_seed is None else cfg.data_seed
    X, y, Xt, yt, (TW, _) = teacher2_data(cfg.d, cfg.m_teacher, cfg.n, cfg.n_test, ds)
    W, a = init_student2(cfg.d, cfg.m, cfg.init_scale, cfg.seed if cfg.init_seed is None else cfg.init_seed)
    lr = cfg.schedule()
    idx = sgd_indices(cfg.seed, cfg.n, cfg.steps)
    rec_at = checkpoints(cfg.steps, cfg.n_checkpoints)
    K = rec_at.shape[0]
    rW, ra, rl = np.full((K, cfg.m, cfg.d), np.nan), np.full((K, cfg.m), np.nan), np.full(K, np.nan)
    if backend == "numba":
        div = _kernels2.sgd(X, y, W, a, lr, idx, rec_at, rW, ra, rl)
    else:
        from ._reference.teacher2 import sgd
        div = sgd(X, y, W, a, lr, idx, rec_at, rW, ra, rl)
    tl, ranks, sp = np.full(K, np.nan), np.full(K, -1, dtype=np.int64), np.full(K, np.nan)
    for k in np.flatnonzero(np.isfinite(rl)):
        tl[k] = _kernels2.loss(Xt, yt, rW[k], ra[k])
        ranks[k] = jacobian_rank(jacobian2(X, rW[k], ra[k]), cfg.rank_tol)
        sp[k] = feature_sparsity(np.maximum(X @ rW[k].T, 0.0), cfg.corr_threshold)
    return Teacher2Result(cfg, rec_at, rl, tl, ranks, sp, rW, ra, lr, TW, None if div < 0 else int(div))


def run_schedules2(base: Teacher2Config, transitions=DEFAULT_TRANSITIONS2) -> list[Teacher2Result]:
    return [train_teacher2(replace(base, transition=None if a is None else float(a))) for a in transitions]


def alignment(W: np.ndarray, a: np.ndarray, teacher_W: np.ndarray) -> float:
    """|a|-weighted mean over student neurons of max_k cos∠(wⱼ, wₖ*): 1 when every (weighted) neuron
    points along a teacher direction."""
    u = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-300)
    c = (u @ teacher_W.T).max(axis=1)
    wt = np.abs(a) * np.linalg.norm(W, axis=1)
    return float((wt * c).sum() / max(wt.sum(), 1e-300))


def summarize2(res: Teacher2Result) -> dict:
    c = res.config
    td = c.steps if c.transition is None else int(np.floor(c.transition * c.steps))
    ok = np.isfinite(res.train_loss)
    phase = ok & (res.iters >= td // 2) & (res.iters <= td)
    pre = np.flatnonzero(ok & (res.iters <= td))

    def f(v):
        return float(v) if np.isfinite(v) else None

    return {"decay_fraction": c.transition, "train_loss": f(res.train_loss[-1]), "test_loss": f(res.test_loss[-1]),
            "feature_sparsity": f(res.sparsity[-1]),
            "rank_jacobian": int(res.rank[-1]) if res.rank[-1] >= 0 else None,
            "stabilization_loss": float(np.median(res.train_loss[phase])) if phase.any() else None,
            "rank_init": int(res.rank[0]), "sparsity_init": float(res.sparsity[0]),
            "rank_at_decay": int(res.rank[pre[-1]]), "sparsity_at_decay": float(res.sparsity[pre[-1]]),
            "teacher_alignment_init": alignment(res.W[0], res.a[0], res.teacher_W),
            "teacher_alignment": alignment(res.W[-1], res.a[-1], res.teacher_W) if ok[-1] else None,
            "peak_lr": float(res.lr.max()), "diverged_at": res.diverged_at}


def config_dict(cfg: Teacher2Config) -> dict:
    return asdict(cfg)
