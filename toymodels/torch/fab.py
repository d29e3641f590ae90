"""FAB — the Fast Adaptive Boundary attack (Croce & Hein 2020, "Minimally distorted adversarial examples
with a fast adaptive boundary attack"), ℓ∞ and ℓ₂, untargeted and targeted (FAB-T), as run by AutoAttack.

FAB looks for the adversarial example of *smallest* norm; an evaluation at radius ε then counts a point
as broken when the smallest adversarial found has ‖x̂ − x‖_p ≤ ε. For a classifier f : [0, 1]^d → R^K,
a point x₀ = x with label y, and the current iterate x⁽ⁱ⁾ (x⁽⁰⁾ = x₀, or a random start for restarts > 0):

1. **Linearize the decision boundary** at x⁽ⁱ⁾. For a class k ≠ y let Δ_k(z) = f_k(z) − f_y(z) ≈
   Δ_k(x⁽ⁱ⁾) + ∇Δ_k(x⁽ⁱ⁾)·(z − x⁽ⁱ⁾). Untargeted: the class whose linearized boundary is closest,
   s = argmin_{k≠y} |Δ_k(x⁽ⁱ⁾)| / (‖∇Δ_k(x⁽ⁱ⁾)‖_q + 10⁻¹²), q the dual exponent (ℓ∞ → ℓ₁, ℓ₂ → ℓ₂);
   targeted (FAB-T): s = t, the target. The hyperplane is π = {z : w·z = b}, w = ∇Δ_s(x⁽ⁱ⁾),
   b = w·x⁽ⁱ⁾ − Δ_s(x⁽ⁱ⁾).
2. **Project onto π ∩ box** (:func:`project_hyperplane_box`): δ⁽ⁱ⁾ = P_p(x⁽ⁱ⁾) − x⁽ⁱ⁾ and
   δ₀⁽ⁱ⁾ = P_p(x₀) − x₀, where P_p(u) = argmin {‖z − u‖_p : w·z = b, z ∈ [0, 1]^d} (when π misses the box,
   the box corner that moves w·z furthest towards b).
3. **Biased step** back towards x₀: α = clip(‖δ⁽ⁱ⁾‖_p / (‖δ⁽ⁱ⁾‖_p + ‖δ₀⁽ⁱ⁾‖_p), 0, α_max) (norms floored at
   10⁻⁸) and  x⁽ⁱ⁺¹⁾ = clip((1 − α)(x⁽ⁱ⁾ + η δ⁽ⁱ⁾) + α (x₀ + η δ₀⁽ⁱ⁾), 0, 1),  η > 1 an overshoot.
4. **Backward step**: if argmax f(x⁽ⁱ⁺¹⁾) ≠ y, x⁽ⁱ⁺¹⁾ is recorded when it is the closest adversarial so far
   (‖x⁽ⁱ⁺¹⁾ − x₀‖_p < best), then moved back: x⁽ⁱ⁺¹⁾ ← x₀ + β (x⁽ⁱ⁺¹⁾ − x₀), β < 1.

Schedule (AutoAttack's ``FABAttack.perturb``): FAB-T runs for target index j = 2, …, n_target_classes + 1
(target = the class with the j-th largest clean logit), and for each target ``restarts`` runs of ``steps``
iterations; every run attacks only the points that are correctly classified and not yet broken. Run 0
starts at x₀; run r > 0 at clip(x₀ + (ε/2) u/‖u‖_p, 0, 1), u ~ U[−1, 1]^d (ℓ∞) or N(0, I) (ℓ₂), drawn on
the CPU from the named stream ``torch_generator(seed, "fab", j, r)`` (j = 0 untargeted). A point is broken
by a run when its closest adversarial has ‖x̂ − x₀‖_p ≤ ε; otherwise it is returned as x₀, so the output
is always feasible. Success is untargeted (argmax ≠ y) in FAB-T too, as in AutoAttack.

Cost per iteration: one forward + backward (FAB-T) or one forward + K backward passes (untargeted: the
Jacobian of all logits), plus one forward pass to check success.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError, check_bool, check_choice, check_int, check_positive, check_range
from ..rng import check_seed
from .config import NORMS
from .device import torch_generator

__all__ = ["fab", "project_hyperplane_box", "lp_norm"]

#: |w_i| below this counts as 0 in the ℓ₂ projection (AutoAttack's threshold)
_L2_ZERO = 1e-8
#: "no adversarial found yet" distance (AutoAttack's 1e10)
_FAR = 1e10


def lp_norm(v: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-row ‖v‖_p of a tensor (n, ...): max |v_i| (``linf``) or (Σ v_i²)^½ (``l2``)."""
    flat = v.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


