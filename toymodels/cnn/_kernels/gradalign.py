"""The GradAlign kernels: :func:`gradalign` (Ω's cosines and Σₙ ∇_θ cosₙ) and the fused FGSM-AT +
GradAlign training-step gradient :func:`fgsm_gradalign` (numpy references of the same names in
:mod:`toymodels.cnn._reference`).

GradAlign (eq. 2.7) needs ∇_θ cos(g₁, g₂), gᵢ = ∇ₓℓ at x₁ = x and x₂ = x + η. With nᵢ = ‖gᵢ‖ and
cos = ⟨g₁, g₂⟩/(n₁n₂),

    d cos = ⟨dg₁, v₁⟩ + ⟨dg₂, v₂⟩,   v₁ = g₂/(n₁n₂) − cos g₁/n₁²,   v₂ = g₁/(n₁n₂) − cos g₂/n₂²,

and for a fixed direction v, ψ(θ) = ⟨∇ₓℓ(x; θ), v⟩ = sᵀ q with the Jacobian-vector product
q = U vec(r), r = mask ⊙ conv(v, Wc) (no bias: the jvp of an affine map). The masks are piecewise
constant in θ (zero derivative almost everywhere), so by the chain rule through softmax, U and Wc:

    t = (diag p − p pᵀ) q = p ⊙ (q − pᵀq),   ua = mask ⊙ Uᵀ t
    ∇U ψ = t vec(h)ᵀ + s vec(r)ᵀ,   ∇c ψ = t,   ∇bc ψ = Σ_ij ua,
    ∇Wc ψ = wgrad(ua, x̄) + wgrad(ga, v̄)

(the first terms are an ordinary backward pass with upstream gradient t instead of s; the
``s vec(r)ᵀ`` and ``wgrad(ga, v̄)`` terms come from U and Wc inside the jvp).

FGSM AT + GradAlign (:func:`fgsm_gradalign`): the training step needs ∇ₓℓ(x) twice — for the FGSM
step δ = Π(α sign ∇ₓℓ(x)) and as g₁ of GradAlign — so the fused kernel runs the clean pass once,
then the passes at x + δ (cross-entropy gradient) and x + η (g₂, then the jvp) side by side, sharing
each sweep over U; −λ is folded into the direction v so that the CE and GradAlign terms land in the
same gradient row (everything downstream of v is linear in it), and the rank-one ∇U terms of two
consecutive examples share one sweep over ∇U: their dense-layer inputs and coefficients live in two
slots (``HA``, ``H2``, ``R2``, ``SA``, ``S2``, ``T2``; slot 0 holds a pending example, ``_outer6``).

Both kernels are a ``prange`` over example chunks whose body is a sequence of the per-example
stages below (calls cost nothing next to the O(MCHW·9 + KMHW) work of one stage).
"""
from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange

from .passes import _store_interior
from .primitives import (_FM, _backh, _backh2, _chunk_bounds, _conv, _convT, _dense, _dense2, _grad_views,
                         _jvp_t, _layout, _load, _load_sum, _outer, _outer2, _outer3, _outer4, _outer6, _pad_U, _relu,
                         _softmax_ce, _sum_margin, _tvec, _wgrad, _wgrad2, _wgrad3)


# ----------------------------------------------------------------------------------------------
# per-example stages
# ----------------------------------------------------------------------------------------------
@nb.njit(cache=True, fastmath=_FM)
def _pair_pass(xpa, xpb, yn, Wc, bc, Up, c, ha, hb, za, zb, sa, sb, pb, gaa, gab, H, W):
    """Forward and backward to ∂ℓ/∂a at the padded points xpa and xpb, sharing each sweep over Up:
    activations in ha/hb, s = p − e_y in sa/sb, softmax p of the second point in pb, ∂ℓ/∂a in gaa/gab
    (margin layout). Returns ℓ at the first point."""
    M = Wc.shape[0]
    _conv(xpa, Wc, bc, True, ha, H, W)
    _conv(xpb, Wc, bc, True, hb, H, W)
    _relu(ha, M, H, W)
    _relu(hb, M, H, W)
    _dense2(Up, c, True, ha, hb, za, zb)
    loss = _softmax_ce(za, yn, sa)
    _softmax_ce(zb, yn, sb)
    for k in range(zb.shape[0]):
        pb[k] = sb[k]
    sa[yn] -= 1.0
    sb[yn] -= 1.0
    _backh2(Up, sa, sb, ha, hb, gaa, gab, M, H, W)
    return loss


