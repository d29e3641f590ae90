"""Per-example building blocks of the CNN kernels, on preallocated flat buffers, and the reduction
of the per-chunk gradient rows (:func:`reduce_grad`, the one public kernel here).

Memory layout ("padded rows"). Per example, images live in a flat zero-padded buffer
``xp[c·P + i'·Wp + j']`` (Wp = W + 2, P = (H + 2)·Wp, plus 2 slack zeros at the end), and every
M×H×W map (a, h, r) in ``a[m·Q + i·Wp + j]`` with Q = H·Wp: each row carries two extra "garbage"
columns j ∈ {W, W+1}. Then a 3×3 tap (u, v) is the constant shift u·Wp + v, and conv, transposed
conv and the weight gradient become single contiguous loops of length Q (long, vectorizable,
9 taps unrolled) instead of W-length row loops. Garbage activations are forced to 0 after the
ReLU, so the mask is 0 there and they never contribute (U is zero-padded to the same layout,
``Up``, and ∇U is compacted back at the end). ∂ℓ/∂a is stored with zero margins (stride
G = Q + 4·Wp + 2, offset MG = 2·Wp + 2) so the transposed convolution can be written as a gather
(9·M taps summed per output pixel, one store) instead of a scatter.

Parameter gradients go to per-chunk rows (:func:`grad_row_size`: Wc, bc, Up, c) viewed by
``_grad_views``; :func:`reduce_grad` sums the rows in a fixed order and compacts Up to U.
"""
from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange

# Reductions (dot products, accumulations) may be reassociated so that they vectorize; no
# 'nnan'/'ninf' flags, so NaN/inf still propagate (divergence stays detectable).
_FM = {"reassoc", "contract"}

#: block length (in features) of the dense-layer loops, so that the feature vectors of a block stay
#: in L1 while all K rows of U (or ∇U) pass over it
_FB = 256

#: maximal number of example chunks (and per-chunk gradient buffers) of one kernel call
MAX_CHUNKS = 16


def n_chunks(N: int) -> int:
    return max(1, min(N, MAX_CHUNKS))


def grad_row_size(M: int, C: int, H: int, W: int, K: int) -> int:
    """Length of one per-chunk gradient row: Wc, bc, Up (K × M·H·(W+2)), c."""
    return M * C * 9 + M + K * M * H * (W + 2) + K



# ----------------------------------------------------------------------------------------------
# per-example building blocks (work on preallocated flat buffers)
# ----------------------------------------------------------------------------------------------
@nb.njit(cache=True)
def _layout(H, W):
    """(Wp, P, Q, G) of the padded-row layout of H×W images: padded row length, padded channel,
    map length, margin-map stride (see the module docstring)."""
    Wp = W + 2
    Q = H * Wp
    return Wp, (H + 2) * Wp, Q, Q + 4 * Wp + 2


@nb.njit(cache=True)
def _chunk_bounds(N, T, t):
    return (t * N) // T, ((t + 1) * N) // T


@nb.njit(cache=True)
def _pad_U(U, M, H, W):
    """Up (K, M·H·(W+2)): U in the padded-row layout, zero on the garbage columns."""
    K = U.shape[0]
    Wp = W + 2
    Q = H * Wp
    Up = np.zeros((K, M * Q))
    for k in range(K):
        for m in range(M):
            for i in range(H):
                for j in range(W):
                    Up[k, m * Q + i * Wp + j] = U[k, (m * H + i) * W + j]
    return Up


@nb.njit(cache=True, fastmath=_FM)
def _load(x, n, xp):
    """Interior of the padded buffer xp ← x[n] (the zero border is never written)."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Wp = W + 2
    P = (H + 2) * Wp
    for ch in range(C):
        for i in range(H):
            o = ch * P + (i + 1) * Wp + 1
            row = xp[o:o + W]
            for j in range(W):
                row[j] = x[n, ch, i, j]


@nb.njit(cache=True, fastmath=_FM)
def _load_sum(x, d, n, xp):
    """Interior of xp ← x[n] + d[n]."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Wp = W + 2
    P = (H + 2) * Wp
    for ch in range(C):
        for i in range(H):
            o = ch * P + (i + 1) * Wp + 1
            row = xp[o:o + W]
            for j in range(W):
                row[j] = x[n, ch, i, j] + d[n, ch, i, j]


