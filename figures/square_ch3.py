"""Thesis Ch. 3 (Square Attack) Fig. 3.2, Fig. 3.5 and Table 3.7 from the project's attack code on the
toy single-layer CNN (registered by ``figures/square.py``, which imports this module).

* ``3.2`` — the ℓ2 update η of eq. (3.2) for h = 8 (:func:`toymodels.square.attack_l2.eta_update`, unit
  ℓ2 norm: the thesis's η divided by its norm, Alg. 3 step 4's η*), the initial 5×5 grid ν₀ and one
  full-image update δ = x̂_new − x̂ that :func:`~toymodels.square.attack_l2.l2_propose` draws with h = 8 on
  a grey 3×32×32 image (ε = 4, seed 0). No training, no randomness beyond the fixed seed.
* ``3.5`` — sensitivity to p ∈ {0.0125, …, 0.4} (thesis grid, l.1384): failure rate (95 % Wilson interval)
  and mean queries of the successes (± s.e.) of the untargeted ℓ∞ (ε = 0.1) and ℓ2 (ε = 4, ≈ 0.1·√d
  with d = 3072) Square Attacks on the standard-trained CNN (the thesis's: ImageNet, ResNet-50). Default:
  the correctly classified points among the first 100 test points, 1000 queries (the thesis: 10,000),
  CNN 3 epochs on 3000 synthetic images (≈ 20 s CPU on one core); ``--quick``: 30 points, 100 queries,
  2 epochs, 1000 images.
* ``table-3.7`` — every row of Table 3.7 on the same CNN and points (ℓ∞: ε = 0.1, p = 0.05, 300 queries,
  :data:`toymodels.square.ablation.ROWS_37`; ℓ2: ε = 4, p = 0.1, 1000 queries,
  :data:`toymodels.square.ablation_l2.ROWS`; same attack seed for every row), drawn as a table with the
  thesis's mean queries beside; the summary ranks the rows by ``mean_queries_all`` (failures counted at
  the budget) and says which pairs of rows keep the thesis's order. Default: 50 test points, 3 epochs,
  3000 images (≈ 35 s CPU on one core); ``--quick``: 30 points, 100 / 150 queries, 2 epochs, 1000 images.
"""
from __future__ import annotations

import numba
import numpy as np
from matplotlib.figure import Figure

from toymodels.square import ablation_l2
from toymodels.square.ablation import ROWS_37, THESIS_37, AblationResult, ablation_attack, table_stats
from toymodels.square.attack_l2 import eta_block, eta_update, l2_draws, l2_init, l2_propose, square_attack_l2
from toymodels.square.attack_linf import square_attack_linf
from toymodels.square.experiment import attack_seed, trained_points

from . import Context, Rendered, figure