@nb.njit(cache=True, fastmath=_FM)
def _dots(gq1, gq2, C, H, W):
    """(‖g₁‖², ‖g₂‖², ⟨g₁, g₂⟩) of two input gradients in the layout of ``_convT``."""
    Wp = W + 2
    Q = H * Wp
    n11 = 0.0
    n22 = 0.0
    n12 = 0.0
    for ch in range(C):
        for i in range(H):
            o = ch * Q + i * Wp + 1
            r1v = gq1[o:o + W]
            r2v = gq2[o:o + W]
            for j in range(W):
                g1 = r1v[j]
                g2 = r2v[j]
                n11 += g1 * g1
                n22 += g2 * g2
                n12 += g1 * g2
    return n11, n22, n12


@nb.njit(cache=True, fastmath=_FM)
def _direction_sub(ga, a, gb, b, vp, C, H, W):
    """The padded direction vp = ga·a − b·gb (interior only; the zero border is never written)."""
    Wp = W + 2
    P = (H + 2) * Wp
    Q = H * Wp
    for ch in range(C):
        for i in range(H):
            o = ch * Q + i * Wp + 1
            ov = ch * P + (i + 1) * Wp + 1
            rav = ga[o:o + W]
            rbv = gb[o:o + W]
            wv = vp[ov:ov + W]
            for j in range(W):
                wv[j] = rav[j] * a - b * rbv[j]


@nb.njit(cache=True, fastmath=_FM)
def _direction_add(ga, a, gb, b, vp, C, H, W):
    """The padded direction vp = ga·a + b·gb (interior only)."""
    Wp = W + 2
    P = (H + 2) * Wp
    Q = H * Wp
    for ch in range(C):
        for i in range(H):
            o = ch * Q + i * Wp + 1
            ov = ch * P + (i + 1) * Wp + 1
            rav = ga[o:o + W]
            rbv = gb[o:o + W]
            wv = vp[ov:ov + W]
            for j in range(W):
                wv[j] = rav[j] * a + b * rbv[j]


@nb.njit(cache=True, fastmath=_FM)
def _jvp_grad_both(Wc, bc, Up, c, xp1, xp2, vp1, vp2, h1, h2, r1, r2, p1, p2, s1, s2, ga1, ga2, q, z, t1, t2,
                   ua1, ua2, dW, db, dU, dc, H, W):
    """Accumulate ∇_θ ⟨∇ₓℓ(x₁), v₁⟩ + ∇_θ ⟨∇ₓℓ(x₂), v₂⟩ (masks fixed) into (dW, db, dU, dc), the two
    points sharing each sweep over Up; q and z are scratch."""
    M = Wc.shape[0]
    _conv(vp1, Wc, bc, False, r1, H, W)
    _conv(vp2, Wc, bc, False, r2, H, W)
    for f in range(r1.shape[0]):
        if not h1[f] > 0.0:
            r1[f] = 0.0
        if not h2[f] > 0.0:
            r2[f] = 0.0
    _dense2(Up, c, False, r1, r2, q, z)
    _tvec(p1, q, t1)
    _tvec(p2, z, t2)
    _backh2(Up, t1, t2, h1, h2, ua1, ua2, M, H, W)
    _sum_margin(ua1, db, M, H, W)
    _sum_margin(ua2, db, M, H, W)
    _wgrad2(ua1, xp1, ga1, vp1, dW, H, W)
    _wgrad2(ua2, xp2, ga2, vp2, dW, H, W)
    for k in range(dc.shape[0]):
        dc[k] += t1[k] + t2[k]
    _outer4(t1, h1, s1, r1, t2, h2, s2, r2, dU)


