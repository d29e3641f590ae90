"""The ℓ∞ Square Attack (thesis Sec. 3.4.1–3.4.3, Algorithms 1 and 2), batched over points.

Problem (eq. 3.1). For a classifier with scores f : [0, 1]^d → ℝ^K, a point x with label y and a
radius ε, random search minimises over x̂ ∈ [0, 1]^d with ‖x̂ − x‖∞ ≤ ε

* untargeted: the margin loss L = f_y(x̂) − max_{k≠y} f_k(x̂); success when argmax_k f_k(x̂) ≠ y;
* targeted (target t): the cross-entropy L = logsumexp_k f_k(x̂) − f_t(x̂); success when
  argmax_k f_k(x̂) = t (first maximal class on ties, as ``toymodels.cnn.model.accuracy``).

Algorithm (per point, all points in one batch):

1. init: vertical stripes of width one, x̂ = clip(x + ε v, 0, 1) with v ∈ {−1, 1}^{C×1×W}
   uniform (one colour per column, constant down the column); one query.
2. for i = 1, …, N − 1 while the point is not yet successful: side h⁽ⁱ⁾ = the closest integer to
   √(pᵢ·H·W), clipped to [1, min(H, W)], with the schedule of :func:`p_schedule`; a window position
   uniform in {0..H−h}×{0..W−h}; one Rademacher sign ρ_c per channel; candidate
   x_new = Π(x̂ + 2ε ρ 𝟙_window) with Π the projection (clipping) onto the ε-box around x and
   [0, 1]^d. The signs are redrawn (up to ``max_tries`` pre-drawn tries) until the candidate's
   window differs from x̂'s, so no query is spent on an unchanged image. One query; accept if
   L(x_new) < L(x̂).

Query accounting: ``n_queries[n]`` counts the evaluations of f spent on point n (init included), so
n_queries ≤ N; a point stops being queried at its first success.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..backends import check_backend
from ..errors import ConfigError, RunError, check_int, check_range
from ..progress import progress
from ..rng import stream
from . import _kernels, _reference

__all__ = ["P_HALVINGS", "MAX_QUERIES", "p_schedule", "square_side", "margin_and_loss", "attack_labels",
           "SquareResult", "square_attack_linf", "check_attack_args", "check_images", "check_scores"]

#: iterations (for a budget of 10,000) at which p is halved (thesis l.961). The authors' released
#: code (square-attack, ``p_selection``) also halves at 500; we follow the thesis text.
P_HALVINGS = (10, 50, 200, 1000, 2000, 4000, 6000, 8000)
#: the largest query budget (one model evaluation per query and point; the side log takes 8 bytes a query)
MAX_QUERIES = 10 ** 7
#: why the ℓ∞ radius is at most 1 (the ℓ∞ ball of radius 1 contains the whole box [0, 1]^d)
LINF_EPS_WHY = "pixels lie in [0, 1]: a larger ℓ∞ radius constrains nothing"


def check_attack_args(eps: float, n_queries: int, p_init: float, eps_max: float | None = None,
                      why: str = "") -> None:
    """Raise :class:`~toymodels.errors.ConfigError` (fields ``eps``, ``n_queries``, ``p_init``) unless
    0 < ε (≤ ``eps_max`` when given; ``why`` says why), 1 ≤ N ≤ :data:`MAX_QUERIES` an integer and
    p ∈ (0, 1]."""
    check_range("eps", eps, 0.0, None, lo_open=True)
    if eps_max is not None and float(eps) > eps_max:
        raise ConfigError("eps", f"must be in (0, {eps_max:.6g}]" + (f" ({why})" if why else ""), eps)
    check_int("n_queries", n_queries, 1, MAX_QUERIES)
    check_range("p_init", p_init, 0.0, 1.0, lo_open=True)


def check_images(x, y):
    """(x, y) as float64 (N, C, H, W) images in [0, 1] and int64 labels (N,); ConfigError otherwise."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 4 or y.shape != (x.shape[0],):
        raise ConfigError("x", f"must be (N, C, H, W) images with labels y of shape (N,), got x {x.shape}, "
                               f"y {y.shape}")
    if x.size and not (np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 1):
        raise ConfigError("x", "must lie in [0, 1]")
    return x, y


def check_scores(z, i: int):
    """Raise :class:`~toymodels.errors.RunError` if the model returned non-finite scores at iteration i."""
    if not np.all(np.isfinite(z)):
        raise RunError(f"the model returned non-finite scores at iteration {i}")


def p_schedule(p_init: float, i: int, n_queries: int) -> float:
    """pᵢ = p_init · 2^{−m}, m = #{t ∈ P_HALVINGS : ⌊10000·i/N⌋ ≥ t}: p is halved at iterations
    10, 50, …, 8000 of a 10,000-query budget, the schedule rescaled linearly for budget N."""
    it = (10000 * int(i)) // int(n_queries)
    m = sum(it >= t for t in P_HALVINGS)
    return float(p_init) / 2.0 ** m


def square_side(p: float, H: int, W: int) -> int:
    """h = the closest integer to √(p·H·W) (half up), clipped to [1, min(H, W)]."""
    h = int(np.floor(np.sqrt(p * H * W) + 0.5))
    return int(min(max(h, 1), min(H, W)))


