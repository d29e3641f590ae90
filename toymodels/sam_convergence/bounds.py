"""Right-hand sides of the SAM convergence bounds (thesis §5.6.1 l.2325–2369, App. 5.10 l.2572–2908).

Notation: L β-smooth (A2'), μ-PL (A3), σ² gradient-noise variance (A1), batch size b, L_* = inf L,
SAM (5.20) w_{t+1} = w_t − γ∇L(w_t + ρ∇L(w_t)); n-SAM (5.21) uses independent batches for the ascent
and the descent gradient, m-SAM (5.4) the same batch. Each function returns the printed bound unless its
name ends in ``_corrected`` (see ERRATA.md, section "SAM convergence (App. 5.10)").
"""
from __future__ import annotations

import math

__all__ = [
    "lemma3", "lemma4_smooth", "lemma4_convex", "thm5101_avg", "thm5101_pl", "thm5102", "thm5103",
    "thm5104_avg", "thm5104_sc", "lemma5", "lemma6", "thm5105_avg", "thm5105_avg_corrected",
    "thm5105_pl", "thm5105_pl_steps", "thm5105_avg_steps", "lemma7", "lemma8", "thm5106", "thm5106_printed",
    "thm5107", "thm5107_proved",
]


def lemma3(g2, rho, alpha):
    """Lemma 3 (l.2623): ⟨∇L(w + ρ∇L(w)), ∇L(w)⟩ ≥ (1 + αρ)‖∇L(w)‖², α = −β (β-smooth), 0 (convex),
    μ (μ-strongly convex). Returns the lower bound (1 + αρ) g2."""
    return (1 + alpha * rho) * g2


def lemma4_smooth(g2, gamma, rho, beta):
    """Lemma 4, first part (l.2639), γ ≤ 1/β: L(w_t) − L(w_{t+1}) ≥ γ(1−ρβ)(1 − γβ(1−ρβ)/2)‖∇L(w_t)‖².
    Returns the guaranteed decrease."""
    return gamma * (1 - rho * beta) * (1 - gamma * beta * (1 - rho * beta) / 2) * g2


def lemma4_convex(g2, gamma, rho, beta, mu):
    """Lemma 4, second part (l.2643), γβ(2 − ρβ) ≤ 2: guaranteed decrease
    γ(1 − γβ/2 + ρμ(1 − γβ − γρβ²/2))‖∇L(w_t)‖². The proof uses convexity (co-coercivity) and
    μ-strong convexity (Lemma 3 with α = μ); the printed hypothesis "(A3) with potentially μ = 0" is
    not enough (ERRATA)."""
    return gamma * (1 - gamma * beta / 2 + rho * mu * (1 - gamma * beta - gamma * rho * beta ** 2 / 2)) * g2


def thm5101_avg(gap0, gamma, rho, beta, T):
    """Thm 5.10.1 (l.2603), γ, ρ < 1/β: (1/T) Σ_{t<T} ‖∇L(w_t)‖² ≤ 2(L(w_0) − L_*)/(γ(1−ρβ)T)."""
    return 2 * gap0 / (gamma * (1 - rho * beta) * T)


def thm5101_pl(gap0, gamma, rho, beta, mu, T):
    """Thm 5.10.1 (l.2607), PL: L(w_T) − L_* ≤ (1 − γ(1−ρβ)μ/2)^T (L(w_0) − L_*)."""
    return (1 - gamma * (1 - rho * beta) * mu / 2) ** T * gap0


def thm5102(L0, LT, gamma, rho, beta, T):
    """Thm 5.10.2 (l.2673): (1/T) Σ ‖∇L(w_t)‖² ≤ (L(w_0) − L(w_T)) / (Tγ(1−ρβ)[1 − γβ(1−ρβ)/2]).
    Printed with Σ_{t=0}^{T} (T+1 terms); true with Σ_{t=0}^{T−1} as in its proof (ERRATA)."""
    return (L0 - LT) / (T * gamma * (1 - rho * beta) * (1 - gamma * beta * (1 - rho * beta) / 2))


def thm5103(gap0, gamma, rho, beta, mu, t):
    """Thm 5.10.3 (l.2689): L(w_t) − L_* ≤ (1 − 2γμ(1−ρβ)(1 − γβ(1−ρβ)/2))^t (L(w_0) − L_*)."""
    return (1 - 2 * gamma * mu * (1 - rho * beta) * (1 - gamma * beta * (1 - rho * beta) / 2)) ** t * gap0


