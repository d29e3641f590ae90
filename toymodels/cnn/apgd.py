"""White-box attacks on the numba single-layer CNN returning x_adv: Auto-PGD (APGD-CE, APGD-DLR, APGD-T;
Croce & Hein 2020) and PGD, in ℓ∞ and ℓ₂ — the numpy twins of :func:`toymodels.torch.apgd.apgd` and
:func:`toymodels.torch.pgd.pgd` (same algorithm, options, defaults and order of operations; given the
same raw starts ``noise`` they return the same x_adv up to rounding). No torch import.

Notation: x ∈ [0, 1]^d, S = {x̂ : ‖x̂ − x‖_p ≤ ε, x̂ ∈ [0, 1]^d}, P_S the projection (ℓ∞: clip to
[x − ε, x + ε] then to [0, 1]; ℓ₂: x + δ·min(ε, ‖δ‖₂)/(‖δ‖₂ + 10⁻¹²), then clip to [0, 1]), L the loss
maximized (:mod:`toymodels.cnn.losses`: ``ce``, ``dlr``; targeted −CE(·, t), DLR_t), g⁽ᵏ⁾ = ∇ₓL(x⁽ᵏ⁾)
(:func:`toymodels.cnn.vjp.loss_and_input_grad`: numba passes), ŝ(g) = sign g (ℓ∞) or g/(‖g‖₂ + 10⁻¹²).

APGD, one run of N_iter = ``steps`` (the AutoAttack code):

* x⁽⁰⁾ = clip(x + ε t/‖t‖∞, 0, 1), t ~ U[−1, 1]^d (ℓ∞), or clip(x + ε t/(‖t‖₂ + 10⁻¹²), 0, 1),
  t ~ N(0, I) (ℓ₂); η⁽⁰⁾ = 2ε;
* z⁽ᵏ⁺¹⁾ = P_S(x⁽ᵏ⁾ + η⁽ᵏ⁾ ŝ(g⁽ᵏ⁾)),  x⁽ᵏ⁺¹⁾ = P_S(x⁽ᵏ⁾ + a(z⁽ᵏ⁺¹⁾ − x⁽ᵏ⁾) + (1 − a)(x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾)),
  a = 1 at k = 0, else 0.75 (ℓ₂: the second projection has min(ε, ‖δ‖₂ + 10⁻¹²), as the code);
* x_max, L_max, g_max: the iterate with the highest loss so far (strictly higher replaces it);
* at the checkpoints w_j (:func:`toymodels.torch.apgd.checkpoints`' rule, re-derived here in
  :func:`checkpoints`: first window ⌊0.22 N⌋, each next ⌊0.03 N⌋ shorter, at least ⌊0.06 N⌋; for N = 100:
  22, 41, 57, 70, 80, 87, 93, 99) a point's η is halved and it restarts from x_max with g_max if
  condition 1: #{k ∈ window: L(x⁽ᵏ⁺¹⁾) > L(x⁽ᵏ⁾)} ≤ ρ·(window length), or
  condition 2: it was not halved at the previous checkpoint and L_max did not increase since;
  (as in the code, for the first window the oldest comparison reads an unfilled zero entry);
* a point is broken when any iterate is misclassified; it gets the last such iterate.

``apgd`` runs ``restarts`` runs, each on the points still unbroken (clean-misclassified points are
never attacked); unbroken points come back as x. APGD-T (``targeted=True``): for i = 2, …,
``n_target_classes`` + 1 the target is the class of the i-th highest clean logit; run j =
(i − 2)·restarts + r (target-major) starts from ``noise[j]`` or from t drawn for the whole batch from the
numpy stream ``toymodels.rng.stream(seed, "apgd", j)`` (so a point's start does not depend on which
points are still attacked). The torch twin draws from torch streams of the same names: the two agree
draw for draw only when given the same ``noise``.

PGD (:func:`pgd`): ℓ∞ δ ← clip(x + clip(δ + α sign g, −ε, ε), 0, 1) − x from δ₀ = the same projection of
η ~ U[−ε, ε]^d; ℓ₂ x̂ ← clip(x + Π₂(x̂ + α g/(‖g‖₂ + 10⁻¹⁰) − x), 0, 1), Π₂(δ) = δ min(1, ε/‖δ‖₂), from
clip(x + η, 0, 1), η = ε u z/‖z‖₂, z ~ N(0, I), u ~ U[0, 1] (torchattacks.PGDL2's start); α = ε/4 by
default; per point the first successful restart is kept, else the highest-loss one; x itself if x is
misclassified and no restart is.
"""
from __future__ import annotations

import numpy as np

