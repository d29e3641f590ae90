"""Clean forward/backward passes and the ℓ∞ attacks: :func:`logits`, :func:`loss_grad`,
:func:`loss_grad_weighted`, :func:`input_grad`, :func:`attack` (numpy references of the same names in
:mod:`toymodels.cnn._reference`).

Model (channels-first, float64): for one example x ∈ R^{C×H×W},

    a = conv(x, Wc) + bc      (3×3 cross-correlation, stride 1, zero padding 1; a ∈ R^{M×H×W})
    h = ReLU(a)               (mask = 1[a > 0], ReLU'(0) := 0 as in torch)
    z = U vec(h) + c          (vec = C-order flatten over (M, H, W); z ∈ R^K)
    ℓ = logsumexp(z) − z_y,   p = softmax(z),   s = ∂ℓ/∂z = p − e_y.

Backward pass (per example):

    ga = mask ⊙ Uᵀ s                         (∂ℓ/∂a)
    ∇ₓℓ = convᵀ(ga, Wc)                       (transposed convolution)
    ∇U = s vec(h)ᵀ,  ∇c = s,  ∇Wc[m,c,u,v] = Σ_ij ga[m,i,j] x̄[c,i+u,j+v],  ∇bc[m] = Σ_ij ga[m,i,j]

(x̄ = x zero-padded by one pixel; layout of the buffers: :mod:`.primitives`).
"""
from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange

from .primitives import (_FM, MAX_CHUNKS, _backh, _chunk_bounds, _conv, _convT, _dense, _grad_views, _load,
                         _load_sum, _outer, _pad_U, _relu, _softmax_ce, _wgrad)


@nb.njit(cache=True, fastmath=_FM)
def _store_interior(gq, out, n, C, H, W):
    """out[n, c, i, j] ← the input gradient of pixel (i, j) held in gq (layout of ``_convT``)."""
    Wp = W + 2
    Q = H * Wp
    for ch in range(C):
        for i in range(H):
            o = ch * Q + i * Wp + 1
            src = gq[o:o + W]
            for j in range(W):
                out[n, ch, i, j] = src[j]


@nb.njit(cache=True, parallel=True, fastmath=_FM)
def logits(x, Wc, bc, U, c, z_out):
    """z_out[n] = logits of x[n]."""
    N, C, H, W = x.shape
    M = Wc.shape[0]
    Wp = W + 2
    P = (H + 2) * Wp
    Q = H * Wp
    Up = _pad_U(U, M, H, W)
    T = min(N, MAX_CHUNKS)
    for t in prange(T):
        lo, hi = _chunk_bounds(N, T, t)
        xp = np.zeros(C * P + 2)
        a = np.empty(M * Q)
        for n in range(lo, hi):
            _load(x, n, xp)
            _conv(xp, Wc, bc, True, a, H, W)
            _relu(a, M, H, W)
            _dense(Up, c, True, a, z_out[n])


@nb.njit(cache=True)
def loss_grad(x, y, Wc, bc, U, c, losses, gbuf):
    """Per-example losses ``losses[n]`` and the *summed* parameter gradient Σₙ ∇_θ ℓₙ in per-chunk
    rows of ``gbuf`` (T, grad_row_size); reduce with ``reduce_grad``. :func:`loss_grad_weighted` with
    every wₙ = 1 (a multiplication by 1.0 is exact: the same bits as a kernel without weights)."""
    loss_grad_weighted(x, y, np.ones(x.shape[0]), Wc, bc, U, c, losses, gbuf)


@nb.njit(cache=True, parallel=True, fastmath=_FM)
def loss_grad_weighted(x, y, w, Wc, bc, U, c, losses, gbuf):
    """Per-example losses ``losses[n]`` and the *weighted* parameter gradient Σₙ wₙ ∇_θ ℓₙ in per-chunk
    rows of ``gbuf`` (as :func:`loss_grad`, whose s = p − e_y is scaled by wₙ before the backward pass;
    used by the finite-difference regularizers of :mod:`toymodels.cnn.regularizers`)."""
    N, C, H, W = x.shape
    M = Wc.shape[0]
    K = U.shape[0]
    Wp = W + 2
    P = (H + 2) * Wp
    Q = H * Wp
    G = Q + 4 * Wp + 2
    Up = _pad_U(U, M, H, W)
    T = gbuf.shape[0]
    for t in prange(T):
        lo, hi = _chunk_bounds(N, T, t)
        row = gbuf[t]
        row[:] = 0.0
        dW, db, dU, dc = _grad_views(row, M, C, H, W, K)
        xp = np.zeros(C * P + 2)
        a = np.empty(M * Q)
        g = np.zeros(M * G)
        z = np.empty(K)
        p = np.empty(K)
        for n in range(lo, hi):
            _load(x, n, xp)
            _conv(xp, Wc, bc, True, a, H, W)
            _relu(a, M, H, W)
            _dense(Up, c, True, a, z)
            losses[n] = _softmax_ce(z, y[n], p)
            p[y[n]] -= 1.0
            wn = w[n]
            for k in range(K):
                p[k] *= wn
            _backh(Up, p, a, g, M, H, W)
            _wgrad(g, xp, dW, db, H, W)
            _outer(p, a, dU, dc)


