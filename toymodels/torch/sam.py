"""Sharpness-aware minimization (thesis Ch. 5) as a torch optimizer wrapper, and one SAM update
:func:`sam_update` with m-SAM chunks (eq. 5.4), an independent ascent batch (eq. 5.21), BatchNorm
statistics kept off the perturbed pass, AMP (GradScaler) and DDP.

The SAM step with base step ``B`` (SGD, Adam, ...; the base optimizer's own update rule) is

    e(w) = ρ g / ‖g‖₂                  (``normalize=True``, Foret et al.; e = 0 when g = 0)
    e(w) = ρ g                         (``normalize=False``: the thesis's m-SAM / n-SAM / 1-SAM of
                                        eq. 5.4 and 5.8 are unnormalized)
    w ← B(w, ∇L_D(w + e(w)))

where g = ∇L_A(w) is the gradient of the ascent batch A (the descent batch D itself, a chunk of it,
or a separate batch) and ‖·‖₂ is the norm over all parameters of the optimizer that have a
gradient. With ``adaptive=True`` (ASAM, Kwon et al.) the ascent is elementwise scaled by T_w = |w|:
e = ρ T_w² g / ‖T_w g‖₂ (normalized) or ρ T_w² g (unnormalized).

Step sizes. The ascent step size ρ_t of a param group is ``group["ascent_lr"]`` when that is set
(the ``ascent_lr`` argument), else ``group["rho"]``. Neither is ever derived from ``group["lr"]``, so
learning-rate schedulers (which write ``group["lr"]`` only) leave the ascent alone: the ascent step
size is decoupled from γ_t, as ρ_t and γ_t are separate sequences in the thesis. ρ_t is scheduled by
writing ``group["rho"]`` (e.g. :meth:`SAM.set_rho`, or ``rho_t = c·γ_t`` written by the training loop for
``toymodels.dln``'s ``rho_schedule="same-as-lr"``); ``ascent_lr`` pins the ascent step to a constant
that such a ρ schedule does not touch (``ascent_lr=None`` restores the scheduled ρ).
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError, check_nonneg

__all__ = ["SAM", "sam_update", "bn_frozen", "has_batchnorm"]


class SAM(torch.optim.Optimizer):
    """SAM wrapper around a base optimizer (``first_step`` / ``second_step`` / closure ``step``).

    Parameters
    ----------
    params : iterable of tensors or param-group dicts, or None
        As for any optimizer. May be None when ``base_optimizer`` is an instance (its groups are used).
    base_optimizer : type or torch.optim.Optimizer
        An optimizer class, constructed as ``base_optimizer(self.param_groups, **base_kwargs)``, or an
        already-built instance (its param groups are shared, ``base_kwargs`` must be empty).
    rho : float
        Ascent step ρ >= 0 (the radius when normalized). Stored per group as ``group["rho"]``.
    normalize : bool
        ρ g/‖g‖ (True, Foret et al.) or ρ g (False, the thesis's eq. 5.4/5.8).
    adaptive : bool
        Elementwise |w| scaling of the ascent (ASAM).
    ascent_lr : float or None
        Constant ascent step used instead of ``group["rho"]`` (see the module docstring).

    Notes
    -----
    ``param_groups`` are the base optimizer's own dicts (with the extra keys ``rho``, ``normalize``,
    ``adaptive``, ``ascent_lr``), so lr schedulers attached to either object act on both.
    ``state_dict`` holds the base optimizer's state and these groups; the weights saved by
    ``first_step`` are transient and not part of it (checkpoint between updates, not inside one).
    """

    def __init__(self, params, base_optimizer, rho: float = 0.05, *, normalize: bool = True,
                 adaptive: bool = False, ascent_lr: float | None = None, eps: float = 0.0, **base_kwargs):
        check_nonneg("rho", rho)
        if ascent_lr is not None:
            check_nonneg("ascent_lr", ascent_lr)
        defaults = dict(rho=float(rho), normalize=bool(normalize), adaptive=bool(adaptive),
                        ascent_lr=None if ascent_lr is None else float(ascent_lr))
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
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)
        self.defaults.update(defaults)
        self.eps = float(eps)
        self._old: dict[torch.Tensor, torch.Tensor] = {}

    # ------------------------------------------------------------------ ascent / descent
    @staticmethod
    def ascent_size(group: dict) -> float:
        """ρ_t of ``group``: ``group["ascent_lr"]`` if set, else ``group["rho"]``."""
        a = group.get("ascent_lr")
        return float(group["rho"] if a is None else a)

    def set_rho(self, rho: float) -> None:
        """Write ``group["rho"] = rho`` in every group (a ρ schedule calls this once per step)."""
        for g in self.param_groups:
            g["rho"] = float(rho)

    @torch.no_grad()
    def grad_norm(self) -> torch.Tensor:
        """‖g‖₂ over all parameters with a gradient (‖|w| ⊙ g‖₂ for adaptive groups), in float64."""
        norms = []
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                v = p.grad.abs() * p.abs() if g["adaptive"] else p.grad
                norms.append(torch.linalg.vector_norm(v.double()))
        if not norms:
            return torch.zeros((), dtype=torch.float64)
        dev = norms[0].device
        return torch.linalg.vector_norm(torch.stack([n.to(dev) for n in norms]))

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """w ← w + e(w) from the current gradients (which must be those of the ascent batch at w);
        saves w for :meth:`second_step` / :meth:`restore`."""
        need_norm = any(g["normalize"] and self.ascent_size(g) != 0.0 for g in self.param_groups)
        # the norm stays a device tensor: no host sync per step
        norm = self.grad_norm() + self.eps if need_norm else None
        for g in self.param_groups:
            rho = self.ascent_size(g)
            for p in g["params"]:
                if p.grad is None:
                    continue
                self._old[p] = p.detach().clone()
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
                    e = e * p * p
                p.add_(e)
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def restore(self) -> None:
        """w ← the weights saved by :meth:`first_step` (no base step)."""
        for p, old in self._old.items():
            p.copy_(old)
        self._old.clear()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore w and take the base step with the current gradients (those at the perturbed point)."""
        self.restore()
        self.base_optimizer.step()
        self._mark_stepped()
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """One SAM update. ``closure`` runs forward + backward on the batch and returns the loss; it is
        called twice, at w and at w + e(w), each time after the gradients were zeroed here (so it need
        not zero them). Returns the closure's loss at w.

        BatchNorm running statistics are updated by both closure calls here; use :func:`sam_update`
        (or :func:`bn_frozen` inside the closure's second call) to keep the perturbed pass out of them."""
        if closure is None:
            raise ConfigError("closure", "is needed by SAM.step (forward + backward, returning the loss); or "
                              "call first_step() / second_step() yourself")
        with torch.enable_grad():
            self.zero_grad()
            loss = closure()
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            closure()
        self.second_step()
        return loss

    def _mark_stepped(self) -> None:
        # lr schedulers attached to this wrapper look for this flag (set by the wrapped ``step``) to
        # check that the optimizer stepped before them; the base step may bypass ``self.step``
        self._opt_called = True

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The base optimizer's state dict (its param groups carry SAM's keys) under ``"base_optimizer"``."""
        return {"base_optimizer": self.base_optimizer.state_dict(), "sam_eps": self.eps}

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_optimizer.load_state_dict(state_dict["base_optimizer"])
        # the base optimizer rebuilt its group dicts: share them again
        self.param_groups = self.base_optimizer.param_groups
        self.eps = float(state_dict.get("sam_eps", self.eps))
        self._old.clear()

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


# ---------------------------------------------------------------------- BatchNorm
_BN = nn.modules.batchnorm._BatchNorm


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer that tracks running statistics."""
    return any(isinstance(m, _BN) and m.track_running_stats for m in model.modules())