def _dual_norm(g: torch.Tensor, norm: str) -> torch.Tensor:
    """‖g‖_q over the last dimension, q dual to p: ℓ₁ for ``linf``, ℓ₂ for ``l2``."""
    return g.abs().sum(dim=-1) if norm == "linf" else g.norm(dim=-1)


def _solve_piecewise(c: torch.Tensor, r: torch.Tensor, need: torch.Tensor):
    """Per row, the smallest λ ≥ 0 with g(λ) = Σ_i c_i min(λ, r_i) = need (c, r ≥ 0), and a feasibility mask.

    g is continuous, piecewise linear, nondecreasing, with kinks at the r_i and g(∞) = Σ c_i r_i. With r
    sorted ascending, C_k = Σ_{j<k} c_j r_j and R_k = Σ_{j≥k} c_j, g(r_k) = G_k = C_k + r_k R_k; the root
    lies in the first segment with G_k ≥ need, where λ = (need − C_k)/R_k. Infeasible rows
    (need > g(∞)) get λ = max r (their solution is the full move, see :func:`project_hyperplane_box`).
    """
    rs, order = r.sort(dim=1)
    cs = c.gather(1, order)
    prefix = torch.cumsum(cs * rs, dim=1) - cs * rs          # C_k (exclusive prefix sums)
    suffix = cs.flip(1).cumsum(1).flip(1)                   # R_k (inclusive suffix sums)
    kinks = prefix + rs * suffix                            # G_k
    k = (kinks < need[:, None]).sum(dim=1)                  # first segment with G_k >= need
    feasible = k < r.shape[1]
    kc = k.clamp(max=r.shape[1] - 1)[:, None]
    pk, sk = prefix.gather(1, kc)[:, 0], suffix.gather(1, kc)[:, 0]
    lam = torch.where(sk > 0, (need - pk) / sk.clamp_min(torch.finfo(sk.dtype).tiny), rs.gather(1, kc)[:, 0])
    return torch.where(feasible, lam.clamp_min(0.0), rs[:, -1]), feasible


