"""m-sharpness: the outer expectation E_{S ~ P_m} of eq. 7.1 over batches of m training points.

P_m (uniform m-subsets) is estimated by one seeded random partition of the n points into n // m
batches of size m (a remainder of n mod m points is left out; m = n: the full training set). The
partition average is an unbiased estimate of E_{S~P_m}; for the average case the reported s.e. is
the Monte-Carlo s.e. of that partition average (independent draws per batch).

Streams (:mod:`toymodels.rng`): the partition from ``(seed, "sharpness/partition")``; batch b's
Monte-Carlo draws from ``child_seed(seed, "sharpness/avg", b)`` and its Auto-PGD starts from
``child_seed(seed, "sharpness/max", b)``.
"""
from __future__ import annotations

import numpy as np

from ..errors import check_choice, check_int, check_positive
from ..rng import child_seed, stream
from .measures import avg_sharpness, max_sharpness

__all__ = ["batch_partition", "m_sharpness"]


def batch_partition(n, m, seed=0):
    """n // m index arrays of size m from a seeded permutation (the identity order when m = n)."""
    check_int("m", m, 1, n)
    idx = np.arange(n) if m == n else stream(seed, "sharpness/partition").permutation(n)
    return [np.sort(idx[b * m:(b + 1) * m]) for b in range(n // m)]


def m_sharpness(make_fns, w, c, n, rho, m=None, kind="avg", p="2", n_samples=1000, n_iter=50,
                n_restarts=1, seed=0):
    """Adaptive m-sharpness (eq. 7.1) averaged over the batches of :func:`batch_partition`.

    Parameters
    ----------
    make_fns : callable
        ``make_fns(idx) -> (loss, grad)`` for the batch loss L_S (mean over the points ``idx``):
        ``loss(W)`` on a stack (k, p) and ``grad(w)`` on one vector (``grad`` may be None for
        ``kind="avg"``).
    w, c : array (p,)
        Weights and scaling vector (c = |w|: elementwise adaptive, c = 1: standard).
    kind : {"avg", "max"}
        Average case (MC over γ ~ N(0, ρ²I)) or worst case (Auto-PGD over ‖γ‖_p ≤ ρ), δ = c⊙γ.

    Returns
    -------
    (value, se, per_batch) : mean over batches; its s.e. (MC s.e. for "avg"; for "max" the spread
    over batches, std/√B, or 0 when B = 1); the per-batch values.
    """
    check_positive("rho", rho)
    kind = check_choice("kind", kind, ("avg", "max"))
    m = n if m is None else m
    batches = batch_partition(n, m, seed)
    vals, ses = [], []
    for b, idx in enumerate(batches):
        loss, grad = make_fns(idx)
        if kind == "avg":
            v, s = avg_sharpness(loss, w, c, rho, n_samples=n_samples, seed=child_seed(seed, "sharpness/avg", b))
            ses.append(s)
        else:
            v = max_sharpness(loss, grad, w, c, rho, p=p, n_iter=n_iter, n_restarts=n_restarts,
                              seed=child_seed(seed, "sharpness/max", b)).value
        vals.append(v)
    vals = np.asarray(vals)
    B = len(vals)
    if kind == "avg":
        se = float(np.sqrt(np.sum(np.square(ses))) / B)
    else:
        se = float(vals.std(ddof=1) / np.sqrt(B)) if B > 1 else 0.0
    return float(vals.mean()), se, vals
