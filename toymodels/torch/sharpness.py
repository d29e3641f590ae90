"""Adaptive average- and worst-case m-sharpness of any ``nn.Module`` (thesis Ch. 7, eq. 7.1–7.5, Alg. 5).

Definitions (same normalization as the numpy twin :mod:`toymodels.sharpness.measures`). For the
perturbed parameters w ∈ R^P (flattened in ``params`` order; default: every parameter of the model
that requires grad), a batch S of m points, the batch loss L_S(w) = (1/m) Σ_{(x,y)∈S} ℓ(f_w(x), y)
(cross-entropy by default; ``loss_fn`` must return the *mean* over the batch), the scaling
c = |w| (``adaptive=True``, elementwise adaptive) or c = 1 (standard), and δ = c ⊙ γ:

    S_avg^ρ(S) = E_{γ ~ N(0, ρ² I)} L_S(w + c⊙γ) − L_S(w)               (Monte Carlo, with s.e.)
    S_max^ρ(S) = max_{‖γ‖_p ≤ ρ} L_S(w + c⊙γ) − L_S(w),   p ∈ {2, ∞}    (Auto-PGD, a lower bound)

m-sharpness (eq. 7.1): the data (x, y) are cut into the n // m consecutive batches of m points (a
remainder of n mod m points is left out, as :func:`toymodels.sharpness.dln.measure_dln`); each batch
gets its own perturbations: batch b's MC draws are seeded ``child_seed(seed, "sharpness/avg", b)`` and its
Auto-PGD ascent ``child_seed(seed, "sharpness/max", b)`` (named streams of :mod:`toymodels.rng`, the seeds
of the twin's :func:`~toymodels.sharpness.dln.measure_dln`); the reported value is the mean over batches;
for the average case the s.e. is √(Σ_b se_b²) / n_batches.

Logit normalization (eq. 7.5, ``logit_norm=True``): the loss sees f̃ = f / √((1/K) Σ_k (f_k − f̄)²),
f̄ = (1/K) Σ_k f_k (population standard deviation over the K logits of each point).

Worst case: Auto-PGD (Croce & Hein 2020; thesis Alg. 5, l.4123) on γ, exactly as
:func:`toymodels.sharpness.measures.max_sharpness`: start uniform in the ball (drawn from the batch's seed
in the twin's order), η = 2ρ, normalized-gradient (ℓ₂) or sign (ℓ∞) steps on ∇_γ = c ⊙ ∇L_S(w + c⊙γ),
momentum α = 0.75, projection onto {‖γ‖_p ≤ ρ}, η halved and the iterate reset to the best point at the
checkpoints of :func:`apgd_checkpoints` when fewer than 75 % of the steps since the last checkpoint
increased the loss or when η and the best value were both unchanged. Like the twin, the returned value is
max(best found, 0) with γ = 0 on a tie: γ = 0 is feasible, so S_max ≥ 0 and a negative "lower bound" is
never reported.

During a call the model is in eval mode (BatchNorm uses its running statistics, dropout is off) and
its parameters are overwritten with w + c⊙γ; on exit (also on error) every parameter is restored
bit-identically from a copy and each module's train/eval flag is restored. ``.grad`` fields are not
touched (gradients come from :func:`torch.autograd.grad`).

Randomness: ``noise="numpy"`` (default) draws γ with ``toymodels.rng.stream(s)`` (=
``numpy.random.default_rng(s)``) for the batch's seed s in the twin's order (bit-identical draws to the
numpy twin, then moved to the device); ``noise="torch"`` draws with a ``torch.Generator`` on the
model's device (fast on GPU, not comparable to the twin).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, check_choice, check_int, check_positive
from ..rng import child_seed, stream
from ..sharpness.measures import apgd_checkpoints

__all__ = ["KINDS", "SharpnessResult", "WorstCase", "normalize_logits", "sharpness", "avg_sharpness_batch",
           "worst_sharpness_batch", "apgd_checkpoints"]

#: kinds understood by :func:`sharpness` (avg-l2: Gaussian average case; worst-*: Auto-PGD)
KINDS = ("avg-l2", "worst-l2", "worst-linf")


def normalize_logits(z: torch.Tensor) -> torch.Tensor:
    """Eq. (7.5): z / √((1/K) Σ_k (z_k − z̄)²) per row (population std over the last axis)."""
    return z / z.std(dim=-1, unbiased=False, keepdim=True)


def _default_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(z, y)


@dataclass
class WorstCase:
    """Auto-PGD outcome on one batch: ``value`` = max(L(w + c⊙γ) − L(w) over the iterates, 0),
    ``gamma`` the maximizer (flat, CPU), ``history`` the best value after each iteration (length
    n_iter + 1, as the twin), ``base`` = L(w), ``iterates`` every evaluated γ when ``trace=True``."""

    value: float
    gamma: torch.Tensor
    history: np.ndarray
    base: float
    iterates: list | None = None


@dataclass
class SharpnessResult:
    """:func:`sharpness` outcome: ``value`` = mean over batches; ``se`` its MC standard error
    (average case; ``None`` for the worst case); per-batch values, standard errors, base losses."""

    kind: str
    rho: float
    adaptive: bool
    logit_norm: bool
    m: int
    value: float
    se: float | None
    per_batch: list = field(default_factory=list)
    per_batch_se: list | None = None
    base_loss: list = field(default_factory=list)
    histories: list | None = None
    gammas: list | None = None

    @property
    def n_batches(self) -> int:
        return len(self.per_batch)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "rho": self.rho, "adaptive": self.adaptive, "logit_norm": self.logit_norm,
                "m": self.m, "n_batches": self.n_batches, "sharpness": self.value, "se": self.se,
                "per_batch": list(self.per_batch), "per_batch_se": self.per_batch_se,
                "base_loss": float(np.mean(self.base_loss)) if self.base_loss else None,
                "base_loss_per_batch": list(self.base_loss)}


class _Perturbed:
    """Flat view of ``params``: ``set(γ)`` writes w + c⊙γ into them; ``loss``/``loss_grad`` evaluate
    L_S there (chunked over the batch when ``max_batch`` is set; exact for mean-reduced losses)."""

    def __init__(self, model, params, x, y, adaptive, loss_fn, logit_norm, max_batch):
        self.model, self.params = model, params
        self.x, self.y = x, y
        self.loss_fn = _default_loss if loss_fn is None else loss_fn
        self.logit_norm = logit_norm
        self.max_batch = max_batch
        with torch.no_grad():
            self.w = torch.cat([p.detach().reshape(-1) for p in params]).clone()
        self.c = self.w.abs() if adaptive else torch.ones_like(self.w)
        self.sizes = [p.numel() for p in params]

    def set(self, gamma):
        with torch.no_grad():
            flat = self.w + self.c * gamma
            for p, chunk in zip(self.params, flat.split(self.sizes)):
                p.copy_(chunk.view_as(p))

    def _chunks(self):
        n = self.x.shape[0]
        step = n if self.max_batch is None else self.max_batch
        for s in range(0, n, step):
            yield self.x[s:s + step], self.y[s:s + step], min(step, n - s) / n

    def _batch_loss(self, xb, yb):
        z = self.model(xb)
        if self.logit_norm:
            z = normalize_logits(z)
        return self.loss_fn(z, yb)

    def loss(self, gamma) -> float:
        self.set(gamma)
        with torch.no_grad():
            tot = None
            for xb, yb, wt in self._chunks():
                val = self._batch_loss(xb, yb) * wt     # wt = 1 (exact) without chunking
                tot = val if tot is None else tot + val
            return float(tot)

    def loss_grad(self, gamma):
        """(L_S(w + c⊙γ), ∇_γ = c ⊙ ∇L_S(w + c⊙γ)) as (float, flat tensor)."""
        self.set(gamma)
        tot, grads = None, None
        with torch.enable_grad():
            for xb, yb, wt in self._chunks():
                val = self._batch_loss(xb, yb) * wt
                g = torch.autograd.grad(val, self.params, allow_unused=True)
                g = torch.cat([torch.zeros_like(p).reshape(-1) if gi is None else gi.reshape(-1)
                               for p, gi in zip(self.params, g)])
                tot = val.detach() if tot is None else tot + val.detach()
                grads = g if grads is None else grads + g
        return float(tot), self.c * grads


@contextmanager
def _guard(model: torch.nn.Module, params):
    """Eval mode and exact parameter restoration (also on error)."""
    flags = [(m, m.training) for m in model.modules()]
    saved = [p.detach().clone() for p in params]
    model.eval()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
        for m, t in flags:
            m.training = t


def _params_of(model, params):
    params = [p for p in model.parameters() if p.requires_grad] if params is None else list(params)
    if not params:
        raise ConfigError("params", "must hold a parameter to perturb (none requires grad)")
    return params


def _device_of(params):
    return params[0].device


def _check_common(rho, x, y):
    check_positive("rho", rho)
    if x.shape[0] != y.shape[0]:
        raise ConfigError("y", f"must have as many points as x ({x.shape[0]})", int(y.shape[0]))


def _finite(val, what):
    if not math.isfinite(val):
        raise FloatingPointError(f"non-finite loss ({val}) during {what}")
    return val


def avg_sharpness_batch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, rho: float, *,
                        adaptive: bool = True, n_samples: int = 100, seed: int = 0,
                        loss_fn: Callable | None = None, logit_norm: bool = False, params: Iterable | None = None,
                        noise: str = "numpy", max_batch: int | None = None):
    """Average-case sharpness of one batch: (mean, standard error, L_S(w)) of L_S(w + c⊙γ) − L_S(w)
    over ``n_samples`` draws γ ~ N(0, ρ² I) (the twin's ``avg_sharpness``: s.e. = std(ddof=1)/√n)."""
    _check_common(rho, x, y)
    check_int("n_samples", n_samples, 2)
    check_choice("noise", noise, ("numpy", "torch"))
    params = _params_of(model, params)
    dev = _device_of(params)
    with _guard(model, params):
        pp = _Perturbed(model, params, x.to(dev), y.to(dev), adaptive, loss_fn, logit_norm, max_batch)
        P, dtype = pp.w.numel(), pp.w.dtype
        base = _finite(pp.loss(torch.zeros_like(pp.w)), "the base loss")
        if noise == "numpy":
            rng = stream(seed)
            draw = lambda: torch.from_numpy(rho * rng.standard_normal(P)).to(device=dev, dtype=dtype)  # noqa: E731
        else:
            gen = torch.Generator(device=dev)
            gen.manual_seed(seed)
            draw = lambda: rho * torch.randn(P, generator=gen, device=dev, dtype=dtype)  # noqa: E731
        vals = np.empty(n_samples)
        for s in range(n_samples):
            vals[s] = _finite(pp.loss(draw()), f"average-case sample {s}") - base
    return float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(n_samples)), base


