"""Checks for "SGD is GD with label noise" (thesis Prop. 6.3.1, thesis.txt lines 3052-3060 and proof
3241-3284).

Setting: residuals rᵢ = h_θ(xᵢ) − yᵢ (symbols), gradients gᵢ = ∇_θ h_θ(xᵢ) (symbol vectors in R²),
uniform batch index i_t; ξᵢ = rᵢ(1 − n 1_{i=i_t}) (eq. 6.3). Expectations are exact finite sums over
the n (or n^B) equally likely batches. Constants that depend on n are checked at n ∈ {2, 3, 4}.
"""
from __future__ import annotations

import itertools
from typing import Callable

import sympy as sp

from . import check

__all__: list[str] = []

_NS = (2, 3, 4)


def _xi_thesis(r, ind, n):
    """Eq. (6.3): ξᵢ = rᵢ (1 − n·1_{i=i_t})."""
    return r * (1 - n * ind)


def _syms(n):
    r = sp.symbols(f"r0:{n}", real=True)
    g = [sp.Matrix(sp.symbols(f"g{i}_0:2", real=True)) for i in range(n)]
    return r, g


@check("sde.prop631_identity", "Prop. 6.3.1, eq. 6.4 (SGD step = GD step with labels y + ξ)")
def prop631_identity(xi: Callable = _xi_thesis) -> tuple[bool, str]:
    """(1/n) Σᵢ (rᵢ − ξᵢ) gᵢ = r_j g_j for every batch index j (the η and loss constant cancel)."""
    for n in _NS:
        r, g = _syms(n)
        for j in range(n):
            lhs = sum(((r[i] - xi(r[i], int(i == j), n)) * g[i] for i in range(n)), sp.zeros(2, 1)) / n
            diff = sp.expand(lhs - r[j] * g[j])
            if diff != sp.zeros(2, 1):
                return False, f"n={n}, i_t={j}: GD-with-label-noise minus SGD direction = {list(diff)}"
    return True, f"identity exact for n in {_NS}, every i_t"


@check("sde.prop631_mean", "Prop. 6.3.1 (E ξ_t = 0), eq. 6.15")
def prop631_mean(formula: Callable = lambda r, n: 0) -> tuple[bool, str]:
    """E[ξᵢ] over i_t ~ U{1..n} equals ``formula(rᵢ, n)`` (= 0)."""
    for n in _NS:
        r, _ = _syms(n)
        for i in range(n):
            mean = sp.Rational(1, n) * sum(_xi_thesis(r[i], int(i == j), n) for j in range(n))
            if sp.expand(mean - formula(r[i], n)) != 0:
                return False, f"n={n}: E ξ_{i} = {sp.factor(mean)}, formula gives {formula(r[i], n)}"
    return True, "E ξ = 0 exactly"


def _second_moment_check(formula, kappa):
    for n in _NS:
        r, _ = _syms(n)
        L = sp.Rational(1, n) * kappa * sum(ri**2 for ri in r)          # L = (1/n) Σ κ rᵢ²
        m2 = sp.Rational(1, n) * sum(sum(_xi_thesis(r[i], int(i == j), n) ** 2 for i in range(n))
                                     for j in range(n))
        if sp.expand(m2 - formula(n, L)) != 0:
            return False, (f"n={n}, κ={kappa}: E‖ξ‖² = {sp.factor(m2)} = {sp.factor(m2 / L)}·L, "
                           f"formula gives {sp.factor(formula(n, L) / L)}·L")
    return True, f"E‖ξ‖² = formula exactly for n in {_NS}"


@check("sde.prop631_second_moment", "Prop. 6.3.1, eq. 6.20 (L = 1/(2n) Σ r², eq. 6.1)")
def prop631_second_moment(formula: Callable = lambda n, L: 2 * n * (n - 1) * L) -> tuple[bool, str]:
    """E‖ξ‖² = ``formula(n, L)`` = 2n(n−1)L in the thesis' normalization (κ = ½)."""
    return _second_moment_check(formula, sp.Rational(1, 2))


@check("sde.prop631_second_moment_quarter", "Prop. 6.3.1 in the DLN's ¼-normalization (eq. 5.5)")
def prop631_second_moment_quarter(formula: Callable = lambda n, L: 4 * n * (n - 1) * L) -> tuple[bool, str]:
    """With L = 1/(4n) Σ r² (this project's DLN), E‖ξ‖² = ``formula(n, L)`` = 4n(n−1)L, not the
    printed 2n(n−1)L (the constant is normalization-dependent; see ERRATA.md)."""
    return _second_moment_check(formula, sp.Rational(1, 4))


def _batch_moment(n, B, replacement):
    r, _ = _syms(n)
    batches = (list(itertools.product(range(n), repeat=B)) if replacement
               else list(itertools.permutations(range(n), B)))
    tot = 0
    for b in batches:
        tot += sum((r[i] * (1 - sp.Rational(n, B) * b.count(i))) ** 2 for i in range(n))
    mean = [sp.expand(sum(r[i] * (1 - sp.Rational(n, B) * b.count(i)) for b in batches) / len(batches))
            for i in range(n)]
    return sp.expand(tot / len(batches)), mean, sum(ri**2 for ri in r)


@check("sde.batch_second_moment", "Prop. 6.3.1 generalized to batches of size B (toymodels.sde.label_noise)")
def batch_second_moment(formula: Callable = lambda n, B, repl: sp.Rational(n - 1, B) if repl
                        else sp.Rational(n - B, B)) -> tuple[bool, str]:
    """ξᵢ = rᵢ(1 − (n/B)cᵢ): E ξ = 0 and E‖ξ‖² = ``formula(n, B, replacement)``·‖r‖², i.e. (n−1)/B with
    replacement and (n−B)/B without, enumerating all batches for (n, B) ∈ {(3,2), (4,2), (4,3)}."""
    for n, B in ((3, 2), (4, 2), (4, 3)):
        for repl in (True, False):
            m2, mean, rr = _batch_moment(n, B, repl)
            if any(m != 0 for m in mean):
                return False, f"n={n}, B={B}, replacement={repl}: E ξ = {mean}"
            if sp.expand(m2 - formula(n, B, repl) * rr) != 0:
                return False, (f"n={n}, B={B}, replacement={repl}: E‖ξ‖² = {sp.factor(m2)}, formula gives "
                               f"{formula(n, B, repl)}·‖r‖²")
    return True, "E ξ = 0; E‖ξ‖² = (n−1)/B‖r‖² (with), (n−B)/B‖r‖² (without replacement)"
