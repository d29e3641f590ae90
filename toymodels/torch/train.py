"""One training loop for the torch layer: adversarial training (``task="at"``, thesis Ch. 2), SAM
(``"sam"``, Ch. 5) and large-step SGD (``"sgd"``, Ch. 6), on cpu or cuda, single process or DDP.

Objective per minibatch B (mean cross-entropy ℓ of the logits of x ∈ [0, 1]):

* ``at``:  (1/|B|) Σ ℓ(xₙ + δₙ, yₙ) + λ R_B  — δ from the attack (none, FGSM, FGSM-RS, PGD-k, N-FGSM,
  held fixed), R the regularizer ``reg`` on the clean batch: GradAlign (eq. 2.7,
  :func:`toymodels.torch.attacks.gradalign`; ``grad_align`` > 0 is the same), or GradAlign-FD, ELLE,
  the input-gradient-norm penalty or CURE of :mod:`toymodels.torch.regularizers`; ``free``
  replays each minibatch ``free_replays`` times with a persistent δ (Free-AT).
* ``sam``: the SAM / m-SAM update of :func:`toymodels.torch.sam.sam_update` (ρ, m, normalized or not,
  ``sam_steps`` ascent steps or ``sam_perturbation="random"``; ``sam_ascent_batch="other"``: n-SAM, the
  ascent on another batch drawn by :func:`other_batch`, eq. 5.21); ``train_acc`` from the first pass's logits;
  ``rho_schedule="lr"``: ρ_t = ρ · γ_t / γ_peak follows the learning rate (:func:`rho_at`, Fig. 5.21; also
  in the SAM epochs of an ERM → SAM switch), ``"constant"`` (default): ρ in every step.
* ``sgd``: plain (1/|B|) Σ ℓ(xₙ, yₙ).

Learning rate per iteration t of T = epochs · steps_per_epoch: ``cyclic`` (Wong et al.: 0 → lr at
40% of training → 0, :func:`toymodels.cnn.train.cyclic_lr`), ``constant``, ``step`` (× ``decay_factor``
at the fractions ``decay_at`` of T) and ``warmup-decay`` (a linear or exponential warmup over the first
``warmup_frac``·T steps, then the step decays) — the last two are :func:`toymodels.schedules.make_schedule`.

History (one record before training, epoch 0, then one per epoch; model in eval mode; ``eval_n``
test points with fixed noise): ``train_loss``/``train_acc`` (on the inputs trained on), ``clean_acc``/
``clean_loss`` (the whole test set) and, for ``at``, ``fgsm_acc``/``fgsm_loss``, ``pgd_acc``/``pgd_loss``
(PGD-``eval_pgd_steps``, α = ε/4, random start), ``grad_alignment`` (eq. 2.5) and ``cos_fgsm_pgd``; for
``sgd`` ``feature_sparsity`` (a dict per layer); for ``sam`` ``sharp_loss`` (the m-sharp loss
(1/k) Σ_G L_G(w + ρ ∇L_G/‖∇L_G‖) over chunks G of m eval points, at the configured ρ); for ``sam`` and
``sgd`` (epochs ≥ 1) ``train_objective`` = (1/S) Σ_t [L_{B_t}(w_t) + Σ_g (λ_g/2)‖w_{t,g}‖²] over the
epoch's S steps: ``train_loss`` (the minibatch losses on the inputs trained on — augmented, noisy labels —
at the iterate w_t before its update, train mode; for SAM the first pass's, at w_t, not at w_t + e; for
the random perturbation, at w_t + e) plus the ℓ2 term of the optimizer's ``weight_decay`` λ_g over every
parameter it holds, at the same w_t (:func:`l2_term`; thesis Fig. 5.20). ``co_epoch`` is
:func:`toymodels.cnn.train.detect_co` of the AT history; ``final`` repeats the evaluation with
PGD-``final_pgd_steps``-``final_restarts`` on ``final_n`` points (with ``final_eps``, train-at, also at each
listed radius: ``pgd_acc_by_eps`` / ``pgd_loss_by_eps``, :func:`toymodels.torch.records.final_by_eps`). A NaN/inf training loss stops
the run: ``diverged`` and ``diverged_at`` = {epoch, step, loss}.
m-sharpness (tasks sam / sgd, ``sharpness_rho`` set; :mod:`toymodels.torch.msharpness`, thesis Figs. 5.2,
5.3, 5.19): every ``sharpness_every``-th record adds ``m_sharpness`` / ``m_sharpness_train_bn`` (test- /
training-time BN) and the result ``m_sharpness`` {K: {ρ: value}} and the ratios of :func:`toymodels.torch.records.sharpness_final`.

Deep-net settings (thesis Ch. 5): ``label_noise`` p replaces ⌊pN⌋ training labels by other classes
(:func:`toymodels.torch.data.add_label_noise`); ``early_stop_n`` images are split off the training set
(:func:`toymodels.torch.data.heldout_split`) and every epoch's record gets ``heldout_acc`` (PGD accuracy
for ``at``, clean accuracy otherwise); with ``early_stop`` the model of the best epoch (earliest on ties)
is kept (also in the checkpoint) and the result adds ``best_epoch``, ``best_heldout_acc`` and
``final_best`` (the final evaluation of that model) beside ``final`` (the last model). With label noise
every record gets ``noisy_fit``, the fraction of (the first ≤ 1024) relabelled training points predicted
with their noisy label.
``switch_at``/``switch_to`` switch SAM → ERM (task sam) or ERM → SAM (task sgd) from epoch
``switch_at`` on (:func:`phase_of`); the optimizer is the SAM wrapper throughout and ERM steps use its
base optimizer, so momentum carries over the switch, and a resume continues the same phases.
Figure records (thesis Figs. 5.10, 6.17): with ``interpolate_switch`` N the weights at the start of epoch
``switch_at`` are kept (also in the checkpoint) and the result gets ``interpolation`` (the loss and error
along (1 − α)·w_switch + α·w_final, :func:`toymodels.torch.records.switch_interpolation`); with
``record_filters`` N it gets ``weight_change`` and ``filters`` (:func:`toymodels.torch.records.filter_records`; W_0 is the seed's initialization, rebuilt on resume).

Checkpoints (``out`` set): ``<out>/checkpoint.pt`` every ``checkpoint_every`` epochs, written through
:func:`toymodels._io.atomic_write` (a temporary file in ``out``, renamed into place; removed on any
exit, Ctrl-C included), a dict with model/optimizer state, epoch, RNG states (torch cpu/cuda, numpy,
python, the loop's noise generator), history and config. ``resume="yes"`` continues from it and
reproduces the uninterrupted run exactly (shuffling depends only on (seed, epoch)); a missing or
unreadable checkpoint, or one written by another configuration, is a ConfigError for ``resume``;
``resume="if-present"`` starts fresh when there is none. The library writes only the checkpoint; the
command line writes ``result.json``.

Random streams (:mod:`toymodels.rng`): the initial weights (and the global python / numpy / torch
generators) from ``(seed, "global/...")``, the training-time attack noise of rank r from
``(seed, "attack-noise", r)``, the permutation of epoch e from ``(seed, "shuffle", e)``, the fixed
evaluation noise from ``(seed, "eval-noise")``, the neurons subsampled for feature sparsity from
``(seed, "sparsity-neurons")``; the data from :func:`toymodels.datasets.load_images` with ``seed``.

Reproducibility: a run is determined by its config and seed. On cuda that needs deterministic kernels:
with ``deterministic=True`` (default) cuDNN autotuning is off and ``torch.use_deterministic_algorithms``
is on (warn-only) for the duration of :func:`run`, and the models avoid ops without a deterministic
cuda backward; ``deterministic=False`` lets cuDNN autotune (faster, not bitwise reproducible).

AMP (``amp=True``): the training forward passes run under float16 autocast with a GradScaler on cuda
(bfloat16 autocast, no scaler, on cpu); the attacks, GradAlign and the evaluation run in full precision.
Speed options (:mod:`toymodels.torch.speed`): ``bf16`` (the whole training step — attack and regularizer
included — under bfloat16 autocast, no scaler, cuda and cpu), ``channels_last``, ``data_on_device``
(each epoch's batches built on the device at once, bitwise the same batches) and ``compile``.

DDP: under ``torchrun`` (any number of processes) the process group is initialised (gloo on cpu, nccl on
cuda), each epoch's permutation is split DistributedSampler-style across ranks, each rank uses
``batch_size / world_size`` examples per step, the model is wrapped in DDP (attacks and metrics use
the bare module; sums are all-reduced) and only rank 0 prints and writes. The checkpoint holds every
rank's RNG states (and Free-AT δ), so a resume with the same number of processes is exact too.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .._io import atomic_write
from ..elle_a import ElleA
from ..errors import ConfigError
from ..progress import progress as _progress
from ..rng import child_seed
from . import attacks, records, regularizers
from .config import (ATTACKS, CHECKPOINT, REGS, RESUMABLE, SCHEDULES, TASKS, TrainConfig, default_reg_lambda,
                     fit_to_data, resolve)
from .data import channel_stats, noisy_count, prepare
from .cpu_memory import keep_freed_memory
from .device import device_name, resolve_device, seed_everything, torch_generator
from .models import build_model
from .speed import bf16_autocast, compile_failure, compile_module, epoch_batches, is_compile_error, prepare_model, \
    step_autocast

__all__ = ["TrainConfig", "run", "resolve", "lr_schedule", "at_step", "phase_of", "best_epoch", "TASKS", "ATTACKS",
           "REGS", "SCHEDULES", "CHECKPOINT", "rho_at", "l2_term"]


def lr_schedule(cfg: TrainConfig, steps_per_epoch: int) -> np.ndarray:
    """The learning rate of every iteration, length epochs · steps_per_epoch."""
    from ..cnn.train import cyclic_lr
    from ..schedules import make_schedule

    T = cfg.epochs * steps_per_epoch
    if cfg.schedule == "cyclic":
        return np.array([cyclic_lr(t / steps_per_epoch + 1 / steps_per_epoch, cfg.epochs, cfg.lr)
                         for t in range(T)])
    if cfg.schedule == "constant":
        return make_schedule(cfg.lr, T, "constant")
    if cfg.schedule == "step":
        return make_schedule(cfg.lr, T, "step", decay_at=cfg.decay_at, factor=cfg.decay_factor)
    kind = "linear-warmup" if cfg.warmup == "linear" else "exp-warmup"
    return make_schedule(cfg.lr, T, kind, decay_at=cfg.decay_at, factor=cfg.decay_factor,
                         warmup_steps=max(1, int(round(cfg.warmup_frac * T))), warmup_ratio=cfg.warmup_ratio)


# ------------------------------------------------------------------------------------------------
# distributed helpers (no-ops in a single process)
# ------------------------------------------------------------------------------------------------
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    on: bool = False          # launched by torchrun: a process group (also with one process)

    def sum(self, values: list[float], device) -> list[float]:
        if not self.on:
            return [float(v) for v in values]
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()


def world_size() -> int:
    """The number of processes of this run: ``WORLD_SIZE`` under torchrun, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) if "RANK" in os.environ else 1


