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


def _telescoped(decrease, noise):
    """Sum the one-step bound E L_{t+1} ≤ E L_t − decrease·E‖∇L(w_t)‖² + noise over t < T (with the symbols
    S = Σ_{t<T} E‖∇L(w_t)‖², L0, LT): S·decrease ≤ L0 − LT + T·noise; returns the bound on S/T."""
    S, L0, LT = sp.symbols("S L0 LT", real=True)
    ineq = sp.solve(sp.Eq(decrease * S, L0 - LT + T * noise), S)[0]
    return sp.expand(ineq / T), L0, LT


@check("sam_convergence.thm5106_from_lemma6", "Thm 5.10.6 (l.2833) from Lemma 6 (l.2791)")
def thm5106_from_lemma6(noise_factor=sp.Integer(1)):
    """Lemma 6 with the σ²/b of its proof, E L_{t+1} ≤ E L_t − (γ/4)E‖∇L‖² + γβσ²(γ + ρ²β)/b, summed over
    t < T and divided by Tγ/4: 4(L0 − E L_T)/(Tγ) + ``noise_factor``·4σ²β(γ + ρ²β)/b must be exactly the
    telescoped bound. The print's noise_factor = T (4Tσ²β(γ+ρ²β)/b) is rejected (weaker, not equal)."""
    derived, L0, LT = _telescoped(G / 4, G * B * S2 * (G + R ** 2 * B) / BS)
    formula = 4 * (L0 - LT) / (T * G) + noise_factor * 4 * S2 * B * (G + R ** 2 * B) / BS
    diff = sp.simplify(derived - formula)
    return diff == 0, f"derived - formula = {diff}"


@check("sam_convergence.thm5107_from_lemma8", "Thm 5.10.7 (l.2897) from Lemma 8 (l.2871); Thm 5.6.1 (l.2335)")
def thm5107_from_lemma8(rho_coef=sp.Integer(2)):
    """Lemma 8, E L_{t+1} ≤ E L_t − (3γ/8)E‖∇L‖² + γβ(σ²/b)(γ + 2ρ²β), summed over t < T and divided by 3Tγ/8
    gives 8(L0 − E L_T)/(3Tγ) + 8σ²β(γ + ``rho_coef``·ρ²β)/(3b) iff rho_coef = 2; the printed rho_coef = 1 does
    not follow. With γ = 1/(√Tβ), ρ = 1/(T^{1/4}β) the noise term must then be 8σ²/(b√T), Thm 5.6.1's constant
    (the printed version would give 16σ²/(3b√T))."""
    derived, L0, LT = _telescoped(3 * G / 8, G * B * S2 / BS * (G + 2 * R ** 2 * B))
    formula = sp.Rational(8, 3) * (L0 - LT) / (T * G) + sp.Rational(8, 3) * S2 * B * (G + rho_coef * R ** 2 * B) / BS
    diff = sp.simplify(derived - formula)
    steps = {G: 1 / (sp.sqrt(T) * B), R: 1 / (T ** sp.Rational(1, 4) * B)}
    noise = sp.simplify(formula.subs({L0: 0, LT: 0}).subs(steps))
    ok = diff == 0 and sp.simplify(noise - 8 * S2 / (BS * sp.sqrt(T))) == 0
    return bool(ok), f"derived - formula = {diff}; noise term at Thm 5.6.1's steps = {noise}"


