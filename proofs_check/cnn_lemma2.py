"""Checks for Lemma 2 (gradient alignment at initialization of a single-layer CNN), thesis Ch. 2,
App. 2.8.2 (thesis.txt l.531–597; statement l.445).

Setting: w ~ N(0, σ² I_p), z ~ U([0,1]^p), η ~ U([−ε, ε]^p), θ = w/‖w‖. The proof bounds eq. 2.9,

    E[‖w‖² 1[⟨w,z⟩ ≥ 0] 1[⟨w,z+η⟩ ≥ 0]] / (√E[‖w‖² 1[⟨w,z⟩ ≥ 0]] √E[‖w‖² 1[⟨w,z+η⟩ ≥ 0]]),

from below with Hoeffding's inequality, Cauchy–Schwarz and p ≥ 2 (eq. 2.10). Each check below
takes the formula under test as a defaulted argument; the default is the thesis' formula (or, where
the thesis is silent, the closed form :mod:`toymodels.cnn.align_init` relies on), and a perturbed
formula makes the check fail. The probabilistic steps that are not symbolic (the LLN, the w ↦ −w
symmetry, the Hoeffding inequality itself, the bounds' numerical values) are tested by simulation in
tests/test_cnn_align_init.py.
"""
from __future__ import annotations

from typing import Callable

import sympy as sp

from . import check

__all__: list[str] = []

_p = sp.Symbol("p", positive=True, integer=True)
_s = sp.Symbol("sigma", positive=True)
_r = sp.Symbol("r", positive=True)
_t = sp.Symbol("t", real=True)
_eps = sp.Symbol("epsilon", positive=True)
_E = sp.Symbol("E", positive=True)        # stands for E_{w,z}[exp(−⟨θ,z⟩²/ε²)]
_P_SMALL = (2, 3, 5)                      # dimensions at which p-dependent formulas are also expanded


def _is_zero(expr) -> bool:
    expr = sp.sympify(expr)
    if expr == 0:
        return True
    pt = {v: sp.Rational(5 + 2 * j, 3) for j, v in enumerate(sorted(expr.free_symbols, key=str))}
    if abs(complex(expr.xreplace(pt).evalf(30))) > 1e-20:
        return False
    return sp.simplify(sp.gammasimp(expr)) == 0


def _gauss_moment(k: int, sigma):
    """E[X^k] for X ~ N(0, σ²): 0 for odd k, σ^k (k−1)!! for even k."""
    return sp.Integer(0) if k % 2 else sigma**k * sp.factorial2(k - 1)


def _gauss_expectation(poly_expr, ws, sigma):
    """E[poly(w)] for independent w_j ~ N(0, σ²), monomial by monomial."""
    poly = sp.Poly(sp.expand(poly_expr), *ws)
    total = sp.Integer(0)
    for exps, coeff in poly.terms():
        term = coeff
        for e in exps:
            term *= _gauss_moment(e, sigma)
        total += term
    return sp.expand(total)


def _chi_moment(k: int, p, sigma):
    """E‖w‖^k for w ~ N(0, σ² I_p), from the radial density ∝ r^{p−1} e^{−r²/(2σ²)} (symbolic p)."""
    dens = _r**(p - 1) * sp.exp(-_r**2 / (2 * sigma**2))
    num = sp.integrate(_r**k * dens, (_r, 0, sp.oo), conds="none")
    den = sp.integrate(dens, (_r, 0, sp.oo), conds="none")
    return sp.gammasimp(sp.simplify(num / den))


def thesis_w_fourth_moment(p, sigma):
    """Thesis (proof of Lemma 2, l.560–561): E‖w‖⁴ = σ⁴(p² + 2p)."""
    return sigma**4 * (p**2 + 2 * p)


