"""Loss along the straight line between two models (thesis Figs. 5.10 and 5.15: linear connectivity of
w_ERM and w_ERM→SAM).

For α ∈ ``alphas`` the model w(α) = (1 − α)·w_a + α·w_b (every parameter; α outside [0, 1]
extrapolates) is evaluated on training and test points: the mean loss (1/n) Σ ℓ(f_{w(α)}(xᵢ), yᵢ)
(cross-entropy by default) and, for integer labels, the error rate (1/n) Σ 1[argmax f ≠ yᵢ].

Buffers: with ``bn="recompute"`` (default; the thesis's choice — its code interpolates the parameters
and re-estimates the BatchNorm statistics on training data at every α) the running mean / variance of
every BatchNorm layer are reset and re-estimated as the plain average over the batches of ``bn_x``
(training mode, no gradient), then the model is evaluated in eval mode. With ``bn="keep"`` the buffers
are interpolated like the parameters. Models without BatchNorm (the CNN, GroupNorm ResNets) are the
same under both. Buffers equal in both models (e.g. the input normalization) are copied, and
(1 − α)·a + α·b is exact at α = 0 and 1, so the endpoints reproduce the models' own evaluation.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, check_choice

__all__ = ["interpolate", "BN_MODES", "set_interpolated", "recompute_bn", "evaluate"]

BN_MODES = ("recompute", "keep")


def set_interpolated(target: nn.Module, a: dict, b: dict, alpha: float, *, buffers: bool) -> None:
    """Load (1 − α)·a + α·b into ``target`` (state dicts ``a``, ``b``); buffers too when ``buffers``,
    else a's buffers (integer buffers, e.g. BN's batch counters, always from ``a``)."""
    params = {n for n, _ in target.named_parameters()}
    new = {}
    for k, va in a.items():
        vb = b[k]
        if not torch.is_floating_point(va) or (k not in params and not buffers) or torch.equal(va, vb):
            new[k] = va.clone()
        else:
            new[k] = (1.0 - alpha) * va + alpha * vb
    target.load_state_dict(new)


@torch.no_grad()
def recompute_bn(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> None:
    """Reset every BatchNorm's running statistics and re-estimate them as the average over the batches
    of ``x`` (``momentum=None``: cumulative average), then leave the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        model.eval()
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, len(x), batch_size):
        model(x[i:i + batch_size])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=None, batch_size: int = 500):
    """(mean loss, error rate or None) of ``model`` (eval mode) on (x, y); the error only for integer
    labels. ``loss_fn(output, y)`` must return the batch *sum* (default: summed cross-entropy)."""
    loss_fn = loss_fn or (lambda z, t: F.cross_entropy(z, t, reduction="sum"))
    model.eval()
    total = wrong = 0.0
    for i in range(0, len(y), batch_size):
        z = model(x[i:i + batch_size])
        yb = y[i:i + batch_size]
        total += float(loss_fn(z, yb))
        if not torch.is_floating_point(yb):
            wrong += float((z.argmax(1) != yb).sum())
    n = len(y)
    return total / n, (wrong / n if not torch.is_floating_point(y) else None)


def interpolate(model_a: nn.Module, model_b: nn.Module, x, y, alphas, *, x_test=None, y_test=None,
                bn: str = "recompute", bn_x=None, loss_fn=None, batch_size: int = 500) -> dict:
    """Train (and test) loss and error of (1 − α)·w_a + α·w_b for every α of ``alphas``.

    Parameters
    ----------
    model_a, model_b : the two endpoints, the same architecture (not modified).
    x, y : the training points of the evaluation; ``x_test``, ``y_test`` optional test points.
    alphas : the interpolation coefficients (α = 0: model_a, α = 1: model_b).
    bn : ``"recompute"`` (re-estimate BatchNorm statistics on ``bn_x``, default ``x``) or ``"keep"``
        (interpolate the buffers too); see the module docstring.
    loss_fn : ``loss_fn(output, target)`` returning the batch sum; default summed cross-entropy.

    Returns
    -------
    dict with ``alpha``, ``train_loss``, ``train_err``, ``test_loss``, ``test_err`` (lists, one entry per
    α; errors None for real-valued targets, test entries None without test points) and ``distance``
    ‖w_b − w_a‖₂ over the parameters.
    """
    check_choice("bn", bn, BN_MODES)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise ConfigError("model_b", "must have the architecture of model_a (same state-dict keys and shapes)")
    net = copy.deepcopy(model_a)
    bn_x = x if bn_x is None else bn_x
    out = {k: [] for k in ("alpha", "train_loss", "train_err", "test_loss", "test_err")}
    for alpha in alphas:
        set_interpolated(net, sa, sb, float(alpha), buffers=(bn == "keep"))
        if bn == "recompute":
            recompute_bn(net, bn_x, batch_size)
        tl, te = evaluate(net, x, y, loss_fn, batch_size)
        sl, se = (None, None) if x_test is None else evaluate(net, x_test, y_test, loss_fn, batch_size)
        for k, v in zip(out, (float(alpha), tl, te, sl, se)):
            out[k].append(v)
    pa = dict(model_a.named_parameters())
    out["distance"] = float(torch.sqrt(sum(((p.detach().double() - pa[n].detach().double()) ** 2).sum()
                                           for n, p in model_b.named_parameters())))
    return out
