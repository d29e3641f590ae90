"""The CNN's input gradient of a general loss of the logits (chain rule through z), vectorized numpy.

For the model of :mod:`toymodels.cnn.model` (a = conv(x, Wc) + bc, h = ReLU(a), z = U vec(h) + c) and
per-example v = ∂L/∂z ∈ R^K, the input gradient is the vector–Jacobian product

    ∇ₓ L = Jᵀ v = convᵀ(1[a > 0] ⊙ reshape(Uᵀ v), Wc)        (convᵀ: the transposed 3×3 convolution)

(ReLU'(0) := 0 as torch). Two ways to compute it:

* :func:`loss_and_input_grad` (used by the attacks) reuses the numba cross-entropy input gradient
  g_k = ∇ₓCE(x, k) = Jᵀ(p − e_k) (``model.input_grad``, any per-example label k). For a loss that is
  invariant to shifting all logits (CE, margin, DLR, DLR_t — see :mod:`toymodels.cnn.losses`) the rows
  of v sum to 0, hence

      Jᵀv = Σ_k v_k Jᵀe_k = −Σ_k v_k (Jᵀp − Jᵀe_k) + (Σ_k v_k) Jᵀp = −Σ_k v_k g_k,

  and only the classes where v_k ≠ 0 are needed: 3 for DLR ({y, j, π₃}: π₁ ∈ {y, j}), at most 5 for
  DLR_t, so 3–5 numba passes per step instead of a numpy convolution (about 10× slower here); CE and
  −CE(·, t) are one pass (g_y, −g_t).
* :func:`logits_and_vjp` is the plain-numpy forward pass with a closure computing Jᵀv for any v
  (9 shifted channel contractions on the zero-padded input) — the readable reference the tests check
  the fast path against.
"""
from __future__ import annotations

import numpy as np

from .losses import attack_loss_grad
from .model import CNNParams, _input_grad_core, _logits_core, _params

__all__ = ["logits_and_vjp", "loss_input_grad", "loss_and_input_grad", "jt_v"]


def _conv(xpad: np.ndarray, Wc: np.ndarray, H: int, W: int) -> np.ndarray:
    """a[n, m, i, j] = Σ_{c,u,v} Wc[m, c, u, v] x̄[n, c, i + u, j + v] (no bias), x̄ zero-padded."""
    a = np.zeros((xpad.shape[0], Wc.shape[0], H, W))
    for u in range(3):
        for v in range(3):
            a += np.einsum("mc,nchw->nmhw", Wc[:, :, u, v], xpad[:, :, u:u + H, v:v + W], optimize=True)
    return a


def _conv_t(ga: np.ndarray, Wc: np.ndarray, C: int) -> np.ndarray:
    """Adjoint of :func:`_conv` restricted to the interior: (N, M, H, W) → (N, C, H, W)."""
    N, _, H, W = ga.shape
    gp = np.zeros((N, C, H + 2, W + 2))
    for u in range(3):
        for v in range(3):
            gp[:, :, u:u + H, v:v + W] += np.einsum("mc,nmhw->nchw", Wc[:, :, u, v], ga, optimize=True)
    return gp[:, :, 1:H + 1, 1:W + 1]


def logits_and_vjp(P, x: np.ndarray):
    """Forward pass at x (validated arrays ``P`` = (Wc, bc, U, c), x (N, C, H, W) float64): returns
    (z (N, K), vjp) with vjp(v) = Jᵀv (N, C, H, W) for v (N, K)."""
    Wc, bc, U, c = P
    N, C, H, W = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    a = _conv(xpad, Wc, H, W) + bc[None, :, None, None]
    mask = a > 0.0
    h = np.where(mask, a, 0.0)
    z = h.reshape(N, -1) @ U.T + c

    def vjp(v: np.ndarray) -> np.ndarray:
        ga = (v @ U).reshape(a.shape) * mask
        return _conv_t(ga, Wc, C)

    return z, vjp


def loss_input_grad(params: CNNParams, x, loss_grad):
    """(loss, ∇ₓ loss, z) for ``loss_grad(z) -> (loss (N,), ∂loss/∂z (N, K))`` (e.g. a function of
    :mod:`toymodels.cnn.losses` with the labels bound), each example's own loss."""
    P = _params(params)
    z, vjp = logits_and_vjp(P, np.ascontiguousarray(x, dtype=np.float64))
    loss, v = loss_grad(z)
    return loss, vjp(v), z


def jt_v(P, x: np.ndarray, v: np.ndarray, backend: str = "numba") -> np.ndarray:
    """Jᵀv = −Σ_k v_k ∇ₓCE(x, k) (module docstring) for rows of v that sum to 0: one numba pass per
    "slot" s, where slot s holds each example's s-th class with v_k ≠ 0 (label arrays per example)."""
    nz = v != 0.0
    n_slots = int(nz.sum(axis=1).max()) if v.size else 0
    # per example: the classes with v_k ≠ 0 first (stable), the rest never read with a nonzero weight
    order = np.argsort(~nz, axis=1, kind="stable")
    rows = np.arange(v.shape[0])
    g = np.zeros_like(x)
    for s in range(n_slots):
        lab = np.ascontiguousarray(order[:, s], dtype=np.int64)
        _, gs = _input_grad_core(P, x, lab, backend)
        g -= v[rows, lab][:, None, None, None] * gs
    return g


def loss_and_input_grad(P, x: np.ndarray, y: np.ndarray, loss: str, target=None, backend: str = "numba"):
    """(per-example loss L, ∇ₓL, logits z) at validated arrays ``P``, ``x`` for the attack loss
    ``loss`` ∈ {ce, dlr} (targeted when ``target`` is given: −CE(z, t), DLR_t(z, y, t))."""
    z = _logits_core(P, x, backend)
    if loss == "ce":
        lab = y if target is None else target
        li, g = _input_grad_core(P, x, np.ascontiguousarray(lab, dtype=np.int64), backend)
        return (li, g, z) if target is None else (-li, -g, z)
    li, v = attack_loss_grad(loss, z, y, target)
    return li, jt_v(P, x, v, backend), z