def margin_and_loss(z: np.ndarray, y: np.ndarray, targeted: bool):
    """(success, loss) from logits z (N, K): see the module docstring."""
    n = np.arange(z.shape[0])
    zy = z[n, y]
    pred = z.argmax(axis=1)
    if targeted:
        zmax = z.max(axis=1)
        loss = np.log(np.exp(z - zmax[:, None]).sum(axis=1)) + zmax - zy
        return pred == y, loss
    other = z.copy()
    other[n, y] = -np.inf
    return pred != y, zy - other.max(axis=1)


def accept_improvements(act, x_new, succ_new, loss_new, x_best, loss_best, success, queries) -> None:
    """The acceptance step: each active point (indices ``act``) keeps its proposal ``x_new`` if that
    lowers its loss, and every active point has spent one more query. In place; the arrays may be
    numpy arrays or torch tensors (the torch attack shares this step)."""
    better = loss_new < loss_best[act]
    idx = act[better]
    x_best[idx] = x_new[better]
    loss_best[idx] = loss_new[better]
    success[idx] = succ_new[better]
    queries[act] += 1


def attack_labels(y, target, targeted: bool, K: int, rng: np.random.Generator):
    """``(labels the loss uses, target or None)``: the true labels (untargeted), or the targets —
    given, or drawn uniformly among the K − 1 wrong classes (one ``rng.integers`` call)."""
    if not targeted:
        return y, target
    N = len(y)
    if target is None:
        target = (y + rng.integers(1, K, size=N)) % K
    target = np.asarray(target, dtype=np.int64)
    if target.shape != (N,) or target.min(initial=0) < 0 or target.max(initial=0) >= K:
        raise ConfigError("target", f"must be (N,) integers in [0, {K - 1}]")
    return target, target


@dataclass
class SquareResult:
    """Outcome of :func:`square_attack_linf` (per point arrays, length N)."""

    x_adv: np.ndarray
    n_queries: np.ndarray
    success: np.ndarray
    loss: np.ndarray
    target: np.ndarray | None
    sides: np.ndarray          # side h⁽ⁱ⁾ used at iteration i = 1..N−1 (0 where no point was active)

    @property
    def failure_rate(self) -> float:
        return float(1.0 - self.success.mean()) if self.success.size else float("nan")

    @classmethod
    def empty(cls, x: np.ndarray, n_queries: int, targeted: bool) -> "SquareResult":
        """The result on an empty batch (no point, no query)."""
        return cls(x.copy(), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0), np.zeros(0, np.int64) if targeted
                   else None, np.zeros(max(n_queries - 1, 0), dtype=np.int64))


def square_attack_linf(predict: Callable[[np.ndarray], np.ndarray], x, y, eps: float, n_queries: int = 1000,
                       p_init: float = 0.05, *, targeted: bool = False, target=None, seed: int = 0,
                       max_tries: int = 16, backend: str = "numba", show_progress: bool = False) -> SquareResult:
    """Run the ℓ∞ Square Attack on the batch (x, y), x of shape (N, C, H, W) in [0, 1], ε ∈ (0, 1].

    ``predict(x)`` returns scores (n, K) for any sub-batch. ``targeted`` with ``target=None`` draws
    a target uniformly among the K − 1 wrong classes. ``seed`` fixes every random draw (stripes,
    targets, windows, signs, in this order, from ``toymodels.rng.stream(seed)`` — the stream of
    ``numpy.random.default_rng(seed)``, which the torch twin draws from too) independently of
    ``backend`` ("numba" kernel or "numpy" reference), so both backends return identical results.
    """
    check_attack_args(eps, n_queries, p_init, 1.0, LINF_EPS_WHY)
    propose = {"numba": _kernels.linf_propose, "numpy": _reference.linf_propose}[check_backend(backend)]
    check_int("max_tries", max_tries, 1, 1024)
    x, y = check_images(x, y)
    eps = float(eps)
    N, C, H, W = x.shape
    if N == 0:
        return SquareResult.empty(x, n_queries, targeted)
    rng = stream(seed)
    stripes = rng.choice(np.array([-eps, eps]), size=(N, C, 1, W))
    x_best = np.clip(x + stripes, 0.0, 1.0)
    z = predict(x_best)
    check_scores(z, 0)
    lab, target = attack_labels(y, target, targeted, z.shape[1], rng)
    success, loss_best = margin_and_loss(z, lab, targeted)
    queries = np.ones(N, dtype=np.int64)
    sides = np.zeros(max(n_queries - 1, 0), dtype=np.int64)
    with progress(n_queries - 1, disable=not show_progress, desc="square-linf", unit="query") as bar:
        for i in range(1, n_queries):
            act = np.flatnonzero(~success)
            if act.size == 0:
                break
            bar.update(1)
            h = sides[i - 1] = square_side(p_schedule(p_init, i, n_queries), H, W)
            pos = np.stack([rng.integers(0, H - h + 1, size=act.size),
                            rng.integers(0, W - h + 1, size=act.size)], axis=1).astype(np.int64)
            signs = rng.choice(np.array([-1.0, 1.0]), size=(max_tries, act.size, C))
            xa = x[act]
            x_new, used = np.empty_like(xa), np.empty(act.size, dtype=np.int64)
            propose(xa, x_best[act], eps, pos, h, signs, x_new, used)
            z = predict(x_new)
            check_scores(z, i)
            succ_new, loss_new = margin_and_loss(z, lab[act], targeted)
            accept_improvements(act, x_new, succ_new, loss_new, x_best, loss_best, success, queries)
    return SquareResult(x_best, queries, success, loss_best, target if targeted else None, sides)
