"""Two-layer ReLU figures of thesis Ch. 6 (Sec. 6.4.2): Fig. 6.4 (warmup 400×, decay at 2 % / 50 %),
Fig. 6.12 (warmup 500×: over-regularization), Fig. 6.13 (predictor snapshots over training).

Setting and choices as in :mod:`toymodels.relu.model` (T = 10⁵ SGD steps, batch 1, η = 4e-4, D = 3,
init seed 0; ``quick``: T = 2·10⁴, 50 checkpoints — the warmup slope scales with 1/T, so quick
figures are not the same experiment, only a smoke render).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from matplotlib.figure import Figure

from toymodels.relu import ReLUConfig, blanc_data, predict
from toymodels.relu.regression1d import run_schedules, summarize

from . import Context, Rendered, figure


def _base(ctx: Context, factor: float) -> ReLUConfig:
    return ReLUConfig(warmup_factor=factor, steps=20_000 if ctx.quick else 100_000,
                      n_checkpoints=50 if ctx.quick else 250)


def _four_panels(results, runs, title):
    x, y = blanc_data()
    grid = np.linspace(x.min() - 0.1, x.max() + 0.1, 600)
    fig = Figure(figsize=(13, 3.3))
    ax = fig.subplots(1, 4)
    for k, (res, r) in enumerate(zip(results, runs)):
        lab = f"decay at {r['decay_fraction']:.0%}"
        ax[0].plot(res.iters, res.train_loss, color=f"C{k}", label=lab)
        ax[1].plot(grid, predict(grid, res.w[-1], res.b[-1], res.a[-1]), color=f"C{k}",
                   label=f"{lab} ({r['n_kinks']} kinks)")
        ax[2].plot(res.iters, res.rank, color=f"C{k}", label=lab)
        ax[3].plot(res.iters, res.sparsity, color=f"C{k}", label=lab)
    ax[1].scatter(x, y, color="k", zorder=3, s=12)
    ax[0].set_yscale("log")
    for a_, t in zip(ax, ("train loss (1/2n)Σ(f−y)²", "final predictor", "rank φ_θ(X)",
                          "feature sparsity (ρ ≥ 0.95)")):
        a_.set_title(t)
        a_.legend()
    for a_ in (ax[0], ax[2], ax[3]):
        a_.set_xlabel("iteration")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _render(ctx: Context, factor: float, title: str) -> Rendered:
    results = run_schedules(_base(ctx, factor))
    runs = [summarize(r) for r in results]
    data = {f"run_{k}": {"iters": r.iters, "train_loss": r.train_loss, "rank": r.rank, "sparsity": r.sparsity}
            for k, r in enumerate(results)}
    return Rendered(_four_panels(results, runs, title), {"warmup_factor": factor, "runs": runs}, data)


@figure("6.4", "6.4", "Two-layer ReLU net, 1D regression: loss stabilization, rank and feature sparsity")
def fig_6_4(ctx: Context) -> Rendered:
    return _render(ctx, 400.0, "warmup 400×, decay at 2 % vs 50 %")


@figure("6.12", "6.12", "Two-layer ReLU net, 1D regression, warmup 500×: over-regularization")
def fig_6_12(ctx: Context) -> Rendered:
    return _render(ctx, 500.0, "warmup 500×, decay at 2 % vs 50 %")


@figure("6.13", "6.13", "Two-layer ReLU net, 1D regression: predictors over training (Fig. 6.4 runs)")
def fig_6_13(ctx: Context) -> Rendered:
    results = run_schedules(_base(ctx, 400.0))
    x, y = blanc_data()
    grid = np.linspace(x.min() - 0.1, x.max() + 0.1, 600)
    T = results[0].config.steps
    fracs = (0.02, 0.25, 0.5, 0.55, 0.75, 1.0)
    fig = Figure(figsize=(16, 3.0))
    ax = fig.subplots(1, len(fracs))
    snaps = {}
    for q, fr in enumerate(fracs):
        for k, res in enumerate(results):
            j = int(np.argmin(np.abs(res.iters - fr * T)))
            f = predict(grid, res.w[j], res.b[j], res.a[j])
            ax[q].plot(grid, f, color=f"C{k}", label=f"decay at {res.config.transition:.0%}")
            snaps[f"{k}_{int(res.iters[j])}"] = f
            ax[q].set_title(f"iteration {int(res.iters[j])}")
        ax[q].scatter(x, y, color="k", zorder=3, s=10)
        ax[q].set_ylim(1.3 * y.min(), 1.2 * y.max())
    ax[0].legend()
    fig.tight_layout()
    return Rendered(fig, {"snapshot_fractions": list(fracs), "steps": T}, {"grid": grid, "predictors": snaps})
