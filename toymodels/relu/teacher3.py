"""Three-layer ReLU teacher–student regression (thesis Sec. 6.4.2, "Deeper ReLU networks", Fig. 6.5).

Teacher and student are bias-free three-layer ReLU networks (see :mod:`toymodels.relu._kernels.teacher3`)

    f_θ(x) = aᵀ ReLU(W₂ ReLU(W₁ x)),   x ∈ ℝᵈ,

the teacher with 2 neurons on each hidden layer, the student with 10 and 10; d = 5, n = 50 training
examples xᵢ ~ N(0, I_d), labels yᵢ = f_teacher(xᵢ) (no noise), test loss on ``n_test`` fresh draws.
Objective L(θ) = (1/2n) Σᵢ (f_θ(xᵢ) − yᵢ)² (the project's ½-normalization; the test loss uses the
same ½), minimized by SGD with batch 1 under either a constant "medium" step size or the large-step
schedule of :func:`toymodels.relu.schedule.warmup_decay_schedule` decayed at 10 %, 30 %, 50 %.

The thesis states neither the teacher distribution, the initialization, the step sizes, nor T; the
choices are on :class:`Teacher3Config` (documented there). Teacher: rows of W₁* uniform on the unit
sphere, W₂* entries |N(0, 1)| (so no teacher neuron of layer 2 is dead on all inputs), a* = (1, …, 1).
Student init (He-like): W₁ ~ N(0, 2/d), W₂ ~ N(0, 2/m₁), a ~ N(0, 1/m₂), all × ``init_scale``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..backends import check_backend
from ..errors import check_int, check_positive, check_range
from ..rng import check_seed
from ._kernels import teacher3 as _kernels3
from .metrics import feature_sparsity, jacobian_rank
from .model import checkpoints
from .schedule import warmup_decay_schedule
from .streams import fresh_points, model_stream, sgd_indices

__all__ = ["Teacher3Config", "Teacher3Result", "teacher_params", "teacher_data", "init_student",
           "predict3", "jacobian3", "hidden_activations", "train_teacher3", "run_schedules", "summarize",
           "DEFAULT_TRANSITIONS", "fresh_ranks", "final_fresh_rank", "observations"]

DEFAULT_TRANSITIONS = (None, 0.1, 0.3, 0.5)     # None: the constant medium step size
#: the most SGD steps (the schedule and the indices take 16 bytes a step)
MAX_STEPS = 10 ** 8


def teacher_params(d: int, m: int, seed: int):
    """(W₁*, W₂*, a*) of the teacher with m neurons per hidden layer, a* = (1, …, 1); stream
    ``(seed, "relu/teacher3/teacher")``."""
    rng = model_stream(seed, "teacher3", "teacher")
    W1 = rng.standard_normal((m, d))
    W1 /= np.linalg.norm(W1, axis=1, keepdims=True)
    W2 = np.abs(rng.standard_normal((m, m)))
    a = np.ones(m)
    return W1, W2, a


def predict3(X, W1, W2, a) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float64)
    out = np.empty(X.shape[0])
    _kernels3.predict(X, np.ascontiguousarray(W1), np.ascontiguousarray(W2), np.ascontiguousarray(a), out)
    return out


def jacobian3(X, W1, W2, a) -> np.ndarray:
    """φ_θ(X) = [∇_θ f(x₁), …, ∇_θ f(xₙ)]ᵀ, shape (n, m₁d + m₂m₁ + m₂), columns (vec W₁, vec W₂, a)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    J = np.empty((X.shape[0], W1.size + W2.size + a.size))
    _kernels3.jacobian(X, np.ascontiguousarray(W1), np.ascontiguousarray(W2), np.ascontiguousarray(a), J)
    return J


def hidden_activations(X, W1, W2):
    """(ReLU(X W₁ᵀ), ReLU(ReLU(X W₁ᵀ) W₂ᵀ)): the (n × m₁), (n × m₂) features of both hidden layers."""
    r1 = np.maximum(X @ W1.T, 0.0)
    return r1, np.maximum(r1 @ W2.T, 0.0)


