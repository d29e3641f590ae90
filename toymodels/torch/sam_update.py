"""One SAM update of a model on a batch, :func:`sam_update` (the SAM optimizer is
:class:`toymodels.torch.sam.SAM`; see that module for the update rule and its variants)."""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError, check_positive
from .sam import SAM, _unscale_finite, bn_frozen, check_sam_options, has_batchnorm

__all__ = ["sam_update"]


def sam_update(model: nn.Module, optimizer: SAM, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, *,
               m: int | None = None, ascent_x: torch.Tensor | None = None,
               ascent_y: torch.Tensor | None = None, scaler=None, autocast_dtype: torch.dtype | None = None,
               ascent_steps: int | None = None, perturbation: str | None = None,
               generator: torch.Generator | None = None, max_grad_norm: float | None = None,
               clip_fn: Callable | None = None, return_logits: bool = False):
    """One SAM update of ``model`` on the batch (x, y); returns the loss of the first pass (see below),
    and with ``return_logits`` ``(loss, logits)``: the detached logits of that pass (for the training
    accuracy), in the order of its inputs.

    With b = len(x) and ``loss_fn(model(x), y)`` the *mean* loss of a batch:

    * m-SAM (eq. 5.4 per chunk; ``m`` divides b, default m = b): the batch is split into b/m
      consecutive chunks G; for each, the ascent uses G's own gradient g_G = ∇L_G(w) and the descent
      gradient of G is taken at its own point w + e_G(w); the base step uses their average
      (1/(b/m)) Σ_G ∇L_G(w + e_G(w)) = (1/b) Σ_G Σ_{i∈G} ∇ℓᵢ(w + e_G(w)). m = 1 is 1-SAM and m = b
      is plain (n-)SAM. Returned loss: the mean of the chunk losses at w (= L_batch(w)); logits: those
      of the batch at w.
    * independent ascent batch (eq. 5.21; ``ascent_x``, ``ascent_y`` given): e from ∇L_A(w) on
      (ascent_x, ascent_y), descent ∇L_D(w + e) on (x, y). Returned loss and logits: those of the ascent
      batch at w. With m < b (the ascent batch must then have b examples too), m-SAM pairs the chunks:
      chunk G of the ascent batch A gives e_G = e(∇L_{A_G}(w)), and chunk G of the descent batch D
      its descent gradient there; the base step uses (1/(b/m)) Σ_G ∇L_{D_G}(w + e_G) (eq. 5.21 per
      chunk; m = b is eq. 5.21). Returned loss: the mean ascent-chunk loss at w (= L_A(w)).
    * ``ascent_steps`` = k > 1 (default: the optimizer's): each ascent (per chunk) takes k normalized
      steps of size ρ/k (k + 1 forward/backward passes per chunk; :class:`SAM`).
    * ``perturbation="random"`` (default: the optimizer's): per chunk a random direction of norm ρ from
      ``generator`` (default: the optimizer's), one forward/backward at w + e_G; returned loss and logits
      are those at the perturbed points. Not with an independent ascent batch.

    BatchNorm: running statistics are updated only by forward passes at the unperturbed w; every pass
    at w + e runs under :func:`bn_frozen`. With one gradient chunk (m = b, or eq. 5.21) that is the
    clean forward of the ascent batch (the batch itself for SAM), so the statistics end exactly as
    after one plain forward of that batch. With several chunks, or the random perturbation, all
    passes are frozen and one extra no-grad forward of the whole clean ascent batch at w (the batch
    itself without an independent one) updates them (only if the model has BatchNorm), so these also
    end with the statistics of one plain forward of that batch, as with one chunk.

    AMP: the forwards run under ``torch.autocast`` when ``autocast_dtype`` is given (bfloat16 needs no
    scaler) or a ``torch.amp.GradScaler`` is enabled (then ``autocast_dtype`` defaults to float16 on
    cuda, bfloat16 on cpu) and the losses are scaled; the ascent gradients are unscaled before their
    norm is taken, and a non-finite ascent gradient skips the whole update (weights and optimizer state
    unchanged, the scale is backed off as ``scaler.update()`` would do). The descent goes through
    ``scaler.unscale_`` → clipping → ``scaler.step`` (skipped on inf) → ``scaler.update`` on the base
    optimizer.

    Clipping: ``max_grad_norm`` / ``clip_fn`` (default: the optimizer's) act on the averaged, unscaled
    descent gradient, right before the base step (the ascent direction is not clipped).

    DDP: if ``model`` is a ``DistributedDataParallel``, every ascent backward runs under
    ``model.no_sync()``: each replica ascends with its own local gradient (per-replica m-sharpness, as
    in the original SAM implementations; ‖g‖ is the local norm). Descent backwards of all chunks but
    the last accumulate under ``no_sync``; the last one all-reduces the accumulated descent gradient.
    With the random perturbation each replica draws from its own ``generator`` (its own direction).
    """
    b, m, independent = _check_update_args(optimizer, x, m, ascent_x, ascent_y)
    with _overrides(optimizer, ascent_steps, perturbation, max_grad_norm, clip_fn):
        if independent and optimizer.perturbation == "random":
            raise ConfigError("perturbation", "'random' uses no ascent batch (ascent_x, ascent_y)")
        u = _Update(model, optimizer, loss_fn, scaler, autocast_dtype, x.device.type, generator)
        optimizer.zero_grad()
        if optimizer.perturbation == "random":
            loss, logits, finite = _random_chunks(u, x, y, m)
        elif m == b:
            loss, logits, finite = _single_ascent(u, x, y, *((ascent_x, ascent_y) if independent else (x, y)))
        else:
            loss, logits, finite = _chunked_ascents(u, x, y, m, *((ascent_x, ascent_y) if independent else (x, y)))
        if not finite:
            loss = u.skip(loss)
        else:
            optimizer.restore()
            if (optimizer.perturbation == "random" or m < b) and has_batchnorm(model):
                with torch.no_grad(), u.autocast():
                    model(ascent_x if independent else x)
            u.base_step()
    return (float(loss), logits) if return_logits else float(loss)


