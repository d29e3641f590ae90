"""Checks for the FGSM-RS perturbation norm (thesis Ch. 2, Lemma 1 and eq. 2.4; proof thesis.txt
l.499–530; the "7/255" of Sec. 2.4 / Table 2.1).

Every expectation below is computed by sympy from the definition, never from the thesis' algebra:

    E[δᵢ^k] = (1/2ε) ∫_{−ε}^{ε} clip(η + α s(η), −ε, ε)^k dη,

with the clip written as a Piecewise with linear conditions so that ``sympy.integrate`` resolves the
breakpoints itself. The substitution α = tε (t ≥ 0 a symbol) leaves one parameter, and the result is
split into (expression, set of t) pieces over [0, ∞). Because ηᵢ = εu turns E[δᵢ^k](ε, tε) into
ε^k · E[δᵢ^k](1, t), the integrals are done at ε = 1 and, as a check of that scaling, at ε = 8/255.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import sympy as sp

from toymodels.fgsm.lemma1 import (coord_abs_moment, coord_fourth_moment, coord_sq_moment,
                                   fgsm_equivalent_eps, lemma1_coord_formula, outward_coord_sq_moment)

from . import check

__all__: list[str] = []

T = sp.Symbol("t", nonnegative=True)        # α / ε
_ETA = sp.Symbol("eta", real=True)
_EPS_VALUES = (sp.Integer(1), sp.Rational(8, 255))
_HALF_LINE = sp.Interval(0, sp.oo)


def _pieces(expr) -> list[tuple[sp.Expr, sp.Set]]:
    """``expr`` (a function of t, possibly Piecewise) as (expression, set of t ≥ 0) pairs."""
    expr = sp.piecewise_fold(sp.sympify(expr).rewrite(sp.Piecewise))
    if isinstance(expr, sp.Piecewise):
        return [(e, s) for e, s in expr.as_expr_set_pairs(_HALF_LINE) if s is not sp.S.EmptySet]
    return [(expr, _HALF_LINE)]


@functools.lru_cache(maxsize=None)
def moment_pieces(eps: sp.Rational, power: int, sign: str) -> tuple:
    """E[δᵢ^power] (|δᵢ| for power 1) at ε = ``eps``, α = tε, as pieces over t ∈ [0, ∞).

    ``sign``: "+" (s = +1), "-" (s = −1) or "outward" (s = sign(η), which depends on η)."""
    a = eps * T
    s = {"+": 1, "-": -1, "outward": sp.Piecewise((1, _ETA >= 0), (-1, True))}[sign]
    x = _ETA + s * a
    if power == 1:
        integrand = sp.Piecewise((eps, x > eps), (eps, x < -eps), (x, x >= 0), (-x, True))
    else:
        integrand = sp.Piecewise((eps, x > eps), (-eps, x < -eps), (x, True)) ** power
    val = sp.integrate(integrand / (2 * eps), (_ETA, -eps, eps))
    return tuple(_pieces(sp.simplify(val)))


def _compare(pieces, target, lo, hi) -> tuple[bool, list[str]]:
    """Whether the pieces equal ``target`` (an expression in t, possibly Piecewise) for t ∈ [lo, hi];
    polynomial identity on intervals, exact values on isolated points."""
    ok, bad = True, []
    window = sp.Interval(lo, hi)
    for ex, st in pieces:
        for tex, tst in _pieces(target):
            part = st.intersect(tst).intersect(window)
            if part is sp.S.EmptySet:
                continue
            if isinstance(part, sp.FiniteSet):
                good = all(sp.simplify(ex.subs(T, p) - tex.subs(T, p)) == 0 for p in part)
            else:
                good = sp.expand(ex - tex) == 0
            if not good:
                ok = False
                bad.append(f"on t∈{part}: integral {sp.factor(ex)} vs {sp.factor(tex)}")
    return ok, bad


def _show(pieces) -> str:
    """Pieces as text; isolated points (where sympy's expression is only valid at the point) by value."""
    return "; ".join(", ".join(f"t={p}: {ex.subs(T, p)}" for p in st) if isinstance(st, sp.FiniteSet)
                     else f"t∈{st}: {sp.factor(ex)}" for ex, st in pieces)


def _in_t(formula: Callable, eps):
    """A formula f(ε, α) as an expression in t = α/ε at the given ε."""
    return sp.sympify(formula(eps, eps * T))


def _lemma_integral(formula: Callable, sign: str) -> tuple[bool, str]:
    msgs, ok = [], True
    for eps in _EPS_VALUES:
        good, bad = _compare(moment_pieces(eps, 2, sign), _in_t(formula, eps), 0, 2)
        ok &= good
        msgs += [f"ε={eps}: {m}" for m in bad]
    pieces = moment_pieces(sp.Integer(1), 2, sign)
    return ok, ("integral/ε² = " + _show(pieces) if ok else "; ".join(msgs))


@check("fgsm.lemma1_integral_sign_plus", "Lemma 1 (proof, sign(∇ᵢ)=+1)")
def lemma1_integral_plus(formula: Callable = lemma1_coord_formula) -> tuple[bool, str]:
    """(1/2ε)∫ min(ε², (η+α)²) dη = ``formula(ε, α)`` for every α ∈ [0, 2ε]."""
    return _lemma_integral(formula, "+")


@check("fgsm.lemma1_integral_sign_minus", "Lemma 1 (proof, sign(∇ᵢ)=−1)")
def lemma1_integral_minus(formula: Callable = lemma1_coord_formula) -> tuple[bool, str]:
    """(1/2ε)∫ min(ε², (η−α)²) dη = ``formula(ε, α)`` for every α ∈ [0, 2ε]."""
    return _lemma_integral(formula, "-")


@check("fgsm.lemma1_bound_range", "eq. 2.4 (range of the bound)")
def lemma1_bound_range(formula: Callable = lemma1_coord_formula) -> tuple[bool, str]:
    """On α ∈ [0, 2ε] the bound √d·√formula increases monotonically from ε√(d/3) to ε√d = ‖δ_FGSM‖₂.

    With ε a positive symbol: formula(ε, tε)/ε² must be ε-free (homogeneous), equal 1/3 at t = 0 and
    1 at t = 2, and have no t ∈ [0, 2] where its derivative is negative."""
    e = sp.Symbol("epsilon", positive=True)
    g = sp.simplify(sp.sympify(formula(e, e * T)) / e**2)
    if e in g.free_symbols:
        return False, f"formula(ε, tε)/ε² = {g} depends on ε (not homogeneous of degree 2)"
    g0, g2 = sp.simplify(g.subs(T, 0)), sp.simplify(g.subs(T, 2))
    dg = sp.factor(sp.diff(g, T))
    decreasing = sp.solveset(dg < 0, T, sp.Interval(0, 2))
    ok = g0 == sp.Rational(1, 3) and g2 == 1 and decreasing is sp.S.EmptySet
    return ok, (f"E[δᵢ²]/ε² = {sp.factor(g)}: {g0} at α=0, {g2} at α=2ε, d/dt = {dg} "
                f"(negative on {decreasing}); bound ∈ [ε√(d/3), ε√d]")


def _beyond(formula: Callable) -> tuple[bool, str]:
    ok, msgs = True, []
    for eps in _EPS_VALUES:
        for sign in "+-":
            good, bad = _compare(moment_pieces(eps, 2, sign), _in_t(formula, eps), 2, sp.oo)
            ok &= good
            msgs += [f"ε={eps}, s={sign}1: {m}" for m in bad]
    deficit = sp.factor(sp.expand(_in_t(lemma1_coord_formula, sp.Integer(1)) - 1))
    return ok, (f"E[δᵢ²] = ε² for α ≥ 2ε; the printed cubic minus ε² is ({deficit})·ε² with t = α/ε, "
                "< 0 for α > 2ε" if ok else "; ".join(msgs))


@check("fgsm.sq_norm_beyond_2eps", "Lemma 1 (α ≤ 2ε)")
def sq_norm_beyond_2eps(formula: Callable = lambda eps, alpha: eps**2) -> tuple[bool, str]:
    """For α ≥ 2ε every coordinate is clipped: E[δᵢ²] = ``formula`` = ε² (both signs). The printed
    cubic is not (it is below ε² by (α−2ε)²(α+ε)/(6ε)): see ERRATA.md."""
    return _beyond(formula)


def _outward_formula(eps, alpha):
    return sp.Piecewise((eps**2 / 3 + alpha * eps - alpha**3 / (3 * eps), alpha <= eps), (eps**2, True))


@check("fgsm.lemma1_dependent_sign", "Lemma 1 (proof, law of total expectation)")
def lemma1_dependent_sign(formula: Callable = _outward_formula) -> tuple[bool, str]:
    """If the sign depends on η, eq. 2.4 can fail: for s = sign(η) (the gradient sign of ½‖x'−x‖² at
    x' = x+η), E[δᵢ²] = ``formula`` = ε²/3 + αε − α³/(3ε) (α ≤ ε), ε² (α ≥ ε), which is strictly
    larger than the cubic of eq. 2.4 for every α ∈ (0, 2ε)."""
    pieces = moment_pieces(sp.Integer(1), 2, "outward")
    ok, bad = _compare(pieces, _in_t(formula, sp.Integer(1)), 0, sp.oo)
    gap = sp.piecewise_fold(_in_t(formula, sp.Integer(1)) - _in_t(lemma1_coord_formula, sp.Integer(1)))
    not_above = sp.S.EmptySet
    for ex, st in _pieces(gap):
        part = st.intersect(sp.Interval.open(0, 2))
        if part is not sp.S.EmptySet:
            not_above = not_above.union(sp.solveset(ex <= 0, T, part))
    ok = ok and not_above is sp.S.EmptySet
    if not ok:
        return False, "; ".join(bad) or f"formula − cubic ≤ 0 on t ∈ {not_above}"
    return True, ("s=sign(η): E[δᵢ²]/ε² = " + _show(pieces)
                  + " > cubic on (0, 2ε): the lemma needs s independent of η")


_NUMERIC = {"coord_sq_moment": coord_sq_moment, "coord_fourth_moment": coord_fourth_moment,
            "coord_abs_moment": coord_abs_moment, "outward_coord_sq_moment": outward_coord_sq_moment}
_NUMERIC_SPEC = {"coord_sq_moment": (2, "+"), "coord_fourth_moment": (4, "+"),
                 "coord_abs_moment": (1, "+"), "outward_coord_sq_moment": (2, "outward")}


def _value(pieces, t) -> float:
    for ex, st in pieces:
        if st.contains(t) is sp.true:
            return float(ex.subs(T, t))
    raise ValueError(f"t={t} not covered")


@check("fgsm.closed_forms_numeric", "Lemma 1, eq. 2.4 (toymodels.fgsm.lemma1)")
def closed_forms_numeric(fns: dict | None = None) -> tuple[bool, str]:
    """The package's numeric closed forms (E[δᵢ²] piecewise for all α ≥ 0, E[δᵢ⁴], E|δᵢ|, and the
    dependent-sign E[δᵢ²]) equal the sympy integrals at ε = 1 and 8/255 on a grid t ∈ [0, 4]
    (relative error ≤ 1e-13)."""
    fns = dict(_NUMERIC if fns is None else fns)
    ts = [sp.Rational(k, 8) for k in range(0, 33)]
    worst, bad = 0.0, []
    for name, fn in fns.items():
        power, sign = _NUMERIC_SPEC[name]
        for eps in _EPS_VALUES:
            pieces = moment_pieces(sp.Integer(1), power, sign)
            want = np.array([_value(pieces, t) for t in ts]) * float(eps) ** power
            got = np.asarray(fn(float(eps), np.array([float(eps * t) for t in ts])), dtype=float)
            rel = float(np.max(np.abs(got - want) / np.abs(want)))
            worst = max(worst, rel)
            if not rel <= 1e-13:
                bad.append(f"{name} at ε={eps}: max relative error {rel:.2e}")
    return not bad, ("; ".join(bad) if bad else f"{len(fns)} functions, 33 α values × 2 ε: max relative "
                     f"error {worst:.1e}")


@check("fgsm.equivalent_step_7_255", "Sec. 2.4 / Table 2.1 (α = 7/255)")
def equivalent_step(formula: Callable = lemma1_coord_formula) -> tuple[bool, str]:
    """At ε = 8/255, α = 1.25ε the FGSM step with the same ℓ₂ norm, ε' = √formula(ε, α), is
    8√(101/128)/255 ≈ 7.106/255: "≈ 7/255" as printed (nearest integer multiple of 1/255 is 7), and
    the package's :func:`fgsm_equivalent_eps` agrees."""
    eps = sp.Rational(8, 255)
    t = sp.Rational(5, 4)
    integral = next(ex.subs(T, t) for ex, st in moment_pieces(eps, 2, "+") if st.contains(t) is sp.true)
    in_255 = sp.sqrt(sp.nsimplify(integral)) * 255
    claimed = sp.sqrt(sp.nsimplify(formula(eps, t * eps))) * 255
    pkg = fgsm_equivalent_eps(8 / 255, 1.25 * 8 / 255) * 255
    ok = (sp.simplify(claimed - in_255) == 0 and round(float(in_255)) == 7
          and abs(pkg - float(in_255)) < 1e-12)
    return ok, (f"ε' = {sp.nsimplify(in_255)}/255 = {float(in_255):.4f}/255 from the integral; formula: "
                f"{float(claimed):.4f}/255; package: {pkg:.4f}/255")
