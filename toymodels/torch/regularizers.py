"""Catastrophic-overfitting (CO) prevention at (near) FGSM cost for any image classifier ``nn.Module``
(issue 14): N-FGSM, ELLE, GradAlign by finite differences, the ℓ₂ input-gradient-norm penalty and CURE
— the torch twins of :mod:`toymodels.cnn.regularizers`.

Conventions as :mod:`toymodels.torch.attacks`: x ∈ [0, 1]^d, ℓ(x) = ℓ(x, y; θ) the per-example
cross-entropy of the logits, gₙ = ∇ₓℓ(xₙ) the gradient of each example's own loss, N the batch size,
ε the ℓ∞ radius, Π(δ) = clip(x + clip(δ, −ε, ε), 0, 1) − x. Every regularizer returns a scalar
tensor R whose *value* is the regularizer and whose autograd *gradient* w.r.t. the parameters is the
one stated (exact, or the finite-difference (FD) approximation); add λ R to the training loss.

* N-FGSM (de Jorge et al. 2022, :func:`n_fgsm`) — as the authors' code (``NFGSM(RSFGSM)`` with
  ``clip_delta=False``): η ~ U[−kε, kε]^d, η₀ = clip(x + η, 0, 1) − x (the noise is clipped to the
  image box *before* the gradient is taken), δ = clip(x + η₀ + α sign ∇ₓℓ(x + η₀), 0, 1) − x; no
  projection onto the ε-ball, so ‖δ‖∞ ≤ kε + α (= 3ε at k = 2, α = ε).
* ELLE (Abad Rocamora et al. 2024, :func:`elle`): x_a = clip(x + η_a, 0, 1), x_b = clip(x + η_b, 0, 1),
  η_a, η_b ~ U[−ε, ε]^d, t ~ U[0, 1] per example, x_c = (1 − t) x_a + t x_b,
  E_lin = (1/N) Σₙ (ℓ(x_c) − (1 − t) ℓ(x_a) − t ℓ(x_b))², differentiated by ordinary backprop
  through the three forward passes (one forward of the 3N points).
* GradAlign-FD (:func:`gradalign_fd`): Ω = (1/N) Σₙ [1 − cos(g₁ₙ, g₂ₙ)], g₁ = ∇ₓℓ(x) held constant
  (the authors' GradAlign), g₂ = ∇ₓℓ(x + η), x + η not clipped (as :func:`~toymodels.torch.attacks.
  gradalign`). With v = ∂c/∂g₂ = (g₁/‖g₁‖ − c g₂/‖g₂‖)/‖g₂‖ the identity ∇_θ cₙ = J_θ(g₂ₙ)ᵀ vₙ =
  ∂_s ∇_θ ℓ(xₙ + ηₙ + s vₙ)|_{s=0} gives ∇_θ Ω = −(1/N) Σₙ ‖vₙ‖ D_h[uₙ](xₙ + ηₙ), uₙ = vₙ/‖vₙ‖.
* Gradient-norm penalty (thesis App. 2.11.5, :func:`gradnorm`): R = (1/N) Σₙ ‖gₙ‖₂²;
  ∇_θ R = (2/N) Σₙ J_θ(gₙ)ᵀ gₙ = (2/N) Σₙ ‖gₙ‖ D_h[gₙ/‖gₙ‖](xₙ).
* CURE (thesis App. 2.11.5, Table 2.8; Moosavi-Dezfooli et al. 2019, :func:`cure`):
  R = (1/N) Σₙ ‖∇ₓℓ(xₙ + δₙ) − ∇ₓℓ(xₙ)‖₂², δ = δ_FGSM = Π(ε sign gₙ) by default (the thesis's form;
  the paper's h·sign(g)/‖sign(g)‖ is ``delta=``); δ is piecewise constant in θ, so held fixed exactly
  (a.e.). With dₙ = ∇ₓℓ(xₙ + δₙ) − gₙ, uₙ = dₙ/‖dₙ‖:
  ∇_θ R = (2/N) Σₙ ‖dₙ‖ (D_h[uₙ](xₙ + δₙ) − D_h[uₙ](xₙ)).

D_h[u](p) is the finite difference of the parameter gradient along a *unit* input direction u (h is a
step length in input space, ℓ₂; the directions and weights are held constant):

* ``scheme="central"``: D_h[u](p) = [∇_θ ℓ(p + h u) − ∇_θ ℓ(p − h u)]/(2h) = J_θ(∇ₓℓ(p))ᵀ u + O(h²);
* ``scheme="forward"``: D_h[u](p) = [∇_θ ℓ(p + h u) − ∇_θ ℓ(p)]/h = J_θ(∇ₓℓ(p))ᵀ u + O(h)
  (the ℓ(p) graph of the input-gradient pass is reused: one forward pass fewer).

The errors are O(h²) / O(h) where ℓ is smooth on the segment [p − h u, p + h u]; a ReLU network is
piecewise smooth, and a segment that crosses a kink adds an O(1) error on that example (rare for small
h). The exact versions (``exact=True``) differentiate through ∇ₓℓ by double backprop
(``create_graph``, with :func:`toymodels.torch.conv.twice_differentiable`). The FD versions cost no
double backprop: 2 (central) or 1 (forward) extra forward/backward passes per FD point.

Noise is drawn on the CPU from the given ``torch.Generator`` (reproducible on any device) or passed
pre-drawn; the model's train/eval mode is left as it is.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .attacks import input_grad, project, uniform_noise

__all__ = ["SCHEMES", "DEFAULT_H", "n_fgsm", "elle", "elle_noise", "gradalign_fd", "gradnorm", "cure", "fd_directional"]

#: finite-difference schemes of the FD regularizers
SCHEMES = ("central", "forward")
#: default finite-difference step (ℓ₂ length in input space), as :mod:`toymodels.cnn.regularizers`
DEFAULT_H = 1e-3


def _losses(model, x, y) -> torch.Tensor:
    z = model(x)
    return F.cross_entropy(z.float() if z.dtype in (torch.float16, torch.bfloat16) else z, y, reduction="none")


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-example vector (N,) shaped to broadcast against ``like`` (N, ...)."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def _unit(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(‖dₙ‖₂, dₙ/‖dₙ‖₂) per example; the direction is 0 where dₙ = 0."""
    norm = d.flatten(1).norm(dim=1)
    safe = torch.where(norm > 0, norm, torch.ones_like(norm))
    return norm, d / _expand(safe, d)


