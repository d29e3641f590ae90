"""Regularizers against catastrophic overfitting for the single-layer CNN without double backprop
(issue 14): ELLE, finite-difference GradAlign, the ℓ₂ input-gradient-norm penalty and CURE.

Notation: ℓₙ(x) = ℓ(x, yₙ; θ) the per-example cross-entropy of :mod:`toymodels.cnn.model`,
gₙ(x) = ∇ₓℓₙ(x), N the batch size. Every function returns ``(R, ∇_θ R)`` (a float and a
:class:`~toymodels.cnn.model.CNNParams`), like :func:`toymodels.cnn.model.gradalign_loss_and_grad`,
and composes the numba passes ``input_grad`` and ``loss_grad_weighted`` (Σₙ wₙ ∇_θ ℓₙ at given
points); no new double-backprop kernel.

**The finite-difference identity.** For a fixed direction vₙ (not a function of θ),

    ∇_θ ⟨gₙ(p), vₙ⟩ = ∂_t ∇_θ ℓₙ(p + t vₙ) |_{t=0},                                      (FD)

(both sides are the mixed second derivative ∂_θ ∂_x ℓ contracted with v; ReLU masks are locally
constant, so this holds almost everywhere). With the per-example unit direction v̂ = v/‖v‖₂ and
step h (the ℓ₂ length of every displacement, in input units), the *central* difference

    ∇_θ Σₙ ⟨gₙ(pₙ), vₙ⟩ ≈ Σₙ ‖vₙ‖ [∇_θ ℓₙ(pₙ + h v̂ₙ) − ∇_θ ℓₙ(pₙ − h v̂ₙ)] / (2h)

has error O(h²) (the h³ term of the Taylor series; ℓ is smooth between ReLU kinks), the *forward*
difference Σₙ ‖vₙ‖ [∇_θ ℓₙ(pₙ + h v̂ₙ) − ∇_θ ℓₙ(pₙ)] / h has error O(h). Both are two weighted
parameter-gradient passes here (nothing computed elsewhere is the base gradient at pₙ), so
``"central"`` is the default. The points p ± h v̂ may leave [0, 1]^d: the model is defined there and
they are used as they are. A direction vₙ = 0 contributes nothing.

Each regularizer's gradient is a sum of such terms (derivations in the docstrings):

* GradAlign: ∇_θ cos(g₁, g₂(x+η)) with g₁ held fixed = ∇_θ ⟨g₂, v⟩, v = ∂cos/∂g₂;
* gradient norm: ∇_θ ‖g(x)‖² = 2 ∇_θ ⟨g(x), v⟩ with v = g(x) held fixed;
* CURE: ∇_θ ‖g(x+δ) − g(x)‖² = 2 ∇_θ [⟨g(x+δ), d⟩ − ⟨g(x), d⟩] with d = g(x+δ) − g(x) held fixed.

ELLE needs no second derivative at all (backprop through three losses).

Default step :data:`DEFAULT_H` = 1e−5. The O(h²) error holds between ReLU kinks; an example whose
points p ± h v̂ lie on two sides of a kink gets an O(‖v‖/h)-size error (for GradAlign ‖v‖ ~ 1/‖g₂‖ is
large when input gradients are small, as at initialization), with probability ∝ h. Measured (one
epoch on 64 synthetic images, λ = 1, training loss of GradAlign-FD vs exact GradAlign): relative
difference 3e−3 (h = 1e−3), 1e−2 (1e−4), 2e−13 (1e−5), 1e−12 (1e−6); rounding ≈ 1e−16/h stays
≈ 1e−11 relative at 1e−5.
"""
from __future__ import annotations

import numpy as np

from ..backends import check_backend
from ..errors import ConfigError, check_choice, check_nonneg, check_range
from .attacks import _rng, project
from .model import (CNNParams, _cosines, _gbuf, _grad_from_buf, _impl, _input_grad_core, _losses_core, _perturbation,
                    _validate)

__all__ = ["elle_loss_and_grad", "elle_noise", "gradalign_fd_loss_and_grad", "gradnorm_loss_and_grad",
           "cure_loss_and_grad", "weighted_loss_grad", "DEFAULT_H", "SCHEMES"]

DEFAULT_H = 1e-5
SCHEMES = ("central", "forward")


