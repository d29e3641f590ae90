"""Symbolic checks of the SAM convergence proofs (thesis App. 5.10, l.2572–2908; Thm 5.6.1 l.2338).

Each check recomputes a quantity from the proof's own steps with sympy and takes the printed (or
corrected) formula as a defaulted parameter, so a test can pass the printed/perturbed one and see it fail.
Numerical measurements of the same bounds: ``python -m toymodels.sam_convergence``.
"""
from __future__ import annotations

import sympy as sp

from . import check

__all__: list[str] = []

G, R, B, MU, T, S2, BS, D0 = sp.symbols("gamma rho beta mu T sigma2 b Delta0", positive=True)
X = sp.Symbol("x", real=True)


@check("sam_convergence.lemma4_smooth_coefficient", "Lemma 4 (l.2639, proof l.2649)")
def lemma4_smooth_coefficient(formula=G * (1 - R * B) * (1 - G * B * (1 - R * B) / 2)):
    """Smoothness + binomial square + Lemma 3 (α = −β) + ‖∇L(w½) − ∇L(w)‖ ≤ βρ‖∇L(w)‖ give the decrease
    coefficient γ(1−γβ)(1−ρβ) + γ²β/2 − γ²β·β²ρ²/2 of ‖∇L(w_t)‖²; it must equal ``formula``."""
    derived = G * (1 - G * B) * (1 - R * B) + G ** 2 * B / 2 - G ** 2 * B * (B * R) ** 2 / 2
    diff = sp.simplify(sp.expand(derived - formula))
    return diff == 0, f"derived - formula = {diff}"


@check("sam_convergence.lemma4_convex_step_condition", "Lemma 4, second part (l.2643, proof l.2665)")
def lemma4_convex_step_condition(condition=2 - G * B * (2 + R * B)):
    """With co-coercivity ‖∇L(w½)−∇L(w)‖² ≤ ρβ⟨∇L(w½)−∇L(w), ∇L(w)⟩ the bound reads
    L(w⁺) ≤ L(w) − γ(1−γβ/2)‖g‖² − γ(1 − γβ − γρβ²/2)⟨∇L(w½)−∇L(w), g⟩; Lemma 3 (α = μ) may be applied only
    when that coefficient is ≥ 0, i.e. ``condition`` ≥ 0 with condition ∝ 1 − γβ − γρβ²/2. Printed:
    γβ(2 − ρβ) ≤ 2 (sign slip), corrected γβ(2 + ρβ) ≤ 2. Also re-derives the coefficient."""
    g2, Xc = sp.symbols("g2 Xc")
    # L(w⁺) − L(w) ≤ −γ²β/2 g2 + γ²β/2 ‖Δ‖² − γ(1−γβ)(g2 + Xc), with ‖Δ‖² ≤ ρβ Xc
    rhs = sp.expand(-G ** 2 * B / 2 * g2 + G ** 2 * B / 2 * R * B * Xc - G * (1 - G * B) * (g2 + Xc))
    coef_X = sp.simplify(rhs.coeff(Xc) + G * (1 - G * B - G * R * B ** 2 / 2))
    coef_g = sp.simplify(rhs.coeff(g2) + G * (1 - G * B / 2))
    ratio = sp.simplify(condition / (1 - G * B - G * R * B ** 2 / 2))
    ok = coef_X == 0 and coef_g == 0 and ratio.is_number and ratio > 0
    return bool(ok), f"condition / (1 - gb - g rho b^2/2) = {ratio}"