def teacher_data(d: int, m_teacher: int, n: int, n_test: int, seed: int):
    """(X, y, X_test, y_test, teacher) with x ~ N(0, I_d) (stream ``(seed, "relu/teacher3/data")``) and
    y = f_teacher(x)."""
    T = teacher_params(d, m_teacher, seed)
    rng = model_stream(seed, "teacher3", "data")
    X = rng.standard_normal((n, d))
    Xt = rng.standard_normal((n_test, d))
    return X, predict3(X, *T), Xt, predict3(Xt, *T), T


def init_student(d: int, m: int, scale: float, seed: int):
    """(W₁, W₂, a): He-like N(0, 2/d), N(0, 2/m), N(0, 1/m) entries × ``scale``; stream
    ``(seed, "relu/teacher3/init")``."""
    rng = model_stream(seed, "teacher3", "init")
    W1 = scale * np.sqrt(2.0 / d) * rng.standard_normal((m, d))
    W2 = scale * np.sqrt(2.0 / m) * rng.standard_normal((m, m))
    a = scale * np.sqrt(1.0 / m) * rng.standard_normal(m)
    return W1, W2, a


@dataclass
class Teacher3Config:
    """One SGD run. ``transition=None``: constant step ``lr_const`` for all T steps; otherwise the
    large-step schedule η_t of :func:`warmup_decay_schedule` with base ``lr``, warmup ``warmup_factor``
    and decay ``decay_factor`` at ``transition``·T. Defaults: the Fig. 6.5 setting
    (``figures.relu.FIG65``: η = 0.025/5.5, F = 10, init scale 2, constant step 0.005), chosen by a sweep
    on seeds 0–4 under the package's earlier random draws. Re-measured with the named streams of
    :mod:`toymodels.relu.streams` on seeds 0–14 (:func:`observations`, 50 % run vs constant run): the
    large-step run shows the loss plateau for 11/15, beats the constant step on test loss for 10/15, has a
    lower Jacobian rank (fresh points) for 10/15 and sparser features on both layers for 8/15, and never
    kills the network (0/15). With batch 1 the window between "no loss stabilization" and "the second
    hidden layer dies (f ≡ 0, rank 0–1)" is narrow: the earlier defaults (η = 2e-3, F = 40, init scale 1)
    killed the 50 % run on 3 of 15 seeds under the earlier draws."""

    d: int = 5
    m_teacher: int = 2
    m: int = 10
    n: int = 50
    n_test: int = 2000
    steps: int = 50_000
    lr: float = 0.025 / 5.5
    lr_const: float = 5e-3
    transition: float | None = None
    warmup_factor: float = 10.0
    decay_factor: float = 10.0
    init_scale: float = 2.0
    n_checkpoints: int = 200
    corr_threshold: float = 0.95
    rank_tol: float = 1e-4
    seed: int = 0                       # SGD sampling seed
    data_seed: int | None = None        # teacher + data; defaults to seed
    init_seed: int | None = None        # student init; defaults to seed

    def validate(self) -> "Teacher3Config":
        """Check every field (:class:`~toymodels.errors.ConfigError` naming the field)."""
        check_int("d", self.d, 1, 10_000)
        check_int("m_teacher", self.m_teacher, 1, 10_000)
        check_int("m", self.m, 1, 10_000)
        check_int("n", self.n, 1, 10**6)
        check_int("n_test", self.n_test, 1, 10**7)
        check_int("steps", self.steps, 1, MAX_STEPS)
        check_positive("lr", self.lr)
        check_positive("lr_const", self.lr_const)
        check_positive("init_scale", self.init_scale)
        check_int("n_checkpoints", self.n_checkpoints, 1, 100_000)
        check_range("corr_threshold", self.corr_threshold, -1.0, 1.0)
        check_range("rank_tol", self.rank_tol, 0.0, 1.0, lo_open=True)
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
class Teacher3Result:
    config: Teacher3Config
    iters: np.ndarray              # (K,) iteration counts of the checkpoints
    train_loss: np.ndarray         # (K,)
    test_loss: np.ndarray          # (K,)
    rank: np.ndarray               # (K,) rank φ_θ(X) (−1 where not reached: divergence)
    sparsity: np.ndarray           # (K, 2) feature sparsity of hidden layers 1 and 2
    W1: np.ndarray                 # (K, m, d) snapshots
    W2: np.ndarray                 # (K, m, m)
    a: np.ndarray                  # (K, m)
    lr: np.ndarray                 # (T,)
    diverged_at: int | None = None
    extra: dict = field(default_factory=dict)


