"""``python -m toymodels.torch {train-at,train-sam,train-sgd}``: the CLI of :mod:`toymodels.torch.train`.

Examples (synthetic data, the single-layer CNN, seconds on a CPU)::

    python -m toymodels.torch train-at --attack fgsm --grad-align 0.2 --eps 8/255 --json
    python -m toymodels.torch train-at --attack n-fgsm --eps 16/255 --json
    python -m toymodels.torch train-at --attack fgsm --reg gradalign-fd --reg-lambda 0.2 --reg-h 1e-3 --json
    python -m toymodels.torch train-sam --rho 0.05 --m 32 --json
    python -m toymodels.torch train-sgd --schedule warmup-decay --json
    python -m toymodels.torch train-at --model preact-resnet18 --dataset cifar10 --data-dir DIR \\
        --n-train 50000 --n-test 10000 --epochs 30 --batch-size 128 --device cuda --out runs/fgsm
    torchrun --nproc_per_node 2 -m toymodels.torch train-sgd --device cpu --json   # DDP

``--json`` prints exactly one JSON object (``config``, ``version``, ``device``, ``history``,
``co_epoch``, ``final``, ``diverged``, ``diverged_at``, ...); ``--out DIR`` writes ``result.json`` and
``checkpoint.pt`` there atomically; ``--resume`` continues from that checkpoint (an error when there is
none), ``--resume-if-present`` continues it when it exists and starts fresh otherwise.

The parsers are built without importing torch (``--help`` and bad values work without it).
"""
from __future__ import annotations

import os
import signal
from contextlib import contextmanager

from .._cli import Choice, Command, Int, InDir, ListOf, Num, Result, Text, parse_number
from ..datasets import IMAGE_DATASETS
from .config import (ATTACKS, DEVICE_PATTERN, DTYPES, MAX_FINAL_EPS, MODELS, OPTIMIZERS, PGD_INITS, REGS, RHO_FOLLOWS,
                     SAM_ASCENT_BATCHES, SAM_PERTURBATIONS, SCHEDULES, SCHEMES, SWITCH_TO, WARMUPS, WIDTH_MODELS,
                     TrainConfig)

__all__ = ["COMMANDS", "add_arguments", "config_from_args", "DEVICE", "MAX_IMAGES"]

PROG = "python -m toymodels.torch"
TASK_OF = {"train-at": "at", "train-sam": "sam", "train-sgd": "sgd"}
#: the ``--device`` option of every torch command
DEVICE = Text(DEVICE_PATTERN, "auto, cpu, cuda or cuda:K")
#: the most images a command holds (CIFAR: 50,000 / 10,000; SVHN: 73,257 / 26,032)
MAX_IMAGES = 100_000
_IMAGES = "images held in memory, 25 KB each while loading"
_LAYER = r"auto|[A-Za-z0-9_.]+(:(in|relu))?"


class _Lambda(Num):
    """GradAlign λ: a number >= 0, or the word 'default'."""

    def describe(self) -> str:
        return "must be a number >= 0 (a fraction a/b is allowed) or 'default'"

    def __call__(self, text: str):
        if str(text).strip().lower() == "default":
            return "default"
        try:
            x = parse_number(text)
        except ValueError:
            self.fail(text, self.describe())
        if x < 0:
            self.fail(text, self.describe())
        return x


class _EpsList(ListOf):
    """Comma-separated radii checked as ``ListOf`` does, returned as the strings given (stripped): the keys
    of ``final["pgd_acc_by_eps"]``."""

    def __call__(self, text: str) -> tuple:
        super().__call__(text)
        return tuple(part.strip() for part in str(text).split(","))


