"""Diagonal linear network figures of thesis Ch. 5 (Figs. 5.5, 5.6, 5.13, 5.14, 5.15).

Every experiment uses the sparse regression problem of :func:`toymodels.datasets.make_sparse_regression`
with d = 30, n = 20, k = 3 (β* has three ±1 entries), noiseless labels, 1000 test points and data
seed 0, and the ¼-normalized loss of thesis eq. 5.5 (train and test loss are both
1/(4m) Σ (⟨β, xᵢ⟩ − yᵢ)²). Runs that share their step count and batch size are advanced together by
:func:`toymodels.dln.ensemble.train_ensemble`.

Losses are recorded every ``record_every`` steps and thinned to ~1000 log-spaced points for the
plots (iterations on a log axis, as in the thesis' notebooks).
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from toymodels.datasets import make_sparse_regression
from toymodels.dln.ensemble import train_ensemble
from toymodels.dln.train import DLNConfig

from . import Context, Rendered, figure

D, N, K, N_TEST, DATA_SEED = 30, 20, 3, 1000, 0
SETTING = f"d={D}, n={N}, k={K}"
C_ERM, C_N, C_1 = "tab:red", "tab:blue", "tab:green"
C_E2S, C_S2E = "tab:orange", "tab:green"


def _data(seed: int = DATA_SEED):
    return make_sparse_regression(n=N, d=D, k=K, n_test=N_TEST, seed=seed)


def _data_summary(data, seed: int = DATA_SEED) -> dict:
    return {"d": data.d, "n": data.n, "k": K, "n_test": data.n_test, "noise": 0.0, "data_seed": seed,
            "beta_star_support": np.flatnonzero(data.beta_star).tolist(),
            "beta_star_values": data.beta_star[data.beta_star != 0].tolist()}


def _thin(steps: np.ndarray, n_points: int = 1000) -> np.ndarray:
    """Indices of ~n_points records, log-spaced in the step (step 0 dropped: log axis)."""
    steps = np.asarray(steps)
    if steps.size <= 2:
        return np.arange(steps.size)
    targets = np.geomspace(max(steps[1], 1), steps[-1], n_points)
    idx = np.unique(np.clip(np.searchsorted(steps, targets), 1, steps.size - 1))
    return idx


def _curve(res, n_points: int = 1000) -> dict:
    i = _thin(res.curve_steps, n_points)
    return {"steps": res.curve_steps[i], "train": res.curve_train[i], "test": res.curve_test[i]}


def _run_summary(res) -> dict:
    return {"method": res.method, "final_train_loss": res.train_loss, "final_test_loss": res.test_loss,
            "converged": res.converged, "diverged": res.diverged, "diverged_at": res.diverged_at,
            "steps_run": res.steps_run, "beta_l1": (None if res.diverged else res.beta_l1),
            "alpha_eff_l1": (None if res.diverged else float(np.sum(res.alpha_eff))),
            "lr": res.config["lr"], "rho": res.config["rho"], "alpha": res.config["alpha"],
            "algo": res.config["algo"], "batch": res.config["batch"], "m": res.config["m"],
            "seed": res.config["seed"]}


def _flow_limit_test_loss(data, alpha) -> float | None:
    """Test loss of the gradient-flow limit argmin{φ_α(β) : Xβ = y} (None if unavailable)."""
    try:
        from toymodels.dln.implicit_bias import solve_implicit_bias

        beta = solve_implicit_bias(data.X, data.y, alpha)
    except Exception:  # module missing or solver failure: the figure does not depend on it
        return None
    r = data.X_test @ beta - data.y_test
    return 0.25 * float(r @ r) / data.n_test


def _loss_axes(ax, what: str, title: str):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{what} loss")
    ax.set_title(title)


# --------------------------------------------------------------------------------------------
@figure("5.5", "5.5", "Hyperbolic entropy φ_α interpolates between ℓ₁ (small α) and ℓ₂ (large α)")
def fig_5_5(ctx: Context) -> Rendered:
    from scipy.optimize import brentq

    from toymodels.dln.implicit_bias import phi_alpha, q

    alphas = [0.001, 0.01, 0.1, 0.3, 1.0]
    m = 161 if ctx.quick else 481
    g = np.linspace(-1.4, 1.4, m)
    B1, B2 = np.meshgrid(g, g)

    def phi2(b1, b2, a):  # φ_α for β ∈ R² with scalar α, vectorized over the grid
        a2 = a * a
        return a2 * (q(b1 / a2) + q(b2 / a2))

    def diag_radius(a):  # r with φ_α(r·(1,1)/√2) = φ_α(e₁): 1/√2 for ℓ₁, 1 for ℓ₂
        ref = phi_alpha(np.array([1.0, 0.0]), a)
        return brentq(lambda r: phi_alpha(np.array([r, r]) / np.sqrt(2), a) - ref, 1e-3, 2.0, xtol=1e-12)

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1.3, 1])
    colors = ["tab:purple", "tab:blue", "tab:cyan", "tab:orange", "tab:red"]
    t = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(t), np.sin(t), color="k", ls="--", lw=1.2, label=r"$\ell_2$ unit ball")
    ax.plot([1, 0, -1, 0, 1], [0, 1, 0, -1, 0], color="k", ls=":", lw=1.4, label=r"$\ell_1$ unit ball")
    radii = {}
    for a, c in zip(alphas, colors):
        Z = phi2(B1, B2, a) / phi2(1.0, 0.0, a)
        ax.contour(B1, B2, Z, levels=[1.0], colors=[c], linewidths=1.8)
        radii[a] = diag_radius(a)
        ax.plot([], [], color=c, lw=1.8, label=rf"$\alpha={a:g}$")
    ax.set_aspect("equal")
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-1.4, 1.4)
    ax.set_xlabel(r"$\beta_1$")
    ax.set_ylabel(r"$\beta_2$")
    ax.set_title(r"(a) unit level sets $\{\beta\in\mathbb{R}^2:\ \phi_\alpha(\beta)=\phi_\alpha(e_1)\}$")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), framealpha=0.9)

    a_grid = np.geomspace(1e-4, 1e2, 25 if ctx.quick else 121)
    r_grid = np.array([diag_radius(a) for a in a_grid])
    ax2.semilogx(a_grid, r_grid, color="k")
    ax2.axhline(1 / np.sqrt(2), color="k", ls=":", lw=1.2, label=r"$\ell_1$ ball: $1/\sqrt{2}$")
    ax2.axhline(1.0, color="k", ls="--", lw=1.2, label=r"$\ell_2$ ball: $1$")
    for a, c in zip(alphas, colors):
        ax2.plot([a], [radii[a]], "o", color=c, ms=7, label=rf"$\alpha={a:g}$")
    ax2.set_ylim(0.68, 1.03)
    ax2.set_xlabel(r"initialization scale $\alpha$")
    ax2.set_ylabel("distance of the level set from 0 along the diagonal")
    ax2.set_title(r"(b) along $\beta_1=\beta_2$: $\ell_1$-like for small $\alpha$, $\ell_2$-like for large $\alpha$")
    ax2.legend(loc="lower right", framealpha=0.9)
    fig.suptitle(r"Fig. 5.5: hyperbolic entropy $\phi_\alpha(\beta)=\sum_i\alpha^2 q(\beta_i/\alpha^2)$, "
                 r"$q(z)=2-\sqrt{4+z^2}+z\,\mathrm{arcsinh}(z/2)$, normalized by $\phi_\alpha(e_1)$")
    summary = {
        "alphas": alphas,
        "normalization": "level set phi_alpha(beta) = phi_alpha(e_1)",
        "diagonal_radius": {f"{a:g}": radii[a] for a in alphas},
        "diagonal_radius_l1": 1 / np.sqrt(2), "diagonal_radius_l2": 1.0,
        "grid_points": m,
    }
    return Rendered(fig, summary, {"alpha_grid": a_grid, "diagonal_radius": r_grid})


# --------------------------------------------------------------------------------------------
@figure("5.6", "5.6", "ERM vs n-SAM vs 1-SAM, full batch: implicit bias on sparse regression")
def fig_5_6(ctx: Context) -> Rendered:
    data = _data()
    steps = 20_000 if ctx.quick else 500_000
    rec = max(1, steps // 10_000)
    alpha, lr, rho = 0.01, 1.0 / D, 1.0 / D
    methods = [("ERM", "none", C_ERM), ("n-SAM", "n", C_N), ("1-SAM", "1", C_1)]
    cfgs = [DLNConfig(sam=s, alpha=alpha, lr=lr, rho=(None if s == "none" else rho), steps=steps,
                      record_every=rec) for _, s, _ in methods]
    runs = train_ensemble(data, cfgs, show_progress=ctx.show_progress, theory=False)
    flow = _flow_limit_test_loss(data, alpha)

    fig = Figure(figsize=(11, 4.3), layout="constrained")
    ax_te, ax_tr = fig.subplots(1, 2)
    curves = {}
    for (name, _, c), r in zip(methods, runs):
        cv = curves[name] = _curve(r)
        ax_te.plot(cv["steps"], cv["test"], color=c, label=f"{name} (final {r.test_loss:.2g})")
        ax_tr.plot(cv["steps"], cv["train"], color=c, label=f"{name} (final {r.train_loss:.1e})")
    if flow is not None:
        ax_te.axhline(flow, color="gray", ls=":", lw=1.2,
                      label=rf"flow limit $\arg\min\phi_\alpha$, $\alpha={alpha:g}$ ({flow:.2g})")
    _loss_axes(ax_te, "test", "(a) test loss")
    _loss_axes(ax_tr, "train", "(b) train loss")
    ax_te.legend(loc="upper right")
    ax_tr.legend(loc="lower left")
    fig.suptitle(f"Fig. 5.6: full-batch ERM vs n-SAM vs 1-SAM, sparse regression {SETTING}; "
                 f"α={alpha:g}, γ=ρ=1/d, {steps:,} iterations")
    summary = {
        "data": _data_summary(data), "alpha": alpha, "lr": lr, "rho": rho, "steps": steps,
        "record_every": rec,
        "final_test_loss": {name: r.test_loss for (name, _, _), r in zip(methods, runs)},
        "final_train_loss": {name: r.train_loss for (name, _, _), r in zip(methods, runs)},
        "flow_limit_test_loss_alpha": flow,
        "runs": {name: _run_summary(r) for (name, _, _), r in zip(methods, runs)},
    }
    return Rendered(fig, summary, {"curves": curves})


# --------------------------------------------------------------------------------------------
SGD_B = 2          # batch of the stochastic SAM variants (and of the SGD they are compared with)
SGD_SEEDS = 5      # SGD seeds for the robustness numbers in the summary (the plot shows seed 0)


@figure("5.13", "5.13", "Stochastic ERM / n-SAM / 1-SAM vs their full-batch versions")
def fig_5_13(ctx: Context) -> Rendered:
    data = _data()
    steps = 20_000 if ctx.quick else 500_000
    rec = max(1, steps // 10_000)
    seeds = 2 if ctx.quick else SGD_SEEDS
    alpha, lr, rho = 0.01, 1.0 / D, 1.0 / D
    base = dict(alpha=alpha, lr=lr, steps=steps, record_every=rec)
    # (label, sam, algo, batch, color, linestyle)
    methods = [
        ("GD", "none", "gd", None, C_ERM, "--"),
        ("n-SAM GD", "n", "gd", None, C_N, "--"),
        ("1-SAM GD", "1", "gd", None, C_1, "--"),
        ("SGD B=1", "none", "sgd", 1, "darkred", ":"),
        (f"SGD B={SGD_B}", "none", "sgd", SGD_B, C_ERM, "-"),
        (f"n-SAM SGD B={SGD_B} (m={SGD_B})", "n", "sgd", SGD_B, C_N, "-"),
        (f"1-SAM SGD B={SGD_B}", "1", "sgd", SGD_B, C_1, "-"),
    ]

    def cfg(sam, algo, batch, seed=0):
        return DLNConfig(sam=sam, algo=algo, batch=batch, rho=(None if sam == "none" else rho), seed=seed, **base)

    # one ensemble per batch size (ensemble members share the batch size); SGD runs over `seeds`
    groups: dict = {}
    for j, (_, sam, algo, batch, _, _) in enumerate(methods):
        for seed in (range(seeds) if algo == "sgd" else [0]):
            groups.setdefault((algo, batch), []).append((j, seed, cfg(sam, algo, batch, seed)))
    runs: dict = {}
    for members in groups.values():
        res = train_ensemble(data, [c for _, _, c in members], show_progress=ctx.show_progress, theory=False)
        for (j, seed, _), r in zip(members, res):
            runs[(j, seed)] = r

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_te, ax_tr = fig.subplots(1, 2)
    curves = {}
    for j, (label, _, _, _, c, ls) in enumerate(methods):
        r = runs[(j, 0)]
        cv = curves[label] = _curve(r)
        lw = 1.3 if ls != "-" else 1.6
        ax_te.plot(cv["steps"], cv["test"], color=c, ls=ls, lw=lw, label=f"{label} ({r.test_loss:.2g})")
        ax_tr.plot(cv["steps"], cv["train"], color=c, ls=ls, lw=lw, label=label)
    _loss_axes(ax_te, "test", "test loss (final value in the legend)")
    _loss_axes(ax_tr, "train", "train loss")
    ax_te.legend(loc="upper right")
    ax_tr.legend(loc="lower left")
    fig.suptitle(f"Fig. 5.13: stochastic (solid, batch B={SGD_B}; dotted: SGD B=1) vs full-batch (dashed) "
                 f"ERM / n-SAM / 1-SAM; {SETTING}, α={alpha:g}, γ=ρ=1/d, {steps:,} iterations")

    per_method = {}
    for j, (label, sam, algo, batch, _, _) in enumerate(methods):
        rs = [runs[(j, s)] for s in (range(seeds) if algo == "sgd" else [0])]
        tl = np.array([r.test_loss for r in rs])
        per_method[label] = {
            "final_test_loss": rs[0].test_loss, "final_train_loss": rs[0].train_loss,
            "diverged": rs[0].diverged, "sam": sam, "algo": algo, "batch": rs[0].config["batch"],
            "m": rs[0].config["m"],
            **({"test_loss_over_seeds": {"seeds": len(rs), "median": float(np.median(tl)),
                                         "min": float(tl.min()), "max": float(tl.max())}}
               if algo == "sgd" else {}),
        }
    summary = {
        "data": _data_summary(data), "alpha": alpha, "lr": lr, "rho": rho, "steps": steps, "record_every": rec,
        "stochastic_batch": SGD_B,
        "choice": (f"All stochastic SAM variants use batch B={SGD_B} with replacement: 'n-SAM SGD' ascends "
                   f"on the whole mini-batch (m-SAM with m=B, eq. 5.4), '1-SAM SGD' ascends per example "
                   f"(m=1). With B=1 the two coincide, so B=2 is the smallest batch that separates "
                   f"them; SGD is shown at B={SGD_B} (same batch) and at B=1. The plot shows SGD seed 0; "
                   f"test_loss_over_seeds gives the spread over {seeds} SGD seeds."),
        "methods": per_method,
    }
    return Rendered(fig, summary, {"curves": curves})


# --------------------------------------------------------------------------------------------
@figure("5.14", "5.14", "Grid search over ρ: full-batch n-SAM vs 1-SAM vs ERM")
def fig_5_14(ctx: Context) -> Rendered:
    data = _data()
    alpha, lr = 0.05, 15.0 / D
    steps = 5_000 if ctx.quick else 50_000
    rhos = np.logspace(-3, 0, 7 if ctx.quick else 19)
    tol = 1e-8
    base = dict(alpha=alpha, lr=lr, steps=steps, record_every=max(1, steps // 100), tol=tol)
    cfgs = [DLNConfig(sam="none", **base)]
    cfgs += [DLNConfig(sam=s, rho=float(r), **base) for s in ("n", "1") for r in rhos]
    runs = train_ensemble(data, cfgs, show_progress=ctx.show_progress, theory=False)
    erm, rn, r1 = runs[0], runs[1:1 + rhos.size], runs[1 + rhos.size:]

    fig = Figure(figsize=(10.5, 5.0), layout="constrained")
    ax = fig.subplots()
    ax.axhline(erm.test_loss, color=C_ERM, lw=1.8, label=f"ERM ({erm.test_loss:.2g})")
    stats = {}
    for name, rs, c, mk in (("n-SAM", rn, C_N, "s"), ("1-SAM", r1, C_1, "o")):
        test = np.array([np.nan if r.diverged else r.test_loss for r in rs])
        conv = np.array([r.converged for r in rs])
        div = np.array([r.diverged for r in rs])
        ok = conv & np.isfinite(test)
        best = int(np.nanargmin(np.where(ok, test, np.nan))) if ok.any() else None
        lab = f"{name}" + (f" (best ρ={rhos[best]:.3g}: {test[best]:.2g})" if best is not None else "")
        ax.plot(rhos[ok], test[ok], color=c, marker=mk, ms=5, label=lab)
        nc = ~conv & ~div
        if nc.any():
            ax.plot(rhos[nc], test[nc], ls="none", marker=mk, ms=6, mfc="none", mec=c,
                    label=f"{name}: not converged (train loss > {tol:g})")
        if div.any():
            ax.plot(rhos[div], np.full(div.sum(), 0.96), ls="none", marker="x", ms=7, color=c,
                    transform=ax.get_xaxis_transform(), clip_on=False, label=f"{name}: diverged (missing)")
        if best is not None:
            ax.plot([rhos[best]], [test[best]], marker="*", ms=14, color=c, mec="k", ls="none")
        stats[name] = {
            "test_loss": [None if not np.isfinite(t) else float(t) for t in test],
            "train_loss": [None if r.diverged else r.train_loss for r in rs],
            "converged": conv.tolist(), "diverged": div.tolist(),
            "diverged_at": [r.diverged_at for r in rs],
            "best_rho": None if best is None else float(rhos[best]),
            "best_test_loss": None if best is None else float(test[best]),
            "diverged_rhos": rhos[div].tolist(), "not_converged_rhos": rhos[nc].tolist(),
        }
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"SAM ascent step $\rho$")
    ax.set_ylabel("final test loss")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), framealpha=0.9)
    ax.set_title(f"Fig. 5.14: grid over ρ, full batch; {SETTING}, α={alpha:g}, γ=15/d, {steps:,} iterations\n"
                 "filled: converged, hollow: train loss not converged, ×: diverged, ★: best converged ρ")
    summary = {
        "data": _data_summary(data), "alpha": alpha, "lr": lr, "steps": steps, "tol": tol,
        "rho_grid": rhos, "erm_test_loss": erm.test_loss, "erm_train_loss": erm.train_loss,
        "best_rho": {k: v["best_rho"] for k, v in stats.items()},
        "best_test_loss": {k: v["best_test_loss"] for k, v in stats.items()},
        "methods": stats,
        "note": "best ρ is taken over runs whose final train loss is <= tol",
    }
    return Rendered(fig, summary, {"rho": rhos, "erm_test_loss": erm.test_loss,
                                   **{k: v["test_loss"] for k, v in stats.items()}})


# --------------------------------------------------------------------------------------------
FIG15_LR_D = 0.1   # γ = FIG15_LR_D / d; see the summary's "step_size_choice"
#: the thesis' ρ = 10 for ERM→1-SAM is stable only for some data draws (with the streams of 0.2.0: data
#: seeds 1 and 2 of 0–4, at γ = 0.1/d, 0.05/d and 0.03/d alike — it blows up right after the switch);
#: Fig. 5.15 uses the first stable one, so that the figure shows the printed radii at work
FIG15_DATA_SEED = 1


FIG15_STEP_SIZE_NOTE = (
    "The thesis' ρ values (0.175 for 1-SAM→ERM, 10 for ERM→1-SAM) do not work with Fig. 5.14's "
    "step size γ=15/d in our normalization: ERM→1-SAM with ρ=10 blows up within a few steps of "
    "the switch for every γ ≥ 0.5/d (see stability_check_erm_to_1sam). With γ=0.1/d both thesis "
    "values work for data seed 1 (used here), but ρ=10 sits at the edge of stability: it diverges "
    "right after the switch for data seeds 0, 3 and 4, also at γ=0.05/d and 0.03/d (ERRATA X1). Near a minimum 1-SAM "
    "with step γ is linearly stable only if γ·λ(1+ρλ) ≲ 2 for the per-example curvatures λ, so "
    "the admissible ρ scales like 1/γ. With γ=0.1/d, ERM is close to but not at a minimum at the "
    "switch (see at_switch). The thesis' public notebook (tml-epfl/understanding-sam) trains "
    "u⊙v with the ½-normalized loss, which is our ¼-normalized w± loss with the same γ and the "
    "same n-SAM ρ, but its 1-SAM ascent uses 2ρ∇ℓᵢ, i.e. ρ_ours = 2ρ_thesis for 1-SAM; its β* "
    "is a nonnegative unit vector, ours has ±1 entries (‖β*‖=√3).")


def _fig15_stability(data, alpha: float, switch: int, rho_e2s: float, quick: bool) -> list[dict]:
    """Stability of ERM→1-SAM with the thesis' ρ = 10 for several step sizes (incl. Fig. 5.14's
    15/d), and of larger/smaller ρ at the step size used here: the first step at which the run
    blows up."""
    chk_steps = switch + (2_000 if quick else 20_000)
    chk = [(lrd, rho_e2s) for lrd in (15.0, 5.0, 1.0, 0.5, 0.2, FIG15_LR_D)]
    chk += [(FIG15_LR_D, r) for r in (5.0, 7.0, 11.0, 14.0, 20.0)]
    chk_runs = train_ensemble(data, [DLNConfig(sam="1", alpha=alpha, lr=lrd / D, rho=r, steps=chk_steps,
                                               switch_at=switch, switch_mode="erm-to-sam",
                                               record_every=chk_steps)
                                     for lrd, r in chk])
    return [{"lr": f"{lrd:g}/d", "rho": r, "steps": chk_steps, "diverged": c.diverged,
             "diverged_at": c.diverged_at, "final_train_loss": c.train_loss, "final_test_loss": c.test_loss}
            for (lrd, r), c in zip(chk, chk_runs)]


def _fig15_curves(ax_te, ax_tr, names, colors, runs, switch: int) -> dict:
    """Panels (a) and (b): test and train loss of the three runs, the switch marked."""
    curves = {}
    for name, c, r in zip(names, colors, runs):
        cv = curves[name] = _curve(r)
        ls = "--" if name.startswith("1-SAM") else "-"
        z = 3 if r is runs[0] else 2  # ERM on top: ERM→1-SAM follows the same path until the switch
        ax_te.plot(cv["steps"], cv["test"], color=c, ls=ls, zorder=z, label=f"{name} ({r.test_loss:.2g})")
        ax_tr.plot(cv["steps"], cv["train"], color=c, ls=ls, zorder=z, label=name)
    for a in (ax_te, ax_tr):
        a.axvline(switch, color="k", lw=0.8, alpha=0.6)
        a.text(switch, 0.93, f" switch @ {switch:,}", transform=a.get_xaxis_transform(), fontsize=8)
    _loss_axes(ax_te, "test", "(a) test loss (final value in the legend)")
    _loss_axes(ax_tr, "train", "(b) train loss")
    ax_te.legend(loc="lower left")
    ax_tr.legend(loc="lower left")
    return curves


def _fig15_interpolation(ax_in, data, erm, e2s, lam: np.ndarray) -> dict | None:
    """Panel (c): train and test loss along w(λ) = (1−λ) w_ERM + λ w_ERM→1-SAM (None if a run diverged)."""
    interp = None
    if not (erm.diverged or e2s.diverged):
        wp = (1 - lam)[:, None] * erm.w_plus + lam[:, None] * e2s.w_plus
        wm = (1 - lam)[:, None] * erm.w_minus + lam[:, None] * e2s.w_minus
        beta = wp**2 - wm**2
        tr = 0.25 * np.mean((beta @ data.X.T - data.y) ** 2, axis=1)
        te = 0.25 * np.mean((beta @ data.X_test.T - data.y_test) ** 2, axis=1)
        interp = {"lambda": lam, "train": tr, "test": te}
        ax_in.plot(lam, te, color="tab:blue", label="test loss")
        ax_in.plot(lam, tr, color="tab:blue", ls="--", label="train loss")
        ax_in.plot([0], [te[np.argmin(np.abs(lam))]], "o", color=C_ERM, ms=8, label=r"$w_{ERM}$ ($\lambda=0$)")
        ax_in.plot([1], [te[np.argmin(np.abs(lam - 1))]], "*", color=C_E2S, ms=13, mec="k",
                   label=r"$w_{ERM\to1\text{-}SAM}$ ($\lambda=1$)")
        ax_in.set_yscale("log")
        ax_in.legend(loc="upper center")
    else:
        ax_in.text(0.5, 0.5, "ERM→1-SAM diverged:\nno interpolation", ha="center", va="center",
                   transform=ax_in.transAxes)
    ax_in.set_xlabel(r"$\lambda$:  $w(\lambda)=(1-\lambda)\,w_{ERM}+\lambda\,w_{ERM\to1\text{-}SAM}$")
    ax_in.set_ylabel("loss")
    ax_in.set_title("(c) linear interpolation in w-space" + (
        "" if interp is None else f"\n(max train loss for λ∈[0,1]: {np.max(interp['train'][(lam >= 0) & (lam <= 1)]):.1e})"))
    return interp


def _fig15_interp_summary(interp, lam, erm, e2s) -> dict | None:
    if interp is None:
        return None
    inside = (lam >= 0) & (lam <= 1)
    return {"lambda_range": [float(lam[0]), float(lam[-1])],
            "max_train_loss_between": float(np.max(interp["train"][inside])),
            "max_test_loss_between": float(np.max(interp["test"][inside])),
            "train_loss_endpoints": [float(erm.train_loss), float(e2s.train_loss)]}


def _at_switch(r, switch: int) -> dict:
    j = max(0, int(np.searchsorted(r.curve_steps, switch, side="right")) - 1)
    return {"step": int(r.curve_steps[j]), "train_loss": float(r.curve_train[j]), "test_loss": float(r.curve_test[j])}


@figure("5.15", "5.15", "ERM vs ERM→1-SAM vs 1-SAM→ERM (switch after 10k iterations) and loss interpolation")
def fig_5_15(ctx: Context) -> Rendered:
    data = _data(FIG15_DATA_SEED)
    alpha = 0.05
    lr = FIG15_LR_D / D
    rho_s2e, rho_e2s = 0.175, 10.0
    steps, switch = (20_000, 10_000) if ctx.quick else (1_000_000, 10_000)
    rec = max(1, steps // 10_000)
    base = dict(alpha=alpha, lr=lr, steps=steps, record_every=rec)
    cfgs = [DLNConfig(sam="none", **base),
            DLNConfig(sam="1", rho=rho_e2s, switch_at=switch, switch_mode="erm-to-sam", **base),
            DLNConfig(sam="1", rho=rho_s2e, switch_at=switch, switch_mode="sam-to-erm", **base)]
    names = ["ERM", f"ERM→1-SAM (ρ={rho_e2s:g})", f"1-SAM→ERM (ρ={rho_s2e:g})"]
    erm, e2s, s2e = runs = train_ensemble(data, cfgs, show_progress=ctx.show_progress, theory=False)
    stability = _fig15_stability(data, alpha, switch, rho_e2s, ctx.quick)

    fig = Figure(figsize=(15, 4.6), layout="constrained")
    ax_te, ax_tr, ax_in = fig.subplots(1, 3)
    curves = _fig15_curves(ax_te, ax_tr, names, [C_ERM, C_E2S, C_S2E], runs, switch)
    lam = np.linspace(-0.5, 1.5, 81 if ctx.quick else 201)
    interp = _fig15_interpolation(ax_in, data, erm, e2s, lam)
    fig.suptitle(f"Fig. 5.15: full-batch ERM vs ERM→1-SAM (ρ={rho_e2s:g}) vs 1-SAM→ERM (ρ={rho_s2e:g}), "
                 f"switch after {switch:,} iterations; {SETTING}, α={alpha:g}, γ={FIG15_LR_D:g}/d, "
                 f"{steps:,} iterations")
    summary = {
        "data": _data_summary(data, FIG15_DATA_SEED), "alpha": alpha, "lr": lr, "lr_times_d": FIG15_LR_D, "steps": steps,
        "switch_at": switch, "record_every": rec, "rho_erm_to_sam": rho_e2s, "rho_sam_to_erm": rho_s2e,
        "final_test_loss": {n: r.test_loss for n, r in zip(names, runs)},
        "final_train_loss": {n: r.train_loss for n, r in zip(names, runs)},
        "at_switch": {n: _at_switch(r, switch) for n, r in zip(names, runs)},
        "runs": {n: _run_summary(r) for n, r in zip(names, runs)},
        "interpolation": _fig15_interp_summary(interp, lam, erm, e2s),
        "stability_check_erm_to_1sam": stability,
        "step_size_choice": FIG15_STEP_SIZE_NOTE,
    }
    return Rendered(fig, summary, {"curves": curves, "interpolation": interp})
