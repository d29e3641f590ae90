"""Loss stabilization of SGD on the 1D quadratic parameterization (thesis Ch. 6, Prop. 6.3.2,
eq. 6.6): quantile band over runs of F(θ_t) = (E[x²]/4)(θ*² − θ²)² with the printed level sets
δ₁ = ε_o²θ*², δ₂ = 0.17θ*² and the corrected eventual levels (m₂θ*⁴/4)(2ε_o − ε_o²)²,
(m₂θ*⁴/4)(1 − 0.65²)², for η inside the interval and, for contrast, below it (convergence).
Setting: ρ̂ = U[1, 1.05], θ* = 1, θ₀ ~ U(0, 1), seed 0.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from toymodels.quad1d import Quad1DConfig, simulate, theory

from . import Context, Rendered, figure


@figure("prop6.3.2", None, "Prop. 6.3.2 (no thesis figure): SGD loss stabilizes between two level sets (1D quadratic parameterization)")
def fig_quad1d(ctx: Context) -> Rendered:
    runs, steps = (200, 100) if ctx.quick else (2000, 300)
    fig = Figure(figsize=(10, 3.9))
    axes = fig.subplots(1, 2)
    summary = {"runs": runs, "steps": steps}
    data = {}
    for ax, eta, label in ((axes[0], 1.1, "inside interval"), (axes[1], 0.9, "below interval")):
        cfg = Quad1DConfig(eta=eta, runs=runs, steps=steps, seed=0)
        res = simulate(cfg, record=runs)
        L = theory.loss(res.traj, 1.0, res.m2)
        t = np.arange(steps + 1)
        q = np.nanquantile(L, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        ax.fill_between(t, q[0], q[4], color="C0", alpha=0.2, label="5–95% of runs")
        ax.fill_between(t, q[1], q[3], color="C0", alpha=0.4, label="25–75%")
        ax.plot(t, q[2], color="C0", lw=1.2, label="median")
        d = res.derived
        if d["eta_in_interval"]:
            ax.axhline(d["delta1"], color="tab:red", ls="--", lw=1, label=r"$\delta_1=\epsilon_o^2\theta_*^2$")
            ax.axhline(d["delta2"], color="tab:red", ls="-", lw=1, label=r"$\delta_2=0.17\theta_*^2$")
            c1, c2 = d["corrected_levels"]
            ax.axhline(c1, color="tab:green", ls="--", lw=1, label="corrected eventual levels")
            ax.axhline(c2, color="tab:green", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_ylim(1e-12, 1)
        ax.set_xlabel("step t")
        ax.set_ylabel(r"$F(\theta_t)$")
        ax.set_title(f"η = {eta} ({label}), γ ∈ [{d['gamma_range'][0]:.3f}, {d['gamma_range'][1]:.3f}]")
        ax.legend(loc="lower left", fontsize=7)
        summary[f"eta_{eta}"] = {"final_loss_quantiles": q[:, -1].tolist(), "eta_in_interval": d["eta_in_interval"],
                                 "levels": [d["delta1"], d["delta2"]]}
        data[f"eta_{eta}"] = {"quantiles": q}
    fig.tight_layout()
    return Rendered(fig=fig, summary=summary, data=data)