def _data_options(p, d: TrainConfig) -> None:
    p.add_argument("--model", type=Choice(*MODELS), default=d.model, help=f"default: {d.model}")
    p.add_argument("--device", type=DEVICE, default="auto", help="auto (cuda if present, default), cpu, cuda or cuda:K")
    p.add_argument("--dataset", type=Choice(*IMAGE_DATASETS), default=d.dataset, help="default: synthetic")
    p.add_argument("--data-dir", type=InDir(), default=None,
                   help="folder with the dataset's standard files (nothing downloads)")
    p.add_argument("--n-train", type=Int(1, MAX_IMAGES, _IMAGES), default=d.n_train,
                   help=f"training images (default: {d.n_train})")
    p.add_argument("--n-test", type=Int(1, MAX_IMAGES, _IMAGES), default=d.n_test,
                   help=f"test images (default: {d.n_test})")
    p.add_argument("--filters", type=Int(1, 4096, "conv filters of the cnn model"), default=d.filters,
                   help=f"filters of the cnn model (default: {d.filters})")
    p.add_argument("--dtype", type=Choice(*DTYPES), default=d.dtype, help="default: float32")
    p.add_argument("--augment", action="store_true",
                   help="standard augmentation of the training batches: random crop with zero padding 4 and "
                        "random horizontal flip")
    _settings_options(p, d)


def _settings_options(p, d: TrainConfig) -> None:
    """The deep-net settings of thesis Ch. 5 (model width, label noise, early stopping)."""
    p.add_argument("--width", type=Int(1, 4096, "model width factor"), default=None,
                   help="model width factor of " + ", ".join(WIDTH_MODELS) + " (default 64; thesis Fig. 5.18)")
    p.add_argument("--label-noise", type=Num(0, 1), default=d.label_noise,
                   help="fraction p in [0, 1] of training labels replaced, once, by a uniformly drawn different "
                        "class (floor(p·n) labels; thesis Figs. 5.12, 5.22 use 0.6)")
    p.add_argument("--early-stop", action="store_true",
                   help="keep the model of the epoch with the best held-out accuracy (PGD accuracy for train-at); "
                        "needs --early-stop-n")
    p.add_argument("--early-stop-n", type=Int(0, MAX_IMAGES, _IMAGES), default=d.early_stop_n,
                   help="training images held out (not trained on) for early stopping (default 0)")


def _switch_options(p, task: str, d: TrainConfig) -> None:
    """ERM -> SAM (train-sgd) / SAM -> ERM (train-sam) switching (thesis Figs. 5.8-5.9)."""
    other = "erm" if task == "sam" else "sam"
    p.add_argument("--switch-at", type=Int(1, 10 ** 6), default=None,
                   help=f"first epoch trained with --switch-to (in [1, --epochs]; default: no switch)")
    p.add_argument("--switch-to", type=Choice(*SWITCH_TO), default=None,
                   help=f"the method from --switch-at on: {other} (default with --switch-at)")
    if task == "sgd":
        p.add_argument("--rho", type=Num(0), default=d.rho, help="SAM's ρ >= 0 after an ERM -> SAM switch "
                       "(default 0.05; the thesis uses 0.4 on CIFAR-10, 0.2 on CIFAR-100)")
        _ascent_batch_option(p, d)
        _rho_schedule_option(p, d)


def _rho_schedule_option(p, d: TrainConfig) -> None:
    p.add_argument("--rho-schedule", type=Choice(*RHO_FOLLOWS), default=d.rho_schedule,
                   help="constant (standard SAM, default) or lr: rho_t = rho * lr_t / peak lr, the learning-rate "
                   "schedule's shape (thesis Fig. 5.21)")


def _ascent_batch_option(p, d: TrainConfig) -> None:
    p.add_argument("--sam-ascent-batch", type=Choice(*SAM_ASCENT_BATCHES), default=d.sam_ascent_batch,
                   help="same (SAM, default) or other: the ascent on another batch of the same size drawn "
                   "from the training set (n-SAM of thesis Fig. 5.1, eq. 5.21)")


