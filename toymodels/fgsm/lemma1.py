"""Closed forms for the norm of the FGSM-RS perturbation (thesis Ch. 2, Lemma 1, eq. 2.4).

Setting (eq. 2.3, ignoring the projection onto the image domain [0, 1]^d as the thesis does):

    δ = Π_{[−ε,ε]^d}[η + α s],    η ~ U([−ε, ε]^d),  s ∈ {−1, +1}^d independent of η,

so coordinate-wise δᵢ = clip(ηᵢ + α sᵢ, −ε, ε), and the δᵢ are independent.

Why the sign does not matter (when it is independent of η): ηᵢ and −ηᵢ have the same law, and
clip(−ηᵢ − α, −ε, ε) = −clip(ηᵢ + α, −ε, ε); hence δᵢ² has the same law for sᵢ = −1 as for
sᵢ = +1. Conditioning on any independent (fixed or random) s therefore leaves the law of every δᵢ²,
and by independence of the coordinates the law of ‖δ‖₂² = Σᵢ δᵢ², unchanged.

With t = α/ε (the change of variables ηᵢ = εu makes every moment homogeneous: E[δᵢ^k] = ε^k · g_k(t)):

    E[δᵢ²] = −α³/(6ε) + α²/2 + ε²/3          for 0 ≤ α ≤ 2ε   (the cubic of eq. 2.4)
           = ε²                               for α ≥ 2ε       (every coordinate is clipped to ±ε)

so E‖δ‖₂² = d · E[δᵢ²] and, by Jensen, E‖δ‖₂ ≤ √(E‖δ‖₂²) (the bound of Lemma 1). The printed cubic
is exact on [0, 2ε] but wrong beyond: cubic − ε² = −(α − 2ε)²(α + ε)/(6ε) < 0 for α > 2ε, and the
cubic even becomes negative for large α (see ERRATA.md). All the formulas here are checked against
sympy integrals in :mod:`proofs_check.fgsm`.

If the sign *depends* on η (as it does in real FGSM-RS, where s = sign ∇ℓ(x + η)), the lemma's
equality can fail; :func:`outward_coord_sq_moment` is the exact value for sᵢ = sign(ηᵢ), the gradient
sign of ℓ(x') = ½‖x' − x‖² at x' = x + η.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, check_int, check_range

__all__ = [
    "lemma1_coord_formula", "lemma1_formula", "coord_sq_moment", "sq_norm_exact", "bound_norm",
    "coord_fourth_moment", "sq_norm_variance", "coord_abs_moment", "outward_coord_sq_moment",
    "sq_norm_outward", "fgsm_equivalent_eps", "EPS_RANGE",
]

#: the range of ε and α accepted here: ε⁴ (in the fourth moment) stays a normal float, α³/ε is finite
EPS_RANGE = (1e-70, 1e70)


def _check(eps, alpha):
    eps = check_range("eps", eps, *EPS_RANGE)
    a = np.asarray(alpha, dtype=np.float64)
    bad = a[~(np.isfinite(a) & (a >= 0) & (a <= EPS_RANGE[1]))]
    if bad.size:
        raise ConfigError("alpha", f"must be a number in [0, {EPS_RANGE[1]:g}]", float(bad.flat[0]))
    return eps, a


def _out(x):
    return float(x) if np.ndim(x) == 0 else x


def lemma1_coord_formula(eps, alpha):
    """The printed cubic of eq. (2.4), per coordinate: −α³/(6ε) + α²/2 + ε²/3 (no range check).

    Works on floats, numpy arrays and sympy expressions alike (used by :mod:`proofs_check.fgsm`)."""
    return -alpha**3 / (6 * eps) + alpha**2 / 2 + eps**2 / 3


def lemma1_formula(d, eps, alpha):
    """E‖δ_FGSM-RS‖₂² as printed in eq. (2.4): d · (−α³/(6ε) + α²/2 + ε²/3), for any α ≥ 0.

    Exact only for α ∈ [0, 2ε] (Lemma 1's hypothesis); for α > 2ε it undershoots the true value dε²
    (see :func:`sq_norm_exact`)."""
    check_int("d", d, 1)
    eps, a = _check(eps, alpha)
    return _out(d * lemma1_coord_formula(eps, a))


def coord_sq_moment(eps, alpha):
    """E[δᵢ²] for δᵢ = clip(ηᵢ + α sᵢ, −ε, ε), ηᵢ ~ U[−ε, ε], sᵢ = ±1 independent of ηᵢ; any α ≥ 0.

    Piecewise: −α³/(6ε) + α²/2 + ε²/3 on [0, 2ε], ε² for α ≥ 2ε (continuous, C¹ at 2ε)."""
    eps, a = _check(eps, alpha)
    inside = lemma1_coord_formula(eps, np.minimum(a, 2 * eps))
    return _out(np.where(a >= 2 * eps, eps * eps, inside))


def sq_norm_exact(d, eps, alpha):
    """E_η‖δ_FGSM-RS‖₂² = d · E[δᵢ²] (sign independent of η), valid for every α ≥ 0.

    Parameters
    ----------
    d : int
        Input dimension (≥ 1).
    eps : float
        ℓ∞ radius ε > 0.
    alpha : float or array
        FGSM-RS step size α ≥ 0.
    """
    check_int("d", d, 1)
    return _out(d * np.asarray(coord_sq_moment(eps, alpha)))


def bound_norm(d, eps, alpha):
    """Lemma 1's upper bound √(E‖δ‖₂²) ≥ E‖δ‖₂ (Jensen), valid for every α ≥ 0.

    On [0, 2ε] it increases from ε√(d/3) to ε√d; for α ≥ 2ε it equals ‖δ_FGSM‖₂ = ε√d."""
    return _out(np.sqrt(np.asarray(sq_norm_exact(d, eps, alpha))))


def coord_fourth_moment(eps, alpha):
    """E[δᵢ⁴] (sign independent of η): ε⁴(−t⁵/10 + t⁴/2 − t³ + t² + 1/5) with t = α/ε ≤ 2, ε⁴ beyond.

    Gives the exact standard error of the Monte-Carlo estimate of E‖δ‖² (see :func:`sq_norm_variance`)."""
    eps, a = _check(eps, alpha)
    t = np.minimum(a / eps, 2.0)
    g = -t**5 / 10 + t**4 / 2 - t**3 + t**2 + 0.2
    return _out(eps**4 * np.where(a >= 2 * eps, 1.0, g))


def sq_norm_variance(d, eps, alpha):
    """Var ‖δ‖₂² = d · (E[δᵢ⁴] − E[δᵢ²]²) (independent coordinates)."""
    check_int("d", d, 1)
    m2 = np.asarray(coord_sq_moment(eps, alpha))
    m4 = np.asarray(coord_fourth_moment(eps, alpha))
    return _out(d * (m4 - m2 * m2))


def coord_abs_moment(eps, alpha):
    """E|δᵢ| (sign independent of η), t = α/ε: ε(1/2 + t²/4) for t ≤ 1, ε(t − t²/4) for 1 ≤ t ≤ 2,
    ε for t ≥ 2. For d = 1 this is E‖δ‖₂ itself (an oracle for the Monte-Carlo E‖δ‖)."""
    eps, a = _check(eps, alpha)
    t = np.minimum(a / eps, 2.0)
    return _out(eps * np.where(t <= 1, 0.5 + t * t / 4, t - t * t / 4))


def outward_coord_sq_moment(eps, alpha):
    """E[δᵢ²] when the sign depends on η as sᵢ = sign(ηᵢ) (e.g. ∇ of ½‖x' − x‖² at x' = x + η):
    ε²/3 + αε − α³/(3ε) for α ≤ ε, ε² for α ≥ ε. Strictly above the cubic of eq. 2.4 on (0, 2ε):
    Lemma 1's equality needs the sign to be independent of η."""
    eps, a = _check(eps, alpha)
    t = np.minimum(a / eps, 1.0)
    return _out(eps * eps * (1.0 / 3 + t - t**3 / 3))


def sq_norm_outward(d, eps, alpha):
    """d · :func:`outward_coord_sq_moment` (the dependent-sign counterexample to eq. 2.4)."""
    check_int("d", d, 1)
    return _out(d * np.asarray(outward_coord_sq_moment(eps, alpha)))


def fgsm_equivalent_eps(eps, alpha):
    """The plain-FGSM step ε' whose perturbation ε'·sign(∇) has the ℓ₂ norm √(E‖δ_FGSM-RS‖₂²):
    ε'√d = √(d E[δᵢ²]), i.e. ε' = √(E[δᵢ²]) (independent of d).

    For ε = 8/255 and α = 1.25ε (Wong et al.'s recommendation): ε' = ε√(101/128) ≈ 7.106/255,
    the "7/255" of Table 2.1."""
    return _out(np.sqrt(np.asarray(coord_sq_moment(eps, alpha))))
