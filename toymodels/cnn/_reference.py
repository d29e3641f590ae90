"""Plain-numpy references of the CNN kernels (:mod:`toymodels.cnn._kernels`): the same names and
parameters, outputs filled in place, batch-vectorized. They are the test oracle of the kernels
(``CASES`` at the end, run by ``tests/test_kernel_parity.py``), the baseline of the benchmarks and the
``backend="numpy"`` path of :mod:`toymodels.cnn.model`, :mod:`~toymodels.cnn.attacks` and
:mod:`~toymodels.cnn.align_init`.

The 3×3 convolution is written with im2col: ``cols[n, (c,u,v), (i,j)] = x̄[n, c, i+u, j+v]`` (x̄
zero-padded by one pixel), so that conv = ``Wc.reshape(M, 9C) @ cols``, its transpose is col2im of
``Wcᵀ @ ga`` and the weight gradient is ``ga @ colsᵀ`` summed over the batch. The math (including
the hand-derived GradAlign gradient, repeated here in vectorized form) is in the kernels' module
docstrings. Parameter gradients are written, like the kernels do, as *sums* over the examples of
each chunk into the per-chunk rows of ``gbuf`` (layout of :func:`toymodels.cnn._kernels.grad_row_size`:
Wc, bc, U zero-padded to W + 2 columns per image row, c), which :func:`reduce_grad` sums and scales.

Lemma 2 (:func:`alignment_terms`): the reference builds the two input gradients literally — patch i
of ∇ₓf(x) is Σ_r u_{ri} 1[⟨w_r, z_i⟩ ≥ 0] w_r (thesis l.441) — and takes their inner products,
whereas the kernel never forms them (it uses the Gram matrix WWᵀ, thesis l.541).
"""
from __future__ import annotations

import numpy as np

from ..kernels import KernelCase
from ..rng import stream
from . import _kernels
from ._kernels import grad_row_size, n_chunks

__all__ = ["logits", "loss_grad", "loss_grad_weighted", "input_grad", "attack", "gradalign", "fgsm_gradalign",
           "reduce_grad", "alignment_terms", "im2col", "col2im", "CASES"]


# ----------------------------------------------------------------------------------------------
# vectorized building blocks
# ----------------------------------------------------------------------------------------------
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
    """(softmax p, per-example ℓ = logsumexp(z) − z_y)."""
    zmax = z.max(axis=1, keepdims=True)
    e = np.exp(z - zmax)
    tot = e.sum(axis=1, keepdims=True)
    return e / tot, np.log(tot[:, 0]) + zmax[:, 0] - z[np.arange(z.shape[0]), y]


def _backward(x, y, Wc, bc, U, c):
    """Forward and backward to ∂ℓ/∂a: (losses, dict(cols, h, p, s = p − e_y, ga = ∂ℓ/∂a))."""
    N = x.shape[0]
    cols, _, h, z = _forward(x, Wc, bc, U, c)
    p, loss = _softmax_ce(z, y)
    s = p.copy()
    s[np.arange(N), y] -= 1.0
    ga = (s @ U).reshape(h.shape) * (h > 0)
    return loss, dict(cols=cols, h=h, p=p, s=s, ga=ga)


def _ce_grads(x, y, Wc, bc, U, c):
    """(per-example losses, Σₙ ∇_θ ℓₙ as (dW, db, dU, dc))."""
    return _ce_grads_weighted(x, y, np.ones(x.shape[0]), Wc, bc, U, c)


def _ce_grads_weighted(x, y, w, Wc, bc, U, c):
    """(per-example losses, Σₙ wₙ ∇_θ ℓₙ as (dW, db, dU, dc))."""
    N = x.shape[0]
    loss, P = _backward(x, y, Wc, bc, U, c)
    s = P["s"] * w[:, None]
    ga = P["ga"] * w[:, None, None]
    dW = np.einsum("nmp,nkp->mk", ga, P["cols"], optimize=True).reshape(Wc.shape)
    return loss, (dW, ga.sum(axis=(0, 2)), s.T @ P["h"].reshape(N, -1), s.sum(axis=0))


def _input_grad_parts(x, y, Wc, bc, U, c):
    """(per-example losses, ∇ₓℓ (N, C, H, W), the intermediates of :func:`_backward`)."""
    N, C, H, W = x.shape
    M = Wc.shape[0]
    loss, P = _backward(x, y, Wc, bc, U, c)
    g = col2im(np.einsum("mk,nmp->nkp", Wc.reshape(M, -1), P["ga"], optimize=True), C, H, W)
    return loss, g, P


