"""Prop. 3.5.2 (thesis l.1104–1109, proof l.1361–1375): how many s×s squares a shape of area k holds.

Setting. 𝓕 is the family of finite unions of unit cells of ℤ² (unions of axis-aligned rectangles with
integer vertices — *not* necessarily connected), 𝓖 ⊂ 𝓕 the s×s squares. For S ∈ 𝓕 let
N(S) = #{u ∈ ℤ² : u + {0..s−1}² ⊂ S}. The proposition claims

    max_{S ∈ 𝓕, |S| = k} N(S) = N* = (a − s + 1)(b − s + 1) + (r − s + 1)⁺,
    a = ⌊√k⌋, b = ⌊k/a⌋, r = k − ab                                          (3.4)

for k ≥ s².

Exhaustive method (:func:`n_star_bruteforce`). N(S) = |P(S)| where P(S) is the set of contained
window positions, and the union U(P) of those windows lies in S. Conversely any position set P
gives the shape U(P) (padded with far-away cells to area k, which never removes a window) with
N ≥ |P|. Hence, exactly,

    max_{|S| = k} N(S) = max {|P| : P ⊂ ℤ² finite, |U(P)| ≤ k}.

Split P into the components of the relation "windows overlap" (‖u − v‖∞ ≤ s − 1): the unions of
different components are disjoint, so |U(P)| and |P| are additive over components, and

    max = max over partitions k₁ + … + k_m ≤ k of Σ g(kⱼ),
    g(j) = max {|P| : P overlap-connected, |U(P)| ≤ j}.

g is computed by enumerating overlap-connected position sets up to translation with Redelmeier's
algorithm on the graph ℤ² with neighbours ‖·‖∞ ≤ s − 1, pruned as soon as |U(P)| > k (U only grows
as P grows, so pruning loses nothing). Every overlap-connected P with |U(P)| ≤ k is visited exactly
once (fixed "polyplets" of the window graph), so the search is exhaustive over arbitrary pixel sets,
connected or not.
"""
from __future__ import annotations

import math

from ..errors import check_int

__all__ = ["n_star_formula", "n_star_bruteforce", "windows_in", "connected_window_maxima"]


def n_star_formula(k: int, s: int) -> int:
    """N* of eq. (3.4): (a − s + 1)(b − s + 1) + (r − s + 1)⁺ with a = ⌊√k⌋, b = ⌊k/a⌋, r = k − ab.

    Defined for k ≥ s² ≥ 1 (raises :class:`~toymodels.errors.ConfigError` otherwise)."""
    s = check_int("s", s, 1)
    k = check_int("k", k, s * s)
    a = math.isqrt(k)
    b = k // a
    r = k - a * b
    return (a - s + 1) * (b - s + 1) + max(r - s + 1, 0)


def windows_in(cells, s: int) -> int:
    """N(S): the number of s×s windows u + {0..s−1}² contained in the cell set ``cells``."""
    cells = set(map(tuple, cells))
    return sum(all((u + i, v + j) in cells for i in range(s) for j in range(s)) for (u, v) in cells)


def connected_window_maxima(k: int, s: int) -> list[int]:
    """g(j) for j = 0..k: the most windows of an overlap-connected position set with |U(P)| ≤ j
    (g(j) = 0 for j < s²). Redelmeier enumeration, pruned at |U(P)| > k."""
    s = check_int("s", s, 1)
    k = check_int("k", k, 0)
    best = [0] * (k + 1)
    if k < s * s:
        return best
    offs = [(i, j) for i in range(-(s - 1), s) for j in range(-(s - 1), s) if (i, j) != (0, 0)]
    square = [(i, j) for i in range(s) for j in range(s)]

    def canonical(c):  # cells after the origin in (row, col) order: the origin is P's first cell
        return c[0] > 0 or (c[0] == 0 and c[1] >= 0)

    # cover[cell] = how many windows of P cover it; |U| = len(cover)
    cover: dict = {}

    def add(p):
        for d in square:
            c = (p[0] + d[0], p[1] + d[1])
            cover[c] = cover.get(c, 0) + 1

    def remove(p):
        for d in square:
            c = (p[0] + d[0], p[1] + d[1])
            n = cover[c] - 1
            if n:
                cover[c] = n
            else:
                del cover[c]

    def rec(size, untried, seen):
        untried = list(untried)
        while untried:
            p = untried.pop()
            add(p)
            area = len(cover)
            if area <= k:
                n = size + 1
                if best[area] < n:
                    best[area] = n
                new = [q for q in ((p[0] + o[0], p[1] + o[1]) for o in offs) if canonical(q) and q not in seen]
                rec(n, untried + new, seen | set(new))
            remove(p)

    rec(0, [(0, 0)], {(0, 0)})
    for j in range(1, k + 1):  # |U(P)| ≤ j: monotone envelope
        best[j] = max(best[j], best[j - 1])
    return best


def n_star_bruteforce(k: int, s: int) -> int:
    """max_{S ∈ 𝓕, |S| = k} N(S) by exhaustive search (see the module docstring): a knapsack over
    overlap-connected components, each maximised by :func:`connected_window_maxima`."""
    s = check_int("s", s, 1)
    k = check_int("k", k, 0)
    g = connected_window_maxima(k, s)
    tot = [0] * (k + 1)
    for j in range(1, k + 1):
        tot[j] = max([tot[j - 1]] + [tot[j - m] + g[m] for m in range(s * s, j + 1)])
    return tot[k]