@nb.njit(cache=True, fastmath=_FM)
def _conv(xp, Wc, bc, use_bias, a, H, W):
    """a[m·Q + q] = Σ_{c,u,v} Wc[m,c,u,v] xp[c·P + q + u·Wp + v] (+ bc[m]) for q < Q."""
    M, C = Wc.shape[0], Wc.shape[1]
    Wp = W + 2
    P = (H + 2) * Wp
    Q = H * Wp
    # (slices, not computed indices: numba's negative-index handling of `xp[o + q]` would block
    # vectorization; slice views index with the non-negative loop variable only)
    for m in range(M):
        am = a[m * Q:(m + 1) * Q]
        b = bc[m] if use_bias else 0.0
        for q in range(Q):
            am[q] = b
        for ch in range(C):
            o = ch * P
            w00, w01, w02 = Wc[m, ch, 0, 0], Wc[m, ch, 0, 1], Wc[m, ch, 0, 2]
            w10, w11, w12 = Wc[m, ch, 1, 0], Wc[m, ch, 1, 1], Wc[m, ch, 1, 2]
            w20, w21, w22 = Wc[m, ch, 2, 0], Wc[m, ch, 2, 1], Wc[m, ch, 2, 2]
            x00, x01, x02 = xp[o:o + Q], xp[o + 1:o + 1 + Q], xp[o + 2:o + 2 + Q]
            o = o + Wp
            x10, x11, x12 = xp[o:o + Q], xp[o + 1:o + 1 + Q], xp[o + 2:o + 2 + Q]
            o = o + Wp
            x20, x21, x22 = xp[o:o + Q], xp[o + 1:o + 1 + Q], xp[o + 2:o + 2 + Q]
            for q in range(Q):
                am[q] += (w00 * x00[q] + w01 * x01[q] + w02 * x02[q]
                          + w10 * x10[q] + w11 * x11[q] + w12 * x12[q]
                          + w20 * x20[q] + w21 * x21[q] + w22 * x22[q])


@nb.njit(cache=True, fastmath=_FM)
def _relu(a, M, H, W):
    """In place a ← max(a, 0), and 0 on the garbage columns; afterwards mask = (a > 0)."""
    Wp = W + 2
    Q = H * Wp
    for f in range(M * Q):
        if not a[f] > 0.0:
            a[f] = 0.0
    for r in range(M * H):
        a[r * Wp + W] = 0.0
        a[r * Wp + W + 1] = 0.0


@nb.njit(cache=True, fastmath=_FM)
def _dense(Up, c, use_bias, h, z):
    """z = Up h (+ c)."""
    K, F = Up.shape
    for k in range(K):
        z[k] = c[k] if use_bias else 0.0
    for f0 in range(0, F, _FB):
        f1 = min(f0 + _FB, F)
        hb = h[f0:f1]
        for k in range(K):
            uk = Up[k, f0:f1]
            s = 0.0
            for f in range(f1 - f0):
                s += uk[f] * hb[f]
            z[k] += s


@nb.njit(cache=True, fastmath=_FM)
def _dense2(Up, c, use_bias, h1, h2, z1, z2):
    """z1 = Up h1 (+ c), z2 = Up h2 (+ c) in one pass over Up."""
    K, F = Up.shape
    K2 = K - K % 2
    for k in range(K):
        z1[k] = c[k] if use_bias else 0.0
        z2[k] = z1[k]
    for f0 in range(0, F, _FB):
        f1 = min(f0 + _FB, F)
        a = h1[f0:f1]
        b = h2[f0:f1]
        for k in range(0, K2, 2):
            u0 = Up[k, f0:f1]
            u1 = Up[k + 1, f0:f1]
            s10 = s11 = s20 = s21 = 0.0
            for f in range(f1 - f0):
                av = a[f]
                bv = b[f]
                s10 += u0[f] * av
                s11 += u1[f] * av
                s20 += u0[f] * bv
                s21 += u1[f] * bv
            z1[k] += s10
            z1[k + 1] += s11
            z2[k] += s20
            z2[k + 1] += s21
        for k in range(K2, K):
            uk = Up[k, f0:f1]
            s1 = 0.0
            s2 = 0.0
            for f in range(f1 - f0):
                s1 += uk[f] * a[f]
                s2 += uk[f] * b[f]
            z1[k] += s1
            z2[k] += s2


