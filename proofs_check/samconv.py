"""Symbolic checks of the SAM convergence proofs (thesis App. 5.10, l.2572–2908; Thm 5.6.1 l.2338).

Each check recomputes a quantity from the proof's own steps with sympy and takes the printed (or
corrected) formula as a defaulted parameter, so a test can pass the printed/perturbed one and see it fail.
Numerical measurements of the same bounds: ``python -m toymodels.samconv``.
"""
from __future__ import annotations

import sympy as sp

from . import check

__all__: list[str] = []

G, R, B, MU, T, S2, BS, D0 = sp.symbols("gamma rho beta mu T sigma2 b Delta0", positive=True)
X = sp.Symbol("x", real=True)


@check("samconv.lemma4_smooth_coefficient", "Lemma 4 (l.2639, proof l.2649)")
def lemma4_smooth_coefficient(formula=G * (1 - R * B) * (1 - G * B * (1 - R * B) / 2)):
    """Smoothness + binomial square + Lemma 3 (α = −β) + ‖∇L(w½) − ∇L(w)‖ ≤ βρ‖∇L(w)‖ give the decrease
    coefficient γ(1−γβ)(1−ρβ) + γ²β/2 − γ²β·β²ρ²/2 of ‖∇L(w_t)‖²; it must equal ``formula``."""
    derived = G * (1 - G * B) * (1 - R * B) + G ** 2 * B / 2 - G ** 2 * B * (B * R) ** 2 / 2
    diff = sp.simplify(sp.expand(derived - formula))
    return diff == 0, f"derived - formula = {diff}"


@check("samconv.lemma4_convex_step_condition", "Lemma 4, second part (l.2643, proof l.2665)")
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


@check("samconv.thm5102_sum_upper_limit", "Thm 5.10.2 (l.2673)")
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


@check("samconv.thm5105_constants", "Thm 5.10.5 (l.2753) vs Thm 5.6.1 (l.2335), from Thm 5.10.6")
def thm5105_constants(formula=4 * B * D0 / sp.sqrt(T) + 8 * S2 / (BS * sp.sqrt(T))):
    """Summing Lemma 6 (with the σ²/b of its proof): (1/T)ΣE‖∇L‖² ≤ 4Δ₀/(Tγ) + 4βσ²(γ + ρ²β)/b; with
    γ = 1/(√T β), ρ = 1/(T^{1/4}β) this is exactly ``formula`` = 4βΔ₀/√T + 8σ²/(b√T) (Thm 5.6.1).
    The printed 4Δ₀/(β√T) of Thm 5.10.5 fails."""
    g, r = 1 / (sp.sqrt(T) * B), 1 / (T ** sp.Rational(1, 4) * B)
    derived = 4 * D0 / (T * g) + 4 * B * S2 * (g + r ** 2 * B) / BS
    diff = sp.simplify(derived - formula)
    return diff == 0, f"derived - formula = {diff}"


@check("samconv.rho_1_over_beta_fixed_point", "Thm 5.10.1 remark (l.2614)")
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