def _optim_options(p, d: TrainConfig) -> None:
    p.add_argument("--epochs", type=Int(1, 10 ** 6), default=d.epochs, help=f"default: {d.epochs}")
    p.add_argument("--batch-size", type=Int(1, 2 ** 16, "examples per step"), default=d.batch_size,
                   help="global batch size (all processes); at most --n-train")
    p.add_argument("--optimizer", type=Choice(*OPTIMIZERS), default=None,
                   help="default: adam for the CNN under AT, else sgd")
    p.add_argument("--lr", type=Num(0, lo_open=True), default=None,
                   help="(peak) learning rate > 0 (default: adam 0.003, sgd 0.2 for AT, 0.1 otherwise)")
    p.add_argument("--momentum", type=Num(0, 1, hi_open=True), default=d.momentum, help="in [0, 1) (default 0.9)")
    p.add_argument("--weight-decay", type=Num(0), default=None, help="default: 5e-4 for sgd, 0 for adam")
    p.add_argument("--schedule", type=Choice(*SCHEDULES), default=None,
                   help="default: at cyclic, sam step, sgd warmup-decay")
    p.add_argument("--warmup", type=Choice(*WARMUPS), default=d.warmup, help="warmup shape of warmup-decay")
    p.add_argument("--warmup-frac", type=Num(0, 1, lo_open=True), default=d.warmup_frac,
                   help="fraction of the steps in warmup, in (0, 1]")
    p.add_argument("--warmup-ratio", type=Num(0, 1, lo_open=True), default=d.warmup_ratio,
                   help="exponential warmup starts at lr × this, in (0, 1]")
    p.add_argument("--decay-at", type=ListOf(Num(0, 1, lo_open=True, hi_open=True), min_len=0, increasing=True),
                   default=d.decay_at, help="increasing fractions in (0, 1) of training where the lr is multiplied "
                   "by --decay-factor (default 0.5,0.75; '' for none)")
    p.add_argument("--decay-factor", type=Num(0, lo_open=True), default=d.decay_factor, help="default 0.1")
    p.add_argument("--eps", type=Num(0, 1, lo_open=True), default=d.eps,
                   help="ℓ∞ radius in (0, 1], e.g. 8/255 (the attacks of train-at, and the evaluation attacks)")


