"""Adaptive average- and worst-case sharpness (thesis eq. 7.1), for any loss on a weight vector.

For weights w ∈ R^p, a scaling c ∈ R^p (c = |w|: elementwise adaptive; c = 1: standard; or the DLN
rescaling of :mod:`toymodels.sharpness.dln`) and radius ρ, with δ = c ⊙ γ:

    S_avg^ρ(w, c) = E_{γ ~ N(0, ρ² I)} L(w + c⊙γ) − L(w)             (Monte Carlo, with s.e.)
    S_max^ρ(w, c) = max_{‖γ‖_p ≤ ρ} L(w + c⊙γ) − L(w),   p ∈ {2, ∞}  (Auto-PGD ascent, a lower bound)

m-sharpness (the outer E over batches of size m) is the caller's business: pass the batch loss.
Small-ρ limits (Prop. 7.8.1/7.8.2): at a critical point, S_avg = ρ²/2 tr(H ⊙ cc^T) + O(ρ³) and
S_max (p = 2) = ρ²/2 λ_max(H ⊙ cc^T) + O(ρ³) when λ_max > 0.

Randomness: ``avg_sharpness`` and ``max_sharpness`` draw from ``toymodels.rng.stream(seed)``
(= ``numpy.random.default_rng(seed)``, so the torch twin draws the same γ); callers that measure
several batches give batch b the seed ``child_seed(seed, "sharpness/avg" or "sharpness/max", b)``.

Large radii: :func:`check_radius` bounds ρ so that every perturbed weight keeps the loss finite in
float64 (a larger ρ is a :class:`~toymodels.errors.ConfigError`, never an inf); both measures also
refuse a non-finite result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, check_choice, check_int, check_positive
from ..rng import stream

__all__ = ["avg_sharpness", "max_sharpness", "apgd_checkpoints", "MaxSharpness", "check_radius", "max_radius",
           "MAX_SAMPLES", "MAX_ITERS", "MAX_RESTARTS"]

#: bounds of the Monte-Carlo / Auto-PGD budgets (time: each draw or iteration evaluates the loss)
MAX_SAMPLES, MAX_ITERS, MAX_RESTARTS = 10 ** 8, 10 ** 6, 10 ** 4
#: perturbed models' outputs are kept below this magnitude, so that losses, gradients and their norms
#: (squares of products of outputs, weights and inputs) stay finite in float64
_MAX_OUTPUT = 1e60
#: |γ_k| ≤ 10ρ for every Monte-Carlo draw (P(|N(0, 1)| > 10) ≈ 1.5e-23) and every Auto-PGD iterate
_GAMMA_SPAN = 10.0


def max_radius(w, c, scale: float, degree: int) -> float:
    """The largest ρ with scale·(max|w| + 10ρ·max|c|)^degree ≤ 1e60: the model's outputs are bounded
    by scale·W^degree for perturbed weights of magnitude W (degree 1: a linear model, scale
    max‖xᵢ‖₁; degree 2: a product of two weights, e.g. the DLN u⊙v), so every loss value at
    w + c⊙γ stays finite. Negative when w itself is too large; inf when c = 0."""
    w_max = float(np.max(np.abs(w))) if np.size(w) else 0.0
    c_max = float(np.max(np.abs(c))) if np.size(c) else 0.0
    top = (_MAX_OUTPUT / max(float(scale), 1e-300)) ** (1.0 / degree)
    if c_max == 0.0:
        return np.inf if w_max <= top else -1.0
    return (top - w_max) / (_GAMMA_SPAN * c_max)


def check_radius(rho, w, c, scale: float, degree: int, weights: str = "w") -> float:
    """``rho`` as a float in (0, :func:`max_radius`]; a ConfigError for ``rho`` beyond it, or for the
    field ``weights`` when the weights alone are too large for float64."""
    rho = check_positive("rho", rho)
    top = max_radius(w, c, scale, degree)
    if top <= 0:
        raise ConfigError(weights, "must be smaller: the loss at these weights overflows float64")
    if rho > top:
        raise ConfigError("rho", f"must be <= {top:.3g} for these weights (a larger radius overflows the "
                                 "perturbed loss in float64)", rho)
    return rho


def _base_loss(loss, w) -> float:
    value = float(loss(w[None, :])[0])
    if not np.isfinite(value):
        raise ConfigError("w", "must give a finite loss (the weights or the data are too large for float64)")
    return value


def _finite(value: float, rho) -> float:
    if not np.isfinite(value):
        raise ConfigError("rho", "is too large for these weights: the perturbed loss is not finite in float64",
                          rho)
    return value


def avg_sharpness(loss, w, c, rho, n_samples=1000, seed=0, chunk=256):
    """Monte-Carlo average-case adaptive sharpness.

    Parameters
    ----------
    loss : callable
        ``loss(W)`` for a stack W of shape (k, p) returns the k losses.
    w, c : array (p,)
    rho : float
    n_samples : int
    seed : int

    Returns
    -------
    (mean, standard_error) of L(w + c⊙γ) − L(w), γ ~ N(0, ρ² I), over ``n_samples`` draws.
    """
    check_positive("rho", rho)
    check_int("n_samples", n_samples, 2, MAX_SAMPLES)
    w, c = np.asarray(w, dtype=np.float64), np.asarray(c, dtype=np.float64)
    rng = stream(seed)
    base = _base_loss(loss, w)
    vals = np.empty(n_samples)
    for s in range(0, n_samples, chunk):
        k = min(chunk, n_samples - s)
        gam = rho * rng.standard_normal((k, w.size))
        vals[s:s + k] = loss(w[None, :] + c[None, :] * gam) - base
    return _finite(float(vals.mean()), rho), _finite(float(vals.std(ddof=1) / np.sqrt(n_samples)), rho)


def apgd_checkpoints(n_iter):
    """Auto-PGD checkpoints (Croce & Hein 2020): p₀ = 0, p₁ = 0.22,
    p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), as iteration indices ⌈p_j N⌉."""
    p = [0.0, 0.22]
    while True:
        nxt = p[-1] + max(p[-1] - p[-2] - 0.03, 0.06)
        if nxt > 1:
            break
        p.append(nxt)
    return sorted({int(np.ceil(q * n_iter)) for q in p})


@dataclass
class MaxSharpness:
    """Result of :func:`max_sharpness`: best value found, its γ, the per-iteration best values."""

    value: float
    gamma: np.ndarray
    history: np.ndarray


def _project(gam, rho, p):
    if p == "inf":
        return np.clip(gam, -rho, rho)
    nrm = np.linalg.norm(gam)
    return gam if nrm <= rho else gam * (rho / nrm)


def _step(g, p):
    if p == "inf":
        return np.sign(g)
    nrm = np.linalg.norm(g)
    return g / nrm if nrm > 0 else g


def max_sharpness(loss, grad, w, c, rho, p="2", n_iter=50, n_restarts=1, seed=0, momentum=0.75,
                  rho_frac=0.75):
    """Worst-case adaptive sharpness by Auto-PGD in γ = δ ⊘ c (thesis Algorithm 5).

    Ascent on f(γ) = L(w + c⊙γ) over {‖γ‖_p ≤ ρ}: normalized-gradient (p = 2) or sign (p = ∞) steps
    of size η (initially 2ρ), heavy-ball combination z → γ + α(z − γ) + (1 − α)(γ − γ_prev) with
    α = ``momentum``, projection onto the ball; at each checkpoint η is halved and the iterate reset
    to the best point if fewer than ``rho_frac`` of the steps since the last checkpoint increased f,
    or if η and the best value were both unchanged since the previous checkpoint. Starts uniformly
    at random in the ball (a critical point has zero gradient at γ = 0).

    Parameters
    ----------
    loss : callable, ``loss(W)`` for W of shape (k, p) → (k,)
    grad : callable, ``grad(w)`` for w of shape (p,) → ∇L(w) of shape (p,)
    p : {"2", "inf"}

    Returns
    -------
    MaxSharpness
        ``value`` = max found of L(w + c⊙γ) − L(w), at least 0 (the value at γ = 0): a lower bound on
        S_max.
    """
    check_positive("rho", rho)
    p = check_choice("p", str(p), ("2", "inf"))
    check_int("n_iter", n_iter, 1, MAX_ITERS)
    check_int("n_restarts", n_restarts, 1, MAX_RESTARTS)
    w, c = np.asarray(w, dtype=np.float64), np.asarray(c, dtype=np.float64)
    rng = stream(seed)
    f = lambda g: _finite(float(loss((w + c * g)[None, :])[0]), rho)  # noqa: E731
    df = lambda g: c * grad(w + c * g)  # noqa: E731  chain rule in γ
    base = _base_loss(loss, w)
    checkpoints = set(apgd_checkpoints(n_iter)[1:])
    best_val, best_gam, history = -np.inf, np.zeros_like(w), np.empty(n_iter + 1)
    for _ in range(n_restarts):
        if p == "inf":
            x = rng.uniform(-rho, rho, w.size)
        else:  # uniform in the ℓ₂ ball
            z = rng.standard_normal(w.size)
            x = z / np.linalg.norm(z) * rho * rng.uniform() ** (1.0 / w.size)
        eta = 2.0 * rho
        fx = f(x)
        x1 = _project(x + eta * _step(df(x), p), rho, p)
        f1 = f(x1)
        fmax, xmax = (f1, x1) if f1 > fx else (fx, x)
        x_prev, x, fx = x, x1, f1
        hist = [fmax - base, fmax - base]
        n_incr, last_ck, eta_at_ck, fmax_at_ck = int(f1 > hist[0] + base), 0, eta, fmax
        for k in range(1, n_iter):
            z = _project(x + eta * _step(df(x), p), rho, p)
            x_new = _project(x + momentum * (z - x) + (1 - momentum) * (x - x_prev), rho, p)
            f_new = f(x_new)
            n_incr += f_new > fx
            x_prev, x, fx = x, x_new, f_new
            if f_new > fmax:
                fmax, xmax = f_new, x_new
            if k in checkpoints:
                cond1 = n_incr < rho_frac * (k - last_ck)
                cond2 = eta == eta_at_ck and fmax == fmax_at_ck
                eta_at_ck, fmax_at_ck = eta, fmax
                if cond1 or cond2:
                    eta /= 2.0
                    x, x_prev, fx = xmax.copy(), xmax.copy(), fmax
                n_incr, last_ck = 0, k
            hist.append(fmax - base)
        hist = np.asarray(hist[:n_iter + 1])
        if fmax - base > best_val:
            best_val, best_gam, history = fmax - base, xmax, hist
    if best_val < 0:
        # γ = 0 is feasible: S_max ≥ 0 always (the ascent can only miss it at a local maximum of L)
        best_val, best_gam = 0.0, np.zeros_like(w)
    return MaxSharpness(_finite(float(best_val), rho), best_gam, np.maximum(history, 0.0))