@check("sam_convergence.thm5102_sum_upper_limit", "Thm 5.10.2 (l.2673)")
def thm5102_sum_upper_limit(extra_terms=0):
    """1-D quadratic L = βx²/2 (β-smooth), SAM factor q = 1 − γβ(1+ρβ): Σ_{t=0}^{T−1+extra} β²x_t² ≤
    (L(x_0) − L(x_T))/(γ(1−ρβ)(1−γβ(1−ρβ)/2)) is checked exactly on a grid of γβ ∈ (0,1), ρβ ∈ [0,1),
    T ∈ {1,2,5}. extra_terms=0 is the proof's Σ_{t<T}; the printed Σ_{t=0}^{T} (extra_terms=1) fails
    (e.g. γβ = 1/2, ρ = 0, T = 1: 5/4 > 1)."""
    grid = [sp.Rational(k, 8) for k in range(1, 8)]
    worst = None
    for u in grid:
        for r in [0] + grid:
            q = 1 - u * (1 + r)
            c = u * (1 - r) * (1 - u * (1 - r) / 2)           # βγ(1−ρβ)(…) with β = x0 = 1
            for Tn in (1, 2, 5):
                lhs = sum(q ** (2 * t) for t in range(Tn + extra_terms))
                rhs = (1 - q ** (2 * Tn)) / 2 / c
                if lhs > rhs and (worst is None or lhs / rhs > worst[0]):
                    worst = (lhs / rhs, u, r, Tn)
    return worst is None, ("holds on the grid" if worst is None else
                           f"violated: ratio {worst[0]} at gamma*beta={worst[1]}, rho*beta={worst[2]}, T={worst[3]}")


@check("sam_convergence.thm5105_constants", "Thm 5.10.5 (l.2753) vs Thm 5.6.1 (l.2335), from Thm 5.10.6")
def thm5105_constants(formula=4 * B * D0 / sp.sqrt(T) + 8 * S2 / (BS * sp.sqrt(T))):
    """Summing Lemma 6 (with the σ²/b of its proof): (1/T)ΣE‖∇L‖² ≤ 4Δ₀/(Tγ) + 4βσ²(γ + ρ²β)/b; with
    γ = 1/(√T β), ρ = 1/(T^{1/4}β) this is exactly ``formula`` = 4βΔ₀/√T + 8σ²/(b√T) (Thm 5.6.1).
    The printed 4Δ₀/(β√T) of Thm 5.10.5 fails."""
    g, r = 1 / (sp.sqrt(T) * B), 1 / (T ** sp.Rational(1, 4) * B)
    derived = 4 * D0 / (T * g) + 4 * B * S2 * (g + r ** 2 * B) / BS
    diff = sp.simplify(derived - formula)
    return diff == 0, f"derived - formula = {diff}"


@check("sam_convergence.rho_1_over_beta_fixed_point", "Thm 5.10.1 remark (l.2614)")
def rho_fixed_point(rho=1 / B):
    """Counterexample behind 'ρ < 1/β is necessary': L(x) = −βx²/2 on |x| ≤ 1, β(|x|−2)²/2 − β on |x| ≥ 1
    (C¹, L' piecewise linear with slopes ±β, so β-smooth; bounded below by −β). With ``rho`` the ascent
    point x + ρL'(x) must be the maximiser 0 for every x in the cap, making every x ∈ (−1,1)\\{0} a fixed
    point of SAM with L'(x) = −βx ≠ 0. Checks C¹ gluing at x = 1 and x + ρL'(x) ≡ 0."""
    inner = -B * X ** 2 / 2
    outer = B * (X - 2) ** 2 / 2 - B
    glued = sp.simplify((inner - outer).subs(X, 1)) == 0 and \
        sp.simplify((sp.diff(inner, X) - sp.diff(outer, X)).subs(X, 1)) == 0
    ascent = sp.simplify(X + rho * sp.diff(inner, X))
    slopes = {sp.diff(inner, X, 2), sp.diff(outer, X, 2)} == {-B, B}
    ok = glued and slopes and ascent == 0
    return bool(ok), f"C1 gluing: {glued}; x + rho L'(x) = {ascent}"


