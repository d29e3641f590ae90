"""Square Attack figures on the toy single-layer CNN (thesis Ch. 3; project-only, no thesis figure).

* ``square-ablation`` — ablation of the ℓ∞ Square Attack's sampling distribution (thesis Table 3.1):
  success rate vs queries for the seven (update shape, # random signs, initialization) rows of
  :data:`toymodels.square.ablation.ROWS`, untargeted, ε = 0.1, p = 0.05, same points and attack seed
  for every row. Default: 50 test points, 300 queries, CNN trained 3 epochs on 3000 synthetic
  images, seed 0 (``--quick``: 20 points, 100 queries, 1 epoch, 500 images).
* ``square-success`` — success rate vs query budget of the main untargeted ℓ∞ (ε = 8/255, p = 0.05)
  and ℓ2 (ε = 0.5, p = 0.1) Square Attacks (the defaults of ``python -m toymodels.square attack``) on
  the same standard-trained CNN, the toy counterpart of thesis Fig. 3.6 (success rate vs number of
  queries on ImageNet; Fig. 3.4 is its first 200 queries), with the white-box ℓ∞ PGD-50 (α = ε/4)
  success rate on the same points as a horizontal reference. Default: the correctly classified
  points among the first 100 test points, 1000 queries (``--quick``: 30 points, 150 queries, 2
  epochs, 1000 images).

Thesis Fig. 3.2, Fig. 3.5 and Table 3.7 (ids ``3.2``, ``3.5``, ``table-3.7``) are in
:mod:`figures.square_ch3`, imported (and so registered) at the end of this module.
"""
from __future__ import annotations

import numba
import numpy as np
from matplotlib.figure import Figure

from toymodels.square.experiment import attack_seed, pgd_seed, trained_points
from toymodels.square.ablation import ROWS, ablation_attack
from toymodels.square.attack_l2 import square_attack_l2
from toymodels.square.attack_linf import square_attack_linf

from . import Context, Rendered, figure


@figure("square-ablation", None, "Table 3.1 ablation (no thesis figure): ℓ∞ Square Attack success rate vs queries on the toy CNN")
def fig_square_ablation(ctx: Context) -> Rendered:
    n_points, queries, epochs, n_train = (20, 100, 1, 500) if ctx.quick else (50, 300, 3, 3000)
    eps, p = 0.1, 0.05
    f, xc, yc, clean_acc, _ = trained_points(n_train, epochs, n_points, seed=0, show_progress=ctx.show_progress)
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    q = np.arange(1, queries + 1)
    rows, data = [], {}
    for k, (shape, signs, init) in enumerate(ROWS):
        r = ablation_attack(f, xc, yc, eps, queries, p, shape=shape, signs=signs, init=init, seed=attack_seed(0))
        curve = r.curve(queries)
        name = f"{shape}-{'c·h²' if signs == 'chh' else 'c'}-{init}"
        ax.plot(q, curve, label=name, color=f"C{k}", ls="-" if init == "vstripes" else "--")
        rows.append({"row": name, **r.stats()})
        data[name] = curve
    ax.set_xscale("log")
    ax.set_xlabel("queries")
    ax.set_ylabel("success rate")
    ax.set_title(f"toy CNN, ε = {eps}, {len(yc)} points (clean acc {clean_acc:.2f})")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return Rendered(fig=fig, summary={"rows": rows, "n_attacked": int(len(yc)), "queries": queries, "eps": eps,
                                      "p_init": p, "clean_acc": clean_acc}, data=data)


def success_curve(n_queries: np.ndarray, success: np.ndarray, budget: int) -> np.ndarray:
    """Success rate with a budget of q queries, q = 1..``budget``: the fraction of points that
    the attack fooled within q queries, (1/n) Σᵢ 1[successᵢ and n_queriesᵢ ≤ q] (``n_queries`` per
    point counts the initialization as query 1; a point succeeds at its last query)."""
    n_queries = np.asarray(n_queries)
    success = np.asarray(success, dtype=bool)
    if success.size == 0:
        return np.zeros(budget)
    hits = np.bincount(np.minimum(n_queries[success], budget + 1), minlength=budget + 2)[1:budget + 1]
    return np.cumsum(hits) / success.size