@contextlib.contextmanager
def bn_frozen(model: nn.Module):
    """Inside the block, forward passes in train mode still normalize with batch statistics but leave
    every BatchNorm's ``running_mean``, ``running_var`` and ``num_batches_tracked`` exactly as they were
    (saved on entry, restored on exit: exact even with ``momentum=None`` or non-finite batch stats)."""
    saved = []
    for mod in model.modules():
        if isinstance(mod, _BN) and mod.track_running_stats:
            saved.append((mod, [None if t is None else t.detach().clone() for t in
                                (mod.running_mean, mod.running_var, mod.num_batches_tracked)]))
    try:
        yield
    finally:
        with torch.no_grad():
            for mod, (rm, rv, nbt) in saved:
                for cur, old in ((mod.running_mean, rm), (mod.running_var, rv), (mod.num_batches_tracked, nbt)):
                    if cur is not None and old is not None:
                        cur.copy_(old)


# ---------------------------------------------------------------------- one update
def _is_ddp(model) -> bool:
    return isinstance(model, nn.parallel.DistributedDataParallel)


def _params(opt: SAM) -> list[torch.Tensor]:
    return [p for g in opt.param_groups for p in g["params"]]


def _zero_grads(params) -> None:
    # in place (keeps DDP's bucket views)
    for p in params:
        if p.grad is not None:
            p.grad.zero_()