def _project(g, rho, linf):
    if linf:
        return g.clamp(-rho, rho)
    nrm = float(torch.linalg.vector_norm(g))
    return g if nrm <= rho else g * (rho / nrm)


def _step(g, linf):
    if linf:
        return torch.sign(g)
    nrm = float(torch.linalg.vector_norm(g))
    return g / nrm if nrm > 0 else g


def worst_sharpness_batch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, rho: float, *,
                          norm: str = "linf", adaptive: bool = True, n_iter: int = 20, n_restarts: int = 1,
                          seed: int = 0, momentum: float = 0.75, rho_frac: float = 0.75,
                          loss_fn: Callable | None = None, logit_norm: bool = False,
                          params: Iterable | None = None, max_batch: int | None = None,
                          trace: bool = False) -> WorstCase:
    """Worst-case sharpness of one batch by Auto-PGD in γ over {‖γ‖_p ≤ ρ}, p = ``norm`` ∈ {"l2", "linf"}.

    Mirrors :func:`toymodels.sharpness.measures.max_sharpness` step by step (same draws from
    ``default_rng(seed)``, same checkpoints, same tests), so on the same loss both follow the same
    iterates up to floating-point rounding. Costs n_restarts·(n_iter + 1) forward+backward passes.
    """
    _check_common(rho, x, y)
    norm = check_choice("norm", norm, ("l2", "linf"))
    check_int("n_iter", n_iter, 1)
    check_int("n_restarts", n_restarts, 1)
    linf = norm == "linf"
    params = _params_of(model, params)
    dev = _device_of(params)
    rng = stream(seed)
    iterates = [] if trace else None
    with _guard(model, params):
        pp = _Perturbed(model, params, x.to(dev), y.to(dev), adaptive, loss_fn, logit_norm, max_batch)
        P, dtype = pp.w.numel(), pp.w.dtype
        tens = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64)).to(device=dev, dtype=dtype)  # noqa: E731

        def fg(g, what):
            if trace:
                iterates.append(g.detach().cpu().clone())
            val, grad = pp.loss_grad(g)
            return _finite(val, what), grad

        base = _finite(pp.loss(torch.zeros_like(pp.w)), "the base loss")
        checkpoints = set(apgd_checkpoints(n_iter)[1:])
        best_val, best_gam, history = -np.inf, torch.zeros_like(pp.w), np.empty(n_iter + 1)
        for r in range(n_restarts):
            if linf:
                x0 = tens(rng.uniform(-rho, rho, P))
            else:  # uniform in the ℓ₂ ball
                z = rng.standard_normal(P)
                x0 = tens(z / np.linalg.norm(z) * rho * rng.uniform() ** (1.0 / P))
            eta = 2.0 * rho
            fx, gx = fg(x0, f"restart {r} start")
            x1 = _project(x0 + eta * _step(gx, linf), rho, linf)
            f1, g1 = fg(x1, f"restart {r} iteration 1")
            fmax, xmax, gmax = (f1, x1, g1) if f1 > fx else (fx, x0, gx)
            x_prev, xk, fx, gx = x0, x1, f1, g1
            hist = [fmax - base, fmax - base]
            # the twin's count: is f(x1) above the best of {f(x0), f(x1)} (as printed, rounding included)
            n_incr, last_ck, eta_at_ck, fmax_at_ck = int(f1 > hist[0] + base), 0, eta, fmax
            for k in range(1, n_iter):
                zk = _project(xk + eta * _step(gx, linf), rho, linf)
                x_new = _project(xk + momentum * (zk - xk) + (1 - momentum) * (xk - x_prev), rho, linf)
                f_new, g_new = fg(x_new, f"restart {r} iteration {k + 1}")
                n_incr += f_new > fx
                x_prev, xk, fx, gx = xk, x_new, f_new, g_new
                if f_new > fmax:
                    fmax, xmax, gmax = f_new, x_new, g_new
                if k in checkpoints:
                    cond1 = n_incr < rho_frac * (k - last_ck)
                    cond2 = eta == eta_at_ck and fmax == fmax_at_ck
                    eta_at_ck, fmax_at_ck = eta, fmax
                    if cond1 or cond2:
                        eta /= 2.0
                        xk, x_prev, fx, gx = xmax.clone(), xmax.clone(), fmax, gmax
                    n_incr, last_ck = 0, k
                hist.append(fmax - base)
            hist = np.asarray(hist[:n_iter + 1])
            if fmax - base > best_val:
                best_val, best_gam, history = fmax - base, xmax, hist
    if best_val < 0:  # γ = 0 is feasible and attains 0
        best_val, best_gam = 0.0, torch.zeros_like(best_gam)
    return WorstCase(float(best_val), best_gam.detach().cpu(), history, base, iterates)


