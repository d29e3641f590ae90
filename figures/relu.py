"""Two-layer ReLU figures of thesis Ch. 6 (Sec. 6.4.2): Fig. 6.4 (warmup 400×, decay at 2 % / 50 %),
Fig. 6.12 (warmup 500×: over-regularization), Fig. 6.13 (predictor snapshots over training); the
teacher-student figures 6.5 (three layers, :mod:`toymodels.relu.teacher3`), 6.10 and 6.14 (two layers
in d = 2, :mod:`toymodels.relu.teacher2`).

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


#: Fig. 6.5 setting (batch-1 SGD as in the authors' notebook ``fc_nets_multi_layer.ipynb``; the thesis
#: states no batch size, step sizes, init or T). Chosen (under the streams before 0.2.0) by a sweep on
#: seeds 0–4 over F ∈ {3, 10}, init scale ∈ {1, 1.5, 2}, peak η ∈ {0.015, 0.025, 0.04}, constant
#: η ∈ {0.005, 0.01}; re-checked with the named streams of 0.2.0
#: (:func:`toymodels.relu.teacher3.observations`, 50 % run vs constant run): seeds 0–4 O1 3/5, O2 3/5,
#: O3 rank 2/5, O3 sparsity of both layers 4/5; held-out seeds 5–14 O1 8/10, O2 7/10, O3 rank 8/10,
#: O3 sparsity 4/10; no dead run (see ERRATA.md, Fig. 6.5). The module defaults equal this setting.
FIG65 = {"warmup_factor": 10.0, "init_scale": 2.0, "lr": 0.025 / 5.5, "lr_const": 0.005, "steps": 50_000}
FIG65_SEEDS = (0, 1, 2, 3, 4)


def _band(ax, x, Y, color, label):
    """Median over seeds with a min–max band (NaN-aware: a dead or diverged run leaves a gap)."""
    with np.errstate(all="ignore"):
        ax.fill_between(x, np.nanmin(Y, axis=0), np.nanmax(Y, axis=0), color=color, alpha=0.18, lw=0)
        ax.plot(x, np.nanmedian(Y, axis=0), color=color, label=label)


@figure("6.5", "6.5", "Three-layer ReLU teacher-student: loss stabilization, rank, sparsity on both layers")
def fig_6_5(ctx: Context) -> Rendered:
    """Teacher 2-2, student 10-10, d = 5, n = 50, batch-1 SGD, :data:`FIG65` over :data:`FIG65_SEEDS`
    (median and min–max band over seeds; rank on p = 160 fresh points as in thesis l. 3155).
    ``quick``: 2 seeds, T = 10⁴, 15 checkpoints — a smoke render only."""
    from toymodels.relu.teacher3 import Teacher3Config, fresh_ranks, observations, run_schedules as run3
    from toymodels.relu.teacher3 import summarize as summ3

    seeds = FIG65_SEEDS[:2] if ctx.quick else FIG65_SEEDS
    kw = FIG65 | ({"steps": 10_000} if ctx.quick else {})
    K = 15 if ctx.quick else 40
    per_seed = [run3(Teacher3Config(**kw, n_checkpoints=K, seed=s)) for s in seeds]
    base = per_seed[0][0].config
    iters = per_seed[0][0].iters
    n_sched = len(per_seed[0])
    fig = Figure(figsize=(16, 3.5))
    ax = fig.subplots(1, 5)
    data, runs = {}, []
    for k in range(n_sched):
        res_k = [ps[k] for ps in per_seed]
        tr = res_k[0].config.transition
        lab = "constant η" if tr is None else f"decay at {tr:.0%}"
        rk = np.array([np.where((r := fresh_ranks(x)) >= 0, r, np.nan) for x in res_k], dtype=float)
        series = {"train_loss": np.array([x.train_loss for x in res_k]), "test_loss": np.array([x.test_loss for x in res_k]),
                  "rank_fresh": rk, "sparsity": np.array([x.sparsity for x in res_k])}
        for a_, Y in zip(ax, (series["train_loss"], series["test_loss"], rk, series["sparsity"][:, :, 0],
                              series["sparsity"][:, :, 1])):
            _band(a_, iters, Y, f"C{k}", lab)
        data[f"run_{k}"] = series
        runs.append({"decay_fraction": tr, "per_seed": [summ3(x) | {"rank_fresh": int(r[-1]) if np.isfinite(r[-1]) else None}
                                                         for x, r in zip(res_k, rk)]})
    obs = [observations(ps[0], ps[-1]) for ps in per_seed]
    counts = {k: int(sum(o[k] for o in obs)) for k in ("dead", "O1", "O2", "O3_rank", "O3_sparsity")}
    for a_, t in zip(ax, ("train loss (1/2n)Σ(f−y)²", "test loss", f"rank φ_θ(X̃), {base.m * base.d + base.m ** 2 + base.m} fresh points",
                          "feature sparsity, layer 1", "feature sparsity, layer 2")):
        a_.set_title(t)
        a_.set_xlabel("iteration")
    ax[0].set_yscale("log")
    ax[1].set_yscale("log")
    ax[0].legend()
    fig.suptitle(f"three-layer ReLU teacher (2-2) / student (10-10), d = {base.d}, n = {base.n}, SGD batch 1; "
                 f"median and min–max over seeds {list(seeds)}; 50 % vs constant: "
                 + ", ".join(f"{k} {v}/{len(seeds)}" for k, v in counts.items()))
    fig.tight_layout()
    summary = {"steps": base.steps, "seeds": list(seeds), "setting": kw, "runs": runs, "observations": obs,
               "observation_counts": counts}
    return Rendered(fig, summary, {"iters": iters, **data})


def _teacher2_runs(ctx: Context):
    from toymodels.relu.teacher2 import Teacher2Config, run_schedules2, summarize2

    base = Teacher2Config(steps=10_000 if ctx.quick else 50_000, n_checkpoints=25 if ctx.quick else 200)
    results = run_schedules2(base)
    return base, results, [summarize2(r) for r in results]


def _label(r):
    return "constant η" if r["decay_fraction"] is None else f"decay at {r['decay_fraction']:.0%}"


@figure("6.10", "6.10", "Two-layer ReLU teacher-student in d = 2: neuron movement, small vs large steps")
def fig_6_10(ctx: Context) -> Rendered:
    """Trajectories of |aⱼ| wⱼ (:mod:`toymodels.relu.teacher2` defaults, T = 5·10⁴; ``quick``: 10⁴)
    for the constant small step and the large-step run decayed at 50 %; dashed: teacher directions."""
    base, results, runs = _teacher2_runs(ctx)
    pick = [0, len(results) - 1]
    fig = Figure(figsize=(9, 4.4))
    ax = fig.subplots(1, 2)
    for q, k in enumerate(pick):
        res = results[k]
        ok = np.isfinite(res.train_loss)
        P = np.abs(res.a[ok])[:, :, None] * res.W[ok]                  # (K, m, 2)
        lim = 1.1 * np.abs(P).max()
        for w in res.teacher_W:
            ax[q].plot([0, lim * w[0]], [0, lim * w[1]], "k--", lw=1)
        for j in range(P.shape[1]):
            ax[q].plot(P[:, j, 0], P[:, j, 1], color="C0", lw=0.7, alpha=0.7)
        ax[q].scatter(P[0, :, 0], P[0, :, 1], s=8, color="C7", label="init", zorder=3)
        ax[q].scatter(P[-1, :, 0], P[-1, :, 1], s=10, color="C3", label="final", zorder=4)
        ax[q].set_xlim(-lim, lim)
        ax[q].set_ylim(-lim, lim)
        ax[q].set_aspect("equal")
        ax[q].set_title(f"{_label(runs[k])} (peak η {runs[k]['peak_lr']:.3g})\nteacher alignment "
                        f"{runs[k]['teacher_alignment_init']:.2f} → {runs[k]['teacher_alignment'] or float('nan'):.2f}")
    ax[0].legend(loc="lower left")
    fig.tight_layout()
    summary = {"steps": base.steps, "runs": [runs[k] for k in pick]}
    data = {"teacher_W": results[0].teacher_W,
            **{f"run_{k}": {"iters": results[k].iters, "W": results[k].W, "a": results[k].a} for k in pick}}
    return Rendered(fig, summary, data)


@figure("6.14", "6.14", "Two-layer ReLU teacher-student in d = 2: loss stabilization, rank, feature sparsity")
def fig_6_14(ctx: Context) -> Rendered:
    base, results, runs = _teacher2_runs(ctx)
    fig = Figure(figsize=(13, 3.3))
    ax = fig.subplots(1, 4)
    for k, (res, r) in enumerate(zip(results, runs)):
        ax[0].plot(res.iters, res.train_loss, color=f"C{k}", label=_label(r))
        ax[1].plot(res.iters, res.test_loss, color=f"C{k}", label=_label(r))
        ax[2].plot(res.iters, np.where(res.rank >= 0, res.rank, np.nan), color=f"C{k}", label=_label(r))
        ax[3].plot(res.iters, res.sparsity, color=f"C{k}", label=_label(r))
    for a_, t in zip(ax, ("train loss (1/2n)Σ(f−y)²", "test loss", "rank φ_θ(X)", "feature sparsity")):
        a_.set_title(t)
        a_.set_xlabel("iteration")
    ax[0].set_yscale("log")
    ax[1].set_yscale("log")
    ax[0].legend()
    fig.suptitle(f"two-layer ReLU, teacher {base.m_teacher} / student {base.m} neurons, d = {base.d}, "
                 f"init scale {base.init_scale:g}, SGD batch 1")
    fig.tight_layout()
    data = {f"run_{k}": {"iters": r.iters, "train_loss": r.train_loss, "test_loss": r.test_loss, "rank": r.rank,
                         "sparsity": r.sparsity} for k, r in enumerate(results)}
    return Rendered(fig, {"steps": base.steps, "runs": runs}, data)