#: thesis Fig. 3.5's grid of p (l.1384)
P_GRID = (0.0125, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
EPS_LINF, EPS_L2 = 0.1, 4.0
_SIGN_NAMES = {"chh": "c·h²"}


def eta_norm_closed_form(h1: int, h2: int) -> float:
    """‖η^{(h₁,h₂)}‖₂ of the thesis's definition (l.1029), by rings: the entry at Chebyshev distance t
    from the center (⌊h₁/2⌋+1, ⌊h₂/2⌋+1) is v_t = Σ_{j=t+1}^{n+1} 1/j² (n = ⌊h₁/2⌋, M = n − t), and the
    block has N_{≤t} = (min(t, c₁) + min(t, h₁−1−c₁) + 1)(min(t, c₂) + min(t, h₂−1−c₂) + 1) entries within
    distance t (cᵢ = ⌊hᵢ/2⌋, 0-based), so ‖η‖² = Σ_t (N_{≤t} − N_{≤t−1}) v_t²; every t ≤ n occurs (no
    entry is zero). The ℓ2 update η of (3.2) has ‖η‖² = ‖η^{(h,k)}‖² + ‖η^{(h,h−k)}‖²."""
    n, c1, c2 = h1 // 2, h1 // 2, h2 // 2
    tot, prev = 0.0, 0
    for t in range(n + 1):
        cnt = (min(t, c1) + min(t, h1 - 1 - c1) + 1) * (min(t, c2) + min(t, h2 - 1 - c2) + 1)
        v = sum(1.0 / j ** 2 for j in range(t + 1, n + 2))
        tot += (cnt - prev) * v * v
        prev = cnt
    return float(np.sqrt(tot))


def _heat(fig, ax, a, title):
    m = float(np.abs(a).max())
    im = ax.imshow(a, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


@figure("3.2", "3.2", "The ℓ2 Square Attack's update η (h = 8, eq. 3.2), the 5×5 grid init and one drawn update")
def fig_3_2(ctx: Context) -> Rendered:
    h, eps, C, H, W = 8, EPS_L2, 3, 32, 32
    eta = eta_update(h)
    k = h // 2
    raw_norm = float(np.hypot(eta_norm_closed_form(h, k), eta_norm_closed_form(h, h - k)))
    rng = np.random.default_rng(0)
    x = np.full((1, C, H, W), 0.5)
    xb = l2_init(x, eps, rng)
    pos1, pos2, flips = l2_draws(rng, 1, h, H, W)
    x_new, nu_new = l2_propose(x, xb, eps, pos1, pos2, h, flips, rng.choice(np.array([-1.0, 1.0]), size=(1, C)))
    fig = Figure(figsize=(11, 3.4))
    axes = fig.subplots(1, 3)
    _heat(fig, axes[0], eta, f"η (h = {h}), ‖η‖₂ = 1 (thesis's η / {raw_norm:.4f})")
    _heat(fig, axes[1], (xb - x)[0, 0], f"init ν₀ (5×5 grid), channel 0, ‖ν₀‖₂ = {eps:g}")
    _heat(fig, axes[2], (x_new - xb)[0, 0], f"one update δ = x̂_new − x̂ (h = {h}), channel 0")
    fig.tight_layout()
    centers = [[h // 2, k // 2], [h // 2, k + (h - k) // 2]]
    summary = {"h": h, "norm_code": float(np.sqrt((eta ** 2).sum())), "norm_thesis_eta": raw_norm,
               "centers_0based": centers, "center_values": [float(eta[r, c]) for r, c in centers],
               "center_value_thesis": float(eta_block(h, k)[h // 2, k // 2]), "min_abs": float(np.abs(eta).min()),
               "max_abs": float(np.abs(eta).max()), "window1": pos1[0].tolist(), "window2": pos2[0].tolist(),
               "transposed": bool(flips[0]), "nu_new_norm": float(np.sqrt((nu_new ** 2).sum())), "eps": eps}
    return Rendered(fig=fig, summary=summary, data={"eta": eta.tolist(), "nu0_c0": (xb - x)[0, 0].tolist(),
                                                    "delta_c0": (x_new - xb)[0, 0].tolist()})


def _one_thread(fn):
    """Run fn() with one numba thread (thousands of forward passes on a few dozen images each)."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return fn()
    finally:
        numba.set_num_threads(threads)


def _p_sweep(f, xc, yc, queries: int, seed: int) -> dict:
    out = {}
    for norm, attack, eps in (("linf", square_attack_linf, EPS_LINF), ("l2", square_attack_l2, EPS_L2)):
        rows = []
        for p in P_GRID:
            r = attack(f, xc, yc, eps, queries, p, seed=attack_seed(seed))
            rows.append({"p": p, **table_stats(AblationResult(r.n_queries, r.success, r.x_adv), queries)})
        out[norm] = rows
    return out


@figure("3.5", "3.5", "Sensitivity of the ℓ∞ / ℓ2 Square Attack to p on the toy CNN: failure rate and mean queries")
def fig_3_5(ctx: Context) -> Rendered:
    n_points, queries, epochs, n_train = (30, 100, 2, 1000) if ctx.quick else (100, 1000, 3, 3000)
    seed = 0
    f, xc, yc, clean_acc, _ = trained_points(n_train, epochs, n_points, seed=seed, show_progress=ctx.show_progress)
    res = _one_thread(lambda: _p_sweep(f, xc, yc, queries, seed))
    fig = Figure(figsize=(10, 3.8))
    ax_f, ax_q = fig.subplots(1, 2)
    for k, (norm, label) in enumerate((("linf", f"ℓ∞, ε = {EPS_LINF}"), ("l2", f"ℓ2, ε = {EPS_L2:g}"))):
        rows = res[norm]
        fr = np.array([r["failure_rate"] for r in rows])
        lo = np.array([1 - r["success_wilson95"][1] for r in rows])
        hi = np.array([1 - r["success_wilson95"][0] for r in rows])
        ax_f.errorbar(P_GRID, fr, yerr=[np.maximum(fr - lo, 0), np.maximum(hi - fr, 0)], marker="o", color=f"C{k}",
                      capsize=3, label=label)
        mq = np.array([r["mean_queries"] for r in rows])
        se = np.nan_to_num(np.array([r["mean_queries_se"] for r in rows]))
        ax_q.errorbar(P_GRID, mq, yerr=se, marker="o", color=f"C{k}", capsize=3, label=f"{label} (mean)")
        ax_q.plot(P_GRID, [r["median_queries"] for r in rows], ls="--", marker="x", color=f"C{k}",
                  label=f"{label} (median)")
    for ax in (ax_f, ax_q):
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(P_GRID, [f"{p:g}" for p in P_GRID], rotation=60, fontsize=7)
        ax.set_xlabel("p (initial fraction of pixels changed)")
        ax.legend(fontsize=7)
    ax_f.set_ylabel("failure rate (95 % Wilson interval)")
    ax_q.set_ylabel("queries of the successes")
    ax_f.set_title(f"toy CNN, {len(yc)} points, {queries} queries (clean acc {clean_acc:.2f})")
    fig.tight_layout()
    summary = {"p_grid": list(P_GRID), "queries": queries, "n_attacked": int(len(yc)), "clean_acc": clean_acc,
               "eps": {"linf": EPS_LINF, "l2": EPS_L2}, "attack_seed": attack_seed(seed), **res}
    return Rendered(fig=fig, summary=summary, data={})


def _pairs(names, toy, thesis, per_point):
    """Pairs (i < j) of rows ordered as the thesis orders them by mean queries (ties in the thesis skipped);
    a reversed pair comes with the paired difference of mean_queries_all (same points, row i − row j) and
    its standard error sd(dᵢ)/√n over the points."""
    agree, total, reversed_ = 0, 0, []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if thesis[i] == thesis[j]:
                continue
            total += 1
            if np.sign(toy[i] - toy[j]) == np.sign(thesis[i] - thesis[j]):
                agree += 1
                continue
            d = per_point[i] - per_point[j]
            se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
            reversed_.append({"rows": [names[i], names[j]], "diff": float(d.mean()), "paired_se": se})
    return agree, total, reversed_


def _ranked(rows: list, thesis_q: list, per_point: list) -> dict:
    """Rank the rows by mean_queries_all (toy) and by the thesis's mean queries (1 = fewest queries);
    ``per_point``: each row's queries per point, failures at the budget."""
    names = [r["row"] for r in rows]
    toy = [r["mean_queries_all"] for r in rows]
    rank_toy = np.argsort(np.argsort(toy, kind="stable"), kind="stable") + 1
    rank_th = np.argsort(np.argsort(thesis_q, kind="stable"), kind="stable") + 1
    for r, a, b in zip(rows, rank_toy, rank_th):
        r["rank_toy"], r["rank_thesis"] = int(a), int(b)
    agree, total, reversed_ = _pairs(names, toy, thesis_q, per_point)
    return {"rows": rows, "pairs_in_thesis_order": agree, "pairs": total, "pairs_reversed": reversed_,
            "pairs_reversed_beyond_2se": sum(abs(r["diff"]) > 2 * r["paired_se"] for r in reversed_),
            "rows_at_thesis_rank": [n for n, a, b in zip(names, rank_toy, rank_th) if a == b],
            "best_toy_row": names[int(np.argmin(toy))]}


def _table_runs(f, xc, yc, q_inf: int, q_2: int, seed: int) -> dict:
    a_seed = attack_seed(seed)
    linf, l2, q_linf, q_l2 = [], [], [], []
    for shape, signs, init in ROWS_37:
        r = ablation_attack(f, xc, yc, EPS_LINF, q_inf, 0.05, shape=shape, signs=signs, init=init, seed=a_seed)
        name = f"{shape}-{_SIGN_NAMES.get(signs, signs)}-{init}"
        th = THESIS_37[(shape, signs, init)]
        q_linf.append(np.where(r.success, r.n_queries, q_inf).astype(float))
        linf.append({"row": name, **table_stats(r, q_inf), "thesis_failure_rate": th[0],
                     "thesis_mean_queries": th[1], "thesis_median_queries": th[2]})
    for update, init in ablation_l2.ROWS:
        r = ablation_l2.ablation_attack_l2(f, xc, yc, EPS_L2, q_2, 0.1, update=update, init=init, seed=a_seed)
        th = ablation_l2.THESIS[(update, init)]
        q_l2.append(np.where(r.success, r.n_queries, q_2).astype(float))
        l2.append({"row": f"{update}-{init}", **table_stats(r, q_2), "thesis_failure_rate": th[0],
                   "thesis_mean_queries": th[1], "thesis_median_queries": th[2]})
    return {"linf": _ranked(linf, [r["thesis_mean_queries"] for r in linf], q_linf),
            "l2": _ranked(l2, [r["thesis_mean_queries"] for r in l2], q_l2)}


def _draw_table(ax, rows, title):
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    cols = ["row", "success [95% CI]", "mean q ± se", "median q", "mean q (fail = budget)", "thesis mean q",
            "rank toy/thesis"]
    cells = [[r["row"], f"{r['success_rate']:.2f} [{r['success_wilson95'][0]:.2f}, {r['success_wilson95'][1]:.2f}]",
              f"{r['mean_queries']:.0f} ± {r['mean_queries_se']:.0f}", f"{r['median_queries']:.0f}",
              f"{r['mean_queries_all']:.0f} ± {r['mean_queries_all_se']:.0f}", f"{r['thesis_mean_queries']}",
              f"{r['rank_toy']}/{r['rank_thesis']}"] for r in rows]
    t = ax.table(cellText=cells, colLabels=cols, loc="center", cellLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(7)
    t.scale(1, 1.25)


@figure("table-3.7", None, "Table 3.7 ablation (ℓ∞ and ℓ2 algorithmic choices) on the toy CNN, as a table")
def fig_table_3_7(ctx: Context) -> Rendered:
    n_points, q_inf, q_2, epochs, n_train = (30, 100, 150, 2, 1000) if ctx.quick else (50, 300, 1000, 3, 3000)
    seed = 0
    f, xc, yc, clean_acc, _ = trained_points(n_train, epochs, n_points, seed=seed, show_progress=ctx.show_progress)
    res = _one_thread(lambda: _table_runs(f, xc, yc, q_inf, q_2, seed))
    fig = Figure(figsize=(11, 6.5))
    ax1, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": [len(ROWS_37) + 1, len(ablation_l2.ROWS) + 1]})
    _draw_table(ax1, res["linf"]["rows"], f"ℓ∞ (ε = {EPS_LINF}, p = 0.05, {q_inf} queries), {len(yc)} points")
    _draw_table(ax2, res["l2"]["rows"], f"ℓ2 (ε = {EPS_L2:g}, p = 0.1, {q_2} queries), same points")
    fig.tight_layout()
    summary = {"n_attacked": int(len(yc)), "clean_acc": clean_acc, "attack_seed": attack_seed(seed),
               "linf_config": {"eps": EPS_LINF, "p_init": 0.05, "queries": q_inf},
               "l2_config": {"eps": EPS_L2, "p_init": 0.1, "queries": q_2},
               "ranking": "by mean_queries_all (failures counted at the budget); thesis by its mean queries", **res}
    return Rendered(fig=fig, summary=summary, data={})


__all__ = ["P_GRID", "EPS_LINF", "EPS_L2", "eta_norm_closed_form", "fig_3_2", "fig_3_5", "fig_table_3_7"]