def _task_options(p, task: str, d: TrainConfig) -> None:
    if task == "at":
        p.add_argument("--attack", type=Choice(*ATTACKS), default="fgsm", help="default: fgsm")
        p.add_argument("--alpha", type=Num(0, 1, lo_open=True), default=None,
                       help="step size (default: fgsm ε, fgsm-rs 1.25ε, pgd ε/4, n-fgsm ε; at most ε, 2ε for "
                       "fgsm-rs and n-fgsm)")
        p.add_argument("--alpha-eps", type=Num(0, 2, lo_open=True), default=None,
                       help="step size as a multiple k of ε, α = kε whatever --eps is (thesis Sec. 2.9: PGD-2 AT "
                       "0.5, PGD-10 AT 0.2); k <= 1, <= 2 for fgsm-rs and n-fgsm")
        p.add_argument("--final-eps", type=_EpsList(Num(0, 1, lo_open=True), max_len=MAX_FINAL_EPS, unique=True),
                       default=(), help="after training, also PGD-evaluate the final model at each of these "
                       "radii (the final evaluation's attack and points; e.g. 2/255,4/255,8/255): "
                       "final.pgd_acc_by_eps / pgd_loss_by_eps, keyed by the strings given")
        p.add_argument("--eps-ramp", type=Int(0, 10 ** 6, "epochs"), default=0, metavar="EPOCHS",
                       help="grow the training attack's eps and step size linearly from 0 to --eps over the first "
                       "EPOCHS epochs, per step (thesis Sec. 2.9 on SVHN: 5); evaluations use "
                       "the full eps (default 0: off)")
        p.add_argument("--final-linearization", action="store_true",
                       help="after training, the linearization error |l(x+d) - l(x) - <d, grad l(x)>| vs ||d||_2 at "
                       "||d||_inf = eps (thesis Fig. 2.10) on the final evaluation's points, from FGSM and random "
                       "corners: final.linearization_fgsm / linearization_random, keyed by ||d||_2")
        p.add_argument("--nfgsm-k", type=Num(0, 255), default=d.nfgsm_k,
                       help="n-fgsm noise U[−kε, kε] (default 2, de Jorge et al. 2022)")
        p.add_argument("--pgd-steps", type=Int(1, 10 ** 4), default=d.pgd_steps)
        p.add_argument("--pgd-init", type=Choice(*PGD_INITS), default=d.pgd_init,
                       help="start of the training PGD attack: random (uniform in the ε-ball, default) or zero "
                       "(δ₀ = 0, as the thesis's PGD-2/PGD-10 AT, Sec. 2.9); evaluations always start at random")
        p.add_argument("--free-replays", type=Int(1, 10 ** 3), default=d.free_replays, help="m of Free-AT")
        p.add_argument("--grad-align", type=_Lambda(0), default=0.0,
                       help="GradAlign λ >= 0, or 'default' = 0.2·10^((255ε−8)/8)")
        p.add_argument("--grad-align-exact", action="store_true",
                       help="differentiate through both input gradients (default: only through ∇ℓ(x+η))")
        p.add_argument("--reg", type=Choice(*REGS), default="none",
                       help="regularizer on the clean batch: gradalign (double backprop; = --grad-align), "
                       "gradalign-fd (finite differences), elle, elle-a (ELLE-A's adaptive λ, λ_max = --reg-lambda), "
                       "gradnorm, cure (default: none)")
        p.add_argument("--reg-lambda", type=_Lambda(0), default="default",
                       help="λ of --reg >= 0, or 'default' (published CIFAR-10 values, log-linear in ε)")
        p.add_argument("--reg-h", type=Num(0, 1, lo_open=True), default=None,
                       help="finite-difference step (ℓ₂, input units) of gradalign-fd (default 1e-3), gradnorm and "
                       "cure (default: exact double backprop)")
        p.add_argument("--reg-scheme", type=Choice(*SCHEMES), default="central",
                       help="finite differences: central (error O(h²), default) or forward (O(h))")
    elif task == "sam":
        p.add_argument("--rho", type=Num(0), default=d.rho, help="ascent radius ρ >= 0 (default 0.05)")
        p.add_argument("--m", type=Int(1, 2 ** 16, "examples per step"), default=None,
                       help="m-SAM chunk size, dividing the per-process batch (default: that batch)")
        p.add_argument("--no-normalize", action="store_true", help="ascent ρ∇L instead of ρ∇L/‖∇L‖")
        p.add_argument("--sam-steps", type=Int(1, 1000, "each costs a forward + backward"), default=d.sam_steps,
                       help="ascent steps k: k normalized steps of size ρ/k (thesis Fig. 5.4; default 1 = SAM)")
        p.add_argument("--sam-perturbation", type=Choice(*SAM_PERTURBATIONS), default=d.sam_perturbation,
                       help="gradient (SAM, default) or random: a random direction of norm ρ (thesis Fig. 5.1)")
        _ascent_batch_option(p, d)
        _rho_schedule_option(p, d)
    else:
        p.add_argument("--sparsity-layers", type=ListOf(Text(_LAYER, "NAME, NAME:in, NAME:relu or auto")),
                       default=d.sparsity_layers, help="comma-separated layers: NAME (module output), NAME:in "
                       "(its input), NAME:relu (ReLU of its output), auto (penultimate features, default)")
        p.add_argument("--sparsity-threshold", type=Num(-1, 1), default=d.sparsity_threshold)
        p.add_argument("--sparsity-neurons",
                       type=Int(1, 20_000, "their m × m correlation matrix: 3.2 GB at m = 20,000"),
                       default=d.sparsity_neurons, help="subsample layers to at most this many neurons")
        p.add_argument("--sparsity-n", type=Int(1, MAX_IMAGES, _IMAGES), default=None,
                       help="training inputs for the sparsity coefficient (default: 256, or all if fewer)")