@check("cnn_lemma2.w_fourth_moment", "Lemma 2 (proof, Cauchy–Schwarz step, l.560–561)")
def w_fourth_moment(formula: Callable = thesis_w_fourth_moment):
    """E‖w‖⁴ for w ~ N(0, σ²I_p): radial (χ) integral for symbolic p, and Gaussian moments of the
    expanded (Σ w_j²)² for p = 2, 3, 5."""
    chi = _chi_moment(4, _p, _s)
    if not _is_zero(chi - formula(_p, _s)):
        return False, f"χ-moment gives E‖w‖⁴ = {sp.factor(chi)}, formula gives {formula(_p, _s)}"
    for p in _P_SMALL:
        ws = sp.symbols(f"w0:{p}", real=True)
        val = _gauss_expectation(sum(w**2 for w in ws)**2, ws, _s)
        if not _is_zero(val - formula(sp.Integer(p), _s)):
            return False, f"p={p}: E(Σw_j²)² = {val}, formula gives {sp.expand(formula(p, _s))}"
    return True, f"E‖w‖⁴ = {sp.factor(chi)} (χ-moment, symbolic p; expanded at p = {_P_SMALL})"


def thesis_denominator(p, sigma):
    """Thesis (proof of Lemma 2, l.545): E_{w,z}[‖w‖² 1[⟨w,z⟩ ≥ 0]] = 0.5 p σ_w²."""
    return sp.Rational(1, 2) * p * sigma**2


@check("cnn_lemma2.denominator", "eq. 2.9 (denominator, l.545)")
def denominator(formula: Callable = thesis_denominator):
    """E[‖w‖² 1[⟨w,z⟩ ≥ 0]] for any fixed z ≠ 0 (rotate z to a coordinate axis): explicit integrals
    over the half-space in polar (p = 2) and spherical (p = 3) coordinates, and for symbolic p
    E‖w‖² · P(half-space) = E‖w‖² · ½ with E‖w‖² from the χ-moment (the ½ is the w ↦ −w symmetry,
    which also gives the same value with z + η in place of z)."""
    r, phi, th = _r, sp.Symbol("phi", real=True), sp.Symbol("theta", real=True)
    g2 = sp.exp(-r**2 / (2 * _s**2)) / (2 * sp.pi * _s**2)
    v2 = sp.integrate(sp.integrate(r**2 * g2 * r, (r, 0, sp.oo)), (phi, -sp.pi / 2, sp.pi / 2))
    g3 = sp.exp(-r**2 / (2 * _s**2)) / (2 * sp.pi * _s**2)**sp.Rational(3, 2)
    v3 = sp.integrate(sp.integrate(sp.integrate(r**2 * g3 * r**2 * sp.sin(th), (r, 0, sp.oo)),
                                   (th, 0, sp.pi / 2)), (phi, 0, 2 * sp.pi))
    for p, v in ((2, v2), (3, v3)):
        if not _is_zero(v - formula(sp.Integer(p), _s)):
            return False, f"p={p}: half-space integral = {sp.simplify(v)}, formula gives {formula(p, _s)}"
    gen = _chi_moment(2, _p, _s) / 2
    if not _is_zero(gen - formula(_p, _s)):
        return False, f"symbolic p: E‖w‖²/2 = {sp.simplify(gen)}, formula gives {formula(_p, _s)}"
    return True, f"= {sp.simplify(gen)} (explicit at p = 2, 3; χ-moment · ½ for symbolic p)"


def thesis_hoeffding_exponent(t, eps, wnorm2):
    """Thesis (l.549, l.557): P_η(⟨w,η⟩ ≥ t) ≤ exp(−t²/(2ε²‖w‖²))."""
    return -t**2 / (2 * eps**2 * wnorm2)


@check("cnn_lemma2.hoeffding_exponent", "Lemma 2 (proof, Hoeffding step, l.549/557)")
def hoeffding_exponent(formula: Callable = thesis_hoeffding_exponent):
    """Hoeffding: for independent X_j ∈ [a_j, b_j], P(Σ X_j − E ≥ t) ≤ exp(−2t²/Σ(b_j − a_j)²).
    Here X_j = w_j η_j ∈ [−ε|w_j|, ε|w_j|] with mean 0, so b_j − a_j = 2ε|w_j|."""
    for p in _P_SMALL:
        ws = sp.symbols(f"w0:{p}", real=True)
        hoeff = -2 * _t**2 / sum((2 * _eps * sp.Abs(w))**2 for w in ws)
        if not _is_zero(hoeff - formula(_t, _eps, sum(w**2 for w in ws))):
            return False, (f"p={p}: Hoeffding exponent {sp.simplify(hoeff)}, formula "
                           f"{formula(_t, _eps, sum(w**2 for w in ws))}")
    return True, "exponent −2t²/Σ(2ε|w_j|)² = −t²/(2ε²‖w‖²)"


