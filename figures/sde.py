"""Fig. 6.9 (thesis Sec. 6.8): SGD vs its SDE model (eq. 6.58) vs a gradient-flow discretization on
the ReLU teacher–student models (:mod:`toymodels.sde.relu`): training loss, test loss, rank φ_θ(X̃)
on p fresh points, feature sparsity over training.

Rows: ``relu2`` (two layers, d = 2, Fig. 6.14 setting, T = 5·10⁴ SGD steps — a shorter run ramps the
warmup too fast and batch-1 SGD diverges) and ``relu3`` (three layers, the step sizes and init of our
Fig. 6.5, :data:`figures.relu.FIG65`, with T = 2·10⁴); both the large-step schedule decayed at 50 %,
s = 10 SDE steps per SGD step, c = 2(n − 1)/n² (derived, not tuned; seed 0).
``quick``: T = 2000 (relu2 with a 10× smaller base step so that it does not diverge) — a smoke render.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from toymodels.sde.relu import SDEReLUConfig, compare

from . import Context, Rendered, figure
from .relu import FIG65

RUNS = (("sgd", "SGD (batch 1)", "C0"), ("sde", "SDE (6.58)", "C3"), ("gf", "gradient flow", "C2"))


def _configs(ctx: Context):
    if ctx.quick:
        return [SDEReLUConfig(model="relu2", steps=2000, lr=2e-4, n_checkpoints=10),
                SDEReLUConfig(model="relu3", steps=2000, n_checkpoints=10)]
    f = FIG65
    return [SDEReLUConfig(model="relu2", steps=50_000, n_checkpoints=40),
            SDEReLUConfig(model="relu3", steps=20_000, n_checkpoints=40, lr=f["lr"], warmup_factor=f["warmup_factor"],
                          init_scale=f["init_scale"])]


@figure("6.9", "6.9", "SDE model (6.58) vs SGD vs gradient flow on ReLU teacher-student models")
def fig_6_9(ctx: Context) -> Rendered:
    outs = [compare(c, show_progress=ctx.show_progress) for c in _configs(ctx)]
    fig = Figure(figsize=(15, 6.4))
    ax = fig.subplots(2, 4)
    summary, data = {}, {}
    for row, out in enumerate(outs):
        c = out["config"]
        it = out["iters"]
        T = c["steps"]
        stride = max(1, T // 400)
        for name, lab, col in RUNS:
            r = out[name]
            curve = r["curve"]
            ks = np.arange(0, curve.size, stride)
            ax[row, 0].plot(ks, curve[ks], color=col, lw=0.8, alpha=0.85, label=lab)
            ax[row, 1].plot(it, r["series"]["test_loss"], color=col, label=lab)
            ax[row, 2].plot(it, r["series"]["rank_jacobian"], color=col, label=lab)
            sp = r["series"]["feature_sparsity"]
            if sp.ndim == 2:
                ax[row, 3].plot(it, sp[:, 0], color=col, ls="--", lw=1.0)
                ax[row, 3].plot(it, sp[:, 1], color=col, label=lab)
            else:
                ax[row, 3].plot(it, sp, color=col, label=lab)
        for a_ in ax[row]:
            a_.axvline(c["transition"] * T, color="k", lw=0.6, ls=":")
            a_.set_xlabel("SGD iteration (SDE/GF: time / η)")
        ax[row, 0].set_yscale("log")
        ax[row, 1].set_yscale("log")
        name = ("two-layer, d = 2" if c["model"] == "relu2" else "three-layer 10-10, d = 5")
        ax[row, 0].set_title(f"{c['model']} ({name}): train loss")
        ax[row, 1].set_title("test loss")
        ax[row, 2].set_title(f"rank φ_θ(X̃), {c['n_params']} fresh points")
        ax[row, 3].set_title("feature sparsity" + (" (dashed: layer 1, solid: layer 2)"
                                                   if c["model"] == "relu3" else ""))
        ax[row, 0].legend(loc="lower left")
        summary[c["model"]] = {"config": c, "runtime_s": out["runtime_s"],
                               **{k: {f: out[k][f] for f in ("train_loss", "test_loss", "rank_jacobian",
                                                             "feature_sparsity", "diverged_at")}
                                  for k, _, _ in RUNS}}
        data[c["model"]] = {"iters": it, **{k: out[k]["series"] for k, _, _ in RUNS}}
    fig.suptitle("SGD with a large-step schedule (decay at the dotted line) vs its SDE model "
                 "θ ← θ − γ∇L + √γ √(ηδ) φᵀZ (γ = η/10, δ = c·L_SGD) vs gradient flow")
    fig.tight_layout()
    return Rendered(fig, summary, data)