def _eval_options(p, d: TrainConfig) -> None:
    p.add_argument("--eval-n", type=Int(1, MAX_IMAGES, _IMAGES), default=None,
                   help="test points for the per-epoch attacks/metrics (default: 64, or all if fewer)")
    p.add_argument("--eval-pgd-steps", type=Int(1, 10 ** 4), default=d.eval_pgd_steps)
    p.add_argument("--final-n", type=Int(1, MAX_IMAGES, _IMAGES), default=None,
                   help="test points of the final evaluation (default: 64, or all if fewer)")
    p.add_argument("--final-pgd-steps", type=Int(1, 10 ** 4), default=d.final_pgd_steps)
    p.add_argument("--final-restarts", type=Int(1, 10 ** 3), default=d.final_restarts, help="thesis: PGD-50-10")
    p.add_argument("--amp", action="store_true", help="mixed precision (float16 + GradScaler on cuda)")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast of the whole training step, no GradScaler, cuda and cpu (not with --amp)")
    p.add_argument("--channels-last", action="store_true", help="model and training batches in channels-last format")
    p.add_argument("--data-on-device", action="store_true",
                   help="build each epoch's batches (gather + augmentation) on the device at once (same batches)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training forward (a failed compilation exits 1)")
    p.add_argument("--nondeterministic", action="store_true",
                   help="cuda: let cuDNN autotune its kernels (faster; runs are then not bitwise reproducible)")
    p.add_argument("--checkpoint-every", type=Int(1, 10 ** 6), default=d.checkpoint_every,
                   help="epochs between checkpoints")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_const", const="yes", default="no",
                   help="continue from --out/checkpoint.pt (an error when there is none)")
    g.add_argument("--resume-if-present", dest="resume", action="store_const", const="if-present",
                   help="continue from --out/checkpoint.pt when it exists, else start fresh")


class _Strings(ListOf):
    """A ``ListOf`` checked as such, returned as the strings given (stripped): the m-sharpness radii."""

    def __call__(self, text: str) -> tuple:
        super().__call__(text)
        return tuple(part.strip() for part in str(text).split(","))


def _sharpness_options(p, d: TrainConfig) -> None:
    """m-sharpness of the trained model (thesis Figs. 5.2, 5.3, 5.19; toymodels.torch.msharpness)."""
    p.add_argument("--sharpness-rho", type=_Strings(Num(0, 10, lo_open=True), max_len=32, unique=True), default=(),
                   help="radii ρ in (0, 10]: the result gets m_sharpness = {K: {ρ: value}} of the final model on "
                   "--sharpness-n training points (default: none)")
    p.add_argument("--sharpness-steps", type=ListOf(Int(1, 10_000), max_len=32, unique=True),
                   default=d.sharpness_steps, help="projected ascent steps K (α = 0.1ρ; α = ρ for K = 1, SAM's "
                   "step; default 100, the thesis's); several: also m_sharpness_suboptimality s_K / s_Kmin")
    p.add_argument("--sharpness-m", type=ListOf(Int(1, 2 ** 16), max_len=32, unique=True), default=d.sharpness_m,
                   help="m of the m-sharpness (default 128); several: also m_sharpness_by_m at the first ρ")
    p.add_argument("--sharpness-n", type=Int(1, MAX_IMAGES, _IMAGES), default=None,
                   help="training points of the m-sharpness (default: 1024, or all if fewer)")
    p.add_argument("--sharpness-every", type=Int(0, 10 ** 6), default=d.sharpness_every,
                   help="N > 0: history records m_sharpness (test-time BN) and m_sharpness_train_bn (training-time "
                   "BN) every N epochs, epoch 0 included, at the first ρ, m and the largest K (default 0: off)")


def add_arguments(p, task: str) -> None:
    """The options of ``train-<task>`` (no torch import)."""
    d = TrainConfig()
    _data_options(p, d)
    _optim_options(p, d)
    _task_options(p, task, d)
    if task in ("sam", "sgd"):
        _switch_options(p, task, d)
        _interpolate_options(p, d)
        _sharpness_options(p, d)
    _eval_options(p, d)
    p.add_argument("--record-filters", type=Int(0, 4096, "filters per layer"), default=d.record_filters,
                   help="N > 0: the result gets weight_change (‖W_T − W_0‖_F / ‖W_0‖_F of every conv layer) and "
                   "filters (the first N kernels, first input channel, of four conv layers at init and at the end; "
                   "thesis Fig. 6.17); default 0 (none)")


