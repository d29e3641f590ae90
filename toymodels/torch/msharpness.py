"""m-sharpness of a trained network by projected gradient ascent (thesis Ch. 5, eq. 5.1; Sec. 5.11).

Objective. For parameters w ∈ R^P (every parameter of ``net`` that requires grad, flattened), a batch
S of points, the batch loss L_S(w) = (1/|S|) Σ_{(x,y)∈S} ℓ(f_w(x), y) (mean cross-entropy by default) and
the sharpness of eq. (5.1)

    s(w, S) = max_{‖δ‖₂ ≤ ρ} L_S(w + δ) − L_S(w),

the m-sharpness of n points is the mean of s(w, S_b) over the B = ⌈n/m⌉ consecutive batches
S_1 = points 1..m, S_2 = m+1..2m, ... (the last one holds the n − (B−1)m remaining points; thesis
Sec. 5.11: "m-sharpness on 1024 training points, averaging over ⌈1024/m⌉ batches"). Each batch gets its
own δ_b. Note (5.1) is per point-mean, so values for different m are on the same scale.

Inner maximization (thesis Sec. 5.11, the authors' code ``weight_ascent_step``): K steps of projected
normalized gradient ascent from δ_0 = 0,

    δ_{k+1} = Π_ρ(δ_k + α g_k / ‖g_k‖₂),   g_k = ∇L_S(w + δ_k),   Π_ρ(δ) = δ · min(1, ρ/‖δ‖₂),

(no step when g_k = 0), with α = 0.1ρ (the thesis's step for its 100-step measurement) and, for K = 1,
α = ρ by default: one step is then exactly SAM's perturbation ρ ∇L_S/‖∇L_S‖ (the "1 step" of Fig. 5.3).
The value reported for a batch is max_{0≤k≤K} L_S(w + δ_k) − L_S(w): the best iterate, δ_0 = 0
included, so it is ≥ 0 and a lower bound of s(w, S). (The authors' code reports the last iterate
L_S(w + δ_K) − L_S(w) instead; the best iterate is ≥ it, and makes the value non-decreasing in K for a
fixed α since the K-step iterates are a prefix of the (K+1)-step ones.) No step count makes the value
exact in general; for a loss that is linear in w along the ball, or an isotropic quadratic, one step of
size ρ is the exact maximizer.

BatchNorm (``bn``): ``"eval"`` — every module in eval mode, BatchNorm uses its running statistics
(test-time BN, the default of post-hoc sharpness); ``"train"`` — the BatchNorm layers in train mode, so
each forward pass normalizes with the statistics of the m-batch it sees (training-time BN, what SAM's
ascent sees), every other module in eval mode. Networks without BatchNorm give the same value for both.

State. On return (also on error) every parameter, every buffer (BN running mean / variance / counter,
which the ``"train"`` forwards update) and every module's train/eval flag are restored bit-identically;
``.grad`` fields are not touched (gradients from :func:`torch.autograd.grad`) and no random number is
drawn, so a measurement between training epochs leaves the training bitwise unchanged.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError, check_choice, check_int, check_positive

__all__ = ["BN_MODES", "m_sharpness", "has_batchnorm", "default_alpha"]

#: BatchNorm modes of :func:`m_sharpness`
BN_MODES = ("eval", "train")


def has_batchnorm(net: torch.nn.Module) -> bool:
    """Whether ``net`` holds a BatchNorm layer (then ``bn="train"`` and ``"eval"`` can differ)."""
    return any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for mod in net.modules())


def default_alpha(rho: float, steps: int) -> float:
    """The ascent step of :func:`m_sharpness`: ρ for one step (SAM's perturbation), 0.1ρ otherwise (Sec. 5.11)."""
    return float(rho) if steps == 1 else 0.1 * float(rho)


@contextmanager
def _measuring(net: torch.nn.Module, bn: str):
    """Set the modes of ``bn``; restore parameters, buffers and train/eval flags bitwise on exit."""
    flags = [(mod, mod.training) for mod in net.modules()]
    saved = {k: v.detach().clone() for k, v in net.state_dict(keep_vars=True).items()}
    net.eval()
    if bn == "train":
        for mod in net.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.train()
    try:
        yield
    finally:
        with torch.no_grad():
            current = net.state_dict(keep_vars=True)
            for k, v in saved.items():
                current[k].copy_(v)
        for mod, flag in flags:
            mod.training = flag


def _batch_sharpness(net, params, w0, xb, yb, rho, steps, alpha, loss_fn) -> float:
    """max_{0≤k≤K} L(w0 + δ_k) − L(w0) on one batch (see the module docstring); params hold w0 + δ."""
    delta = [torch.zeros_like(p) for p in params]
    best = base = None
    for k in range(steps + 1):
        with torch.no_grad():
            for p, w, d in zip(params, w0, delta):
                p.copy_(w + d)
        if k == steps:                       # the last iterate: its loss only
            with torch.no_grad():
                loss = float(loss_fn(net(xb), yb))
            best = max(best, loss)
            break
        out = loss_fn(net(xb), yb)
        grads = torch.autograd.grad(out, params, allow_unused=True)
        loss = float(out.detach())
        if base is None:
            base = best = loss
        best = max(best, loss)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
        gnorm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
        if gnorm == 0.0:
            continue
        with torch.no_grad():
            for d, g in zip(delta, grads):
                d.add_(g, alpha=alpha / gnorm)
            dnorm = math.sqrt(sum(float((d.double() ** 2).sum()) for d in delta))
            if dnorm > rho:
                for d in delta:
                    d.mul_(rho / dnorm)
    return best - base


def m_sharpness(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, rho: float, m: int, steps: int,
                alpha: float | None = None, bn: str = "eval",
                loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> float:
    """The m-sharpness of ``net`` on the points (x, y) (thesis eq. 5.1, Sec. 5.11).

    Parameters
    ----------
    net : torch.nn.Module
        The model; its parameters that require grad are perturbed.
    x, y : torch.Tensor
        n inputs and their labels, on the model's device.
    rho : float
        ℓ₂ radius ρ > 0 of the weight perturbation δ (all perturbed parameters together).
    m : int
        Batch size m ≥ 1 of the m-sharpness; the n points are cut into ⌈n/m⌉ consecutive batches.
    steps : int
        Projected gradient ascent steps K ≥ 1 per batch.
    alpha : float, optional
        Ascent step α > 0 (default :func:`default_alpha`: ρ for K = 1, 0.1ρ otherwise).
    bn : {"eval", "train"}
        BatchNorm with its running statistics (test time) or with each m-batch's statistics (train time).
    loss_fn : callable, optional
        ``loss_fn(logits, y)`` → the *mean* loss over the batch (default: cross-entropy).

    Returns
    -------
    float
        (1/B) Σ_b max_{0≤k≤K} [L_{S_b}(w + δ_{b,k}) − L_{S_b}(w)] with the iterates δ_{b,k} of the
        module docstring: a lower bound, ≥ 0, of the m-sharpness (1/B) Σ_b s(w, S_b).
    """
    rho = check_positive("rho", rho)
    n = len(y)
    if n < 1 or len(x) != n:
        raise ConfigError("x", f"must hold n >= 1 points, as many as y ({len(x)} vs {n})")
    m = check_int("m", m, 1, n)
    steps = check_int("steps", steps, 1, 100_000)
    alpha = default_alpha(rho, steps) if alpha is None else check_positive("alpha", alpha)
    check_choice("bn", bn, BN_MODES)
    loss_fn = loss_fn or F.cross_entropy
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("net", "has no parameter that requires grad (nothing to perturb)")
    values = []
    with _measuring(net, bn):
        w0 = [p.detach().clone() for p in params]
        for i in range(0, n, m):
            values.append(_batch_sharpness(net, params, w0, x[i:i + m], y[i:i + m], rho, steps, alpha, loss_fn))
    return float(sum(values) / len(values))