def _jvp_backward(v, P, Wc, U):
    """Σₙ ∇_θ ⟨∇ₓℓ(xₙ), vₙ⟩ at the point described by ``P`` (from :func:`_backward`), masks held
    fixed. Returns (dW, db, dU, dc) summed over n."""
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
    return dW, ua.sum(axis=(0, 2)), t.T @ h.reshape(N, -1) + s.T @ r.reshape(N, -1), t.sum(axis=0)


def _ga_grads(x, y, eta, Wc, bc, U, c, both):
    """(per-example cos(∇ₓℓ(x), ∇ₓℓ(x + η)), ∇ₓℓ(x), Σₙ ∇_θ cosₙ as (dW, db, dU, dc)); a zero input
    gradient gives cos := 1 and no gradient contribution."""
    N = x.shape[0]
    _, g1, P1 = _input_grad_parts(x, y, Wc, bc, U, c)
    _, g2, P2 = _input_grad_parts(x + eta, y, Wc, bc, U, c)
    f1, f2 = g1.reshape(N, -1), g2.reshape(N, -1)
    n11, n22, n12 = (f1 * f1).sum(1), (f2 * f2).sum(1), (f1 * f2).sum(1)
    ok = (n11 > 0) & (n22 > 0)
    nn = np.where(ok, np.sqrt(n11) * np.sqrt(n22), 1.0)
    cos = np.where(ok, n12 / nn, 1.0)
    a1 = np.where(ok, cos / np.where(ok, n11, 1.0), 0.0)[:, None, None, None]
    a2 = np.where(ok, cos / np.where(ok, n22, 1.0), 0.0)[:, None, None, None]
    inv = (ok / nn)[:, None, None, None]
    grads = _jvp_backward(g1 * inv - a2 * g2, P2, Wc, U)                 # v₂
    if both:
        grads = [a + b for a, b in zip(grads, _jvp_backward(g2 * inv - a1 * g1, P1, Wc, U))]  # + v₁
    return cos, g1, tuple(grads)


