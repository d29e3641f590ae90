"""Sparse-feature metrics of thesis Sec. 6.3–6.4: feature sparsity coefficient, rank of φ_θ(X),
number of distinct kinks of a 1D predictor."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, check_range

__all__ = ["feature_sparsity", "jacobian_rank", "count_kinks", "kink_positions"]


def feature_sparsity(act: np.ndarray, threshold: float = 0.95) -> float:
    """Feature sparsity coefficient of an activation matrix ``act`` (n points × m neurons).

    The fraction of *distinct*, *non-zero* activations over the training set (thesis l. 3155):

        coef = (1 / (n m)) Σ_{j ∈ K} #{i : act[i, j] ≠ 0},

    where K keeps one representative per group of highly correlated neurons: neurons are visited in
    order; neuron j (if not identically zero) is kept unless its Pearson correlation over the n points
    with an already kept neuron is ≥ ``threshold``. A neuron whose activation is constant over the
    n points has no correlation (0/0) and is kept. 1 = every neuron active at every point and no two
    alike; 0 = all activations zero.
    """
    act = np.asarray(act, dtype=np.float64)
    if act.ndim != 2 or act.size == 0:
        raise ConfigError("act", "must be a non-empty 2-D array", f"shape {act.shape}")
    threshold = check_range("threshold", threshold, -1.0, 1.0)
    n, m = act.shape
    nz = act != 0.0
    active = np.flatnonzero(nz.any(axis=0))
    c = act[:, active] - act[:, active].mean(axis=0)
    sd = np.sqrt((c * c).sum(axis=0))
    ok = sd > 1e-12 * np.maximum(np.abs(act[:, active]).max(axis=0), 1e-300)
    u = np.where(ok, c / np.where(ok, sd, 1.0), 0.0)
    corr = u.T @ u                                         # Pearson correlations (0 where undefined)
    kept: list[int] = []
    for q in range(active.size):
        if ok[q] and kept and np.any(corr[q, kept] >= threshold):
            continue
        kept.append(q)
    return float(nz[:, active[kept]].sum() / (n * m))


def jacobian_rank(J: np.ndarray, rel_tol: float = 1e-4) -> int:
    """rank φ_θ(X): the number of singular values of ``J`` above ``rel_tol`` × the largest (thesis
    l. 3155: "a fixed threshold on the singular values normalized by the largest"; 1e-4 is the
    threshold of the authors' code). 0 for J = 0."""
    s = np.linalg.svd(np.asarray(J, dtype=np.float64), compute_uv=False)
    return int(np.sum(s > rel_tol * s[0])) if s.size and s[0] > 0 else 0


def kink_positions(w, b, a, lo: float, hi: float, tol: float = 1e-2, merge: float = 1e-3):
    """Distinct kinks of f(x) = Σ aⱼ ReLU(wⱼx + bⱼ) in (lo, hi): neuron j bends f at −bⱼ/wⱼ with slope
    jump |aⱼ wⱼ|. Kinks closer than ``merge`` are merged (their signed slope jumps add, since f'
    jumps by Σ aⱼ|wⱼ| there); a merged kink counts when its slope jump exceeds ``tol``.
    Returns (positions, slope jumps) of the counted kinks."""
    w, b, a = (np.asarray(v, dtype=np.float64) for v in (w, b, a))
    live = w != 0.0
    pos = -b[live] / w[live]
    jump = a[live] * np.abs(w[live])
    inside = (pos > lo) & (pos < hi)
    pos, jump = pos[inside], jump[inside]
    order = np.argsort(pos)
    pos, jump = pos[order], jump[order]
    out_p, out_j = [], []
    k = 0
    while k < pos.size:
        q = k
        while q + 1 < pos.size and pos[q + 1] - pos[q] < merge:
            q += 1
        s = float(jump[k:q + 1].sum())
        if abs(s) > tol:
            out_p.append(float(pos[k:q + 1].mean()))
            out_j.append(s)
        k = q + 1
    return np.array(out_p), np.array(out_j)


def count_kinks(w, b, a, lo: float, hi: float, tol: float = 1e-2, merge: float = 1e-3) -> int:
    """Number of distinct kinks of the predictor in (lo, hi) (see :func:`kink_positions`)."""
    return int(kink_positions(w, b, a, lo, hi, tol, merge)[0].size)
