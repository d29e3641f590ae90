"""The ℓ∞ Square Attack (thesis Sec. 3.4.1–3.4.3, Algorithms 1 and 2), batched over points.

Problem (eq. 3.1). For a classifier with scores f : [0, 1]^d → ℝ^K, a point x with label y and a
radius ε, random search minimises over x̂ ∈ [0, 1]^d with ‖x̂ − x‖∞ ≤ ε

* untargeted: the margin loss L = f_y(x̂) − max_{k≠y} f_k(x̂) (or, ``loss="ce"``, L = −CE(f(x̂), y));
  success when argmax_k f_k(x̂) ≠ y;
* targeted (target t): the cross-entropy L = logsumexp_k f_k(x̂) − f_t(x̂) (or, ``loss="margin"``,
  max_{k≠t} f_k(x̂) − f_t(x̂)); success when argmax_k f_k(x̂) = t (first maximal class on ties, as
  ``toymodels.cnn.model.accuracy``).

Algorithm (per point, all points in one batch):

1. init: vertical stripes of width one, x̂ = clip(x + ε v, 0, 1) with v ∈ {−1, 1}^{C×1×W}
   uniform (one colour per column, constant down the column); one query.
2. for i = 1, …, N − 1 while the point is not yet successful: side h⁽ⁱ⁾ = the closest integer to
   √(pᵢ·H·W), clipped to [1, min(H, W)], with the schedule of :func:`p_schedule`; a window position
   uniform in {0..H−h}×{0..W−h}; one Rademacher sign ρ_c per channel; candidate
   x_new = Π(x̂ + 2ε ρ 𝟙_window) with Π the projection (clipping) onto the ε-box around x and
   [0, 1]^d. The signs are redrawn (up to ``max_tries`` pre-drawn tries) until the candidate's
   window differs from x̂'s, so no query is spent on an unchanged image. One query; accept if
   L(x_new) < L(x̂) or x_new is successful.

The schedule of p (``schedule`` "thesis" or "reference", ``rescale``), the losses and the defaults of
p and N by image size are :mod:`toymodels.square.options`'; the restarts (``restarts``: the points
still unbroken are attacked again with fresh draws) are :mod:`toymodels.square.search`'s.

Query accounting: ``n_queries[n]`` counts the evaluations of f spent on point n (init included), so
n_queries ≤ N per restart (summed over the restarts); a point stops being queried at its first success.
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
from .options import (P_HALVINGS, P_HALVINGS_REFERENCE, check_search_options, default_n_queries, default_p_init,
                      p_schedule)
from .search import NumpyOps, SearchSpec, accept_improvements, attack_labels, margin_and_loss, random_search

__all__ = ["P_HALVINGS", "P_HALVINGS_REFERENCE", "MAX_QUERIES", "p_schedule", "square_side", "margin_and_loss",
           "attack_labels", "accept_improvements", "SquareResult", "square_attack_linf", "check_attack_args",
           "check_images", "check_scores", "resolve_budget", "numpy_search"]

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


def square_side(p: float, H: int, W: int) -> int:
    """h = the closest integer to √(p·H·W) (half up), clipped to [1, min(H, W)]."""
    h = int(np.floor(np.sqrt(p * H * W) + 0.5))
    return int(min(max(h, 1), min(H, W)))


@dataclass
class SquareResult:
    """Outcome of :func:`square_attack_linf` (per point arrays, length N)."""

    x_adv: np.ndarray
    n_queries: np.ndarray
    success: np.ndarray
    loss: np.ndarray
    target: np.ndarray | None
    sides: np.ndarray          # side h⁽ⁱ⁾ of iteration i = 1..N−1 of restart r at r·(N−1) + i − 1 (0: none active)

    @property
    def failure_rate(self) -> float:
        return float(1.0 - self.success.mean()) if self.success.size else float("nan")

    @classmethod
    def empty(cls, x: np.ndarray, n_queries: int, targeted: bool, restarts: int = 1) -> "SquareResult":
        """The result on an empty batch (no point, no query)."""
        return cls(x.copy(), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0), np.zeros(0, np.int64) if targeted
                   else None, np.zeros(restarts * max(n_queries - 1, 0), dtype=np.int64))


def resolve_budget(norm: str, shape, n_queries, p_init, restarts: int = 1):
    """(N, p) with the size defaults of :mod:`toymodels.square.options` filled in for None; ConfigError
    when restarts·N exceeds :data:`MAX_QUERIES` (the side log keeps one entry per iteration)."""
    H, W = shape[-2:]
    n = default_n_queries(H, W) if n_queries is None else n_queries
    p = default_p_init(norm, H, W) if p_init is None else p_init
    if isinstance(restarts, int) and isinstance(n, int) and restarts * n > MAX_QUERIES:
        raise ConfigError("restarts", f"times n_queries must be at most {MAX_QUERIES}", restarts)
    return n, p


def numpy_search(predict, x, y, n_queries, p_init, rng, *, init, propose, targeted, target, loss, schedule,
                 rescale, restarts, show_progress, desc) -> "SquareResult":
    """Run :func:`toymodels.square.search.random_search` on numpy (x, y), N ≥ 1 points, and wrap it."""
    drawn = []      # the targets, drawn after the first initialization's query (they need K)

    def labels(z):
        lab, t = attack_labels(y, target, targeted, z.shape[1], rng)
        drawn.append(t)
        return lab

    def pred(v, i):
        z = predict(v)
        check_scores(z, i)
        return z

    with progress(restarts * (n_queries - 1), disable=not show_progress, desc=desc, unit="query") as bar:
        spec = SearchSpec(pred, init, propose, labels, n_queries, p_init, targeted, loss, schedule, rescale,
                          restarts, bar)
        x_adv, queries, success, loss_best, sides = random_search(NumpyOps, spec, x)
    return SquareResult(x_adv, queries, success, loss_best, drawn[0] if targeted else None, sides)


def square_attack_linf(predict: Callable[[np.ndarray], np.ndarray], x, y, eps: float, n_queries: int | None = None,
                       p_init: float | None = None, *, targeted: bool = False, target=None, loss: str | None = None,
                       schedule: str = "thesis", rescale: bool = True, restarts: int = 1, seed: int = 0,
                       max_tries: int = 16, backend: str = "numba", show_progress: bool = False) -> SquareResult:
    """Run the ℓ∞ Square Attack on the batch (x, y), x of shape (N, C, H, W) in [0, 1], ε ∈ (0, 1].

    ``predict(x)`` returns scores (n, K) for any sub-batch. ``n_queries`` (budget per restart, the
    initialization included) and ``p_init`` default by image size
    (:func:`toymodels.square.options.default_n_queries` / ``default_p_init``: 5,000 and 0.8 for
    images of side ≤ 64, else 1,000 and 0.05). ``loss`` ("margin" | "ce"; None: margin untargeted, CE
    targeted), ``schedule`` ("thesis" | "reference") and ``rescale`` are those of
    :mod:`toymodels.square.options`; ``restarts`` attacks the still unbroken points again.
    ``targeted`` with ``target=None`` draws a target uniformly among the K − 1 wrong classes. ``seed``
    fixes every random draw (stripes, targets, windows, signs, in this order, then the next restart's
    stripes, windows, signs, from ``toymodels.rng.stream(seed)`` — the stream of
    ``numpy.random.default_rng(seed)``, which the torch twin draws from too) independently of
    ``backend`` ("numba" kernel or "numpy" reference), so both backends return identical results.
    """
    x, y = check_images(x, y)
    n_queries, p_init = resolve_budget("linf", x.shape, n_queries, p_init, restarts)
    check_attack_args(eps, n_queries, p_init, 1.0, LINF_EPS_WHY)
    loss = check_search_options(loss, schedule, rescale, restarts, targeted)
    propose_kernel = {"numba": _kernels.linf_propose, "numpy": _reference.linf_propose}[check_backend(backend)]
    check_int("max_tries", max_tries, 1, 1024)
    eps = float(eps)
    N, C, H, W = x.shape
    if N == 0:
        return SquareResult.empty(x, n_queries, targeted, restarts)
    rng = stream(seed)

    def init(xs):
        return np.clip(xs + rng.choice(np.array([-eps, eps]), size=(xs.shape[0], C, 1, W)), 0.0, 1.0)

    def propose(xa, xb, p):
        h = square_side(p, H, W)
        pos = np.stack([rng.integers(0, H - h + 1, size=xa.shape[0]),
                        rng.integers(0, W - h + 1, size=xa.shape[0])], axis=1).astype(np.int64)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(max_tries, xa.shape[0], C))
        x_new, used = np.empty_like(xa), np.empty(xa.shape[0], dtype=np.int64)
        propose_kernel(xa, xb, eps, pos, h, signs, x_new, used)
        return x_new, h

    return numpy_search(predict, x, y, n_queries, p_init, rng, init=init, propose=propose, targeted=targeted,
                        target=target, loss=loss, schedule=schedule, rescale=rescale, restarts=restarts,
                        show_progress=show_progress, desc="square-linf")