def thesis_cs_constant(p):
    """Thesis (l.576): after dividing by 0.5pσ², the Cauchy–Schwarz bound reads
    1 − √(1 + 2/p) · E[exp(−⟨θ,z⟩²/ε²)]^{1/2}."""
    return sp.sqrt(1 + 2 / p)


def thesis_cs_exponent(c, eps):
    """Thesis (l.560): the exponent inside the Cauchy–Schwarz expectation, −⟨θ,z⟩²/ε² (c = ⟨θ,z⟩²)."""
    return -c / eps**2


@check("cnn_lemma2.cauchy_schwarz", "Lemma 2 (proof, Cauchy–Schwarz step, l.560–561, 576)")
def cauchy_schwarz(constant: Callable = thesis_cs_constant, exponent: Callable = thesis_cs_exponent):
    """E[‖w‖² e^{−c/(2ε²)}] ≤ E[‖w‖⁴]^{1/2} E[(e^{−c/(2ε²)})²]^{1/2}: the squared Hoeffding factor
    has exponent −c/ε²; then (½pσ² − ½σ²√(E‖w‖⁴/σ⁴)·√E) / (½pσ²) = 1 − constant(p)·√E with
    E‖w‖⁴ = σ⁴(p² + 2p)."""
    c = sp.Symbol("c", nonnegative=True)
    sq = sp.expand_power_exp(sp.exp(-c / (2 * _eps**2))**2)
    if not _is_zero(sp.log(sq) - exponent(c, _eps)):
        return False, f"(e^(−c/(2ε²)))² = {sp.simplify(sq)}, formula exponent {exponent(c, _eps)}"
    m4 = thesis_w_fourth_moment(_p, _s)
    ratio = (_p * _s**2 / 2 - sp.sqrt(m4) * sp.sqrt(_E) / 2) / (_p * _s**2 / 2)
    if not _is_zero(ratio - (1 - constant(_p) * sp.sqrt(_E))):
        return False, f"normalized bound is {sp.simplify(ratio)}, formula 1 − {constant(_p)}·√E"
    return True, "exponent −⟨θ,z⟩²/ε²; normalized bound 1 − √(1 + 2/p)·√E"


@check("cnn_lemma2.final_constant", "eq. 2.10 (p ≥ 2 step)")
def final_constant(C=sp.sqrt(2), cs_constant: Callable = thesis_cs_constant):
    """eq. 2.10 replaces √(1 + 2/p) by C = √2 'using p ≥ 2': valid iff √(1 + 2/p) ≤ C for every
    p ≥ 2. √(1 + 2/p) decreases in p, so this is C ≥ √(1 + 2/2) = √2 (tight at p = 2)."""
    q = sp.Symbol("q", positive=True)     # real relaxation of p
    f = cs_constant(q)
    if not sp.simplify(sp.diff(f, q)).is_negative:
        return False, f"{f} is not decreasing in p"
    worst = sp.simplify(f.subs(q, 2))
    if not bool(sp.simplify(C - worst) >= 0):
        return False, f"C = {C} < {worst} = √(1 + 2/p) at p = 2: the step fails at p = 2"
    tight = "tight" if sp.simplify(C - worst) == 0 else f"loose (needs only {worst})"
    return True, f"√(1+2/p) ≤ {worst} for p ≥ 2 (max at p = 2); C = {C} is {tight}"