def thm5104_avg(dist0_sq, gamma, rho, beta, T):
    """Thm 5.10.4 (l.2705), convex, γβ(1+ρβ) < 2: L(w̄_T) − L_* ≤ (2ρβ+1)‖w_0−w_*‖²/(γ(2−γβ(1+ρβ))T),
    w̄_T = (1/T) Σ_{t<T} w_t."""
    return (2 * rho * beta + 1) * dist0_sq / (gamma * (2 - gamma * beta * (1 + rho * beta)) * T)


def thm5104_sc(dist0_sq, gamma, rho, beta, mu, T):
    """Thm 5.10.4 (l.2709), μ-strongly convex: ‖w_T − w_*‖² ≤ (1 − γμ(2 − γβ(1+ρβ)))^T (2ρ+1)‖w_0 − w_*‖²."""
    return (1 - gamma * mu * (2 - gamma * beta * (1 + rho * beta))) ** T * (2 * rho + 1) * dist0_sq


def lemma5(g2, rho, beta, sigma2, b=1):
    """Lemma 5 (l.2767): E⟨∇L_{t+1}(w + ρ∇L_{t+1/2}(w)), ∇L(w)⟩ ≥ (1/2 − βρ)‖∇L(w)‖² − β²ρ²σ²/2.
    (Its proof gives the sharper σ²/b; the printed σ² is returned for b = 1 — pass b to get /b.)"""
    return (0.5 - beta * rho) * g2 - beta ** 2 * rho ** 2 * sigma2 / (2 * b)


def lemma6(L_t, g2, gamma, rho, beta, sigma2, b=1):
    """Lemma 6 (l.2791), γ, ρ ≤ 1/(2β): E L(w_{t+1}) ≤ L(w_t) − γ/4 ‖∇L(w_t)‖² + γβσ²(γ + ρ²β)
    (printed without /b; pass b for the /b version). Returns the upper bound on E L(w_{t+1})."""
    return L_t - gamma / 4 * g2 + gamma * beta * sigma2 * (gamma + rho ** 2 * beta) / b


def thm5105_avg_steps(beta, T):
    """Step sizes of Thm 5.10.5 / 5.6.1, first part: γ = 1/(√T β), ρ = 1/(T^{1/4} β)."""
    return 1 / (math.sqrt(T) * beta), 1 / (T ** 0.25 * beta)


def thm5105_avg(gap0, beta, sigma2, b, T):
    """Thm 5.10.5 as printed (l.2753): (1/T) E Σ_{t<T} ‖∇L(w_t)‖² ≤ 4(L(w_0)−L_*)/(β√T) + 8σ²/(b√T).
    Dimensionally wrong (β in the denominator) — violated for large β (ERRATA)."""
    return 4 * gap0 / (beta * math.sqrt(T)) + 8 * sigma2 / (b * math.sqrt(T))


def thm5105_avg_corrected(gap0, beta, sigma2, b, T):
    """Thm 5.6.1 (l.2335) = corrected Thm 5.10.5: 4β(L(w_0)−L_*)/√T + 8σ²/(b√T) (needs T ≥ 16 so that
    ρ ≤ 1/(2β) in Thm 5.10.6)."""
    return 4 * beta * gap0 / math.sqrt(T) + 8 * sigma2 / (b * math.sqrt(T))


def thm5105_pl_steps(beta, mu, T):
    """γ_t = min{(8t+4)/(3μ(t+1)²), 1/(2β)}, ρ_t = √(γ_t/β), t = 0..T−1 (Thm 5.6.1 / 5.10.5, PL part)."""
    import numpy as np
    t = np.arange(T, dtype=float)
    g = np.minimum((8 * t + 4) / (3 * mu * (t + 1) ** 2), 1 / (2 * beta))
    return g, np.sqrt(g / beta)


def thm5105_pl(gap0, beta, mu, sigma2, b, T):
    """Thm 5.6.1 / 5.10.5 PL part (l.2339, l.2757): E L(w_T) − L_* ≤ 3β²(L(w_0)−L_*)/(μ²T²) + 22βσ²/(μ²bT)."""
    return 3 * beta ** 2 * gap0 / (mu ** 2 * T ** 2) + 22 * beta * sigma2 / (mu ** 2 * b * T)


