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
  five initializations = seeds 0–4;
* their loss is ½ Σᵢ (f − y)² = n L with step γ = 5·10⁻⁵, i.e. η = n γ = 6·10⁻⁴ here;
* ERM: constant η; SAM: linearly decayed η_t = η (1 − (t+1)/T) (their ``lr_decay`` is applied only
  inside the ρ > 0 branch); T = 10⁶;
* a run stops early once the loss at the point where the descent gradient is taken (θ_t for ERM,
  θ_t + ε_t for SAM) satisfies ½ Σᵢ (f − y)² ≤ 10⁻⁵ (``stop_loss``, in their normalization).

Numba kernel :func:`_gd_sam_kernel` (hot loop) with the numpy oracle :func:`gd_sam_reference`;
public API :class:`SAMReLUConfig`, :func:`train_gd_sam`, :func:`run_fig57`, :func:`sam_direction`.
CLI: ``python -m toymodels.relu.sam [--steps T] [--rho R] [--lr ETA] [--inits K] [--seed S]
[--json] [--out DIR]``.
"""
from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, replace

import numba as nb
import numpy as np

from .._cli import (Parser, UsageError, add_common, check_int_range, check_nonneg, check_positive,
                    emit_json, progress, run_main)
from .._io import save_figure, save_npz, write_json
from .metrics import count_kinks
from .model import blanc_data, init_params, predict

__all__ = ["SAMReLUConfig", "SAMReLUResult", "loss_and_grad", "sam_direction", "lr_schedule",
           "train_gd_sam", "gd_sam_reference", "run_fig57", "function_spread", "main"]

PROG = "python -m toymodels.relu.sam"
#: slope-jump thresholds at which the kinks are also counted (the main count uses ``kink_tol``)
KINK_TOLS = (0.01, 0.1, 1.0)


# ---------------------------------------------------------------- numpy reference (test oracle)
def loss_and_grad(x, y, w, b, a):
    """L(θ) = (1/2n) Σ (f(xᵢ) − yᵢ)² and its gradient (g_w, g_b, g_a); ReLU'(0) := 0 (as torch)."""
    z = np.outer(x, w) + b                                   # (n, m)
    on = z > 0.0
    r = (np.where(on, z, 0.0) @ a - y) / x.shape[0]          # residuals / n
    ra = np.outer(r, a) * on
    return 0.5 * x.shape[0] * float(r @ r), x @ ra, ra.sum(0), r @ np.where(on, z, 0.0)


def sam_direction(x, y, w, b, a, rho):
    """∇L(θ + ε) with ε = ρ∇L(θ)/‖∇L(θ)‖ (the normalized-SAM descent direction), as (g_w, g_b, g_a),
    together with the loss at the ascent point."""
    _, gw, gb, ga = loss_and_grad(x, y, w, b, a)
    nrm = math.sqrt(gw @ gw + gb @ gb + ga @ ga)
    s = rho / nrm if (rho > 0 and nrm > 0) else 0.0
    Lp, pw, pb, pa = loss_and_grad(x, y, w + s * gw, b + s * gb, a + s * ga)
    return Lp, pw, pb, pa