@nb.njit(cache=True, fastmath=_FM)
def _point(xp, yn, Wc, bc, Up, c, a, z, p, g, gq, H, W):
    """Forward and backward-to-input at the padded point xp: h in ``a``, s = p − e_y in ``p``,
    ∂ℓ/∂a in ``g`` (margin layout), the input gradient in ``gq``; returns ℓ."""
    M = Wc.shape[0]
    _conv(xp, Wc, bc, True, a, H, W)
    _relu(a, M, H, W)
    _dense(Up, c, True, a, z)
    loss = _softmax_ce(z, yn, p)
    p[yn] -= 1.0
    _backh(Up, p, a, g, M, H, W)
    _convT(g, Wc, gq, H, W)
    return loss


@nb.njit(cache=True, parallel=True, fastmath=_FM)
def input_grad(x, y, Wc, bc, U, c, losses, gx):
    """gx[n] = ∇ₓ ℓ(x[n], y[n]) (per-example loss, not divided by N); losses[n] = ℓ(x[n], y[n])."""
    N, C, H, W = x.shape
    M = Wc.shape[0]
    K = U.shape[0]
    Wp = W + 2
    P = (H + 2) * Wp
    Q = H * Wp
    G = Q + 4 * Wp + 2
    Up = _pad_U(U, M, H, W)
    T = min(N, MAX_CHUNKS)
    for t in prange(T):
        lo, hi = _chunk_bounds(N, T, t)
        xp = np.zeros(C * P + 2)
        a = np.empty(M * Q)
        g = np.zeros(M * G)
        gq = np.empty(C * Q)
        z = np.empty(K)
        p = np.empty(K)
        for n in range(lo, hi):
            _load(x, n, xp)
            losses[n] = _point(xp, y[n], Wc, bc, Up, c, a, z, p, g, gq, H, W)
            _store_interior(gq, gx, n, C, H, W)


@nb.njit(cache=True, parallel=True, fastmath=_FM)
def attack(x, y, Wc, bc, U, c, delta, eps, alpha, steps, want_loss, losses):
    """ℓ∞ sign-gradient ascent, in place on ``delta`` (N, C, H, W):

        repeat ``steps`` times:  δ ← Π(δ + α sign ∇ₓℓ(x + δ))

    where Π clips to [−ε, ε] and then to the box (δ = clip(x + δ, 0, 1) − x). The initial ``delta``
    must already be feasible. FGSM is δ₀ = 0, α = ε, one step; FGSM-RS is δ₀ = Π(η), one step;
    PGD-k is k steps. With ``want_loss``, ``losses[n] = ℓ(x[n] + δ[n])`` at the end."""
    N, C, H, W = x.shape
    M = Wc.shape[0]
    K = U.shape[0]
    Wp = W + 2
    P = (H + 2) * Wp
    Q = H * Wp
    G = Q + 4 * Wp + 2
    Up = _pad_U(U, M, H, W)
    T = min(N, MAX_CHUNKS)
    for t in prange(T):
        lo, hi = _chunk_bounds(N, T, t)
        xp = np.zeros(C * P + 2)
        a = np.empty(M * Q)
        g = np.zeros(M * G)
        gq = np.empty(C * Q)
        z = np.empty(K)
        p = np.empty(K)
        for n in range(lo, hi):
            for _ in range(steps):
                _load_sum(x, delta, n, xp)
                _point(xp, y[n], Wc, bc, Up, c, a, z, p, g, gq, H, W)
                for ch in range(C):
                    for i in range(H):
                        o = ch * Q + i * Wp + 1
                        src = gq[o:o + W]
                        for j in range(W):
                            gr = src[j]
                            d = delta[n, ch, i, j]
                            if gr > 0.0:
                                d += alpha
                            elif gr < 0.0:
                                d -= alpha
                            d = min(max(d, -eps), eps)
                            xv = x[n, ch, i, j]
                            delta[n, ch, i, j] = min(max(xv + d, 0.0), 1.0) - xv
            if want_loss:
                _load_sum(x, delta, n, xp)
                _conv(xp, Wc, bc, True, a, H, W)
                _relu(a, M, H, W)
                _dense(Up, c, True, a, z)
                losses[n] = _softmax_ce(z, y[n], p)