def _init_dist(device_arg: str) -> _Dist:
    # torchrun sets RANK/WORLD_SIZE: then DDP, even with one process (a 1-GPU node of a larger job
    # behaves like the others, and the NCCL path can be checked on one GPU)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return _Dist()
    world = int(os.environ["WORLD_SIZE"])
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and str(device_arg) != "cpu"
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return _Dist(rank, world, local, on=True)


# ------------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------------
def _clean_sums(net, xte, yte, D: _Dist, device) -> list[float]:
    """[#correct, Σ loss] over this rank's shard of the whole test set."""
    shard = torch.arange(D.rank, len(yte), D.world, device=device)
    c = s = 0.0
    for i in range(0, len(shard), 500):
        idx = shard[i:i + 500]
        ci, si = attacks.accuracy_loss(net, xte[idx], yte[idx])
        c, s = c + ci, s + si
    return [c, s]


def _attack_sums(cfg, net, x, y, n_ev: int, D: _Dist, *, pgd_steps, restarts) -> list[float]:
    """Sums over this rank's eval points of the FGSM / PGD accuracies and losses, the gradient
    alignment and cos(δ_FGSM, δ_PGD); the noise is fixed (stream "eval-noise"), not the training RNG."""
    g = torch_generator(cfg.seed, "eval-noise")
    # draw for the whole eval set then take this rank's rows, so the noise does not depend on ranks
    noise = attacks.uniform_noise((n_ev,) + tuple(x.shape[1:]), cfg.eps, g, x)[D.rank::D.world]
    starts = attacks.uniform_noise((restarts, n_ev) + tuple(x.shape[1:]), cfg.eps, g, x)[:, D.rank::D.world]
    d_f = attacks.fgsm(net, x, y, cfg.eps)
    d_p = attacks.pgd(net, x, y, cfg.eps, cfg.eps / 4, pgd_steps, restarts, noise=starts)
    fa, fl = attacks.accuracy_loss(net, x + d_f, y)
    pa, pl = attacks.accuracy_loss(net, x + d_p, y)
    al = float(attacks.grad_alignment(net, x, y, cfg.eps, noise, per_example=True).sum())
    cs = float(attacks.cosines(d_f, d_p).sum())
    return [fa, fl, pa, pl, al, cs]