@nb.njit(cache=True)
def _softmax_ce(z, yn, p):
    """p = softmax(z); returns ℓ = logsumexp(z) − z_y (max-shifted).

    The sum of the exponentials has a loop of its own, with no store in it: inlined into a caller
    compiled with fastmath, a loop that both stores into p and sums would be vectorized behind a
    runtime check of the distance between p and z, and its rounding would then depend on where the
    two buffers happen to lie in memory (on the thread that runs the chunk)."""
    K = z.shape[0]
    zmax = z[0]
    for k in range(1, K):
        if z[k] > zmax:
            zmax = z[k]
    for k in range(K):
        p[k] = np.exp(z[k] - zmax)
    tot = 0.0
    for k in range(K):
        tot += p[k]
    for k in range(K):
        p[k] /= tot
    return np.log(tot) + zmax - z[yn]


@nb.njit(cache=True, fastmath=_FM)
def _backh(Up, s, h, g, M, H, W):
    """g[m·G + MG + q] = 1[h[m·Q + q] > 0] · (Upᵀ s)[m·Q + q]  (the margins of g stay 0)."""
    K = Up.shape[0]
    Wp = W + 2
    Q = H * Wp
    G = Q + 4 * Wp + 2
    MG = 2 * Wp + 2
    K4 = K - K % 4
    for m in range(M):
        gm = g[m * G + MG:m * G + MG + Q]
        hm = h[m * Q:(m + 1) * Q]
        for q in range(Q):
            gm[q] = 0.0
        # four rows of Up per sweep over gm: a quarter of the loads/stores of gm (L1-store bound)
        for k in range(0, K4, 4):
            a0, a1, a2, a3 = s[k], s[k + 1], s[k + 2], s[k + 3]
            u0 = Up[k, m * Q:(m + 1) * Q]
            u1 = Up[k + 1, m * Q:(m + 1) * Q]
            u2 = Up[k + 2, m * Q:(m + 1) * Q]
            u3 = Up[k + 3, m * Q:(m + 1) * Q]
            for q in range(Q):
                gm[q] += a0 * u0[q] + a1 * u1[q] + a2 * u2[q] + a3 * u3[q]
        for k in range(K4, K):
            sk = s[k]
            uk = Up[k, m * Q:(m + 1) * Q]
            for q in range(Q):
                gm[q] += sk * uk[q]
        for q in range(Q):
            if not hm[q] > 0.0:
                gm[q] = 0.0


@nb.njit(cache=True, fastmath=_FM)
def _backh2(Up, s1, s2, h1, h2, g1, g2, M, H, W):
    """``_backh`` for two points (s1, h1 → g1; s2, h2 → g2) in one pass over Up."""
    K = Up.shape[0]
    Wp = W + 2
    Q = H * Wp
    G = Q + 4 * Wp + 2
    MG = 2 * Wp + 2
    K4 = K - K % 4
    for m in range(M):
        g1m = g1[m * G + MG:m * G + MG + Q]
        g2m = g2[m * G + MG:m * G + MG + Q]
        h1m = h1[m * Q:(m + 1) * Q]
        h2m = h2[m * Q:(m + 1) * Q]
        for q in range(Q):
            g1m[q] = 0.0
            g2m[q] = 0.0
        for k in range(0, K4, 4):
            a0, a1, a2, a3 = s1[k], s1[k + 1], s1[k + 2], s1[k + 3]
            b0, b1, b2, b3 = s2[k], s2[k + 1], s2[k + 2], s2[k + 3]
            u0 = Up[k, m * Q:(m + 1) * Q]
            u1 = Up[k + 1, m * Q:(m + 1) * Q]
            u2 = Up[k + 2, m * Q:(m + 1) * Q]
            u3 = Up[k + 3, m * Q:(m + 1) * Q]
            for q in range(Q):
                g1m[q] += a0 * u0[q] + a1 * u1[q] + a2 * u2[q] + a3 * u3[q]
                g2m[q] += b0 * u0[q] + b1 * u1[q] + b2 * u2[q] + b3 * u3[q]
        for k in range(K4, K):
            a = s1[k]
            b = s2[k]
            uk = Up[k, m * Q:(m + 1) * Q]
            for q in range(Q):
                g1m[q] += a * uk[q]
                g2m[q] += b * uk[q]
        for q in range(Q):
            if not h1m[q] > 0.0:
                g1m[q] = 0.0
            if not h2m[q] > 0.0:
                g2m[q] = 0.0


