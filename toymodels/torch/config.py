"""The names and the training configuration of the torch layer — importable without torch.

The command line (``toymodels/torch/*_cli.py``) builds its parsers from these names, so that
``python -m toymodels.torch --help`` and every bad-value error work on a machine without torch.

:class:`TrainConfig` is one run of :mod:`toymodels.torch.train`; :func:`resolve` validates it
(:class:`~toymodels.errors.ConfigError` naming the field and its valid range) and fills in the
defaults that depend on the task and the model.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ..datasets import IMAGE_DATASETS
from ..errors import ConfigError, check_bool, check_choice, check_int, check_nonneg, check_positive, check_range
from ..rng import check_seed

__all__ = ["MODELS", "TASKS", "ATTACKS", "REGS", "FD_REGS", "SCHEMES", "default_reg_lambda", "SCHEDULES", "WARMUPS",
           "OPTIMIZERS", "DTYPES", "WIDTH_MODELS", "SWITCH_TO", "PGD_INITS", "resolve_settings", "KINDS", "NORMS", "CHECKPOINT", "RESUME", "RESUMABLE", "DEVICE_PATTERN", "TrainConfig",
           "resolve", "fit_to_data", "check_speed"]

#: models of :func:`toymodels.torch.models.build_model`
MODELS = ("preact-resnet18", "preact-resnet18-gn", "wrn-28-10", "resnet34", "densenet100-12", "cnn")
#: models that take a width factor (``TrainConfig.width``; default 64)
WIDTH_MODELS = ("preact-resnet18", "preact-resnet18-gn", "resnet34")
#: ``TrainConfig.switch_to``: the method of the epochs from ``switch_at`` on (ERM = plain SGD steps)
SWITCH_TO = ("sam", "erm")
#: training tasks of :func:`toymodels.torch.train.run` (adversarial training, SAM, plain SGD)
TASKS = ("at", "sam", "sgd")
ATTACKS = ("none", "fgsm", "fgsm-rs", "pgd", "free", "n-fgsm")
#: start of the training PGD attack: uniform in the ε-ball, or δ₀ = 0 (the thesis's AT runs, Sec. 2.9)
PGD_INITS = ("random", "zero")
#: regularizers of train-at (:mod:`toymodels.torch.regularizers`; "gradalign" is eq. 2.7 by double backprop)
REGS = ("none", "gradalign", "gradalign-fd", "elle", "elle-a", "gradnorm", "cure")
#: regularizers that take the finite-difference step ``reg_h`` (gradnorm / cure: exact without it)
FD_REGS = ("gradalign-fd", "gradnorm", "cure")
#: finite-difference schemes (error O(h²) / O(h))
SCHEMES = ("central", "forward")
SCHEDULES = ("cyclic", "constant", "step", "warmup-decay")
WARMUPS = ("linear", "exponential")
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")
#: kinds of :func:`toymodels.torch.sharpness.sharpness`
KINDS = ("avg-l2", "worst-l2", "worst-linf")
#: norms of :func:`toymodels.torch.square.square_attack`
NORMS = ("linf", "l2")
CHECKPOINT = "checkpoint.pt"
#: ``TrainConfig.resume``: start fresh, continue a checkpoint that must exist, or continue one if present
RESUME = ("no", "yes", "if-present")
#: what :func:`toymodels.torch.device.resolve_device` accepts
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]{1,3})?"

#: config fields that may differ between a run and the checkpoint it resumes from
RESUMABLE = ("epochs", "out", "resume", "device", "checkpoint_every", "deterministic",
             "channels_last", "data_on_device", "compile", "final_eps", "final_linearization")
#: the most evaluation radii of ``TrainConfig.final_eps``
MAX_FINAL_EPS = 32


@dataclass
class TrainConfig:
    """One run. ``None`` fields are filled in by :func:`resolve` from the task, the model and the data.

    ``eval_n`` / ``final_n`` default to min(64, test images), ``sparsity_n`` to min(256, training
    images); a value given explicitly must fit the data. ``resume``: ``"no"`` (start fresh),
    ``"yes"`` (continue ``out/checkpoint.pt``, which must exist; ``True`` means the same) or
    ``"if-present"`` (continue it if it exists, else start fresh). ``augment``: the standard data
    augmentation of every training batch (random crop with zero padding 4 and random horizontal flip,
    :mod:`toymodels.torch.augment`; drawn from the stream ``(seed, "augment", epoch)``).
    """

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
    alpha_eps: float | None = None        # the step size as a multiple of ε: alpha = alpha_eps · eps
    pgd_steps: int = 10
    pgd_init: str = "random"              # at, attack pgd: random (uniform in the ball) | zero (δ₀ = 0, thesis Sec. 2.9)
    free_replays: int = 4
    grad_align: float = 0.0
    grad_align_exact: bool = False
    nfgsm_k: float = 2.0                  # n-fgsm noise radius kε
    reg: str = "none"                     # none | gradalign | gradalign-fd | elle | gradnorm | cure
    reg_lambda: float | str = "default"   # λ of reg; "default": default_reg_lambda(reg, eps, dataset)
    reg_h: float | None = None            # FD step (gradalign-fd: 1e-3 if None; gradnorm/cure: exact if None)
    reg_scheme: str = "central"           # central (O(h²)) | forward (O(h))
    rho: float = 0.05
    m: int | None = None                  # m-SAM chunk (default: the per-process batch)
    sam_normalize: bool = True
    sam_steps: int = 1                    # SAM ascent steps: k normalized steps of ρ/k (thesis Fig. 5.4)
    sam_perturbation: str = "gradient"    # gradient (SAM) | random (a random direction of norm ρ, Fig. 5.1)
    sam_ascent_batch: str = "same"        # same | other (n-SAM of Fig. 5.1: ascent on another drawn batch, eq. 5.21)
    rho_schedule: str = "constant"        # constant (SAM) | lr: rho_t = rho * lr_t / lr_peak (thesis Fig. 5.21)
    sparsity_layers: tuple = ("auto",)
    sparsity_threshold: float = 0.95
    sparsity_neurons: int | None = 2048
    sparsity_n: int | None = None         # min(256, training images)
    eval_n: int | None = None             # min(64, test images)
    eval_pgd_steps: int = 10
    final_n: int | None = None            # min(64, test images); thesis: PGD-50-10 on 1,000 points
    final_pgd_steps: int = 50
    final_restarts: int = 1
    final_eps: tuple = ()                 # at: extra final PGD radii, e.g. ("4/255", "8/255") (check_final_eps)
    final_linearization: bool = False     # at: linearization error vs ‖δ‖₂ at the end (toymodels.torch.linearization)
    eps_ramp: int = 0                     # at: training ε (and α) grow linearly from 0 over this many epochs (SVHN: 5)
    filters: int = 4
    dtype: str = "float32"
    augment: bool = False                 # random crop (zero padding 4) + horizontal flip of training batches
    # deep-net settings of thesis Ch. 5 (issue 16): see resolve_settings
    width: int | None = None              # model width factor of WIDTH_MODELS (None: 64)
    label_noise: float = 0.0              # fraction of training labels replaced by a different class
    early_stop: bool = False              # keep the model with the best held-out accuracy
    early_stop_n: int = 0                 # held-out images split off the training set (needed by early_stop)
    switch_at: int | None = None          # first epoch trained with switch_to (1..epochs)
    switch_to: str | None = None          # sam (task sgd: ERM -> SAM) | erm (task sam: SAM -> ERM)
    # records of thesis Figs. 5.10 / 6.17 (issue 16): see check_records and toymodels.torch.train
    interpolate_switch: int = 0           # N > 1: loss along (1 − α)·w_switch + α·w_final at N α values
    interpolate_alpha_min: float = -1.0   # the interpolate command's thesis-code range [-1, 2]
    interpolate_alpha_max: float = 2.0
    record_filters: int = 0               # N > 0: weight_change of every conv layer, first N filters of four
    # m-sharpness of thesis Figs. 5.2, 5.3, 5.19 (issue 16): see check_sharpness, toymodels.torch.msharpness
    sharpness_rho: tuple = ()             # radii ρ (strings as given); () = off
    sharpness_steps: tuple = (100,)       # ascent steps K (α = 0.1ρ; α = ρ for K = 1)
    sharpness_m: tuple = (128,)           # m of the m-sharpness; more than one: also m_sharpness_by_m
    sharpness_n: int | None = None        # training points (default min(1024, training images))
    sharpness_every: int = 0              # N > 0: history records every N epochs (epoch 0 included)
    amp: bool = False
    # speed options (issue 16; toymodels.torch.speed): none changes what is computed beyond rounding
    bf16: bool = False                    # bfloat16 autocast (no GradScaler) of the training step, cuda and cpu
    channels_last: bool = False           # model and training batches in torch.channels_last
    data_on_device: bool = False          # each epoch's batches (gather + augmentation) built on the device at once
    compile: bool = False                 # torch.compile of the module the training loss goes through
    deterministic: bool = True            # cuda: deterministic cuDNN / torch kernels (bitwise reproducible)
    device: str = "auto"
    seed: int = 0
    out: str | None = None
    checkpoint_every: int = 1
    resume: str | bool = "no"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["decay_at"], d["sparsity_layers"] = list(self.decay_at), list(self.sparsity_layers)
        return d


def _resume_mode(value) -> str:
    if value is True:
        return "yes"
    if value is False or value is None:
        return "no"
    return check_choice("resume", value, RESUME)


def _check_sizes(cfg: TrainConfig, world_size: int) -> None:
    for name in ("n_train", "n_test"):
        if getattr(cfg, name) is not None:
            check_int(name, getattr(cfg, name), 1)
    check_int("epochs", cfg.epochs, 1)
    check_int("batch_size", cfg.batch_size, 1)
    if cfg.batch_size % world_size:
        raise ConfigError("batch_size", f"must be a multiple of the world size {world_size}", cfg.batch_size)
    if cfg.n_train is not None and cfg.n_train < cfg.batch_size:
        raise ConfigError("batch_size", f"must be <= n_train = {cfg.n_train} (the training images)",
                          cfg.batch_size)
    for name, limit, what in (("eval_n", cfg.n_test, "n_test"), ("final_n", cfg.n_test, "n_test"),
                              ("sparsity_n", cfg.n_train, "n_train")):
        v = getattr(cfg, name)
        if v is not None:
            check_int(name, v, 1)
            if limit is not None and v > limit:
                raise ConfigError(name, f"must be <= {what} = {limit}", v)
    for name in ("eval_pgd_steps", "final_pgd_steps", "final_restarts", "filters", "checkpoint_every",
                 "pgd_steps", "free_replays"):
        check_int(name, getattr(cfg, name), 1)
    if cfg.sparsity_neurons is not None:
        check_int("sparsity_neurons", cfg.sparsity_neurons, 1)


def _resolve_attack(cfg: TrainConfig) -> tuple[str, float, float]:
    attack = cfg.attack or ("fgsm" if cfg.task == "at" else "none")
    check_choice("attack", attack, ATTACKS)
    check_choice("pgd_init", cfg.pgd_init, PGD_INITS)
    if cfg.task != "at" and attack != "none":
        raise ConfigError("attack", f"applies only to task 'at' (train-at), not {cfg.task!r}", attack)
    eps = check_range("eps", cfg.eps, 0.0, 1.0, lo_open=True)
    alpha = cfg.alpha
    if cfg.alpha_eps is not None:
        alpha = _alpha_of_multiple(cfg, attack, eps)
    default = {"fgsm": eps, "fgsm-rs": 1.25 * eps, "pgd": eps / 4, "free": eps, "none": 0.0, "n-fgsm": eps}[attack]
    if alpha is None:
        alpha = default
    elif attack in ("none", "free"):
        if alpha != default:      # a resolved config holds the default
            raise ConfigError("alpha", "applies only to the attacks fgsm, fgsm-rs and pgd", alpha)
    else:
        hi = 2 * eps if attack in ("fgsm-rs", "n-fgsm") else eps
        check_range("alpha", alpha, 0.0, hi * (1 + 1e-12), lo_open=True)
    check_range("nfgsm_k", cfg.nfgsm_k, 0.0, 1.0 / eps)
    if attack != "n-fgsm" and cfg.nfgsm_k != 2.0:
        raise ConfigError("nfgsm_k", "applies only to the attack n-fgsm", cfg.nfgsm_k)
    check_nonneg("grad_align", cfg.grad_align)
    if cfg.grad_align > 0 and cfg.task != "at":
        raise ConfigError("grad_align", "applies only to task 'at' (train-at)", cfg.grad_align)
    if cfg.grad_align > 0 and attack == "free":
        raise ConfigError("grad_align", "cannot be combined with the attack 'free'", cfg.grad_align)
    return attack, eps, float(alpha)


def _alpha_of_multiple(cfg: TrainConfig, attack: str, eps: float) -> float:
    """α = ``alpha_eps`` · ε (thesis Sec. 2.9: PGD-2 AT with α = ε/2, PGD-10 AT with α = 2ε/10, whatever ε
    is); ``alpha`` may be given too only if it is that value (a resolved config holds both)."""
    if attack in ("none", "free"):
        raise ConfigError("alpha_eps", "applies only to the attacks fgsm, fgsm-rs, n-fgsm and pgd", cfg.alpha_eps)
    hi = 2.0 if attack in ("fgsm-rs", "n-fgsm") else 1.0
    k = check_range("alpha_eps", cfg.alpha_eps, 0.0, hi, lo_open=True)
    alpha = float(k) * eps
    if cfg.alpha is not None and not math.isclose(cfg.alpha, alpha, rel_tol=1e-12):
        raise ConfigError("alpha_eps", f"gives alpha = {alpha!r}: give alpha or alpha_eps, not both "
                          f"(alpha = {cfg.alpha!r})", cfg.alpha_eps)
    return alpha


def check_final_eps(cfg: TrainConfig) -> tuple[str, ...]:
    """``final_eps`` checked: at most :data:`MAX_FINAL_EPS` distinct radii in (0, 1], each a number or a
    fraction ``a/b`` (a string, as ``--eps`` parses it, or a float), task ``at`` only. Returns them as
    strings (whitespace stripped; a float as ``str(x)``): the keys of ``final["pgd_acc_by_eps"]``."""
    keys = _as_keys(cfg.final_eps)
    if not keys:
        return ()
    if cfg.task != "at":
        raise ConfigError("final_eps", f"applies only to task 'at' (train-at), not {cfg.task!r}", keys)
    if len(keys) > MAX_FINAL_EPS:
        raise ConfigError("final_eps", f"must list at most {MAX_FINAL_EPS} radii", len(keys))
    _check_radii("final_eps", keys, 1.0)
    return keys


def _as_keys(values) -> tuple[str, ...]:
    """A list of radii (one value, strings or numbers, or None) as stripped strings: the result's keys."""
    if values is None or isinstance(values, (str, int, float)):
        values = () if values is None else (values,)
    return tuple(v.strip() if isinstance(v, str) else str(v) for v in values)


