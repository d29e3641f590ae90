"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks"): APGD-CE, APGD-DLR and the targeted APGD-T, in ℓ∞ and ℓ₂, as run by
the AutoAttack code (and its port ``torchattacks.APGD`` / ``APGDT`` 3.5.1), returning x_adv.

Notation: x ∈ [0, 1]^d, feasible set S = {x̂ : ‖x̂ − x‖_p ≤ ε, x̂ ∈ [0, 1]^d}, P_S the projection
(ℓ∞: clip to [x − ε, x + ε] then to [0, 1]; ℓ₂: x + δ·min(ε, ‖δ‖₂)/(‖δ‖₂ + 10⁻¹²), then clip to [0, 1]),
L the loss maximized (:mod:`toymodels.torch.losses`: ``ce``, ``dlr``; targeted: −CE(·, t) and DLR_t),
g⁽ᵏ⁾ = ∇ₓL(x⁽ᵏ⁾), and ŝ(g) = sign g (ℓ∞) or g/(‖g‖₂ + 10⁻¹²) (ℓ₂). One run of N_iter = ``steps``:

* start x⁽⁰⁾ = clip(x + ε t/‖t‖∞, 0, 1), t ~ U[−1, 1]^d (ℓ∞), or clip(x + ε t/(‖t‖₂ + 10⁻¹²), 0, 1),
  t ~ N(0, I) (ℓ₂);  step size η⁽⁰⁾ = 2ε;
* z⁽ᵏ⁺¹⁾ = P_S(x⁽ᵏ⁾ + η⁽ᵏ⁾ ŝ(g⁽ᵏ⁾)),
  x⁽ᵏ⁺¹⁾ = P_S(x⁽ᵏ⁾ + a(z⁽ᵏ⁺¹⁾ − x⁽ᵏ⁾) + (1 − a)(x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾)),  a = 1 at k = 0, else 0.75;
* x_max, L_max: the iterate with the highest loss so far (strictly higher replaces it), and its gradient;
* checkpoints w₀ = 0 < w₁ < … (:func:`checkpoints`; w_j = ⌈p_j N_iter⌉ with p₀ = 0, p₁ = 0.22,
  p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06) when N_iter is a multiple of 100). After step w_j the
  step size of a point is halved, and the point restarts from x_max with its gradient, if
  condition 1: #{k ∈ [w_{j−1}, w_j): L(x⁽ᵏ⁺¹⁾) > L(x⁽ᵏ⁾)} ≤ ρ (w_j − w_{j−1}), or
  condition 2: it was not halved at w_{j−1} and L_max did not increase since w_{j−1}.
  As in the reference code, condition 1 compares with "≤" (the paper writes "<"), and for j = 1 its
  first term compares L(x⁽¹⁾) with 0 instead of L(x⁽⁰⁾) (the code reads an unfilled entry).
* A point counts as broken when any iterate x⁽ᵏ⁾ (k ≥ 0) is misclassified; it gets the last such iterate.

``apgd`` runs ``restarts`` runs, each on the points not broken yet (the clean input counts: misclassified
points are never attacked and come back as x); points never broken come back as x (AutoAttack's
output). APGD-T (``targeted=True``): for i = 2, …, ``n_target_classes`` + 1 the target t is the class
with the i-th highest clean logit, and the restarts run on the points still unbroken (untargeted
success: argmax ≠ y). Starts: run j (target-major: j = (i − 2)·restarts + r) takes the raw t = ``noise[j]``
or draws it on the CPU from stream ``torch_generator(seed, "apgd", j)`` (full batch, so a point's start
does not depend on which points are still attacked; :func:`apgd_start_noise`). Differences from
torchattacks 3.5.1: our own random streams, targets from the clean logits of the whole batch, and its
APGDT ℓ₂ step uses the first point's step size for every point (we use each point's, as AutoAttack).
The model's mode is left as it is (use eval mode). No per-point early stop (as the reference).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError, check_bool, check_choice, check_int, check_positive, check_range
from ..rng import check_seed
from .config import NORMS
from .device import torch_generator
from .losses import LOSSES
from .pgd import _bview, _l2, check_batch, check_noise, loss_grad

__all__ = ["apgd", "apgd_t", "checkpoints", "apgd_start_noise"]