def project_hyperplane_box(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    """The step d of minimal ‖d‖_p onto the hyperplane ∩ box: per row,

        d = argmin ‖d‖_p  s.t.  w·(t + d) = b,  t + d ∈ [0, 1]^n     (t, w: (m, n); b: (m,)).

    Orient the hyperplane so that c = w·t − b ≥ 0 (w, b ← −w, −b otherwise): the constraint asks to lower
    w·(t + d) by c. Coordinate i can move by at most its room ρ_i = t_i (w_i > 0) or 1 − t_i (w_i < 0),
    always against sign(w_i). By the KKT conditions

    * ℓ∞: d_i = −sign(w_i) min(λ, ρ_i) with Σ_i |w_i| min(λ, ρ_i) = c   (all free coordinates at ±λ);
    * ℓ₂: d_i = −sign(w_i) min(μ|w_i|, ρ_i) with Σ_i w_i² min(μ, ρ_i/|w_i|) = c   (d = clip(−μw) to the box),

    both solved exactly by :func:`_solve_piecewise`. Coordinates with w_i = 0 (ℓ₂: |w_i| ≤ 10⁻⁸, as in
    AutoAttack) do not move. If the hyperplane misses the box (c > Σ_i |w_i| ρ_i) the result is the full
    move d_i = −sign(w_i) ρ_i, the box corner closest to the hyperplane (AutoAttack's convention).
    """
    side = torch.where((w * t).sum(dim=1) - b >= 0, 1.0, -1.0).to(t.dtype)
    w = w * side[:, None]
    need = (w * t).sum(dim=1) - b * side
    room = torch.where(w > 0, t, 1.0 - t)
    sign = torch.sign(w)
    if norm == "linf":
        lam, _ = _solve_piecewise(w.abs(), room, need)
        return -sign * torch.minimum(lam[:, None], room)
    active = w.abs() > _L2_ZERO
    wa = torch.where(active, w.abs(), torch.ones_like(w))    # avoids 0/0 in the kinks of inactive coordinates
    mu, feasible = _solve_piecewise(torch.where(active, w * w, 0.0), torch.where(active, room / wa, 0.0), need)
    step = torch.where(feasible[:, None], torch.minimum(mu[:, None] * wa, room), room)
    return torch.where(active, -sign * step, 0.0)


def _logit_gaps(model, x1: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None):
    """Δ_k(x⁽ⁱ⁾) = f_k − f_y (n, m) and their input gradients ∇Δ_k (n, m, d) at x⁽ⁱ⁾.

    Targeted: m = 1, k = target (one backward pass of Σ_n Δ_t). Untargeted: m = K, all classes (K backward
    passes of one forward graph); Δ_y is set to 10¹⁰ so that y is never chosen as the closest boundary.
    """
    n = torch.arange(x1.shape[0], device=x1.device)
    xr = x1.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        z = model(xr)
        if target is not None:
            gap = z[n, target] - z[n, y]
            grad, = torch.autograd.grad(gap.sum(), xr)
            return gap.detach()[:, None], grad.flatten(1)[:, None]
        grads = []
        for k in range(z.shape[1]):    # row n of z depends on x_n only: d(Σ_n z_nk)/dx_n = ∇f_k(x_n)
            g, = torch.autograd.grad(z[:, k].sum(), xr, retain_graph=k + 1 < z.shape[1])
            grads.append(g.flatten(1))
    jac = torch.stack(grads, dim=1)
    z = z.detach()
    gaps = z - z[n, y][:, None]
    gaps[n, y] = _FAR
    return gaps, jac - jac[n, y][:, None]


def _closest_hyperplane(gaps: torch.Tensor, grads: torch.Tensor, x1: torch.Tensor, norm: str):
    """(w, b) of the linearized boundary {z : w·z = b} closest to x⁽ⁱ⁾ in ℓ_p:
    s = argmin_k |Δ_k| / (‖∇Δ_k‖_q + 10⁻¹²), w = ∇Δ_s, b = w·x⁽ⁱ⁾ − Δ_s."""
    dist = gaps.abs() / (_dual_norm(grads, norm) + 1e-12)
    n = torch.arange(x1.shape[0], device=x1.device)
    s = dist.argmin(dim=1)
    w = grads[n, s]
    return w, (w * x1.flatten(1)).sum(dim=1) - gaps[n, s]


def _fab_step(x1, x0, w, b, norm: str, alpha_max: float, eta: float):
    """Steps 2–3 of the module docstring: project x⁽ⁱ⁾ and x₀ onto the hyperplane ∩ box and take the
    biased, overshooting convex combination, clipped to [0, 1]."""
    m = x1.shape[0]
    d = project_hyperplane_box(torch.cat((x1.flatten(1), x0.flatten(1))), torch.cat((w, w)),
                               torch.cat((b, b)), norm)
    size = lp_norm(d, norm).clamp_min(1e-8)
    a1, a0 = size[:m], size[m:]
    alpha = (a1 / (a1 + a0)).clamp(0.0, alpha_max).reshape(-1, *[1] * (x1.dim() - 1))
    d1, d0 = d[:m].reshape(x1.shape), d[m:].reshape(x1.shape)
    return ((1 - alpha) * (x1 + eta * d1) + alpha * (x0 + eta * d0)).clamp(0.0, 1.0)


def _random_start(x0: torch.Tensor, eps: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    """clip(x₀ + (ε/2) u/‖u‖_p, 0, 1) with u ~ U[−1, 1]^d (ℓ∞) or N(0, I) (ℓ₂), drawn on the CPU."""
    shape, dtype = tuple(x0.shape), x0.dtype
    if norm == "linf":
        u = 2 * torch.rand(shape, generator=generator, dtype=dtype) - 1
    else:
        u = torch.randn(shape, generator=generator, dtype=dtype)
    u = (u / lp_norm(u, norm).reshape(-1, *[1] * (u.dim() - 1))).to(x0.device)
    return (x0 + 0.5 * eps * u).clamp(0.0, 1.0)


def _fab_run(model, x0, y, target, *, norm, eps, steps, alpha_max, eta, beta, generator):
    """One FAB run of ``steps`` iterations (module docstring, steps 1–4) from x₀ or, when ``generator`` is
    given, from a random start. Returns (closest adversarial found, or x₀; its ℓ_p distance, or 10¹⁰)."""
    x1 = x0.clone() if generator is None else _random_start(x0, eps, norm, generator)
    best_x, best_dist = x0.clone(), torch.full((x0.shape[0],), _FAR, dtype=x0.dtype, device=x0.device)
    shape = (-1, *[1] * (x0.dim() - 1))
    for _ in range(steps):
        gaps, grads = _logit_gaps(model, x1, y, target)
        w, b = _closest_hyperplane(gaps, grads, x1, norm)
        x1 = _fab_step(x1, x0, w, b, norm, alpha_max, eta)
        with torch.no_grad():
            adv = model(x1).argmax(dim=1) != y
        dist = lp_norm(x1 - x0, norm)
        better = adv & (dist < best_dist)
        best_x = torch.where(better.reshape(shape), x1, best_x)
        best_dist = torch.where(better, dist, best_dist)
        # backward step: restart the search from a point between x₀ and the adversarial just found
        x1 = torch.where(adv.reshape(shape), x0 + beta * (x1 - x0), x1)
    return best_x, best_dist


def _check_fab_args(x, y, norm, eps, steps, restarts, targeted, n_target_classes, alpha_max, eta, beta, seed):
    """Validate the options of :func:`fab` (:class:`~toymodels.errors.ConfigError` naming the field)."""
    check_choice("norm", norm, NORMS)
    check_positive("eps", eps)
    check_int("steps", steps, 1)
    check_int("restarts", restarts, 1)
    check_bool("targeted", targeted)
    check_int("n_target_classes", n_target_classes, 1)
    check_range("alpha_max", alpha_max, 0.0, 1.0)
    check_positive("eta", eta)
    check_range("beta", beta, 0.0, 1.0, lo_open=True)
    check_seed(seed)
    if x.dim() < 2 or y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ConfigError("y", f"must be a vector of {x.shape[0]} labels matching x of shape "
                          f"{tuple(x.shape)}", tuple(y.shape))


def _targets(z: torch.Tensor, n_target_classes: int, targeted: bool) -> list:
    """Per schedule entry (j, target): untargeted [(0, None)]; FAB-T j = 2..m+1 with the class of the j-th
    largest clean logit (AutoAttack's ``sort(z)[1][:, −j]``), m = min(n_target_classes, K − 1) — so the
    AutoAttack default of 9 targets means "every other class" on a model with fewer than 10 classes."""
    if not targeted:
        return [(0, None)]
    order = z.sort(dim=1).indices
    return [(j, order[:, -j]) for j in range(2, min(n_target_classes, z.shape[1] - 1) + 2)]


def fab(model, x: torch.Tensor, y: torch.Tensor, *, norm: str = "linf", eps: float, steps: int = 100,
        restarts: int = 1, targeted: bool = True, n_target_classes: int = 9, alpha_max: float = 0.1,
        eta: float = 1.05, beta: float = 0.9, seed: int = 0) -> torch.Tensor:
    """FAB / FAB-T adversarial examples at radius ε (algorithm and schedule: module docstring).

    Parameters
    ----------
    model : callable
        x → logits (n, K); used as given (train/eval mode unchanged).
    x, y : Tensor
        Inputs in [0, 1] (n, ...) and int64 labels (n,).
    norm : {"linf", "l2"}
        Threat model; FAB minimizes ‖x̂ − x‖_p and the point counts as broken when that is ≤ ε.
    eps : float
        Radius ε > 0.
    steps, restarts : int
        Iterations per run and runs per target (run 0 starts at x, runs r > 0 at a random point).
    targeted : bool
        FAB-T (AutoAttack's "fab-t") if True, else untargeted FAB over all classes.
    n_target_classes : int
        FAB-T: targets are the classes with the 2nd, …, (m + 1)-th largest clean logit,
        m = min(n_target_classes, K − 1).
    alpha_max, eta, beta : float
        Largest bias towards x₀, overshoot, backward-step factor (paper/AutoAttack: 0.1, 1.05, 0.9).
    seed : int
        Selects the named stream of the random starts.

    Returns
    -------
    Tensor
        x_adv (detached, x's device and dtype): the closest adversarial found where it lies within ε,
        else x. Always feasible: ‖x_adv − x‖_p ≤ ε (up to rounding), x_adv ∈ [0, 1]^d.

    Raises
    ------
    ConfigError
        For an unknown norm, ε ≤ 0, steps/restarts/n_target_classes < 1, α_max ∉ [0, 1], η ≤ 0,
        β ∉ (0, 1], a bad seed, or labels that do not match x.
    """
    _check_fab_args(x, y, norm, eps, steps, restarts, targeted, n_target_classes, alpha_max, eta, beta, seed)
    x, y = x.detach(), y.detach().to(x.device)
    x_adv = x.clone()
    with torch.no_grad():
        z = model(x)
    robust = z.argmax(dim=1) == y
    for j, target in _targets(z, n_target_classes, targeted):
        for r in range(restarts):
            idx = robust.nonzero()[:, 0]
            if idx.numel() == 0:
                return x_adv
            gen = torch_generator(seed, "fab", j, r) if r > 0 else None
            adv, dist = _fab_run(model, x[idx], y[idx], None if target is None else target[idx], norm=norm,
                                 eps=eps, steps=steps, alpha_max=alpha_max, eta=eta, beta=beta, generator=gen)
            broken = dist <= eps
            x_adv[idx[broken]] = _feasible(adv[broken], x[idx[broken]], norm, eps)
            robust[idx[broken]] = False
    return x_adv


def _feasible(x_adv: torch.Tensor, x: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Guard against rounding: clip to the box and pull points with ‖x_adv − x‖_p > ε back onto the ε-ball
    (ℓ∞: clip to [x − ε, x + ε]; ℓ₂: x + δ·ε/‖δ‖₂, which stays in the box). Points accepted at distance
    ≤ ε come back unchanged."""
    x_adv = x_adv.clamp(0.0, 1.0)
    if norm == "linf":
        return torch.minimum(torch.maximum(x_adv, x - eps), x + eps)
    delta = x_adv - x
    size = lp_norm(delta, norm).reshape(-1, *[1] * (delta.dim() - 1))
    return torch.where(size > eps, x + delta * (eps / size.clamp_min(1e-30)), x_adv)
