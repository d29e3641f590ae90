"""Ablation of the ℓ∞ Square Attack's sampling distribution (thesis Table 3.1; no thesis figure) on the
toy single-layer CNN: success rate vs queries for the seven (update shape, # random signs,
initialization) rows of :data:`toymodels.square.ablation.ROWS`, untargeted, ε = 0.1, p = 0.05,
same points and attack seed for every row. Default: 50 test points, 300 queries, CNN trained 3
epochs on 3000 synthetic images, seed 0 (``--quick``: 20 points, 100 queries, 1 epoch, 500 images).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from matplotlib.figure import Figure

from toymodels.square.__main__ import _trained_points
from toymodels.square.ablation import ROWS, ablation_attack

from . import Context, Rendered, figure


@figure("square-ablation", None, "Table 3.1 ablation (no thesis figure): ℓ∞ Square Attack success rate vs queries on the toy CNN")
def fig_square_ablation(ctx: Context) -> Rendered:
    n_points, queries, epochs, n_train = (20, 100, 1, 500) if ctx.quick else (50, 300, 3, 3000)
    eps, p = 0.1, 0.05
    args = SimpleNamespace(n_train=n_train, epochs=epochs, eps=eps, seed=0, json=not ctx.show_progress)
    f, xc, yc, clean_acc, _ = _trained_points(args, n_points)
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    q = np.arange(1, queries + 1)
    rows, data = [], {}
    for k, (shape, signs, init) in enumerate(ROWS):
        r = ablation_attack(f, xc, yc, eps, queries, p, shape=shape, signs=signs, init=init, seed=1)
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