# ----------------------------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------------------------
def _weighted(P, x, y, w, backend):
    """(per-example losses, Σₙ wₙ ∇_θ ℓ(xₙ, yₙ)) at validated parameters ``P`` and any x (not
    checked against [0, 1])."""
    impl = _impl(backend)
    x = np.ascontiguousarray(x, dtype=np.float64)
    ls = np.empty(x.shape[0])
    gbuf = _gbuf(P, x)
    impl.loss_grad_weighted(x, np.ascontiguousarray(y, dtype=np.int64), np.ascontiguousarray(w, dtype=np.float64),
                            *P, ls, gbuf)
    return ls, _grad_from_buf(impl, gbuf, 1.0, P, x)


def weighted_loss_grad(params: CNNParams, x, y, w, *, backend: str = "numba") -> tuple[np.ndarray, CNNParams]:
    """(per-example losses ℓₙ, Σₙ wₙ ∇_θ ℓ(xₙ, yₙ)) for weights ``w`` (N,) of any sign; x must lie in
    [0, 1] here (the regularizers call the unchecked core on points just outside)."""
    check_backend(backend)
    P, x, y = _validate(params, x, y)
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (x.shape[0],) or not np.isfinite(w).all():
        raise ConfigError("w", f"must be a finite vector of shape ({x.shape[0]},)", w.shape)
    return _weighted(P, x, y, w, backend)


def _check_fd(h, scheme) -> tuple[float, str]:
    h = check_range("h", h, 0.0, 1.0, lo_open=True)
    return h, check_choice("scheme", scheme, SCHEMES)


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v̂ with unit ℓ₂ rows (0 where v = 0), the row norms ‖vₙ‖)."""
    N = v.shape[0]
    nv = np.sqrt(np.einsum("ij,ij->i", v.reshape(N, -1), v.reshape(N, -1)))
    safe = np.where(nv > 0, nv, 1.0)
    return v / safe[:, None, None, None], nv


def _fd_terms(points, dirs, weights, h: float, scheme: str):
    """The FD evaluation points and weights of Σ_j Σₙ wⱼₙ ∂_t ∇_θ ℓₙ(pⱼₙ + t v̂ⱼₙ) (see the module
    docstring): lists of (x, w) whose weighted gradients sum to the estimate."""
    out = []
    for p, v, w in zip(points, dirs, weights):
        if scheme == "central":
            out += [(p + h * v, w / (2 * h)), (p - h * v, -w / (2 * h))]
        else:
            out += [(p + h * v, w / h), (p, -w / h)]
    return out


def _fd_grad(P, y, terms, backend) -> CNNParams:
    """Σ over (x, w) in ``terms`` of Σₙ wₙ ∇_θ ℓ(xₙ, yₙ), in one weighted pass over the stacked points."""
    xs = np.concatenate([t[0] for t in terms])
    ws = np.concatenate([t[1] for t in terms])
    ys = np.concatenate([y] * len(terms))
    return _weighted(P, xs, ys, ws, backend)[1]


# ----------------------------------------------------------------------------------------------
# ELLE
# ----------------------------------------------------------------------------------------------
def elle_noise(x_shape, eps: float, seed=0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ELLE's draws for a batch of shape (N, C, H, W): (u_a, u_b, t) with u_a, u_b ~ U[−ε, ε]^d and
    t ~ U[0, 1] per example, drawn in this order from ``seed`` (an int: the stream
    ``numpy.random.default_rng(seed)``; or a Generator, used as is)."""
    eps = check_nonneg("eps", eps)
    rng = _rng(seed)
    ua = rng.uniform(-eps, eps, size=x_shape)
    ub = rng.uniform(-eps, eps, size=x_shape)
    return ua, ub, rng.uniform(0.0, 1.0, size=x_shape[0])