def train_teacher3(cfg: Teacher3Config, backend: str = "numba") -> Teacher3Result:
    """SGD (batch 1, with replacement; indices :func:`~toymodels.relu.streams.sgd_indices`) on the teacher's
    n points; metrics at every checkpoint. ``backend``: the numba kernels or their numpy references."""
    cfg.validate()
    backend = check_backend(backend)
    ds = cfg.seed if cfg.data_seed is None else cfg.data_seed
    X, y, Xt, yt, _ = teacher_data(cfg.d, cfg.m_teacher, cfg.n, cfg.n_test, ds)
    W1, W2, a = init_student(cfg.d, cfg.m, cfg.init_scale, cfg.seed if cfg.init_seed is None else cfg.init_seed)
    lr = cfg.schedule()
    idx = sgd_indices(cfg.seed, cfg.n, cfg.steps)
    rec_at = checkpoints(cfg.steps, cfg.n_checkpoints)
    K = rec_at.shape[0]
    rW1 = np.full((K, cfg.m, cfg.d), np.nan)
    rW2 = np.full((K, cfg.m, cfg.m), np.nan)
    ra = np.full((K, cfg.m), np.nan)
    rl = np.full(K, np.nan)
    if backend == "numba":
        div = _kernels3.sgd(X, y, W1, W2, a, lr, idx, rec_at, rW1, rW2, ra, rl)
    else:
        from ._reference.teacher3 import sgd
        div = sgd(X, y, W1, W2, a, lr, idx, rec_at, rW1, rW2, ra, rl)
    done = np.isfinite(rl)
    tl = np.full(K, np.nan)
    ranks = np.full(K, -1, dtype=np.int64)
    sp = np.full((K, 2), np.nan)
    for k in np.flatnonzero(done):
        tl[k] = _kernels3.loss(Xt, yt, rW1[k], rW2[k], ra[k])
        ranks[k] = jacobian_rank(jacobian3(X, rW1[k], rW2[k], ra[k]), cfg.rank_tol)
        r1, r2 = hidden_activations(X, rW1[k], rW2[k])
        sp[k] = feature_sparsity(r1, cfg.corr_threshold), feature_sparsity(r2, cfg.corr_threshold)
    return Teacher3Result(cfg, rec_at, rl, tl, ranks, sp, rW1, rW2, ra, lr, None if div < 0 else int(div))


def run_schedules(base: Teacher3Config, transitions=DEFAULT_TRANSITIONS) -> list[Teacher3Result]:
    """One run per schedule (None = constant), same teacher, data, initialization and SGD seed."""
    return [train_teacher3(replace(base, transition=None if a is None else float(a))) for a in transitions]


