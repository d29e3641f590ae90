"""Checks of the constants in the proof of Prop. 6.7.1 (thesis Ch. 6, Lemmas 9–14, thesis.txt
l.3285–3510) and of the GD stability threshold 2/λ_max on quadratics (l.3065).

h_γ(θ) = θ + γθ(1 − θ²) (eq. 6.26), g_γ = h_γ∘h_γ, Γ ⊆ (1, 1.25). Every check recomputes the
quantity from the definition with sympy (exact or 30-digit arithmetic) and takes the printed
constant / formula as a defaulted parameter, so a test can pass a perturbed one and see it fail.
"""
from __future__ import annotations

import sympy as sp

from . import check

__all__: list[str] = []

G, TH = sp.symbols("gamma theta", positive=True)
H = TH + G * TH * (1 - TH ** 2)


def _h(g, th):
    return H.subs({G: g, TH: th})


def _g(g, th):
    return _h(g, _h(g, th))


PRINTED_MAX = 2 * (1 + G) ** sp.Rational(3, 2) / (3 * sp.sqrt(3) * G)          # eq. 6.28 as printed
CORRECT_MAX = 2 * (1 + G) ** sp.Rational(3, 2) / (3 * sp.sqrt(3 * G))


@check("quad1d.lemma9_max_formula", "Lemma 9, eq. 6.28 (l.3331)")
def lemma9_max_formula(formula=CORRECT_MAX):
    """max_θ h_γ(θ) = h_γ(θ_γ), θ_γ = √((1 + 1/γ)/3): the formula must equal it identically in γ.
    The printed 2(1+γ)^{3/2}/(3√3 γ) fails (γ where √γ belongs); the default is the corrected one."""
    thg = sp.sqrt((1 + 1 / G) / 3)
    assert sp.simplify(sp.diff(H, TH).subs(TH, thg)) == 0
    diff = sp.simplify(sp.radsimp(_h(G, thg) - formula))
    ok = diff == 0 or all(abs(sp.N((_h(G, thg) - formula).subs(G, v), 30)) < 1e-25
                          for v in (sp.Rational(1), sp.Rational(9, 8), sp.Rational(5, 4)))
    return bool(ok), f"h_g(theta_g) - formula = {diff}"


@check("quad1d.lemma9_bound_1162", "Lemma 9, eq. 6.29 (l.3331)")
def lemma9_bound(bound=sp.Rational(1162, 1000), formula=CORRECT_MAX):
    """sup_{γ∈[1,1.25]} max_{θ∈(0,1]} h_γ(θ) < bound: the formula is increasing on [1, 1.25]
    (derivative sign checked exactly) and its value at 1.25 is 3√15/10 ≈ 1.161895 < 1.162."""
    d = sp.simplify(sp.diff(formula, G))
    increasing = all(d.subs(G, v) > 0 for v in (1, sp.Rational(9, 8), sp.Rational(5, 4)))
    crit = [r for r in sp.solve(sp.numer(sp.together(d)), G) if r.is_real and 1 <= r <= sp.Rational(5, 4)]
    sup = formula.subs(G, sp.Rational(5, 4)) if increasing and not crit else sp.Max(
        *[formula.subs(G, v) for v in [1, sp.Rational(5, 4)] + crit])
    return bool(sp.N(sup, 30) < bound), f"sup = {sp.nsimplify(sup)} = {sp.N(sup, 10)}, increasing={increasing}"


@check("quad1d.lemma9_printed_monotone", "Lemma 9 (l.3329)")
def lemma9_printed_monotone(formula=PRINTED_MAX):
    """The text says the printed formula is increasing on (1, 1.25); it is decreasing
    (d/dγ log = (γ−2)/(2γ(1+γ)) < 0): this check passes when the formula given is NOT increasing
    there, documenting the slip (pass CORRECT_MAX to see it fail)."""
    d = sp.diff(formula, G)
    vals = [sp.N(d.subs(G, v)) for v in (1, sp.Rational(9, 8), sp.Rational(5, 4))]
    return bool(all(v < 0 for v in vals)), f"derivative at 1, 1.125, 1.25: {[float(v) for v in vals]}"


@check("quad1d.lemma9_lower", "Lemma 9, eq. 6.31 (l.3339)")
def lemma9_lower(upper=sp.Rational(1162, 1000), gmax=sp.Rational(5, 4)):
    """γ(θ² − 1) < 1 for γ < 1.25, θ < 1.162: 1.25(1.162² − 1) = 0.437805 < 1."""
    v = gmax * (upper ** 2 - 1)
    return bool(v < 1), f"1.25(1.162^2-1) = {v} = {float(v)}"


@check("quad1d.p2_0652", "Lemma 10 (P2), eq. 6.35 (l.3381)")
def p2(value=sp.Rational(652, 1000), low=sp.Rational(65, 100)):
    """h_{1.25}(1.162) ≥ 0.652 > 0.65 (printed as equality; exact value 0.653269...)."""
    v = _h(sp.Rational(5, 4), sp.Rational(1162, 1000))
    return bool(v > value and value > low and abs(v - value) < sp.Rational(2, 1000)), f"h_1.25(1.162) = {float(v)}"


