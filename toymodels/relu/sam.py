"""ERM vs normalized SAM for the two-layer ReLU net on Blanc et al.'s 1D regression (thesis Sec. 5.5.3,
Fig. 5.7, l.2280–2292), full-batch gradient descent.

Model and loss as in :mod:`toymodels.relu.model` (project normalization, eq. 6.1):

    f_θ(x) = Σⱼ aⱼ ReLU(wⱼ x + bⱼ),   L(θ) = (1/2n) Σᵢ (f_θ(xᵢ) − yᵢ)²,   θ = (w, b, a) ∈ ℝ^{3m}.

ERM (full-batch GD):    θ_{t+1} = θ_t − η_t ∇L(θ_t).
Normalized SAM (Foret et al.; the authors' notebook ``one_layer_relu_nets/1d_nn.ipynb``):

    ε_t = ρ ∇L(θ_t) / ‖∇L(θ_t)‖₂   (ε_t = 0 if ∇L(θ_t) = 0),   θ_{t+1} = θ_t − η_t ∇L(θ_t + ε_t).

The normalization makes ε_t independent of the loss scale, so ρ = 0.3 is the authors' value unchanged.

The thesis gives neither ρ, the step size, the number of steps nor the initialization; the defaults
follow the authors' notebook (documented in ERRATA.md, section "Fig. 5.7"):

* init ``init_params(m=100, s_w=1, s_a=1, seed)``: wⱼ = ±2.5, bⱼ ~ N(0, 2.5²), aⱼ ~ N(0, 4²);
  five initializations, k = 0..4, initialization k from the random stream ``(seed, "relu/sam/init", k)``
  (:func:`toymodels.relu.streams.sam_init_seed`);
* their loss is ½ Σᵢ (f − y)² = n L with step γ = 5·10⁻⁵, i.e. η = n γ = 6·10⁻⁴ here;
* ERM: constant η; SAM: linearly decayed η_t = η (1 − (t+1)/T) (their ``lr_decay`` is applied only
  inside the ρ > 0 branch); T = 10⁶;
* a run stops early once the loss at the point where the descent gradient is taken (θ_t for ERM,
  θ_t + ε_t for SAM) satisfies ½ Σᵢ (f − y)² ≤ 10⁻⁵ (``stop_loss``, in their normalization).

The hot loop is the numba kernel :func:`toymodels.relu._kernels.net1d.gd_sam`, with its numpy reference
of the same name in :mod:`toymodels.relu._reference.net1d` (``backend="numpy"``); public API
:class:`SAMReLUConfig`, :func:`train_gd_sam`, :func:`run_fig57`, :func:`loss_and_grad`, :func:`sam_direction`.
Command line: ``python -m toymodels.relu sam`` (:mod:`toymodels.relu.sam_cli`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..backends import check_backend
from ..errors import check_int, check_nonneg, check_positive
from ..progress import progress
from ..rng import check_seed
from ._kernels import net1d as _kernels
from ._reference import net1d as _reference
from ._reference.net1d import loss_and_grad, sam_direction
from .metrics import count_kinks
from .model import MAX_M, blanc_data, init_params, predict
from .streams import sam_init_seed

__all__ = ["SAMReLUConfig", "SAMReLUResult", "loss_and_grad", "sam_direction", "lr_schedule",
           "train_gd_sam", "run_fig57", "plot_fig57", "function_spread", "KINK_TOLS", "MAX_STEPS", "MAX_INITS"]

#: the most steps of one run (the step-size schedule takes 8 bytes a step)
MAX_STEPS = 10 ** 8
#: the most initializations of :func:`run_fig57` (two full runs each)
MAX_INITS = 1000
#: slope-jump thresholds at which the kinks are also counted (the main count uses ``kink_tol``)
KINK_TOLS = (0.01, 0.1, 1.0)


# ---------------------------------------------------------------- public API
@dataclass
class SAMReLUConfig:
    """One full-batch run (ERM if ``rho`` = 0, normalized SAM otherwise). Defaults: the authors'
    notebook for Fig. 5.7 (see the module docstring); ``lr`` is η for L = (1/2n)Σ(f − y)²."""

    rho: float = 0.3
    m: int = 100
    steps: int = 1_000_000
    lr: float = 6e-4
    lr_decay: bool | None = None       # None: linear decay for SAM, constant for ERM (authors' code)
    stop_loss: float = 1e-5            # stop when ½Σ(f − y)² ≤ stop_loss at the descent-gradient point
    s_w: float = 1.0
    s_a: float = 1.0
    init_seed: int = 0
    loss_every: int = 1000
    kink_tol: float = 1e-2

    def validate(self) -> "SAMReLUConfig":
        """Check every field (:class:`~toymodels.errors.ConfigError` naming the field)."""
        check_nonneg("rho", self.rho)
        check_int("m", self.m, 1, MAX_M)
        check_int("steps", self.steps, 1, MAX_STEPS)
        check_positive("lr", self.lr)
        check_nonneg("stop_loss", self.stop_loss)
        check_positive("s_w", self.s_w)
        check_positive("s_a", self.s_a)
        check_seed(self.init_seed, "init_seed")
        check_int("loss_every", self.loss_every, 1, MAX_STEPS)
        check_nonneg("kink_tol", self.kink_tol)
        return self

    @property
    def decays(self) -> bool:
        return self.rho > 0 if self.lr_decay is None else bool(self.lr_decay)


def lr_schedule(cfg: SAMReLUConfig) -> np.ndarray:
    """η_t, t = 0..T−1: constant η, or η(1 − (t+1)/T) when the run decays (the authors' order: the
    counter is incremented before the step, so the last step has η_{T−1} = 0)."""
    T = cfg.steps
    if not cfg.decays:
        return np.full(T, cfg.lr)
    return cfg.lr * (1.0 - np.arange(1, T + 1, dtype=np.float64) / T)


@dataclass
class SAMReLUResult:
    config: SAMReLUConfig
    w: np.ndarray
    b: np.ndarray
    a: np.ndarray
    steps_done: int                 # steps actually taken (early stop) — T if none
    diverged_at: int | None
    train_loss: float               # L(θ_final) = (1/2n)Σ(f − y)²
    loss_curve: np.ndarray          # L(θ_t) at t = 0, loss_every, 2 loss_every, … (NaN after a stop)
    n_kinks: int


def train_gd_sam(cfg: SAMReLUConfig, x=None, y=None, backend: str = "numba") -> SAMReLUResult:
    """Train from ``init_params(m, s_w, s_a, init_seed)`` and count the final predictor's distinct kinks
    in the data range (``count_kinks`` with ``kink_tol``). Divergence is reported, not raised.
    ``backend``: the numba kernel or its numpy reference (:func:`toymodels.relu._reference.net1d.gd_sam`)."""
    cfg.validate()
    impl = _kernels if check_backend(backend) == "numba" else _reference
    if x is None:
        x, y = blanc_data()
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    w, b, a = (np.ascontiguousarray(v) for v in init_params(cfg.m, cfg.s_w, cfg.s_a, cfg.init_seed))
    lrs = lr_schedule(cfg)
    curve = np.full((cfg.steps - 1) // cfg.loss_every + 1, np.nan)
    with np.errstate(over="ignore", invalid="ignore"):   # divergence is detected and reported below
        k = impl.gd_sam(x, y, w, b, a, lrs, float(cfg.rho), float(cfg.stop_loss), cfg.loss_every, curve)
    steps_done, div = (k, None) if k >= 0 else (-k - 1, -k - 1)
    with np.errstate(over="ignore", invalid="ignore"):
        L = float(loss_and_grad(x, y, w, b, a)[0]) if div is None else math.nan
    if not math.isfinite(L):                 # the last update itself overflowed
        div, L = steps_done, math.nan
    kinks = count_kinks(w, b, a, float(x.min()), float(x.max()), cfg.kink_tol) if div is None else -1
    return SAMReLUResult(cfg, w, b, a, steps_done, div, L, curve, kinks)


def function_spread(preds: np.ndarray) -> float:
    """Mean over pairs of runs of the RMS difference of their predictors on a common grid: how much the
    learned function depends on the initialization."""
    preds = np.asarray(preds, dtype=np.float64)
    K = preds.shape[0]
    d = [math.sqrt(np.mean((preds[i] - preds[j]) ** 2)) for i in range(K) for j in range(i + 1, K)]
    return float(np.mean(d)) if d else 0.0


def run_fig57(base: SAMReLUConfig = SAMReLUConfig(), seed: int = 0, inits: int = 5, show_progress: bool = False,
              grid_points: int = 400):
    """ERM (ρ = 0) and SAM (ρ = base.rho) from each of ``inits`` initializations; initialization k uses the
    int seed :func:`~toymodels.relu.streams.sam_init_seed` ``(seed, k)`` (random stream
    ``(seed, "relu/sam/init", k)``; ``base.init_seed`` is ignored).

    Returns (summary dict, {"erm": [results], "sam": [results]}, grid, predictions dict)."""
    check_seed(seed)
    inits = check_int("inits", inits, 1, MAX_INITS)
    base.validate()
    x, y = blanc_data()
    grid = np.linspace(x.min(), x.max(), grid_points)
    runs = {"erm": [], "sam": []}
    init_seeds = [sam_init_seed(seed, k) for k in range(inits)]
    bar = progress(2 * inits, disable=not show_progress, desc="runs", unit="run")
    for s in init_seeds:
        for key, rho in (("erm", 0.0), ("sam", base.rho)):
            runs[key].append(train_gd_sam(replace(base, rho=rho, init_seed=s), x, y))
            bar.update(1)
    bar.close()
    preds = {k: np.array([predict(grid, r.w, r.b, r.a) for r in v]) for k, v in runs.items()}
    x_lo, x_hi = float(x.min()), float(x.max())

    def one(r):
        by_tol = {f"{t:g}": count_kinks(r.w, r.b, r.a, x_lo, x_hi, t) if r.diverged_at is None else -1
                  for t in KINK_TOLS}
        return {"train_loss": r.train_loss, "n_kinks": r.n_kinks, "n_kinks_by_tol": by_tol,
                "steps_done": r.steps_done, "diverged_at": r.diverged_at}

    per_init = [{"init": q, "init_seed": s, "erm": one(runs["erm"][q]), "sam": one(runs["sam"][q])}
                for q, s in enumerate(init_seeds)]
    summary = {"per_init": per_init, "kink_tols": list(KINK_TOLS)}
    for k in ("erm", "sam"):
        kk = np.array([r.n_kinks for r in runs[k]], dtype=float)
        summary[f"mean_kinks_{k}"] = float(kk.mean())
        summary[f"mean_kinks_by_tol_{k}"] = {f"{t:g}": float(np.mean([p[k]["n_kinks_by_tol"][f"{t:g}"]
                                                                       for p in per_init])) for t in KINK_TOLS}
        summary[f"max_train_loss_{k}"] = float(max(r.train_loss for r in runs[k]))
        summary[f"function_spread_{k}"] = function_spread(preds[k])
    summary["sam_fewer_kinks_on_average"] = summary["mean_kinks_sam"] < summary["mean_kinks_erm"]
    summary["sam_fewer_or_equal_kinks_every_init"] = all(
        p["sam"]["n_kinks"] <= p["erm"]["n_kinks"] for p in per_init)
    return summary, runs, grid, preds


def plot_fig57(runs, grid, preds, title: str = ""):
    """Two panels (ERM, SAM): the learned functions of every initialization over the 12 points."""
    from matplotlib.figure import Figure

    x, y = blanc_data()
    fig = Figure(figsize=(10, 3.6))
    ax = fig.subplots(1, 2, sharey=True)
    for q, (key, name) in enumerate((("erm", "ERM"), ("sam", f"SAM, ρ = {runs['sam'][0].config.rho:g}"))):
        for k, r in enumerate(runs[key]):
            ax[q].plot(grid, preds[key][k], color=f"C{k}", lw=1.4,
                       label=f"init {k}: {r.n_kinks} kinks, L = {r.train_loss:.1e}")
        ax[q].scatter(x, y, color="k", zorder=3, s=14)
        ax[q].set_title(f"{name} (mean kinks {np.mean([r.n_kinks for r in runs[key]]):.1f})")
        ax[q].set_xlabel("x")
        ax[q].legend(fontsize=7)
    ax[0].set_ylabel("f(x)")
    ax[0].set_ylim(1.3 * y.min(), 1.2 * y.max())
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
