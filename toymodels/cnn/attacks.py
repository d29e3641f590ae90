"""ℓ∞ attacks on the single-layer CNN (thesis eqs. 2.2, 2.3 and PGD), inputs kept in [0, 1].

All three are sign-gradient ascent on the per-example loss ℓ(x + δ, y) with the feasible set
S(x) = {δ : ‖δ‖∞ ≤ ε, x + δ ∈ [0, 1]^d} and the projection Π(δ) = clip(x + clip(δ, −ε, ε), 0, 1) − x
(coordinatewise this is the projection onto S(x): both intervals contain 0):

* FGSM (eq. 2.2):      δ = Π(ε sign ∇ₓℓ(x)).
* FGSM-RS (eq. 2.3):   δ₀ = Π(η), η ~ U[−ε, ε]^d pre-drawn;  δ = Π(δ₀ + α sign ∇ₓℓ(x + δ₀)).
* N-FGSM (:func:`n_fgsm`): δ = η + α sign ∇ₓℓ(clip(x + η, 0, 1)), η ~ U[−kε, kε]^d, not projected.
* PGD-k, r restarts:   δ₀ = Π(η) (or 0 without random start);  δ_{t+1} = Π(δ_t + α sign ∇ₓℓ(x + δ_t)),
                       k steps; per example the restart with the highest final loss is kept (the
                       first one on ties), so more restarts never give a smaller loss.

sign(0) = 0 (as torch). Starting points are clipped to the box, as in Wong et al. (2020), so every
gradient is evaluated at a valid image. Each function returns δ (N, C, H, W) and, with
``return_loss=True``, also the per-example losses ℓ(xₙ + δₙ, yₙ): ``(delta, losses)``.
The whole k-step ascent of one example runs inside one numba kernel (``_kernels.attack``;
``backend="numpy"``: its reference ``_reference.attack``).
"""
from __future__ import annotations

import numpy as np

from ..backends import check_backend
from ..errors import ConfigError, check_int, check_nonneg
from ..rng import check_seed, stream
from .model import CNNParams, _impl, _input_grad_core, _perturbation, _validate

__all__ = ["fgsm", "fgsm_from_grad", "fgsm_rs", "pgd", "project", "n_fgsm"]


def project(x: np.ndarray, delta: np.ndarray, eps: float) -> np.ndarray:
    """Π(δ) = clip(x + clip(δ, −ε, ε), 0, 1) − x (x + Π(δ) ∈ [0, 1] exactly in floating point)."""
    return np.clip(x + np.clip(delta, -eps, eps), 0.0, 1.0) - x


