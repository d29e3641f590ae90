"""FGSM-RS figure of thesis Ch. 2 (Fig. 2.2: Lemma 1's bound on E‖δ_FGSM-RS‖₂).

The bound √(E‖δ‖₂²) = √d·√(−α³/(6ε) + α²/2 + ε²/3) (eq. 2.4) divided by ‖δ_FGSM‖₂ = ε√d is the same
curve for every d, so the figure plots everything in these units: the bound against α/ε ∈ [0, 2],
Monte-Carlo estimates of E‖δ‖₂/(ε√d) for several d (1000 samples of η per point, as in the thesis;
error bars ±2 s.e.), plain FGSM (= 1), and the step α = 1.25ε recommended by Wong et al. (dashed).
The right panel shows the relative Jensen gap 1 − E‖δ‖₂/√(E‖δ‖₂²) (MC, and its large-d delta-method
value Var‖δ‖²/(8(E‖δ‖²)²) from the exact moments), which shrinks like 1/d: the
bound "becomes increasingly tight for high-dimensional inputs" (thesis Sec. 2.4). Signs are i.i.d.
±1 independent of η (the lemma's hypothesis); ε = 8/255 (the normalized curves do not depend on ε).
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from toymodels.fgsm import bound_norm, fgsm_equivalent_eps, sample_sq_norms, sq_norm_exact, sq_norm_variance

from . import Context, Rendered, figure

EPS = 8 / 255
DIMS = (1, 10, 100, 3072)
WONG = 1.25


@figure("2.2", "2.2", "Lemma 1: upper bound on E‖δ_FGSM-RS‖₂ vs α/ε, with Monte Carlo, several d")
def fig_2_2(ctx: Context) -> Rendered:
    samples = 200 if ctx.quick else 1000
    ratios = np.linspace(0.0, 2.0, 11 if ctx.quick else 21)
    fine = np.linspace(0.0, 2.0, 401)
    curve = bound_norm(1, EPS, fine * EPS) / EPS          # = bound / (ε√d) for every d
    mc = {d: {"mean": [], "se": [], "sq_z": [], "gap": []} for d in DIMS}
    for d in DIMS:
        for k, r in enumerate(ratios):
            sq = sample_sq_norms(d, EPS, r * EPS, samples, sign="random", seed=k)
            nrm = np.sqrt(sq) / (EPS * np.sqrt(d))
            mc[d]["mean"].append(float(nrm.mean()))
            mc[d]["se"].append(float(nrm.std(ddof=1) / np.sqrt(samples)))
            se_sq = sq.std(ddof=1) / np.sqrt(samples)
            exact = sq_norm_exact(d, EPS, r * EPS)
            diff = sq.mean() - exact
            # at α = 2ε every coordinate is clipped: ‖δ‖² = dε² exactly and se is rounding noise
            mc[d]["sq_z"].append(0.0 if abs(diff) <= 1e-12 * exact else float(diff / se_sq))
            # the empirical Jensen gap 1 − mean‖δ‖/√mean‖δ‖² is ≥ 0 and far less noisy than
            # comparing the MC mean with the exact bound (at d = 3072 the gap is below the MC error)
            mc[d]["gap"].append(float(1 - nrm.mean() / np.sqrt(np.mean(nrm * nrm))))

    fig = Figure(figsize=(10, 3.9))
    ax, ax2 = fig.subplots(1, 2)
    ax.plot(fine, curve, "k-", lw=2, label=r"bound $\sqrt{E\|\delta\|_2^2}$ (eq. 2.4)")
    ax.axhline(1.0, color="tab:red", lw=1.2, label=r"FGSM: $\|\delta\|_2=\varepsilon\sqrt{d}$")
    for i, d in enumerate(DIMS):
        m, se = np.array(mc[d]["mean"]), np.array(mc[d]["se"])
        ax.errorbar(ratios + (i - 1.5) * 0.012, m, yerr=2 * se, fmt="o", ms=3, capsize=2,
                    color=f"C{i}", label=f"MC $E\\|\\delta\\|_2$, d={d}")
        inner = ratios < 2          # at α = 2ε the law is a point mass: no gap
        ax2.plot(ratios[inner], np.array(mc[d]["gap"])[inner], "o", ms=3, color=f"C{i}", label=f"d={d}")
        # delta method: 1 − E‖δ‖/√E‖δ‖² ≈ Var‖δ‖² / (8 (E‖δ‖²)²) for large d
        fi = fine[fine < 2]
        ax2.plot(fi, sq_norm_variance(d, EPS, fi * EPS) / (8 * sq_norm_exact(d, EPS, fi * EPS) ** 2),
                 "-", lw=1, color=f"C{i}")
    b_w = float(bound_norm(1, EPS, WONG * EPS) / EPS)
    for a in (ax, ax2):
        a.axvline(WONG, color="gray", ls="--", lw=1.2)
    ax.annotate(f"α=1.25ε: bound = {b_w:.3f}·ε√d\n(FGSM with ε' = {b_w * 8:.2f}/255 at ε=8/255)",
                xy=(WONG, b_w), xytext=(0.05, 0.9), fontsize=8,
                arrowprops=dict(arrowstyle="->", color="gray"))
    ax.set_xlabel(r"step size $\alpha/\varepsilon$")
    ax.set_ylabel(r"$\|\delta_{FGSM-RS}\|_2\ /\ (\varepsilon\sqrt{d})$")
    ax.set_title(f"Lemma 1 bound vs Monte Carlo ({samples} samples, ±2 s.e.)")
    ax.set_ylim(0.0, 1.08)
    ax.legend(loc="lower right")
    ax2.set_yscale("log")
    ax2.set_ylim(1e-7, 1.0)
    ax2.set_xlabel(r"step size $\alpha/\varepsilon$")
    ax2.set_ylabel(r"$1 - E\|\delta\|_2 / \sqrt{E\|\delta\|_2^2}$")
    ax2.set_title("relative Jensen gap: MC (dots), Var‖δ‖²/(8(E‖δ‖²)²) (lines)")
    ax2.legend(loc="upper right")
    fig.tight_layout()

    summary = {
        "eps": EPS, "dims": list(DIMS), "samples_per_point": samples, "alpha_over_eps": ratios.tolist(),
        "bound_over_fgsm_at_1.25eps": b_w,
        "bound_range_over_fgsm": [float(curve.min()), float(curve.max())],
        "fgsm_equivalent_eps_255_at_1.25eps": float(fgsm_equivalent_eps(EPS, WONG * EPS) * 255),
        "max_abs_z_sq_norm": float(max(abs(z) for d in DIMS for z in mc[d]["sq_z"])),
        "max_rel_jensen_gap": {str(d): float(np.max(mc[d]["gap"])) for d in DIMS},
    }
    data = {"alpha_over_eps_fine": fine, "bound_over_fgsm_fine": curve,
            "mc": {str(d): {"mean": mc[d]["mean"], "se": mc[d]["se"], "jensen_gap": mc[d]["gap"]}
                   for d in DIMS}}
    return Rendered(fig=fig, summary=summary, data=data)
