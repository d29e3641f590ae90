"""Fig. 5.7 (thesis Sec. 5.5.3, l.2280–2292): ERM vs normalized SAM (ρ = 0.3) for a one-hidden-layer ReLU
net (100 units) on Blanc et al.'s 12 points, full-batch GD, five initializations; the learned functions
and their numbers of distinct kinks. Setting: :mod:`toymodels.relu.sam` defaults (the authors' notebook:
T = 10⁶, η = 6·10⁻⁴ for L = (1/2n)Σ(f − y)², SAM step linearly decayed); ``quick``: T = 10⁵ (a smoke
render, not the same experiment).
"""
from __future__ import annotations

from toymodels.relu.sam import SAMReLUConfig, plot_fig57, run_fig57

from . import Context, Rendered, figure


@figure("5.7", "5.7", "One-hidden-layer ReLU net, 1D regression: ERM vs SAM over five initializations")
def fig_5_7(ctx: Context) -> Rendered:
    base = SAMReLUConfig(steps=100_000 if ctx.quick else 1_000_000, loss_every=1000)
    summary, runs, grid, preds = run_fig57(base, seed=0, inits=5, show_progress=ctx.show_progress)
    fig = plot_fig57(runs, grid, preds, f"full-batch GD, T = {base.steps:,}, 100 ReLU units, "
                                        f"normalized SAM ρ = {base.rho:g} vs ERM")
    summary = summary | {"steps": base.steps, "lr": base.lr, "rho": base.rho}
    return Rendered(fig, summary, {"grid": grid, "erm": preds["erm"], "sam": preds["sam"]})
