"""Per-example attack losses on logits and their gradients w.r.t. the logits, in numpy — the twins
of :mod:`toymodels.torch.losses` (same definitions, no torch import), for the numba CNN's attacks.

For logits z ∈ R^K of one point with label y (and target t ≠ y), π the classes sorted by decreasing
score (z_π₁ ≥ z_π₂ ≥ …), j = argmax_{k≠y} z_k (first maximal class on ties):

* ``margin``       m(z, y) = z_y − z_j
* ``ce``           CE(z, y) = logsumexp_k z_k − z_y
* ``ce_targeted``  −CE(z, t) = z_t − logsumexp_k z_k
* ``dlr``          DLR(z, y) = −m(z, y) / D,   D = z_π₁ − z_π₃ + 10⁻¹²              (Croce & Hein 2020, eq. 5)
* ``dlr_targeted`` DLR_t(z, y, t) = −(z_y − z_t) / D_t,   D_t = z_π₁ − (z_π₃ + z_π₄)/2 + 10⁻¹²   (eq. 6)

Each ``*_grad`` function returns ``(loss, v)`` with v = ∂loss/∂z of shape (n, K) — the gradient that
autograd computes for the torch version (through ``sort``, the derivative goes to the sorted
positions' classes):

    ∂CE/∂z      = p − e_y                     (p = softmax z)
    ∂(−CE_t)/∂z = e_t − p
    ∂m/∂z       = e_y − e_j
    ∂DLR/∂z     = −(e_y − e_j)/D + m (e_π₁ − e_π₃)/D²
    ∂DLR_t/∂z   = −(e_y − e_t)/D_t + (z_y − z_t)(e_π₁ − (e_π₃ + e_π₄)/2)/D_t²

All five losses are invariant to adding a constant to every logit, so every row of v sums to 0
(used by :func:`toymodels.cnn.apgd.loss_input_grad`: the input gradient is Jᵀv).
The sort is numpy's stable argsort of −z: on ties the first class comes first (torch's sort is not
specified on ties; ties of float64 logits do not occur in practice).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["margin", "ce", "ce_targeted", "dlr", "dlr_targeted", "margin_grad", "ce_grad",
           "ce_targeted_grad", "dlr_grad", "dlr_targeted_grad", "LOSSES", "attack_loss_grad"]

#: names accepted by :func:`attack_loss_grad` (as :data:`toymodels.torch.losses.LOSSES`)
LOSSES = ("ce", "dlr")


def _zy(z: np.ndarray, y: np.ndarray):
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if z.ndim != 2 or y.shape != (z.shape[0],):
        raise ConfigError("z", "must have shape (n, K) with labels of shape (n,)", (z.shape, y.shape))
    return z, y


def _best_other(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """j = argmax_{k≠y} z_k per row (first maximal class)."""
    other = z.copy()
    other[np.arange(z.shape[0]), y] = -np.inf
    return other.argmax(axis=1)


def _order(z: np.ndarray) -> np.ndarray:
    """π per row: classes by decreasing logit (stable: the first class first on ties)."""
    return np.argsort(-z, axis=1, kind="stable")


def _check_classes(z: np.ndarray, k: int, name: str) -> None:
    if z.shape[1] < k:
        raise ConfigError("loss", f"{name} needs at least {k} classes", z.shape[1])


def margin_grad(z, y):
    """(m(z, y), e_y − e_j)."""
    z, y = _zy(z, y)
    r = np.arange(z.shape[0])
    j = _best_other(z, y)
    v = np.zeros_like(z)
    v[r, y] += 1.0
    v[r, j] -= 1.0
    return z[r, y] - z[r, j], v


def ce_grad(z, y):
    """(CE(z, y), p − e_y), max-shifted logsumexp."""
    z, y = _zy(z, y)
    r = np.arange(z.shape[0])
    zmax = z.max(axis=1, keepdims=True)
    e = np.exp(z - zmax)
    tot = e.sum(axis=1)
    p = e / tot[:, None]
    loss = np.log(tot) + zmax[:, 0] - z[r, y]
    p[r, y] -= 1.0
    return loss, p


def ce_targeted_grad(z, t):
    """(−CE(z, t), e_t − p)."""
    loss, v = ce_grad(z, t)
    return -loss, -v


def dlr_grad(z, y):
    """(DLR(z, y), −(e_y − e_j)/D + m (e_π₁ − e_π₃)/D²)."""
    z, y = _zy(z, y)
    _check_classes(z, 3, "the DLR loss")
    r = np.arange(z.shape[0])
    m, v = margin_grad(z, y)
    pi = _order(z)
    d = z[r, pi[:, 0]] - z[r, pi[:, 2]] + 1e-12
    v = -v / d[:, None]
    s = m / d ** 2
    v[r, pi[:, 0]] += s
    v[r, pi[:, 2]] -= s
    return -m / d, v


def dlr_targeted_grad(z, y, t):
    """(DLR_t(z, y, t), −(e_y − e_t)/D_t + (z_y − z_t)(e_π₁ − (e_π₃ + e_π₄)/2)/D_t²)."""
    z, y = _zy(z, y)
    _, t = _zy(z, t)
    _check_classes(z, 4, "the targeted DLR loss")
    r = np.arange(z.shape[0])
    pi = _order(z)
    m = z[r, y] - z[r, t]
    d = z[r, pi[:, 0]] - 0.5 * (z[r, pi[:, 2]] + z[r, pi[:, 3]]) + 1e-12
    v = np.zeros_like(z)
    v[r, y] -= 1.0 / d
    v[r, t] += 1.0 / d
    s = m / d ** 2
    v[r, pi[:, 0]] += s
    v[r, pi[:, 2]] -= 0.5 * s
    v[r, pi[:, 3]] -= 0.5 * s
    return -m / d, v


def margin(z, y) -> np.ndarray:
    """m(z, y) = z_y − max_{k≠y} z_k, shape (n,)."""
    return margin_grad(z, y)[0]


def ce(z, y) -> np.ndarray:
    """CE(z, y) = logsumexp_k z_k − z_y, shape (n,)."""
    return ce_grad(z, y)[0]


def ce_targeted(z, t) -> np.ndarray:
    """−CE(z, t), shape (n,)."""
    return -ce(z, t)


def dlr(z, y) -> np.ndarray:
    """DLR(z, y) = −(z_y − max_{k≠y} z_k) / (z_π₁ − z_π₃ + 10⁻¹²), shape (n,)."""
    return dlr_grad(z, y)[0]


def dlr_targeted(z, y, t) -> np.ndarray:
    """DLR_t(z, y, t) = −(z_y − z_t) / (z_π₁ − (z_π₃ + z_π₄)/2 + 10⁻¹²), shape (n,)."""
    return dlr_targeted_grad(z, y, t)[0]


def attack_loss_grad(name: str, z, y, target=None):
    """(loss, ∂loss/∂z) of the loss ``name`` ∈ {ce, dlr} to maximize: untargeted when ``target`` is
    None, else targeted (ce → −CE(z, t), dlr → DLR_t), as :func:`toymodels.torch.losses.attack_loss`."""
    if name == "ce":
        return ce_grad(z, y) if target is None else ce_targeted_grad(z, target)
    if name == "dlr":
        return dlr_grad(z, y) if target is None else dlr_targeted_grad(z, y, target)
    raise ConfigError("loss", "must be one of {" + ", ".join(LOSSES) + "}", name)