def _check_radii(field: str, keys: tuple, hi: float) -> None:
    """Each of ``keys`` a number or a fraction a/b in (0, ``hi``], no value twice; else ConfigError(field)."""
    from .._cli import parse_number

    seen = set()
    for k in keys:
        try:
            x = parse_number(k)
        except ValueError:
            raise ConfigError(field, f"must be numbers in (0, {hi:g}] (a fraction a/b is allowed)", k) from None
        check_range(field, x, 0.0, hi, lo_open=True)
        if x in seen:
            raise ConfigError(field, "must not repeat a radius", k)
        seen.add(x)


def default_reg_lambda(reg: str, eps: float, dataset: str | None = None) -> float:
    """λ of ``reg_lambda="default"``.

    On ``photos`` (the embedded data): the values calibrated for the toy CNN by the numba CO study,
    :func:`toymodels.cnn.train.default_reg_lambda` (the same for every model: recalibrate for another
    architecture with the study's ``method:λ`` grids). Elsewhere, log-linear in ε between the published
    values at 8/255 and 16/255 (CIFAR-10, PreAct ResNet-18; s = (255ε − 8)/8):

    * gradalign, gradalign-fd: :func:`toymodels.cnn.train.default_lambda` (thesis Table 2.2: 0.2 · 10^s;
      SVHN has its own row);
    * gradnorm: thesis App. 2.11.5, λ = 1000 at 8/255 and 2000 at 16/255: 1000 · 2^s;
    * cure: thesis App. 2.11.5, λ = 700 at 8/255 and 20000 at 16/255: 700 · (200/7)^s;
    * elle, elle-a (λ_max): 5000 at every ε (the order of the λ in Abad Rocamora et al. 2024's CIFAR-10
      scripts; not verified against them here and not re-tuned);
    * none: 0."""
    from ..cnn.train import default_lambda
    from ..cnn.train import default_reg_lambda as photos_reg_lambda

    if dataset == "photos" or reg in ("gradalign", "gradalign-fd"):
        return 0.0 if reg == "none" else float(photos_reg_lambda(reg, eps, dataset) if dataset == "photos"
                                               else default_lambda(eps, dataset))
    s = (255.0 * eps - 8.0) / 8.0
    return {"none": 0.0, "gradnorm": 1000.0 * 2.0 ** s, "cure": 700.0 * (200.0 / 7.0) ** s, "elle": 5000.0,
            "elle-a": 5000.0}[reg]


