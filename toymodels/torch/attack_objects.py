"""torchattacks-style attack objects: configured once, called as ``atk(x, y) -> x_adv``.

::

    atk = APGD(model, norm="linf", eps=8/255, steps=100)
    x_adv = atk(x, y)                      # x in [0, 1]^(N, C, H, W), normalization inside the model
    print(atk)                             # APGD(model=Sequential, norm='linf', eps=0.0313..., ...)

Each class wraps one functional attack of the torch layer and adds what a torchattacks user expects:

* every argument is checked when the object is built (:class:`~toymodels.errors.ConfigError` naming the
  field), not at the first call;
* a call puts the model in eval mode and afterwards restores the ``training`` flag of every submodule
  (also when the attack raises), so that an attack on a model left in train mode neither updates
  BatchNorm statistics nor draws dropout masks, and the caller's modes survive;
* x and y move to the model's device for the attack; x_adv comes back on x's device, in x's dtype;
* ``repr`` shows the configuration; ``atk.config`` is it as a dict.

================  ================================================  ==========================================
class             functional attack                                 objective (maximized unless noted)
================  ================================================  ==========================================
:class:`PGD`      :func:`toymodels.torch.pgd.pgd`                   CE or DLR, fixed step α, restarts
:class:`APGD`     :func:`toymodels.torch.apgd.apgd`                 CE or DLR, step halving at checkpoints
:class:`APGDT`    :func:`toymodels.torch.apgd.apgd` (targeted)      DLR_t(z, y, t) or −CE(z, t), targets 2..m+1
:class:`FAB`      :func:`toymodels.torch.fab.fab`                   min ‖x̂ − x‖_p s.t. misclassified (≤ ε kept)
:class:`Square`   :func:`toymodels.torch.square.square_attack`      margin z_y − max_{k≠y} z_k minimized
:class:`AutoAttack` :func:`toymodels.torch.evaluate.evaluate`       the cascade APGD-CE → APGD-T → FAB-T → Square
================  ================================================  ==========================================

Targeted attacks (APGD-T, FAB-T) take ``n_target_classes`` = m and use the targets with the 2nd … (m+1)-th
highest clean logit; as in AutoAttack, where m = 9 means "every other class" of CIFAR-10, m is capped at
K − 1 for a model with K classes. Every object draws its randomness from the named streams of ``seed``
(see each functional attack); the same object called twice on the same input returns the same x_adv.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from ..errors import ConfigError, check_bool, check_choice, check_int, check_positive, check_range
from ..rng import check_seed
from .config import NORMS
from .losses import LOSSES

__all__ = ["Attack", "PGD", "APGD", "APGDT", "FAB", "Square", "AutoAttack", "eval_mode", "model_device",
           "num_classes"]

#: the largest step / restart / target counts accepted (beyond them a run takes days)
MAX_STEPS, MAX_RESTARTS, MAX_QUERIES = 10 ** 6, 10 ** 4, 10 ** 8


@contextmanager
def eval_mode(model):
    """Inside the block every submodule of ``model`` is in eval mode; on exit (also on an exception)
    each submodule gets its own ``training`` flag back (a model may mix modes, e.g. frozen BatchNorm)."""
    modules = list(model.modules()) if isinstance(model, torch.nn.Module) else []
    flags = [m.training for m in modules]
    try:
        if modules:
            model.eval()
        yield model
    finally:
        for m, flag in zip(modules, flags):
            m.training = flag


def model_device(model, default: torch.device) -> torch.device:
    """The device of the model's first parameter (or buffer); ``default`` for a parameter-free callable."""
    if isinstance(model, torch.nn.Module):
        for t in (*model.parameters(), *model.buffers()):
            return t.device
    return default


@torch.no_grad()
def num_classes(model, x: torch.Tensor) -> int:
    """K, the number of logits the model returns (one forward pass on one point)."""
    return int(model(x[:1]).shape[1])


def _check_norm_eps(norm, eps) -> tuple[str, float]:
    return check_choice("norm", norm, NORMS), check_positive("eps", eps)