@nb.njit(cache=True, fastmath=_FM)
def _jvp_grad(Wc, bc, Up, xp, vp, h, r, p, s, ga, q, t, ua, dW, db, dU, dc, H, W):
    """Accumulate ∇_θ ⟨∇ₓℓ(x), v⟩ (masks fixed) into (dW, db, dU, dc); q is scratch."""
    M = Wc.shape[0]
    _jvp_t(vp, Wc, bc, Up, h, r, q, p, t, H, W)
    _backh(Up, t, h, ua, M, H, W)
    _sum_margin(ua, db, M, H, W)
    _wgrad2(ua, xp, ga, vp, dW, H, W)
    for k in range(dc.shape[0]):
        dc[k] += t[k]
    _outer2(t, h, s, r, dU)


# ----------------------------------------------------------------------------------------------
# GradAlign
# ----------------------------------------------------------------------------------------------
@nb.njit(cache=True, parallel=True, fastmath=_FM)
def gradalign(x, y, eta, Wc, bc, U, c, both, want_g1, cos_out, g1_out, gbuf):
    """Per-example cos(∇ₓℓ(x), ∇ₓℓ(x + η)) in ``cos_out`` and the *summed* Σₙ ∇_θ cosₙ in per-chunk
    rows of ``gbuf``. With ``both`` false only the dependence through ∇ₓℓ(x + η) is differentiated
    (∇ₓℓ(x) treated as a constant, as in the authors' code). When a gradient is exactly zero the
    cosine is undefined: cos := 1 and the example contributes nothing to the gradient. With
    ``want_g1``, ``g1_out[n] = ∇ₓℓ(x[n])`` (e.g. to build the FGSM step without recomputing it)."""
    N, C, H, W = x.shape
    M = Wc.shape[0]
    K = U.shape[0]
    Wp, P, Q, G = _layout(H, W)
    Up = _pad_U(U, M, H, W)
    T = gbuf.shape[0]
    for t in prange(T):
        lo, hi = _chunk_bounds(N, T, t)
        row = gbuf[t]
        row[:] = 0.0
        dW, db, dU, dc = _grad_views(row, M, C, H, W, K)
        B = np.zeros((4, C * P + 2))
        xp1, xp2, vp1, vp2 = B[0], B[1], B[2], B[3]
        B = np.zeros((2, C * Q))
        gq1, gq2 = B[0], B[1]
        B = np.zeros((4, M * Q))
        h1, h2, r1, r2 = B[0], B[1], B[2], B[3]
        B = np.zeros((4, M * G))
        ga1, ga2, ua1, ua2 = B[0], B[1], B[2], B[3]
        B = np.zeros((8, K))
        z, q, s1, s2, p1, p2, t1, t2 = B[0], B[1], B[2], B[3], B[4], B[5], B[6], B[7]
        for n in range(lo, hi):
            yn = y[n]
            _load(x, n, xp1)
            _load_sum(x, eta, n, xp2)
            _pair_pass(xp1, xp2, yn, Wc, bc, Up, c, h1, h2, z, q, s1, s2, p2, ga1, ga2, H, W)
            _convT(ga1, Wc, gq1, H, W)
            _convT(ga2, Wc, gq2, H, W)
            if want_g1:
                _store_interior(gq1, g1_out, n, C, H, W)
            n11, n22, n12 = _dots(gq1, gq2, C, H, W)
            if n11 == 0.0 or n22 == 0.0:
                cos_out[n] = 1.0
                continue
            nn = np.sqrt(n11) * np.sqrt(n22)
            cs = n12 / nn
            cos_out[n] = cs
            # v₁ = g₂/(n₁n₂) − cos g₁/n₁²,  v₂ = g₁/(n₁n₂) − cos g₂/n₂²  (padded, zero border)
            inv = 1.0 / nn
            _direction_sub(gq1, inv, gq2, cs / n22, vp2, C, H, W)
            for k in range(K):
                p1[k] = s1[k]
                p2[k] = s2[k]
            p1[yn] += 1.0
            p2[yn] += 1.0
            if both:
                _direction_sub(gq2, inv, gq1, cs / n11, vp1, C, H, W)
                _jvp_grad_both(Wc, bc, Up, c, xp1, xp2, vp1, vp2, h1, h2, r1, r2, p1, p2, s1, s2, ga1, ga2, q, z,
                               t1, t2, ua1, ua2, dW, db, dU, dc, H, W)
            else:
                _jvp_grad(Wc, bc, Up, xp2, vp2, h2, r2, p2, s2, ga2, q, t2, ua2, dW, db, dU, dc, H, W)