def _resolve_reg(cfg: TrainConfig, attack: str, eps: float) -> tuple[str, float, float, float | None]:
    """(reg, λ, grad_align, reg_h) of a config: ``grad_align`` > 0 is ``reg="gradalign"`` with that λ."""
    reg = check_choice("reg", cfg.reg, REGS)
    check_choice("reg_scheme", cfg.reg_scheme, SCHEMES)
    lam = cfg.reg_lambda
    if lam != "default":
        lam = check_nonneg("reg_lambda", lam)
    if cfg.grad_align > 0:
        if reg not in ("none", "gradalign") or (reg == "gradalign" and lam not in ("default", cfg.grad_align)):
            raise ConfigError("grad_align", f"is GradAlign's λ (reg = 'gradalign'): give either grad_align or "
                              f"reg / reg_lambda, not both (reg = {reg!r}, reg_lambda = {cfg.reg_lambda!r})",
                              cfg.grad_align)
        reg, lam = "gradalign", float(cfg.grad_align)
    elif lam == "default":
        lam = default_reg_lambda(reg, eps, cfg.dataset)
    elif reg == "none" and lam != 0:
        raise ConfigError("reg_lambda", "needs a regularizer (reg)", lam)
    if reg != "none" and cfg.task != "at":
        raise ConfigError("reg", "applies only to task 'at' (train-at)", reg)
    if reg != "none" and attack == "free":
        raise ConfigError("reg", "cannot be combined with the attack 'free'", reg)
    h = cfg.reg_h
    if h is not None:
        if reg not in FD_REGS:
            raise ConfigError("reg_h", "applies only to reg " + ", ".join(FD_REGS), h)
        check_range("reg_h", h, 0.0, 1.0, lo_open=True)
    elif reg == "gradalign-fd":
        h = 1e-3
    return reg, float(lam), (float(lam) if reg == "gradalign" else 0.0), (None if h is None else float(h))