def _check_xy(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """x as a floating tensor (N, ...) in [0, 1], y as int64 labels (N,) on x's device."""
    if not torch.is_tensor(x) or not torch.is_floating_point(x) or x.dim() < 2:
        raise ConfigError("x", "must be a floating tensor of shape (N, C, H, W)",
                          tuple(x.shape) if hasattr(x, "shape") else type(x).__name__)
    y = torch.as_tensor(y.detach().cpu() if torch.is_tensor(y) else y)
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.shape != (x.shape[0],):
        raise ConfigError("y", f"must be integer labels of shape ({x.shape[0]},)", tuple(y.shape))
    if x.numel() and not (bool(torch.isfinite(x).all()) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0):
        raise ConfigError("x", "must lie in [0, 1] (normalization belongs inside the model)")
    return x.detach(), y.to(device=x.device, dtype=torch.int64)


class Attack:
    """Base class: ``Attack(model, **options)`` checks the options (:meth:`_check`); ``atk(x, y)`` runs
    :meth:`_attack` in eval mode on the model's device and returns x_adv on x's device and dtype."""

    #: the stage name in an evaluation cascade (AutoAttack's names)
    name = "attack"

    def __init__(self, model, **options):
        if not callable(model):
            raise ConfigError("model", "must be a callable returning logits (an nn.Module)", type(model).__name__)
        self.model = model
        self.config = self._check(**options)

    def _check(self, **options) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _attack(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x, y) -> torch.Tensor:
        x, y = _check_xy(x, y)
        dev = model_device(self.model, x.device)
        with eval_mode(self.model):
            x_adv = self._attack(x.to(dev), y.to(dev)) if x.shape[0] else x.clone()
        return x_adv.detach().to(device=x.device, dtype=x.dtype)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}(model={type(self.model).__name__}, {args})"


class PGD(Attack):
    """PGD-``steps`` (Madry et al. 2018) in ℓ∞ (sign steps) or ℓ₂ (normalized steps), step α (default
    ε/4), ``restarts`` random starts; maximizes ``loss`` ∈ {ce, dlr} (:func:`toymodels.torch.pgd.pgd`)."""

    name = "pgd"

    def _check(self, *, norm="linf", eps, alpha=None, steps=50, restarts=1, loss="ce", random_start=True, seed=0):
        norm, eps = _check_norm_eps(norm, eps)
        cfg = dict(norm=norm, eps=eps, alpha=None if alpha is None else check_positive("alpha", alpha),
                   steps=check_int("steps", steps, 1, MAX_STEPS), restarts=check_int("restarts", restarts, 1, MAX_RESTARTS),
                   loss=check_choice("loss", loss, LOSSES), random_start=check_bool("random_start", random_start),
                   seed=check_seed(seed))
        if not random_start and cfg["restarts"] > 1:
            raise ConfigError("restarts", "must be 1 without a random start", restarts)
        return cfg

    def _attack(self, x, y):
        from .pgd import pgd

        return pgd(self.model, x, y, **self.config)


class APGD(Attack):
    """Untargeted APGD (Croce & Hein 2020) with ``loss`` ∈ {ce, dlr}: APGD-CE / APGD-DLR of AutoAttack
    (:func:`toymodels.torch.apgd.apgd`; step 2ε halved at the checkpoints, momentum 0.75)."""

    name = "apgd-ce"

    def _check(self, *, norm="linf", eps, steps=100, restarts=1, loss="ce", rho=0.75, seed=0):
        norm, eps = _check_norm_eps(norm, eps)
        self.name = f"apgd-{check_choice('loss', loss, LOSSES)}"
        return dict(norm=norm, eps=eps, steps=check_int("steps", steps, 1, MAX_STEPS),
                    restarts=check_int("restarts", restarts, 1, MAX_RESTARTS), loss=loss,
                    rho=check_range("rho", rho, 0.0, 1.0), seed=check_seed(seed))

    def _attack(self, x, y):
        from .apgd import apgd

        return apgd(self.model, x, y, targeted=False, **self.config)


class APGDT(Attack):
    """APGD-T: targeted APGD over the targets ranked 2 … m + 1 by the clean logits, m =
    min(``n_target_classes``, K − 1); ``loss`` "dlr" (DLR_t, AutoAttack's) or "ce" (−CE towards t)."""

    name = "apgd-t"

    def _check(self, *, norm="linf", eps, steps=100, restarts=1, n_target_classes=9, loss="dlr", rho=0.75, seed=0):
        norm, eps = _check_norm_eps(norm, eps)
        return dict(norm=norm, eps=eps, steps=check_int("steps", steps, 1, MAX_STEPS),
                    restarts=check_int("restarts", restarts, 1, MAX_RESTARTS),
                    n_target_classes=check_int("n_target_classes", n_target_classes, 1, 10 ** 5),
                    loss=check_choice("loss", loss, LOSSES), rho=check_range("rho", rho, 0.0, 1.0), seed=check_seed(seed))

    def _attack(self, x, y):
        from .apgd import apgd

        cfg = dict(self.config)
        cfg["n_target_classes"] = min(cfg["n_target_classes"], num_classes(self.model, x) - 1)
        return apgd(self.model, x, y, targeted=True, **cfg)


