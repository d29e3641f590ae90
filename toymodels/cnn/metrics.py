"""Local-linearity metrics of the single-layer CNN (thesis Sec. 2.4–2.5, App. 2.10.1).

* Gradient alignment (eq. 2.5): E[cos(∇ₓℓ(x, y), ∇ₓℓ(x + η, y))], η ~ U[−ε, ε]^d, estimated on a
  batch with pre-drawn η (one η per example).
* cos(δ_FGSM, δ_PGD): mean cosine of the flattened FGSM and PGD perturbations (Fig. 2.4, 2.11).
* Linearization error (App. 2.10.1): |ℓ(x + δ) − ℓ(x) − ⟨∇ₓℓ(x), δ⟩|, and its dependence on ‖δ‖₂
  at fixed ‖δ‖∞ = ε: start from δ ∈ {−ε, ε}^d (FGSM signs or random corners) and zero out a
  fraction of the coordinates.

Cosines of a zero vector are undefined; they count as 1 (as in the authors' ``avg_cos_np``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import check_backend
from ..errors import ConfigError, check_choice, check_nonneg
from .attacks import _rng, fgsm, pgd
from .model import CNNParams, _cosines, _input_grad_core, _losses_core, _perturbation, _validate

__all__ = ["grad_alignment", "cos_fgsm_pgd", "linearization_error", "linearization_curve",
           "LinearizationCurve", "zeroed_corners"]


def grad_alignment(params: CNNParams, x, y, eps: float, noise=None, *, seed=0, clip: bool = True,
                   per_example: bool = False, backend: str = "numba"):
    """Gradient alignment (eq. 2.5): mean over the batch of cos(∇ₓℓ(xₙ, yₙ), ∇ₓℓ(x̃ₙ, yₙ)) with
    x̃ = clip(x + η, 0, 1) (``clip=False``: x̃ = x + η). ``noise`` is the pre-drawn η (entries in
    [−ε, ε]); None draws η ~ U[−ε, ε]^d from ``default_rng(seed)``. Returns a float, or the
    per-example cosines with ``per_example=True``."""
    check_backend(backend)
    check_nonneg("eps", eps)
    P, x, y = _validate(params, x, y)
    if noise is None:
        noise = _rng(seed).uniform(-eps, eps, size=x.shape)
    noise = _perturbation(noise, x, "noise", bound=eps)
    xt = np.clip(x + noise, 0.0, 1.0) if clip else x + noise
    _, g1 = _input_grad_core(P, x, y, backend)
    _, g2 = _input_grad_core(P, xt, y, backend)
    cos = _cosines(g1, g2, zero=1.0)
    return cos if per_example else float(cos.mean())


def cos_fgsm_pgd(params: CNNParams, x, y, eps: float, *, alpha: float | None = None, steps: int = 10,
                 restarts: int = 1, seed=0, per_example: bool = False, backend: str = "numba"):
    """Mean cos(δ_FGSM, δ_PGD) over the batch, with δ_FGSM from :func:`~toymodels.cnn.attacks.fgsm`
    and δ_PGD from PGD-``steps``-``restarts`` with step α (default ε/4) and random start, as in
    the authors' evaluation (PGD-10, α = ε/4)."""
    alpha = eps / 4.0 if alpha is None else alpha
    d1 = fgsm(params, x, y, eps, backend=backend)
    d2 = pgd(params, x, y, eps, alpha, steps, restarts, seed=seed, backend=backend)
    cos = _cosines(d1, d2, zero=1.0)
    return cos if per_example else float(cos.mean())


def linearization_error(params: CNNParams, x, y, deltas, *, backend: str = "numba") -> np.ndarray:
    """|ℓ(xₙ + δ, yₙ) − ℓ(xₙ, yₙ) − ⟨∇ₓℓ(xₙ, yₙ), δ⟩| for each example (App. 2.10.1).

    ``deltas`` is (N, C, H, W) (one δ per example; returns (N,)) or (S, N, C, H, W) (S perturbations
    per example; returns (S, N)). x + δ is not clipped to [0, 1] (the appendix fixes ‖δ‖∞)."""
    check_backend(backend)
    P, x, y = _validate(params, x, y)
    d = np.ascontiguousarray(deltas, dtype=np.float64)
    single = d.ndim == 4
    if single:
        d = d[None]
    if d.ndim != 5 or d.shape[1:] != x.shape:
        raise ConfigError("deltas", f"must have shape {x.shape} or (S, *{x.shape})", np.shape(deltas))
    if not np.isfinite(d).all():
        raise ConfigError("deltas", "must be finite")
    _, g = _input_grad_core(P, x, y, backend)
    # ℓ(x) by the same code path as ℓ(x + δ), so that δ = 0 gives exactly 0
    l0 = _losses_core(P, x, y, backend)
    N = x.shape[0]
    out = np.empty(d.shape[:2])
    for s in range(d.shape[0]):
        ls = _losses_core(P, x + d[s], y, backend)
        lin = np.einsum("ij,ij->i", g.reshape(N, -1), d[s].reshape(N, -1))
        out[s] = np.abs(ls - l0 - lin)
    return out[0] if single else out


