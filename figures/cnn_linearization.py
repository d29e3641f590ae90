"""Fig. 2.10 on the single-layer CNN (thesis App. 2.10.1): the linearization error
|ℓ(x+δ) − ℓ(x) − ⟨∇ₓℓ(x), δ⟩| against ‖δ‖₂ at fixed ‖δ‖∞ = ε.

The thesis measures a standard and a PGD-trained ResNet-18 on CIFAR-10 (ε = 8/255, 512 test points);
here the same experiment runs on a standard- and a PGD-trained single-layer CNN on the embedded
natural-image data (``photos``, :func:`toymodels.datasets.load_images`), with δ started from δ_FGSM = ε·sign ∇ₓℓ and from a
random corner of the ℓ∞ ball and a growing fraction of coordinates zeroed
(:func:`toymodels.cnn.metrics.linearization_curve`). The claim tested: the error grows with ‖δ‖₂ even
though ‖δ‖∞ is fixed, and more so for δ_FGSM than for δ_random. The summary reports, per model and start,
the mean error (± s.e. over points) at each ‖δ‖₂ and Spearman's ρ between ‖δ‖₂ and the mean error.
"""
from __future__ import annotations

import functools

import numpy as np
from matplotlib.figure import Figure

from . import Context, Rendered, figure

#: Seed 0 (unchanged): Fig. 2.10 compares a standard and a PGD-trained CNN, neither trained with FGSM, so it
#: needs no catastrophic-overfitting run and is not tied to the CO seed of figures/cnn.py (seed 1).
SEED = 0
EPS = 8 / 255
FRACTIONS = np.linspace(0.0, 1.0, 11)


@functools.lru_cache(maxsize=2)
def _models(quick: bool):
    from toymodels.datasets import load_images
    from toymodels.cnn.train import TrainConfig, train

    n_train, n_test, epochs = (1000, 200, 2) if quick else (4000, 512, 8)
    data = load_images("photos", n_train=n_train, n_test=n_test, seed=SEED)
    common = dict(epochs=epochs, seed=SEED, n_eval=min(200, n_test), eval_pgd_steps=3, final_n=min(200, n_test),
                  final_pgd_steps=5, final_restarts=1)
    std = train(data, TrainConfig(attack="none", **common))
    pgd = train(data, TrainConfig(attack="pgd", eps=EPS, pgd_steps=3, **common))
    return data, {"standard": std, "PGD-trained": pgd}


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@figure("2.10", "2.10", "Linearization error vs ‖δ‖₂ at fixed ‖δ‖∞ = 8/255 (single-layer CNN, standard and PGD-trained)")
def fig_2_10(ctx: Context) -> Rendered:
    from toymodels.cnn.metrics import linearization_curve

    data, models = _models(ctx.quick)
    x, y = data.x_test, data.y_test
    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2)
    summary, series = {"eps": EPS, "n_points": int(len(y)), "dataset": data.name}, {}
    for ax, (name, res) in zip(axes, models.items()):
        summary[name] = {"clean_acc": res.final["clean_acc"]}
        for start, color in (("fgsm", "C3"), ("random", "C0")):
            cur = linearization_curve(res.params, x, y, EPS, FRACTIONS, start=start, seed=SEED)
            l2, err, sem = cur.l2_mean, cur.error_mean, cur.error_sem
            label = r"$\delta_{FGSM}$" if start == "fgsm" else r"$\delta_{random}$"
            ax.errorbar(l2, err, yerr=sem, color=color, marker="o", ms=3, capsize=2, label=label)
            summary[name][start] = {"l2": l2, "error_mean": err, "error_sem": sem,
                                    "spearman_l2_error": _spearman(l2, err)}
            series[f"{name}/{start}"] = {"l2": l2, "error_mean": err, "error_sem": sem}
        ax.set_title(f"{name} CNN (clean acc {res.final['clean_acc']:.2f})")
        ax.set_xlabel(r"$\|\delta\|_2$  ($\|\delta\|_\infty = 8/255$)")
        ax.set_ylabel("linearization error")
        ax.legend()
    fig.tight_layout()
    return Rendered(fig, summary, series)