class FAB(Attack):
    """FAB (Croce & Hein 2020), targeted by default (FAB-T of AutoAttack): minimal-norm adversarials,
    kept where ‖x̂ − x‖_p ≤ ε (:func:`toymodels.torch.fab.fab`)."""

    name = "fab-t"

    def _check(self, *, norm="linf", eps, steps=100, restarts=1, targeted=True, n_target_classes=9,
               alpha_max=0.1, eta=1.05, beta=0.9, seed=0):
        norm, eps = _check_norm_eps(norm, eps)
        self.name = "fab-t" if check_bool("targeted", targeted) else "fab"
        return dict(norm=norm, eps=eps, steps=check_int("steps", steps, 1, MAX_STEPS),
                    restarts=check_int("restarts", restarts, 1, MAX_RESTARTS), targeted=targeted,
                    n_target_classes=check_int("n_target_classes", n_target_classes, 1, 10 ** 5),
                    alpha_max=check_range("alpha_max", alpha_max, 0.0, 1.0), eta=check_positive("eta", eta),
                    beta=check_range("beta", beta, 0.0, 1.0, lo_open=True), seed=check_seed(seed))

    def _attack(self, x, y):
        from .fab import fab

        return fab(self.model, x, y, **self.config)


class Square(Attack):
    """Square Attack (Andriushchenko et al. 2020; thesis Ch. 3), score-based: minimizes the margin (or
    −CE) by random square updates (:func:`toymodels.torch.square.square_attack`). ``None`` options take
    the functional defaults (by input size: 5,000 queries and p_init 0.8 for images of side ≤ 64; loss
    margin); ``schedule`` defaults to "reference" (AutoAttack's and torchattacks' p schedule, where the
    functional default is the thesis'). torchattacks' ``Square(n_queries=Q)`` is ``n_queries=Q + 1`` here.
    ``atk.last_result`` is the :class:`~toymodels.torch.square.SquareResult` of the last call (queries)."""

    name = "square"

    def _check(self, *, norm="linf", eps, n_queries=None, p_init=None, loss=None, schedule="reference",
               rescale=True, restarts=1, seed=0, batch_size=None):
        from ..square.options import LOSSES as SQ_LOSSES, SCHEDULES

        norm, eps = _check_norm_eps(norm, eps)
        self.last_result = None
        return dict(norm=norm, eps=eps,
                    n_queries=None if n_queries is None else check_int("n_queries", n_queries, 1, MAX_QUERIES),
                    p_init=None if p_init is None else check_range("p_init", p_init, 0.0, 1.0, lo_open=True),
                    loss=None if loss is None else check_choice("loss", loss, SQ_LOSSES),
                    schedule=check_choice("schedule", schedule, SCHEDULES), rescale=check_bool("rescale", rescale),
                    restarts=check_int("restarts", restarts, 1, MAX_RESTARTS), seed=check_seed(seed),
                    batch_size=None if batch_size is None else check_int("batch_size", batch_size, 1))

    def _attack(self, x, y):
        from .square import square_attack

        self.last_result = square_attack(self.model, x, y, **self.config)
        return self.last_result.x_adv

    def info(self) -> dict:
        """Query statistics of the last call (AutoAttack reports them for Square)."""
        r = self.last_result
        if r is None:
            return {}
        return {"n_attacked": int(r.success.size), "success_rate": float(r.success.mean()) if r.success.size else 0.0,
                "mean_queries": r.mean_queries, "median_queries": r.median_queries,
                "total_queries": int(r.n_queries.sum())}


class AutoAttack(Attack):
    """The AutoAttack cascade (:func:`toymodels.torch.evaluate.evaluate`): ``version`` "standard"
    (APGD-CE, APGD-T, FAB-T, Square) or "fast"; ``attacks`` a subset of stage names. ``atk(x, y)`` returns
    x_adv (the first feasible misclassified proposal per point, else x); ``atk.last_result`` is the
    :class:`~toymodels.cascade.CascadeResult` (robust accuracy after each stage, breaking attack per point)."""

    name = "autoattack"

    def _check(self, *, norm="linf", eps, version="standard", attacks=None, seed=0, batch_size=500,
               steps=None, n_queries=None):
        from .evaluate import check_options

        self.last_result = None
        return check_options(norm=norm, eps=eps, version=version, attacks=attacks, seed=seed, batch_size=batch_size,
                             steps=steps, n_queries=n_queries)

    def _attack(self, x, y):
        from .evaluate import evaluate

        self.last_result = evaluate(self.model, x, y, **self.config)
        return self.last_result.x_adv
