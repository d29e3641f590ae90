"""Sharpness-aware minimization (thesis Ch. 5) as a torch optimizer wrapper for users' own training
loops, and one SAM update :func:`sam_update` (in :mod:`toymodels.torch.sam_update`, re-exported here)
with m-SAM chunks (eq. 5.4), an independent ascent batch (eq. 5.21), BatchNorm statistics kept off the
perturbed pass, AMP (GradScaler or bfloat16 autocast), gradient clipping and DDP.

The SAM step with base step ``B`` (SGD, Adam, ...; the base optimizer's own update rule) is

    e(w) = ρ g / ‖g‖₂                  (``normalize=True``, Foret et al.; e = 0 when g = 0)
    e(w) = ρ g                         (``normalize=False``: the thesis's m-SAM / n-SAM / 1-SAM of
                                        eq. 5.4 and 5.8 are unnormalized)
    w ← B(w, clip(∇L_D(w + e(w))))

where g = ∇L_A(w) is the gradient of the ascent batch A (the descent batch D itself, a chunk of it,
or a separate batch), ‖·‖₂ is the norm over the parameters with a gradient of the groups with
``perturb=True`` (groups with ``perturb=False`` are neither perturbed nor counted in the norm: SAM-ON
perturbs only the normalization layers), and ``clip`` is the optional gradient clipping
(``max_grad_norm`` / ``clip_fn``, applied to the unscaled descent gradient just before ``B``).

Variants (all per parameter group unless said otherwise):

* ``adaptive=True`` (ASAM, Kwon et al. 2021): elementwise T_w = |w| + η (η = ``eta``; ``eta=None``
  is T_w = |w|, the elementwise adaptive sharpness of thesis Ch. 7 and davda54/sam's ``adaptive``;
  Kwon et al. use η = 0.01): e = ρ T_w² g / ‖T_w g‖₂ (normalized) or ρ T_w² g (unnormalized).
  Weights-only scaling (biases and normalization layers not scaled, as in ASAM's own code): put those
  in a group with ``adaptive=False``, e.g. ``weights, rest = split_weights(model)`` and
  ``SAM([{"params": weights}, {"params": rest, "adaptive": False}], SGD, adaptive=True, eta=0.01)``.
* ``ascent_steps=k`` (global; thesis Fig. 5.4, "projected gradient ascent" on ‖δ‖₂ ≤ ρ): δ₀ = 0,
  δⱼ = δⱼ₋₁ + (ρ/k) T² gⱼ / ‖T gⱼ‖₂ with gⱼ = ∇L_A(w + δⱼ₋₁) (without the normalization
  δⱼ = δⱼ₋₁ + (ρ/k) T² gⱼ), T = T_w at the unperturbed w (1 without ``adaptive``); e = δ_k. The
  projection onto the ball never acts: ‖T⁻¹δ_k‖ ≤ k·ρ/k = ρ by the triangle inequality. k = 1 is SAM.
* ``perturbation="random"`` (global; the baseline of thesis Fig. 5.1, "random perturbations prior to
  taking the gradient"): e = ρ T ξ/‖ξ‖₂ with ξ ~ N(0, I) over the perturbed parameters, drawn from
  ``generator`` (a ``torch.Generator``; the global torch RNG when None) parameter by parameter in
  group order, on the generator's device, in the parameter's dtype. No ascent gradient is computed:
  one forward/backward at w + e per update (ERM's cost). Needs ``normalize=True`` and k = 1.

Step sizes. The ascent step size ρ_t of a param group is ``group["ascent_lr"]`` when that is set
(the ``ascent_lr`` argument), else ``group["rho"]``. Neither is ever derived from ``group["lr"]``, so
learning-rate schedulers (which write ``group["lr"]`` only) leave the ascent alone: the ascent step
size is decoupled from γ_t, as ρ_t and γ_t are separate sequences in the thesis. ρ_t is scheduled by
writing ``group["rho"]`` (:meth:`SAM.set_rho`, with the values of
:func:`toymodels.torch.sam_schedule.rho_schedule`, or ``rho_t = c·γ_t`` written by the training loop for
``toymodels.dln``'s ``rho_schedule="same-as-lr"``); ``ascent_lr`` pins the ascent step to a constant
that such a ρ schedule does not touch (``ascent_lr=None`` restores the scheduled ρ).
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch

from ..errors import ConfigError, check_choice, check_int, check_nonneg, check_positive
from .sam_schedule import rho_schedule
from .sam_util import _unscale_finite, bn_frozen, has_batchnorm, split_weights

__all__ = ["SAM", "sam_update", "bn_frozen", "has_batchnorm", "split_weights", "rho_schedule", "PERTURBATIONS"]

PERTURBATIONS = ("gradient", "random")
_GROUP_KEYS = ("rho", "normalize", "adaptive", "eta", "ascent_lr", "perturb")


def check_sam_options(ascent_steps, perturbation, normalize=True) -> tuple[int, str]:
    """Validate the global options (``ascent_steps`` >= 1, ``perturbation`` in :data:`PERTURBATIONS`,
    the random perturbation only with one step and the normalized radius); returns them normalized."""
    k = check_int("ascent_steps", ascent_steps, 1)
    kind = check_choice("perturbation", perturbation, PERTURBATIONS)
    if kind == "random" and k != 1:
        raise ConfigError("ascent_steps", "must be 1 with perturbation='random' (no gradient ascent)", k)
    if kind == "random" and not normalize:
        raise ConfigError("perturbation", "'random' draws a direction of norm rho: needs normalize=True", kind)
    return k, kind


def _check_group(g: dict) -> None:
    check_nonneg("rho", g["rho"])
    if g.get("ascent_lr") is not None:
        check_nonneg("ascent_lr", g["ascent_lr"])
    if g.get("eta") is not None:
        check_positive("eta", g["eta"])


class SAM(torch.optim.Optimizer):
    """SAM wrapper around a base optimizer: ``first_step`` / ``second_step``, ``step(closure)``, or
    ``scaler.step(sam)`` after ``first_step`` (see the module docstring for the update and variants).

    Parameters
    ----------
    params : iterable of tensors or param-group dicts, or None
        As for any optimizer; a group dict may set ``rho``, ``normalize``, ``adaptive``, ``eta``,
        ``ascent_lr`` and ``perturb`` (False: the group is neither perturbed nor in the ascent norm).
        May be None when ``base_optimizer`` is an instance (its groups are used).
    base_optimizer : type or torch.optim.Optimizer
        An optimizer class, constructed as ``base_optimizer(self.param_groups, **base_kwargs)``, or an
        already-built instance (its param groups are shared, ``base_kwargs`` must be empty).
    rho : float
        Ascent step ρ >= 0 (the radius when normalized). Stored per group as ``group["rho"]``.
    normalize : bool
        ρ g/‖g‖ (True, Foret et al.) or ρ g (False, the thesis's eq. 5.4/5.8).
    adaptive : bool
        Elementwise T_w = |w| + η scaling of the ascent (ASAM).
    eta : float or None
        ASAM's η > 0; None: T_w = |w|.
    ascent_lr : float or None
        Constant ascent step used instead of ``group["rho"]`` (see the module docstring).
    ascent_steps : int
        k >= 1 normalized ascent steps of size ρ/k (k + 1 gradient evaluations per update).
    perturbation : {"gradient", "random"}
        Worst-case (gradient) ascent, or a random direction of norm ρ.
    generator : torch.Generator or None
        Source of the random directions (saved in :meth:`state_dict`).
    max_grad_norm : float or None
        Clip the descent gradient to this total ℓ₂ norm (``torch.nn.utils.clip_grad_norm_``) after
        unscaling and before the base step.
    clip_fn : callable or None
        ``clip_fn(params)`` (the parameters with a gradient) instead of / after ``max_grad_norm``; same place.
    eps : float
        Added to ‖g‖ in the normalization.

    Notes
    -----
    ``param_groups`` are the base optimizer's own dicts (with SAM's extra keys), and ``state`` is the
    base optimizer's state (momentum buffers, Adam moments), so lr schedulers and code reading
    ``opt.state`` act on both. ``state_dict`` holds the base optimizer's state dict and SAM's own
    options (ascent steps, perturbation, clipping, the generator's state); ``load_state_dict`` also
    takes a plain base-optimizer state dict (SAM's group keys then keep their current values). The
    weights saved by ``first_step`` are transient (checkpoint between updates, not inside one).

    ``step(closure)`` versus davda54/sam (the most popular PyTorch SAM). There, the user runs the first
    forward + backward at w, then ``optimizer.step(closure)`` runs first_step, the closure once (at
    w + e) and second_step. Here ``step(closure)`` runs the whole update itself: it zeroes the
    gradients, calls the closure at w, then k times first_step + closure (k = ``ascent_steps``; for the
    random perturbation only first_step + closure once), then the base step, and zeroes the gradients
    (set to None) again. Copying davda54's README loop here gives the same weights but one extra,
    discarded forward + backward per step (three passes instead of two, and BatchNorm statistics
    updated by all of them): step warns once when it finds non-zero gradients on entry. For the
    davda54 pattern use ``first_step`` / ``second_step`` (same names and meaning as there), which also
    take a GradScaler: ``first_step(scaler=s)`` unscales the ascent gradient (a non-finite one: no
    perturbation and the gradients are kept, so the descent gradients stay non-finite and the step is
    skipped), then either ``s.step(sam); s.update()`` or ``second_step(scaler=s)`` (which does both).
    ``step()`` without a closure after ``first_step`` is ``second_step()`` (that is what
    ``scaler.step(sam)`` calls: SAM sets ``_step_supports_amp_scaling`` and unscales, clips and skips
    non-finite steps itself, after restoring w). Under ``torch.autocast`` (bfloat16, no scaler needed)
    all of these work unchanged: the ascent norm is taken in float64 from the float32 gradients.
    """

    _step_supports_amp_scaling = True

    def __init__(self, params, base_optimizer, rho: float = 0.05, *, normalize: bool = True,
                 adaptive: bool = False, eta: float | None = None, ascent_lr: float | None = None,
                 ascent_steps: int = 1, perturbation: str = "gradient", generator: torch.Generator | None = None,
                 max_grad_norm: float | None = None, clip_fn: Callable | None = None, eps: float = 0.0,
                 **base_kwargs):
        defaults = dict(rho=float(rho), normalize=bool(normalize), adaptive=bool(adaptive),
                        eta=None if eta is None else float(eta),
                        ascent_lr=None if ascent_lr is None else float(ascent_lr), perturb=True)
        _check_group(dict(defaults, rho=rho, eta=eta, ascent_lr=ascent_lr))
        self.ascent_steps, self.perturbation = check_sam_options(ascent_steps, perturbation, normalize)
        if isinstance(base_optimizer, torch.optim.Optimizer):
            if base_kwargs:
                raise ConfigError("base_kwargs", "apply only when base_optimizer is a class, not an instance",
                                  sorted(base_kwargs))
            if params is not None:
                mine = {id(p) for p in _flatten_params(params)}
                theirs = {id(p) for g in base_optimizer.param_groups for p in g["params"]}
                if mine != theirs:
                    raise ConfigError("params", "must be None or exactly the parameters of the base optimizer")
            # add_param_group mutates and appends the given dicts: the groups are shared
            super().__init__(base_optimizer.param_groups, defaults)
            self.base_optimizer = base_optimizer
        else:
            super().__init__(params, defaults)
            self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        for g in self.param_groups:
            _check_group(g)
        self._share()
        self.defaults.update(self.base_optimizer.defaults)
        self.defaults.update(defaults)
        self.generator = generator
        self.max_grad_norm = None if max_grad_norm is None else check_positive("max_grad_norm", max_grad_norm)
        self.clip_fn = clip_fn
        self.eps = float(eps)
        self._old: dict[torch.Tensor, torch.Tensor] = {}
        self._pending = False       # first_step done, second_step not yet
        self._warned = False

    def _share(self) -> None:
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    # ------------------------------------------------------------------ ascent / descent
    @staticmethod
    def ascent_size(group: dict) -> float:
        """ρ_t of ``group``: ``group["ascent_lr"]`` if set, else ``group["rho"]``."""
        a = group.get("ascent_lr")
        return float(group["rho"] if a is None else a)

    def set_rho(self, rho: float) -> None:
        """Write ``group["rho"] = rho`` in every group (a ρ schedule calls this once per step)."""
        check_nonneg("rho", rho)
        for g in self.param_groups:
            g["rho"] = float(rho)

    def _perturbed(self):
        """(group, parameter) pairs of the groups with ``perturb=True``."""
        for g in self.param_groups:
            if g.get("perturb", True):
                for p in g["params"]:
                    yield g, p

    def _t(self, g: dict, p: torch.Tensor) -> torch.Tensor:
        """T_w = |w| + η at the unperturbed w (saved by the first ascent step, if any)."""
        t = self._old.get(p, p).abs()
        return t if g.get("eta") is None else t + g["eta"]

    @torch.no_grad()
    def grad_norm(self) -> torch.Tensor:
        """‖g‖₂ over the perturbed parameters with a gradient (‖T_w g‖₂ for adaptive groups), in float64."""
        norms = [torch.linalg.vector_norm((p.grad * self._t(g, p) if g["adaptive"] else p.grad).double())
                 for g, p in self._perturbed() if p.grad is not None]
        if not norms:
            return torch.zeros((), dtype=torch.float64)
        dev = norms[0].device
        return torch.linalg.vector_norm(torch.stack([n.to(dev) for n in norms]))

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False, scaler=None, *, generator: torch.Generator | None = None) -> bool:
        """One ascent step from the current gradients (those of the ascent batch at w, or at w + δⱼ₋₁ for
        the j-th of ``ascent_steps``): w ← w + δ-increment; the first call saves w for
        :meth:`second_step` / :meth:`restore`. With ``perturbation="random"`` the gradients are not used
        (and need not exist): w ← w + e with a fresh random direction from ``generator`` (default
        ``self.generator``).

        With an enabled GradScaler ``scaler`` the gradients are unscaled first; if one is not finite
        nothing moves and the gradients are kept (so the descent gradients accumulated onto them stay
        non-finite and ``scaler.step`` skips the update); pass ``zero_grad=True`` then, so that the next
        backward's scaled gradients are not added to these unscaled ones. Returns whether w was perturbed."""
        if scaler is not None and scaler.is_enabled() and self.perturbation == "gradient":
            params = [p for _, p in self._perturbed() if p.grad is not None]
            if not _unscale_finite(params, 1.0 / float(scaler.get_scale())):
                self._pending = True
                return False
        if self.perturbation == "random":
            self._random_ascent(self.generator if generator is None else generator)
        else:
            self._gradient_ascent()
        # autocast caches its low-precision copies of the weights until its region is left: without
        # this, a forward at w + e inside the same autocast region would still see w
        torch.clear_autocast_cache()
        self._pending = True
        if zero_grad:
            self.zero_grad()
        return True

    def _save(self, p: torch.Tensor) -> None:
        if p not in self._old:
            self._old[p] = p.detach().clone()

    def _gradient_ascent(self) -> None:
        k = self.ascent_steps
        need_norm = any(g["normalize"] and self.ascent_size(g) != 0.0 for g in self.param_groups
                        if g.get("perturb", True))
        # the norm stays a device tensor: no host sync per step
        norm = self.grad_norm() + self.eps if need_norm else None
        for g, p in self._perturbed():
            if p.grad is None:
                continue
            rho = self.ascent_size(g) / k
            self._save(p)
            if rho == 0.0:
                continue
            if g["normalize"]:
                # no ascent direction when the gradient vanishes (as toymodels.dln's kernel)
                nrm = norm.to(p.device)
                scale = torch.where(nrm > 0, rho / nrm, torch.zeros_like(nrm)).to(p.dtype)
            else:
                scale = rho
            e = p.grad * scale
            if g["adaptive"]:
                t = self._t(g, p)
                e = e * t * t
            p.add_(e)

    def _random_ascent(self, gen: torch.Generator | None) -> None:
        pairs = [(g, p) for g, p in self._perturbed() if p.requires_grad]
        xis = []
        for _, p in pairs:
            if gen is None:
                xis.append(torch.randn(p.shape, dtype=p.dtype, device=p.device))
            else:
                xis.append(torch.randn(p.shape, dtype=p.dtype, device=gen.device, generator=gen).to(p.device))
        if not pairs:
            return
        dev = pairs[0][1].device
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x.double()).to(dev) for x in xis]))
        for (g, p), xi in zip(pairs, xis):
            self._save(p)
            e = xi * (self.ascent_size(g) / norm).to(p.dtype).to(p.device)
            if g["adaptive"]:
                e = e * self._t(g, p)
            p.add_(e)

    @torch.no_grad()
    def restore(self) -> None:
        """w ← the weights saved by :meth:`first_step` (no base step)."""
        for p, old in self._old.items():
            p.copy_(old)
        if self._old:
            torch.clear_autocast_cache()
        self._old.clear()
        self._pending = False

    @torch.no_grad()
    def clip_(self) -> None:
        """Clip the current gradients (``max_grad_norm``, then ``clip_fn``); they must be unscaled."""
        if self.max_grad_norm is None and self.clip_fn is None:
            return
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        if self.clip_fn is not None:
            self.clip_fn(params)

    @torch.no_grad()
    def _descent(self):
        """Restore w; unscale (``scaler.step(sam)`` sets ``grad_scale`` / ``found_inf``), clip, base step
        unless a gradient was non-finite. Returns whether the base step ran."""
        self.restore()
        scale, found_inf = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        if found_inf is not None and float(found_inf) > 0:
            return False
        if scale is not None:
            for g in self.param_groups:
                for p in g["params"]:
                    if p.grad is not None:
                        p.grad.div_(scale.to(p.grad.device, p.grad.dtype))
        self.clip_()
        self.base_optimizer.step()
        torch.clear_autocast_cache()
        self._mark_stepped()
        return True

    def second_step(self, zero_grad: bool = False, scaler=None) -> None:
        """Restore w and take the base step with the current gradients (those at the perturbed point),
        clipped. With an enabled GradScaler: ``scaler.step(self)`` (unscale, clip, step unless
        non-finite) and ``scaler.update()``."""
        if scaler is not None and scaler.is_enabled():
            scaler.step(self)
            scaler.update()
        else:
            self._descent()
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """Without ``closure``: :meth:`second_step` (after :meth:`first_step`; used by ``scaler.step``).
        With ``closure`` (forward + backward on the batch, returning the loss): one whole SAM update, see
        the class docstring (closure calls: 1 + ascent_steps, or 1 for the random perturbation; each
        after the gradients were zeroed here). Returns the closure's loss at w (at w + e for the random
        perturbation).

        BatchNorm running statistics are updated by every closure call here; use :func:`sam_update`
        (or :func:`bn_frozen` inside the closure's later calls) to keep the perturbed passes out of them."""
        if closure is None:
            if not self._pending:
                raise ConfigError("closure", "is needed by SAM.step (forward + backward, returning the loss) "
                                  "unless first_step() was called; or call first_step() / second_step()")
            return self._descent()
        self._warn_davda54()
        self.zero_grad()
        if self.perturbation == "random":
            self.first_step()
            with torch.enable_grad():
                loss = closure()
        else:
            with torch.enable_grad():
                loss = closure()
            for _ in range(self.ascent_steps):
                self.first_step(zero_grad=True)
                with torch.enable_grad():
                    closure()
        self._descent()
        self.zero_grad()
        return loss

    def _warn_davda54(self) -> None:
        if self._warned:
            return
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if grads and bool(torch.stack([gr.ne(0).any().to(grads[0].device) for gr in grads]).any()):
            self._warned = True
            warnings.warn("SAM.step(closure) found gradients already computed: it calls the closure itself at w "
                          "and at w + e and discards them (davda54/sam's README pattern costs one extra forward + "
                          "backward here). Either drop your own first backward, or call first_step()/second_step().",
                          stacklevel=2)

    def _mark_stepped(self) -> None:
        # lr schedulers attached to this wrapper look for this flag (set by the wrapped ``step``) to
        # check that the optimizer stepped before them; the base step may bypass ``self.step``
        self._opt_called = True

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """``{"base_optimizer": <the base optimizer's state dict, its groups carrying SAM's keys>,
        "sam": {eps, ascent_steps, perturbation, max_grad_norm, generator (its state or None)}}``."""
        gen = None if self.generator is None else self.generator.get_state()
        return {"base_optimizer": self.base_optimizer.state_dict(),
                "sam": {"eps": self.eps, "ascent_steps": self.ascent_steps, "perturbation": self.perturbation,
                        "max_grad_norm": self.max_grad_norm, "generator": gen}}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load :meth:`state_dict`'s output, or a plain base-optimizer state dict (``state`` and
        ``param_groups``; SAM's options and group keys then keep their current values)."""
        if "base_optimizer" in state_dict:
            base_sd = state_dict["base_optimizer"]
            own = state_dict.get("sam", {"eps": state_dict.get("sam_eps", self.eps)})
        elif {"state", "param_groups"} <= set(state_dict):
            base_sd, own = state_dict, {}
        else:
            raise ConfigError("state_dict", "must be SAM.state_dict() or a base optimizer's state dict",
                              sorted(state_dict))
        kept = [{k: g[k] for k in _GROUP_KEYS if k in g} for g in self.param_groups]
        self.base_optimizer.load_state_dict(base_sd)
        # the base optimizer rebuilt its group dicts and its state: share them again
        self._share()
        for g, keep in zip(self.param_groups, kept):
            for k, v in keep.items():
                g.setdefault(k, v)
        self.eps = float(own.get("eps", self.eps))
        self.ascent_steps, self.perturbation = check_sam_options(
            own.get("ascent_steps", self.ascent_steps), own.get("perturbation", self.perturbation),
            all(g["normalize"] for g in self.param_groups))
        self.max_grad_norm = own.get("max_grad_norm", self.max_grad_norm)
        if own.get("generator") is not None and self.generator is not None:
            self.generator.set_state(own["generator"].cpu())
        self._old.clear()
        self._pending = False

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)


def _flatten_params(params) -> list:
    out = []
    for p in params:
        if isinstance(p, dict):
            ps = p["params"]
            out.extend([ps] if isinstance(ps, torch.Tensor) else list(ps))
        else:
            out.append(p)
    return out


from .sam_update import sam_update  # noqa: E402  (sam_update imports SAM from here)
