"""Numba kernel of the ℓ∞ Square Attack proposal step (Alg. 2 + step 5 of Alg. 1); its numpy reference
of the same name and signature is :func:`toymodels.square._reference.linf_propose` (bit-identical)."""
from __future__ import annotations

import numba


@numba.njit(cache=True, parallel=True)
def linf_propose(x, x_best, eps, pos, side, signs, x_new, tries_used):
    """Candidates x_new = Π(x̂ + 2ερ𝟙_window) per point n, written in place with tries_used (N,); the
    definition (window at ``pos[n]`` of side ``side``, the first of the ``signs`` tries whose window
    differs from x̂'s) is in the reference, :func:`toymodels.square._reference.linf_propose`."""
    N, C, H, W = x.shape
    T = signs.shape[0]
    for n in numba.prange(N):
        r0 = pos[n, 0]
        c0 = pos[n, 1]
        chosen = T - 1
        # first try whose clipped window differs from the current best (stop scanning early)
        for t in range(T):
            diff = False
            for ch in range(C):
                e = eps * signs[t, n, ch]
                for i in range(r0, r0 + side):
                    for j in range(c0, c0 + side):
                        v = min(max(x[n, ch, i, j] + e, 0.0), 1.0)
                        if abs(v - x_best[n, ch, i, j]) >= 1e-12:
                            diff = True
                            break
                    if diff:
                        break
                if diff:
                    break
            if diff:
                chosen = t
                break
        tries_used[n] = chosen + 1
        for ch in range(C):
            e = eps * signs[chosen, n, ch]
            for i in range(H):
                for j in range(W):
                    if r0 <= i < r0 + side and c0 <= j < c0 + side:
                        x_new[n, ch, i, j] = min(max(x[n, ch, i, j] + e, 0.0), 1.0)
                    else:
                        x_new[n, ch, i, j] = x_best[n, ch, i, j]
