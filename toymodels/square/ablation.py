"""Ablation of the ℓ∞ Square Attack's sampling distribution (thesis Table 3.1, l.1091–1101) on the toy
single-layer CNN: update shape × number of random signs × initialization.

Same random search as :func:`toymodels.square.attack_linf.square_attack_linf` (margin loss,
untargeted, the p schedule and side h of :func:`~toymodels.square.attack_linf.p_schedule` /
:func:`~toymodels.square.attack_linf.square_side`, candidate values clip(x + ερ, 0, 1) on the
changed pixels, signs redrawn up to 16 tries until the candidate differs from x̂, accept if the loss
decreases), with the proposal's support and signs varied:

* shape ``square``: an h×h window at a uniform position; ``rectangle``: sides round(αh), round(βh),
  α, β ~ Exp(1) i.i.d. (area h² in expectation, thesis l.1406), clipped to [1, H] × [1, W];
  ``random``: h² pixels drawn uniformly without replacement (same pixels in every channel);
* signs ``c``: one Rademacher sign per channel, constant on the support; ``chh`` (c·h²): one per
  pixel and channel;
* init ``vstripes``: x + ε v with v ∈ {−1, 1}^{C×1×W} (constant down each column); ``uniform``:
  x + ε v with v ∈ {−1, 1}^{C×H×W} i.i.d.

Plain vectorized numpy over the attacked points (one Python iteration per query): the ablation is an
experiment on ≤ a few hundred points, not a hot loop; the production attack keeps its numba kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import check_choice, check_int
from ..progress import progress
from ..rng import stream
from .attack_linf import (LINF_EPS_WHY, accept_improvements, check_attack_args, check_images, check_scores,
                          margin_and_loss, p_schedule, square_side)

__all__ = ["ROWS", "SHAPES", "SIGNS", "INITS", "AblationResult", "ablation_attack"]

#: the rows of thesis Table 3.1 (update shape, # random signs, initialization), in its order
ROWS = (("random", "chh", "vstripes"), ("random", "chh", "uniform"), ("random", "c", "vstripes"),
        ("square", "chh", "vstripes"), ("rectangle", "c", "vstripes"), ("square", "c", "uniform"),
        ("square", "c", "vstripes"))
SHAPES, SIGNS, INITS = ("square", "rectangle", "random"), ("c", "chh"), ("vstripes", "uniform")


@dataclass
class AblationResult:
    n_queries: np.ndarray   # (N,) queries spent per point (init included)
    success: np.ndarray     # (N,)
    x_adv: np.ndarray       # (N, C, H, W) best point found

    def curve(self, n_queries: int) -> np.ndarray:
        """Success rate after q queries, q = 1..n_queries."""
        q = np.arange(1, n_queries + 1)
        if self.success.size == 0:
            return np.zeros(n_queries)
        return ((self.n_queries[None, :] <= q[:, None]) & self.success[None, :]).mean(axis=1)

    def stats(self) -> dict:
        s = self.n_queries[self.success]
        return {"failure_rate": float(1 - self.success.mean()) if self.success.size else float("nan"),
                "mean_queries": float(s.mean()) if s.size else float("nan"),
                "median_queries": float(np.median(s)) if s.size else float("nan"), "n_points": int(self.success.size)}


def _support(rng, shape, n, h, H, W):
    m = np.zeros((n, H, W), dtype=bool)
    if shape == "random":
        idx = np.argsort(rng.random((n, H * W)), axis=1)[:, :h * h]
        m.reshape(n, -1)[np.arange(n)[:, None], idx] = True
        return m
    if shape == "square":
        a = b = np.full(n, h)
    else:
        a = np.clip(np.rint(rng.exponential(size=n) * h), 1, H).astype(int)
        b = np.clip(np.rint(rng.exponential(size=n) * h), 1, W).astype(int)
    r = rng.integers(0, H - a + 1)
    c = rng.integers(0, W - b + 1)
    rows = np.arange(H)[None, :, None]
    cols = np.arange(W)[None, None, :]
    return ((rows >= r[:, None, None]) & (rows < (r + a)[:, None, None]) &
            (cols >= c[:, None, None]) & (cols < (c + b)[:, None, None]))


def _proposal(rng, shape, signs, x, x_best, eps, h, max_tries):
    """One proposal per point (x, x̂ of the active points): the support of ``shape`` with side h, signs
    redrawn (up to ``max_tries`` pre-drawn tries) until the candidate differs from x̂."""
    n, C, H, W = x.shape
    m = _support(rng, shape, n, h, H, W)[:, None]                     # (n, 1, H, W)
    sg_shape = (max_tries, n, C, 1, 1) if signs == "c" else (max_tries, n, C, H, W)
    sg = rng.choice(np.array([-1.0, 1.0]), size=sg_shape)
    cand = np.where(m[None], np.clip(x[None] + eps * sg, 0, 1), x_best[None])   # (T, n, C, H, W)
    changed = (np.abs(cand - x_best[None]) >= 1e-12).any(axis=(2, 3, 4))
    first = np.where(changed.any(axis=0), changed.argmax(axis=0), max_tries - 1)
    return cand[first, np.arange(n)]


def ablation_attack(predict, x, y, eps: float, n_queries: int, p_init: float, *, shape: str = "square",
                    signs: str = "c", init: str = "vstripes", seed: int = 0, max_tries: int = 16,
                    show_progress: bool = False) -> AblationResult:
    """Untargeted ℓ∞ random search with the given (shape, signs, init) on x (N, C, H, W) ∈ [0, 1],
    ε ∈ (0, 1]. Draws from ``toymodels.rng.stream(seed)``; the row (square, c, vstripes) draws exactly
    as :func:`~toymodels.square.attack_linf.square_attack_linf` and returns its result."""
    check_attack_args(eps, n_queries, p_init, 1.0, LINF_EPS_WHY)
    check_choice("shape", shape, SHAPES)
    check_choice("signs", signs, SIGNS)
    check_choice("init", init, INITS)
    check_int("max_tries", max_tries, 1, 1024)
    x, y = check_images(x, y)
    N, C, H, W = x.shape
    if N == 0:
        return AblationResult(np.zeros(0, np.int64), np.zeros(0, bool), x.copy())
    rng = stream(seed)
    v = rng.choice(np.array([-1.0, 1.0]), size=(N, C, 1, W) if init == "vstripes" else (N, C, H, W))
    x_best = np.clip(x + eps * v, 0, 1)
    z = predict(x_best)
    check_scores(z, 0)
    success, loss = margin_and_loss(z, y, False)
    queries = np.ones(N, dtype=np.int64)
    with progress(n_queries - 1, disable=not show_progress, desc=f"{shape}-{signs}-{init}", unit="query") as bar:
        for i in range(1, n_queries):
            act = np.flatnonzero(~success)
            if act.size == 0:
                break
            bar.update(1)
            h = square_side(p_schedule(p_init, i, n_queries), H, W)
            x_new = _proposal(rng, shape, signs, x[act], x_best[act], eps, h, max_tries)
            z = predict(x_new)
            check_scores(z, i)
            s_new, l_new = margin_and_loss(z, y[act], False)
            accept_improvements(act, x_new, s_new, l_new, x_best, loss, success, queries)
    return AblationResult(queries, success, x_best)
