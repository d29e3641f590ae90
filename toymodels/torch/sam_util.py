"""Helpers of :mod:`toymodels.torch.sam`: gradient unscaling with a finiteness check, the weights /
rest split of a model's parameters (ASAM weights-only scaling, SAM-ON) and BatchNorm statistics frozen
during perturbed passes."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["split_weights", "has_batchnorm", "bn_frozen"]


@torch.no_grad()
def _unscale_finite(params, inv_scale: float) -> bool:
    """Multiply the gradients by ``inv_scale``; return whether all are finite."""
    flags = []
    for p in params:
        if p.grad is not None:
            if inv_scale != 1.0:
                p.grad.mul_(inv_scale)
            flags.append(torch.isfinite(p.grad).all().to(params[0].device))
    return bool(torch.stack(flags).all()) if flags else True


# ---------------------------------------------------------------------- parameter groups
_NORM = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def split_weights(model: nn.Module) -> tuple[list, list]:
    """(weights, rest) of ``model``'s trainable parameters: ``rest`` holds every bias and the
    parameters of normalization layers (BatchNorm, InstanceNorm, GroupNorm, LayerNorm), ``weights``
    everything else (conv / linear weights). For ASAM's weights-only scaling (``rest`` in a group with
    ``adaptive=False``) or SAM-ON (``weights`` in a group with ``perturb=False``)."""
    weights, rest = [], []
    for mod in model.modules():
        for name, p in mod.named_parameters(recurse=False):
            if p.requires_grad:
                (rest if isinstance(mod, _NORM) or name == "bias" else weights).append(p)
    return weights, rest


# ---------------------------------------------------------------------- BatchNorm
_BN = nn.modules.batchnorm._BatchNorm


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer that tracks running statistics."""
    return any(isinstance(m, _BN) and m.track_running_stats for m in model.modules())


@contextlib.contextmanager
def bn_frozen(model: nn.Module):
    """Inside the block, forward passes in train mode still normalize with batch statistics but leave
    every BatchNorm's ``running_mean``, ``running_var`` and ``num_batches_tracked`` exactly as they were
    (saved on entry, restored on exit: exact even with ``momentum=None`` or non-finite batch stats)."""
    saved = []
    for mod in model.modules():
        if isinstance(mod, _BN) and mod.track_running_stats:
            saved.append((mod, [None if t is None else t.detach().clone() for t in
                                (mod.running_mean, mod.running_var, mod.num_batches_tracked)]))
    try:
        yield
    finally:
        with torch.no_grad():
            for mod, (rm, rv, nbt) in saved:
                for cur, old in ((mod.running_mean, rm), (mod.running_var, rv), (mod.num_batches_tracked, nbt)):
                    if cur is not None and old is not None:
                        cur.copy_(old)