def _resolve_optimizer(cfg: TrainConfig) -> tuple[str, float, float, str]:
    opt = cfg.optimizer or ("adam" if cfg.model == "cnn" and cfg.task == "at" else "sgd")
    check_choice("optimizer", opt, OPTIMIZERS)
    lr = cfg.lr if cfg.lr is not None else (0.003 if opt == "adam" else (0.2 if cfg.task == "at" else 0.1))
    check_positive("lr", lr)
    check_range("momentum", cfg.momentum, 0.0, 1.0, hi_open=True)
    wd = cfg.weight_decay if cfg.weight_decay is not None else (5e-4 if opt == "sgd" else 0.0)
    check_nonneg("weight_decay", wd)
    sched = cfg.schedule or {"at": "cyclic", "sam": "step", "sgd": "warmup-decay"}[cfg.task]
    check_choice("schedule", sched, SCHEDULES)
    check_choice("warmup", cfg.warmup, WARMUPS)
    check_range("warmup_frac", cfg.warmup_frac, 0.0, 1.0, lo_open=True)
    check_range("warmup_ratio", cfg.warmup_ratio, 0.0, 1.0, lo_open=True)
    for a in cfg.decay_at:
        check_range("decay_at", a, 0.0, 1.0, lo_open=True, hi_open=True)
    check_positive("decay_factor", cfg.decay_factor)
    return opt, float(lr), float(wd), sched


