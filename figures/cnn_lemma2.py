"""Gradient alignment at initialization of a single-layer CNN (thesis Fig. 2.9, Lemma 2, l.583–597).

Left panel (the thesis figure): over ε ∈ (0, 0.1] for p = 27, k = 100 patches, m = 4 filters,
  * cos(∇ₓℓ(x), ∇ₓℓ(x+η)) at k = 100, m = 4 — mean over draws of (W, U, x, η), shaded ± 1 std (it is
    a random variable);
  * its k, m → ∞ limit, eq. 2.9 (= 1 − E∠(z, z+η)/π, exact in w, Monte Carlo over z, η);
  * the Hoeffding ("first") lower bound max{1 − E[e^{−⟨θ,z⟩²/(2ε²)}], ½};
  * the final lower bound of Lemma 2, eq. 2.10, max{1 − √2·E[e^{−⟨θ,z⟩²/ε²}]^{1/2}, ½}.
Right panel: the finite-k, m cosine minus the limit (mean ± 1 std) for growing (k, m), showing the
convergence to eq. 2.9 that the proof's law-of-large-numbers step asserts.

Model and estimators: :mod:`toymodels.cnn.align_init`. The same seed is used at every ε, so the
curves share their random draws (η = ε(2V − 1)). ε = 0 is not plotted (every quantity equals 1
there). The thesis used 1,000 Monte-Carlo samples for the expectations; here 100,000 (z, η) draws
(standard errors < 2·10⁻⁵) and 1,000 network draws per ε; the grid contains ε = 8/255.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from toymodels.cnn.align_init import align_init

from . import Context, Rendered, figure

P, K, M = 27, 100, 4
EPS_TYPICAL = 8 / 255
SIZES = ((100, 4), (400, 16), (1600, 64))
C_FIN, C_LIM, C_HOEF, C_FIN_B = "tab:blue", "tab:green", "tab:orange", "tab:red"


@figure("2.9", "2.9", "Lemma 2: gradient alignment at initialization of a single-layer CNN vs ε "
                      "(finite k, m; limit eq. 2.9; Hoeffding and final bounds)")
def fig_2_9(ctx: Context) -> Rendered:
    quick = ctx.quick
    eps = np.unique(np.r_[np.linspace(0.004, 0.1, 7 if quick else 25), EPS_TYPICAL])
    samples, limit_samples = (200, 5_000) if quick else (1_000, 100_000)
    keys = ("cos_finite_mean", "cos_finite_std", "cos_finite_se", "cos_limit", "cos_limit_se",
            "bound_hoeffding", "bound_hoeffding_term", "bound_final", "bound_final_term", "cos_pooled",
            "cos_pooled_se")
    series = {key: [] for key in keys}
    for e in eps:
        r = align_init(P, K, M, float(e), samples, seed=0, limit_samples=limit_samples)
        for key in keys:
            series[key].append(r[key])
    s = {key: np.asarray(v) for key, v in series.items()}

    eps_conv = np.linspace(0.01, 0.1, 3 if quick else 8)
    conv_samples = {(100, 4): 200 if quick else 1000, (400, 16): 50 if quick else 200,
                    (1600, 64): 10 if quick else 50}
    conv = {}
    for k, m in SIZES:
        rows = [align_init(P, k, m, float(e), conv_samples[(k, m)], seed=1, limit_samples=limit_samples)
                for e in eps_conv]
        conv[f"k={k},m={m}"] = {
            "eps": eps_conv, "samples": conv_samples[(k, m)],
            "mean_minus_limit": np.array([r["cos_finite_mean"] - r["cos_limit"] for r in rows]),
            "std": np.array([r["cos_finite_std"] for r in rows]),
            "se": np.array([r["cos_finite_se"] for r in rows])}

    fig = Figure(figsize=(11, 4.2))
    ax, ax2 = fig.subplots(1, 2)
    ax.fill_between(eps, s["cos_finite_mean"] - s["cos_finite_std"], s["cos_finite_mean"] + s["cos_finite_std"],
                    color=C_FIN, alpha=0.18, lw=0)
    ax.plot(eps, s["cos_finite_mean"], color=C_FIN, label=f"cos, k={K}, m={M} (mean ± std)")
    ax.plot(eps, s["cos_limit"], color=C_LIM, label="k, m → ∞ limit (eq. 2.9)")
    ax.plot(eps, s["bound_hoeffding"], color=C_HOEF, label="Hoeffding lower bound")
    ax.plot(eps, s["bound_final"], color=C_FIN_B, label="final lower bound (eq. 2.10)")
    ax.axvline(EPS_TYPICAL, color="0.5", ls=":", lw=1)
    ax.text(EPS_TYPICAL, 0.66, " ε = 8/255", color="0.4", fontsize=8, va="bottom")
    ax.axhline(0.5, color="0.5", ls="--", lw=0.8)
    ax.set_xlim(0, 0.1)
    ax.set_ylim(0.45, 1.01)
    ax.set_xlabel("ε")
    ax.set_ylabel("gradient alignment")
    ax.set_title(f"Lemma 2 at initialization, p = {P}")
    ax.legend(loc="lower left")

    for (k, m), color in zip(SIZES, ("tab:blue", "tab:purple", "tab:brown")):
        c = conv[f"k={k},m={m}"]
        ax2.errorbar(c["eps"], c["mean_minus_limit"], yerr=c["std"], color=color, marker="o", ms=3,
                     capsize=2, lw=1.2, label=f"k={k}, m={m}")
    ax2.axhline(0.0, color=C_LIM, lw=1)
    ax2.set_xlabel("ε")
    ax2.set_ylabel("cos(finite k, m) − limit (mean ± std)")
    ax2.set_title("convergence to eq. 2.9 as k, m grow")
    ax2.legend(loc="lower left")
    fig.tight_layout()

    i_typ = int(np.flatnonzero(eps == EPS_TYPICAL)[0])
    below = eps[s["bound_final_term"] < 0.7]
    summary = {
        "p": P, "k": K, "m": M, "samples": samples, "limit_samples": limit_samples, "seed": 0,
        "eps_range": [float(eps[0]), float(eps[-1])], "n_eps": int(eps.size),
        "at_eps": {"eps": float(eps[i_typ]), **{key: float(s[key][i_typ]) for key in
                   ("cos_finite_mean", "cos_finite_std", "cos_limit", "bound_hoeffding", "bound_final")}},
        "at_eps_max": {"eps": float(eps[-1]), **{key: float(s[key][-1]) for key in
                       ("cos_finite_mean", "cos_finite_std", "cos_limit", "bound_hoeffding", "bound_final")}},
        "min_over_eps": {key: float(s[key].min()) for key in
                         ("cos_finite_mean", "cos_limit", "bound_hoeffding", "bound_final")},
        # thesis l.594: "all the four quantities have very high values in [0.7, 1.0] for ε ∈ [0, 0.1]"
        "all_four_in_0.7_1.0": bool(min(s["cos_finite_mean"].min(), s["cos_limit"].min(),
                                        s["bound_hoeffding"].min(), s["bound_final"].min()) >= 0.7),
        "final_bound_below_0.7_from_eps": float(below[0]) if below.size else None,
        "bounds_below_limit": bool(np.all(s["bound_hoeffding"] <= s["cos_limit"])
                                   and np.all(s["bound_final"] <= s["bound_hoeffding"])),
        "convergence_std": {key: float(np.mean(v["std"])) for key, v in conv.items()},
    }
    data = {"eps": eps, **{key: s[key] for key in keys},
            "convergence": {key: {kk: vv for kk, vv in v.items()} for key, v in conv.items()}}
    return Rendered(fig, summary, data)