@nb.njit(cache=True, fastmath=_FM)
def _convT(g, Wc, gq, H, W):
    """Transposed convolution as a gather: for the padded position p' = Wp + q (q < Q, i.e. the
    padded rows 1..H), gq[c·Q + q] = Σ_{m,u,v} Wc[m,c,u,v] ga[m, p' − u·Wp − v]. The input
    gradient of pixel (i, j) is gq[c·Q + i·Wp + j + 1]."""
    M, C = Wc.shape[0], Wc.shape[1]
    Wp = W + 2
    Q = H * Wp
    G = Q + 4 * Wp + 2
    MG = 2 * Wp + 2
    for ch in range(C):
        out = gq[ch * Q:(ch + 1) * Q]
        for q in range(Q):
            out[q] = 0.0
        for m in range(M):
            w00, w01, w02 = Wc[m, ch, 0, 0], Wc[m, ch, 0, 1], Wc[m, ch, 0, 2]
            w10, w11, w12 = Wc[m, ch, 1, 0], Wc[m, ch, 1, 1], Wc[m, ch, 1, 2]
            w20, w21, w22 = Wc[m, ch, 2, 0], Wc[m, ch, 2, 1], Wc[m, ch, 2, 2]
            o = m * G + MG + Wp          # ga index of p' = Wp + q for the tap (0, 0)
            g00, g01, g02 = g[o:o + Q], g[o - 1:o - 1 + Q], g[o - 2:o - 2 + Q]
            o = o - Wp
            g10, g11, g12 = g[o:o + Q], g[o - 1:o - 1 + Q], g[o - 2:o - 2 + Q]
            o = o - Wp
            g20, g21, g22 = g[o:o + Q], g[o - 1:o - 1 + Q], g[o - 2:o - 2 + Q]
            for q in range(Q):
                out[q] += (w00 * g00[q] + w01 * g01[q] + w02 * g02[q]
                           + w10 * g10[q] + w11 * g11[q] + w12 * g12[q]
                           + w20 * g20[q] + w21 * g21[q] + w22 * g22[q])


@nb.njit(cache=True, fastmath=_FM)
def _wgrad(g, xp, dW, db, H, W):
    """dW[m,c,u,v] += Σ_q ga[m,q] xp[c·P + q + u·Wp + v];  db[m] += Σ_q ga[m,q]  (ga in the
    margin layout of ``_backh``; garbage and margin entries are 0)."""
    M, C = dW.shape[0], dW.shape[1]
    Wp = W + 2
    P = (H + 2) * Wp
    Q = H * Wp
    G = Q + 4 * Wp + 2
    MG = 2 * Wp + 2
    for m in range(M):
        gm = g[m * G + MG:m * G + MG + Q]
        sb = 0.0
        for q in range(Q):
            sb += gm[q]
        db[m] += sb
        for ch in range(C):
            o = ch * P
            x00, x01, x02 = xp[o:o + Q], xp[o + 1:o + 1 + Q], xp[o + 2:o + 2 + Q]
            o = o + Wp
            x10, x11, x12 = xp[o:o + Q], xp[o + 1:o + 1 + Q], xp[o + 2:o + 2 + Q]
            o = o + Wp
            x20, x21, x22 = xp[o:o + Q], xp[o + 1:o + 1 + Q], xp[o + 2:o + 2 + Q]
            s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = 0.0
            for q in range(Q):
                gv = gm[q]
                s00 += gv * x00[q]
                s01 += gv * x01[q]
                s02 += gv * x02[q]
                s10 += gv * x10[q]
                s11 += gv * x11[q]
                s12 += gv * x12[q]
                s20 += gv * x20[q]
                s21 += gv * x21[q]
                s22 += gv * x22[q]
            dW[m, ch, 0, 0] += s00
            dW[m, ch, 0, 1] += s01
            dW[m, ch, 0, 2] += s02
            dW[m, ch, 1, 0] += s10
            dW[m, ch, 1, 1] += s11
            dW[m, ch, 1, 2] += s12
            dW[m, ch, 2, 0] += s20
            dW[m, ch, 2, 1] += s21
            dW[m, ch, 2, 2] += s22


