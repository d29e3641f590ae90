"""Plain-numpy reference of the ℓ∞ Square Attack proposal step (Alg. 2 + step 5 of Alg. 1), with the
name and signature of the numba kernel :func:`toymodels.square._kernels.linf_propose`: vectorized over
points and pre-drawn sign tries, bit-identical to the kernel (the parity test of
``tests/test_kernel_parity.py`` checks it through :data:`CASES`)."""
from __future__ import annotations

import numpy as np

from ..kernels import KernelCase
from ..rng import stream
from . import _kernels


def linf_propose(x, x_best, eps, pos, side, signs, x_new, tries_used):
    """Candidates x_new = clip(x̂ + δ) with δ the ±2ε square of Alg. 2, per point n:

    window rows pos[n,0]:pos[n,0]+side, cols pos[n,1]:pos[n,1]+side; channel i gets sign
    signs[t, n, i] for the first try t whose candidate window differs from x̂'s (the thesis' "resample
    until the window changes"; |difference| ≥ 1e-12 somewhere); if no try changes it the last try is
    used. Outside the window x_new = x̂.

    Inside the window clip(clip(x̂ + 2ερ, x − ε, x + ε), 0, 1) = clip(x + ερ, 0, 1) because
    x̂ − x ∈ [−ε, ε], so the candidate is written as the latter.

    Writes x_new (N, C, H, W) and tries_used (N,) (= t + 1) in place.
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
    x_new[...] = x_best
    x_new[nn, cc, rr, col] = cand[first, np.arange(N)]
    tries_used[...] = first + 1


def _linf_propose_args(size: str):
    """small: 24 points 3×8×8, side 3, 16 tries; a third of the points have their window at x = x̂ = 0
    (only a + sign changes it): two of those get no + sign at all (the last try is used), the others
    none in their first three tries (the resampling path). bench: 1,000 points 3×32×32, side 7
    (p = 0.05), 16 tries, x̂ = clip(x ± 8/255)."""
    N, H, side, eps = (24, 8, 3, 0.1) if size == "small" else (1000, 32, 7, 8 / 255)
    C, T = 3, 16
    rng = stream(0)
    x = rng.uniform(0, 1, size=(N, C, H, H))
    x_best = np.clip(x + eps * rng.choice(np.array([-1.0, 1.0]), size=x.shape), 0, 1)
    pos = rng.integers(0, H - side + 1, size=(N, 2)).astype(np.int64)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(T, N, C))
    if size == "small":
        k = N // 3
        pos[:k] = 0
        x[:k, :, :side, :side] = 0.0
        x_best[:k, :, :side, :side] = 0.0
        signs[:, :2] = -1.0
        signs[:3, 2:k] = -1.0
    return x, x_best, eps, pos, side, signs, np.empty_like(x), np.empty(N, dtype=np.int64)


CASES = [KernelCase("square.linf_propose", _kernels.linf_propose, linf_propose, _linf_propose_args)]
