"""Plain-numpy reference of :mod:`toymodels.cnn._kernels` (same semantics, batch-vectorized).

The 3×3 convolution is written with im2col: ``cols[n, (c,u,v), (i,j)] = x̄[n, c, i+u, j+v]`` (x̄
zero-padded by one pixel), so that conv = ``Wc.reshape(M, 9C) @ cols``, its transpose is col2im of
``Wcᵀ @ ga`` and the weight gradient is ``ga @ colsᵀ`` summed over the batch. This module is the
test oracle of the numba kernels and the baseline of the benchmarks; see ``_kernels`` for the math
(including the hand-derived GradAlign gradient, which is repeated here in vectorized form).
"""
from __future__ import annotations

import numpy as np


def im2col(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) → (N, 9C, H·W), rows ordered (c, u, v) like ``Wc.reshape(M, 9C)``."""
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.empty((N, C, 3, 3, H, W))
    for u in range(3):
        for v in range(3):
            cols[:, :, u, v] = xp[:, :, u:u + H, v:v + W]
    return cols.reshape(N, 9 * C, H * W)


def col2im(cols: np.ndarray, C: int, H: int, W: int) -> np.ndarray:
    """Adjoint of :func:`im2col`: (N, 9C, H·W) → (N, C, H, W)."""
    N = cols.shape[0]
    c6 = cols.reshape(N, C, 3, 3, H, W)
    xp = np.zeros((N, C, H + 2, W + 2))
    for u in range(3):
        for v in range(3):
            xp[:, :, u:u + H, v:v + W] += c6[:, :, u, v]
    return xp[:, :, 1:H + 1, 1:W + 1]


def _forward(x, Wc, bc, U, c):
    """Returns (cols, a, h, z) with a, h of shape (N, M, H·W)."""
    M = Wc.shape[0]
    cols = im2col(x)
    a = np.einsum("mk,nkp->nmp", Wc.reshape(M, -1), cols, optimize=True) + bc[None, :, None]
    h = np.maximum(a, 0.0)
    z = h.reshape(x.shape[0], -1) @ U.T + c
    return cols, a, h, z


def _softmax_ce(z, y):
    zmax = z.max(axis=1, keepdims=True)
    e = np.exp(z - zmax)
    tot = e.sum(axis=1, keepdims=True)
    p = e / tot
    loss = np.log(tot[:, 0]) + zmax[:, 0] - z[np.arange(z.shape[0]), y]
    return p, loss


def logits(x, Wc, bc, U, c):
    return _forward(x, Wc, bc, U, c)[3]


def loss_grad(x, y, Wc, bc, U, c):
    """(per-example losses, (dWc, dbc, dU, dc)) with the gradient of the *mean* loss."""
    N = x.shape[0]
    M = Wc.shape[0]
    cols, a, h, z = _forward(x, Wc, bc, U, c)
    p, loss = _softmax_ce(z, y)
    s = p.copy()
    s[np.arange(N), y] -= 1.0
    ga = (s @ U).reshape(h.shape) * (h > 0)
    dW = np.einsum("nmp,nkp->mk", ga, cols, optimize=True).reshape(Wc.shape) / N
    db = ga.sum(axis=(0, 2)) / N
    dU = s.T @ h.reshape(N, -1) / N
    dc = s.sum(axis=0) / N
    return loss, (dW, db, dU, dc)


def _input_grad_parts(x, y, Wc, bc, U, c):
    N, C, H, W = x.shape
    M = Wc.shape[0]
    cols, a, h, z = _forward(x, Wc, bc, U, c)
    p, loss = _softmax_ce(z, y)
    s = p.copy()
    s[np.arange(N), y] -= 1.0
    ga = (s @ U).reshape(h.shape) * (h > 0)
    g = col2im(np.einsum("mk,nmp->nkp", Wc.reshape(M, -1), ga, optimize=True), C, H, W)
    return loss, g, dict(cols=cols, h=h, p=p, s=s, ga=ga)


def input_grad(x, y, Wc, bc, U, c):
    """(per-example losses, ∇ₓℓ(xₙ, yₙ) of shape (N, C, H, W))."""
    loss, g, _ = _input_grad_parts(x, y, Wc, bc, U, c)
    return loss, g


def attack(x, y, Wc, bc, U, c, delta0, eps, alpha, steps, want_loss):
    """Same as ``_kernels._attack`` but returns (delta, losses) instead of writing in place."""
    delta = delta0.copy()
    for _ in range(steps):
        _, g = input_grad(x + delta, y, Wc, bc, U, c)
        d = np.clip(delta + alpha * np.sign(g), -eps, eps)
        delta = np.clip(x + d, 0.0, 1.0) - x
    losses = _softmax_ce(logits(x + delta, Wc, bc, U, c), y)[1] if want_loss else None
    return delta, losses


def _jvp_backward(v, P, Wc, U):
    """Σₙ ∇_θ ⟨∇ₓℓ(xₙ), vₙ⟩ at the point described by ``P`` (from ``_input_grad_parts``), masks
    held fixed. Returns (dW, db, dU, dc) summed over n."""
    N = v.shape[0]
    M = Wc.shape[0]
    h, p, s, ga, cols = P["h"], P["p"], P["s"], P["ga"], P["cols"]
    vcols = im2col(v)
    r = np.einsum("mk,nkp->nmp", Wc.reshape(M, -1), vcols, optimize=True) * (h > 0)
    q = r.reshape(N, -1) @ U.T
    t = p * (q - (p * q).sum(axis=1, keepdims=True))
    ua = (t @ U).reshape(h.shape) * (h > 0)
    dW = (np.einsum("nmp,nkp->mk", ua, cols, optimize=True)
          + np.einsum("nmp,nkp->mk", ga, vcols, optimize=True)).reshape(Wc.shape)
    db = ua.sum(axis=(0, 2))
    dU = t.T @ h.reshape(N, -1) + s.T @ r.reshape(N, -1)
    dc = t.sum(axis=0)
    return dW, db, dU, dc


def gradalign(x, y, eta, Wc, bc, U, c, both=True):
    """(per-example cos(∇ₓℓ(x), ∇ₓℓ(x + η)), Σₙ ∇_θ cosₙ as (dW, db, dU, dc)); zero gradients give
    cos := 1 and no gradient contribution (see ``_kernels._gradalign``)."""
    N = x.shape[0]
    _, g1, P1 = _input_grad_parts(x, y, Wc, bc, U, c)
    _, g2, P2 = _input_grad_parts(x + eta, y, Wc, bc, U, c)
    f1, f2 = g1.reshape(N, -1), g2.reshape(N, -1)
    n11, n22, n12 = (f1 * f1).sum(1), (f2 * f2).sum(1), (f1 * f2).sum(1)
    ok = (n11 > 0) & (n22 > 0)
    nn = np.where(ok, np.sqrt(n11) * np.sqrt(n22), 1.0)
    cos = np.where(ok, n12 / nn, 1.0)
    w = ok.astype(np.float64)[:, None, None, None]
    a1 = np.where(ok, cos / np.where(ok, n11, 1.0), 0.0)[:, None, None, None]
    a2 = np.where(ok, cos / np.where(ok, n22, 1.0), 0.0)[:, None, None, None]
    inv = (w[:, 0, 0, 0] / nn)[:, None, None, None]
    v1 = g2 * inv - a1 * g1
    v2 = g1 * inv - a2 * g2
    grads = list(_jvp_backward(v2, P2, Wc, U))
    if both:
        grads = [a + b for a, b in zip(grads, _jvp_backward(v1, P1, Wc, U))]
    return cos, tuple(grads)
