"""The random search of the Square Attack (thesis Alg. 1) with restarts, written once for numpy arrays
and torch tensors (the ``ops`` argument), so that the numpy twin and :mod:`toymodels.torch.square` run
the same loop, the same acceptance rule and the same order of draws.

Per restart r = 1..R, on the points not yet successful (all points at r = 1):

1. x̂ ← init(x) (one query);
2. for i = 1..N − 1, on the points of this restart still unsuccessful: one proposal x_new (side pᵢ of
   :func:`toymodels.square.options.p_schedule`), one query; x̂ ← x_new if L(x_new) < L(x̂) or x_new is
   successful (the reference code also accepts a success whose loss is not lower, which matters for the
   cross-entropy losses); a point stops at its first success.

Across restarts a point keeps the iterate of the restart that succeeded, else the one of lowest loss;
its query count is the sum over the restarts it took part in. Restart r + 1 continues the random
stream of restart r, so a run with R restarts begins with exactly the draws (and the results) of the run
with one restart: restarts never lower the success of any point.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError
from .options import p_schedule

__all__ = ["margin_and_loss", "accept_improvements", "attack_labels", "SearchSpec", "NumpyOps", "random_search"]


def margin_and_loss(z: np.ndarray, y: np.ndarray, targeted: bool, loss: str | None = None):
    """(success, loss) from logits z (N, K) and labels / targets y (N,), the losses of
    :mod:`toymodels.square.options` (None: margin untargeted, CE targeted); success = argmax ≠ y
    (untargeted) or argmax = y (targeted), the first maximal class on ties."""
    loss = ("ce" if targeted else "margin") if loss is None else loss
    n = np.arange(z.shape[0])
    zy = z[n, y]
    pred = z.argmax(axis=1)
    success = pred == y if targeted else pred != y
    if loss == "ce":
        zmax = z.max(axis=1)
        lse = np.log(np.exp(z - zmax[:, None]).sum(axis=1)) + zmax
        return success, (lse - zy if targeted else zy - lse)
    other = z.copy()
    other[n, y] = -np.inf
    best_other = other.max(axis=1)
    return success, (best_other - zy if targeted else zy - best_other)


def accept_improvements(act, x_new, succ_new, loss_new, x_best, loss_best, success, queries) -> None:
    """The acceptance step: each active point (indices ``act``) keeps its proposal ``x_new`` if that
    lowers its loss or succeeds, and every active point has spent one more query. In place; the arrays
    may be numpy arrays or torch tensors."""
    better = (loss_new < loss_best[act]) | succ_new
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


class NumpyOps:
    """Array operations of :func:`random_search` for numpy arrays."""

    margin_and_loss = staticmethod(margin_and_loss)

    @staticmethod
    def nonzero(mask):
        return np.flatnonzero(mask)

    @staticmethod
    def zeros(n, kind, like):
        return np.zeros(n, dtype={"bool": bool, "int": np.int64, "float": np.float64}[kind])

    @staticmethod
    def copy(x):
        return x.copy()


@dataclass
class SearchSpec:
    """What :func:`random_search` needs besides the data.

    ``predict(x, i)`` → logits (checked finite; i is the iteration, for the error message);
    ``init(x)`` → x̂₀; ``propose(x, x̂, p)`` → (x_new, side); ``labels(z)`` → the labels the loss uses
    (called once, on the logits of the first initialization, for all points); the rest as the attack's
    arguments. ``bar`` is a progress bar (``update(1)`` per iteration)."""

    predict: Callable
    init: Callable
    propose: Callable
    labels: Callable
    n_queries: int
    p_init: float
    targeted: bool
    loss: str
    schedule: str = "thesis"
    rescale: bool = True
    restarts: int = 1
    bar: object = None


def _one_restart(ops, s: SearchSpec, x, lab, sides):
    """One run of Alg. 1 on the points x (all unsuccessful so far): (x̂, queries, success, loss)."""
    x_best = s.init(x)
    z = s.predict(x_best, 0)
    if lab is None:
        lab = s.labels(z)
    success, loss_best = ops.margin_and_loss(z, lab, s.targeted, s.loss)
    queries = ops.zeros(x.shape[0], "int", success) + 1
    for i in range(1, s.n_queries):
        act = ops.nonzero(~success)
        if act.shape[0] == 0:
            break
        if s.bar is not None:
            s.bar.update(1)
        p = p_schedule(s.p_init, i, s.n_queries, s.schedule, s.rescale)
        x_new, sides[i - 1] = s.propose(x[act], x_best[act], p)
        succ_new, loss_new = ops.margin_and_loss(s.predict(x_new, i), lab[act], s.targeted, s.loss)
        accept_improvements(act, x_new, succ_new, loss_new, x_best, loss_best, success, queries)
    return x_best, queries, success, loss_best, lab


def random_search(ops, s: SearchSpec, x):
    """Run the restarts (module docstring) on x (N, C, H, W), N ≥ 1. Returns (x_adv, n_queries,
    success, loss, sides) in the arrays of ``ops`` (``sides``: numpy (R·(N_q − 1),), the side of
    iteration i of restart r at index r·(N_q − 1) + i − 1, 0 where nothing ran)."""
    per = max(s.n_queries - 1, 0)
    sides = np.zeros(s.restarts * per, dtype=np.int64)
    # the first restart runs on every point (and fixes the labels of all of them)
    x_adv, queries, success, loss_best, lab = _one_restart(ops, s, x, None, sides)
    for r in range(1, s.restarts):
        idx = ops.nonzero(~success)
        if idx.shape[0] == 0:
            break
        xb, q, succ, lb, _ = _one_restart(ops, s, x[idx], lab[idx], sides[r * per:])
        take = succ | (lb < loss_best[idx])
        x_adv[idx[take]] = xb[take]
        loss_best[idx[take]] = lb[take]
        success[idx] = succ
        queries[idx] += q
    return x_adv, queries, success, loss_best, sides
