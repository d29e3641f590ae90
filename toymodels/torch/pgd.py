"""Projected gradient descent (Madry et al. 2018) in ℓ∞ and ℓ₂, returning the adversarial images.

Inputs x ∈ [0, 1]^(N, …), labels y (N,), the model returns logits (normalization inside the model).
Feasible set S(x) = {x̂ : ‖x̂ − x‖_p ≤ ε, x̂ ∈ [0, 1]^d}; L is the per-example loss to maximize
(:func:`toymodels.torch.losses.attack_loss`: ``"ce"`` or ``"dlr"``), g = ∇ₓL(x̂, y).

* ℓ∞ (thesis eq. 2.4): δ ← Π∞(δ + α sign g), Π∞(δ) = clip(x + clip(δ, −ε, ε), 0, 1) − x, from
  δ₀ = Π∞(η), η ~ U[−ε, ε]^d — with ``loss="ce"`` exactly :func:`toymodels.torch.attacks.pgd`.
* ℓ₂: x̂ ← clip(x + Π₂(x̂ + α g/(‖g‖₂ + 10⁻¹⁰) − x), 0, 1), Π₂(δ) = δ · min(1, ε/‖δ‖₂) (the ball, then
  the box: the update of ``torchattacks.PGDL2``), from x̂₀ = clip(x + η, 0, 1), η = ε u z/‖z‖₂ with
  z ~ N(0, I), u ~ U[0, 1] (torchattacks' start: a uniform radius along a uniform direction).

The default step is α = ε/4. With r restarts, per example the first restart whose final point is
misclassified is kept, else the one with the highest loss (first on ties); a point whose clean input
is misclassified while no restart is gets x itself back (an attack never returns a point worse than x).
Restart r draws its start from the CPU stream ``torch_generator(seed, "pgd", r)``, or takes it from
``noise[r]`` (the starting perturbation η, shape (restarts, *x.shape)). The model's train/eval mode is
not changed: put it in eval mode first (the attack objects of :mod:`toymodels.torch.attack_objects` do).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError, check_bool, check_choice, check_int, check_positive
from ..rng import check_seed
from .attacks import project, uniform_noise
from .config import NORMS
from .conv import input_grad_only
from .device import torch_generator
from .losses import LOSSES, attack_loss

__all__ = ["pgd", "pgd_start_noise"]


def _bview(x: torch.Tensor) -> tuple:
    """Shape that broadcasts a per-example (N,) tensor against x."""
    return (-1,) + (1,) * (x.dim() - 1)


def _l2(v: torch.Tensor) -> torch.Tensor:
    """Per-example ‖v‖₂ with keepdim (N, 1, …, 1) — summed over all non-batch dims like the references."""
    return (v ** 2).sum(dim=tuple(range(1, v.dim())), keepdim=True).sqrt()


def check_batch(x, y) -> None:
    """x a floating tensor (N, …) with N ≥ 1 and y an integer tensor (N,) on the same device."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or x.shape[0] < 1:
        raise ConfigError("x", "must be a floating-point tensor (N, ...) with N >= 1",
                          tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__)
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise ConfigError("y", f"must be an integer tensor of shape ({x.shape[0]},)",
                          tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__)


def check_noise(noise, shape: tuple) -> None:
    if not isinstance(noise, torch.Tensor) or tuple(noise.shape) != tuple(shape):
        raise ConfigError("noise", f"must be a tensor of shape {tuple(shape)}",
                          tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__)


def loss_grad(model, x_adv: torch.Tensor, y: torch.Tensor, loss: str, target=None):
    """(per-example loss L(x̂ₙ), ∇ₓL (gradient of the sum), logits) at x̂ = ``x_adv`` (all detached)."""
    xr = x_adv.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        z = model(xr)
        li = attack_loss(loss, z, y, target)
        with input_grad_only():
            g, = torch.autograd.grad(li.sum(), xr)
    return li.detach(), g.detach(), z.detach()


def pgd_start_noise(shape, *, norm: str, eps: float, restarts: int = 1, seed: int = 0,
                    dtype=torch.float32) -> torch.Tensor:
    """The starting perturbations η (restarts, *shape) that :func:`pgd` draws for ``seed`` (on the CPU)."""
    return torch.stack([_start(shape, norm, eps, seed, r, dtype) for r in range(int(restarts))])


