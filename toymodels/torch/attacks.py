"""ℓ∞ attacks, GradAlign and local-linearity metrics for any image classifier ``nn.Module``
(thesis Ch. 2), the torch twins of :mod:`toymodels.cnn.attacks` / :mod:`toymodels.cnn.metrics`.

Inputs x ∈ [0, 1]^d, the model returns logits, ℓ is the per-example cross-entropy. Feasible set
S(x) = {δ : ‖δ‖∞ ≤ ε, x + δ ∈ [0, 1]^d}, projection Π(δ) = clip(x + clip(δ, −ε, ε), 0, 1) − x.

* FGSM (eq. 2.2):    δ = Π(α sign ∇ₓℓ(x)), α = ε by default.
* FGSM-RS (eq. 2.3): δ₀ = Π(η), η ~ U[−ε, ε]^d;  δ = Π(δ₀ + α sign ∇ₓℓ(x + δ₀)).
* PGD-k, r restarts: δ_{t+1} = Π(δ_t + α sign ∇ₓℓ(x + δ_t)) from δ₀ = Π(η_r) (or 0); per example the
  restart with the highest final loss is kept (first on ties). PGD-50-10 with α = ε/4 is the
  thesis' evaluation (:func:`pgd_eval`).
* Free-AT (Shafahi et al. 2019, :func:`free_at_batch`): each minibatch is replayed m times; every
  replay does one backward pass that gives both ∇_θ (an optimizer step) and ∇_δ (δ ← Π(δ + ε sign ∇_δ)),
  δ persisting across replays and minibatches.
* GradAlign (eq. 2.7, :func:`gradalign`): Ω = mean_n [1 − cos(∇ₓℓ(xₙ), ∇ₓℓ(xₙ + ηₙ))], η ~ U[−ε, ε]^d,
  x + η *not* clipped (as the authors' code and :func:`toymodels.cnn.model.gradalign_loss_and_grad`),
  a differentiable tensor built by double backprop (``create_graph=True``).
* Gradient alignment (eq. 2.5, :func:`grad_alignment`): mean cos(∇ₓℓ(x), ∇ₓℓ(clip(x + η, 0, 1))).
* :func:`cos_fgsm_pgd`: mean cos(δ_FGSM, δ_PGD) (PGD-10, α = ε/4, random start).

Cosines with a zero vector count as 1, as in the numba layer. sign(0) = 0. Noise η is drawn on the
CPU from the given ``torch.Generator`` (reproducible on any device) or passed pre-drawn (``noise``).
The functions do not change the model's train/eval mode: set it before calling (the training loop
attacks in train mode like Wong et al., and evaluates in eval mode).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from ..cnn.train import detect_co  # the CO rule is shared with the numba layer
from .conv import input_grad_only, twice_differentiable

__all__ = ["project", "input_grad", "fgsm", "fgsm_rs", "pgd", "pgd_eval", "free_at_batch", "gradalign",
           "grad_alignment", "cos_fgsm_pgd", "cosines", "uniform_noise", "detect_co", "accuracy_loss"]


def project(x: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Π(δ) = clip(x + clip(δ, −ε, ε), 0, 1) − x."""
    return (x + delta.clamp(-eps, eps)).clamp(0.0, 1.0) - x