SAM_PERTURBATIONS = ("gradient", "random")
#: ``TrainConfig.sam_ascent_batch``: the SAM ascent on the descent batch, or on another batch drawn
#: from the training set (n-SAM, thesis Sec. 5.11 / eq. 5.21)
SAM_ASCENT_BATCHES = ("same", "other")
#: ``TrainConfig.rho_schedule``: ρ constant (standard SAM) or following the learning-rate schedule,
#: ρ_t = ρ · γ_t / max_s γ_s (thesis App. 5.12.6, Fig. 5.21: "the same piecewise constant schedule as γ_t")
RHO_FOLLOWS = ("constant", "lr")


def _check_sam_variant(cfg: TrainConfig) -> None:
    """``sam_steps`` in [1, 1000], ``sam_perturbation`` known; the random one takes no ascent steps and
    has norm ρ (so ``sam_normalize``); as :func:`toymodels.torch.sam.check_sam_options`.
    ``sam_ascent_batch`` in :data:`SAM_ASCENT_BATCHES`; ``"other"`` only with the gradient ascent and
    only for runs with SAM steps."""
    k = check_int("sam_steps", cfg.sam_steps, 1, 1000)
    kind = check_choice("sam_perturbation", cfg.sam_perturbation, SAM_PERTURBATIONS)
    if kind == "random" and k != 1:
        raise ConfigError("sam_steps", "must be 1 with the random perturbation (no gradient ascent)", k)
    if kind == "random" and not cfg.sam_normalize:
        raise ConfigError("sam_perturbation", "'random' draws a direction of norm rho: needs the normalized ascent (sam_normalize)", kind)
    where = check_choice("sam_ascent_batch", cfg.sam_ascent_batch, SAM_ASCENT_BATCHES)
    if where == "other" and kind == "random":
        raise ConfigError("sam_ascent_batch", "'other' needs the gradient ascent: the random perturbation uses no "
                          "ascent batch (sam_perturbation = 'gradient')", where)
    if where == "other" and not (cfg.task == "sam" or cfg.switch_to == "sam"):
        raise ConfigError("sam_ascent_batch", "'other' applies only to SAM steps (task sam, or switch_to sam)", where)
    rs = check_choice("rho_schedule", cfg.rho_schedule, RHO_FOLLOWS)
    if rs != "constant" and not (cfg.task == "sam" or cfg.switch_to == "sam"):
        raise ConfigError("rho_schedule", f"{rs!r} applies only to SAM steps (task sam, or switch_to sam)", rs)