def _start(shape, norm: str, eps: float, seed: int, r: int, dtype) -> torch.Tensor:
    """η of restart r from the CPU stream (seed, "pgd", r)."""
    gen = torch_generator(seed, "pgd", r)
    if norm == "linf":
        return uniform_noise(shape, eps, gen, torch.empty(0, dtype=dtype))
    z = torch.randn(tuple(shape), generator=gen, dtype=dtype)
    u = torch.rand((shape[0],) + (1,) * (len(shape) - 1), generator=gen, dtype=dtype)
    return z / _l2(z) * u * eps


def _run(model, x, y, eta, *, norm, eps, alpha, steps, loss):
    """One PGD run from the start η (None: no random start); returns the final x̂."""
    if norm == "linf":
        # δ-space exactly as toymodels.torch.attacks.pgd, so that both give the same numbers
        delta = torch.zeros_like(x) if eta is None else project(x, eta, eps)
        for _ in range(steps):
            _, g, _ = loss_grad(model, x + delta, y, loss)
            delta = project(x, delta + alpha * g.sign(), eps)
        return (x + delta).detach()
    adv = x.clone() if eta is None else (x + eta).clamp(0.0, 1.0)
    for _ in range(steps):
        _, g, _ = loss_grad(model, adv, y, loss)
        adv = adv + alpha * g / (g.flatten(1).norm(dim=1).view(_bview(x)) + 1e-10)
        delta = adv - x
        # min(1, ε/‖δ‖): ε/0 = inf, so δ = 0 stays 0
        delta = delta * torch.clamp(eps / delta.flatten(1).norm(dim=1), max=1.0).view(_bview(x))
        adv = (x + delta).clamp(0.0, 1.0)
    return adv.detach()


def pgd(model, x: torch.Tensor, y: torch.Tensor, *, norm: str = "linf", eps: float, alpha: float | None = None,
        steps: int = 50, restarts: int = 1, loss: str = "ce", random_start: bool = True,
        noise: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """PGD-``steps`` with ``restarts`` restarts in ``norm`` ∈ {linf, l2}; returns x_adv (detached).

    Parameters
    ----------
    model : logits = model(x); its mode is left as it is.
    x, y : images in [0, 1] (N, …) and int64 labels (N,).
    eps : radius ε > 0; ``alpha`` the step (default ε/4); ``loss`` ∈ {ce, dlr} maximized.
    random_start : start from Π(η) (module docstring) or from x (then ``restarts`` must be 1).
    noise : the starting perturbations η (restarts, *x.shape), else drawn from stream (seed, "pgd", r).

    Returns
    -------
    x_adv with ‖x_adv − x‖_p ≤ ε (up to rounding) and x_adv ∈ [0, 1]: per example the first
    successful restart, else the highest-loss one; x if x is misclassified and no restart is.
    """
    check_batch(x, y)
    norm = check_choice("norm", norm, NORMS)
    eps = check_positive("eps", eps)
    alpha = eps / 4 if alpha is None else check_positive("alpha", alpha)
    steps, restarts = check_int("steps", steps, 0), check_int("restarts", restarts, 1)
    loss = check_choice("loss", loss, LOSSES)
    check_bool("random_start", random_start)
    seed = check_seed(seed)
    if not random_start and restarts > 1:
        raise ConfigError("restarts", "must be 1 without a random start", restarts)
    if noise is not None:
        check_noise(noise, (restarts,) + tuple(x.shape))
    x, b = x.detach(), _bview(x)
    best = best_ok = best_loss = None
    for r in range(restarts):
        eta = None
        if random_start:
            eta = noise[r] if noise is not None else _start(x.shape, norm, eps, seed, r, x.dtype)
            eta = eta.to(device=x.device, dtype=x.dtype)
        adv = _run(model, x, y, eta, norm=norm, eps=eps, alpha=alpha, steps=steps, loss=loss)
        with torch.no_grad():
            z = model(adv)
            ok, li = z.argmax(1) != y, attack_loss(loss, z, y)
        if best is None:
            best, best_ok, best_loss = adv, ok, li
            continue
        # a success is never replaced; a failure by a success or by a higher loss
        take = (ok & ~best_ok) | (~ok & ~best_ok & (li > best_loss))
        best = torch.where(take.view(b), adv, best)
        best_ok, best_loss = best_ok | (take & ok), torch.where(take, li, best_loss)
    with torch.no_grad():
        clean_wrong = model(x).argmax(1) != y
    return torch.where((clean_wrong & ~best_ok).view(b), x, best).detach()