@nb.njit(cache=True, fastmath=_FM)
def _wgrad2(g1, xp1, g2, xp2, dW, H, W):
    """dW[m,c,u,v] += Σ_q (g1[m,q] xp1[c,q+u·Wp+v] + g2[m,q] xp2[c,q+u·Wp+v]) (margin layout)."""
    M, C = dW.shape[0], dW.shape[1]
    Wp = W + 2
    P = (H + 2) * Wp
    Q = H * Wp
    G = Q + 4 * Wp + 2
    MG = 2 * Wp + 2
    for m in range(M):
        ga = g1[m * G + MG:m * G + MG + Q]
        gb = g2[m * G + MG:m * G + MG + Q]
        for ch in range(C):
            o = ch * P
            a00, a01, a02 = xp1[o:o + Q], xp1[o + 1:o + 1 + Q], xp1[o + 2:o + 2 + Q]
            b00, b01, b02 = xp2[o:o + Q], xp2[o + 1:o + 1 + Q], xp2[o + 2:o + 2 + Q]
            o = o + Wp
            a10, a11, a12 = xp1[o:o + Q], xp1[o + 1:o + 1 + Q], xp1[o + 2:o + 2 + Q]
            b10, b11, b12 = xp2[o:o + Q], xp2[o + 1:o + 1 + Q], xp2[o + 2:o + 2 + Q]
            o = o + Wp
            a20, a21, a22 = xp1[o:o + Q], xp1[o + 1:o + 1 + Q], xp1[o + 2:o + 2 + Q]
            b20, b21, b22 = xp2[o:o + Q], xp2[o + 1:o + 1 + Q], xp2[o + 2:o + 2 + Q]
            s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = 0.0
            for q in range(Q):
                a = ga[q]
                b = gb[q]
                s00 += a * a00[q] + b * b00[q]
                s01 += a * a01[q] + b * b01[q]
                s02 += a * a02[q] + b * b02[q]
                s10 += a * a10[q] + b * b10[q]
                s11 += a * a11[q] + b * b11[q]
                s12 += a * a12[q] + b * b12[q]
                s20 += a * a20[q] + b * b20[q]
                s21 += a * a21[q] + b * b21[q]
                s22 += a * a22[q] + b * b22[q]
            dW[m, ch, 0, 0] += s00
            dW[m, ch, 0, 1] += s01
            dW[m, ch, 0, 2] += s02
            dW[m, ch, 1, 0] += s10
            dW[m, ch, 1, 1] += s11
            dW[m, ch, 1, 2] += s12
            dW[m, ch, 2, 0] += s20
            dW[m, ch, 2, 1] += s21
            dW[m, ch, 2, 2] += s22


@nb.njit(cache=True, fastmath=_FM)
def _sum_margin(g, db, M, H, W):
    """db[m] += Σ_q ga[m, q] (margin layout)."""
    Wp = W + 2
    Q = H * Wp
    G = Q + 4 * Wp + 2
    MG = 2 * Wp + 2
    for m in range(M):
        gm = g[m * G + MG:m * G + MG + Q]
        s = 0.0
        for q in range(Q):
            s += gm[q]
        db[m] += s