def _check_fd(h: float, scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ConfigError("scheme", "must be one of {" + ", ".join(SCHEMES) + "}", scheme)
    if not (isinstance(h, (int, float)) and h > 0 and h == h and h != float("inf")):
        raise ConfigError("reg_h", "must be a finite number > 0 (the finite-difference step)", h)


def n_fgsm(model, x, y, eps: float, *, k: float = 2.0, alpha: float | None = None,
           noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
           clip_noise: bool = True) -> torch.Tensor:
    """N-FGSM's training perturbation δ (de Jorge et al. 2022; their code's defaults k = 2, α = ε).

    η = ``noise`` or drawn ~ U[−kε, kε]^d; η₀ = clip(x + η, 0, 1) − x;
    δ = clip(x + η₀ + α sign ∇ₓℓ(x + η₀), 0, 1) − x — not projected onto the ε-ball; the training
    input is x + δ ∈ [0, 1]^d and ‖δ‖∞ ≤ kε + α. This is the authors' code (``NFGSM``: the noise is
    clipped to the image box in ``init_delta``, the step is added to the clipped noise).
    ``clip_noise=False``: δ = clip(x + η + α sign ∇ₓℓ(clip(x + η, 0, 1)), 0, 1) − x (the step added to the
    unclipped η, the form of :func:`toymodels.cnn.attacks.n_fgsm` before its box clip); the two differ
    only at pixels where x + η leaves [0, 1]."""
    alpha = eps if alpha is None else alpha
    if noise is None:
        noise = uniform_noise(x.shape, k * eps, generator, x)
    eta0 = (x + noise).clamp(0.0, 1.0) - x
    _, g = input_grad(model, x + eta0, y)
    start = eta0 if clip_noise else noise
    return ((x + start + alpha * g.sign()).clamp(0.0, 1.0) - x).detach()


def elle_noise(x: torch.Tensor, eps: float, generator: torch.Generator | None = None):
    """(η_a, η_b, t): η_a, η_b ~ U[−ε, ε]^d (drawn in this order) and t ~ U[0, 1]^N."""
    eta_a = uniform_noise(x.shape, eps, generator, x)
    eta_b = uniform_noise(x.shape, eps, generator, x)
    t = torch.rand(x.shape[0], generator=generator, dtype=x.dtype).to(x.device)
    return eta_a, eta_b, t


def elle(model, x, y, eps: float, noise=None, *, generator: torch.Generator | None = None,
         per_example: bool = False) -> torch.Tensor:
    """ELLE's local-linearity error (Abad Rocamora et al. 2024)

        E_lin = (1/N) Σₙ (ℓ(x_c) − (1 − tₙ) ℓ(x_a) − tₙ ℓ(x_b))²,
        x_a = clip(x + η_a, 0, 1), x_b = clip(x + η_b, 0, 1), x_c = (1 − t) x_a + t x_b,

    differentiable by ordinary backprop (no double backprop). ``noise`` = (η_a, η_b, t) (see
    :func:`elle_noise`) or drawn from ``generator``. The three points go through the model as one
    batch of 3N (BatchNorm in train mode then normalizes over the 3N points). With ``per_example``
    the N squared errors instead of their mean."""
    eta_a, eta_b, t = elle_noise(x, eps, generator) if noise is None else noise
    xa, xb = (x + eta_a).clamp(0.0, 1.0), (x + eta_b).clamp(0.0, 1.0)
    tt = _expand(t, x)
    xc = (1.0 - tt) * xa + tt * xb
    la, lb, lc = _losses(model, torch.cat([xa, xb, xc]), torch.cat([y, y, y])).chunk(3)
    err = (lc - (1.0 - t) * la - t * lb) ** 2
    return err if per_example else err.mean()


def _grad_keep(model, p, y):
    """(per-example losses with their graph kept, ∇ₓℓ(p) detached)."""
    pr = p.detach().clone().requires_grad_(True)
    losses = _losses(model, pr, y)
    g, = torch.autograd.grad(losses.sum(), pr, retain_graph=True)
    return losses, g.detach()


def fd_directional(model, points, y, u, w, *, h: float, scheme: str = "central",
                   base_losses: torch.Tensor | None = None) -> torch.Tensor:
    """A surrogate S(θ) whose gradient is Σₙ wₙ D_h[uₙ](pₙ) (module docstring) ≈ Σₙ wₙ J_θ(∇ₓℓ(pₙ))ᵀ uₙ.

    S = Σₙ wₙ [ℓ(pₙ + h uₙ) − ℓ(pₙ − h uₙ)]/(2h) (central) or Σₙ wₙ [ℓ(pₙ + h uₙ) − ℓ(pₙ)]/h (forward;
    ``base_losses`` = ℓ(p) with its graph, if already computed). ``w`` (N,) and ``u`` are constants."""
    _check_fd(h, scheme)
    u, w = u.detach(), w.detach()
    p = points.detach()
    if scheme == "central":
        # two forward passes, not one of 2N points: with BatchNorm in train mode each shifted batch is then
        # normalized by its own statistics, as the input gradient being differenced was
        lp, lm = _losses(model, p + h * u, y), _losses(model, p - h * u, y)
        return (w * (lp - lm)).sum() / (2.0 * h)
    lp = _losses(model, p + h * u, y)
    lb = _losses(model, p, y) if base_losses is None else base_losses
    return (w * (lp - lb)).sum() / h


def _with_value(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """A tensor equal to ``value`` whose gradient is that of ``surrogate``."""
    return value.detach() + (surrogate - surrogate.detach())


def gradalign_fd(model, x, y, eps: float, noise: torch.Tensor | None = None, *, h: float = DEFAULT_H,
                 scheme: str = "central", clean_grad: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """GradAlign Ω = (1/N) Σₙ [1 − cos(g₁ₙ, g₂ₙ)] (eq. 2.7; g₁ = ∇ₓℓ(x) constant, g₂ = ∇ₓℓ(x + η)) with the
    finite-difference gradient ∇_θ Ω ≈ −(1/N) Σₙ ‖vₙ‖ D_h[vₙ/‖vₙ‖](xₙ + ηₙ), v = ∂c/∂g₂ (module docstring):
    error O(h²) (central) or O(h) (forward). The value is exact. η = ``noise`` or drawn ~ U[−ε, ε]^d;
    ``clean_grad`` reuses the FGSM gradient as g₁. No double backprop; cos := 1 (and v := 0) where a
    gradient is 0, as :func:`toymodels.torch.attacks.gradalign`."""
    _check_fd(h, scheme)
    if noise is None:
        noise = uniform_noise(x.shape, eps, generator, x)
    g1 = input_grad(model, x, y)[1].detach() if clean_grad is None else clean_grad.detach()
    base, g2 = _grad_keep(model, x + noise, y) if scheme == "forward" else (None, input_grad(model, x + noise, y)[1])
    g2 = g2.detach()
    n1, u1 = _unit(g1)
    n2, u2 = _unit(g2)
    ok = (n1 > 0) & (n2 > 0)
    c = torch.where(ok, (u1 * u2).flatten(1).sum(1), torch.ones_like(n1))
    v = torch.where(_expand(ok, x), (u1 - _expand(c, x) * u2) / _expand(torch.where(ok, n2, torch.ones_like(n2)), x),
                    torch.zeros_like(x))
    nv, uv = _unit(v)
    N = x.shape[0]
    s = fd_directional(model, x + noise, y, uv, -nv / N, h=h, scheme=scheme, base_losses=base)
    return _with_value((1.0 - c).mean(), s)


def gradnorm(model, x, y, *, exact: bool = True, h: float = DEFAULT_H, scheme: str = "central") -> torch.Tensor:
    """The ℓ₂ input-gradient-norm penalty R = (1/N) Σₙ ‖∇ₓℓ(xₙ)‖₂² (thesis App. 2.11.5).

    ``exact=True``: by double backprop. ``exact=False``: value exact, gradient
    (2/N) Σₙ ‖gₙ‖ D_h[gₙ/‖gₙ‖](xₙ) (module docstring), error O(h²) (central) / O(h) (forward)."""
    if exact:
        _, g = input_grad(model, x, y, create_graph=True)
        return g.flatten(1).pow(2).sum(1).mean()
    _check_fd(h, scheme)
    base, g = _grad_keep(model, x, y) if scheme == "forward" else (None, input_grad(model, x, y)[1].detach())
    n, u = _unit(g)
    s = fd_directional(model, x, y, u, 2.0 * n / x.shape[0], h=h, scheme=scheme, base_losses=base)
    return _with_value(n.pow(2).mean(), s)


def cure(model, x, y, eps: float, *, delta: torch.Tensor | None = None, exact: bool = True, h: float = DEFAULT_H,
         scheme: str = "central") -> torch.Tensor:
    """CURE as in thesis Table 2.8: R = (1/N) Σₙ ‖∇ₓℓ(xₙ + δₙ) − ∇ₓℓ(xₙ)‖₂², δ = ``delta`` or
    δ_FGSM = Π(ε sign ∇ₓℓ(x)) (held fixed: it is piecewise constant in θ).

    ``exact=True``: by double backprop through both gradients. ``exact=False``: value exact, gradient
    (2/N) Σₙ ‖dₙ‖ (D_h[uₙ](xₙ + δₙ) − D_h[uₙ](xₙ)), d = ∇ₓℓ(x + δ) − ∇ₓℓ(x), u = d/‖d‖ (module docstring)."""
    if exact:
        _, g0 = input_grad(model, x, y, create_graph=True)
        if delta is None:
            delta = project(x, eps * g0.detach().sign(), eps)
        _, g1 = input_grad(model, x + delta.detach(), y, create_graph=True)
        return (g1 - g0).flatten(1).pow(2).sum(1).mean()
    _check_fd(h, scheme)
    fwd = scheme == "forward"
    b0, g0 = _grad_keep(model, x, y) if fwd else (None, input_grad(model, x, y)[1].detach())
    if delta is None:
        delta = project(x, eps * g0.sign(), eps)
    xd = x + delta.detach()
    b1, g1 = _grad_keep(model, xd, y) if fwd else (None, input_grad(model, xd, y)[1].detach())
    n, u = _unit(g1 - g0)
    w = 2.0 * n / x.shape[0]
    s = (fd_directional(model, xd, y, u, w, h=h, scheme=scheme, base_losses=b1)
         - fd_directional(model, x, y, u, w, h=h, scheme=scheme, base_losses=b0))
    return _with_value(n.pow(2).mean(), s)