# ----------------------------------------------------------------------------------------------
# fused FGSM-AT + GradAlign training-step gradient
# ----------------------------------------------------------------------------------------------
@nb.njit(cache=True, fastmath=_FM)
def _clean_pass(x, n, yn, Wc, bc, Up, c, xp, h, z, s, p, ga, gq, H, W):
    """Forward and backward to the input at x[n]: softmax in p, s = p − e_y, ∂ℓ/∂a in ga, ∇ₓℓ in gq."""
    M = Wc.shape[0]
    _load(x, n, xp)
    _conv(xp, Wc, bc, True, h, H, W)
    _relu(h, M, H, W)
    _dense(Up, c, True, h, z)
    _softmax_ce(z, yn, s)
    for k in range(z.shape[0]):
        p[k] = s[k]
    s[yn] -= 1.0
    _backh(Up, s, h, ga, M, H, W)
    _convT(ga, Wc, gq, H, W)


@nb.njit(cache=True, fastmath=_FM)
def _fgsm_points(x, eta, n, gq, eps, alpha, delta, xpa, xp2, C, H, W):
    """δₙ = Π(α sign g₁) (the arithmetic of ``attack`` from δ₀ = 0) into ``delta[n]``, and the padded
    points x + δ (xpa) and x + η (xp2)."""
    Wp = W + 2
    P = (H + 2) * Wp
    Q = H * Wp
    for ch in range(C):
        for i in range(H):
            o = ch * Q + i * Wp + 1
            ox = ch * P + (i + 1) * Wp + 1
            src = gq[o:o + W]
            ra = xpa[ox:ox + W]
            r2x = xp2[ox:ox + W]
            for j in range(W):
                gr = src[j]
                d = 0.0
                if gr > 0.0:
                    d += alpha
                elif gr < 0.0:
                    d -= alpha
                d = min(max(d, -eps), eps)
                xv = x[n, ch, i, j]
                dd = min(max(xv + d, 0.0), 1.0) - xv
                delta[n, ch, i, j] = dd
                ra[j] = xv + dd
                r2x[j] = xv + eta[n, ch, i, j]