@nb.njit(cache=True, fastmath=_FM)
def _outer(s, h, dU, dc):
    """dU += s hᵀ, dc += s."""
    K, F = dU.shape
    for k in range(K):
        dc[k] += s[k]
    for f0 in range(0, F, _FB):
        f1 = min(f0 + _FB, F)
        hb = h[f0:f1]
        for k in range(K):
            sk = s[k]
            dk = dU[k, f0:f1]
            for f in range(f1 - f0):
                dk[f] += sk * hb[f]


@nb.njit(cache=True, fastmath=_FM)
def _outer4(a1, h1, a2, h2, a3, h3, a4, h4, dU):
    """dU += a1 h1ᵀ + a2 h2ᵀ + a3 h3ᵀ + a4 h4ᵀ."""
    K, F = dU.shape
    for f0 in range(0, F, _FB):
        f1 = min(f0 + _FB, F)
        b1 = h1[f0:f1]
        b2 = h2[f0:f1]
        b3 = h3[f0:f1]
        b4 = h4[f0:f1]
        for k in range(K):
            c1 = a1[k]
            c2 = a2[k]
            c3 = a3[k]
            c4 = a4[k]
            dk = dU[k, f0:f1]
            for f in range(f1 - f0):
                dk[f] += c1 * b1[f] + c2 * b2[f] + c3 * b3[f] + c4 * b4[f]


@nb.njit(cache=True, fastmath=_FM)
def _outer2(a1, h1, a2, h2, dU):
    """dU += a1 h1ᵀ + a2 h2ᵀ."""
    K, F = dU.shape
    for f0 in range(0, F, _FB):
        f1 = min(f0 + _FB, F)
        b1 = h1[f0:f1]
        b2 = h2[f0:f1]
        for k in range(K):
            c1 = a1[k]
            c2 = a2[k]
            dk = dU[k, f0:f1]
            for f in range(f1 - f0):
                dk[f] += c1 * b1[f] + c2 * b2[f]



@nb.njit(cache=True)
def _tvec(p, q, t):
    """t = (diag p − p pᵀ) q = p ⊙ (q − pᵀq)."""
    pq = 0.0
    for k in range(p.shape[0]):
        pq += p[k] * q[k]
    for k in range(p.shape[0]):
        t[k] = p[k] * (q[k] - pq)


@nb.njit(cache=True, fastmath=_FM)
def _jvp_t(vp, Wc, bc, Up, h, r, q, p, t, H, W):
    """For the padded direction vp at a point with activations h (mask = h > 0) and softmax p:
    r = mask ⊙ conv(v, Wc) (no bias), q = Up r, t = (diag p − p pᵀ) q = p ⊙ (q − pᵀq)."""
    _conv(vp, Wc, bc, False, r, H, W)
    for f in range(r.shape[0]):
        if not h[f] > 0.0:
            r[f] = 0.0
    _dense(Up, bc, False, r, q)
    _tvec(p, q, t)


@nb.njit(cache=True)
def _taps(xp, o, Q, Wp):
    """The nine shifted length-Q views xp[o + u·Wp + v : … + Q] of one padded channel."""
    return (xp[o:o + Q], xp[o + 1:o + 1 + Q], xp[o + 2:o + 2 + Q],
            xp[o + Wp:o + Wp + Q], xp[o + Wp + 1:o + Wp + 1 + Q], xp[o + Wp + 2:o + Wp + 2 + Q],
            xp[o + 2 * Wp:o + 2 * Wp + Q], xp[o + 2 * Wp + 1:o + 2 * Wp + 1 + Q],
            xp[o + 2 * Wp + 2:o + 2 * Wp + 2 + Q])


@nb.njit(cache=True)
def _add_taps(dW, m, ch, s00, s01, s02, s10, s11, s12, s20, s21, s22):
    dW[m, ch, 0, 0] += s00
    dW[m, ch, 0, 1] += s01
    dW[m, ch, 0, 2] += s02
    dW[m, ch, 1, 0] += s10
    dW[m, ch, 1, 1] += s11
    dW[m, ch, 1, 2] += s12
    dW[m, ch, 2, 0] += s20
    dW[m, ch, 2, 1] += s21
    dW[m, ch, 2, 2] += s22