def summarize(res: Teacher3Result) -> dict:
    """Final and phase numbers of one run (None where the run diverged before)."""
    c = res.config
    td = c.steps if c.transition is None else int(np.floor(c.transition * c.steps))
    ok = np.isfinite(res.train_loss)
    phase = ok & (res.iters >= td // 2) & (res.iters <= td)      # 2nd half of the large-step phase
    pre = np.flatnonzero(ok & (res.iters <= td))

    def f(v):
        return float(v) if np.isfinite(v) else None

    return {"decay_fraction": c.transition, "train_loss": f(res.train_loss[-1]),
            "test_loss": f(res.test_loss[-1]),
            "feature_sparsity": [f(v) for v in res.sparsity[-1]],
            "rank_jacobian": int(res.rank[-1]) if res.rank[-1] >= 0 else None,
            "stabilization_loss": float(np.median(res.train_loss[phase])) if phase.any() else None,
            "rank_init": int(res.rank[0]), "sparsity_init": [float(v) for v in res.sparsity[0]],
            "rank_at_decay": int(res.rank[pre[-1]]),
            "sparsity_at_decay": [float(v) for v in res.sparsity[pre[-1]]],
            "min_test_loss": f(np.nanmin(res.test_loss)),
            "peak_lr": float(res.lr.max()), "diverged_at": res.diverged_at,
            "n_params": c.m * c.d + c.m * c.m + c.m}


def config_dict(cfg: Teacher3Config) -> dict:
    return asdict(cfg)


def fresh_ranks(res: Teacher3Result, seed: int | None = None) -> np.ndarray:
    """rank φ_θ(X̃) at every checkpoint on p fresh points X̃ ~ N(0, I_d), p = #parameters — the
    thesis' measurement (l. 3155: "as many fresh samples as parameters", so that n ≪ p does not cap
    the rank; :attr:`Teacher3Result.rank` uses the n training points). −1 where not reached. The points
    are :func:`~toymodels.relu.streams.fresh_points` of ``seed`` (default: the run's seed)."""
    c = res.config
    p = c.m * c.d + c.m * c.m + c.m
    Xf = fresh_points(c.seed if seed is None else seed, p, c.d)
    out = np.full(res.iters.shape[0], -1, dtype=np.int64)
    for k in np.flatnonzero(np.isfinite(res.train_loss)):
        out[k] = jacobian_rank(jacobian3(Xf, res.W1[k], res.W2[k], res.a[k]), c.rank_tol)
    return out


def final_fresh_rank(res: Teacher3Result) -> int:
    """:func:`fresh_ranks` at the last checkpoint only."""
    last = replace(res, iters=res.iters[-1:], train_loss=res.train_loss[-1:], W1=res.W1[-1:], W2=res.W2[-1:],
                   a=res.a[-1:])
    return int(fresh_ranks(last)[0])


def observations(const: Teacher3Result, large: Teacher3Result, *, stab_ratio: float = 3.0,
                 dead_ratio: float = 0.1) -> dict:
    """The thesis' (O1)–(O3) for one seed, comparing the large-step run ``large`` with the constant-step
    run ``const`` (same data, init and SGD indices), as measured booleans with their numbers:

    * ``dead``: the large-step run failed — its final training loss is not finite or above
      ``dead_ratio`` × its initial loss (batch-1 SGD can switch off every layer-2 ReLU: f ≡ 0);
    * ``O1`` (loss stabilization): not dead, and the median training loss over the second half of the
      large-step phase is ≥ ``stab_ratio`` × the run's final training loss (the loss sat at a higher
      level set until the decay; the constant "medium" step is no reference here: it converges more
      slowly than the warmed-up large steps);
    * ``O2`` (generalization): not dead, and final test loss below the constant run's;
    * ``O3_rank`` / ``O3_sparsity``: not dead, and final rank φ on fresh points (:func:`fresh_ranks`) /
      feature sparsity of *both* hidden layers below the constant run's.
    """
    c = large.config
    td = int(np.floor(c.transition * c.steps))
    win = (large.iters >= td // 2) & (large.iters <= td)
    fl, f0 = large.train_loss[-1], large.train_loss[0]
    dead = bool(not np.isfinite(fl) or fl > dead_ratio * f0)
    st_l = float(np.nanmedian(large.train_loss[win]))
    st_c = float(np.nanmedian(const.train_loss[win]))
    rl, rc = (int(final_fresh_rank(r)) for r in (large, const))
    sl, sc = large.sparsity[-1], const.sparsity[-1]
    te_l, te_c = float(large.test_loss[-1]), float(const.test_loss[-1])
    ok = not dead
    return {"seed": c.seed, "dead": dead, "stabilization_loss": st_l, "const_loss_same_window": st_c,
            "test_loss": te_l, "const_test_loss": te_c, "rank_fresh": rl, "const_rank_fresh": rc,
            "sparsity": [float(v) for v in sl], "const_sparsity": [float(v) for v in sc],
            "O1": bool(ok and st_l >= stab_ratio * fl), "O2": bool(ok and te_l < te_c),
            "O3_rank": bool(ok and rl < rc), "O3_sparsity": bool(ok and np.all(sl < sc))}