def _interpolate_options(p, d: TrainConfig) -> None:
    """The loss along the line from the model at the switch to the final model (thesis Fig. 5.10)."""
    p.add_argument("--interpolate-switch", type=Int(2, 10_001, "α values"), default=None,
                   help="N: at the end, train/test loss and error along (1 − α)·w_switch + α·w_final at N α values "
                   "evenly spaced in [--interpolate-alpha-min, --interpolate-alpha-max] (w_switch: the model at the "
                   "start of epoch --switch-at; BatchNorm re-estimated as the interpolate command does); needs --switch-at")
    p.add_argument("--interpolate-alpha-min", type=Num(-100, 100), default=d.interpolate_alpha_min,
                   help="first α in [-100, 100] (default -1, the thesis code's)")
    p.add_argument("--interpolate-alpha-max", type=Num(-100, 100), default=d.interpolate_alpha_max,
                   help="last α in [-100, 100], > --interpolate-alpha-min (default 2, the thesis code's)")


def config_from_args(a, task: str) -> TrainConfig:
    kw = dict(task=task, model=a.model, dataset=a.dataset, data_dir=a.data_dir, n_train=a.n_train,
              n_test=a.n_test, epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr,
              momentum=a.momentum, weight_decay=a.weight_decay, schedule=a.schedule, warmup=a.warmup,
              warmup_frac=a.warmup_frac, warmup_ratio=a.warmup_ratio, decay_at=tuple(a.decay_at),
              decay_factor=a.decay_factor, eps=a.eps, eval_n=a.eval_n, eval_pgd_steps=a.eval_pgd_steps,
              final_n=a.final_n, final_pgd_steps=a.final_pgd_steps, final_restarts=a.final_restarts,
              filters=a.filters, dtype=a.dtype, augment=a.augment, amp=a.amp, bf16=a.bf16,
              channels_last=a.channels_last, data_on_device=a.data_on_device, compile=a.compile,
              deterministic=not a.nondeterministic, device=a.device, seed=a.seed, out=a.out,
              checkpoint_every=a.checkpoint_every, resume=a.resume, width=a.width, label_noise=a.label_noise,
              early_stop=a.early_stop, early_stop_n=a.early_stop_n)
    if task in ("sam", "sgd") and a.switch_at is not None:
        kw.update(switch_at=a.switch_at, switch_to=a.switch_to or ("erm" if task == "sam" else "sam"))
    elif task in ("sam", "sgd") and a.switch_to is not None:
        kw.update(switch_to=a.switch_to)
    if task in ("sam", "sgd"):
        kw.update(interpolate_switch=a.interpolate_switch or 0, interpolate_alpha_min=a.interpolate_alpha_min,
                  interpolate_alpha_max=a.interpolate_alpha_max)
    kw.update(record_filters=a.record_filters)
    if task in ("sam", "sgd"):
        kw.update(sharpness_rho=a.sharpness_rho, sharpness_steps=a.sharpness_steps, sharpness_m=a.sharpness_m,
                  sharpness_n=a.sharpness_n, sharpness_every=a.sharpness_every)
    if task == "sgd":
        kw.update(rho=a.rho, sam_ascent_batch=a.sam_ascent_batch, rho_schedule=a.rho_schedule)
    if task == "at":
        lam = a.grad_align
        if lam == "default":
            from ..cnn.train import default_lambda

            lam = default_lambda(float(a.eps))
        kw.update(alpha_eps=a.alpha_eps, final_eps=tuple(a.final_eps), final_linearization=a.final_linearization,
                  eps_ramp=a.eps_ramp)
        kw.update(attack=a.attack, alpha=a.alpha, pgd_steps=a.pgd_steps, pgd_init=a.pgd_init, free_replays=a.free_replays,
                  grad_align=float(lam), grad_align_exact=a.grad_align_exact, nfgsm_k=a.nfgsm_k, reg=a.reg,
                  reg_lambda=a.reg_lambda, reg_h=a.reg_h, reg_scheme=a.reg_scheme)
    elif task == "sam":
        kw.update(rho=a.rho, m=a.m, sam_normalize=not a.no_normalize, sam_steps=a.sam_steps,
                  sam_perturbation=a.sam_perturbation, sam_ascent_batch=a.sam_ascent_batch,
                  rho_schedule=a.rho_schedule)
    else:
        kw.update(sparsity_layers=tuple(a.sparsity_layers), sparsity_threshold=a.sparsity_threshold,
                  sparsity_neurons=a.sparsity_neurons, sparsity_n=a.sparsity_n)
    return TrainConfig(**kw)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, dict):
        return ",".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return "-" if v is None else str(v)


