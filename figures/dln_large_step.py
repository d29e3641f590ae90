"""Large-step-size SGD / GD on a u ⊙ v diagonal linear network (thesis Sec. 6.4.1: Figs. 6.2, 6.3, 6.11).

Setting of Fig. 6.2: n = 80, d = 200, β* 20-sparse with ±1 entries, xᵢ ~ N(0, I_d), noiseless labels,
1000 test points, data seed 0; u₀ = 0.1, v₀ = 0; loss L = 1/(4n) Σ (⟨u⊙v, xᵢ⟩ − yᵢ)² (this project's
¼-normalization; step sizes are in the (u, v) parameterization, see :mod:`toymodels.dln.large_step`).

Step sizes (chosen by a sweep on data seed 0, not copied from the thesis, which gives none):
* SGD (batch 1): small γ = 0.01; large γ = 0.095, near the stability edge — on data seed 0 over 10⁵
  steps, 0.08 converges without stabilizing, 0.09 stabilizes only briefly and sparsifies less
  (final ‖u⊙v‖₀ ≈ 80), 0.1–0.11 stabilize at a higher loss and sparsify more but the 50 % schedule
  no longer generalizes best; on data seeds 1–4, 0.1 diverges on three of four and 0.095 on one
  (seed 4), 0.09 on none — the edge depends on the draw. At 0.095 the train loss hovers between
  10⁻¹ and 10⁻³ during the large-step phase (a noisy, slowly descending plateau) rather than the flat
  plateau that 0.1 shows;
* GD (full batch): small γ = 0.5; large γ = 2.0 (2.5 diverges; 1.5 converges without stabilizing).
Large steps are decayed to the small one after 10 / 30 / 50 % of the iterations.

Metrics: ‖u⊙v‖₀ counts |uₖvₖ| > 10⁻³; rank φ_θ(X̃) counts singular values > 10⁻³·σ_max of the
Jacobian on 2d = 400 fresh points (as many as parameters).
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from toymodels.datasets import make_sparse_regression
from toymodels.dln.large_step import (L0_TOL, RANK_TOL, fresh_points, large_step_config, log_checkpoints,
                                      metrics, train_uv_checkpoints)

from . import Context, Rendered, figure

N, D, K, N_TEST, DATA_SEED = 80, 200, 20, 1000, 0
U0, V0 = 0.1, 0.0
SGD_SMALL, SGD_LARGE = 0.01, 0.095
GD_SMALL, GD_LARGE = 0.5, 2.0
DECAYS = (0.1, 0.3, 0.5)
COLORS = {None: "tab:gray", 0.1: "tab:blue", 0.3: "tab:orange", 0.5: "tab:green"}


def _data():
    return make_sparse_regression(n=N, d=D, k=K, n_test=N_TEST, seed=DATA_SEED)


def _setting() -> dict:
    return {"n": N, "d": D, "k": K, "n_test": N_TEST, "data_seed": DATA_SEED, "u0": U0, "v0": V0,
            "l0_tol": L0_TOL, "rank_tol": RANK_TOL, "rank_points": 2 * D,
            "loss": "1/(4n) sum (<u*v, x_i> - y_i)^2", "lr_parameterization": "(u, v)"}


def _label(a, small, large) -> str:
    return f"small step γ={small:g}" if a is None else f"γ={large:g} → {small:g} at {int(a * 100)}%"


def _schedules(ctx: Context, algo: str, small: float, large: float, steps: int):
    """Run the constant-small and the three decayed-large schedules; metrics at log-spaced checkpoints."""
    data, Xf = _data(), fresh_points(D)
    cps = log_checkpoints(steps, 10 if ctx.quick else 50)
    # the decay steps themselves, so the plotted metrics show the state at the switch
    cps = np.unique(np.concatenate([cps, [int(np.floor(a * steps)) for a in DECAYS]]))
    runs = {}
    for a in (None,) + DECAYS:
        cfg = large_step_config(large, small, a, steps, algo=algo, batch=1, record_every=max(1, steps // 2000))
        res = train_uv_checkpoints(data, cfg, U0, V0, cps)
        ms = [metrics(data, Xf, res.extra["u_path"][k], res.extra["v_path"][k]) for k in range(cps.size)]
        runs[a] = (res, ms)
    return data, cps, runs


def _plot_schedules(fig, cps, runs, small, large, steps):
    axs = fig.subplots(1, 4)
    for a, (res, ms) in runs.items():
        c, lab = COLORS[a], _label(a, small, large)
        s = res.curve_steps[1:]
        axs[0].plot(s, res.curve_train[1:], color=c, lw=1.0, label=lab)
        axs[1].plot(s, res.curve_test[1:], color=c, lw=1.2, label=lab)
        keep = cps > 0
        axs[2].plot(cps[keep], [m["l0"] for m, k in zip(ms, keep) if k], "-", color=c, label=lab)
        axs[3].plot(cps[keep], [m["rank"] for m, k in zip(ms, keep) if k], "-", color=c, label=lab)
        if a is not None:
            for ax in axs:
                ax.axvline(a * steps, color=c, ls=":", lw=0.8)
    for ax, name in zip(axs, ("train loss", "test loss", r"$\|u\odot v\|_0$", r"rank $\phi_\theta(X)$")):
        ax.set_xscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(name)
    axs[0].set_yscale("log")
    axs[0].set_ylim(bottom=1e-12)   # GD reaches 1e-30 after the decay; keep the stabilization visible
    axs[1].set_yscale("log")
    axs[1].legend(loc="lower left")
    return axs


def _schedule_summary(runs, cps, small, large, steps, algo) -> dict:
    out = {}
    for a, (res, ms) in runs.items():
        key = "small" if a is None else f"large_decay_{int(a * 100)}%"
        out[key] = {"lr_initial": small if a is None else large, "lr_final": small, "decay_at": a,
                    "diverged_at": res.diverged_at, "final_train_loss": ms[-1]["train_loss"],
                    "final_test_loss": ms[-1]["test_loss"], "final_l0": ms[-1]["l0"],
                    "final_rank": ms[-1]["rank"],
                    "min_rank": min(m["rank"] for m in ms)}
        if a is not None:
            k = int(np.searchsorted(cps, int(np.floor(a * steps))))
            out[key].update(l0_at_decay=ms[k]["l0"], rank_at_decay=ms[k]["rank"],
                            test_loss_at_decay=ms[k]["test_loss"])  # geometric mean of the train loss over the second half of the large-step phase
            sel = (res.curve_steps >= a * steps / 2) & (res.curve_steps < a * steps)
            out[key]["stabilized_train_loss_geomean"] = float(np.exp(np.mean(np.log(res.curve_train[sel]))))
    return {"setting": _setting(), "algo": algo, "batch": 1 if algo == "sgd" else N, "steps": steps,
            "lr_small": small, "lr_large": large, "runs": out}


@figure("6.2", "6.2", "DLN, SGD with large steps: loss stabilization, sparser predictor, lower Jacobian rank")
def fig_6_2(ctx: Context) -> Rendered:
    steps = 4_000 if ctx.quick else 100_000
    data, cps, runs = _schedules(ctx, "sgd", SGD_SMALL, SGD_LARGE, steps)
    fig = Figure(figsize=(16, 4.0), layout="constrained")
    _plot_schedules(fig, cps, runs, SGD_SMALL, SGD_LARGE, steps)
    fig.suptitle(f"Fig. 6.2: SGD (batch 1) on a u⊙v DLN, n={N}, d={D}, {K}-sparse β*, u₀={U0}, v₀={V0}, "
                 f"{steps:,} iterations")
    summary = _schedule_summary(runs, cps, SGD_SMALL, SGD_LARGE, steps, "sgd")
    data_out = {str(a): {"checkpoints": cps, "l0": [m["l0"] for m in ms], "rank": [m["rank"] for m in ms]}
                for a, (_, ms) in runs.items()}
    return Rendered(fig, summary, data_out)


@figure("6.11", "6.11", "DLN, full-batch GD with large steps: loss stabilizes but no sparsification")
def fig_6_11(ctx: Context) -> Rendered:
    steps = 1_000 if ctx.quick else 20_000
    data, cps, runs = _schedules(ctx, "gd", GD_SMALL, GD_LARGE, steps)
    fig = Figure(figsize=(16, 4.0), layout="constrained")
    _plot_schedules(fig, cps, runs, GD_SMALL, GD_LARGE, steps)
    fig.suptitle(f"Fig. 6.11: full-batch GD on a u⊙v DLN, n={N}, d={D}, {K}-sparse β*, u₀={U0}, v₀={V0}, "
                 f"{steps:,} iterations")
    summary = _schedule_summary(runs, cps, GD_SMALL, GD_LARGE, steps, "gd")
    data_out = {str(a): {"checkpoints": cps, "l0": [m["l0"] for m in ms], "rank": [m["rank"] for m in ms]}
                for a, (_, ms) in runs.items()}
    return Rendered(fig, summary, data_out)


@figure("6.3", "6.3", "DLN, GD vs SGD with large steps take different trajectories")
def fig_6_3(ctx: Context) -> Rendered:
    """Trajectories of β = u⊙v projected on the plane through β_init = 0 spanned by β* − β_init and
    β_flow − β_init (β_flow: GD with the small step γ = 0.5 run to convergence, a proxy for the
    gradient-flow limit), orthonormalized by Gram–Schmidt; contours of the train loss on that plane."""
    data = _data()
    sgd_steps = 4_000 if ctx.quick else 100_000
    gd_steps = 1_000 if ctx.quick else 20_000
    npts = 60 if ctx.quick else 400
    flow = train_uv_checkpoints(data, large_step_config(GD_LARGE, GD_SMALL, None, gd_steps, algo="gd"),
                                U0, V0, [gd_steps])
    b0 = np.full(D, U0 * V0)
    bflow = flow.extra["u"] * flow.extra["v"]
    e1 = data.beta_star - b0
    e1 = e1 / np.linalg.norm(e1)
    e2 = (bflow - b0) - ((bflow - b0) @ e1) * e1
    e2 = e2 / np.linalg.norm(e2)
    paths, finals = {}, {}
    for name, algo, small, large, T in (("GD", "gd", GD_SMALL, GD_LARGE, gd_steps),
                                        ("SGD", "sgd", SGD_SMALL, SGD_LARGE, sgd_steps)):
        cps = np.unique(np.linspace(0, T, npts).astype(np.int64))
        res = train_uv_checkpoints(data, large_step_config(large, small, 0.5, T, algo=algo, batch=1), U0, V0, cps)
        B = res.extra["u_path"] * res.extra["v_path"] - b0
        paths[name] = np.stack([B @ e1, B @ e2], axis=1)
        rt = data.X_test @ (res.extra["u"] * res.extra["v"]) - data.y_test
        bt = res.extra["u"] * res.extra["v"] - b0
        finals[name] = {"lr_large": large, "lr_small": small, "steps": T, "decay_at": 0.5,
                        "final_test_loss": 0.25 * float(rt @ rt) / data.n_test,
                        "final_coords": [float(bt @ e1), float(bt @ e2)],
                        "fraction_outside_plane": float(np.linalg.norm(bt - (bt @ e1) * e1 - (bt @ e2) * e2)
                                                        / np.linalg.norm(bt))}
    ref = {"beta_star": [float((data.beta_star - b0) @ e1), float((data.beta_star - b0) @ e2)],
           "beta_flow": [float((bflow - b0) @ e1), float((bflow - b0) @ e2)]}
    allp = np.concatenate([paths["GD"], paths["SGD"], [[0, 0], ref["beta_star"], ref["beta_flow"]]])
    lo, hi = allp.min(0), allp.max(0)
    pad = 0.15 * (hi - lo)
    ga = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 121 if not ctx.quick else 41)
    gb = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 121 if not ctx.quick else 41)
    A, Bm = np.meshgrid(ga, gb)
    # L(β0 + a e1 + b e2) = 1/(4n)‖r0 + a Xe1 + b Xe2‖², vectorized over the grid
    r0, x1, x2 = data.X @ b0 - data.y, data.X @ e1, data.X @ e2
    R = r0[None, None, :] + A[..., None] * x1 + Bm[..., None] * x2
    Lgrid = 0.25 * np.mean(R**2, axis=-1)
    fig = Figure(figsize=(7.5, 6.0), layout="constrained")
    ax = fig.subplots()
    cs = ax.contour(A, Bm, np.log10(Lgrid), levels=20, cmap="viridis", linewidths=0.8)
    fig.colorbar(cs, ax=ax, label=r"$\log_{10}$ train loss on the plane")
    ax.plot(*paths["GD"].T, "-", color="tab:red", lw=1.0, label=f"GD γ={GD_LARGE:g}→{GD_SMALL:g}")
    ax.plot(*paths["SGD"].T, "-", color="tab:blue", lw=0.8, alpha=0.8,
            label=f"SGD γ={SGD_LARGE:g}→{SGD_SMALL:g}")
    ax.plot([0], [0], "ko", label=r"$\beta_{init}$")
    ax.plot(*ref["beta_star"], "k*", ms=12, label=r"$\beta^*$")
    ax.plot(*ref["beta_flow"], "ks", label=r"$\beta_{flow}$ (GD, γ=0.5)")
    ax.set_xlabel(r"coordinate along $\beta^*-\beta_{init}$")
    ax.set_ylabel(r"coordinate along $(\beta_{flow}-\beta_{init})_{\perp}$")
    ax.legend(loc="best")
    ax.set_title("Fig. 6.3: GD vs SGD with large steps (decayed at 50%), β = u⊙v projected")
    summary = {"setting": _setting(), "plane": "span(beta_star - beta_init, beta_flow - beta_init), "
               "Gram-Schmidt", "beta_flow": {"algo": "gd", "lr": GD_SMALL, "steps": gd_steps,
                                             "train_loss": flow.train_loss, "test_loss": flow.test_loss},
               "reference_points": ref, "runs": finals}
    return Rendered(fig, summary, {"GD": paths["GD"], "SGD": paths["SGD"]})