def zeroed_corners(grad, shape: tuple[int, int], eps: float, fractions, rng) -> np.ndarray:
    """The perturbations of App. 2.10.1, (len(fractions), N, d): the start δ₀ = ε·sign(grad) (``grad``
    (N, …) given: FGSM) or a uniformly random corner of the ℓ∞ ball drawn from ``rng`` (``grad`` None),
    and for each fraction f the first ⌈f·d⌉ coordinates of one random permutation per example zeroed
    (nested supports). Shared with :mod:`toymodels.torch.linearization`, so both draw the same δ."""
    N, d = shape
    if grad is not None:
        base = eps * np.sign(np.asarray(grad, dtype=np.float64)).reshape(N, d)
    else:
        base = eps * (2.0 * rng.integers(0, 2, size=(N, d)) - 1.0)
    order = np.argsort(rng.random((N, d)), axis=1)
    deltas = np.empty((len(fractions), N, d))
    for j, f in enumerate(fractions):
        dl = base.copy()
        k = int(np.ceil(f * d - 1e-12))
        np.put_along_axis(dl, order[:, :k], 0.0, axis=1)
        deltas[j] = dl
    return deltas


@dataclass
class LinearizationCurve:
    """Linearization error against ‖δ‖₂ at ‖δ‖∞ = ε (App. 2.10.1, Fig. 2.10).

    ``fractions[j]`` of the coordinates of the start δ ∈ {−ε, ε}^d are zeroed; ``l2[j, n]`` and
    ``errors[j, n]`` are ‖δ‖₂ and the linearization error of example n."""

    start: str
    eps: float
    fractions: np.ndarray
    l2: np.ndarray
    errors: np.ndarray

    @property
    def l2_mean(self) -> np.ndarray:
        return self.l2.mean(axis=1)

    @property
    def error_mean(self) -> np.ndarray:
        return self.errors.mean(axis=1)

    @property
    def error_sem(self) -> np.ndarray:
        n = self.errors.shape[1]
        return self.errors.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.full(self.errors.shape[0], np.nan)


def linearization_curve(params: CNNParams, x, y, eps: float, fractions=(0.0, 0.25, 0.5, 0.75, 1.0), *,
                        start: str = "fgsm", seed=0, backend: str = "numba") -> LinearizationCurve:
    """The experiment of App. 2.10.1: δ₀ = ε sign ∇ₓℓ(x) (``start="fgsm"``, unclipped) or a
    uniformly random corner of the ℓ∞ ball (``start="random"``); for each fraction f, zero the
    first ⌈f·d⌉ coordinates of one random permutation per example (nested supports, so ‖δ‖∞ = ε
    while ‖δ‖₂ = ε √(d − ⌈f·d⌉) for nonzero signs) and measure the linearization error."""
    check_backend(backend)
    check_nonneg("eps", eps)
    check_choice("start", start, ("fgsm", "random"))
    fr = np.atleast_1d(np.asarray(fractions, dtype=np.float64))
    if fr.ndim != 1 or fr.size == 0 or not np.all((fr >= 0) & (fr <= 1)):
        raise ConfigError("fractions", "must be a non-empty list of numbers in [0, 1]", fractions)
    P, x, y = _validate(params, x, y)
    rng = _rng(seed)
    N = x.shape[0]
    d = x[0].size
    g = _input_grad_core(P, x, y, backend)[1] if start == "fgsm" else None
    deltas = zeroed_corners(g, (N, d), eps, fr, rng).reshape((fr.size,) + x.shape)
    errs = linearization_error(params, x, y, deltas, backend=backend)
    l2 = np.sqrt((deltas.reshape(fr.size, N, d) ** 2).sum(axis=2))
    return LinearizationCurve(start, float(eps), fr, l2, errs)