def elle_loss_and_grad(params: CNNParams, x, y, eps: float, *, noise=None, seed=0, grad: bool = True,
                       backend: str = "numba") -> tuple[float, CNNParams | None]:
    """ELLE's local-linearity penalty (Abad Rocamora et al., ICLR 2024) and its parameter gradient.

    With (u_a, u_b, t) = ``noise`` (default :func:`elle_noise` (x.shape, ε, ``seed``)),

        x_a = clip(x + u_a, 0, 1),  x_b = clip(x + u_b, 0, 1)   (points of B∞(x, ε) ∩ [0, 1]^d, clipped
                                                                 to the box as the authors' code),
        x_c = (1 − t) x_a + t x_b,
        eₙ = ℓₙ(x_c) − (1 − tₙ) ℓₙ(x_a) − tₙ ℓₙ(x_b),
        E_lin = (1/N) Σₙ eₙ²                                     (their ``mse_loss``: the batch mean),

    ∇_θ E_lin = (2/N) Σₙ eₙ [∇_θ ℓₙ(x_c) − (1 − tₙ) ∇_θ ℓₙ(x_a) − tₙ ∇_θ ℓₙ(x_b)]: ordinary backprop
    through three losses, one forward pass over the 3N points for the eₙ and one weighted
    forward-backward pass (skipped with ``grad=False``: ``(E_lin, None)``, what ELLE-A needs while its
    λ is 0). E_lin = 0 whenever ℓₙ is affine on the segment [x_a, x_b]."""
    check_backend(backend)
    eps = check_nonneg("eps", eps)
    P, x, y = _validate(params, x, y)
    N = x.shape[0]
    ua, ub, t = elle_noise(x.shape, eps, seed) if noise is None else noise
    ua = _perturbation(ua, x, "noise[0]", bound=eps)
    ub = _perturbation(ub, x, "noise[1]", bound=eps)
    t = np.asarray(t, dtype=np.float64)
    if t.shape != (N,) or not (np.all(t >= 0) and np.all(t <= 1)):
        raise ConfigError("noise[2]", f"must be a vector t of shape ({N},) with entries in [0, 1]", t.shape)
    xa, xb = np.clip(x + ua, 0.0, 1.0), np.clip(x + ub, 0.0, 1.0)
    tt = t[:, None, None, None]
    xc = (1.0 - tt) * xa + tt * xb
    pts = np.concatenate([xc, xa, xb])
    ys = np.concatenate([y, y, y])
    ls = _losses_core(P, pts, ys, backend)
    e = ls[:N] - (1.0 - t) * ls[N:2 * N] - t * ls[2 * N:]
    if not grad:
        return float(np.mean(e * e)), None
    w = (2.0 / N) * np.concatenate([e, -(1.0 - t) * e, -t * e])
    return float(np.mean(e * e)), _weighted(P, pts, ys, w, backend)[1]


# ----------------------------------------------------------------------------------------------
# finite-difference second-order regularizers
# ----------------------------------------------------------------------------------------------
def gradalign_fd_loss_and_grad(params: CNNParams, x, y, eta, *, h: float = DEFAULT_H, scheme: str = "central",
                               return_input_grad: bool = False, backend: str = "numba"):
    """GradAlign Ω = (1/N) Σₙ [1 − cos(g₁ₙ, g₂ₙ)], g₁ = ∇ₓℓ(x), g₂ = ∇ₓℓ(x + η) (eq. 2.7; x + η used as
    given, not clipped, as :func:`toymodels.cnn.model.gradalign_loss_and_grad`), with the gradient
    that treats g₁ as a constant (the authors' code; ``both=False`` there) by finite differences.

    With c = cos(g₁, g₂) and v = ∂c/∂g₂ = (g₁/‖g₁‖ − c g₂/‖g₂‖)/‖g₂‖ (held fixed), (FD) gives
    ∇_θ cₙ = ∂_t ∇_θ ℓₙ(xₙ + ηₙ + t vₙ)|₀, so

        ∇_θ Ω ≈ −(1/N) Σₙ ‖vₙ‖ [∇_θ ℓₙ(xₙ + ηₙ + h v̂ₙ) − ∇_θ ℓₙ(xₙ + ηₙ − h v̂ₙ)] / (2h)    (central, O(h²))

    or the forward difference (O(h)); v̂ = v/‖v‖, h the ℓ₂ length of the displacement. An example
    with a zero input gradient has cos := 1 and no contribution. Returns ``(Ω, grad)`` or, with
    ``return_input_grad``, ``(Ω, grad, g₁)`` (the clean input gradient, for δ_FGSM)."""
    check_backend(backend)
    h, scheme = _check_fd(h, scheme)
    P, x, y = _validate(params, x, y)
    eta = _perturbation(eta, x, "eta")
    N = x.shape[0]
    _, g1 = _input_grad_core(P, x, y, backend)
    p = x + eta
    _, g2 = _input_grad_core(P, p, y, backend)
    cos = _cosines(g1, g2, zero=1.0)
    n1 = np.sqrt(np.einsum("ij,ij->i", g1.reshape(N, -1), g1.reshape(N, -1)))
    n2 = np.sqrt(np.einsum("ij,ij->i", g2.reshape(N, -1), g2.reshape(N, -1)))
    ok = (n1 > 0) & (n2 > 0)
    a1 = np.where(ok, 1.0 / np.where(ok, n1 * n2, 1.0), 0.0)[:, None, None, None]
    a2 = np.where(ok, cos / np.where(ok, n2 * n2, 1.0), 0.0)[:, None, None, None]
    vhat, nv = _unit(a1 * g1 - a2 * g2)
    grad = _fd_grad(P, y, _fd_terms([p], [vhat], [-nv / N], h, scheme), backend)
    out = (float(np.mean(1.0 - cos)), grad)
    return out + (g1,) if return_input_grad else out