@check("sam_convergence.lemma3_quadratic", "Lemma 3 (l.2623) on quadratics, all three cases")
def lemma3_quadratic(alpha_smooth=-B, alpha_convex=sp.Integer(0), alpha_strong=MU):
    """L(w) = ½ Σ_k h_k w_k² (2-D, Hessian diag(h₁, h₂)): ⟨∇L(w + ρ∇L(w)), ∇L(w)⟩ − (1 + αρ)‖∇L(w)‖² equals
    ρ Σ_k h_k² w_k² (h_k − α) exactly, so Lemma 3 holds for every w, ρ ≥ 0 iff every h_k ≥ α, with equality
    when all h_k = α (the constant is tight). β-smooth: h_k ≥ −β; convex: h_k ≥ 0; μ-strongly convex:
    h_k ≥ μ — checked by substituting h_k = α + c_k², c_k real. Pass another α to see it fail."""
    h1, h2, w1, w2, c1, c2 = sp.symbols("h1 h2 w1 w2 c1 c2", real=True)
    g = sp.Matrix([h1 * w1, h2 * w2])
    inner = (sp.Matrix([h1 * (w1 + R * g[0]), h2 * (w2 + R * g[1])]).T * g)[0]
    a = sp.Symbol("alpha", real=True)
    gap = sp.expand(inner - (1 + a * R) * (g.T * g)[0])
    ok = sp.simplify(gap - R * (h1 ** 2 * w1 ** 2 * (h1 - a) + h2 ** 2 * w2 ** 2 * (h2 - a))) == 0
    details = []
    for name, alpha, lo in (("smooth", alpha_smooth, -B), ("convex", alpha_convex, 0), ("strong", alpha_strong, MU)):
        # worst admissible curvature h_k = lo + c_k²: gap must be ≥ 0 as a polynomial with ≥ 0 terms
        sub = sp.expand(gap.subs({a: alpha, h1: lo + c1 ** 2, h2: lo + c2 ** 2}))
        at_lo = sp.simplify(gap.subs({a: alpha, h1: lo, h2: lo}))
        nonneg = sp.simplify(sub - R * ((lo + c1 ** 2) ** 2 * w1 ** 2 * (c1 ** 2 + lo - alpha)
                                        + (lo + c2 ** 2) ** 2 * w2 ** 2 * (c2 ** 2 + lo - alpha))) == 0 \
            and sp.simplify(lo - alpha) == 0
        ok = ok and nonneg and at_lo == 0
        details.append(f"{name}: gap at h=lo is {at_lo}")
    return bool(ok), "; ".join(details)


@check("sam_convergence.logistic_smoothness",
       "logistic regression constants of toymodels.sam_convergence (A1, A2, A2')")
def logistic_smoothness(bound=sp.Rational(1, 4)):
    """ℓ(m) = log(1 + e^{−m}) has ℓ''(m) = σ(m)(1 − σ(m)), maximal = 1/4 at m = 0, so ∇²L = (1/n) XᵀD X + λI with
    D ⪯ I/4: β = λ_max(XᵀX)/(4n) + λ, attained at w = 0. Also: the per-example gradient variance
    (1/n)Σ‖sᵢvᵢ‖² − ‖(1/n)Σ sᵢvᵢ‖² equals (1/n)Σ‖sᵢvᵢ − mean‖² (n = 3, d = 2 symbolic), hence is a PSD
    quadratic form in s, whose maximum over [0,1]ⁿ sits at a vertex."""
    m = sp.Symbol("m", real=True)
    ell = sp.log(1 + sp.exp(-m))
    sig = 1 / (1 + sp.exp(-m))
    d2 = sp.simplify(sp.diff(ell, m, 2) - sig * (1 - sig)) == 0
    at0 = sp.simplify(sp.diff(ell, m, 2).subs(m, 0) - bound) == 0
    crit = sp.solve(sp.Eq(sp.diff(sig * (1 - sig), m), 0), m) == [0]
    s = sp.symbols("s1:4", real=True)
    V = sp.Matrix(3, 2, sp.symbols("v1:7", real=True))
    rows = [s[i] * V.row(i) for i in range(3)]
    mean = (rows[0] + rows[1] + rows[2]) / 3
    lhs = sum((r * r.T)[0] for r in rows) / 3 - (mean * mean.T)[0]
    rhs = sum(((r - mean) * (r - mean).T)[0] for r in rows) / 3
    var_ok = sp.expand(lhs - rhs) == 0
    ok = d2 and at0 and crit and var_ok
    return bool(ok), f"l''=s(1-s): {d2}; l''(0)=bound: {at0}; unique critical point 0: {crit}; variance form: {var_ok}"
