"""Fig. 6.8 (thesis App. 6.6, l. 3237–3239): GD with label noise on the 2-parameter diagonal linear
network (n = 1, d = 2, u = v: h_u(x) = ⟨u⊙u, x⟩) over its loss surface — the iterates bounce across
the valley {x₁u₁² + x₂u₂² = y} while the noise slowly drifts them along it to the sparse solution
(:mod:`toymodels.sde.dln2d`; x = (1, 0.5), y = 1, η = 0.8, σ = 0.3, seed 0). The thesis' 3-D view is
drawn here as contours of L(u) = ¼(⟨u⊙u, x⟩ − y)².
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from matplotlib.figure import Figure

from toymodels.sde.dln2d import DLN2DConfig, loss_grid, simulate

from . import Context, Rendered, figure


@figure("6.8", "6.8", "Label-noise GD on the 2-parameter DLN (u = v): bouncing across the valley, drift to sparsity")
def fig_6_8(ctx: Context) -> Rendered:
    cfg = DLN2DConfig()
    if ctx.quick:
        cfg = replace(cfg, steps=300)
    res = simulate(cfg)
    tr, x, y = res["traj"], np.asarray(cfg.x), cfg.y
    fig = Figure(figsize=(11, 4.6))
    ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
    U1, U2, L = loss_grid(x, y, (-0.25, 1.65), 300)
    cs = ax[0].contourf(U1, U2, np.log10(L + 1e-6), levels=30, cmap="Greys_r", alpha=0.8)
    fig.colorbar(cs, ax=ax[0], label="log₁₀ L(u)")
    th = np.linspace(-0.1, np.pi / 2 + 0.1, 200)
    ax[0].plot(np.sqrt(y / x[0]) * np.cos(th), np.sqrt(y / x[1]) * np.sin(th), ":", color="tab:green", lw=2.5,
               label="bottom of the valley (global minima)")
    ax[0].plot(tr[:, 0], tr[:, 1], ":", color="tab:orange", lw=0.8)
    ax[0].scatter(tr[:, 0], tr[:, 1], s=6, color="tab:blue", zorder=3, label=f"label-noise GD iterates ({cfg.steps} steps)")
    us = res["sparse_solution"]
    ax[0].scatter([us[0]], [us[1]], marker="*", s=160, color="tab:red", zorder=4, label="sparse solution (0, √(y/x₂))")
    for a0, a1 in ((0.55, 0.6), (0.25, 1.1)):        # slow drift along the valley, towards the sparse solution
        p0 = np.array([np.sqrt(y / x[0]) * np.cos(a0), np.sqrt(y / x[1]) * np.sin(a0)])
        p1 = np.array([np.sqrt(y / x[0]) * np.cos(a0 + 0.35), np.sqrt(y / x[1]) * np.sin(a0 + 0.35)])
        ax[0].annotate("", xy=p1 + 0.12, xytext=p0 + 0.12, arrowprops={"arrowstyle": "->", "color": "tab:green", "lw": 2})
    ax[0].set_xlim(-0.25, 1.65)
    ax[0].set_ylim(-0.25, 1.65)
    ax[0].set_aspect("equal")
    ax[0].set_xlabel("u₁")
    ax[0].set_ylabel("u₂")
    ax[0].legend(loc="upper right", fontsize=7)
    ax[0].set_title(f"x = {tuple(cfg.x)}, y = {y}, η = {cfg.eta}, σ = {cfg.sigma}")
    t = np.arange(tr.shape[0])
    ax[1].semilogy(t, res["loss"], color="tab:blue", lw=0.8, label="L(u_t)")
    ax[1].semilogy(t, np.abs(tr[:, 0]), color="tab:red", label="|u₁| (the coordinate that vanishes)")
    ax[1].semilogy(t, 4 * ((tr * x) ** 2).sum(axis=1), color="tab:green", label="‖∇h_u(x)‖² = 4‖u⊙x‖²")
    ax[1].set_xlabel("step t")
    ax[1].legend(fontsize=7)
    ax[1].set_title("loss stabilizes; the noise shrinks ‖∇h‖ and sparsifies u")
    fig.tight_layout()
    half = tr.shape[0] // 2
    summary = {"config": res["config"], "diverged_at": res["diverged_at"], "u_final": tr[-1].tolist(),
               "sparse_solution": us.tolist(), "median_loss_second_half": float(np.median(res["loss"][half:])),
               "abs_u1_final": float(abs(tr[-1, 0]))}
    return Rendered(fig, summary, {"traj": tr, "loss": res["loss"]})