def _chunks(N: int, T: int):
    """The kernels' example chunks: [(lo, hi)] for t < T (a fixed split that depends on N only)."""
    return [((t * N) // T, ((t + 1) * N) // T) for t in range(T)]


def _put_row(row: np.ndarray, grads, H: int, W: int) -> None:
    """Write (dW, db, dU, dc) into one gradient row in the kernels' layout (U zero-padded)."""
    dW, db, dU, dc = grads
    M, C = dW.shape[:2]
    K = dc.shape[0]
    nW = M * C * 9
    row[:] = 0.0
    row[:nW] = dW.ravel()
    row[nW:nW + M] = db
    row[nW + M:nW + M + K * M * H * (W + 2)].reshape(K, M, H, W + 2)[..., :W] = dU.reshape(K, M, H, W)
    row[-K:] = dc


# ----------------------------------------------------------------------------------------------
# references of the public kernels (same names and parameters)
# ----------------------------------------------------------------------------------------------
def logits(x, Wc, bc, U, c, z_out):
    z_out[:] = _forward(x, Wc, bc, U, c)[3]


def loss_grad(x, y, Wc, bc, U, c, losses, gbuf):
    loss_grad_weighted(x, y, np.ones(x.shape[0]), Wc, bc, U, c, losses, gbuf)


def loss_grad_weighted(x, y, w, Wc, bc, U, c, losses, gbuf):
    H, W = x.shape[2:]
    for t, (lo, hi) in enumerate(_chunks(x.shape[0], gbuf.shape[0])):
        losses[lo:hi], g = _ce_grads_weighted(x[lo:hi], y[lo:hi], w[lo:hi], Wc, bc, U, c)
        _put_row(gbuf[t], g, H, W)


def input_grad(x, y, Wc, bc, U, c, losses, gx):
    losses[:], gx[:], _ = _input_grad_parts(x, y, Wc, bc, U, c)


def attack(x, y, Wc, bc, U, c, delta, eps, alpha, steps, want_loss, losses):
    for _ in range(steps):
        _, g, _ = _input_grad_parts(x + delta, y, Wc, bc, U, c)
        d = np.clip(delta + alpha * np.sign(g), -eps, eps)
        delta[:] = np.clip(x + d, 0.0, 1.0) - x
    if want_loss:
        losses[:] = _softmax_ce(_forward(x + delta, Wc, bc, U, c)[3], y)[1]


def gradalign(x, y, eta, Wc, bc, U, c, both, want_g1, cos_out, g1_out, gbuf):
    H, W = x.shape[2:]
    for t, (lo, hi) in enumerate(_chunks(x.shape[0], gbuf.shape[0])):
        cos_out[lo:hi], g1, grads = _ga_grads(x[lo:hi], y[lo:hi], eta[lo:hi], Wc, bc, U, c, both)
        if want_g1:
            g1_out[lo:hi] = g1
        _put_row(gbuf[t], grads, H, W)


def fgsm_gradalign(x, y, eta, Wc, bc, U, c, eps, alpha, lam, both, delta, losses, cos_out, gbuf):
    H, W = x.shape[2:]
    delta[:] = 0.0
    attack(x, y, Wc, bc, U, c, delta, eps, alpha, 1, False, losses)
    for t, (lo, hi) in enumerate(_chunks(x.shape[0], gbuf.shape[0])):
        losses[lo:hi], g_ce = _ce_grads(x[lo:hi] + delta[lo:hi], y[lo:hi], Wc, bc, U, c)
        cos_out[lo:hi], _, g_ga = _ga_grads(x[lo:hi], y[lo:hi], eta[lo:hi], Wc, bc, U, c, both)
        _put_row(gbuf[t], [a - lam * b for a, b in zip(g_ce, g_ga)], H, W)


def reduce_grad(gbuf, scale, M, C, H, W, K, out):
    s = gbuf[0].copy()
    for t in range(1, gbuf.shape[0]):           # the kernel's order: row by row
        s += gbuf[t]
    head = M * C * 9 + M
    out[:head] = scale * s[:head]
    out[head:head + K * M * H * W] = (scale * s[head:head + K * M * H * (W + 2)]
                                      ).reshape(K, M, H, W + 2)[..., :W].ravel()
    out[head + K * M * H * W:] = scale * s[head + K * M * H * (W + 2):]


def alignment_terms(W, U, Z, H, num, n0, n1, flips):
    """W (S, m, p) filters, U (S, m, k) outgoing weights, Z (S, k, p) patches, H (S, k, p) noise."""
    WT = np.swapaxes(W, 1, 2)                       # (S, p, m)
    A0 = (Z @ WT) >= 0.0                            # (S, k, m): 1[⟨w_r, z_i⟩ ≥ 0]
    A1 = ((Z + H) @ WT) >= 0.0                      # 1[⟨w_r, z_i + η_i⟩ ≥ 0]
    UT = np.swapaxes(U, 1, 2)                       # (S, k, m)
    G0 = (UT * A0) @ W                              # (S, k, p): ∇ₓf(x), patch by patch
    G1 = (UT * A1) @ W                              # ∇ₓf(x + η)
    num[:] = np.einsum("skp,skp->s", G0, G1)
    n0[:] = np.einsum("skp,skp->s", G0, G0)
    n1[:] = np.einsum("skp,skp->s", G1, G1)
    flips[:] = (A0 != A1).sum(axis=(1, 2))


# ----------------------------------------------------------------------------------------------
# the registry
# ----------------------------------------------------------------------------------------------
#: (N, C, H, W, M, K) of the cases: small (odd chunk sizes, non-square images) and the training batch
_SIZES = {"small": (37, 2, 5, 6, 3, 4), "bench": (128, 3, 32, 32, 4, 10)}


def _problem(size: str, seed: int = 0):
    """x ∈ U[0, 1], labels, η ~ U[−24/255, 24/255], torch-scale parameters with a doubled conv weight
    (masks that depend on the input); a fixed seed, so both backends get equal copies."""
    N, C, H, W, M, K = _SIZES[size]
    rng = stream(seed, "cnn/kernel-case", N)
    b1, b2 = 1 / np.sqrt(9 * C), 1 / np.sqrt(M * H * W)
    P = (2 * rng.uniform(-b1, b1, (M, C, 3, 3)), rng.uniform(-b1, b1, M), rng.uniform(-b2, b2, (K, M * H * W)),
         rng.uniform(-b2, b2, K))
    x = rng.uniform(0.0, 1.0, (N, C, H, W))
    return x, rng.integers(0, K, N), rng.uniform(-24 / 255, 24 / 255, x.shape), P


def _gbuf(size):
    N, C, H, W, M, K = _SIZES[size]
    return np.empty((n_chunks(N), grad_row_size(M, C, H, W, K)))


def _args(name: str, size: str, **kw) -> tuple:
    x, y, eta, P = _problem(size)
    N, K = x.shape[0], P[2].shape[0]
    if name == "logits":
        return (x, *P, np.empty((N, K)))
    if name == "loss_grad":
        return (x, y, *P, np.empty(N), _gbuf(size))
    if name == "loss_grad_weighted":      # weights of both signs (finite differences, ELLE)
        w = stream(3, "cnn/kernel-case").standard_normal(N)
        return (x, y, w, *P, np.empty(N), _gbuf(size))
    if name == "input_grad":
        return (x, y, *P, np.empty(N), np.empty_like(x))
    if name == "attack":          # PGD-3 from a random feasible start
        d0 = np.clip(x + eta, 0.0, 1.0) - x
        return (x, y, *P, d0, 24 / 255, 6 / 255, 3, True, np.empty(N))
    if name == "gradalign":
        return (x, y, eta, *P, kw["both"], True, np.empty(N), np.empty_like(x), _gbuf(size))
    if name == "fgsm_gradalign":
        return (x, y, eta, *P, 24 / 255, kw["alpha"], 0.7, kw["both"], np.empty_like(x), np.empty(N), np.empty(N),
                _gbuf(size))
    raise KeyError(name)


def _reduce_args(size: str) -> tuple:
    N, C, H, W, M, K = _SIZES[size]
    gbuf = stream(1, "cnn/kernel-case").standard_normal((n_chunks(N), grad_row_size(M, C, H, W, K)))
    return (gbuf, 1.0 / N, M, C, H, W, K, np.empty(M * C * 9 + M + K * M * H * W + K))


def _alignment_args(size: str) -> tuple:
    """Lemma 2's draws: a tiny setting (small) and one chunk of ``align-init``'s default (p = 27,
    k = 100, m = 4: 709 draws, about 2²² numbers, bench)."""
    S, p, k, m = (64, 5, 7, 3) if size == "small" else (709, 27, 100, 4)
    rng = stream(2, "cnn/kernel-case")
    W, U, Z = rng.standard_normal((S, m, p)), rng.standard_normal((S, m, k)), rng.random((S, k, p))
    return (W, U, Z, 0.1 * (2 * rng.random((S, k, p)) - 1), np.empty(S), np.empty(S), np.empty(S),
            np.empty(S, np.int64))


_SUMS = "the kernels sum in another order (per-example loops, reassociated and vectorized) than im2col/einsum"
_TOL = dict(rtol=1e-9, atol=1e-12, why=_SUMS)

CASES = [
    KernelCase("cnn.logits", _kernels.logits, logits, lambda s: _args("logits", s), **_TOL),
    KernelCase("cnn.loss_grad", _kernels.loss_grad, loss_grad, lambda s: _args("loss_grad", s), **_TOL),
    KernelCase("cnn.loss_grad_weighted", _kernels.loss_grad_weighted, loss_grad_weighted,
               lambda s: _args("loss_grad_weighted", s), **_TOL),
    KernelCase("cnn.input_grad", _kernels.input_grad, input_grad, lambda s: _args("input_grad", s), **_TOL),
    KernelCase("cnn.attack", _kernels.attack, attack, lambda s: _args("attack", s), **_TOL),
    *[KernelCase(f"cnn.gradalign.{'both' if both else 'through_x_eta'}", _kernels.gradalign, gradalign,
                 lambda s, both=both: _args("gradalign", s, both=both), **_TOL) for both in (False, True)],
    *[KernelCase(f"cnn.fgsm_gradalign.{'both' if both else 'through_x_eta'}.{tag}", _kernels.fgsm_gradalign,
                 fgsm_gradalign, lambda s, both=both, a=a: _args("fgsm_gradalign", s, both=both, alpha=a), **_TOL)
      for both in (False, True) for tag, a in (("alpha_eps", 24 / 255), ("alpha_half", 12 / 255))],
    KernelCase("cnn.reduce_grad", _kernels.reduce_grad, reduce_grad, _reduce_args),
    KernelCase("cnn.alignment_terms", _kernels.alignment_terms, alignment_terms, _alignment_args, rtol=1e-12,
               atol=1e-12, why="Gram-matrix expansion (kernel) vs the gradients formed literally (reference)"),
]