def gradnorm_loss_and_grad(params: CNNParams, x, y, *, h: float = DEFAULT_H, scheme: str = "central",
                           return_input_grad: bool = False, backend: str = "numba"):
    """The ℓ₂ input-gradient-norm penalty (thesis App. 2.11.5: λ ‖∇ₓℓ(x, y; θ)‖₂², batch mean)

        R = (1/N) Σₙ ‖gₙ‖₂²,   gₙ = ∇ₓℓₙ(xₙ),

    and ∇_θ R by finite differences: ∇_θ ‖gₙ‖² = 2 ∇_θ ⟨gₙ, v⟩|_{v = gₙ fixed} = 2 ‖gₙ‖ ∂_t ∇_θ ℓₙ(xₙ + t ĝₙ)|₀,

        ∇_θ R ≈ (2/N) Σₙ ‖gₙ‖ [∇_θ ℓₙ(xₙ + h ĝₙ) − ∇_θ ℓₙ(xₙ − h ĝₙ)] / (2h)   (central, O(h²); forward O(h)).

    Returns ``(R, grad)`` or, with ``return_input_grad``, ``(R, grad, g)``."""
    check_backend(backend)
    h, scheme = _check_fd(h, scheme)
    P, x, y = _validate(params, x, y)
    N = x.shape[0]
    _, g = _input_grad_core(P, x, y, backend)
    ghat, ng = _unit(g)
    grad = _fd_grad(P, y, _fd_terms([x], [ghat], [2.0 * ng / N], h, scheme), backend)
    out = (float(np.mean(ng * ng)), grad)
    return out + (g,) if return_input_grad else out


def cure_loss_and_grad(params: CNNParams, x, y, eps: float, *, delta=None, h: float = DEFAULT_H,
                       scheme: str = "central", return_input_grad: bool = False, backend: str = "numba"):
    """CURE (Moosavi-Dezfooli et al. 2019) in the thesis' form (App. 2.11.5, Table 2.8)

        R = (1/N) Σₙ ‖∇ₓℓₙ(xₙ + δₙ) − ∇ₓℓₙ(xₙ)‖₂²,   δ = Π(ε sign ∇ₓℓ(x))   (the FGSM point, eq. 2.2),

    or with the given ``delta`` (e.g. the paper's δ = h_c z, z = sign g / ‖sign g‖₂; δ is held fixed:
    it depends on θ only through a sign, whose derivative is 0 almost everywhere). With
    dₙ = ∇ₓℓₙ(xₙ + δₙ) − ∇ₓℓₙ(xₙ) held fixed, ∇_θ ‖dₙ‖² = 2 ∇_θ [⟨∇ₓℓₙ(xₙ + δₙ), dₙ⟩ − ⟨∇ₓℓₙ(xₙ), dₙ⟩]
    and (FD) gives, with d̂ = d/‖d‖,

        ∇_θ R ≈ (2/N) Σₙ ‖dₙ‖ [∇_θ ℓₙ(xₙ + δₙ + h d̂ₙ) − ∇_θ ℓₙ(xₙ + δₙ − h d̂ₙ)
                              − ∇_θ ℓₙ(xₙ + h d̂ₙ) + ∇_θ ℓₙ(xₙ − h d̂ₙ)] / (2h)          (central, O(h²)),

    forward: O(h). Returns ``(R, grad)`` or, with ``return_input_grad``, ``(R, grad, g)``, g = ∇ₓℓ(x)."""
    check_backend(backend)
    eps = check_nonneg("eps", eps)
    h, scheme = _check_fd(h, scheme)
    P, x, y = _validate(params, x, y)
    N = x.shape[0]
    _, g = _input_grad_core(P, x, y, backend)
    delta = project(x, eps * np.sign(g), eps) if delta is None else _perturbation(delta, x, "delta")
    _, gd = _input_grad_core(P, x + delta, y, backend)
    dhat, nd = _unit(gd - g)
    terms = _fd_terms([x + delta, x], [dhat, dhat], [2.0 * nd / N, -2.0 * nd / N], h, scheme)
    out = (float(np.mean(nd * nd)), _fd_grad(P, y, terms, backend))
    return out + (g,) if return_input_grad else out
