"""Closed forms for the 1D quadratic parameterization (thesis Ch. 6, eq. 6.5, Prop. 6.3.2 / 6.7.1,
Lemmas 9–14; thesis.txt l.3053–3130, proofs l.3285–3510).

Model: y = xθ*², x ~ ρ̂ with supp ρ̂ ⊂ [x_min, x_max], x_min > 0. Loss (thesis' normalization):

    F(θ) = ¼ E_ρ̂ (y − xθ²)² = (m₂/4)(θ*² − θ²)²,   m₂ = E_ρ̂[x²].

Rescaling u = θ/θ* turns SGD into u⁺ = h_γ(u) = u + γu(1 − u²) with γ = ηθ*²x² (eq. 6.26).
"""
from __future__ import annotations

import math

import numpy as np

#: the thesis' constants (Prop. 6.7.1, Lemmas 9–14), in units of θ*
C_UPPER = 1.162        # Lemma 9: θ_t < 1.162 θ*
C_LOW = 0.65           # Lemma 10: lower edge of the low band I₁
C_GAMMA_MAX = 1.25     # Γ ⊆ (1, 1.25)
C_DELTA2 = 0.17        # eq. 6.22: F < 0.17 θ*²
EPS_CAP = 0.02         # ε_o = min{(γ_min − 1)/3, 0.02}
#: sharp Lemma 9 constant: max_{θ∈(0,1]} h_{1.25}(θ) = 2(1+γ)^{3/2}/(3√(3γ)) at γ = 1.25 = 3√15/10
SHARP_UPPER = 3 * math.sqrt(15) / 10


def h(gamma, u):
    """h_γ(u) = u + γu(1 − u²) (eq. 6.26)."""
    return u + gamma * u * (1 - u * u)


def m2_uniform(a: float, b: float) -> float:
    """E[x²] for x ~ U[a, b]."""
    return (a * a + a * b + b * b) / 3.0


def m2_of(a: float, b: float, points=None) -> float:
    """E_ρ̂[x²]: ρ̂ = U[a, b], or uniform on ``points`` when given."""
    if points is not None and len(points) > 0:
        p = np.asarray(points, dtype=float)
        return float(np.mean(p * p))
    return m2_uniform(a, b)


def loss(theta, theta_star: float, m2: float):
    """F(θ) = (m₂/4)(θ*² − θ²)²."""
    d = theta_star ** 2 - np.asarray(theta) ** 2
    return m2 / 4.0 * d * d


def eta_interval(x_min: float, x_max: float, theta_star: float) -> tuple[float, float]:
    """Prop. 6.7.1's step-size interval ((θ*x_min)⁻², 1.25(θ*x_max)⁻²); empty unless
    x_max/x_min < √1.25."""
    return (theta_star * x_min) ** -2, C_GAMMA_MAX * (theta_star * x_max) ** -2


def gamma_range(eta: float, x_min: float, x_max: float, theta_star: float) -> tuple[float, float]:
    """[γ_min, γ_max] = ηθ*²[x_min², x_max²] (the support Γ of γ is inside it)."""
    return eta * theta_star ** 2 * x_min ** 2, eta * theta_star ** 2 * x_max ** 2


def eps_o(gamma_min: float) -> float:
    """ε_o = min{(γ_min − 1)/3, 0.02} (Prop. 6.7.1; Lemma 10 prints (γ_min⁻¹)/3, a typo)."""
    return min((gamma_min - 1.0) / 3.0, EPS_CAP)


def thesis_levels(theta_star: float, eps: float) -> tuple[float, float]:
    """(δ₁, δ₂) = (ε_o²θ*², 0.17θ*²) as printed in eq. 6.22."""
    return eps * eps * theta_star ** 2, C_DELTA2 * theta_star ** 2


def bands(theta_star: float, eps: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Prop. 6.7.1's bouncing bands (0.65θ*, (1−ε_o)θ*) and ((1+ε_o)θ*, 1.162θ*)."""
    return (C_LOW * theta_star, (1 - eps) * theta_star), ((1 + eps) * theta_star, C_UPPER * theta_star)


def corrected_levels(theta_star: float, m2: float, eps: float) -> tuple[float, float]:
    """Loss range implied by the bands (the corrected eq. 6.22, valid once bouncing in the bands):

    F ∈ ((m₂θ*⁴/4)(2ε_o − ε_o²)², (m₂θ*⁴/4)(1 − 0.65²)²)

    (on the bands (1 − u²)² is smallest at u = 1 − ε_o and largest at u = 0.65, since
    (1.162² − 1)² < (1 − 0.65²)²). Scales as m₂θ*⁴ = E[γ]θ*²/η, not as θ*²."""
    c = m2 * theta_star ** 4 / 4.0
    return c * (2 * eps - eps * eps) ** 2, c * (1 - C_LOW ** 2) ** 2


def all_time_upper(theta_star: float, m2: float) -> float:
    """sup over t > 0 and θ₀ ∈ (0, θ*) of F(θ_t) = m₂θ*⁴/4 (approached as θ₀ → 0, since
    θ_t ∈ (0, 1.162θ*) gives (1 − u²)² < 1)."""
    return m2 * theta_star ** 4 / 4.0


def gd_stability_threshold(hessian) -> float:
    """2/λ_max for GD on a quadratic with Hessian ``hessian`` (symmetric PSD)."""
    lam = float(np.max(np.linalg.eigvalsh(np.asarray(hessian, dtype=float))))
    return 2.0 / lam


def inverse_h_of_one(gamma: float) -> float:
    """The θ₀ ∈ (0, 1) with h_γ(θ₀) = 1 exactly in real arithmetic: the root of
    γu³ − (1+γ)u + 1 = 0 other than u = 1, i.e. γu² + γu − 1 = 0 ⇒ u = (−γ + √(γ² + 4γ))/(2γ)."""
    return (-gamma + math.sqrt(gamma * gamma + 4 * gamma)) / (2 * gamma)