_ATTACK_KEYS = ["fgsm_acc", "fgsm_loss", "pgd_acc", "pgd_loss", "grad_alignment", "cos_fgsm_pgd"]


def _evaluate(cfg, net, xte, yte, ev_idx, D: _Dist, device, *, pgd_steps, restarts, sparsity_x=None):
    """One history record (sums over this rank's shard, all-reduced). ``net`` is the bare module."""
    net.eval()
    keys, vals = ["clean_acc", "clean_loss"], _clean_sums(net, xte, yte, D, device)
    idx = ev_idx[D.rank::D.world]
    n_ev = len(ev_idx)
    if cfg.task == "at":
        keys += _ATTACK_KEYS
        vals += _attack_sums(cfg, net, xte[idx], yte[idx], n_ev, D, pgd_steps=pgd_steps, restarts=restarts)
    elif cfg.task == "sam":
        keys.append("sharp_loss")
        vals.append(_sharp_loss_sum(net, xte[idx], yte[idx], cfg.rho, cfg.m, cfg.sam_normalize))
    tot = D.sum(vals, device)
    rec = {k: v / (len(yte) if k.startswith("clean") else n_ev) for k, v in zip(keys, tot)}
    if cfg.task == "sgd" and sparsity_x is not None:
        # on rank 0's copy of the (replicated) inputs: the greedy correlation rule is not a sum
        from .sparsity import feature_sparsity_at

        rec["feature_sparsity"] = feature_sparsity_at(
            net, sparsity_x, cfg.sparsity_layers, threshold=cfg.sparsity_threshold,
            max_neurons=cfg.sparsity_neurons, seed=child_seed(cfg.seed, "sparsity-neurons"))
    return rec


