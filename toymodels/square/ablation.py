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
  pixel and channel; ``1`` (Table 3.7's "square-1"): one sign for the whole update, every channel
  and pixel of the support alike;
* init: x̂₀ = clip(x + ε v, 0, 1) with v ∈ {−1, 1}^{C×H×W} drawn as ``vstripes``: v ∈ {−1, 1}^{C×1×W}
  (constant down each column); ``hstripes``: v ∈ {−1, 1}^{C×H×1} (constant along each row, Table 3.7's
  "horiz. stripes"); ``uniform``: i.i.d. entries; ``squares`` (Table 3.7's "rand. squares", which the
  thesis does not specify further; this is the project's reading): one Rademacher sign per channel on
  the whole image, then :data:`N_INIT_SQUARES` squares of side max(1, ⌊min(H, W)/5⌋) (the tile of the
  ℓ₂ attack's 5×5 grid) at uniform positions, each painted with one Rademacher sign per channel as an
  Alg. 2 update, later squares over earlier ones.

:data:`ROWS` are Table 3.1's rows (l.1091–1101), :data:`ROWS_37` the ℓ∞ half of Table 3.7
(l.1418–1431: Table 3.1 plus square-1, rand. squares and horiz. stripes), :data:`THESIS_37` the
thesis's (failure rate, mean queries, median queries) of each (ImageNet, ResNet-50, ε = 0.05, p = 0.05).

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

__all__ = ["ROWS", "ROWS_37", "THESIS_37", "SHAPES", "SIGNS", "INITS", "N_INIT_SQUARES", "AblationResult",
           "ablation_attack", "init_directions", "random_squares", "wilson", "table_stats"]

#: the rows of thesis Table 3.1 (update shape, # random signs, initialization), in its order
ROWS = (("random", "chh", "vstripes"), ("random", "chh", "uniform"), ("random", "c", "vstripes"),
        ("square", "chh", "vstripes"), ("rectangle", "c", "vstripes"), ("square", "c", "uniform"),
        ("square", "c", "vstripes"))
#: the ℓ∞ rows of thesis Table 3.7 (l.1418–1431), in its order (worst first, the attack's choice last)
ROWS_37 = (("random", "chh", "vstripes"), ("random", "chh", "uniform"), ("random", "c", "vstripes"),
           ("square", "chh", "vstripes"), ("square", "1", "vstripes"), ("rectangle", "c", "vstripes"),
           ("square", "c", "uniform"), ("square", "c", "squares"), ("square", "c", "hstripes"),
           ("square", "c", "vstripes"))
#: Table 3.7's (failure rate, mean queries, median queries) of each row of :data:`ROWS_37`
THESIS_37 = dict(zip(ROWS_37, ((0.0, 401, 48), (0.0, 393, 132), (0.0, 339, 53), (0.0, 153, 15), (0.0, 129, 18),
                               (0.0, 93, 16), (0.0, 91, 26), (0.0, 90, 20), (0.0, 83, 18), (0.0, 73, 11))))
SHAPES, SIGNS = ("square", "rectangle", "random"), ("c", "chh", "1")
INITS = ("vstripes", "uniform", "hstripes", "squares")
#: squares painted by the ``squares`` initialization
N_INIT_SQUARES = 25


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


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n at ``z`` standard normal quantiles (95 % at
    1.96): (p̂ + z²/2n ∓ z √(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n); (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    ph, z2 = k / n, z * z
    mid, half = ph + z2 / (2 * n), z * np.sqrt(ph * (1 - ph) / n + z2 / (4 * n * n))
    # the interval contains p̂; min/max only undo rounding at p̂ ∈ {0, 1}
    return float(min((mid - half) / (1 + z2 / n), ph)), float(max((mid + half) / (1 + z2 / n), ph))


def table_stats(res: AblationResult, budget: int) -> dict:
    """A table row of an ablation run with a budget of ``budget`` queries: success rate with its standard
    error √(p̂(1 − p̂)/n) and 95 % Wilson interval, failure rate, mean (± s.e. = sample sd/√n) and median
    queries of the successes, and ``mean_queries_all``: the mean over every point with a failure counted
    as ``budget`` queries (a lower bound on the mean number of queries to success, one number that ranks
    rows even when their failure rates differ), with its s.e."""
    n, k = int(res.success.size), int(res.success.sum())
    q = res.n_queries[res.success].astype(float)
    q_all = np.where(res.success, res.n_queries, budget).astype(float)
    ph = k / n if n else float("nan")

    def se(a):
        return float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else float("nan")

    return {"n_points": n, "success_rate": ph, "success_se": float(np.sqrt(ph * (1 - ph) / n)) if n else float("nan"),
            "success_wilson95": wilson(k, n), "failure_rate": 1 - ph,
            "mean_queries": float(q.mean()) if q.size else float("nan"), "mean_queries_se": se(q),
            "median_queries": float(np.median(q)) if q.size else float("nan"),
            "mean_queries_all": float(q_all.mean()) if n else float("nan"), "mean_queries_all_se": se(q_all)}


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
    sg_shape = {"c": (max_tries, n, C, 1, 1), "chh": (max_tries, n, C, H, W), "1": (max_tries, n, 1, 1, 1)}[signs]
    sg = rng.choice(np.array([-1.0, 1.0]), size=sg_shape)
    cand = np.where(m[None], np.clip(x[None] + eps * sg, 0, 1), x_best[None])   # (T, n, C, H, W)
    changed = (np.abs(cand - x_best[None]) >= 1e-12).any(axis=(2, 3, 4))
    first = np.where(changed.any(axis=0), changed.argmax(axis=0), max_tries - 1)
    return cand[first, np.arange(n)]


def random_squares(rng, N: int, C: int, H: int, W: int, side: int, k: int) -> np.ndarray:
    """v ∈ {−1, 1}^{N×C×H×W}: one Rademacher sign per (point, channel) on the whole image, then ``k``
    squares of side ``side`` at uniform positions (corner in {0..H−side}×{0..W−side}), each set to one
    Rademacher sign per channel, later over earlier (the ``squares`` initialization)."""
    v = np.broadcast_to(rng.choice(np.array([-1.0, 1.0]), size=(N, C, 1, 1)), (N, C, H, W)).copy()
    for _ in range(k):
        r = rng.integers(0, H - side + 1, size=N)
        c = rng.integers(0, W - side + 1, size=N)
        sg = rng.choice(np.array([-1.0, 1.0]), size=(N, C))
        for n in range(N):
            v[n, :, r[n]:r[n] + side, c[n]:c[n] + side] = sg[n][:, None, None]
    return v


def init_directions(rng, init: str, N: int, C: int, H: int, W: int) -> np.ndarray:
    """v ∈ {−1, 1}^{N×C×H×W} of the initialization ``init`` (module docstring); x̂₀ = clip(x + ε v, 0, 1)."""
    if init == "squares":
        return random_squares(rng, N, C, H, W, max(1, min(H, W) // 5), N_INIT_SQUARES)
    size = {"vstripes": (N, C, 1, W), "hstripes": (N, C, H, 1), "uniform": (N, C, H, W)}[init]
    return np.broadcast_to(rng.choice(np.array([-1.0, 1.0]), size=size), (N, C, H, W))


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
    x_best = np.clip(x + eps * init_directions(rng, init, N, C, H, W), 0, 1)
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