def lemma7(g2, rho, beta, sigma2, b=1):
    """Lemma 7 (l.2843), m-SAM (same batch J for ascent and descent), (A1)+(A2):
    E⟨∇L_J(w + ρ∇L_J(w)), ∇L(w)⟩ ≥ (1/2 − ρβ)‖∇L(w)‖² − β²ρ²σ²/(2b)."""
    return (0.5 - rho * beta) * g2 - beta ** 2 * rho ** 2 * sigma2 / (2 * b)


def lemma8(L_t, g2, gamma, rho, beta, sigma2, b=1):
    """Lemma 8 (l.2871), m-SAM, γ ≤ 1/β, ρ ≤ 1/(4β): E L(w_{t+1}) ≤ L(w_t) − (3γ/8)‖∇L(w_t)‖²
    + γβ(σ²/b)(γ + 2ρ²β). Returns the upper bound on E L(w_{t+1})."""
    return L_t - 3 * gamma / 8 * g2 + gamma * beta * sigma2 / b * (gamma + 2 * rho ** 2 * beta)


def thm5106(L0, ELT, gamma, rho, beta, sigma2, b, T, c_det=4.0, c_noise=4.0):
    """Thm 5.10.6 (l.2833), n-SAM (5.21) with constant γ, ρ ≤ 1/(2β), (A1) + (A2'), corrected:

        (1/T) Σ_{t<T} E‖∇L(w_t)‖² ≤ 4(L(w_0) − E L(w_T))/(Tγ) + 4σ²β(γ + ρ²β)/b,

    i.e. Lemma 6 (with the σ²/b of its proof) summed over t < T and divided by Tγ/4. The print has a
    spurious factor T in the noise term (:func:`thm5106_printed`, weaker) and says "iterates (5.4)" (m-SAM)
    where Lemma 6 is about (5.21). ``c_det``, ``c_noise``: the two constants (4, 4), exposed so that a
    test can pass wrong ones and see them rejected."""
    return c_det * (L0 - ELT) / (T * gamma) + c_noise * sigma2 * beta * (gamma + rho ** 2 * beta) / b


def thm5106_printed(L0, ELT, gamma, rho, beta, sigma2, b, T):
    """Thm 5.10.6 as printed (l.2835): 4(L(w_0) − E L(w_T))/(Tγ) + 4Tσ²β(γ + ρ²β)/b (extra factor T)."""
    return 4 * (L0 - ELT) / (T * gamma) + 4 * T * sigma2 * beta * (gamma + rho ** 2 * beta) / b


def thm5107(L0, ELT, gamma, rho, beta, sigma2, b, T, c_det=8 / 3, c_noise=8 / 3, rho_coef=1.0):
    """Thm 5.10.7 as printed (l.2899), m-SAM (5.4) with constant γ ≤ 1/β, ρ ≤ 1/(4β), (A1) + (A2):

        (1/T) E Σ_{t<T} ‖∇L(w_t)‖² ≤ 8(L(w_0) − E L(w_T))/(3Tγ) + 8σ²β(γ + ρ²β)/(3b).

    Summing Lemma 8 gives (γ + 2ρ²β) instead (:func:`thm5107_proved`, ``rho_coef=2``): the printed
    noise constant does not follow from the proof (ERRATA), but is not contradicted by any measurement.
    ``c_det``, ``c_noise``, ``rho_coef``: the constants (8/3, 8/3, 1), exposed for perturbation tests."""
    return c_det * (L0 - ELT) / (T * gamma) + c_noise * sigma2 * beta * (gamma + rho_coef * rho ** 2 * beta) / b


def thm5107_proved(L0, ELT, gamma, rho, beta, sigma2, b, T):
    """Thm 5.10.7 as Lemma 8 (l.2871) summed over t < T gives it: 8(L(w_0) − E L(w_T))/(3Tγ)
    + 8σ²β(γ + 2ρ²β)/(3b); with γ = 1/(√Tβ), ρ = 1/(T^{1/4}β) it is 8β(L(w_0) − E L(w_T))/(3√T)
    + 8σ²/(b√T), the noise constant of Thm 5.6.1 (l.2337)."""
    return thm5107(L0, ELT, gamma, rho, beta, sigma2, b, T, rho_coef=2.0)