def gd_sam_reference(x, y, w, b, a, lrs, rho, stop_loss, loss_every, loss_out):
    """Numpy oracle of :func:`_gd_sam_kernel` (same arguments, updates w, b, a in place).

    Returns the number of steps taken (≤ T), or −(t+1) if the iterate became non-finite at step t."""
    n = x.shape[0]
    for t in range(lrs.shape[0]):
        L = loss_and_grad(x, y, w, b, a)[0]
        if t % loss_every == 0:
            loss_out[t // loss_every] = L
        Lp, gw, gb, ga = sam_direction(x, y, w, b, a, rho)
        if not (math.isfinite(L) and math.isfinite(Lp)):
            return -(t + 1)
        if n * Lp <= stop_loss:
            return t
        w -= lrs[t] * gw
        b -= lrs[t] * gb
        a -= lrs[t] * ga
    return lrs.shape[0]


# ---------------------------------------------------------------- numba kernel
@nb.njit(cache=True)
def _grad(x, y, w, b, a, gw, gb, ga):
    """Fill (gw, gb, ga) with ∇L at (w, b, a); return L = (1/2n) Σ (f − y)²."""
    n, m = x.shape[0], w.shape[0]
    for j in range(m):
        gw[j] = 0.0
        gb[j] = 0.0
        ga[j] = 0.0
    L = 0.0
    for i in range(n):
        f = 0.0
        for j in range(m):
            z = w[j] * x[i] + b[j]
            if z > 0.0:
                f += a[j] * z
        r = (f - y[i]) / n
        L += 0.5 * n * r * r
        for j in range(m):
            z = w[j] * x[i] + b[j]
            if z > 0.0:
                ra = r * a[j]
                gw[j] += ra * x[i]
                gb[j] += ra
                ga[j] += r * z
    return L


@nb.njit(cache=True)
def _gd_sam_kernel(x, y, w, b, a, lrs, rho, stop_loss, loss_every, loss_out):
    # Full-batch GD (rho = 0) or normalized SAM; w, b, a updated in place. See gd_sam_reference.
    n, m = x.shape[0], w.shape[0]
    gw, gb, ga = np.empty(m), np.empty(m), np.empty(m)
    pw, pb, pa = np.empty(m), np.empty(m), np.empty(m)
    for t in range(lrs.shape[0]):
        L = _grad(x, y, w, b, a, gw, gb, ga)
        if t % loss_every == 0:
            loss_out[t // loss_every] = L
        Lp = L
        if rho > 0.0:
            nrm = 0.0
            for j in range(m):
                nrm += gw[j] * gw[j] + gb[j] * gb[j] + ga[j] * ga[j]
            nrm = math.sqrt(nrm)
            s = rho / nrm if nrm > 0.0 else 0.0
            for j in range(m):
                pw[j] = w[j] + s * gw[j]
                pb[j] = b[j] + s * gb[j]
                pa[j] = a[j] + s * ga[j]
            Lp = _grad(x, y, pw, pb, pa, gw, gb, ga)
        if not (math.isfinite(L) and math.isfinite(Lp)):
            return -(t + 1)
        if n * Lp <= stop_loss:
            return t
        for j in range(m):
            w[j] -= lrs[t] * gw[j]
            b[j] -= lrs[t] * gb[j]
            a[j] -= lrs[t] * ga[j]
    return lrs.shape[0]


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
        check_nonneg("rho", self.rho)
        check_int_range("m", self.m, 1, 100_000)
        check_int_range("steps", self.steps, 1, 10**9)
        check_positive("lr", self.lr)
        check_nonneg("stop_loss", self.stop_loss)
        check_positive("s_w", self.s_w)
        check_positive("s_a", self.s_a)
        check_int_range("init_seed", self.init_seed, 0, 2**32 - 1)
        check_int_range("loss_every", self.loss_every, 1, 10**9)
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
    in the data range (``count_kinks`` with ``kink_tol``). Divergence is reported, not raised."""
    cfg.validate()
    if x is None:
        x, y = blanc_data()
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    w, b, a = (np.ascontiguousarray(v) for v in init_params(cfg.m, cfg.s_w, cfg.s_a, cfg.init_seed))
    lrs = lr_schedule(cfg)
    curve = np.full((cfg.steps - 1) // cfg.loss_every + 1, np.nan)
    if backend == "numba":
        k = _gd_sam_kernel(x, y, w, b, a, lrs, float(cfg.rho), float(cfg.stop_loss), cfg.loss_every, curve)
    elif backend == "numpy":
        with np.errstate(over="ignore", invalid="ignore"):   # divergence is detected and reported below
            k = gd_sam_reference(x, y, w, b, a, lrs, float(cfg.rho), float(cfg.stop_loss), cfg.loss_every,
                                 curve)
    else:
        raise UsageError(f"backend must be one of {{numba, numpy}}, got {backend!r}")
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


def run_fig57(base: SAMReLUConfig = SAMReLUConfig(), inits=range(5), show_progress: bool = False,
              grid_points: int = 400):
    """ERM (ρ = 0) and SAM (ρ = base.rho) from each initialization seed in ``inits``.

    Returns (summary dict, {"erm": [results], "sam": [results]}, grid, predictions dict)."""
    x, y = blanc_data()
    grid = np.linspace(x.min(), x.max(), grid_points)
    runs = {"erm": [], "sam": []}
    bar = progress(2 * len(inits), disable=not show_progress, desc="runs", unit="run")
    for s in inits:
        for key, rho in (("erm", 0.0), ("sam", base.rho)):
            runs[key].append(train_gd_sam(replace(base, rho=rho, init_seed=int(s)), x, y))
            bar.update(1)
    bar.close()
    preds = {k: np.array([predict(grid, r.w, r.b, r.a) for r in v]) for k, v in runs.items()}
    x_lo, x_hi = float(x.min()), float(x.max())

    def one(r):
        by_tol = {f"{t:g}": count_kinks(r.w, r.b, r.a, x_lo, x_hi, t) if r.diverged_at is None else -1
                  for t in KINK_TOLS}
        return {"train_loss": r.train_loss, "n_kinks": r.n_kinks, "n_kinks_by_tol": by_tol,
                "steps_done": r.steps_done, "diverged_at": r.diverged_at}

    per_init = [{"init_seed": int(s), "erm": one(runs["erm"][q]), "sam": one(runs["sam"][q])}
                for q, s in enumerate(inits)]
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
                       label=f"init {r.config.init_seed}: {r.n_kinks} kinks, L = {r.train_loss:.1e}")
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


# ---------------------------------------------------------------- CLI
def build_parser(prog: str = PROG) -> Parser:
    d = SAMReLUConfig()
    p = Parser(prog=prog, description="Fig. 5.7: two-layer ReLU net (100 units) on Blanc et al.'s 12 "
               "points, full-batch GD, ERM vs normalized SAM, several initializations; prints per-init "
               "train loss and number of distinct kinks.")
    p.add_argument("--rho", type=float, default=d.rho, help=f"SAM radius ρ > 0 (default {d.rho})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"max GD steps T (default {d.steps})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"step size η for L = (1/2n)Σ(f−y)² (default {d.lr:g})")
    p.add_argument("--lr-decay", choices=("auto", "yes", "no"), default="auto",
                   help="linear step decay: auto = SAM only, as the authors (default auto)")
    p.add_argument("--stop-loss", type=float, default=d.stop_loss,
                   help="stop once ½Σ(f−y)² ≤ this at the descent-gradient point (default 1e-5; 0: never)")
    p.add_argument("--inits", type=int, default=5, help="number of initializations, seeds SEED..SEED+K−1 (default 5)")
    p.add_argument("--m", type=int, default=d.m, help=f"hidden units (default {d.m})")
    p.add_argument("--kink-tol", type=float, default=d.kink_tol, help="slope jump below which a kink is "
                   "not counted (default 1e-2)")
    add_common(p)
    return p


def main(argv=None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    check_positive("--rho", args.rho)
    check_int_range("--steps", args.steps, 1, 10**9)
    check_positive("--lr", args.lr)
    check_nonneg("--stop-loss", args.stop_loss)
    check_int_range("--inits", args.inits, 1, 1000)
    check_int_range("--m", args.m, 1, 100_000)
    check_int_range("--seed", args.seed, 0, 2**32 - 1000)
    check_nonneg("--kink-tol", args.kink_tol)
    base = SAMReLUConfig(rho=args.rho, m=args.m, steps=args.steps, lr=args.lr,
                         lr_decay={"auto": None, "yes": True, "no": False}[args.lr_decay],
                         stop_loss=args.stop_loss, kink_tol=args.kink_tol,
                         loss_every=max(1, args.steps // 1000))
    inits = range(args.seed, args.seed + args.inits)
    summary, runs, grid, preds = run_fig57(base, inits, show_progress=not args.json)
    config = asdict(base) | {"inits": list(inits), "seed": args.seed}
    config.pop("init_seed")
    obj = summary | {"config": config}
    if args.out:
        write_json(f"{args.out}/relu_sam.json", obj)
        save_npz(f"{args.out}/relu_sam.npz", grid=grid, erm=preds["erm"], sam=preds["sam"])
        save_figure(plot_fig57(runs, grid, preds), f"{args.out}/relu_sam.png")
    if any(r.diverged_at is not None for v in runs.values() for r in v):
        sys.stderr.write(f"{prog}: warning: a run diverged (see diverged_at)\n")
    if args.json:
        emit_json(obj)
        return 0
    print(f"{'init':>4s}  {'ERM loss':>10s} {'ERM kinks':>9s}  {'SAM loss':>10s} {'SAM kinks':>9s}")
    for p_ in summary["per_init"]:
        print(f"{p_['init_seed']:4d}  {p_['erm']['train_loss']:10.3g} {p_['erm']['n_kinks']:9d}  "
              f"{p_['sam']['train_loss']:10.3g} {p_['sam']['n_kinks']:9d}")
    for t in KINK_TOLS:
        print(f"mean kinks with slope jump > {t:g}: ERM {summary['mean_kinks_by_tol_erm'][f'{t:g}']:.1f}, "
              f"SAM {summary['mean_kinks_by_tol_sam'][f'{t:g}']:.1f}")
    print(f"mean kinks (kink_tol): ERM {summary['mean_kinks_erm']:.2f}, SAM {summary['mean_kinks_sam']:.2f}; "
          f"spread of the functions over inits (RMS): ERM {summary['function_spread_erm']:.3g}, "
          f"SAM {summary['function_spread_sam']:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog=PROG))