def checkpoints(steps: int) -> list[int]:
    """The iterations w₁ < w₂ < … ≤ ``steps`` after which APGD checks its step size (w₀ = 0 omitted).

    The AutoAttack rule in integers: first window ⌊0.22 N⌋, each next one ⌊0.03 N⌋ shorter but at least
    ⌊0.06 N⌋ (all at least 1). For N = 100: 22, 41, 57, 70, 80, 87, 93, 99."""
    steps = check_int("steps", steps, 1)
    first, least, shrink = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    out, w, k = [], 0, first
    while w + k <= steps:
        w += k
        out.append(w)
        k = max(k - shrink, least)
    return out


def apgd_start_noise(shape, *, norm: str, count: int = 1, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """The raw starts t (count, *shape) that :func:`apgd` draws for ``seed``: t ~ U[−1, 1] (ℓ∞) or
    N(0, 1) (ℓ₂) per entry, run j from the CPU stream (seed, "apgd", j)."""
    return torch.stack([_draw(shape, norm, seed, j, dtype) for j in range(int(count))])


def _project_l2(x, v, eps, tiny=0.0):
    """clip(x + (v − x)/(‖v − x‖ + 10⁻¹²) · min(ε, ‖v − x‖ + tiny), 0, 1) (the reference's expression)."""
    d = v - x
    n = _l2(d)
    return torch.clamp(x + d / (n + 1e-12) * torch.clamp(n + tiny, max=eps), 0.0, 1.0)


def _step(x, x_adv, grad, grad2, step, a, *, norm, eps):
    """x⁽ᵏ⁺¹⁾ from x⁽ᵏ⁾ = ``x_adv``, g⁽ᵏ⁾ = ``grad``, x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾ = ``grad2``, η = ``step`` (N, 1, …)."""
    if norm == "linf":
        z = torch.clamp(torch.min(torch.max(x_adv + step * torch.sign(grad), x - eps), x + eps), 0.0, 1.0)
        return torch.clamp(torch.min(torch.max(x_adv + (z - x_adv) * a + grad2 * (1 - a), x - eps), x + eps),
                           0.0, 1.0)
    z = _project_l2(x, x_adv + step * grad / (_l2(grad) + 1e-12), eps)
    # the reference adds 10⁻¹² inside the min of the second projection only
    return _project_l2(x, x_adv + (z - x_adv) * a + grad2 * (1 - a), eps, tiny=1e-12)


def _start_point(x, t, *, norm, eps):
    """x⁽⁰⁾ from the raw start t (module docstring)."""
    if norm == "linf":
        m = t.reshape([t.shape[0], -1]).abs().max(dim=1, keepdim=True)[0].reshape(_bview(x))
        return (x + eps * t / m).clamp(0.0, 1.0)
    return (x + eps * t / (_l2(t) + 1e-12)).clamp(0.0, 1.0)


def _single_run(model, x, y, t, target, *, norm, eps, steps, loss, rho):
    """One APGD run on all of x from the raw start t; returns (still correctly classified, x_adv)
    with x_adv the last misclassified iterate (the start where none is)."""
    checks = checkpoints(steps)
    windows = dict(zip(checks, [checks[0]] + [b - a for a, b in zip(checks, checks[1:])]))
    x_adv = _start_point(x, t, norm=norm, eps=eps)
    x_best, x_best_adv = x_adv.clone(), x_adv.clone()
    li, grad, z = loss_grad(model, x_adv, y, loss, target)
    loss_steps = torch.zeros((steps, x.shape[0]), dtype=li.dtype, device=li.device)
    grad_best, loss_best = grad.clone(), li.clone()
    acc = z.max(1)[1] == y
    step = torch.full((x.shape[0],) + (1,) * (x.dim() - 1), 2.0 * eps, dtype=x.dtype, device=x.device)
    x_old = x_adv.clone()
    loss_best_last, reduced_last = loss_best.clone(), torch.ones_like(acc)
    for i in range(steps):
        with torch.no_grad():
            grad2, x_old = x_adv - x_old, x_adv.clone()
            x_adv = _step(x, x_adv, grad, grad2, step, 0.75 if i > 0 else 1.0, norm=norm, eps=eps)
        li, grad, z = loss_grad(model, x_adv, y, loss, target)
        pred = z.max(1)[1] == y
        acc = acc & pred
        x_best_adv[~pred] = x_adv[~pred]
        better = li > loss_best
        x_best[better], grad_best[better], loss_best[better] = x_adv[better], grad[better], li[better]
        loss_steps[i] = li
        if i + 1 in windows:
            k = windows[i + 1]
            # condition 1 over the window's k steps; index −1 wraps to an unfilled (zero) row as in the code
            ups = sum((loss_steps[i - c] > loss_steps[i - c - 1]).to(torch.int64) for c in range(k))
            halve = (ups <= k * rho) | (~reduced_last & (loss_best_last >= loss_best))
            reduced_last, loss_best_last = halve.clone(), loss_best.clone()
            step[halve] /= 2.0
            x_adv[halve], grad[halve] = x_best[halve], grad_best[halve]
    return acc, x_best_adv


def _targets(model, x, n_target_classes):
    """Target classes (n_target_classes, N): row i − 2 is the i-th highest clean logit's class."""
    with torch.no_grad():
        order = model(x).sort(dim=1)[1]
    if n_target_classes > order.shape[1] - 1:
        raise ConfigError("n_target_classes", f"must be <= number of classes - 1 = {order.shape[1] - 1}",
                          n_target_classes)
    return [order[:, -i] for i in range(2, n_target_classes + 2)]


def apgd(model, x: torch.Tensor, y: torch.Tensor, *, norm: str = "linf", eps: float, steps: int = 100,
         restarts: int = 1, loss: str = "ce", targeted: bool = False, n_target_classes: int = 9,
         rho: float = 0.75, noise: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """APGD (module docstring) with ``restarts`` runs on the still-unbroken points; returns x_adv.

    Parameters
    ----------
    model : logits = model(x); its mode is left as it is.
    x, y : images in [0, 1] (N, …) and int64 labels (N,).
    norm : "linf" | "l2";  eps : radius ε > 0;  steps : N_iter;  rho : ρ of condition 1.
    loss : "ce" | "dlr" (untargeted: CE, DLR; targeted: −CE(z, t), DLR_t(z, y, t)).
    targeted, n_target_classes : APGD-T over the targets ranked 2 … n_target_classes + 1.
    noise : raw starts t, (restarts, *x.shape), or (n_target_classes·restarts, *x.shape) target-major
        for APGD-T; else drawn from the streams (seed, "apgd", j) (:func:`apgd_start_noise`).

    Returns
    -------
    x_adv (detached, like x): for a broken point the last misclassified iterate of the run that broke
    it (later runs skip it), else x.
    """
    check_batch(x, y)
    norm, loss = check_choice("norm", norm, NORMS), check_choice("loss", loss, LOSSES)
    eps, rho = check_positive("eps", eps), check_range("rho", rho, 0.0, 1.0)
    steps, restarts = check_int("steps", steps, 1), check_int("restarts", restarts, 1)
    targeted, seed = check_bool("targeted", targeted), check_seed(seed)
    n_target_classes = check_int("n_target_classes", n_target_classes, 1) if targeted else 1
    runs = n_target_classes * restarts
    if noise is not None:
        check_noise(noise, (runs,) + tuple(x.shape))
    x = x.detach()
    targets = _targets(model, x, n_target_classes) if targeted else [None]
    with torch.no_grad():
        acc = model(x).max(1)[1] == y
    adv = x.clone()
    for j in range(runs):
        idx = acc.nonzero()[:, 0]
        if idx.numel() == 0:
            break
        t = (noise[j] if noise is not None else _draw(x.shape, norm, seed, j, x.dtype)).to(x.device, x.dtype)
        target = targets[j // restarts]
        ok, xa = _single_run(model, x[idx], y[idx], t[idx], None if target is None else target[idx],
                             norm=norm, eps=eps, steps=steps, loss=loss, rho=rho)
        broke = idx[~ok]
        acc[broke] = False
        adv[broke] = xa[~ok]
    return adv.detach()


def _draw(shape, norm, seed, j, dtype):
    """Raw start t of run j from the CPU stream (seed, "apgd", j)."""
    gen = torch_generator(seed, "apgd", j)
    if norm == "linf":
        return 2 * torch.rand(tuple(shape), generator=gen, dtype=dtype) - 1
    return torch.randn(tuple(shape), generator=gen, dtype=dtype)


def apgd_t(model, x: torch.Tensor, y: torch.Tensor, *, loss: str = "dlr", **kwargs) -> torch.Tensor:
    """APGD-T: :func:`apgd` with ``targeted=True`` and the targeted DLR loss by default (AutoAttack's)."""
    return apgd(model, x, y, targeted=True, loss=loss, **kwargs)