from ..backends import check_backend
from ..errors import ConfigError, check_bool, check_choice, check_int, check_positive, check_range
from ..rng import check_seed, stream
from .losses import LOSSES, attack_loss_grad
from .model import CNNParams, _logits_core, _validate
from .vjp import loss_and_input_grad

__all__ = ["apgd", "apgd_t", "pgd", "checkpoints", "apgd_start_noise", "pgd_start_noise", "NORMS"]

#: threat models (as :data:`toymodels.torch.config.NORMS`)
NORMS = ("linf", "l2")


def checkpoints(steps: int) -> list[int]:
    """Iterations w₁ < w₂ < … ≤ ``steps`` after which APGD checks its step size (w₀ = 0 omitted):
    windows of length ⌊0.22 N⌋, then each ⌊0.03 N⌋ shorter but ≥ ⌊0.06 N⌋ (all ≥ 1), AutoAttack's rule."""
    steps = check_int("steps", steps, 1)
    k, least, shrink = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    out, w = [], 0
    while w + k <= steps:
        w += k
        out.append(w)
        k = max(k - shrink, least)
    return out


def _l2(v: np.ndarray) -> np.ndarray:
    """Per-example ‖v‖₂ as (N, 1, 1, 1)."""
    return np.sqrt((v ** 2).sum(axis=(1, 2, 3), keepdims=True))


def _project_l2(x, v, eps, tiny=0.0):
    """clip(x + (v − x)/(‖v − x‖ + 10⁻¹²) · min(ε, ‖v − x‖ + tiny), 0, 1)."""
    d = v - x
    n = _l2(d)
    return np.clip(x + d / (n + 1e-12) * np.minimum(n + tiny, eps), 0.0, 1.0)


def _step(x, x_adv, grad, grad2, step, a, norm, eps):
    """x⁽ᵏ⁺¹⁾ from x⁽ᵏ⁾ = ``x_adv``, g⁽ᵏ⁾ = ``grad``, x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾ = ``grad2``, η = ``step`` (N, 1, 1, 1)."""
    if norm == "linf":
        z = np.clip(np.minimum(np.maximum(x_adv + step * np.sign(grad), x - eps), x + eps), 0.0, 1.0)
        return np.clip(np.minimum(np.maximum(x_adv + (z - x_adv) * a + grad2 * (1 - a), x - eps), x + eps),
                       0.0, 1.0)
    z = _project_l2(x, x_adv + step * grad / (_l2(grad) + 1e-12), eps)
    return _project_l2(x, x_adv + (z - x_adv) * a + grad2 * (1 - a), eps, tiny=1e-12)


def _start_point(x, t, norm, eps):
    """x⁽⁰⁾ from the raw start t (module docstring)."""
    if norm == "linf":
        m = np.abs(t.reshape(t.shape[0], -1)).max(axis=1).reshape(-1, 1, 1, 1)
        return np.clip(x + eps * t / m, 0.0, 1.0)
    return np.clip(x + eps * t / (_l2(t) + 1e-12), 0.0, 1.0)


def _single_run(P, x, y, t, target, *, norm, eps, steps, loss, rho, backend):
    """One APGD run on all of x from the raw start t; returns (still correctly classified, x_adv) with
    x_adv the last misclassified iterate (the start where none is)."""
    checks = checkpoints(steps)
    windows = dict(zip(checks, [checks[0]] + [b - a for a, b in zip(checks, checks[1:])]))
    x_adv = _start_point(x, t, norm, eps)
    x_best, x_best_adv = x_adv.copy(), x_adv.copy()
    li, grad, z = loss_and_input_grad(P, x_adv, y, loss, target, backend)
    loss_steps = np.zeros((steps, x.shape[0]))
    grad_best, loss_best = grad.copy(), li.copy()
    acc = z.argmax(axis=1) == y
    step = np.full((x.shape[0], 1, 1, 1), 2.0 * eps)
    x_old = x_adv.copy()
    loss_best_last, reduced_last = loss_best.copy(), np.ones_like(acc)
    for i in range(steps):
        grad2, x_old = x_adv - x_old, x_adv.copy()
        x_adv = _step(x, x_adv, grad, grad2, step, 0.75 if i > 0 else 1.0, norm, eps)
        li, grad, z = loss_and_input_grad(P, x_adv, y, loss, target, backend)
        pred = z.argmax(axis=1) == y
        acc &= pred
        x_best_adv[~pred] = x_adv[~pred]
        better = li > loss_best
        x_best[better], grad_best[better], loss_best[better] = x_adv[better], grad[better], li[better]
        loss_steps[i] = li
        if i + 1 in windows:
            k = windows[i + 1]
            # condition 1 over the window; for the first window index −1 wraps to an unfilled (zero)
            # row, as in the reference code
            ups = sum((loss_steps[i - c] > loss_steps[i - c - 1]).astype(np.int64) for c in range(k))
            halve = (ups <= k * rho) | (~reduced_last & (loss_best_last >= loss_best))
            reduced_last, loss_best_last = halve.copy(), loss_best.copy()
            step[halve] /= 2.0
            x_adv[halve], grad[halve] = x_best[halve], grad_best[halve]
    return acc, x_best_adv


