"""SGD is GD with label noise (thesis Prop. 6.3.1, eqs. 6.2–6.4 and 6.10–6.20), for any model.

Generic: everything here needs only the model's residuals rᵢ = h_θ(xᵢ) − yᵢ on the n training
points and (for the step identity) its Jacobian φ_θ(X) = [∇_θ h_θ(xᵢ)ᵀ]ᵢ ∈ R^{n×p}; nothing is
DLN-specific, so the ReLU models can reuse it as they are.

Identity. Let ℓᵢ = κ rᵢ² and L = (1/n) Σᵢ ℓᵢ (κ = ½ in the thesis, eq. 6.1; κ = ¼ in this project's
DLN, eq. 5.5), so ∇L = (2κ/n) φᵀ r. An SGD step on the batch B = (i₁, …, i_B) (with or without
replacement), θ' = θ − (η/B) Σ_b ∇ℓ_{i_b}, equals the full-batch GD step on labels y + ξ,

    θ' = θ − (2κη/n) φᵀ (r − ξ),   ξᵢ = rᵢ (1 − (n/B) cᵢ),   cᵢ = #{b : i_b = i},

for every κ (both sides scale with κ). B = 1 is eq. (6.3): ξᵢ = rᵢ(1 − n 1_{i=i_t}).

Moments (uniform sampling). E ξ = 0 (E cᵢ = B/n), and

    with replacement:     E‖ξ‖² = ((n − 1)/B) ‖r‖²
    without replacement:  E‖ξ‖² = ((n − B)/B) ‖r‖²

Since ‖r‖² = nL/κ, B = 1 gives E‖ξ‖² = (n − 1) n L/κ: 2n(n − 1)L in the thesis' normalization
(κ = ½, as printed) and 4n(n − 1)L in the DLN's (κ = ¼). Covariance (B = 1): Cov ξ = n diag(r²) − rrᵀ.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["label_noise", "batch_counts", "sgd_direction", "label_noise_gd_direction",
           "expected_sq_norm", "covariance_b1"]


def batch_counts(batch, n: int) -> np.ndarray:
    """cᵢ = number of times example i appears in ``batch`` (int array of length n)."""
    batch = np.asarray(batch, dtype=np.int64).ravel()
    if batch.size == 0 or batch.min() < 0 or batch.max() >= n:
        raise ConfigError("batch", f"must be a non-empty array of indices in [0, {n - 1}]", batch.tolist())
    return np.bincount(batch, minlength=n)


def label_noise(residuals, batch) -> np.ndarray:
    """ξ for one SGD step: ξᵢ = rᵢ (1 − (n/B) cᵢ) (see the module docstring).

    Parameters
    ----------
    residuals : (n,) array, rᵢ = h_θ(xᵢ) − yᵢ at the current θ
    batch : (B,) int array, indices of the step's mini-batch (repeats allowed)
    """
    r = np.asarray(residuals, dtype=np.float64).ravel()
    batch = np.asarray(batch, dtype=np.int64).ravel()
    c = batch_counts(batch, r.size)
    return r * (1.0 - (r.size / batch.size) * c)


def sgd_direction(jacobian, residuals, batch) -> np.ndarray:
    """(1/B) Σ_b r_{i_b} ∇h(x_{i_b}) (= ∇ of the batch loss for κ = ½; multiply by 2κ otherwise)."""
    J = np.asarray(jacobian, dtype=np.float64)
    r = np.asarray(residuals, dtype=np.float64).ravel()
    batch = np.asarray(batch, dtype=np.int64).ravel()
    return (r[batch] @ J[batch]) / batch.size


def label_noise_gd_direction(jacobian, residuals, xi) -> np.ndarray:
    """(1/n) φᵀ (r − ξ): the full-batch GD direction with labels y + ξ (κ = ½ normalization)."""
    J = np.asarray(jacobian, dtype=np.float64)
    r = np.asarray(residuals, dtype=np.float64).ravel()
    return (r - np.asarray(xi, dtype=np.float64)) @ J / r.size


def expected_sq_norm(residuals, B: int = 1, replacement: bool = True) -> float:
    """Closed form E‖ξ‖² under uniform batches of size B (module docstring)."""
    r = np.asarray(residuals, dtype=np.float64).ravel()
    n = r.size
    if not 1 <= B <= (10**18 if replacement else n):
        raise ConfigError("B", f"must be an integer in [1, {'10^18' if replacement else n}]", B)
    factor = (n - 1) / B if replacement else (n - B) / B
    return float(factor * (r @ r))


def covariance_b1(residuals) -> np.ndarray:
    """Cov ξ = n diag(r²) − rrᵀ for B = 1."""
    r = np.asarray(residuals, dtype=np.float64).ravel()
    return r.size * np.diag(r * r) - np.outer(r, r)