def _standard_cnn(n_train: int, epochs: int, eps: float, seed: int, n_points: int, show_progress: bool):
    """The default toy model of ``python -m toymodels.square attack`` (same data, training config
    and point selection as ``toymodels.square.experiment.trained_points``), but also returning the
    parameters, which the white-box PGD reference needs. Returns (params, x, y of the correctly
    classified points among the first ``n_points`` test points, clean accuracy on those)."""
    from toymodels.cnn import model
    from toymodels.datasets import load_images
    from toymodels.cnn.train import TrainConfig, train

    data = load_images("synthetic", n_train=n_train, n_test=max(2 * n_points, 200), seed=seed)
    cfg = TrainConfig(attack="none", eps=eps, epochs=epochs, n_eval=50, eval_pgd_steps=1,
                      final_n=50, final_pgd_steps=1, final_restarts=1, seed=seed)
    params = train(data, cfg, show_progress=show_progress).params
    x, y = data.x_test[:n_points], data.y_test[:n_points]
    correct = model.logits(params, x).argmax(axis=1) == y
    return params, x[correct], y[correct], float(correct.mean())


@figure("square-success", None, "Success rate vs queries of the ℓ∞ and ℓ2 Square Attack on the toy CNN "
        "(cf. thesis Figs. 3.4/3.6), white-box PGD as reference")
def fig_square_success(ctx: Context) -> Rendered:
    from toymodels.cnn import attacks, model

    n_points, queries, epochs, n_train = (30, 150, 2, 1000) if ctx.quick else (100, 1000, 3, 3000)
    eps_inf, eps_2, p_inf, p_2, pgd_steps, seed = 8 / 255, 0.5, 0.05, 0.1, 50, 0
    params, xc, yc, clean_acc = _standard_cnn(n_train, epochs, eps_inf, seed, n_points, ctx.show_progress)
    a_seed = attack_seed(seed)          # the streams of `python -m toymodels.square attack --seed 0`
    f = lambda v: model.logits(params, v)  # noqa: E731
    # thousands of forward passes on <= n_points images each: one numba thread (waking the pool costs
    # more than the work, and much more when other processes hold the cores)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        runs = {"linf": square_attack_linf(f, xc, yc, eps_inf, queries, p_inf, seed=a_seed),
                "l2": square_attack_l2(f, xc, yc, eps_2, queries, p_2, seed=a_seed)}
    finally:
        numba.set_num_threads(threads)
    # white-box reference: untargeted ℓ∞ PGD-50, α = ε/4, one random start, on the same points
    d = attacks.pgd(params, xc, yc, eps_inf, eps_inf / 4, pgd_steps, 1, seed=pgd_seed(seed))
    pgd_success = float(np.mean(model.logits(params, xc + d).argmax(axis=1) != yc)) if len(yc) else float("nan")

    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    q = np.arange(1, queries + 1)
    data = {"queries": q.tolist()}
    summary = {"n_attacked": int(len(yc)), "queries": queries, "clean_acc": clean_acc, "n_points": n_points,
               "pgd_success_rate": pgd_success, "pgd": f"PGD-{pgd_steps}, alpha = eps/4, l-inf, 1 random start",
               "pgd_robust_acc": clean_acc * (1.0 - pgd_success), "attack_seed": a_seed}
    for k, (norm, label, eps, p) in enumerate((("linf", "ℓ∞, ε = 8/255", eps_inf, p_inf), ("l2", "ℓ2, ε = 0.5", eps_2, p_2))):
        r = runs[norm]
        curve = success_curve(r.n_queries, r.success, queries)
        ax.plot(q, curve, color=f"C{k}", label=f"Square Attack {label}, p = {p}")
        succ_q = r.n_queries[r.success]
        summary[norm] = {"eps": eps, "p_init": p, "failure_rate": r.failure_rate,
                         "final_success_rate": float(curve[-1]) if curve.size else float("nan"),
                         "mean_queries": float(succ_q.mean()) if succ_q.size else float("nan"),
                         "median_queries": float(np.median(succ_q)) if succ_q.size else float("nan"),
                         "square_robust_acc": clean_acc * r.failure_rate}
        data[f"{norm}_curve"] = curve.tolist()
        data[f"{norm}_n_queries"] = r.n_queries.tolist()
        data[f"{norm}_success"] = r.success.astype(int).tolist()
    ax.axhline(pgd_success, color="C0", ls=":", lw=1.2,
               label=f"white-box PGD-{pgd_steps} ℓ∞, ε = 8/255: {pgd_success:.2f}")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("query budget")
    ax.set_ylabel("success rate (fraction of points fooled)")
    ax.set_title(f"toy CNN (standard training), {len(yc)} correctly classified points (clean acc {clean_acc:.2f})")
    ax.legend(fontsize=7, loc="center left")
    fig.tight_layout()
    return Rendered(fig=fig, summary=summary, data=data)


# Thesis Fig. 3.2, Fig. 3.5 and Table 3.7 live in figures/square_ch3.py; importing it registers them
from . import square_ch3  # noqa: E402,F401