def resolve(cfg: TrainConfig, world_size: int = 1) -> TrainConfig:
    """Validate ``cfg`` (:class:`ConfigError` naming the field and its range) and fill in the defaults.

    Sizes that depend on the data (``eval_n``, ``final_n``, ``sparsity_n`` when ``n_test`` /
    ``n_train`` is None, i.e. the whole split) are filled in by :func:`fit_to_data` once it is loaded."""
    check_choice("task", cfg.task, TASKS)
    check_choice("model", cfg.model, MODELS)
    check_choice("dataset", cfg.dataset, IMAGE_DATASETS)
    check_seed(cfg.seed)
    check_choice("dtype", cfg.dtype, DTYPES)
    check_bool("augment", cfg.augment)
    check_speed(cfg)
    _check_sizes(cfg, world_size)
    resolve_settings(cfg)
    attack, eps, alpha = _resolve_attack(cfg)
    reg, reg_lambda, grad_align, reg_h = _resolve_reg(cfg, attack, eps)
    opt, lr, wd, sched = _resolve_optimizer(cfg)
    check_nonneg("rho", cfg.rho)
    _check_sam_variant(cfg)
    per_rank = cfg.batch_size // world_size
    m = cfg.m if cfg.m is not None else per_rank
    check_int("m", m, 1, per_rank)
    if per_rank % m:
        raise ConfigError("m", f"must divide the per-process batch size {per_rank}", m)
    check_range("sparsity_threshold", cfg.sparsity_threshold, -1.0, 1.0)
    layers = tuple(cfg.sparsity_layers)
    if not layers:
        raise ConfigError("sparsity_layers", "must name at least one layer (or auto)", layers)
    resume = _resume_mode(cfg.resume)
    if resume != "no" and not cfg.out:
        raise ConfigError("resume", "needs out (the folder holding checkpoint.pt)", cfg.resume)
    out = replace(cfg, attack=attack, reg=reg, reg_lambda=reg_lambda, grad_align=grad_align, reg_h=reg_h,
                  nfgsm_k=float(cfg.nfgsm_k), optimizer=opt, lr=lr, weight_decay=wd, schedule=sched, eps=eps,
                  alpha=alpha, m=int(m), decay_at=tuple(float(a) for a in cfg.decay_at), sparsity_layers=layers,
                  resume=resume)
    out = replace(out, final_eps=check_final_eps(cfg))
    out = replace(out, sharpness_rho=check_sharpness(cfg))
    if cfg.final_linearization and cfg.task != "at":
        raise ConfigError("final_linearization", f"applies only to task 'at' (train-at), not {cfg.task!r}")
    if cfg.eps_ramp:
        if cfg.task != "at":
            raise ConfigError("eps_ramp", f"applies only to task 'at' (train-at), not {cfg.task!r}", cfg.eps_ramp)
        check_int("eps_ramp", cfg.eps_ramp, 0, 10 ** 6)
    # the training set is what remains after the held-out split of early stopping
    return fit_to_data(out, cfg.n_train - cfg.early_stop_n, cfg.n_test) if cfg.n_train and cfg.n_test else out