@torch.no_grad()
def _unscale_finite(params, inv_scale: float) -> bool:
    """Multiply the gradients by ``inv_scale``; return whether all are finite."""
    flags = []
    for p in params:
        if p.grad is not None:
            if inv_scale != 1.0:
                p.grad.mul_(inv_scale)
            flags.append(torch.isfinite(p.grad).all().to(params[0].device))
    return bool(torch.stack(flags).all()) if flags else True


def sam_update(model: nn.Module, optimizer: SAM, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, *,
               m: int | None = None, ascent_x: torch.Tensor | None = None,
               ascent_y: torch.Tensor | None = None, scaler=None, autocast_dtype: torch.dtype | None = None
               ) -> float:
    """One SAM update of ``model`` on the batch (x, y); returns the loss at w (see below).

    With b = len(x) and ``loss_fn(model(x), y)`` the *mean* loss of a batch:

    * m-SAM (eq. 5.4 per chunk; ``m`` divides b, default m = b): the batch is split into b/m
      consecutive chunks G; for each, the ascent uses G's own gradient g_G = ∇L_G(w) and the descent
      gradient of G is taken at its own point w + e_G(w); the base step uses their average
      (1/(b/m)) Σ_G ∇L_G(w + e_G(w)) = (1/b) Σ_G Σ_{i∈G} ∇ℓᵢ(w + e_G(w)). m = 1 is 1-SAM and m = b
      is plain (n-)SAM. Returned loss: the mean of the chunk losses at w (= L_batch(w)).
    * independent ascent batch (eq. 5.21; ``ascent_x``, ``ascent_y`` given, m must be None or b): e from
      ∇L_A(w) on (ascent_x, ascent_y), descent ∇L_D(w + e) on (x, y). Returned loss: L_A(w).

    BatchNorm: running statistics are updated only by forward passes at the unperturbed w; every pass
    at w + e runs under :func:`bn_frozen`. With one chunk (m = b, or eq. 5.21) that is the clean
    forward of the ascent batch (the batch itself for SAM), so the statistics end exactly as after
    one plain forward of that batch. With several chunks all passes are frozen and one extra no-grad
    forward of the whole clean batch at w updates them (only if the model has BatchNorm), so m-SAM
    also ends with the statistics of one plain forward of the batch.

    AMP: with a ``torch.amp.GradScaler`` the forwards run under ``torch.autocast`` when the scaler is
    enabled (``autocast_dtype``, default float16 on cuda and bfloat16 on cpu) and the losses are
    scaled; the ascent gradients are unscaled before their norm is taken, and a non-finite ascent
    gradient skips the whole update (weights and optimizer state unchanged, the scale is backed off
    as ``scaler.update()`` would do). The descent goes through ``scaler.unscale_`` / ``scaler.step``
    (skipped on inf) / ``scaler.update`` on the base optimizer.

    DDP: if ``model`` is a ``DistributedDataParallel``, every ascent backward runs under
    ``model.no_sync()``: each replica ascends with its own local gradient (per-replica m-sharpness, as
    in the original SAM implementations; ‖g‖ is the local norm). Descent backwards of all chunks but
    the last accumulate under ``no_sync``; the last one all-reduces the accumulated descent gradient.
    """
    b, m, independent = _check_update_args(optimizer, x, m, ascent_x, ascent_y)
    u = _Update(model, optimizer, loss_fn, scaler, autocast_dtype, x.device.type)
    optimizer.zero_grad()
    if independent or m == b:
        xa, ya = (ascent_x, ascent_y) if independent else (x, y)
        clean_loss, finite = _single_ascent(u, x, y, xa, ya)
    else:
        clean_loss, finite = _chunked_ascents(u, x, y, m)
    if not finite:
        return u.skip(clean_loss)
    optimizer.restore()
    if not independent and m < b and has_batchnorm(model):
        with torch.no_grad(), u.autocast():
            model(x)
    u.base_step()
    return float(clean_loss)


def _check_update_args(optimizer, x, m, ascent_x, ascent_y) -> tuple[int, int, bool]:
    if not isinstance(optimizer, SAM):
        raise TypeError(f"sam_update needs a SAM optimizer, got {type(optimizer).__name__}")
    b = int(x.shape[0])
    independent = ascent_x is not None or ascent_y is not None
    if independent and (ascent_x is None or ascent_y is None):
        raise ConfigError("ascent_x", "and ascent_y must be given together (eq. 5.21)")
    m = b if m is None else int(m)
    if not 1 <= m <= b or b % m:
        raise ConfigError("m", f"must be an integer in [1, {b}] dividing the batch size {b}", m)
    if independent and m != b:
        raise ConfigError("m", "must be the batch size with an independent ascent batch (eq. 5.21): m-SAM chunks "
                               "and eq. 5.21 exclude each other", m)
    return b, m, independent