def _human(res: dict, command: str) -> None:
    print(f"{command} on {res['device']} (world size {res['world_size']}), {res['n_params']} parameters, "
          f"{res['steps_per_epoch']} steps/epoch, {res['runtime_s']:.1f} s")
    for rec in res["history"]:
        print("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in rec.items()))
    if res["diverged"]:
        print(f"DIVERGED at {res['diverged_at']}")
    if res["final"] is not None:
        print("final: " + "  ".join(f"{k}={_fmt(v)}" for k, v in res["final"].items()))
    if res["co_epoch"] is not None:
        print(f"catastrophic overfitting at epoch {res['co_epoch']}")


@contextmanager
def _sigterm_interrupts():
    """SIGTERM (a killed job, torchrun stopping its workers) raises KeyboardInterrupt like Ctrl-C, so
    that a checkpoint being written loses only its temporary file."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    installed = False
    try:
        before = signal.signal(signal.SIGTERM, handler)
        installed = True
    except ValueError:           # not the main thread: leave the handler alone
        pass
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, before)


def _leave_process_group(ok: bool) -> None:
    # under torchrun: leave the process group cleanly (exiting with gloo's threads still alive can abort
    # a rank with "terminate called without an active exception"); no barrier after an error, which the
    # other ranks may never reach
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def _run(args, session, command: str):
    from .config import resolve
    from .train import run, world_size

    cfg = resolve(config_from_args(args, TASK_OF[command]), world_size())   # every check before any work
    ok = False
    try:
        with _sigterm_interrupts():
            res = run(cfg, progress=session.show_progress)
        ok = True
    finally:
        _leave_process_group(ok)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0                 # rank 0 prints and writes result.json
    if res["diverged"]:
        d = res["diverged_at"]
        session.note(f"diverged at epoch {d['epoch']}, step {d['step']} (loss {d['loss']}); try a smaller --lr")
    payload = {k: v for k, v in res.items() if k != "config"}
    config = {k: v for k, v in res["config"].items() if k != "out"}     # --out is where, not what
    return Result(payload, config, human=lambda: _human(res, command))


def _command(name: str, help: str, description: str, smoke: tuple) -> Command:
    task = TASK_OF[name]
    example = {"at": "--attack fgsm --grad-align 0.2 --eps 8/255", "sam": "--rho 0.05 --m 32",
               "sgd": "--schedule warmup-decay"}[task]
    return Command(name, help, lambda p: add_arguments(p, task), lambda a, s: _run(a, s, name),
                   description=description, smoke=smoke, needs=("torch",),
                   epilog=f"Example: {PROG} {name} {example} --json (DDP: torchrun --nproc_per_node 2 -m "
                          f"toymodels.torch {name} ...)")


_TINY = ("--device", "cpu", "--n-train", "16", "--n-test", "8", "--batch-size", "8", "--epochs", "1",
         "--eval-n", "4", "--final-n", "4", "--filters", "1")
COMMANDS = [
    _command("train-at", "adversarial training (FGSM, FGSM-RS, N-FGSM, PGD, Free-AT; GradAlign, ELLE, CURE, ...)",
             "Adversarial training (FGSM, FGSM-RS, N-FGSM, PGD-k, Free-AT) of an image classifier, with an optional "
             "regularizer against catastrophic overfitting (GradAlign exact or by finite differences, ELLE, the "
             "input-gradient-norm penalty, CURE).",
             _TINY + ("--eval-pgd-steps", "1", "--final-pgd-steps", "1", "--attack", "fgsm-rs")),
    _command("train-sam", "SAM / m-SAM / n-SAM training",
             "SAM / m-SAM training of an image classifier.", _TINY + ("--m", "4")),
    _command("train-sgd", "large-step SGD with warmup/decay schedules and feature sparsity",
             "SGD with large steps, warmup/decay schedules and feature sparsity.", _TINY),
]