def _sharp_loss_sum(net, x, y, rho, m, normalize) -> float:
    """Σ over chunks G (m points) of m · L_G(w + e_G), e_G = ρ ∇L_G/‖∇L_G‖ (or ρ ∇L_G)."""
    params = [p for p in net.parameters() if p.requires_grad]
    total = 0.0
    for i in range(0, len(y), m):
        xb, yb = x[i:i + m], y[i:i + m]
        grads = torch.autograd.grad(F.cross_entropy(net(xb), yb), params)
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)) if normalize else 1.0
        scale = float(rho / norm) if (not normalize or float(norm) > 0) else 0.0
        with torch.no_grad():
            # restore w exactly (w + e − e is not w in floating point: the evaluation must not move training)
            saved = [p.detach().clone() for p in params]
            for p, g in zip(params, grads):
                p.add_(g, alpha=scale)
            total += float(F.cross_entropy(net(xb), yb, reduction="sum"))
            for p, w in zip(params, saved):
                p.copy_(w)
    return total


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------
def _rng_states(gen: torch.Generator) -> dict:
    return {"torch_cpu": torch.get_rng_state(),
            "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(), "python": random.getstate(), "generator": gen.get_state()}


def _set_rng_states(st: dict, gen: torch.Generator) -> None:
    # RNG states are CPU byte tensors; torch.load(map_location=cuda) may have moved them
    torch.set_rng_state(st["torch_cpu"].cpu())
    if st.get("torch_cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in st["torch_cuda"]])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    gen.set_state(st["generator"].cpu())


def _save_checkpoint(path: str, obj: dict) -> None:
    """``torch.save(obj)`` to ``path`` atomically (the temporary file is removed on any exit)."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


def _read_checkpoint(path: str, device) -> dict:
    try:
        ck = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - truncated, not a torch file, ...
        raise ConfigError("resume", f"needs a readable {CHECKPOINT}; {path} is not one "
                          f"({type(exc).__name__})") from None
    if not isinstance(ck, dict) or not {"model_state", "optimizer_state", "epoch", "history", "config"} <= set(ck):
        raise ConfigError("resume", f"needs a {CHECKPOINT} of toymodels.torch.train; {path} is another file")
    return ck


# ------------------------------------------------------------------------------------------------
# one step
# ------------------------------------------------------------------------------------------------
def _reg_and_lambda(cfg: TrainConfig) -> tuple[str, float]:
    """(regularizer, λ) of a config, resolved or not (``grad_align`` > 0 is GradAlign with that λ)."""
    if cfg.grad_align > 0:
        return "gradalign", float(cfg.grad_align)
    if cfg.reg == "none":
        return "none", 0.0
    lam = cfg.reg_lambda
    return cfg.reg, default_reg_lambda(cfg.reg, cfg.eps, cfg.dataset) if lam == "default" else float(lam)


def _attack_input(cfg: TrainConfig, net, x, y, gen):
    """(training input x + δ, the clean input gradient if the attack computed it, else None)."""
    alpha = cfg.eps if cfg.alpha is None else cfg.alpha
    if cfg.attack == "none":
        return x, None
    if cfg.attack == "fgsm":
        # the clean input gradient is both the FGSM direction and GradAlign's first gradient
        _, g_clean = attacks.input_grad(net, x, y)
        return x + attacks.project(x, alpha * g_clean.sign(), cfg.eps), g_clean
    if cfg.attack == "fgsm-rs":
        return x + attacks.fgsm_rs(net, x, y, cfg.eps, alpha, generator=gen), None
    if cfg.attack == "n-fgsm":
        return x + regularizers.n_fgsm(net, x, y, cfg.eps, k=cfg.nfgsm_k, alpha=alpha, generator=gen), None
    # pgd_init "zero": δ₀ = 0 and nothing drawn from gen (Sec. 2.9: "we do not use random initialization")
    return x + attacks.pgd(net, x, y, cfg.eps, alpha, cfg.pgd_steps, random_start=cfg.pgd_init == "random",
                           generator=gen), None


def _regularizer(cfg: TrainConfig, reg: str, net, x, y, gen, noise, g_clean):
    """The regularizer tensor of ``reg`` on the clean batch (None for "none")."""
    h = regularizers.DEFAULT_H if cfg.reg_h is None else cfg.reg_h
    if reg == "gradalign":
        return attacks.gradalign(net, x, y, cfg.eps, noise, generator=gen, exact=cfg.grad_align_exact,
                                 clean_grad=g_clean)
    if reg == "gradalign-fd":
        return regularizers.gradalign_fd(net, x, y, cfg.eps, noise, h=h, scheme=cfg.reg_scheme, clean_grad=g_clean,
                                         generator=gen)
    if reg in ("elle", "elle-a"):
        return regularizers.elle(net, x, y, cfg.eps, generator=gen)
    if reg == "gradnorm":
        return regularizers.gradnorm(net, x, y, exact=cfg.reg_h is None, h=h, scheme=cfg.reg_scheme)
    if reg == "cure":
        return regularizers.cure(net, x, y, cfg.eps, exact=cfg.reg_h is None, h=h, scheme=cfg.reg_scheme)
    return None


def at_step(cfg: TrainConfig, model, net, x, y, gen: torch.Generator, backward_step, amp_ctx,
            sched: ElleA | None = None, reduce=None) -> tuple[float, float]:
    """One adversarial-training step on (x, y): attack none/fgsm/fgsm-rs/pgd/n-fgsm, then the training
    loss (1/|B|) Σ ℓ(xₙ + δₙ) + λ R with R the regularizer ``reg`` (GradAlign, GradAlign-FD, ELLE,
    gradient norm, CURE of :mod:`toymodels.torch.regularizers`, on the clean batch) or none.

    ``model`` is what the loss goes through (DDP or the bare module), ``net`` the bare module used for
    the attack and the regularizer; ``backward_step(loss)`` does zero_grad, backward and the optimizer
    step. Returns (loss, accuracy) on the perturbed batch (the regularizer not included).

    ELLE-A (``reg="elle-a"``): λ = ``sched.lam`` (:class:`toymodels.elle_a.ElleA`), then
    ``sched.update(E_lin)`` with this step's error (averaged over the processes by ``reduce``, a
    callable float → float, under DDP, so that every rank keeps the same λ); while λ = 0 the error is
    computed without a graph (no backward through the penalty)."""
    reg_name, lam = _reg_and_lambda(cfg)
    if reg_name == "elle-a":
        if sched is None:
            raise ConfigError("reg", "'elle-a' needs its λ schedule: pass sched=toymodels.elle_a.ElleA(λ_max)")
        lam = sched.lam
    noise = None
    if reg_name in ("gradalign", "gradalign-fd") and cfg.attack in ("none", "fgsm"):
        # these attacks draw nothing: GradAlign's η can be drawn first (same draws), so that its
        # host-to-device copy waits for an idle GPU rather than stalling it in the middle of the step
        noise = attacks.uniform_noise(x.shape, cfg.eps, gen, x)
    full = step_autocast(getattr(cfg, "bf16", False), amp_ctx)     # bf16: the attack and R in bfloat16 too
    with full():
        xa, g_clean = _attack_input(cfg, net, x, y, gen)
    reg_off = None
    if reg_name == "elle-a" and lam == 0:
        with torch.no_grad(), full():
            reg_off = _regularizer(cfg, reg_name, net, x, y, gen, None, None)
        reg = None
    else:
        with full():
            reg = _regularizer(cfg, reg_name, net, x, y, gen, noise, g_clean)
    with amp_ctx():
        out = model(xa)
        loss = F.cross_entropy(out.float() if out.dtype in (torch.float16, torch.bfloat16) else out, y)
    backward_step(loss if reg is None else loss + lam * reg)
    if reg_name == "elle-a":
        err = float((reg_off if reg is None else reg).detach())
        sched.update(reduce(err) if reduce is not None else err)
    return float(loss.detach()), float((out.detach().argmax(1) == y).float().mean())


# ------------------------------------------------------------------------------------------------
# the run: its fixed parts (_Run), its changing state (_State), one function per phase
# ------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _kernels(deterministic: bool):
    """Deterministic (or autotuned) cuDNN / torch kernels inside, the previous settings restored after."""
    before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
              torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if deterministic:
        # cuBLAS needs a fixed workspace for reproducible results; read when its handle is created
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = deterministic, not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[0], before[1]
        torch.use_deterministic_algorithms(before[2], warn_only=before[3])


@dataclass
class _Run:
    """Everything a run holds fixed: config, process group, device, data, model, optimizer."""
    cfg: TrainConfig
    D: _Dist
    device: torch.device
    data: tuple                     # x_train, y_train, x_test, y_test on the device
    net: torch.nn.Module            # the bare module
    model: torch.nn.Module          # what the loss goes through (DDP or net)
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_on: bool
    amp_ctx: Callable
    gen: torch.Generator            # this rank's attack noise
    spe: int                        # steps per epoch
    bs: int                         # per-process batch
    shard_len: int
    lrs: np.ndarray
    ev_idx: torch.Tensor
    sparsity_x: torch.Tensor | None
    hold: tuple | None = None       # held-out (x, y) of early stopping, on the device
    noisy_idx: torch.Tensor | None = None   # label noise: positions of (at most 1024) relabelled training points

    @property
    def ckpt_path(self) -> str | None:
        return os.path.join(self.cfg.out, CHECKPOINT) if self.cfg.out else None

    @property
    def is_main(self) -> bool:
        return self.D.rank == 0

    def evaluate(self, n: int, pgd_steps: int, restarts: int) -> dict:
        _, _, xte, yte = self.data
        return _evaluate(self.cfg, self.net, xte, yte, self.ev_idx[:n], self.D, self.device,
                         pgd_steps=pgd_steps, restarts=restarts, sparsity_x=self.sparsity_x)

    def backward_step(self, loss) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()


@dataclass
class _State:
    history: list = field(default_factory=list)
    start_epoch: int = 1
    free_delta: torch.Tensor | None = None
    diverged_at: dict | None = None
    sched: ElleA | None = None
    best: dict | None = None        # early stopping: {"epoch", "acc", "model_state"} of the best epoch
    w_switch: dict | None = None    # interpolate_switch: the state dict at the start of epoch switch_at
    l2_mean: float | None = None    # sam/sgd: this epoch's mean over its steps of Σ_g (λ_g/2)‖w_g‖² (train_objective)
    eps_scale: float = 1.0          # eps_ramp: this step's ε_t / ε (from the step index: a resume continues it)


def _device(cfg: TrainConfig, D: _Dist) -> torch.device:
    device = resolve_device(cfg.device)
    if D.on and device.type == "cuda":
        device = torch.device("cuda", D.local_rank)
        torch.cuda.set_device(device)
    return device


def _optimizer(cfg: TrainConfig, net, device):
    base_kw = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        base_cls, base_kw = torch.optim.SGD, dict(base_kw, momentum=cfg.momentum)
    else:
        base_cls = torch.optim.Adam
    if cfg.task == "sam" or cfg.switch_to == "sam":      # ERM -> SAM: the SAM wrapper from the start
        from .sam import SAM

        opt = SAM(net.parameters(), base_cls, rho=cfg.rho, normalize=cfg.sam_normalize, ascent_steps=cfg.sam_steps,
                  perturbation=cfg.sam_perturbation, **base_kw)
    else:
        opt = base_cls(net.parameters(), **base_kw)
    amp_on = bool(cfg.amp) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp_on)
    amp_ctx = (lambda: torch.autocast("cuda", dtype=torch.float16)) if amp_on else \
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(cfg.amp)))
    if cfg.bf16:                                  # bfloat16 on every device, no scaler (toymodels.torch.speed)
        amp_ctx = bf16_autocast(device)
    return opt, scaler, amp_on, amp_ctx


def _setup(cfg: TrainConfig, D: _Dist) -> _Run:
    """Device, data, model (the same initial weights on every rank), optimizer, batches and schedule."""
    device = _device(cfg, D)
    if device.type == "cpu":
        keep_freed_memory()             # large activations: no fresh mmap + page faults per tensor (cpu_memory)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    d = prepare(cfg.dataset, cfg.data_dir, cfg.n_train, cfg.n_test, seed=cfg.seed, label_noise=cfg.label_noise,
                heldout=cfg.early_stop_n)
    xtr, ytr, xte, yte, K = d["x_train"], d["y_train"], d["x_test"], d["y_test"], d["num_classes"]
    cfg = fit_to_data(cfg, len(ytr), len(yte))
    C, H = xtr.shape[1], xtr.shape[2]
    norm = None if cfg.model == "cnn" else channel_stats(cfg.dataset, xtr)
    data = (xtr.to(device, dtype), ytr.to(device), xte.to(device, dtype), yte.to(device))
    seed_everything(cfg.seed)
    net = build_model(cfg.model, K, C, H, normalize=norm, filters=cfg.filters, width=cfg.width,
                      dtype=dtype).to(device)
    prepare_model(net, channels_last=cfg.channels_last)
    model = net
    if D.on:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:                               # the training loss's module; attacks use the eager net
        model = compile_module(model)
    opt, scaler, amp_on, amp_ctx = _optimizer(cfg, net, device)
    per_rank, N = cfg.batch_size // D.world, len(ytr)
    shard_len = math.ceil(N / D.world)
    spe = max(1, shard_len // per_rank)                    # drop the last incomplete batch
    return _Run(cfg, D, device, data, net, model, opt, scaler, amp_on, amp_ctx,
                gen=torch_generator(cfg.seed, "attack-noise", D.rank), spe=spe, bs=min(per_rank, shard_len),
                shard_len=shard_len, lrs=lr_schedule(cfg, spe),
                ev_idx=torch.arange(max(cfg.eval_n, cfg.final_n), device=device),
                sparsity_x=data[0][:cfg.sparsity_n] if cfg.task == "sgd" else None,
                hold=(d["x_hold"].to(device, dtype), d["y_hold"].to(device)) if cfg.early_stop_n else None,
                noisy_idx=torch.nonzero(d["noisy"]).flatten()[:1024].to(device) if cfg.label_noise > 0 else None)


def _resume(r: _Run, path: str) -> _State:
    """The state of the checkpoint at ``path``, loaded into the model, optimizer and generators."""
    ck = _read_checkpoint(path, r.device)
    mine = r.cfg.as_dict()
    for k, v in ck["config"].items():     # a checkpoint continues only the run that wrote it
        if k not in RESUMABLE and mine.get(k) != v:
            raise ConfigError("resume", f"continues only the run that wrote {path}: it has {k} = {v!r}, this run "
                              f"{mine.get(k)!r} (only {', '.join(RESUMABLE)} may change)")
    if ck.get("world_size", 1) != r.D.world:
        raise ConfigError("resume", f"needs the {ck.get('world_size', 1)} process(es) that wrote {path}, "
                          f"this run has {r.D.world}")
    r.net.load_state_dict(ck["model_state"])
    r.opt.load_state_dict(ck["optimizer_state"])
    if ck.get("scaler_state"):
        r.scaler.load_state_dict(ck["scaler_state"])
    # every rank continues its own noise stream (and its own Free-AT δ)
    ranks = ck.get("rank_states") or [{"rng": ck["rng_states"], "free_delta": ck.get("free_delta")}]
    _set_rng_states(ranks[r.D.rank]["rng"], r.gen)
    delta = ranks[r.D.rank]["free_delta"]
    st = _State(ck["history"], ck["epoch"] + 1, None if delta is None else delta.to(r.device), sched=_sched(r.cfg))
    if st.sched is not None:
        st.sched.load_state_dict(ck["elle_a"])
    st.best = ck.get("best")
    st.w_switch = ck.get("w_switch")
    return st


def _start(r: _Run) -> _State:
    """A fresh state with the epoch-0 record, or the checkpoint's state (``resume``)."""
    path = r.ckpt_path
    if r.cfg.resume == "yes" and not os.path.exists(path):
        raise ConfigError("resume", f"found no {CHECKPOINT} to continue in {r.cfg.out} (resume = 'if-present' "
                          "starts fresh when there is none)")
    if r.cfg.resume != "no" and os.path.exists(path):
        return _resume(r, path)
    rec = r.evaluate(r.cfg.eval_n, r.cfg.eval_pgd_steps, 1)
    if r.noisy_idx is not None and len(r.noisy_idx):
        rec["noisy_fit"] = _noisy_fit(r)
    rec.update(records.sharpness_record(r, 0))
    return _State([{"epoch": 0, "train_loss": None, "train_acc": None, **rec}], sched=_sched(r.cfg))


def _sched(cfg: TrainConfig) -> ElleA | None:
    """ELLE-A's λ schedule (λ_max = the resolved ``reg_lambda``) or None for the other regularizers."""
    reg, lam = _reg_and_lambda(cfg)
    return ElleA(lam) if reg == "elle-a" else None


def _step(r: _Run, st: _State, x, y) -> tuple[float, float]:
    cfg = r.cfg
    if cfg.task == "sam":
        from .sam import sam_update

        # cpu --amp: bfloat16 autocast, no scaler; the random perturbation draws from this rank's
        # checkpointed generator; the accuracy is that of the first pass's logits (n-SAM: the ascent batch's)
        xa, ya = other_batch(r, len(y)) if cfg.sam_ascent_batch == "other" else (None, None)
        loss, logits = sam_update(r.model, r.opt, F.cross_entropy, x, y, m=cfg.m, ascent_x=xa, ascent_y=ya,
                                  scaler=r.scaler if r.amp_on else None,
                                  autocast_dtype=torch.bfloat16 if (cfg.amp and not r.amp_on) or cfg.bf16 else None,
                                  generator=r.gen, return_logits=True)
        return loss, float((logits.argmax(1) == (y if ya is None else ya)).float().mean())
    cfg = _ramped(cfg, st.eps_scale)
    if cfg.attack == "free":
        if st.free_delta is None or st.free_delta.shape != x.shape:
            st.free_delta = torch.zeros_like(x)
        st.free_delta, loss, acc = attacks.free_at_batch(r.model, r.opt, x, y, st.free_delta, cfg.eps,
                                                         cfg.free_replays, step_fn=r.backward_step,
                                                         autocast=r.amp_ctx)
        return loss, acc
    reduce = (lambda v: r.D.sum([v], r.device)[0] / r.D.world) if r.D.on else None
    return at_step(cfg, r.model, r.net, x, y, r.gen, r.backward_step, r.amp_ctx, sched=st.sched, reduce=reduce)


def _ramped(cfg: TrainConfig, scale: float) -> TrainConfig:
    """``eps_ramp`` (thesis Sec. 2.9, SVHN: "we linearly increase the perturbation radius from 0 to ε during
    the first 5 epochs for all methods"): the config of one training step with ε_t = scale·ε and the attack
    step α_t = scale·α (so α/ε, e.g. FGSM-RS's 1.25, holds), scale = min(1, (t + 1)/(eps_ramp · steps per
    epoch)) at 0-based step t; the noise of FGSM-RS / N-FGSM / GradAlign and the Free-AT ball scale with ε_t.
    The regularizer's λ and the evaluations keep the configured ε."""
    if scale >= 1.0:
        return cfg
    import dataclasses

    return dataclasses.replace(cfg, eps=cfg.eps * scale, alpha=None if cfg.alpha is None else cfg.alpha * scale)


def other_batch(r: _Run, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ascent batch of n-SAM (``sam_ascent_batch="other"``, thesis Sec. 5.11: eq. 5.21 with the
    ascent on a batch J_t other than the descent batch I_t): ``n`` training examples drawn uniformly
    without replacement (``torch.randperm(N)[:n]``) by this rank's checkpointed generator ``r.gen``, so
    a resumed run draws the same ones; with ``augment`` cropped and flipped by ``r.gen`` too. J_t is
    independent of I_t (it may share examples with it). Under DDP each rank draws its own from the whole
    training set."""
    xtr, ytr = r.data[0], r.data[1]
    idx = torch.randperm(len(ytr), generator=r.gen)[:n].to(r.device)
    x = xtr[idx]
    if r.cfg.augment:
        from .augment import random_crop_flip

        x = random_crop_flip(x, r.gen)
    if getattr(r.cfg, "channels_last", False) and x.dim() == 4:     # as the descent batches
        x = x.contiguous(memory_format=torch.channels_last)
    return x, ytr[idx]


def _epoch(r: _Run, st: _State, epoch: int, bar) -> tuple[float, float] | None:
    """Train one epoch; (mean loss, mean accuracy) over its steps, or None when it diverged
    (``st.diverged_at`` set)."""
    D, xtr, ytr = r.D, r.data[0], r.data[1]
    N = len(ytr)
    r.model.train()
    perm = torch.randperm(N, generator=torch_generator(r.cfg.seed, "shuffle", epoch))
    perm = torch.cat([perm, perm[:r.shard_len * D.world - N]])[D.rank::D.world].to(r.device)
    # crops and flips from their own stream, restarted each epoch: a resumed run draws the same ones
    # (under DDP every rank draws the same offsets, for its own images)
    aug = torch_generator(r.cfg.seed, "augment", epoch) if r.cfg.augment else None
    tot_loss = tot_acc = 0.0
    l2 = 0.0 if r.cfg.task in ("sam", "sgd") else None     # Σ over the steps of (λ/2)‖w_t‖² (train_objective)
    peak = float(np.max(r.lrs))
    # the same batches with or without data_on_device (built at once on the device, or step by step)
    batches = epoch_batches(xtr, ytr, perm, r.spe, r.bs, aug, on_device=r.cfg.data_on_device,
                            channels_last=r.cfg.channels_last)
    for i, (xb, yb) in enumerate(batches):
        step = (epoch - 1) * r.spe + i
        for g in r.opt.param_groups:
            g["lr"] = float(r.lrs[step])
        if r.cfg.rho_schedule == "lr":
            r.opt.set_rho(rho_at(r.cfg.rho, r.lrs, step, peak))
        if r.cfg.eps_ramp:
            st.eps_scale = min(1.0, (step + 1) / (r.cfg.eps_ramp * r.spe))
        if l2 is not None:
            l2 = l2 + l2_term(r.opt)
        loss, acc = _switched_step(r, st, xb, yb, epoch)
        bad = 0.0 if math.isfinite(loss) else 1.0
        if D.on:
            bad = D.sum([bad], r.device)[0]
        if bad:
            st.diverged_at = {"epoch": epoch, "step": step, "loss": loss if math.isfinite(loss) else str(loss)}
            return None
        tot_loss, tot_acc = tot_loss + loss, tot_acc + acc
        bar.update(1)
    st.l2_mean = None if l2 is None else float(l2) / r.spe
    return tot_loss / r.spe, tot_acc / r.spe


def rho_at(rho: float, lrs, step: int, peak: float | None = None) -> float:
    """ρ of update ``step`` under ``rho_schedule="lr"``: ρ_t = ρ · (γ_t / γ_peak), γ = ``lrs`` (the run's
    :func:`lr_schedule`) and γ_peak its maximum (``peak``, computed if not given) — the learning-rate
    schedule's shape, e.g. ×0.1 at 50 % and 75 % of training for ``schedule="step"`` (thesis Fig. 5.21).
    Computed from the step index alone, so a resumed run uses the same ρ_t. (Not
    :func:`toymodels.torch.sam_schedule.rho_schedule` ``("step")``: it decays from step ⌈aT⌉, the
    learning rate of :func:`lr_schedule` from ⌊aT⌋.)"""
    peak = float(np.max(lrs)) if peak is None else peak
    return float(rho) * (float(lrs[step]) / peak)


@torch.no_grad()
def l2_term(opt: torch.optim.Optimizer):
    """Σ over the optimizer's parameter groups g of (λ_g/2)·‖w_g‖², λ_g = ``g["weight_decay"]`` — the
    ℓ2 term whose gradient PyTorch's SGD / Adam ``weight_decay`` adds (λ_g·w) to every parameter the
    optimizer holds (weights, biases and normalization parameters alike). A float64 tensor on the
    parameters' device (0.0 when no group has weight decay); no host synchronization."""
    total = 0.0
    for g in opt.param_groups:
        lam = float(g.get("weight_decay", 0.0) or 0.0)
        params = [p for p in g["params"]]
        if lam and params:
            norms = torch._foreach_norm([p.detach() for p in params], 2)
            total = total + torch.stack(norms).double().pow(2).sum() * (lam / 2.0)
    return total


# ------------------------------------------------------------------------------------------------
# deep-net settings of thesis Ch. 5 (issue 16): ERM <-> SAM switching, early stopping
# ------------------------------------------------------------------------------------------------
def phase_of(cfg: TrainConfig, epoch: int) -> str:
    """The method of ``epoch``: ``"sam"`` or ``"erm"`` (tasks sam / sgd) until ``switch_at`` − 1, then
    ``switch_to``; ``"at"`` for adversarial training. Depends only on the epoch (resume-safe)."""
    first = {"sam": "sam", "sgd": "erm"}.get(cfg.task, cfg.task)
    return first if cfg.switch_at is None or epoch < cfg.switch_at else cfg.switch_to


def _erm_step(r: _Run, x, y) -> tuple[float, float]:
    """One plain ERM step (mean cross-entropy) with the base optimizer of the SAM wrapper."""
    base = getattr(r.opt, "base_optimizer", r.opt)
    base.zero_grad(set_to_none=True)
    with r.amp_ctx():
        out = r.model(x)
        loss = F.cross_entropy(out.float() if out.dtype in (torch.float16, torch.bfloat16) else out, y)
    r.scaler.scale(loss).backward()
    r.scaler.step(base)
    r.scaler.update()
    return float(loss.detach()), float((out.detach().argmax(1) == y).float().mean())


def _switched_step(r: _Run, st: _State, x, y, epoch: int) -> tuple[float, float]:
    """``_step`` without a switch; with ``switch_to``, the step of :func:`phase_of` ``(epoch)``."""
    if r.cfg.switch_to is None:
        return _step(r, st, x, y)
    if phase_of(r.cfg, epoch) == "erm":
        return _erm_step(r, x, y)
    if r.cfg.task == "sam":
        return _step(r, st, x, y)
    # ERM -> SAM: exactly train-sam's step (the same SAM options of the config)
    import dataclasses

    return _step(dataclasses.replace(r, cfg=dataclasses.replace(r.cfg, task="sam")), st, x, y)


def best_epoch(values) -> tuple[int, float]:
    """``(epoch, value)`` of the largest value among ``(epoch, value)`` pairs; the earliest epoch on ties
    (the rule :func:`run` applies epoch by epoch for ``early_stop``)."""
    best = None
    for e, v in values:
        if best is None or v > best[1]:
            best = (int(e), float(v))
    return best


def _heldout_acc(r: _Run) -> float:
    """Accuracy on the held-out split: under PGD-``eval_pgd_steps`` (α = ε/4, one random start from the
    fixed stream ``(seed, "heldout-noise")``) for task ``at`` (Rice et al. 2020), clean otherwise. The
    held-out set is replicated: every rank computes the same number."""
    x, y = r.hold
    r.net.eval()
    g = torch_generator(r.cfg.seed, "heldout-noise")
    correct = 0.0
    for i in range(0, len(y), 500):
        xb, yb = x[i:i + 500], y[i:i + 500]
        if r.cfg.task == "at":
            starts = attacks.uniform_noise((1,) + tuple(xb.shape), r.cfg.eps, g, xb)
            xb = xb + attacks.pgd(r.net, xb, yb, r.cfg.eps, r.cfg.eps / 4, r.cfg.eval_pgd_steps, 1, noise=starts)
        with torch.no_grad():
            correct += float((r.net(xb).argmax(1) == yb).sum())
    return correct / len(y)


@torch.no_grad()
def _noisy_fit(r: _Run) -> float:
    """Label noise: the fraction of the (first ≤ 1024) relabelled training points the model predicts with
    their *noisy* label (eval mode, no augmentation) — how far it has fitted the noise (thesis Fig. 5.12)."""
    r.net.eval()
    x, y = r.data[0][r.noisy_idx], r.data[1][r.noisy_idx]
    hits = sum(float((r.net(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum()) for i in range(0, len(y), 500))
    return hits / len(y)


def _track_best(r: _Run, st: _State, epoch: int) -> float:
    """The held-out accuracy of this epoch; keeps the model state of the best epoch so far in ``st.best``
    (with ``early_stop``)."""
    acc = _heldout_acc(r)
    if r.cfg.early_stop and (st.best is None or acc > st.best["acc"]):
        st.best = {"epoch": epoch, "acc": acc,
                   "model_state": {k: v.detach().clone() for k, v in r.net.state_dict().items()}}
    return acc


def _final_best(r: _Run, st: _State) -> dict | None:
    """The final evaluation of the early-stopped (best) model, or None without ``early_stop``."""
    if st.best is None:
        return None
    import copy

    net = copy.deepcopy(r.net)
    net.load_state_dict(st.best["model_state"])
    _, _, xte, yte = r.data
    rec = _evaluate(r.cfg, net, xte, yte, r.ev_idx[:r.cfg.final_n], r.D, r.device,
                    pgd_steps=r.cfg.final_pgd_steps, restarts=r.cfg.final_restarts, sparsity_x=r.sparsity_x)
    return {**rec, **records.final_by_eps(r, net)}


def _keep_switch(r: _Run, st: _State, epoch: int) -> None:
    """With ``interpolate_switch``: keep the weights at the start of epoch ``switch_at`` (w_switch)."""
    if r.cfg.interpolate_switch and epoch == r.cfg.switch_at and st.w_switch is None:
        st.w_switch = {k: v.detach().clone() for k, v in r.net.state_dict().items()}


def _settings_result(r: _Run, st: _State, final_best) -> dict:
    """The result fields of the deep-net settings (only those configured)."""
    out = {}
    if r.cfg.early_stop:
        out.update(best_epoch=None if st.best is None else st.best["epoch"],
                   best_heldout_acc=None if st.best is None else st.best["acc"], final_best=final_best)
    if r.cfg.label_noise > 0:
        out["n_noisy_labels"] = int(noisy_count(len(r.data[1]), r.cfg.label_noise))
    if r.cfg.switch_to is not None:
        out["phases"] = {"first": phase_of(r.cfg, 1), "then": r.cfg.switch_to, "switch_at": r.cfg.switch_at}
    return out


def _checkpoint(r: _Run, st: _State, epoch: int) -> None:
    mine = {"rng": _rng_states(r.gen), "free_delta": None if st.free_delta is None else st.free_delta.cpu()}
    states = [mine]
    if r.D.on:                                  # rank 0 stores every rank's RNG / Free-AT state
        states = [None] * r.D.world
        dist.all_gather_object(states, mine)
    if r.is_main:
        _save_checkpoint(r.ckpt_path, {
            "model_state": r.net.state_dict(), "optimizer_state": r.opt.state_dict(), "epoch": epoch,
            "rng_states": states[0]["rng"], "free_delta": states[0]["free_delta"],
            "rank_states": states, "world_size": r.D.world, "history": st.history, "config": r.cfg.as_dict(),
            "scaler_state": r.scaler.state_dict() if r.amp_on else None,
            "elle_a": None if st.sched is None else st.sched.state_dict(), "best": st.best,
            "w_switch": st.w_switch})


def _train(r: _Run, st: _State, show: bool) -> None:
    """The epochs from ``st.start_epoch``: train, evaluate, checkpoint."""
    cfg = r.cfg
    with _progress(total=(cfg.epochs - st.start_epoch + 1) * r.spe, disable=not (show and r.is_main),
                   desc=f"train-{cfg.task}", unit="step") as bar:
        for epoch in range(st.start_epoch, cfg.epochs + 1):
            _keep_switch(r, st, epoch)
            means = _epoch(r, st, epoch, bar)
            if means is None:
                return
            tr_loss, tr_acc = r.D.sum(list(means), r.device)
            rec = r.evaluate(cfg.eval_n, cfg.eval_pgd_steps, 1)
            if r.hold is not None:
                rec["heldout_acc"] = _track_best(r, st, epoch)
            if r.noisy_idx is not None and len(r.noisy_idx):
                rec["noisy_fit"] = _noisy_fit(r)
            rec.update(records.sharpness_record(r, epoch))
            st.history.append({"epoch": epoch, "train_loss": tr_loss / r.D.world,
                               **({} if st.l2_mean is None else {"train_objective": tr_loss / r.D.world + st.l2_mean}),
                               "train_acc": None if math.isnan(tr_acc) else tr_acc / r.D.world, **rec,
                               **({} if st.sched is None else {"elle_a_lambda": st.sched.lam,
                                                               "elle_a_switch_ons": st.sched.n_on})})
            if r.ckpt_path and (epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs):
                _checkpoint(r, st, epoch)


def run(cfg: TrainConfig, *, progress: bool = True, return_model: bool = False):
    """Train as configured and return the JSON-able result (see the module docstring); with
    ``return_model`` also the trained (bare, non-DDP) module: ``(result, model)``.

    The result holds ``config`` (resolved), ``device``, ``world_size``, ``task``, ``history``,
    ``co_epoch``, ``co`` (1 if CO was detected, else 0; None outside AT), ``final``, ``diverged``,
    ``diverged_at``, ``steps_per_epoch``, ``runtime_s`` and ``n_params``. With ``out`` the checkpoint is written there (no ``result.json``: that is the CLI's)."""
    with _kernels(bool(cfg.deterministic)):
        D = _init_dist(cfg.device)
        r = _setup(resolve(cfg, D.world), D)
        w0 = records.initial_convs(r.net) if r.cfg.record_filters else None     # the seed's init, also on resume
        if r.cfg.out and r.is_main:
            os.makedirs(r.cfg.out, exist_ok=True)
        st = _start(r)
        t0 = time.perf_counter()
        try:
            _train(r, st, progress)
        except Exception as exc:
            if r.cfg.compile and is_compile_error(exc):
                raise compile_failure(exc, r.device) from None
            raise
        runtime = time.perf_counter() - t0
        final = final_best = None
        if st.diverged_at is None:
            final = r.evaluate(r.cfg.final_n, r.cfg.final_pgd_steps, r.cfg.final_restarts)
            final.update(records.final_by_eps(r, r.net))
            if r.cfg.final_linearization:
                final.update(records.final_linearization_of(r))
            final_best = _final_best(r, st)
    co_epoch = attacks.detect_co(st.history) if r.cfg.task == "at" else None
    result = {
        "config": r.cfg.as_dict(), "device": device_name(r.device), "world_size": D.world, "task": r.cfg.task,
        # "co": 1/0 so that a sweep's --metric co is the CO rate over seeds (None outside AT)
        "history": st.history, "co_epoch": co_epoch, "co": None if r.cfg.task != "at" else int(co_epoch is not None),
        "final": final, "diverged": st.diverged_at is not None, "diverged_at": st.diverged_at,
        "steps_per_epoch": r.spe, "runtime_s": runtime, "n_params": sum(p.numel() for p in r.net.parameters()),
        **_settings_result(r, st, final_best), **records.figure_records(r, st, w0), **records.sharpness_final(r, st),
    }
    return (result, r.net) if return_model else result