def wedge_probability(phi):
    """Closed form used for eq. 2.9 in toymodels.cnn.align_init: for θ uniform on the sphere and two
    vectors at angle φ, P(⟨θ,a⟩ ≥ 0, ⟨θ,b⟩ ≥ 0) = ½ − φ/(2π), so that eq. 2.9 = 1 − E[φ]/π."""
    return sp.Rational(1, 2) - phi / (2 * sp.pi)


@check("cnn_lemma2.wedge_probability", "eq. 2.9 (closed form of the limit)")
def wedge(formula: Callable = wedge_probability):
    """The event depends on θ only through its projection on span(a, b), whose angle ψ is uniform
    on [0, 2π): measure the set {ψ : cos ψ ≥ 0, cos(ψ − φ) ≥ 0} exactly for several φ ∈ [0, π]."""
    for phi in (sp.Integer(0), sp.pi / 6, sp.pi / 3, sp.pi / 2, 2 * sp.pi / 3, 5 * sp.pi / 6, sp.pi):
        A = sp.Union(sp.Interval(0, sp.pi / 2), sp.Interval(3 * sp.pi / 2, 2 * sp.pi))   # cos ψ ≥ 0
        B = sp.Union(*[sp.Interval(phi + c - sp.pi / 2, phi + c + sp.pi / 2) for c in (-2 * sp.pi, 0, 2 * sp.pi)])
        meas = sp.Intersection(A, B, sp.Interval(0, 2 * sp.pi)).measure / (2 * sp.pi)
        if not _is_zero(meas - formula(phi)):
            return False, f"φ = {phi}: probability {sp.nsimplify(meas)}, formula {formula(phi)}"
    return True, "P = ½ − φ/(2π); eq. 2.9 = 2·E[P] = 1 − E[∠(z, z+η)]/π"


def beta_moment(n, p):
    """Closed form used for the bounds in toymodels.cnn.align_init: t = ⟨θ, e⟩ for θ uniform on
    S^{p−1} has E[t^{2n}] = (½)_n / (p/2)_n, the moments of Beta(½, (p−1)/2), hence
    E[e^{−a t²}] = ₁F₁(½; p/2; −a)."""
    return sp.rf(sp.Rational(1, 2), n) / sp.rf(sp.Rational(p, 2), n)


def _sphere_coordinate_moment(n: int, p: int):
    """E[t^{2n}] for t with density ∝ (1 − t²)^{(p−3)/2} on [−1, 1], integrated exactly: as a
    polynomial for odd p, with t = sin ψ (density ∝ cos^{p−2} ψ on [−π/2, π/2]) for even p."""
    if p % 2:
        dens = sp.Poly((1 - _t**2)**((p - 3) // 2), _t)

        def integral(q):
            q = q.integrate()
            return q.eval(1) - q.eval(-1)

        return integral(sp.Poly(_t**(2 * n), _t) * dens) / integral(dens)
    psi = sp.Symbol("psi", real=True)
    f = sp.cos(psi)**(p - 2)
    return (sp.integrate(sp.sin(psi)**(2 * n) * f, (psi, -sp.pi / 2, sp.pi / 2))
            / sp.integrate(f, (psi, -sp.pi / 2, sp.pi / 2)))


@check("cnn_lemma2.beta_moments", "eq. 2.10 (evaluation of E_θ[exp(−⟨θ,z⟩²/ε²)])")
def beta_moments(formula: Callable = beta_moment):
    """Integrate t^{2n} against the density ∝ (1 − t²)^{(p−3)/2} of one coordinate of a uniform
    unit vector, for p = 2, 3, 4, 5, 27, 28 and n = 1, 2, 3, and compare with the ₁F₁ series
    coefficients."""
    for p in (2, 3, 4, 5, 27, 28):
        for n in (1, 2, 3):
            mom = _sphere_coordinate_moment(n, p)
            if not _is_zero(mom - formula(n, p)):
                return False, f"p={p}, n={n}: E t^{2 * n} = {sp.simplify(mom)}, formula {formula(n, p)}"
    return True, "E t^{2n} = (½)_n/(p/2)_n ⇒ E_θ e^{−a⟨θ,e⟩²} = ₁F₁(½; p/2; −a)"
