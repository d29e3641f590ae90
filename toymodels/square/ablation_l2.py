"""Ablation of the ℓ2 Square Attack's update and initialization (thesis Table 3.7, ℓ2 half, l.1433–1440,
described at l.1412–1414 and l.1444) on the toy single-layer CNN.

Same random search as :func:`toymodels.square.attack_l2.square_attack_l2` (untargeted, margin loss,
thesis schedule of p, side h = :func:`~toymodels.square.attack_l2.l2_side`, one restart, Alg. 3's
mass-moving proposal), with the update drawn into the window W₁ and the initial perturbation varied.

Updates (one unit-norm h×h tile u per point and channel; Alg. 3 step 7 then uses
ν_temp = u + ν_{W₁,i}/‖ν_{W₁,i}‖):

* ``eta``: u = ρ η*, η* = η/‖η‖₂ with η of eq. (3.2) (two "centers" of opposite sign, or its transpose
  with probability 1/2, :func:`~toymodels.square.attack_l2.eta_update`), ρ ∈ {−1, 1} per channel — the attack;
* ``single``: u = ρ η^{(h,h)}/‖η^{(h,h)}‖₂ (one center, thesis's η^single; symmetric, so the transpose
  draw changes nothing);
* ``rand``: u = ρ ⊙ η*, ρ ∈ {−1, 1}^{h×h} i.i.d. per channel (thesis's η^rand: Alg. 3's step ρ ←
  Uniform({−1, 1}) replaced by ρ ← Uniform({−1, 1}^{h×h}); l.1414 calls it step 7, the listing's
  step 6, l.1013).

Initializations (ν₀ with ‖ν₀‖₂ = ε; x̂₀ = clip(x + ν₀, 0, 1)):

* ``grid``: the 5×5 tiling of :func:`~toymodels.square.attack_l2.l2_init`, each tile (side ⌊min(H, W)/5⌋)
  and channel carrying the update of the row (η-grid, η^single-grid, η^rand-grid), rescaled to norm ε;
* ``gaussian``: ν₀ = ε g/‖g‖₂, g ~ N(0, I_d) (a uniform point of the sphere);
* ``uniform``: ν₀ ∈ {−ε/√d, ε/√d}^d i.i.d. (the corners of the largest ℓ∞ ball inside the ℓ₂ ball);
* ``vstripes``: ν₀ = (ε/√d) v, v ∈ {−1, 1}^{C×1×W} constant down each column (the ℓ∞ attack's stripes).

The row (eta, grid) draws exactly as :func:`~toymodels.square.attack_l2.square_attack_l2` (its own init and
proposal draws, in the same order) and returns its result. Plain numpy: an experiment, not a hot loop.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, check_choice
from ..rng import stream
from .ablation import AblationResult
from .attack_l2 import _window_mask, eta_block, eta_update, l2_draws, l2_init, l2_side
from .attack_linf import check_attack_args, check_images, numpy_search

__all__ = ["UPDATES", "INITS", "ROWS", "THESIS", "eta_single", "update_tiles", "propose_with", "grid_init",
           "init_perturbation", "ablation_attack_l2"]

UPDATES = ("eta", "single", "rand")
INITS = ("grid", "gaussian", "uniform", "vstripes")
#: the ℓ2 rows of thesis Table 3.7 (update, initialization), in its order (the attack's choice last)
ROWS = (("rand", "grid"), ("single", "grid"), ("eta", "gaussian"), ("eta", "uniform"), ("eta", "vstripes"),
        ("eta", "grid"))
#: Table 3.7's (failure rate, mean queries, median queries) of each row (ImageNet, ResNet-50, ε = 5, p = 0.1)
THESIS = dict(zip(ROWS, ((0.033, 1050, 324), (0.007, 650, 171), (0.004, 696, 189), (0.008, 660, 187),
                         (0.008, 655, 186), (0.007, 616, 170))))


def eta_single(h: int) -> np.ndarray:
    """η^single = η^{(h,h)}/‖η^{(h,h)}‖₂ (one center), thesis l.1414."""
    e = eta_block(h, h)
    return e / np.sqrt((e ** 2).sum())


def update_tiles(rng, update: str, h: int, flips: np.ndarray, C: int) -> np.ndarray:
    """The unit-norm tiles u (n, C, h, h) of ``update`` for n = len(flips) points (``flips``: transpose
    η).
    Draws the signs: (n, C) for eta / single (as :func:`~toymodels.square.attack_l2.square_attack_l2`),
    (n, C, h, h) for rand."""
    n = flips.shape[0]
    if update == "single":
        base = np.broadcast_to(eta_single(h), (n, h, h))
    else:
        base = np.where(flips[:, None, None], eta_update(h, True)[None], eta_update(h, False)[None])
    size = (n, C, h, h) if update == "rand" else (n, C, 1, 1)
    return rng.choice(np.array([-1.0, 1.0]), size=size) * base[:, None]


def propose_with(x, x_best, eps, pos1, pos2, fresh):
    """Alg. 3 with the new tile given: per point and channel i, ν_temp = fresh_i + ν_{W₁,i}/‖ν_{W₁,i}‖
    (fresh_i alone where ν_{W₁,i} = 0 or the sum vanishes), ε_avail^i = √(‖ν_{W₁∪W₂,i}‖² + ε²_unused/c),
    ν_{W₂,i} ← 0, ν_{W₁,i} ← ε_avail^i ν_temp/‖ν_temp‖. ``fresh`` (N, C, h, h), unit norm per (point,
    channel). Returns (x_new, ν_new) with x_new = clip(x + ν_new, 0, 1); with fresh = ρ η* it is
    :func:`~toymodels.square.attack_l2.l2_propose` (tests/test_square_ch3.py checks it)."""
    N, C, H, W = x.shape
    h = fresh.shape[-1]
    nu = x_best - x
    m1, m2 = _window_mask(pos1, h, H, W), _window_mask(pos2, h, H, W)
    unused = eps ** 2 - (nu ** 2).sum(axis=(1, 2, 3))
    avail = np.sqrt(np.maximum(((nu ** 2) * (m1 | m2)[:, None]).sum(axis=(2, 3)) + unused[:, None] / C, 0.0))
    nn, cc = np.arange(N)[:, None, None, None], np.arange(C)[None, :, None, None]
    rr = (pos1[:, 0][:, None] + np.arange(h))[:, None, :, None]
    col = (pos1[:, 1][:, None] + np.arange(h))[:, None, None, :]
    v1 = nu[nn, cc, rr, col]
    n1 = np.sqrt((v1 ** 2).sum(axis=(2, 3), keepdims=True))
    temp = fresh + np.divide(v1, n1, out=np.zeros_like(v1), where=n1 > 0)
    nt = np.sqrt((temp ** 2).sum(axis=(2, 3), keepdims=True))
    degenerate = nt <= 1e-12
    temp = np.where(degenerate, fresh, temp / np.where(degenerate, 1.0, nt))
    nu_new = nu * ~m2[:, None]
    nu_new[nn, cc, rr, col] = temp * avail[:, :, None, None]
    return np.clip(x + nu_new, 0.0, 1.0), nu_new


def grid_init(x, eps, rng, update: str = "eta") -> np.ndarray:
    """The 5×5 tiling init with the tiles of ``update``: for ``eta`` exactly
    :func:`~toymodels.square.attack_l2.l2_init` (same draws); otherwise the same tiling and draws
    (flips (5, 5, N), signs (5, 5, N, C)) with η^single tiles, or η* tiles times i.i.d. signs per
    element (``rand``, drawn after those, (5, 5, N, C, s, s))."""
    return l2_init(x, eps, rng) if update == "eta" else _grid(x, eps, rng, update)


def _grid(x, eps, rng, update: str) -> np.ndarray:
    """The tiling of :func:`grid_init` for any update (with ``eta`` it draws and returns as l2_init)."""
    N, C, H, W = x.shape
    s = max(min(H, W) // 5, 1)
    oh, ow = (H - 5 * s) // 2, (W - 5 * s) // 2
    flips = rng.random(size=(5, 5, N)) < 0.5
    signs = rng.choice(np.array([-1.0, 1.0]), size=(5, 5, N, C))[..., None, None]
    if update == "rand":
        signs = signs * rng.choice(np.array([-1.0, 1.0]), size=(5, 5, N, C, s, s))
    nu = np.zeros_like(x)
    for a in range(5):
        for b in range(5):
            if update == "single":
                tile = np.broadcast_to(eta_single(s), (N, s, s))
            else:
                tile = np.where(flips[a, b][:, None, None], eta_update(s, True)[None], eta_update(s, False)[None])
            nu[:, :, oh + a * s: oh + (a + 1) * s, ow + b * s: ow + (b + 1) * s] = signs[a, b] * tile[:, None]
    nu *= eps / np.sqrt((nu ** 2).sum(axis=(1, 2, 3), keepdims=True))
    return np.clip(x + nu, 0.0, 1.0)


def init_perturbation(x, eps, rng, init: str, update: str = "eta") -> np.ndarray:
    """x̂₀ = clip(x + ν₀, 0, 1) of the initialization ``init`` (module docstring), ‖ν₀‖₂ = ε."""
    N, C, H, W = x.shape
    if init == "grid":
        return grid_init(x, eps, rng, update)
    if init == "gaussian":
        g = rng.standard_normal(size=x.shape)
        nu = eps * g / np.sqrt((g ** 2).sum(axis=(1, 2, 3), keepdims=True))
    else:
        size = (N, C, H, W) if init == "uniform" else (N, C, 1, W)
        nu = np.broadcast_to(rng.choice(np.array([-1.0, 1.0]), size=size), x.shape) * (eps / np.sqrt(C * H * W))
    return np.clip(x + nu, 0.0, 1.0)


def ablation_attack_l2(predict, x, y, eps: float, n_queries: int, p_init: float, *, update: str = "eta",
                       init: str = "grid", seed: int = 0, show_progress: bool = False) -> AblationResult:
    """Untargeted ℓ2 Square Attack (margin loss, thesis schedule, one restart) with the given update and
    initialization on x (N, C, H, W) ∈ [0, 1] (sides ≥ 3), ε ∈ (0, √(CHW)]. Draws from
    ``toymodels.rng.stream(seed)``: init, then per iteration W₁, W₂, flips, signs."""
    x, y = check_images(x, y)
    N, C, H, W = x.shape
    diam = float(np.sqrt(C * H * W))
    check_attack_args(eps, n_queries, p_init, diam, "the ℓ2 ball of radius √(CHW) holds the whole box")
    check_choice("update", update, UPDATES)
    check_choice("init", init, INITS)
    if min(H, W) < 3:
        raise ConfigError("x", f"must have images of side >= 3 (the ℓ2 update is at least 3×3), got {H}×{W}")
    if N == 0:
        return AblationResult(np.zeros(0, np.int64), np.zeros(0, bool), x.copy())
    eps = float(eps)
    rng = stream(seed)

    def propose(xa, xb, p):
        h = l2_side(p, H, W)
        pos1, pos2, flips = l2_draws(rng, xa.shape[0], h, H, W)
        return propose_with(xa, xb, eps, pos1, pos2, update_tiles(rng, update, h, flips, C))[0], h

    def start(xs):
        return init_perturbation(xs, eps, rng, init, update)

    r = numpy_search(predict, x, y, n_queries, p_init, rng, init=start, propose=propose, targeted=False,
                     target=None, loss="margin", schedule="thesis", rescale=True, restarts=1,
                     show_progress=show_progress, desc=f"l2-{update}-{init}")
    return AblationResult(r.n_queries, r.success, r.x_adv)