@contextlib.contextmanager
def _overrides(opt: SAM, ascent_steps, perturbation, max_grad_norm, clip_fn):
    """The optimizer's options, replaced by the given (non-None) ones for the duration of one update."""
    new = {}
    if ascent_steps is not None or perturbation is not None:
        k, kind = check_sam_options(opt.ascent_steps if ascent_steps is None else ascent_steps,
                                    opt.perturbation if perturbation is None else perturbation,
                                    all(g["normalize"] for g in opt.param_groups))
        new.update(ascent_steps=k, perturbation=kind)
    if max_grad_norm is not None:
        new["max_grad_norm"] = check_positive("max_grad_norm", max_grad_norm)
    if clip_fn is not None:
        new["clip_fn"] = clip_fn
    old = {k: getattr(opt, k) for k in new}
    for k, v in new.items():
        setattr(opt, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(opt, k, v)


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
    if independent and m != b and int(ascent_x.shape[0]) != b:
        raise ConfigError("ascent_x", f"must have the {b} examples of the descent batch with m-SAM chunks (m = {m}): "
                                      "chunk G of the ascent batch perturbs for chunk G of the descent batch",
                          int(ascent_x.shape[0]))
    return b, m, independent


def _is_ddp(model) -> bool:
    return isinstance(model, nn.parallel.DistributedDataParallel)


def _zero_grads(params) -> None:
    # in place (keeps DDP's bucket views)
    for p in params:
        if p.grad is not None:
            p.grad.zero_()


class _Update:
    """The passes of one :func:`sam_update`: forward/backward with BatchNorm frozen or not, DDP gradient
    sync or not, under autocast and loss scaling when AMP is on; the ascent's finiteness check; the
    skipped update; the base step."""

    def __init__(self, model, optimizer: SAM, loss_fn, scaler, autocast_dtype, dev_type: str, generator):
        self.model, self.optimizer, self.loss_fn, self.scaler = model, optimizer, loss_fn, scaler
        self.generator = generator
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.amp = scaler is not None and scaler.is_enabled()
        dt = autocast_dtype or (torch.float16 if dev_type == "cuda" else torch.bfloat16)
        self.autocast = ((lambda: torch.autocast(device_type=dev_type, dtype=dt))
                         if self.amp or autocast_dtype is not None else contextlib.nullcontext)
        self.no_sync = model.no_sync if _is_ddp(model) else contextlib.nullcontext

    def forward_backward(self, xb, yb, *, frozen: bool, sync: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits), detached."""
        # DDP decides in the forward whether the backward all-reduces: no_sync wraps both
        with (bn_frozen(self.model) if frozen else contextlib.nullcontext()), \
                (contextlib.nullcontext() if sync else self.no_sync()):
            with self.autocast():
                logits = self.model(xb)
                loss = self.loss_fn(logits, yb)
            (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        return loss.detach(), logits.detach()

    def ascent(self, xb, yb, *, frozen: bool) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """An ascent pass: (loss, logits, whether the unscaled gradients are finite)."""
        loss, logits = self.forward_backward(xb, yb, frozen=frozen, sync=False)
        if self.scaler is None:
            return loss, logits, True
        inv = 1.0 / float(self.scaler.get_scale()) if self.amp else 1.0
        return loss, logits, _unscale_finite(self.params, inv)

    def more_ascent_steps(self, xb, yb, *, zero) -> bool:
        """Ascent steps 1..k (the gradient at w is there): first_step, and for j < k the gradient at
        w + δⱼ; ``zero`` zeroes the gradients in place before each later pass. Whether all were finite
        (if not, w is restored)."""
        k = self.optimizer.ascent_steps
        for j in range(k):
            self.optimizer.first_step(zero_grad=not zero)
            if j == k - 1:
                break
            if zero:
                _zero_grads(self.params)
            if not self.ascent(xb, yb, frozen=True)[2]:
                self.optimizer.restore()
                return False
        return True

    def skip(self, loss) -> float:
        """Non-finite ascent gradient: nothing moves; back the scale off like scaler.update() would."""
        self.optimizer.zero_grad()
        if self.amp:
            self.scaler.update(float(self.scaler.get_scale()) * self.scaler.get_backoff_factor())
        return float(loss)

    def base_step(self) -> None:
        """Unscale → clip → base step (skipped on inf by the scaler) → scaler update."""
        opt = self.optimizer
        base = opt.base_optimizer
        if self.scaler is not None:
            self.scaler.unscale_(base)
            opt.clip_()
            self.scaler.step(base)
            self.scaler.update()
        else:
            opt.clip_()
            base.step()
        opt._mark_stepped()


def _single_ascent(u: _Update, x, y, xa, ya):
    """SAM (one chunk) or eq. 5.21: ascend on (xa, ya) from w, then the descent gradient of (x, y) at
    w + e. Returns (L_A(w), its logits, finite)."""
    loss, logits, finite = u.ascent(xa, ya, frozen=False)
    if finite and u.more_ascent_steps(xa, ya, zero=False):
        u.forward_backward(x, y, frozen=True, sync=True)
        return loss, logits, True
    return loss, logits, False


def _chunked_ascents(u: _Update, x, y, m: int, xa, ya):
    """m-SAM: chunk G of (xa, ya) (the batch itself for SAM, the ascent batch for eq. 5.21) ascends with
    its own gradient, and chunk G of (x, y) adds its descent gradient at that point; the sum is averaged
    over the b/m chunks. Returns (mean ascent-chunk loss at w, their logits at w, finite)."""
    params, k = u.params, x.shape[0] // m
    acc: list | None = None     # descent-gradient sums of the chunks done so far
    losses, logits = [], []
    for c in range(k):
        xc, yc = x[c * m:(c + 1) * m], y[c * m:(c + 1) * m]
        xac, yac = xa[c * m:(c + 1) * m], ya[c * m:(c + 1) * m]
        if c > 0:
            acc = [None if p.grad is None else p.grad.detach().clone() for p in params]
        _zero_grads(params)
        loss_c, logits_c, finite = u.ascent(xac, yac, frozen=True)
        losses.append(loss_c)
        logits.append(logits_c)
        # w is clean when not finite: restored after the previous chunk, or by more_ascent_steps
        if not finite or not u.more_ascent_steps(xac, yac, zero=True):
            return torch.stack(losses).mean(), torch.cat(logits), False
        _put_back(params, acc)
        u.forward_backward(xc, yc, frozen=True, sync=(c == k - 1))
        if c < k - 1:
            u.optimizer.restore()
    _average(params, k)
    return torch.stack(losses).mean(), torch.cat(logits), True


def _random_chunks(u: _Update, x, y, m: int):
    """The random perturbation: per chunk a fresh direction, the descent gradient at w + e_G, averaged
    over the chunks (one chunk: m = b). Returns (mean chunk loss at w + e_G, logits there, True)."""
    params, k = u.params, x.shape[0] // m
    acc: list | None = None
    losses, logits = [], []
    for c in range(k):
        xc, yc = x[c * m:(c + 1) * m], y[c * m:(c + 1) * m]
        if c > 0:
            acc = [None if p.grad is None else p.grad.detach().clone() for p in params]
            _zero_grads(params)
        u.optimizer.first_step(generator=u.generator)
        loss_c, logits_c = u.forward_backward(xc, yc, frozen=True, sync=(c == k - 1))
        losses.append(loss_c)
        logits.append(logits_c)
        _add_back(params, acc)
        if c < k - 1:
            u.optimizer.restore()
    _average(params, k)
    return torch.stack(losses).mean(), torch.cat(logits), True


@torch.no_grad()
def _put_back(params, acc) -> None:
    """The previous chunks' descent sums back into the gradients (zero for the first chunk)."""
    for i, p in enumerate(params):
        if p.grad is not None:
            a = None if acc is None else acc[i]
            p.grad.zero_() if a is None else p.grad.copy_(a)


@torch.no_grad()
def _add_back(params, acc) -> None:
    if acc is None:
        return
    for p, a in zip(params, acc):
        if p.grad is not None and a is not None:
            p.grad.add_(a)


@torch.no_grad()
def _average(params, k: int) -> None:
    for p in params:
        if p.grad is not None:
            p.grad.div_(k)