@check("sam_convergence.lemma8_proof_coefficient", "Lemma 8 (l.2871), end of its proof (l.2889–2891)")
def lemma8_proof_coefficient(claimed=sp.Rational(1, 4)):
    """After Lemma 7 the proof of Lemma 8 has the decrease coefficient γ[(γβ/2)(1 − 4β²ρ²) + (1 − γβ)(1/2 − βρ)]
    = γ[1/2 − y + xy(1 − 2y)] (x = γβ ∈ [0, 1], y = ρβ ∈ [0, 1/4]) and the noise coefficient
    γβ(σ²/b)[γ + ρ²β(1/2 + 3γβ/2)] ≤ γβ(σ²/b)(γ + 2ρ²β). Its last line (l.2891) writes this combined
    coefficient as (γ/2)(1 − 2βρ(1 − γ(β − 2ρβ²))) (equal, checked) but also keeps −(γ²β/2)(1 − 4β²ρ²)‖∇L‖²
    (counted twice, a slip on the safe side). The minimum over the box is γ/4 (x → 0, y = 1/4), so the proof
    gives ``claimed`` = 1/4; the printed 3γ/8 holds only for γβ = 1 (there 1/2 − 2y² ≥ 3/8). (Lemma 8 itself is
    not contradicted: |E D − ∇L(w + ρ∇L)| ≤ βρσ/√b by (A2) gives it for every x.) Checks that ``claimed`` ≤
    that minimum."""
    x, y = sp.symbols("x y", nonnegative=True)
    coef = sp.expand(x / 2 * (1 - 4 * y ** 2) + (1 - x) * (sp.Rational(1, 2) - y))
    last_line = (1 - 2 * y * (1 - x + 2 * x * y)) / 2
    same = sp.simplify(coef - (sp.Rational(1, 2) - y + x * y * (1 - 2 * y))) == 0 and \
        sp.simplify(last_line - coef) == 0
    # linear in x with slope y(1 − 2y) ≥ 0 on [0, 1/4]: minimum at x = 0, then decreasing in y
    slope = y * (1 - 2 * y)                       # concave in y: ≥ 0 on [0, 1/4] iff ≥ 0 at both ends
    slope_nonneg = sp.diff(slope, y, 2) < 0 and slope.subs(y, 0) >= 0 and slope.subs(y, sp.Rational(1, 4)) >= 0
    cmin = coef.subs({x: 0, y: sp.Rational(1, 4)})
    grid_min = min(coef.subs({x: sp.Rational(i, 8), y: sp.Rational(j, 32)}) for i in range(9) for j in range(9))
    noise_ok = all(sp.Rational(1, 2) + sp.Rational(3, 2) * sp.Rational(i, 8) <= 2 for i in range(9))
    ok = same and slope_nonneg and grid_min == cmin and noise_ok and claimed <= cmin
    return bool(ok), f"min decrease coefficient / gamma = {cmin} (grid min {grid_min}); claimed {claimed}"


@check("sam_convergence.lemma6_proof_coefficient", "Lemma 6 (l.2791), last line of its proof")
def lemma6_proof_coefficient(claimed=sp.Integer(0)):
    """The proof of Lemma 6 ends with the decrease (γ/2)[1 − 2ρβ(1 − 2γβ(1 − ρβ))]‖∇L(w_t)‖². Over the stated
    range γβ, ρβ ∈ [0, 1/2] its minimum (divided by γ) is 0, at γ → 0, ρ = 1/(2β): the proof does not give
    the printed γ/4 there (``claimed`` = 1/4 is rejected; the lemma itself holds, see ERRATA)."""
    x, y = sp.symbols("x y", nonnegative=True)
    coef = (1 - 2 * y * (1 - 2 * x * (1 - y))) / 2
    # for fixed y, increasing in x (slope 2y(1 − y) ≥ 0): minimum at x = 0, i.e. (1 − 2y)/2, smallest at y = 1/2
    slope = sp.simplify(sp.diff(coef, x))
    cmin = coef.subs({x: 0, y: sp.Rational(1, 2)})
    grid_min = min(coef.subs({x: sp.Rational(i, 16), y: sp.Rational(j, 16)}) for i in range(9) for j in range(9))
    ok = sp.simplify(slope - 2 * y * (1 - y)) == 0 and grid_min == cmin and claimed <= cmin
    return bool(ok), f"min decrease coefficient / gamma = {cmin} (grid min {grid_min}); claimed {claimed}"