def _draw(shape, norm, seed, j):
    """Raw start t of run j from the numpy stream (seed, "apgd", j)."""
    rng = stream(seed, "apgd", j)
    if norm == "linf":
        return 2.0 * rng.random(shape) - 1.0
    return rng.standard_normal(shape)


def apgd_start_noise(shape, *, norm: str, count: int = 1, seed: int = 0) -> np.ndarray:
    """The raw starts t (count, *shape) that :func:`apgd` draws for ``seed``: U[−1, 1] (ℓ∞) or N(0, 1)
    (ℓ₂) entries, run j from the numpy stream (seed, "apgd", j)."""
    norm = check_choice("norm", norm, NORMS)
    return np.stack([_draw(tuple(shape), norm, check_seed(seed), j) for j in range(int(count))])


def _noise(noise, shape):
    a = np.asarray(noise, dtype=np.float64)
    if a.shape != tuple(shape):
        raise ConfigError("noise", f"must be an array of shape {tuple(shape)}", a.shape)
    if not np.isfinite(a).all():
        raise ConfigError("noise", "must be finite")
    return a


def _targets(z: np.ndarray, n_target_classes: int) -> list[np.ndarray]:
    """Target classes per run: entry i − 2 is the class of the i-th highest clean logit."""
    if n_target_classes > z.shape[1] - 1:
        raise ConfigError("n_target_classes", f"must be <= number of classes - 1 = {z.shape[1] - 1}",
                          n_target_classes)
    order = np.argsort(z, axis=1, kind="stable")
    return [np.ascontiguousarray(order[:, -i]) for i in range(2, n_target_classes + 2)]


