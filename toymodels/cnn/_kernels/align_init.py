"""The Lemma 2 kernel: inner products of the input gradients of the patch CNN of
:mod:`toymodels.cnn.align_init` at x and x + η (numpy reference of the same name in
:mod:`toymodels.cnn._reference`)."""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, parallel=True)
def alignment_terms(W, U, Z, H, num, n0, n1, flips):
    """For every sample s fill num[s] = ⟨∇f(x), ∇f(x+η)⟩, n0[s] = ‖∇f(x)‖², n1[s] = ‖∇f(x+η)‖²
    and flips[s] = #units (r, i) with 1[⟨w_r, z_i⟩ ≥ 0] ≠ 1[⟨w_r, z_i + η_i⟩ ≥ 0].

    W (S, m, p), U (S, m, k), Z and H (S, k, p). Uses the Gram matrix G = WWᵀ (O(kmp + km²) per
    sample) instead of forming the kp-dimensional gradients."""
    S, m, p = W.shape
    k = Z.shape[1]
    for s in nb.prange(S):
        G = np.empty((m, m))
        for r in range(m):
            for l in range(r, m):
                acc = 0.0
                for j in range(p):
                    acc += W[s, r, j] * W[s, l, j]
                G[r, l] = acc
                G[l, r] = acc
        c0 = np.empty(m)
        c1 = np.empty(m)
        a = 0.0
        b = 0.0
        c = 0.0
        nf = 0
        for i in range(k):
            for r in range(m):
                d0 = 0.0
                d1 = 0.0
                for j in range(p):
                    zij = Z[s, i, j]
                    d0 += W[s, r, j] * zij
                    d1 += W[s, r, j] * (zij + H[s, i, j])
                on0 = d0 >= 0.0
                on1 = d1 >= 0.0
                c0[r] = U[s, r, i] if on0 else 0.0
                c1[r] = U[s, r, i] if on1 else 0.0
                if on0 != on1:
                    nf += 1
            for r in range(m):
                g0 = 0.0
                g1 = 0.0
                for l in range(m):
                    g0 += G[r, l] * c0[l]
                    g1 += G[r, l] * c1[l]
                a += c0[r] * g1
                b += c0[r] * g0
                c += c1[r] * g1
        num[s] = a
        n0[s] = b
        n1[s] = c
        flips[s] = nf