@nb.njit(cache=True, fastmath=_FM)
def _wgrad3(g1, x1, g2, x2, g3, x3, dW, H, W):
    """dW[m,c,u,v] += Σ_q Σ_{i=1..3} gᵢ[m,q] xᵢ[c·P + q + u·Wp + v]  (gᵢ in the margin layout).

    Two filters per sweep: each loaded tap of xᵢ feeds two accumulators (18 in all), so the loop is
    bound by the multiply-adds rather than by the (misaligned) loads of the 27 shifted views."""
    M, C = dW.shape[0], dW.shape[1]
    Wp = W + 2
    P = (H + 2) * Wp
    Q = H * Wp
    G = Q + 4 * Wp + 2
    MG = 2 * Wp + 2
    for m in range(0, M - 1, 2):
        o0 = m * G + MG
        o1 = o0 + G
        ga, gb, gc = g1[o0:o0 + Q], g2[o0:o0 + Q], g3[o0:o0 + Q]
        ha, hb, hc = g1[o1:o1 + Q], g2[o1:o1 + Q], g3[o1:o1 + Q]
        for ch in range(C):
            a00, a01, a02, a10, a11, a12, a20, a21, a22 = _taps(x1, ch * P, Q, Wp)
            b00, b01, b02, b10, b11, b12, b20, b21, b22 = _taps(x2, ch * P, Q, Wp)
            c00, c01, c02, c10, c11, c12, c20, c21, c22 = _taps(x3, ch * P, Q, Wp)
            s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = 0.0
            t00 = t01 = t02 = t10 = t11 = t12 = t20 = t21 = t22 = 0.0
            for q in range(Q):
                a, b, cc = ga[q], gb[q], gc[q]
                e, f, g = ha[q], hb[q], hc[q]
                v1, v2, v3 = a00[q], b00[q], c00[q]
                s00 += a * v1 + b * v2 + cc * v3
                t00 += e * v1 + f * v2 + g * v3
                v1, v2, v3 = a01[q], b01[q], c01[q]
                s01 += a * v1 + b * v2 + cc * v3
                t01 += e * v1 + f * v2 + g * v3
                v1, v2, v3 = a02[q], b02[q], c02[q]
                s02 += a * v1 + b * v2 + cc * v3
                t02 += e * v1 + f * v2 + g * v3
                v1, v2, v3 = a10[q], b10[q], c10[q]
                s10 += a * v1 + b * v2 + cc * v3
                t10 += e * v1 + f * v2 + g * v3
                v1, v2, v3 = a11[q], b11[q], c11[q]
                s11 += a * v1 + b * v2 + cc * v3
                t11 += e * v1 + f * v2 + g * v3
                v1, v2, v3 = a12[q], b12[q], c12[q]
                s12 += a * v1 + b * v2 + cc * v3
                t12 += e * v1 + f * v2 + g * v3
                v1, v2, v3 = a20[q], b20[q], c20[q]
                s20 += a * v1 + b * v2 + cc * v3
                t20 += e * v1 + f * v2 + g * v3
                v1, v2, v3 = a21[q], b21[q], c21[q]
                s21 += a * v1 + b * v2 + cc * v3
                t21 += e * v1 + f * v2 + g * v3
                v1, v2, v3 = a22[q], b22[q], c22[q]
                s22 += a * v1 + b * v2 + cc * v3
                t22 += e * v1 + f * v2 + g * v3
            _add_taps(dW, m, ch, s00, s01, s02, s10, s11, s12, s20, s21, s22)
            _add_taps(dW, m + 1, ch, t00, t01, t02, t10, t11, t12, t20, t21, t22)
    if M % 2:
        m = M - 1
        o0 = m * G + MG
        ga, gb, gc = g1[o0:o0 + Q], g2[o0:o0 + Q], g3[o0:o0 + Q]
        for ch in range(C):
            a00, a01, a02, a10, a11, a12, a20, a21, a22 = _taps(x1, ch * P, Q, Wp)
            b00, b01, b02, b10, b11, b12, b20, b21, b22 = _taps(x2, ch * P, Q, Wp)
            c00, c01, c02, c10, c11, c12, c20, c21, c22 = _taps(x3, ch * P, Q, Wp)
            s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = 0.0
            for q in range(Q):
                a, b, cc = ga[q], gb[q], gc[q]
                s00 += a * a00[q] + b * b00[q] + cc * c00[q]
                s01 += a * a01[q] + b * b01[q] + cc * c01[q]
                s02 += a * a02[q] + b * b02[q] + cc * c02[q]
                s10 += a * a10[q] + b * b10[q] + cc * c10[q]
                s11 += a * a11[q] + b * b11[q] + cc * c11[q]
                s12 += a * a12[q] + b * b12[q] + cc * c12[q]
                s20 += a * a20[q] + b * b20[q] + cc * c20[q]
                s21 += a * a21[q] + b * b21[q] + cc * c21[q]
                s22 += a * a22[q] + b * b22[q] + cc * c22[q]
            _add_taps(dW, m, ch, s00, s01, s02, s10, s11, s12, s20, s21, s22)