@nb.njit(cache=True, parallel=True, fastmath=_FM)
def fgsm_gradalign(x, y, eta, Wc, bc, U, c, eps, alpha, lam, both, delta, losses, cos_out, gbuf):
    """One FGSM-AT + GradAlign training-step gradient with the clean input gradient shared.

    Per example n (g₁ = ∇ₓℓ(xₙ), g₂ = ∇ₓℓ(xₙ + ηₙ)):

        δₙ = Π(α sign g₁)                (Π: clip to [−ε, ε], then to the box; = ``attack``, 1 step)
        losses[n] = ℓ(xₙ + δₙ),  cos_out[n] = cos(g₁, g₂)   (cos := 1 if g₁ = 0 or g₂ = 0)

    and the per-chunk rows of ``gbuf`` receive Σₙ [∇_θ ℓ(xₙ + δₙ) − λ ∇_θ cosₙ] (δ held fixed, as
    FGSM AT does; ``both`` as in :func:`gradalign`), i.e. N·∇_θ [L_CE(x + δ) + λ Ω] once reduced
    with scale 1/N. How the passes are shared: see the module docstring."""
    N, C, H, W = x.shape
    M = Wc.shape[0]
    K = U.shape[0]
    Wp, P, Q, G = _layout(H, W)
    Up = _pad_U(U, M, H, W)
    T = gbuf.shape[0]
    for t in prange(T):
        lo, hi = _chunk_bounds(N, T, t)
        row = gbuf[t]
        row[:] = 0.0
        dW, db, dU, dc = _grad_views(row, M, C, H, W, K)
        B = np.zeros((5, C * P + 2))
        xp1, xpa, xp2, vp1, vp2 = B[0], B[1], B[2], B[3], B[4]
        B = np.zeros((2, C * Q))
        gq1, gq2 = B[0], B[1]
        B = np.zeros((8, M * Q))
        h1, r1, HA, H2, R2 = B[0], B[1], B[2:4], B[4:6], B[6:8]
        B = np.zeros((5, M * G))
        ga1, gaa, ga2, ua1, ua2 = B[0], B[1], B[2], B[3], B[4]
        B = np.zeros((13, K))
        z1, za, z2, s1, p1, p2, t1, SA, S2, T2 = B[0], B[1], B[2], B[3], B[4], B[5], B[6], B[7:9], B[9:11], B[11:]
        slot = 0
        for n in range(lo, hi):
            yn = y[n]
            ha, h2, r2, sa, s2, t2 = HA[slot], H2[slot], R2[slot], SA[slot], S2[slot], T2[slot]
            _clean_pass(x, n, yn, Wc, bc, Up, c, xp1, h1, z1, s1, p1, ga1, gq1, H, W)
            _fgsm_points(x, eta, n, gq1, eps, alpha, delta, xpa, xp2, C, H, W)
            losses[n] = _pair_pass(xpa, xp2, yn, Wc, bc, Up, c, ha, h2, za, z2, sa, s2, p2, gaa, ga2, H, W)
            _convT(ga2, Wc, gq2, H, W)
            n11, n22, n12 = _dots(gq1, gq2, C, H, W)
            if n11 == 0.0 or n22 == 0.0:
                cos_out[n] = 1.0
                # no GradAlign contribution: the cross-entropy gradient at x + δ only
                _wgrad(gaa, xpa, dW, db, H, W)
                _outer(sa, ha, dU, dc)
                continue
            nn = np.sqrt(n11) * np.sqrt(n22)
            cs = n12 / nn
            cos_out[n] = cs
            # −λ vᵢ (v as in ``gradalign``): the gradient of −λ cos, accumulated with the CE term
            b1 = -lam * (1.0 / nn)
            _direction_add(gq1, b1, gq2, lam * cs / n22, vp2, C, H, W)
            _jvp_t(vp2, Wc, bc, Up, h2, r2, z2, p2, t2, H, W)
            if both:       # the clean point's jvp too; its backward shares the sweep over Up
                _direction_add(gq2, b1, gq1, lam * cs / n11, vp1, C, H, W)
                _jvp_t(vp1, Wc, bc, Up, h1, r1, z1, p1, t1, H, W)
                _backh2(Up, t1, t2, h1, h2, ua1, ua2, M, H, W)
                _sum_margin(ua1, db, M, H, W)
                _wgrad2(ua1, xp1, ga1, vp1, dW, H, W)
                for k in range(K):
                    dc[k] += t1[k]
                _outer2(t1, h1, s1, r1, dU)
            else:
                _backh(Up, t2, h2, ua2, M, H, W)
            _sum_margin(gaa, db, M, H, W)
            _sum_margin(ua2, db, M, H, W)
            _wgrad3(gaa, xpa, ua2, xp2, ga2, vp2, dW, H, W)
            for k in range(K):
                dc[k] += sa[k] + t2[k]
            if slot == 1:
                _outer6(SA[0], HA[0], T2[0], H2[0], S2[0], R2[0], sa, ha, t2, h2, s2, r2, dU)
                slot = 0
            else:
                slot = 1
        if slot == 1:
            _outer3(SA[0], HA[0], T2[0], H2[0], S2[0], R2[0], dU)