def sharpness(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, rho: float, *, kind: str = "worst-linf",
              m: int | None = None, adaptive: bool = True, logit_norm: bool = False, seed: int = 0,
              n_samples: int = 100, n_iter: int = 20, n_restarts: int = 1, loss_fn: Callable | None = None,
              params: Iterable | None = None, noise: str = "numpy", max_batch: int | None = None,
              return_gammas: bool = False, progress_bar=None) -> SharpnessResult:
    """Adaptive m-sharpness of ``model`` on (x, y) (see the module docstring for the definitions).

    Parameters
    ----------
    model : nn.Module mapping x to logits (or to any output ``loss_fn`` accepts).
    x, y : tensors with n points; cut into n // m consecutive batches of m points (m = n by default).
    rho : radius ρ > 0.
    kind : "avg-l2" (E over γ ~ N(0, ρ²I)), "worst-l2" or "worst-linf" (max over ‖γ‖_p ≤ ρ).
    adaptive : c = |w| (True) or c = 1 (False).
    logit_norm : apply eq. (7.5) to the logits before the loss.
    n_samples : MC draws per batch (average case). n_iter, n_restarts : Auto-PGD budget (worst case).
    loss_fn : ``loss_fn(output, y)`` → mean loss over the batch (default cross-entropy).
    params : the parameters to perturb (default: all that require grad).
    max_batch : evaluate L_S in chunks of at most this many points (memory); same value.

    Returns
    -------
    SharpnessResult
    """
    kind = check_choice("kind", kind, KINDS)
    n = int(x.shape[0])
    check_int("x", n, 1)
    m = n if m is None else check_int("m", m, 1, n)
    per, ses, bases, hists, gams = [], [], [], [], []
    for b in range(n // m):
        xb, yb = x[b * m:(b + 1) * m], y[b * m:(b + 1) * m]
        if kind == "avg-l2":
            a, s, base = avg_sharpness_batch(model, xb, yb, rho, adaptive=adaptive, n_samples=n_samples,
                                             seed=child_seed(seed, "sharpness/avg", b), loss_fn=loss_fn,
                                             logit_norm=logit_norm, params=params, noise=noise, max_batch=max_batch)
            per.append(a)
            ses.append(s)
        else:
            wc = worst_sharpness_batch(model, xb, yb, rho, norm=kind.split("-")[1], adaptive=adaptive,
                                       n_iter=n_iter, n_restarts=n_restarts, loss_fn=loss_fn,
                                       seed=child_seed(seed, "sharpness/max", b), logit_norm=logit_norm,
                                       params=params, max_batch=max_batch)
            per.append(wc.value)
            base = wc.base
            hists.append(wc.history)
            if return_gammas:
                gams.append(wc.gamma)
        bases.append(base)
        if progress_bar is not None:
            progress_bar.update(1)
    nb = len(per)
    se = float(np.sqrt(np.sum(np.square(ses))) / nb) if kind == "avg-l2" else None
    return SharpnessResult(kind, float(rho), bool(adaptive), bool(logit_norm), m, float(np.mean(per)), se, per,
                           ses if kind == "avg-l2" else None, bases, hists or None, gams or None)
