"""Checks for the Square Attack chapter (thesis Ch. 3).

* Prop. 3.5.2 (l.1104–1109): eq. (3.4) against the exhaustive maximum over all pixel sets of area k
  (:func:`toymodels.square.theory.n_star_bruteforce`, independent of the formula), and sympy's
  exact identity for square areas k = l², where (3.4) must reduce to (l − s + 1)².
* Prop. 3.4.1 (l.1223–1239): after Alg. 3's mass-moving step the perturbation has squared norm
  Σᵢ (ε_avail^i)² + ‖ν_rest‖² with (ε_avail^i)² = ‖ν^old_{W₁∪W₂,i}‖² + ε²_unused/c and
  ε²_unused = ε² − ‖ν^old‖²; sympy verifies this equals ε² identically in all the block norms.
"""
from __future__ import annotations

import sympy as sp

from toymodels.square.theory import n_star_bruteforce, n_star_formula

from . import check

__all__: list[str] = []


@check("square_prop352_bruteforce", "Prop. 3.5.2, eq. 3.4 (thesis l.1104)")
def prop352_bruteforce(formula=n_star_formula, k_max: int = 12, sides=(1, 2, 3)):
    """eq. (3.4) equals the exhaustive maximum for every s in ``sides`` and s² ≤ k ≤ k_max."""
    bad = [(k, s, formula(k, s), n_star_bruteforce(k, s))
           for s in sides for k in range(s * s, k_max + 1) if formula(k, s) != n_star_bruteforce(k, s)]
    n = sum(max(0, k_max - s * s + 1) for s in sides)
    return not bad, (f"{n} (k, s) pairs agree" if not bad else f"mismatch (k, s, formula, brute): {bad[:3]}")


@check("square_prop352_square_area", "Prop. 3.5.2 (thesis l.1110: k = l² gives the l×l square)")
def prop352_square_area(formula=n_star_formula, l_max: int = 40, s_max: int = 6):
    """For k = l² the formula must give (l − s + 1)² (the l×l square holds that many, and the
    brute-force check covers optimality for small k); checked exactly over a grid of (l, s)."""
    L, S = sp.symbols("l s", positive=True, integer=True)
    target = (L - S + 1) ** 2
    bad = [(l, s) for s in range(1, s_max + 1) for l in range(s, l_max + 1)
           if sp.Integer(formula(l * l, s)) != target.subs({L: l, S: s})]
    return not bad, "ok" if not bad else f"fails at (l, s) = {bad[:3]}"


def _avail_sq(old_block_sq, unused_sq, c):
    """(ε_avail^i)² of Alg. 3 step 8."""
    return old_block_sq + unused_sq / c


@check("square_prop341_sphere", "Prop. 3.4.1 (thesis l.1041, proof l.1223)")
def prop341_sphere(avail_sq=_avail_sq, c: int = 3):
    """‖ν_new‖² − ε² ≡ 0 symbolically, for c channels with arbitrary block norms."""
    eps = sp.Symbol("epsilon", positive=True)
    A = sp.symbols(f"A0:{c}", nonnegative=True)    # ‖ν^old_{W1∪W2, i}‖²
    R = sp.symbols(f"R0:{c}", nonnegative=True)    # ‖ν^old outside W1∪W2, i‖² (unchanged)
    unused = eps ** 2 - (sum(A) + sum(R))
    new = sum(avail_sq(a, unused, c) for a in A) + sum(R)
    diff = sp.simplify(sp.expand(new - eps ** 2))
    return diff == 0, f"‖ν_new‖² − ε² = {diff}"
