"""The ℓ2 Square Attack (thesis Sec. 3.4.4, Algorithms 1 and 3, eq. 3.2), batched over points.

Same problem, losses, success rule, schedule and query accounting as :mod:`.attack_linf`, with the
constraint ‖x̂ − x‖₂ ≤ ε. Differences:

* square side h = the closest integer to √(p·H·W), at least 3, at most min(H, W);
* the bump η^{(h₁,h₂)}_{r,s} = Σ_{k=0}^{M(r,s)} 1/(n + 1 − k)², n = ⌊h₁/2⌋,
  M(r,s) = n − max{|r − ⌊h₁/2⌋ − 1|, |s − ⌊h₂/2⌋ − 1|} (1-based r, s), and the update
  η = (η^{(h,k)}, −η^{(h,h−k)}), k = ⌊h/2⌋ (eq. 3.2: two halves of opposite sign side by side), or
  its transpose with probability 1/2;
* init: a 5×5 tiling of the image by squares of side ⌊H/5⌋ (centred), each tile and channel carrying
  ±η of that side; the whole perturbation rescaled to ℓ2 norm ε, then clipped to [0, 1];
* proposal (Alg. 3), per point and channel i, with ν = x̂ − x and two uniform h×h windows W₁, W₂:
  ε²_unused = ε² − ‖ν‖², ν_temp = ρᵢ η/‖η‖ + ν_{W₁,i}/‖ν_{W₁,i}‖ (ρᵢ Rademacher; the second term is
  dropped when ν_{W₁,i} = 0, and ν_temp = ρᵢη/‖η‖ when the sum vanishes), ε_avail^i = √(‖ν_{W₁∪W₂,i}‖² + ε²_unused/c), then ν_{W₂,i} ← 0,
  ν_{W₁,i} ← ε_avail^i ν_temp/‖ν_temp‖, and x_new = clip(x + ν, 0, 1).

Prop. 3.4.1: ‖ν_new‖₂ = ε exactly before the clipping (:func:`l2_propose` returns ν_new so that
tests can check it). Plain numpy only: the per-iteration cost is dominated by the model's logits,
which run in the CNN's numba kernels.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import ConfigError
from ..rng import stream
from .attack_linf import SquareResult, check_attack_args, check_images, numpy_search, resolve_budget
from .options import check_search_options

__all__ = ["eta_block", "eta_update", "l2_side", "l2_init", "l2_propose", "l2_draws", "square_attack_l2"]


def eta_block(h1: int, h2: int) -> np.ndarray:
    """η^{(h₁,h₂)} ∈ ℝ^{h₁×h₂} of Sec. 3.4.4 (h₁ ≥ h₂ ≥ 1), evaluated from its definition."""
    n = h1 // 2
    r = np.arange(1, h1 + 1)[:, None]
    s = np.arange(1, h2 + 1)[None, :]
    M = n - np.maximum(np.abs(r - h1 // 2 - 1), np.abs(s - h2 // 2 - 1))
    # Σ_{k=0}^{M} 1/(n+1−k)² = Σ_{j=n+1−M}^{n+1} 1/j²
    inv = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 2) ** 2)])   # inv[m] = Σ_{j≤m} 1/j²
    return inv[n + 1] - inv[n - M]


def eta_update(h: int, transpose: bool = False) -> np.ndarray:
    """η = (η^{(h,k)}, −η^{(h,h−k)}), k = ⌊h/2⌋ (eq. 3.2), normalised to ‖η‖₂ = 1; transposed on request."""
    k = h // 2
    eta = np.concatenate([eta_block(h, k), -eta_block(h, h - k)], axis=1) if k else -eta_block(h, h)
    eta = eta / np.sqrt((eta ** 2).sum())
    return eta.T.copy() if transpose else eta


def l2_side(p: float, H: int, W: int) -> int:
    """h = the closest integer to √(p·H·W), at least 3 (thesis l.961), at most min(H, W)."""
    h = int(np.floor(np.sqrt(p * H * W) + 0.5))
    return int(min(max(h, 3), min(H, W)))


def l2_init(x: np.ndarray, eps: float, rng: np.random.Generator) -> np.ndarray:
    """The 5×5-tiling initial iterate clip(x + ε ν₀/‖ν₀‖₂, 0, 1)."""
    N, C, H, W = x.shape
    s = max(min(H, W) // 5, 1)
    oh, ow = (H - 5 * s) // 2, (W - 5 * s) // 2
    nu = np.zeros_like(x)
    flips = rng.random(size=(5, 5, N)) < 0.5
    signs = rng.choice(np.array([-1.0, 1.0]), size=(5, 5, N, C))
    etas = (eta_update(s, False), eta_update(s, True))
    for a in range(5):
        for b in range(5):
            tile = np.where(flips[a, b][:, None, None], etas[1][None], etas[0][None])    # (N, s, s)
            nu[:, :, oh + a * s: oh + (a + 1) * s, ow + b * s: ow + (b + 1) * s] = \
                signs[a, b][:, :, None, None] * tile[:, None]
    nu *= eps / np.sqrt((nu ** 2).sum(axis=(1, 2, 3), keepdims=True))
    return np.clip(x + nu, 0.0, 1.0)


def _window_mask(pos, h, H, W):
    rows, cols = np.arange(H), np.arange(W)
    inr = (rows[None] >= pos[:, :1]) & (rows[None] < pos[:, :1] + h)
    inc = (cols[None] >= pos[:, 1:]) & (cols[None] < pos[:, 1:] + h)
    return inr[:, :, None] & inc[:, None, :]                                   # (N, H, W)


def l2_propose(x, x_best, eps, pos1, pos2, h, flips, signs):
    """One Alg. 3 proposal per point. pos1, pos2: (N, 2) window corners; flips: (N,) bool (transpose
    η); signs: (N, C) in {−1, 1}. Returns (x_new, nu_new) with x_new = clip(x + nu_new, 0, 1)."""
    N, C, H, W = x.shape
    nu = x_best - x
    m1 = _window_mask(pos1, h, H, W)
    m2 = _window_mask(pos2, h, H, W)
    unused = eps ** 2 - (nu ** 2).sum(axis=(1, 2, 3))                          # (N,)
    union_sq = ((nu ** 2) * (m1 | m2)[:, None]).sum(axis=(2, 3))               # (N, C)
    avail = np.sqrt(np.maximum(union_sq + unused[:, None] / C, 0.0))
    nn = np.arange(N)[:, None, None, None]
    cc = np.arange(C)[None, :, None, None]
    rr = (pos1[:, 0][:, None] + np.arange(h))[:, None, :, None]
    col = (pos1[:, 1][:, None] + np.arange(h))[:, None, None, :]
    v1 = nu[nn, cc, rr, col]                                                   # (N, C, h, h)
    n1 = np.sqrt((v1 ** 2).sum(axis=(2, 3), keepdims=True))
    old = np.divide(v1, n1, out=np.zeros_like(v1), where=n1 > 0)
    eta = np.where(flips[:, None, None], eta_update(h, True)[None], eta_update(h, False)[None])
    fresh = signs[:, :, None, None] * eta[:, None]
    temp = fresh + old
    nt = np.sqrt((temp ** 2).sum(axis=(2, 3), keepdims=True))
    # ν_temp = 0 when W₁ holds exactly −ρη (a bump placed there earlier, now drawn with the other
    # sign): the direction is then undefined and the fresh bump alone is used (keeps Prop. 3.4.1)
    degenerate = nt <= 1e-12
    temp = np.where(degenerate, fresh, temp / np.where(degenerate, 1.0, nt))
    nu_new = nu * ~m2[:, None]
    nu_new[nn, cc, rr, col] = temp * avail[:, :, None, None]
    return np.clip(x + nu_new, 0.0, 1.0), nu_new


def l2_draws(rng: np.random.Generator, n: int, h: int, H: int, W: int):
    """The draws of one ℓ2 proposal for n points, in this order: W₁ corners, W₂ corners, flips, signs."""
    pos1 = np.stack([rng.integers(0, H - h + 1, n), rng.integers(0, W - h + 1, n)], axis=1)
    pos2 = np.stack([rng.integers(0, H - h + 1, n), rng.integers(0, W - h + 1, n)], axis=1)
    return pos1, pos2, rng.random(n) < 0.5


def square_attack_l2(predict: Callable[[np.ndarray], np.ndarray], x, y, eps: float, n_queries: int | None = None,
                     p_init: float | None = None, *, targeted: bool = False, target=None, loss: str | None = None,
                     schedule: str = "thesis", rescale: bool = True, restarts: int = 1, seed: int = 0,
                     show_progress: bool = False) -> SquareResult:
    """Run the ℓ2 Square Attack on (x, y); arguments and result as :func:`.square_attack_linf` (the
    defaults of N and p by image size: 5,000 and 0.8 for images of side ≤ 64, else 1,000 and 0.1),
    with ε ∈ (0, √(CHW)] (the ℓ2 ball of radius √(CHW) holds the whole box [0, 1]^{C×H×W}) and images
    of side ≥ 3. Draws: tiles, targets, then per iteration windows, flips and signs (then the next
    restart's tiles, ...) from ``toymodels.rng.stream(seed)``."""
    x, y = check_images(x, y)
    N, C, H, W = x.shape
    n_queries, p_init = resolve_budget("l2", x.shape, n_queries, p_init, restarts)
    diam = float(np.sqrt(C * H * W))
    check_attack_args(eps, n_queries, p_init, diam, f"the ℓ2 ball of radius √(CHW) = {diam:.4g} already "
                                                   "holds the whole box [0, 1]^d")
    loss = check_search_options(loss, schedule, rescale, restarts, targeted)
    if min(H, W) < 3:
        raise ConfigError("x", f"must have images of side >= 3 (the ℓ2 update is at least 3×3), got {H}×{W}")
    if N == 0:
        return SquareResult.empty(x, n_queries, targeted, restarts)
    eps = float(eps)
    rng = stream(seed)

    def propose(xa, xb, p):
        h = l2_side(p, H, W)
        pos1, pos2, flips = l2_draws(rng, xa.shape[0], h, H, W)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(xa.shape[0], C))
        return l2_propose(xa, xb, eps, pos1, pos2, h, flips, signs)[0], h

    return numpy_search(predict, x, y, n_queries, p_init, rng, init=lambda xs: l2_init(xs, eps, rng),
                        propose=propose, targeted=targeted, target=target, loss=loss, schedule=schedule,
                        rescale=rescale, restarts=restarts, show_progress=show_progress, desc="square-l2")
