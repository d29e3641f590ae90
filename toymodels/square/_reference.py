"""Plain-numpy oracle of the ℓ∞ Square Attack proposal step (Alg. 2 + step 5 of Alg. 1), vectorized
over points and pre-drawn sign tries; the numba kernel in :mod:`._kernels` must match it exactly."""
from __future__ import annotations

import numpy as np


def linf_propose(x, x_best, eps, pos, side, signs):
    """Candidates x_new = clip(x̂ + δ) with δ the ±2ε square of Alg. 2, per point n:

    window rows pos[n,0]:pos[n,0]+side, cols pos[n,1]:pos[n,1]+side; channel i gets sign
    signs[t, n, i] for the first try t whose candidate window differs from x̂'s (the thesis' "resample
    until the window changes"); if no try changes it the last try is used.

    Inside the window clip(clip(x̂ + 2ερ, x − ε, x + ε), 0, 1) = clip(x + ερ, 0, 1) because
    x̂ − x ∈ [−ε, ε], so the candidate is written as the latter.

    Returns (x_new, tries_used) with tries_used[n] = t + 1.
    """
    N, C = x.shape[:2]
    T = signs.shape[0]
    r = pos[:, 0][:, None] + np.arange(side)[None, :]            # (N, side)
    c = pos[:, 1][:, None] + np.arange(side)[None, :]
    nn = np.arange(N)[:, None, None, None]
    cc = np.arange(C)[None, :, None, None]
    rr = r[:, None, :, None]
    col = c[:, None, None, :]
    xw = x[nn, cc, rr, col]                                       # (N, C, side, side)
    bw = x_best[nn, cc, rr, col]
    cand = np.clip(xw[None] + eps * signs[:, :, :, None, None], 0.0, 1.0)   # (T, N, C, side, side)
    changed = (np.abs(cand - bw[None]) >= 1e-12).any(axis=(2, 3, 4))     # (T, N)
    first = np.where(changed.any(axis=0), changed.argmax(axis=0), T - 1)
    x_new = x_best.copy()
    x_new[nn, cc, rr, col] = cand[first, np.arange(N)]
    return x_new, first + 1