def uniform_noise(shape, eps: float, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """η ~ U[−ε, ε]^shape drawn on the CPU from ``generator`` (same draws on any device)."""
    u = torch.rand(tuple(shape), generator=generator, dtype=like.dtype)
    return ((2.0 * u - 1.0) * eps).to(like.device)


def input_grad(model, x: torch.Tensor, y: torch.Tensor, *, create_graph: bool = False):
    """(per-example losses ℓ(xₙ, yₙ), ∇ₓℓ(xₙ, yₙ)): the gradient of each example's own loss (the sum
    over the batch is differentiated, not the mean)."""
    xr = x.detach().clone().requires_grad_(True)
    # create_graph (GradAlign): toymodels.torch.conv.Conv2d records a backward that is cheap to
    # differentiate again, and skips the weight gradients this call discards
    with twice_differentiable() if create_graph else contextlib.nullcontext():
        losses = F.cross_entropy(model(xr), y, reduction="none")
    with input_grad_only():
        g, = torch.autograd.grad(losses.sum(), xr, create_graph=create_graph)
    return losses, g


def fgsm(model, x, y, eps: float, alpha: float | None = None) -> torch.Tensor:
    """δ = Π(α sign ∇ₓℓ(x, y)), α = ε by default."""
    alpha = eps if alpha is None else alpha
    _, g = input_grad(model, x, y)
    return project(x, alpha * g.sign(), eps).detach()


def fgsm_rs(model, x, y, eps: float, alpha: float, noise: torch.Tensor | None = None, *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """δ = Π(Π(η) + α sign ∇ₓℓ(x + Π(η), y)), η = ``noise`` or drawn ~ U[−ε, ε]^d."""
    if noise is None:
        noise = uniform_noise(x.shape, eps, generator, x)
    d0 = project(x, noise, eps)
    _, g = input_grad(model, x + d0, y)
    return project(x, d0 + alpha * g.sign(), eps).detach()


def pgd(model, x, y, eps: float, alpha: float, steps: int, restarts: int = 1, *, random_start: bool = True,
        noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
        return_loss: bool = False):
    """PGD-``steps`` with ``restarts`` restarts; per example keeps the restart with the highest loss.

    ``noise`` (restarts, N, C, H, W) gives the starting points η_r (else drawn from ``generator``)."""
    if not random_start and restarts > 1:
        raise ValueError("restarts must be 1 without a random start")
    best, best_loss = None, None
    for r in range(int(restarts)):
        if not random_start:
            delta = torch.zeros_like(x)
        else:
            eta = noise[r] if noise is not None else uniform_noise(x.shape, eps, generator, x)
            delta = project(x, eta, eps)
        for _ in range(int(steps)):
            _, g = input_grad(model, x + delta, y)
            delta = project(x, delta + alpha * g.sign(), eps)
        delta = delta.detach()
        if restarts == 1 and not return_loss:
            return delta
        with torch.no_grad():
            losses = F.cross_entropy(model(x + delta), y, reduction="none")
        if best is None:
            best, best_loss = delta, losses
        else:
            better = losses > best_loss
            best = torch.where(better.view(-1, *([1] * (x.dim() - 1))), delta, best)
            best_loss = torch.where(better, losses, best_loss)
    return (best, best_loss) if return_loss else best


@torch.no_grad()
def accuracy_loss(model, x, y) -> tuple[float, float]:
    """(sum of correct predictions, sum of losses) — sums, so that shards can be all-reduced."""
    z = model(x)
    return float((z.argmax(1) == y).sum()), float(F.cross_entropy(z, y, reduction="sum"))


def pgd_eval(model, x, y, eps: float, *, steps: int = 50, restarts: int = 10, alpha: float | None = None,
             batch_size: int = 500, generator: torch.Generator | None = None) -> dict:
    """Robust accuracy and loss under PGD-``steps``-``restarts`` (default PGD-50-10, α = ε/4), in
    batches; returns ``{"pgd_acc", "pgd_loss", "n"}``. Put the model in eval mode first."""
    alpha = eps / 4 if alpha is None else alpha
    correct = total_loss = 0.0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        d = pgd(model, xb, yb, eps, alpha, steps, restarts, generator=generator)
        c, s = accuracy_loss(model, xb + d, yb)
        correct, total_loss = correct + c, total_loss + s
    n = len(y)
    return {"pgd_acc": correct / n, "pgd_loss": total_loss / n, "n": n}


def free_at_batch(model, optimizer, x, y, delta: torch.Tensor, eps: float, replays: int, *,
                  step_fn=None, autocast=None) -> tuple[torch.Tensor, float, float]:
    """Free adversarial training on one minibatch (Shafahi et al. 2019): ``replays`` times, one
    forward/backward at x + δ gives ∇_θ and ∇_δ; the optimizer steps and δ ← Π(δ + ε sign ∇_δ).

    ``delta`` (same shape as x) is the persistent perturbation carried over from the previous
    minibatch. ``step_fn(loss)`` replaces ``loss.backward(); optimizer.step()`` (e.g. for a
    GradScaler); it must call backward. ``autocast()`` (a context-manager factory) wraps the forward
    pass for mixed precision. Returns (new δ, mean loss, mean accuracy) over the replays."""
    tot_loss = tot_acc = 0.0
    for _ in range(int(replays)):
        d = delta.detach().clone().requires_grad_(True)
        with (autocast() if autocast is not None else contextlib.nullcontext()):
            out = model(x + d)
            loss = F.cross_entropy(out.float() if out.dtype in (torch.float16, torch.bfloat16) else out, y)
        optimizer.zero_grad(set_to_none=True)
        if step_fn is None:
            loss.backward()
            optimizer.step()
        else:
            step_fn(loss)
        delta = project(x, d.detach() + eps * d.grad.sign(), eps)
        tot_loss += float(loss.detach())
        tot_acc += float((out.detach().argmax(1) == y).float().mean())
    return delta.detach(), tot_loss / replays, tot_acc / replays


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cos of the flattened examples, 1 where either is zero; differentiable (no NaN
    gradients at zero vectors: the square root is taken of n₁₁n₂₂ only where it is positive)."""
    a, b = a.flatten(1), b.flatten(1)
    n11, n22, n12 = (a * a).sum(1), (b * b).sum(1), (a * b).sum(1)
    ok = (n11 > 0) & (n22 > 0)
    den = torch.sqrt(torch.where(ok, n11 * n22, torch.ones_like(n11)))
    return torch.where(ok, n12 / den, torch.ones_like(n12))


def gradalign(model, x, y, eps: float, noise: torch.Tensor | None = None, *,
              generator: torch.Generator | None = None, exact: bool = False,
              clean_grad: torch.Tensor | None = None) -> torch.Tensor:
    """GradAlign Ω = (1/N) Σₙ [1 − cos(∇ₓℓ(xₙ, yₙ), ∇ₓℓ(xₙ + ηₙ, yₙ))] (eq. 2.7) as a tensor that
    can be back-propagated to the parameters (double backprop).

    ``exact=False`` treats ∇ₓℓ(x) as a constant (the authors' code; pass it as ``clean_grad`` to
    reuse the FGSM gradient), ``exact=True`` differentiates through both input gradients — the two
    variants of :func:`toymodels.cnn.model.gradalign_loss_and_grad` (``both``). η = ``noise`` or drawn
    ~ U[−ε, ε]^d from ``generator``; x + η is not clipped."""
    if noise is None:
        noise = uniform_noise(x.shape, eps, generator, x)
    if exact:
        _, g1 = input_grad(model, x, y, create_graph=True)
    elif clean_grad is not None:
        g1 = clean_grad.detach()
    else:
        g1 = input_grad(model, x, y)[1].detach()
    _, g2 = input_grad(model, x + noise, y, create_graph=True)
    return (1.0 - cosines(g1, g2)).mean()


def grad_alignment(model, x, y, eps: float, noise: torch.Tensor | None = None, *,
                   generator: torch.Generator | None = None, clip: bool = True,
                   per_example: bool = False):
    """Gradient alignment (eq. 2.5): mean cos(∇ₓℓ(x, y), ∇ₓℓ(x̃, y)), x̃ = clip(x + η, 0, 1) (or
    x + η with ``clip=False``). A float, or the per-example cosines."""
    if noise is None:
        noise = uniform_noise(x.shape, eps, generator, x)
    xt = (x + noise).clamp(0.0, 1.0) if clip else x + noise
    _, g1 = input_grad(model, x, y)
    _, g2 = input_grad(model, xt, y)
    cos = cosines(g1, g2).detach()
    return cos if per_example else float(cos.mean())


def cos_fgsm_pgd(model, x, y, eps: float, *, alpha: float | None = None, steps: int = 10,
                 restarts: int = 1, noise=None, generator: torch.Generator | None = None,
                 per_example: bool = False):
    """Mean cos(δ_FGSM, δ_PGD) with PGD-``steps``-``restarts``, step α (default ε/4), random start."""
    alpha = eps / 4 if alpha is None else alpha
    d1 = fgsm(model, x, y, eps)
    d2 = pgd(model, x, y, eps, alpha, steps, restarts, noise=noise, generator=generator)
    cos = cosines(d1, d2)
    return cos if per_example else float(cos.mean())