class _Update:
    """The passes of one :func:`sam_update`: forward/backward with BatchNorm frozen or not, DDP gradient
    sync or not, under autocast and loss scaling when AMP is on; the ascent's finiteness check; the
    skipped update; the base step."""

    def __init__(self, model, optimizer: SAM, loss_fn, scaler, autocast_dtype, dev_type: str):
        self.model, self.optimizer, self.loss_fn, self.scaler = model, optimizer, loss_fn, scaler
        self.params = _params(optimizer)
        self.amp = scaler is not None and scaler.is_enabled()
        dt = autocast_dtype or (torch.float16 if dev_type == "cuda" else torch.bfloat16)
        self.autocast = ((lambda: torch.autocast(device_type=dev_type, dtype=dt)) if self.amp
                         else contextlib.nullcontext)
        self.no_sync = model.no_sync if _is_ddp(model) else contextlib.nullcontext

    def forward_backward(self, xb, yb, *, frozen: bool, sync: bool) -> torch.Tensor:
        # DDP decides in the forward whether the backward all-reduces: no_sync wraps both
        with (bn_frozen(self.model) if frozen else contextlib.nullcontext()), \
                (contextlib.nullcontext() if sync else self.no_sync()):
            with self.autocast():
                loss = self.loss_fn(self.model(xb), yb)
            (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        return loss.detach()

    def ascent(self, xb, yb, *, frozen: bool) -> tuple[torch.Tensor, bool]:
        """The ascent pass: (loss, whether the unscaled gradients are finite)."""
        loss = self.forward_backward(xb, yb, frozen=frozen, sync=False)
        if self.scaler is None:
            return loss, True
        inv = 1.0 / float(self.scaler.get_scale()) if self.amp else 1.0
        return loss, _unscale_finite(self.params, inv)

    def skip(self, loss) -> float:
        """Non-finite ascent gradient: nothing moves; back the scale off like scaler.update() would."""
        self.optimizer.zero_grad()
        if self.amp:
            self.scaler.update(float(self.scaler.get_scale()) * self.scaler.get_backoff_factor())
        return float(loss)

    def base_step(self) -> None:
        base = self.optimizer.base_optimizer
        if self.scaler is not None:
            self.scaler.unscale_(base)
            self.scaler.step(base)
            self.scaler.update()
        else:
            base.step()
        self.optimizer._mark_stepped()


def _single_ascent(u: _Update, x, y, xa, ya) -> tuple[torch.Tensor, bool]:
    """SAM (one chunk) or eq. 5.21: ascend on (xa, ya) at w, then the descent gradient of (x, y) at w + e.
    Returns (L_A(w), finite)."""
    loss, finite = u.ascent(xa, ya, frozen=False)
    if finite:
        u.optimizer.first_step(zero_grad=True)
        u.forward_backward(x, y, frozen=True, sync=True)
    return loss, finite


def _chunked_ascents(u: _Update, x, y, m: int) -> tuple[torch.Tensor, bool]:
    """m-SAM: each chunk ascends with its own gradient and adds its descent gradient at its own point;
    the sum is averaged over the b/m chunks. Returns (mean chunk loss at w, finite)."""
    params, k = u.params, x.shape[0] // m
    acc: list | None = None     # descent-gradient sums of the chunks done so far
    losses = []
    for c in range(k):
        xc, yc = x[c * m:(c + 1) * m], y[c * m:(c + 1) * m]
        if c > 0:
            acc = [None if p.grad is None else p.grad.detach().clone() for p in params]
        _zero_grads(params)
        loss_c, finite = u.ascent(xc, yc, frozen=True)
        losses.append(loss_c)
        if not finite:   # w is clean here: restored after the previous chunk
            return torch.stack(losses).mean(), False
        u.optimizer.first_step(zero_grad=False)
        with torch.no_grad():   # the previous chunks' descent sums back, then this chunk's on top
            for i, p in enumerate(params):
                if p.grad is not None:
                    a = None if acc is None else acc[i]
                    p.grad.zero_() if a is None else p.grad.copy_(a)
        u.forward_backward(xc, yc, frozen=True, sync=(c == k - 1))
        if c < k - 1:
            u.optimizer.restore()
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.grad.div_(k)
    return torch.stack(losses).mean(), True