@check("quad1d.p1_growth", "Lemma 10 (P1), eq. 6.34 (l.3366)")
def p1_growth(factor=sp.Rational(3, 2), low=sp.Rational(65, 100)):
    """θ(2 − θ²) > factor·θ on (0, 0.65]: min of 2 − θ² there is 2 − 0.65² = 1.5775."""
    v = 2 - low ** 2
    return bool(v > factor), f"2 - 0.65^2 = {float(v)}"


@check("quad1d.lemma10_eps", "Lemma 10 (proof, l.3353)")
def lemma10_eps(eps_of=lambda g: sp.Min((g - 1) / 3, sp.Rational(2, 100))):
    """For every γ_min ∈ (1, 1.25) and ε < ε_o(γ_min): γ_min(2 − ε)(1 − ε) > 2 (exactly:
    γ(2 − 3ε + ε²) > γ(3 − γ) ≥ 2 on (1, 2)), checked on a grid of γ_min up to ε = ε_o."""
    bad = []
    for k in range(1, 50):
        g = 1 + sp.Rational(k, 200)
        e = eps_of(g)
        if not g * (2 - e) * (1 - e) > 2:
            bad.append(float(g))
    return not bad, f"failing gamma_min: {bad[:5]}" if bad else "holds for gamma_min = 1.005..1.245, eps = eps_o"


@check("quad1d.lemma12_P", "Lemma 12, eqs. 6.44–6.48 (l.3418–3432)")
def lemma12_P(p_bound=0):
    """g_γ(θ) − θ = γθ(1 − θ²)P(θ) identically, and P < p_bound on I₂ = [1−ε, 1) for
    γ ∈ (1, 1.25), ε = ε_o(γ). The printed (6.47) "P < −1" fails (p_bound = −1 is rejected:
    e.g. γ = 1.1, θ = 0.99 gives P ≈ −0.206); P < 0 is what (6.48) needs."""
    A = 1 + G * (1 - TH ** 2)
    Bp = 1 + G * TH * (1 - TH)
    B = 1 - G * TH * (1 + TH)
    P = 1 + A * Bp * B
    ident = sp.expand(_g(G, TH) - TH - G * TH * (1 - TH ** 2) * P) == 0
    worst = -sp.oo
    for gk in (sp.Rational(1003, 1000), sp.Rational(11, 10), sp.Rational(12, 10), sp.Rational(1249, 1000)):
        e = min((gk - 1) / 3, sp.Rational(2, 100))
        for j in range(0, 20):
            th = 1 - e + e * sp.Rational(j, 20)
            worst = sp.Max(worst, P.subs({G: gk, TH: th}))
    return bool(ident and worst < p_bound), f"identity {ident}, max P on I2 grid = {float(worst):.4f}"


@check("quad1d.lemma13_065", "Lemma 13, eq. 6.50 (l.3470)")
def lemma13_lower(low=sp.Rational(65, 100)):
    """g_{1.25}(θ_{1.25}) > 0.65 (θ_{1.25} = √0.6): value 0.65357."""
    v = _g(sp.Rational(5, 4), sp.sqrt(sp.Rational(3, 5)))
    return bool(sp.N(v, 30) > low), f"g_1.25(sqrt(0.6)) = {sp.N(v, 8)}"


@check("quad1d.lemma13_098", "Lemma 13 / 14 (l.3479, 3493)")
def lemma13_upper(value=sp.Rational(98, 100)):
    """g₁(0.65) < 0.98 (exact 0.97268) and 0.98 < 1 − ε for ε ≤ 0.02 (so needs value ≤ 0.98)."""
    v = _g(1, sp.Rational(65, 100))
    return bool(v < value <= 1 - sp.Rational(2, 100)), f"g_1(0.65) = {float(v)}"


@check("quad1d.lemma14_102", "Lemma 14 (l.3503)")
def lemma14(value=sp.Rational(102, 100)):
    """h₁(0.65) > 1.02 ≥ 1 + ε for ε ≤ 0.02 (exact h₁(0.65) = 1.025375)."""
    v = _h(1, sp.Rational(65, 100))
    return bool(v > value >= 1 + sp.Rational(2, 100)), f"h_1(0.65) = {v} = {float(v)}"


@check("quad1d.gd_threshold", "Sec. 6.3.2, GD on quadratics (l.3065)")
def gd_threshold(threshold=lambda lam: 2 / lam):
    """GD β ← β − η∇F on F(β) = ½βᵀHβ: β_t = (I − ηH)ᵗβ₀ converges iff every |1 − ηλ| < 1, i.e.
    η < 2/λ_max, and is 2-periodic (|1 − ηλ_max| = 1) at η = 2/λ_max. Checked exactly on
    H = diag(3, 1) by iterating at the threshold and ±1%."""
    Hm = sp.diag(3, 1)
    lam = 3
    eta0 = sp.nsimplify(threshold(lam))
    b0 = sp.Matrix([1, 1])
    res = {}
    for name, eta in (("below", eta0 * sp.Rational(99, 100)), ("at", eta0), ("above", eta0 * sp.Rational(101, 100))):
        M = sp.eye(2) - eta * Hm
        b = (M ** 2000) * b0
        res[name] = float(abs(b[0]))
    two_per = ((sp.eye(2) - eta0 * Hm) ** 2 * b0)[0] == b0[0]
    ok = res["below"] < 1e-6 and res["above"] > 1e6 and abs(res["at"] - 1) < 1e-12 and two_per
    return bool(ok), f"|beta_1| after 2000 steps: {res}, 2-periodic at threshold: {two_per}"