def check_speed(cfg: TrainConfig) -> None:
    """Check the speed options (``bf16``, ``channels_last``, ``data_on_device``, ``compile``): booleans;
    ``bf16`` excludes ``amp`` (float16 + GradScaler on cuda) and needs ``dtype="float32"`` (autocast does
    not touch float64); ConfigError naming the field."""
    for name in ("bf16", "channels_last", "data_on_device", "compile"):
        check_bool(name, getattr(cfg, name))
    if cfg.bf16 and cfg.amp:
        raise ConfigError("bf16", "cannot be combined with amp (choose one precision: amp = float16 + GradScaler "
                          "on cuda, bfloat16 on cpu; bf16 = bfloat16 everywhere)", cfg.bf16)
    if cfg.bf16 and cfg.dtype != "float32":
        raise ConfigError("bf16", f"needs dtype float32 (autocast leaves {cfg.dtype} alone)", cfg.bf16)


def resolve_settings(cfg: TrainConfig) -> None:
    """Check the deep-net settings (``width``, ``label_noise``, ``early_stop``/``early_stop_n``,
    ``switch_at``/``switch_to``); ConfigError naming the field and its valid range."""
    if cfg.width is not None:
        if cfg.model not in WIDTH_MODELS:
            raise ConfigError("width", "applies only to the models " + ", ".join(WIDTH_MODELS), cfg.width)
        check_int("width", cfg.width, 1, 4096)
    check_range("label_noise", cfg.label_noise, 0.0, 1.0)
    check_bool("early_stop", cfg.early_stop)
    check_int("early_stop_n", cfg.early_stop_n, 0)
    if cfg.early_stop and cfg.early_stop_n < 1:
        raise ConfigError("early_stop_n", "must be >= 1 (the held-out images) with early_stop", cfg.early_stop_n)
    if cfg.early_stop_n and cfg.n_train is not None and cfg.early_stop_n > cfg.n_train - cfg.batch_size:
        raise ConfigError("early_stop_n", f"must be <= n_train - batch_size = {cfg.n_train - cfg.batch_size} "
                          "(the held-out images are split off the training set)", cfg.early_stop_n)
    if cfg.switch_at is None and cfg.switch_to is not None:
        raise ConfigError("switch_at", f"is needed with switch_to = {cfg.switch_to!r} (the first epoch of it)")
    if cfg.switch_at is not None and cfg.switch_to is None:
        raise ConfigError("switch_to", f"is needed with switch_at = {cfg.switch_at} ('sam' or 'erm')")
    if cfg.switch_to is not None:
        check_choice("switch_to", cfg.switch_to, SWITCH_TO)
        need = {"sam": "sgd", "erm": "sam"}[cfg.switch_to]
        if cfg.task != need:
            raise ConfigError("switch_to", f"{cfg.switch_to!r} switches from task {need!r}, not {cfg.task!r}",
                              cfg.switch_to)
        check_int("switch_at", cfg.switch_at, 1, cfg.epochs)
    check_records(cfg)


#: the most α values of ``interpolate_switch`` (as the interpolate command's --points)
MAX_INTERP_POINTS = 10_001