@nb.njit(cache=True, fastmath=_FM)
def _outer3(a1, h1, a2, h2, a3, h3, dU):
    """dU += a1 h1ᵀ + a2 h2ᵀ + a3 h3ᵀ."""
    K, F = dU.shape
    for f0 in range(0, F, _FB):
        f1 = min(f0 + _FB, F)
        b1 = h1[f0:f1]
        b2 = h2[f0:f1]
        b3 = h3[f0:f1]
        for k in range(K):
            c1 = a1[k]
            c2 = a2[k]
            c3 = a3[k]
            dk = dU[k, f0:f1]
            for f in range(f1 - f0):
                dk[f] += c1 * b1[f] + c2 * b2[f] + c3 * b3[f]


@nb.njit(cache=True, fastmath=_FM)
def _outer6(a1, h1, a2, h2, a3, h3, a4, h4, a5, h5, a6, h6, dU):
    """dU += Σ_{i=1..6} aᵢ hᵢᵀ (the three rank-one terms of two examples, one sweep over dU)."""
    K, F = dU.shape
    for f0 in range(0, F, _FB):
        f1 = min(f0 + _FB, F)
        b1 = h1[f0:f1]
        b2 = h2[f0:f1]
        b3 = h3[f0:f1]
        b4 = h4[f0:f1]
        b5 = h5[f0:f1]
        b6 = h6[f0:f1]
        for k in range(K):
            c1, c2, c3, c4, c5, c6 = a1[k], a2[k], a3[k], a4[k], a5[k], a6[k]
            dk = dU[k, f0:f1]
            for f in range(f1 - f0):
                dk[f] += c1 * b1[f] + c2 * b2[f] + c3 * b3[f] + c4 * b4[f] + c5 * b5[f] + c6 * b6[f]


@nb.njit(cache=True, parallel=True)
def reduce_grad(gbuf, scale, M, C, H, W, K, out):
    """out (flat Wc, bc, U, c) = scale · Σ_t gbuf[t], compacting Up (K, M·H·(W+2)) to U (K, M·H·W);
    the chunk sum runs in a fixed order."""
    T = gbuf.shape[0]
    Wp = W + 2
    Q = H * Wp
    nW = M * C * 9
    head = nW + M
    for l in range(head):
        s = 0.0
        for t in range(T):
            s += gbuf[t, l]
        out[l] = scale * s
    for r in prange(K * M * H):
        k = r // (M * H)
        mi = r % (M * H)
        src = head + k * M * Q + mi * Wp
        dst = head + r * W
        for j in range(W):
            s = 0.0
            for t in range(T):
                s += gbuf[t, src + j]
            out[dst + j] = scale * s
    srcc = head + K * M * Q
    dstc = head + K * M * H * W
    for k in range(K):
        s = 0.0
        for t in range(T):
            s += gbuf[t, srcc + k]
        out[dstc + k] = scale * s


@nb.njit(cache=True)
def _grad_views(row, M, C, H, W, K):
    nW = M * C * 9
    Q = H * (W + 2)
    dW = row[0:nW].reshape((M, C, 3, 3))
    db = row[nW:nW + M]
    dU = row[nW + M:nW + M + K * M * Q].reshape((K, M * Q))
    dc = row[nW + M + K * M * Q:nW + M + K * M * Q + K]
    return dW, db, dU, dc


