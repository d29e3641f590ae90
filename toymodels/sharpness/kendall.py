"""Kendall rank correlation, thesis eq. 7.4:

    τ(t, s) = 2/(M(M−1)) Σ_{i<j} sign(tᵢ − tⱼ) sign(sᵢ − sⱼ)

(Kendall's τ_a: ties count 0 and the normalization is not adjusted for them; without ties it equals
scipy's default τ_b).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["kendall_tau"]


def kendall_tau(t, s) -> float:
    """Eq. 7.4 for two vectors of equal length M ≥ 2 (O(M²) memory; fine for a few thousand)."""
    t, s = np.asarray(t, dtype=np.float64).ravel(), np.asarray(s, dtype=np.float64).ravel()
    if t.shape != s.shape or t.size < 2:
        raise ConfigError("t", "and s must be two vectors of equal length >= 2", f"lengths {t.size} and {s.size}")
    M = t.size
    iu = np.triu_indices(M, 1)
    prod = np.sign(t[:, None] - t[None, :])[iu] * np.sign(s[:, None] - s[None, :])[iu]
    return float(2.0 * prod.sum() / (M * (M - 1)))