def check_records(cfg: TrainConfig) -> None:
    """Check the figure records: ``interpolate_switch`` N is 0 (off) or in [2, 10001] and needs a switch
    (``switch_at``/``switch_to``); ``interpolate_alpha_min`` < ``interpolate_alpha_max``, both in [-100, 100]
    (other than the defaults −1, 2 only with ``interpolate_switch``); ``record_filters`` in [0, 4096]."""
    n = check_int("interpolate_switch", cfg.interpolate_switch, 0, MAX_INTERP_POINTS)
    if n == 1:
        raise ConfigError("interpolate_switch", f"must be 0 (off) or in [2, {MAX_INTERP_POINTS}] (the α values)", n)
    if n and cfg.switch_at is None:
        raise ConfigError("interpolate_switch", "needs switch_at / switch_to: the line runs from the model at the "
                          "start of the switch epoch to the final model", n)
    lo = check_range("interpolate_alpha_min", cfg.interpolate_alpha_min, -100.0, 100.0)
    hi = check_range("interpolate_alpha_max", cfg.interpolate_alpha_max, -100.0, 100.0)
    if hi <= lo:
        raise ConfigError("interpolate_alpha_max", f"must be > interpolate_alpha_min = {lo}", hi)
    if not n and (lo, hi) != (-1.0, 2.0):
        raise ConfigError("interpolate_alpha_min" if lo != -1.0 else "interpolate_alpha_max",
                          "applies only with interpolate_switch (the α values)", lo if lo != -1.0 else hi)
    check_int("record_filters", cfg.record_filters, 0, 4096)


#: the most radii / step counts / m values of the m-sharpness options
MAX_SHARPNESS_LIST = 32


def check_sharpness(cfg: TrainConfig) -> tuple[str, ...]:
    """Check the m-sharpness options (tasks sam and sgd only): ``sharpness_rho`` at most
    :data:`MAX_SHARPNESS_LIST` distinct radii in (0, 10] (numbers or fractions, kept as the strings given:
    the keys of the result's ``m_sharpness``); ``sharpness_steps`` distinct ints in [1, 10000];
    ``sharpness_m`` distinct ints in [1, sharpness_n]; ``sharpness_n`` in [1, training images];
    ``sharpness_every`` in [0, 10^6], > 0 only with radii. Returns the radii as strings."""
    keys = _as_keys(cfg.sharpness_rho)
    every = check_int("sharpness_every", cfg.sharpness_every, 0, 10 ** 6)
    if not keys:
        if every:
            raise ConfigError("sharpness_every", "needs sharpness_rho (the radii to measure)", every)
        return ()
    if cfg.task not in ("sam", "sgd"):
        raise ConfigError("sharpness_rho", f"applies only to tasks 'sam' and 'sgd', not {cfg.task!r}", keys)
    _check_radii("sharpness_rho", keys, 10.0)
    n_train = None if cfg.n_train is None else cfg.n_train - cfg.early_stop_n
    n = cfg.sharpness_n
    if n is not None:
        check_int("sharpness_n", n, 1, n_train)
    for name, lo, hi in (("sharpness_rho", 1, MAX_SHARPNESS_LIST), ("sharpness_steps", 1, MAX_SHARPNESS_LIST),
                         ("sharpness_m", 1, MAX_SHARPNESS_LIST)):
        vals = keys if name == "sharpness_rho" else tuple(getattr(cfg, name) or ())
        if not lo <= len(vals) <= hi:
            raise ConfigError(name, f"must list {lo} to {hi} values", len(vals))
        if len(set(vals)) != len(vals):
            raise ConfigError(name, "must not repeat a value", vals)
    for k in cfg.sharpness_steps:
        check_int("sharpness_steps", k, 1, 10_000)
    top = n if n is not None else (None if n_train is None else min(1024, n_train))
    for m in cfg.sharpness_m:
        check_int("sharpness_m", m, 1, top)
    return keys


def fit_to_data(cfg: TrainConfig, n_train: int, n_test: int) -> TrainConfig:
    """``cfg`` with the data-dependent defaults filled in for ``n_train`` training and ``n_test`` test
    images, and the explicit sizes checked against them."""
    if n_train < cfg.batch_size:
        raise ConfigError("batch_size", f"must be <= the {n_train} training images of {cfg.dataset}",
                          cfg.batch_size)
    sizes = {}
    for name, limit, default, what in (("eval_n", n_test, 64, "test"), ("final_n", n_test, 64, "test"),
                                       ("sparsity_n", n_train, 256, "training")):
        v = getattr(cfg, name)
        if v is None:
            v = min(default, limit)
        elif v > limit:
            raise ConfigError(name, f"must be <= the {limit} {what} images of {cfg.dataset}", v)
        sizes[name] = int(v)
    return replace(cfg, **sizes)