def apgd(params: CNNParams, x, y, *, norm: str = "linf", eps: float, steps: int = 100, restarts: int = 1,
         loss: str = "ce", targeted: bool = False, n_target_classes: int = 9, rho: float = 0.75,
         noise=None, seed: int = 0, backend: str = "numba") -> np.ndarray:
    """APGD (module docstring) with ``restarts`` runs on the still-unbroken points; returns x_adv.

    Parameters
    ----------
    params : the CNN; x (N, C, H, W) in [0, 1], y (N,) integer labels.
    norm : "linf" | "l2";  eps : radius ε > 0;  steps : N_iter;  rho : ρ of condition 1.
    loss : "ce" | "dlr" (untargeted CE, DLR; targeted −CE(z, t), DLR_t(z, y, t)).
    targeted, n_target_classes : APGD-T over the targets ranked 2 … n_target_classes + 1.
    noise : raw starts t, (restarts, N, C, H, W), or (n_target_classes·restarts, N, C, H, W)
        target-major for APGD-T; else drawn from the numpy streams (seed, "apgd", j).
    backend : "numba" (kernels) or "numpy" (their references) for the passes.

    Returns
    -------
    x_adv (N, C, H, W) float64: a misclassified iterate of the last run that broke the point, else x.
    """
    check_backend(backend)
    norm, loss = check_choice("norm", norm, NORMS), check_choice("loss", loss, LOSSES)
    eps, rho = check_positive("eps", eps), check_range("rho", rho, 0.0, 1.0)
    steps, restarts = check_int("steps", steps, 1), check_int("restarts", restarts, 1)
    targeted, seed = check_bool("targeted", targeted), check_seed(seed)
    n_target_classes = check_int("n_target_classes", n_target_classes, 1) if targeted else 1
    P, x, y = _validate(params, x, y)
    runs = n_target_classes * restarts
    if noise is not None:
        noise = _noise(noise, (runs,) + x.shape)
    z = _logits_core(P, x, backend)
    targets = _targets(z, n_target_classes) if targeted else [None]
    acc = z.argmax(axis=1) == y
    adv = x.copy()
    for j in range(runs):
        idx = np.flatnonzero(acc)
        if idx.size == 0:
            break
        t = noise[j] if noise is not None else _draw(x.shape, norm, seed, j)
        target = targets[j // restarts]
        ok, xa = _single_run(P, x[idx], y[idx], t[idx], None if target is None else target[idx],
                             norm=norm, eps=eps, steps=steps, loss=loss, rho=rho, backend=backend)
        broke = idx[~ok]
        acc[broke] = False
        adv[broke] = xa[~ok]
    return adv


def apgd_t(params: CNNParams, x, y, *, loss: str = "dlr", **kwargs) -> np.ndarray:
    """APGD-T: :func:`apgd` with ``targeted=True`` and the targeted DLR loss by default (AutoAttack's)."""
    return apgd(params, x, y, targeted=True, loss=loss, **kwargs)


# ----------------------------------------------------------------------------------------------
# PGD
# ----------------------------------------------------------------------------------------------
def _pgd_start(shape, norm, eps, seed, r):
    """η of restart r from the numpy stream (seed, "pgd", r)."""
    rng = stream(seed, "pgd", r)
    if norm == "linf":
        return rng.uniform(-eps, eps, size=shape)
    z = rng.standard_normal(shape)
    u = rng.random((shape[0], 1, 1, 1))
    return z / _l2(z) * u * eps


def pgd_start_noise(shape, *, norm: str, eps: float, restarts: int = 1, seed: int = 0) -> np.ndarray:
    """The starting perturbations η (restarts, *shape) that :func:`pgd` draws for ``seed``."""
    norm, eps = check_choice("norm", norm, NORMS), check_positive("eps", eps)
    return np.stack([_pgd_start(tuple(shape), norm, eps, check_seed(seed), r) for r in range(int(restarts))])


def _pgd_run(P, x, y, eta, *, norm, eps, alpha, steps, loss, backend):
    """One PGD run from the start η (None: from x); returns the final x̂."""
    if norm == "linf":
        delta = np.zeros_like(x) if eta is None else np.clip(x + np.clip(eta, -eps, eps), 0.0, 1.0) - x
        for _ in range(steps):
            _, g, _ = loss_and_input_grad(P, x + delta, y, loss, None, backend)
            delta = np.clip(x + np.clip(delta + alpha * np.sign(g), -eps, eps), 0.0, 1.0) - x
        return x + delta
    adv = x.copy() if eta is None else np.clip(x + eta, 0.0, 1.0)
    for _ in range(steps):
        _, g, _ = loss_and_input_grad(P, adv, y, loss, None, backend)
        adv = adv + alpha * g / (_l2(g) + 1e-10)
        delta = adv - x
        with np.errstate(divide="ignore"):       # ε/0 = inf: δ = 0 stays 0
            delta = delta * np.minimum(eps / _l2(delta), 1.0)
        adv = np.clip(x + delta, 0.0, 1.0)
    return adv


def pgd(params: CNNParams, x, y, *, norm: str = "linf", eps: float, alpha: float | None = None,
        steps: int = 50, restarts: int = 1, loss: str = "ce", random_start: bool = True, noise=None,
        seed: int = 0, backend: str = "numba") -> np.ndarray:
    """PGD-``steps`` with ``restarts`` restarts in ``norm`` ∈ {linf, l2}; returns x_adv (module
    docstring). ``noise``: the starting perturbations η (restarts, N, C, H, W), else drawn from the
    numpy streams (seed, "pgd", r). For ℓ∞ and CE this is :func:`toymodels.cnn.attacks.pgd` (which
    returns δ and keeps the highest-loss restart) up to the choice among restarts."""
    check_backend(backend)
    norm, loss = check_choice("norm", norm, NORMS), check_choice("loss", loss, LOSSES)
    eps = check_positive("eps", eps)
    alpha = eps / 4 if alpha is None else check_positive("alpha", alpha)
    steps, restarts = check_int("steps", steps, 0), check_int("restarts", restarts, 1)
    random_start, seed = check_bool("random_start", random_start), check_seed(seed)
    if not random_start and restarts > 1:
        raise ConfigError("restarts", "must be 1 without a random start", restarts)
    P, x, y = _validate(params, x, y)
    if noise is not None:
        noise = _noise(noise, (restarts,) + x.shape)
    best = best_ok = best_loss = None
    for r in range(restarts):
        eta = None
        if random_start:
            eta = noise[r] if noise is not None else _pgd_start(x.shape, norm, eps, seed, r)
        adv = _pgd_run(P, x, y, eta, norm=norm, eps=eps, alpha=alpha, steps=steps, loss=loss, backend=backend)
        z = _logits_core(P, adv, backend)
        ok, li = z.argmax(axis=1) != y, attack_loss_grad(loss, z, y)[0]
        if best is None:
            best, best_ok, best_loss = adv, ok, li
            continue
        # a success is never replaced; a failure by a success or by a higher loss
        take = (ok & ~best_ok) | (~ok & ~best_ok & (li > best_loss))
        best = np.where(take[:, None, None, None], adv, best)
        best_ok, best_loss = best_ok | (take & ok), np.where(take, li, best_loss)
    clean_wrong = _logits_core(P, x, backend).argmax(axis=1) != y
    return np.where((clean_wrong & ~best_ok)[:, None, None, None], x, best)
