"""One training loop for the torch layer: adversarial training (``task="at"``, thesis Ch. 2), SAM
(``"sam"``, Ch. 5) and large-step SGD (``"sgd"``, Ch. 6), on cpu or cuda, single process or DDP.

Objective per minibatch B (mean cross-entropy ℓ of the logits of x ∈ [0, 1]):

* ``at``:  (1/|B|) Σ ℓ(xₙ + δₙ, yₙ) + λ Ω_B  — δ from the attack (none, FGSM, FGSM-RS, PGD-k, held
  fixed), Ω the GradAlign term (eq. 2.7, :func:`toymodels.torch.attacks.gradalign`); ``free``
  replays each minibatch ``free_replays`` times with a persistent δ (Free-AT).
* ``sam``: the SAM / m-SAM update of :func:`toymodels.torch.sam.sam_update` (ρ, m, normalized or not).
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
(1/k) Σ_G L_G(w + ρ ∇L_G/‖∇L_G‖) over chunks G of m eval points). ``co_epoch`` is
:func:`toymodels.cnn.train.detect_co` of the AT history; ``final`` repeats the evaluation with
PGD-``final_pgd_steps``-``final_restarts`` on ``final_n`` points. A NaN/inf training loss stops the run:
``diverged`` and ``diverged_at`` = {epoch, step, loss}.

Checkpoints (``out`` set): ``<out>/checkpoint.pt`` every ``checkpoint_every`` epochs, written atomically
(tmp file + os.replace), a dict with model/optimizer state, epoch, RNG states (torch cpu/cuda, numpy,
python, the loop's noise generator), history and config; ``resume=True`` continues from it and
reproduces the uninterrupted run exactly (shuffling depends only on (seed, epoch)). The result JSON
goes to ``<out>/result.json``.

Reproducibility: a run is determined by its config and seed. On cuda that needs deterministic kernels:
with ``deterministic=True`` (default) cuDNN autotuning is off and ``torch.use_deterministic_algorithms``
is on (warn-only) for the duration of :func:`run`, and the models avoid ops without a deterministic
cuda backward; ``deterministic=False`` lets cuDNN autotune (faster, not bitwise reproducible).

AMP (``amp=True``): the training forward passes run under float16 autocast with a GradScaler on cuda
(bfloat16 autocast, no scaler, on cpu); the attacks, GradAlign and the evaluation run in full precision.

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
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .. import __version__
from .._cli import UsageError, check_choice, check_int_range, check_nonneg, check_positive
from .._cli import progress as _progress
from .._io import write_json
from . import attacks
from .data import DATASETS, channel_stats, load
from .device import device_name, resolve_device, seed_everything
from .models import MODELS, build_model

__all__ = ["TrainConfig", "run", "resolve", "lr_schedule", "at_step", "TASKS", "ATTACKS", "SCHEDULES", "CHECKPOINT"]

TASKS = ("at", "sam", "sgd")
ATTACKS = ("none", "fgsm", "fgsm-rs", "pgd", "free")
SCHEDULES = ("cyclic", "constant", "step", "warmup-decay")
CHECKPOINT = "checkpoint.pt"
#: config fields that may differ between a run and the checkpoint it resumes from
_RESUMABLE = ("epochs", "out", "resume", "device", "checkpoint_every", "deterministic")


@dataclass
class TrainConfig:
    """One run. ``None`` fields are filled in by :func:`resolve` from the task and model."""

    task: str = "at"
    model: str = "cnn"
    dataset: str = "synthetic"
    data_dir: str | None = None
    n_train: int | None = 256
    n_test: int | None = 128
    epochs: int = 2
    batch_size: int = 64
    optimizer: str | None = None          # sgd | adam (default: adam for the CNN under AT, else sgd)
    lr: float | None = None               # adam 0.003, sgd 0.2 (at) / 0.1
    momentum: float = 0.9
    weight_decay: float | None = None     # sgd 5e-4, adam 0
    schedule: str | None = None           # at: cyclic, sam: step, sgd: warmup-decay
    warmup: str = "linear"                # linear | exponential
    warmup_frac: float = 0.1
    warmup_ratio: float = 1e-3
    decay_at: tuple = (0.5, 0.75)
    decay_factor: float = 0.1
    attack: str | None = None             # at: fgsm, else none
    eps: float = 8 / 255
    alpha: float | None = None            # fgsm ε, fgsm-rs 1.25ε, pgd ε/4, free ε
    pgd_steps: int = 10
    free_replays: int = 4
    grad_align: float = 0.0
    grad_align_exact: bool = False
    rho: float = 0.05
    m: int | None = None                  # m-SAM chunk (default: the per-process batch)
    sam_normalize: bool = True
    sparsity_layers: tuple = ("auto",)
    sparsity_threshold: float = 0.95
    sparsity_neurons: int | None = 2048
    sparsity_n: int = 256
    eval_n: int = 64
    eval_pgd_steps: int = 10
    final_n: int = 64                     # thesis: PGD-50-10 on 1,000 points (final_restarts=10)
    final_pgd_steps: int = 50
    final_restarts: int = 1
    filters: int = 4
    dtype: str = "float32"
    amp: bool = False
    deterministic: bool = True            # cuda: deterministic cuDNN / torch kernels (bitwise reproducible)
    device: str = "auto"
    seed: int = 0
    out: str | None = None
    checkpoint_every: int = 1
    resume: bool = False

    def as_dict(self) -> dict:
        d = asdict(self)
        d["decay_at"], d["sparsity_layers"] = list(self.decay_at), list(self.sparsity_layers)
        return d


def resolve(cfg: TrainConfig, world_size: int = 1) -> TrainConfig:
    """Validate (UsageError naming the parameter and its range) and fill in the defaults."""
    check_choice("--task", cfg.task, TASKS)
    check_choice("--model", cfg.model, MODELS)
    check_choice("--dataset", cfg.dataset, DATASETS)
    for name, v in (("--n-train", cfg.n_train), ("--n-test", cfg.n_test)):
        if v is not None:
            check_int_range(name, v, 1)
    check_int_range("--epochs", cfg.epochs, 1)
    check_int_range("--batch-size", cfg.batch_size, 1)
    if cfg.batch_size % world_size:
        raise UsageError(f"--batch-size must be a multiple of the world size {world_size}, got {cfg.batch_size}")
    check_int_range("--seed", cfg.seed, 0, 2**31 - 1)
    check_choice("--dtype", cfg.dtype, ("float32", "float64"))
    attack = cfg.attack or ("fgsm" if cfg.task == "at" else "none")
    check_choice("--attack", attack, ATTACKS)
    if cfg.task != "at" and attack != "none":
        raise UsageError(f"--attack applies only to train-at, got {attack!r} for task {cfg.task}")
    opt = cfg.optimizer or ("adam" if cfg.model == "cnn" and cfg.task == "at" else "sgd")
    check_choice("--optimizer", opt, ("sgd", "adam"))
    lr = cfg.lr if cfg.lr is not None else (0.003 if opt == "adam" else (0.2 if cfg.task == "at" else 0.1))
    check_positive("--lr", lr)
    check_nonneg("--momentum", cfg.momentum)
    if cfg.momentum >= 1:
        raise UsageError(f"--momentum must be in [0, 1), got {cfg.momentum}")
    wd = cfg.weight_decay if cfg.weight_decay is not None else (5e-4 if opt == "sgd" else 0.0)
    check_nonneg("--weight-decay", wd)
    sched = cfg.schedule or {"at": "cyclic", "sam": "step", "sgd": "warmup-decay"}[cfg.task]
    check_choice("--schedule", sched, SCHEDULES)
    check_choice("--warmup", cfg.warmup, ("linear", "exponential"))
    if not 0 < cfg.warmup_frac <= 1:
        raise UsageError(f"--warmup-frac must be in (0, 1], got {cfg.warmup_frac}")
    if not 0 < cfg.warmup_ratio <= 1:
        raise UsageError(f"--warmup-ratio must be in (0, 1], got {cfg.warmup_ratio}")
    for a in cfg.decay_at:
        if not 0 < float(a) < 1:
            raise UsageError(f"--decay-at fractions must lie in (0, 1), got {a}")
    check_positive("--decay-factor", cfg.decay_factor)
    eps = float(cfg.eps)
    if not (math.isfinite(eps) and 0 < eps <= 1):
        raise UsageError(f"--eps must be in (0, 1] (e.g. 8/255), got {cfg.eps!r}")
    check_int_range("--pgd-steps", cfg.pgd_steps, 1)
    check_int_range("--free-replays", cfg.free_replays, 1)
    alpha = cfg.alpha
    if alpha is None:
        alpha = {"fgsm": eps, "fgsm-rs": 1.25 * eps, "pgd": eps / 4, "free": eps, "none": 0.0}[attack]
    elif attack in ("none", "free"):
        raise UsageError("--alpha applies only to --attack fgsm, fgsm-rs or pgd")
    else:
        hi = 2 * eps if attack == "fgsm-rs" else eps
        if not (math.isfinite(alpha) and 0 < alpha <= hi * (1 + 1e-12)):
            raise UsageError(f"--alpha must be in (0, {hi:.6g}] for --attack {attack}, got {alpha!r}")
    check_nonneg("--grad-align", cfg.grad_align)
    if cfg.grad_align > 0 and cfg.task != "at":
        raise UsageError("--grad-align applies only to train-at")
    if cfg.grad_align > 0 and attack == "free":
        raise UsageError("--grad-align cannot be combined with --attack free")
    check_nonneg("--rho", cfg.rho)
    per_rank = cfg.batch_size // world_size
    m = cfg.m if cfg.m is not None else per_rank
    check_int_range("--m", m, 1, per_rank)
    if per_rank % m:
        raise UsageError(f"--m must divide the per-process batch size {per_rank}, got {m}")
    if not -1 <= cfg.sparsity_threshold <= 1:
        raise UsageError(f"--sparsity-threshold must be in [-1, 1], got {cfg.sparsity_threshold}")
    if cfg.sparsity_neurons is not None:
        check_int_range("--sparsity-neurons", cfg.sparsity_neurons, 1)
    for name in ("sparsity_n", "eval_n", "eval_pgd_steps", "final_n", "final_pgd_steps", "final_restarts",
                 "filters", "checkpoint_every"):
        check_int_range("--" + name.replace("_", "-"), getattr(cfg, name), 1)
    if cfg.resume and not cfg.out:
        raise UsageError("--resume needs --out DIR (the folder holding checkpoint.pt)")
    return replace(cfg, attack=attack, optimizer=opt, lr=float(lr), weight_decay=float(wd), schedule=sched,
                   eps=eps, alpha=float(alpha), m=int(m), decay_at=tuple(float(a) for a in cfg.decay_at),
                   sparsity_layers=tuple(cfg.sparsity_layers))


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
def _evaluate(cfg, net, xte, yte, ev_idx, D: _Dist, device, *, pgd_steps, restarts, sparsity_x=None):
    """One history record (sums over this rank's shard, all-reduced). ``net`` is the bare module."""
    net.eval()
    rec = {}
    keys, vals = [], []
    shard = torch.arange(D.rank, len(yte), D.world, device=device)
    c = s = 0.0
    for i in range(0, len(shard), 500):
        idx = shard[i:i + 500]
        ci, si = attacks.accuracy_loss(net, xte[idx], yte[idx])
        c, s = c + ci, s + si
    keys += ["clean_acc", "clean_loss"]
    vals += [c, s]
    n_clean = len(yte)
    idx = ev_idx[D.rank::D.world]
    n_ev = len(ev_idx)
    if cfg.task == "at":
        x, y = xte[idx], yte[idx]
        g = torch.Generator().manual_seed(cfg.seed + 10_007)   # fixed eval noise, not the training RNG
        # draw for the whole eval set then take this rank's rows, so the noise does not depend on ranks
        noise = attacks.uniform_noise((n_ev,) + tuple(x.shape[1:]), cfg.eps, g, x)[D.rank::D.world]
        starts = attacks.uniform_noise((restarts, n_ev) + tuple(x.shape[1:]), cfg.eps, g, x)[:, D.rank::D.world]
        d_f = attacks.fgsm(net, x, y, cfg.eps)
        d_p = attacks.pgd(net, x, y, cfg.eps, cfg.eps / 4, pgd_steps, restarts, noise=starts)
        fa, fl = attacks.accuracy_loss(net, x + d_f, y)
        pa, pl = attacks.accuracy_loss(net, x + d_p, y)
        al = float(attacks.grad_alignment(net, x, y, cfg.eps, noise, per_example=True).sum())
        cs = float(attacks.cosines(d_f, d_p).sum())
        keys += ["fgsm_acc", "fgsm_loss", "pgd_acc", "pgd_loss", "grad_alignment", "cos_fgsm_pgd"]
        vals += [fa, fl, pa, pl, al, cs]
    elif cfg.task == "sam":
        keys.append("sharp_loss")
        vals.append(_sharp_loss_sum(net, xte[idx], yte[idx], cfg.rho, cfg.m, cfg.sam_normalize))
    tot = D.sum(vals, device)
    for k, v in zip(keys, tot):
        rec[k] = v / (n_clean if k.startswith("clean") else n_ev)
    if cfg.task == "sgd" and sparsity_x is not None:
        # on rank 0's copy of the (replicated) inputs: the greedy correlation rule is not a sum
        from .sparsity import feature_sparsity_at

        rec["feature_sparsity"] = feature_sparsity_at(
            net, sparsity_x, cfg.sparsity_layers, threshold=cfg.sparsity_threshold,
            max_neurons=cfg.sparsity_neurons, seed=cfg.seed)
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
            for p, g in zip(params, grads):
                p.add_(g, alpha=scale)
            total += float(F.cross_entropy(net(xb), yb, reduction="sum"))
            for p, g in zip(params, grads):
                p.sub_(g, alpha=scale)
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
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def at_step(cfg: TrainConfig, model, net, x, y, gen: torch.Generator, backward_step, amp_ctx) -> tuple[float, float]:
    """One adversarial-training step (attack none/fgsm/fgsm-rs/pgd, optional GradAlign) on (x, y).

    ``model`` is what the loss goes through (DDP or the bare module), ``net`` the bare module used for
    the attack and the GradAlign double backprop; ``backward_step(loss)`` does zero_grad, backward and
    the optimizer step. Returns (loss, accuracy) on the perturbed batch."""
    reg, g_clean, noise = None, None, None
    if cfg.grad_align > 0 and cfg.attack in ("none", "fgsm"):
        # these attacks draw nothing: GradAlign's η can be drawn first (same draws), so that its
        # host-to-device copy waits for an idle GPU rather than stalling it in the middle of the step
        noise = attacks.uniform_noise(x.shape, cfg.eps, gen, x)
    if cfg.attack == "none":
        xa = x
    elif cfg.attack == "fgsm":
        # the clean input gradient is both the FGSM direction and GradAlign's first gradient
        _, g_clean = attacks.input_grad(net, x, y)
        xa = x + attacks.project(x, cfg.alpha * g_clean.sign(), cfg.eps)
    elif cfg.attack == "fgsm-rs":
        xa = x + attacks.fgsm_rs(net, x, y, cfg.eps, cfg.alpha, generator=gen)
    else:
        xa = x + attacks.pgd(net, x, y, cfg.eps, cfg.alpha, cfg.pgd_steps, generator=gen)
    if cfg.grad_align > 0:
        reg = attacks.gradalign(net, x, y, cfg.eps, noise, generator=gen, exact=cfg.grad_align_exact,
                                clean_grad=g_clean)
    with amp_ctx():
        out = model(xa)
        loss = F.cross_entropy(out.float() if out.dtype in (torch.float16, torch.bfloat16) else out, y)
    backward_step(loss if reg is None else loss + cfg.grad_align * reg)
    return float(loss.detach()), float((out.detach().argmax(1) == y).float().mean())


# ------------------------------------------------------------------------------------------------
# the loop
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


def run(cfg: TrainConfig, *, progress: bool = True, return_model: bool = False):
    """Train as configured and return the JSON-able result (see the module docstring); with
    ``return_model`` also the trained (bare, non-DDP) module: ``(result, model)``."""
    with _kernels(bool(cfg.deterministic)):
        return _run(cfg, progress=progress, return_model=return_model)


def _run(cfg: TrainConfig, *, progress: bool, return_model: bool):  # noqa: C901
    show = progress
    D = _init_dist(cfg.device)
    cfg = resolve(cfg, D.world)
    device = resolve_device(cfg.device)
    if D.on and device.type == "cuda":
        device = torch.device("cuda", D.local_rank)
        torch.cuda.set_device(device)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    gen = seed_everything(cfg.seed)
    gen.manual_seed(cfg.seed + 1_000_003 * D.rank)       # per-rank noise stream for the attacks

    xtr, ytr, xte, yte, K = load(cfg.dataset, cfg.data_dir, cfg.n_train, cfg.n_test, seed=cfg.seed)
    C, H = xtr.shape[1], xtr.shape[2]
    norm = None if cfg.model == "cnn" else channel_stats(cfg.dataset, xtr)
    xtr, ytr = xtr.to(device, dtype), ytr.to(device)
    xte, yte = xte.to(device, dtype), yte.to(device)
    torch.manual_seed(cfg.seed)                            # the same initial weights on every rank
    net = build_model(cfg.model, K, C, H, normalize=norm, filters=cfg.filters, dtype=dtype).to(device)
    model = net
    if D.on:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)

    base_kw = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        base_cls, base_kw = torch.optim.SGD, dict(base_kw, momentum=cfg.momentum)
    else:
        base_cls = torch.optim.Adam
    if cfg.task == "sam":
        from .sam import SAM, sam_update

        opt = SAM(net.parameters(), base_cls, rho=cfg.rho, normalize=cfg.sam_normalize, **base_kw)
    else:
        opt = base_cls(net.parameters(), **base_kw)
    amp_on = bool(cfg.amp) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp_on)
    amp_ctx = (lambda: torch.autocast("cuda", dtype=torch.float16)) if amp_on else \
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(cfg.amp)))

    per_rank = cfg.batch_size // D.world
    N = len(ytr)
    if N < cfg.batch_size:
        raise UsageError(f"--n-train must be >= --batch-size = {cfg.batch_size}, got {N} training images")
    shard_len = math.ceil(N / D.world)
    spe = max(1, shard_len // per_rank)                    # drop the last incomplete batch
    bs = min(per_rank, shard_len)
    lrs = lr_schedule(cfg, spe)
    ev_idx = torch.arange(min(cfg.eval_n, len(yte)), device=device)
    sp_x = xtr[:cfg.sparsity_n] if cfg.task == "sgd" else None
    ckpt_path = os.path.join(cfg.out, CHECKPOINT) if cfg.out else None
    is_main = D.rank == 0
    if cfg.out and is_main:
        os.makedirs(cfg.out, exist_ok=True)

    history, start_epoch, free_delta, diverged_at = [], 1, None, None
    if cfg.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        mine = cfg.as_dict()
        for k, v in ck["config"].items():     # a checkpoint continues only the run that wrote it
            if k not in _RESUMABLE and mine.get(k) != v:
                raise UsageError(f"--resume: the checkpoint in {cfg.out} was written with {k} = {v!r}, "
                                 f"this run has {mine.get(k)!r} (only {', '.join(_RESUMABLE)} may change)")
        net.load_state_dict(ck["model_state"])
        opt.load_state_dict(ck["optimizer_state"])
        if ck.get("scaler_state"):
            scaler.load_state_dict(ck["scaler_state"])
        if ck.get("world_size", 1) != D.world:
            raise UsageError(f"--resume: the checkpoint in {cfg.out} was written by {ck.get('world_size', 1)} "
                             f"process(es), this run has {D.world}")
        # every rank continues its own noise stream (and its own Free-AT δ)
        per_rank = ck.get("rank_states") or [{"rng": ck["rng_states"], "free_delta": ck.get("free_delta")}]
        _set_rng_states(per_rank[D.rank]["rng"], gen)
        free_delta = per_rank[D.rank]["free_delta"]
        if free_delta is not None:
            free_delta = free_delta.to(device)
        history, start_epoch = ck["history"], ck["epoch"] + 1
    else:
        rec = _evaluate(cfg, net, xte, yte, ev_idx, D, device, pgd_steps=cfg.eval_pgd_steps, restarts=1,
                        sparsity_x=sp_x)
        history.append({"epoch": 0, "train_loss": None, "train_acc": None, **rec})

    def backward_step(loss):
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    t0 = time.perf_counter()
    bar = _progress(total=(cfg.epochs - start_epoch + 1) * spe, disable=not (show and is_main),
                   desc=f"train-{cfg.task}", unit="step")
    for epoch in range(start_epoch, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(N, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
        perm = torch.cat([perm, perm[:shard_len * D.world - N]])[D.rank::D.world].to(device)
        tot_loss = tot_acc = 0.0
        for i in range(spe):
            step = (epoch - 1) * spe + i
            for g in opt.param_groups:
                g["lr"] = float(lrs[step])
            idx = perm[i * bs:(i + 1) * bs]
            x, y = xtr[idx], ytr[idx]
            if cfg.task == "sam":
                loss_v = sam_update(model, opt, F.cross_entropy, x, y, m=cfg.m, scaler=scaler if amp_on else None)
                acc_v = float("nan")
            elif cfg.attack == "free":
                if free_delta is None or free_delta.shape != x.shape:
                    free_delta = torch.zeros_like(x)
                free_delta, loss_v, acc_v = attacks.free_at_batch(model, opt, x, y, free_delta, cfg.eps,
                                                                  cfg.free_replays, step_fn=backward_step,
                                                                  autocast=amp_ctx)
            else:
                loss_v, acc_v = at_step(cfg, model, net, x, y, gen, backward_step, amp_ctx)
            bad = 0.0 if math.isfinite(loss_v) else 1.0
            if D.on:
                bad = D.sum([bad], device)[0]
            if bad:
                diverged_at = {"epoch": epoch, "step": step, "loss": loss_v if math.isfinite(loss_v) else str(loss_v)}
                break
            tot_loss, tot_acc = tot_loss + loss_v, tot_acc + acc_v
            bar.update(1)
        if diverged_at is not None:
            break
        tr_loss, tr_acc = D.sum([tot_loss / spe, tot_acc / spe], device)
        rec = _evaluate(cfg, net, xte, yte, ev_idx, D, device, pgd_steps=cfg.eval_pgd_steps, restarts=1,
                        sparsity_x=sp_x)
        history.append({"epoch": epoch, "train_loss": tr_loss / D.world,
                        "train_acc": None if cfg.task == "sam" else tr_acc / D.world, **rec})
        if ckpt_path and (epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs):
            mine = {"rng": _rng_states(gen), "free_delta": None if free_delta is None else free_delta.cpu()}
            states = [mine]
            if D.on:                                  # rank 0 stores every rank's RNG / Free-AT state
                states = [None] * D.world
                dist.all_gather_object(states, mine)
            if is_main:
                _save_checkpoint(ckpt_path, {
                    "model_state": net.state_dict(), "optimizer_state": opt.state_dict(), "epoch": epoch,
                    "rng_states": states[0]["rng"], "free_delta": states[0]["free_delta"],
                    "rank_states": states, "world_size": D.world, "history": history, "config": cfg.as_dict(),
                    "scaler_state": scaler.state_dict() if amp_on else None})
    bar.close()
    runtime = time.perf_counter() - t0

    final = None
    if diverged_at is None:
        fin_idx = torch.arange(min(cfg.final_n, len(yte)), device=device)
        final = _evaluate(cfg, net, xte, yte, fin_idx, D, device, pgd_steps=cfg.final_pgd_steps,
                          restarts=cfg.final_restarts, sparsity_x=sp_x)
    result = {
        "config": cfg.as_dict(), "version": __version__, "device": device_name(device),
        "world_size": D.world, "task": cfg.task, "history": history,
        "co_epoch": attacks.detect_co(history) if cfg.task == "at" else None,
        "final": final, "diverged": diverged_at is not None, "diverged_at": diverged_at,
        "steps_per_epoch": spe, "runtime_s": runtime,
        "n_params": sum(p.numel() for p in net.parameters()),
    }
    if cfg.out and is_main:
        write_json(os.path.join(cfg.out, "result.json"), result)
    return (result, net) if return_model else result
