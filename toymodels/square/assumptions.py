"""The assumptions (3.3) for the ℓ∞ sampling distributions P and P^multiple (thesis Sup. 3.8.3–3.8.4,
l.1280–1320, and the main-text constants l.1063–1065), computed exactly on a w×w×c image.

An update δ of window side h: a position (r, s) uniform, the window rows r..r+h−1, columns s..s+h−1,
and values ±2ε on it (zero elsewhere):

* P (Alg. 2): one Rademacher sign per channel, constant over the window; positions
  {0..w−h}² (no wrap-around, as in the attack);
* P^multiple (Alg. 4): an independent sign per pixel and channel; positions {0..w−1}² with indices
  taken mod w (the wrap-around convention of Alg. 4, so that every pixel is covered by exactly h² of
  the w² windows; Alg. 4 prints {0..w}, which double-counts the window at 0 — we use w positions).

Second assumption of (3.3): E|⟨δ, v⟩| ≥ C̃γ‖v‖₂ for all v. :func:`expected_abs_inner` computes the
left side exactly (all positions, all sign patterns; per-pixel patterns are enumerated, so keep
h²c ≤ 16 there). For P it fails: the updates span a space of dimension ≤ (w−h+1)²c < w²c, so some
v ≠ 0 is orthogonal to every update (:func:`p_null_direction`); for even h the checkerboard
v_{k,l}^i = (−1)^{k+l} is one (the thesis prints (−1)^{kl}, which is *not* orthogonal: ERRATA).
For P^multiple the thesis' bound E|⟨δ, v⟩| ≥ √2 ε h²/w² ‖v‖₂ (:func:`khintchine_lower_bound`)
holds: Khintchine with Szarek's constant, E_ρ|Σ ρⱼaⱼ| ≥ ‖a‖₂/√2, gives ≥ √2ε E_{(r,s)}‖V_{(r,s)}‖₂,
and since ‖V_{(r,s)}‖₂ ≤ ‖v‖₂ and E‖V_{(r,s)}‖₂² = (h²/w²)‖v‖₂², E‖V‖₂ ≥ E‖V‖₂²/‖v‖₂ = (h²/w²)‖v‖₂.
(The printed Jensen step (iii) ‖E V_{(r,s)}‖₂ ≥ (h²/w²)‖v‖₂ is false: E V is the per-channel mean of
v, zero for zero-mean v; see ERRATA.) First assumption: E‖δ‖₂² = 4cε²h² exactly for both.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import ConfigError, check_choice, check_int, check_positive

__all__ = ["window_positions", "expected_abs_inner", "expected_sq_norm", "khintchine_lower_bound",
           "p_null_direction", "checkerboard"]

DISTS = ("P", "multiple")


def window_positions(w: int, h: int, dist: str) -> list[tuple[int, int]]:
    """Positions (r, s), 0-based: {0..w−h}² for P, {0..w−1}² (wrap-around) for P^multiple."""
    check_choice("dist", dist, DISTS)
    check_int("w", w, 1)
    check_int("h", h, 1, w)
    n = w - h + 1 if dist == "P" else w
    return [(r, s) for r in range(n) for s in range(n)]


def _window(v, r, s, h):
    w = v.shape[1]
    idx_r = (r + np.arange(h)) % w
    idx_s = (s + np.arange(h)) % w
    return v[:, idx_r][:, :, idx_s]          # (c, h, h)


def expected_abs_inner(v, h: int, eps: float, dist: str) -> float:
    """E|⟨δ, v⟩| exactly, v of shape (c, w, w): average over positions and all sign patterns."""
    v = np.asarray(v, dtype=np.float64)
    c, w, _ = v.shape
    check_positive("eps", eps)
    pos = window_positions(w, h, dist)
    n_signs = c if dist == "P" else c * h * h
    if n_signs > 16:
        raise ConfigError("h", f"must give at most 16 signs to enumerate (c = {c} for P, c·h² for P^multiple), "
                               f"got {n_signs}", h)
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=n_signs)))     # (2^n, n)
    tot = 0.0
    for r, s in pos:
        V = _window(v, r, s, h)
        a = V.sum(axis=(1, 2)) if dist == "P" else V.ravel()
        tot += np.abs(signs @ a).mean()
    return float(2 * eps * tot / len(pos))


def expected_sq_norm(w: int, c: int, h: int, eps: float, dist: str) -> float:
    """E‖δ‖₂² exactly: every window holds h²c entries of magnitude 2ε (= 4cε²h²)."""
    window_positions(w, h, dist)
    check_int("c", c, 1)
    return float(4 * eps ** 2 * h * h * c)


def khintchine_lower_bound(v, h: int, eps: float) -> float:
    """The thesis' lower bound √2 ε h²/w² ‖v‖₂ for P^multiple (Sup. 3.8.4; = √2cεh²/d ‖v‖, l.1065)."""
    v = np.asarray(v, dtype=np.float64)
    w = v.shape[1]
    return float(np.sqrt(2) * eps * h * h / w ** 2 * np.linalg.norm(v))


def p_null_direction(w: int, c: int, h: int) -> np.ndarray:
    """A unit v (c, w, w) with ⟨δ, v⟩ = 0 for every update δ of P: the per-channel window sums of v all
    vanish. Found as a null vector of the (positions × pixels) window-indicator matrix."""
    pos = window_positions(w, h, "P")
    M = np.zeros((len(pos), w * w))
    for k, (r, s) in enumerate(pos):
        m = np.zeros((w, w))
        m[r:r + h, s:s + h] = 1
        M[k] = m.ravel()
    _, sv, vt = np.linalg.svd(M)
    u = vt[-1].reshape(w, w)                 # w² > (w−h+1)² rows when h ≥ 2: a null vector exists
    v = np.repeat(u[None], c, axis=0)
    return v / np.linalg.norm(v)


def checkerboard(w: int, c: int, kind: str = "k+l") -> np.ndarray:
    """v_{k,l}^i = (−1)^{k+l} (orthogonal to all even-h windows) or the printed (−1)^{kl}; 1-based k, l."""
    check_choice("kind", kind, ("k+l", "kl"))
    k = np.arange(1, w + 1)[:, None]
    l_ = np.arange(1, w + 1)[None, :]
    e = k + l_ if kind == "k+l" else k * l_
    return np.repeat(((-1.0) ** e)[None], c, axis=0)