def _rng(seed) -> np.random.Generator:
    """``seed`` if it is a Generator, else the stream ``seed`` (= ``numpy.random.default_rng(seed)``)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return stream(check_seed(seed))


def _run(P, x, y, delta0, eps, alpha, steps, want_loss, backend):
    """Run the ascent from the feasible ``delta0``; returns (delta, losses or None)."""
    delta = np.ascontiguousarray(delta0, dtype=np.float64).copy()
    losses = np.empty(x.shape[0])
    _impl(backend).attack(x, y, *P, delta, float(eps), float(alpha), int(steps), bool(want_loss), losses)
    return delta, (losses if want_loss else None)


def _out(delta, losses, return_loss):
    return (delta, losses) if return_loss else delta


def fgsm(params: CNNParams, x, y, eps: float, *, return_loss: bool = False, backend: str = "numba"):
    """FGSM (eq. 2.2): δ = clip(x + ε sign ∇ₓℓ(x, y), 0, 1) − x."""
    check_backend(backend)
    check_nonneg("eps", eps)
    P, x, y = _validate(params, x, y)
    delta, losses = _run(P, x, y, np.zeros_like(x), eps, eps, 1, return_loss, backend)
    return _out(delta, losses, return_loss)


def fgsm_from_grad(x, grad, eps: float, alpha: float | None = None) -> np.ndarray:
    """δ = Π(α sign g) (α = ε by default) for a given input gradient g = ∇ₓℓ(x, y), e.g. the one
    returned by ``gradalign_loss_and_grad(..., return_input_grad=True)``. Equals :func:`fgsm`
    (α = ε), or ``pgd(..., alpha, 1, 1, random_start=False)``, without a second backward pass."""
    check_nonneg("eps", eps)
    alpha = eps if alpha is None else check_nonneg("alpha", alpha)
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if g.shape != x.shape:
        raise ConfigError("grad", f"must have the shape of x {x.shape}", g.shape)
    return project(x, alpha * np.sign(g), eps)


def fgsm_rs(params: CNNParams, x, y, eps: float, alpha: float, noise=None, *, seed=0,
            return_loss: bool = False, backend: str = "numba"):
    """FGSM with a random start (eq. 2.3): δ = Π(η + α sign ∇ₓℓ(x + η, y)) with η = Π(noise).

    ``noise`` (N, C, H, W), entries in [−ε, ε], is the pre-drawn η ~ U[−ε, ε]^d; if None it is
    drawn from ``numpy.random.default_rng(seed)`` (``seed`` may also be a Generator)."""
    check_backend(backend)
    check_nonneg("eps", eps)
    check_nonneg("alpha", alpha)
    P, x, y = _validate(params, x, y)
    if noise is None:
        noise = _rng(seed).uniform(-eps, eps, size=x.shape)
    noise = _perturbation(noise, x, "noise", bound=eps)
    delta, losses = _run(P, x, y, project(x, noise, eps), eps, alpha, 1, return_loss, backend)
    return _out(delta, losses, return_loss)


def pgd(params: CNNParams, x, y, eps: float, alpha: float, steps: int, restarts: int = 1, *,
        seed=0, random_start: bool = True, return_loss: bool = False, backend: str = "numba"):
    """PGD-``steps`` with ``restarts`` random restarts (ℓ∞, sign steps of size α, projection onto
    S(x)); keeps per example the restart with the highest loss ℓ(x + δ, y).

    Restart r starts from Π(ηᵣ), ηᵣ ~ U[−ε, ε]^d drawn in turn from ``default_rng(seed)`` (so the
    first restart is the same for any number of restarts), or from δ₀ = 0 when
    ``random_start=False`` (then ``restarts`` must be 1). The thesis evaluates with PGD-50-10,
    α = ε/4 (l.600)."""
    check_backend(backend)
    check_nonneg("eps", eps)
    check_nonneg("alpha", alpha)
    check_int("steps", steps, 0)
    check_int("restarts", restarts, 1)
    if not random_start and restarts > 1:
        raise ConfigError("restarts", "must be 1 without a random start (all restarts would be identical)",
                          restarts)
    P, x, y = _validate(params, x, y)
    rng = _rng(seed) if random_start else None
    # the final forward pass is needed only to compare restarts or to return the losses
    want_loss = bool(return_loss) or restarts > 1
    best_delta, best_loss = None, None
    for _ in range(int(restarts)):
        start = project(x, rng.uniform(-eps, eps, size=x.shape), eps) if random_start else np.zeros_like(x)
        delta, losses = _run(P, x, y, start, eps, alpha, steps, want_loss, backend)
        if best_delta is None:
            best_delta, best_loss = delta, losses
        else:
            better = losses > best_loss
            best_delta[better] = delta[better]
            best_loss = np.where(better, losses, best_loss)
    return _out(best_delta, best_loss, return_loss)


def n_fgsm(params: CNNParams, x, y, eps: float, *, k: float = 2.0, alpha: float | None = None, noise=None, seed=0,
           clip_noise: bool = True, backend: str = "numba") -> np.ndarray:
    """N-FGSM (de Jorge et al., NeurIPS 2022) as the authors' code (``NFGSM``, ``clip_delta=False``):

        η ~ U[−kε, kε]^d,  η₀ = clip(x + η, 0, 1) − x,  δ = η₀ + α sign ∇ₓℓ(x + η₀, y),

    α = ε and k = 2 by default, with NO projection onto the ε-ball (‖δ‖∞ ≤ kε + α); the training input
    is clip(x + δ, 0, 1), which the caller forms. ``clip_noise=False`` adds the step to the unclipped η
    (δ = η + α sign ∇ₓℓ(x + η₀)); the gradient is taken at the box point x + η₀ either way. Same
    definition as :func:`toymodels.torch.regularizers.n_fgsm` (which returns the box-clipped δ).

    ``noise`` (N, C, H, W), entries in [−kε, kε], is the pre-drawn η; if None it is drawn from
    ``numpy.random.default_rng(seed)`` (``seed`` may also be a Generator). Cost: one input-gradient
    pass, as FGSM."""
    check_backend(backend)
    eps = check_nonneg("eps", eps)
    k = check_nonneg("k", k)
    alpha = eps if alpha is None else check_nonneg("alpha", alpha)
    P, x, y = _validate(params, x, y)
    if noise is None:
        noise = _rng(seed).uniform(-k * eps, k * eps, size=x.shape)
    noise = _perturbation(noise, x, "noise", bound=k * eps * (1 + 1e-12))
    eta0 = np.clip(x + noise, 0.0, 1.0) - x
    _, g = _input_grad_core(P, x + eta0, y, backend)
    return (eta0 if clip_noise else noise) + alpha * np.sign(g)
