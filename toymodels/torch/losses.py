"""Per-example attack losses on logits, shared by PGD, APGD, APGD-T, FAB and the Square Attack.

For logits z ∈ R^K of one point with label y (and target t ≠ y), π the classes sorted by decreasing
score (z_π₁ ≥ z_π₂ ≥ …):

* ``margin``       m(z, y) = z_y − max_{k≠y} z_k            (> 0 iff correctly classified, first max on ties)
* ``ce``           CE(z, y) = logsumexp_k z_k − z_y
* ``ce_targeted``  −CE(z, t) = z_t − logsumexp_k z_k
* ``dlr``          DLR(z, y) = −(z_y − max_{k≠y} z_k) / (z_π₁ − z_π₃ + 10⁻¹²)         (Croce & Hein 2020, eq. 5)
* ``dlr_targeted`` DLR_t(z, y, t) = −(z_y − z_t) / (z_π₁ − (z_π₃ + z_π₄)/2 + 10⁻¹²)  (their eq. 6)

Every loss is one an attack *maximizes*, except ``margin``, which the Square Attack minimizes (as its
paper). DLR is invariant to shifting and to positive rescaling of the logits, which is why APGD uses it
against models that saturate the softmax; it needs K ≥ 3 classes (the targeted version K ≥ 4).
All functions are differentiable and return a tensor of shape (n,).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["margin", "ce", "ce_targeted", "dlr", "dlr_targeted", "LOSSES", "attack_loss"]

#: names accepted by :func:`attack_loss`
LOSSES = ("ce", "dlr")


def _best_other(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """max_{k≠y} z_k per row."""
    other = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), -torch.inf)
    return other.max(dim=1).values


def margin(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """m(z, y) = z_y − max_{k≠y} z_k."""
    return z.gather(1, y[:, None])[:, 0] - _best_other(z, y)


def ce(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CE(z, y) = logsumexp_k z_k − z_y (computed in float32 at least)."""
    return F.cross_entropy(z.float() if z.dtype in (torch.float16, torch.bfloat16) else z, y, reduction="none")


def ce_targeted(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """−CE(z, t): maximizing it moves the point towards class t."""
    return -ce(z, t)


def _check_classes(z: torch.Tensor, k: int, name: str) -> None:
    if z.shape[1] < k:
        raise ConfigError("loss", f"{name} needs at least {k} classes", z.shape[1])


def dlr(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DLR(z, y) = −(z_y − max_{k≠y} z_k) / (z_π₁ − z_π₃ + 10⁻¹²)."""
    _check_classes(z, 3, "the DLR loss")
    zs = z.sort(dim=1).values
    return -margin(z, y) / (zs[:, -1] - zs[:, -3] + 1e-12)


def dlr_targeted(z: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """DLR_t(z, y, t) = −(z_y − z_t) / (z_π₁ − (z_π₃ + z_π₄)/2 + 10⁻¹²)."""
    _check_classes(z, 4, "the targeted DLR loss")
    zs = z.sort(dim=1).values
    zy, zt = z.gather(1, y[:, None])[:, 0], z.gather(1, t[:, None])[:, 0]
    return -(zy - zt) / (zs[:, -1] - 0.5 * (zs[:, -3] + zs[:, -4]) + 1e-12)


def attack_loss(name: str, z: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """The loss ``name`` ∈ {ce, dlr} to maximize: untargeted when ``target`` is None, else targeted."""
    if name == "ce":
        return ce(z, y) if target is None else ce_targeted(z, target)
    if name == "dlr":
        return dlr(z, y) if target is None else dlr_targeted(z, y, target)
    raise ConfigError("loss", "must be one of {" + ", ".join(LOSSES) + "}", name)
