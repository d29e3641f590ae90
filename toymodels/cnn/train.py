"""Adversarial training of the single-layer CNN (thesis Sec. 2.5 and App. 2.9–2.10.2) with
catastrophic-overfitting (CO) detection.

Objective. For a mini-batch B of size |B| (default 128) and the model of :mod:`toymodels.cnn.model`,
each step minimizes

    L_B(θ) = (1/|B|) Σ_{n∈B} ℓ(xₙ + δₙ, yₙ; θ) + λ Ω_B(θ),
    Ω_B(θ) = (1/|B|) Σ_{n∈B} [1 − cos(∇ₓℓ(xₙ, yₙ; θ), ∇ₓℓ(xₙ + ηₙ, yₙ; θ))]   (GradAlign, eq. 2.7),

ηₙ ~ U([−ε, ε]^d) drawn afresh per step, where δₙ is computed at the current θ and held fixed
(no gradient through the attack):

* ``none``     δ = 0 (standard training);
* ``fgsm``     δ = Π(α sign ∇ₓℓ(x)), α = ε by default (eq. 2.2; α < ε is the reduced-step FGSM of
               Table 2.1);
* ``fgsm-rs``  δ = Π(η + α sign ∇ₓℓ(x + η)), η ~ U[−ε, ε]^d, α = 1.25ε by default (eq. 2.3);
* ``pgd``      k sign-gradient steps of size α from δ₀ = 0 (no random start, as in App. 2.9), with
               α = ε/2 for k ≤ 3 and 2ε/k otherwise (the thesis' PGD-2 and PGD-10 choices);

Π is the projection onto {‖δ‖∞ ≤ ε, x + δ ∈ [0, 1]^d}. By default the GradAlign gradient treats
∇ₓℓ(x) as a constant and differentiates through ∇ₓℓ(x + η) only, as the authors' code does
(``grad_align_exact=True`` differentiates through both). ``grad_align="default"`` is
:func:`default_lambda` of the dataset: the thesis' CIFAR-10 value λ(ε) = 0.2 · 10^{(255ε − 8)/8}
(Table 2.2: 0.2 at 8/255, 0.36 at 10/255, 2.0 at 16/255; also used for synthetic/strokes/CIFAR-100),
its SVHN row on ``svhn``, and λ = 1 on the embedded ``photos`` data.

Optimizer: Adam (β = (0.9, 0.999), ε_Adam = 1e−8) with the cyclic learning rate of Wong et al.
(2020): piecewise linear in the fractional epoch t = e + (i + 1)/n_batches, 0 → lr_max at t = 0.4 E
→ 0 at t = E. Thesis values: lr_max = 0.003, E = 30 epochs, 4 filters (l.633).

Evaluation (the ``history``, once before training — epoch 0 — and after every epoch) on a fixed
random subset of ``n_eval`` test points with fixed pre-drawn noise: clean, FGSM (step ε) and PGD
(``eval_pgd_steps`` steps, α = ε/4, one random restart) accuracy and mean loss, gradient alignment
(eq. 2.5, one η per point, x + η clipped to [0, 1]) and the mean cos(δ_FGSM, δ_PGD); clean
accuracy and loss use the whole test set. The ``final`` record repeats this with PGD-``final_pgd_steps``
-``final_restarts`` (thesis: PGD-50-10, α = ε/4, 1,000 points, l.600–606).

Catastrophic overfitting (:func:`detect_co`): see its docstring for the exact rule.

The *culprit filter* is the filter whose contribution ‖w_m‖₂ · ‖U_m‖_F (filter norm times the
Frobenius norm of its outgoing weights, Fig. 2.6) grew the most, as a ratio, from the reference
epoch r to the end, r = the epoch of the best PGD accuracy before CO (before the end if no CO).
``grad_alignment_without_culprit`` is the alignment after zeroing that filter (w_m = 0, b_m = 0, so
its feature map is 0), on the same points and noise (thesis l.437: 0.08 → 0.71);
``final_without_culprit`` repeats the whole final evaluation (same points, noise and PGD starts)
on the net with that filter zeroed.

Default data: CO without downloads. The thesis shows CO of this CNN on CIFAR-10 at ε = 10/255
(l.427, Fig. 2.11). CIFAR-10 is not embedded; the CLI's default data are 32×32 crops of the 8 colour
photographs shipped with scikit-image (:func:`toymodels.datasets.make_photos`, 10,000 train /
2,000 test, class = photo), where FGSM training can show CO at ε = 24/255 (:data:`DATASET_EPS`) and
GradAlign with λ = 1 prevented it in every run measured; 10/255 and 16/255 showed no CO in 30 epochs
in the exploratory runs. Measured (``train --attack fgsm [--grad-align default] --seed s``, all other
options default, except a cheaper final attack PGD-50-1 on 500 points; CO = :func:`detect_co`;
best = best per-epoch PGD-10 accuracy (500 points) before CO / during training; align = gradient
alignment at the end → with the culprit filter zeroed; runtimes on a shared, loaded 2-core machine;
the named streams of :data:`STREAMS`, data from (seed, "photos/train") / (seed, "photos/test")):

    ====  ======================================================  =====================================
    seed  FGSM: CO ep., best PGD → final clean / FGSM / PGD, align  FGSM + GradAlign (λ = 1): same
    ====  ======================================================  =====================================
    0     —,  .288 → .588 / .340 / .216, .57 → .97     (76 s)      —, .344 → .578 / .286 / .264, .97 (65 s)
    1     13, .332 → .350 / .678 / .000, .30 → .96     (58 s)      —, .366 → .591 / .302 / .272, .97 (151 s)
    2     —,  .322 → .550 / .312 / .224, .73 → .77    (127 s)      —, .362 → .503 / .308 / .244, .91 (53 s)
    3     —,  .304 → .653 / .262 / .204, .83 → .83     (29 s)      —, .330 → .536 / .288 / .280, .94 (62 s)
    4     —,  .280 → .650 / .302 / .172, .49 → .87     (68 s)      —, .316 → .608 / .326 / .264, .95 (72 s)
    ====  ======================================================  =====================================

FGSM: CO in 1/5 seeds (seed 1: PGD accuracy .33 → .15 at epoch 13 → 0 from epoch 15, FGSM accuracy
up to .73, alignment .81 at the best epoch → .30); in seeds 0 and 4 the alignment falls (.74 → .57,
.84 → .49) without a lasting PGD collapse. Seeds 5–9 (FGSM only): CO in seeds 8 (epoch 25, final PGD
.150) and 9 (epoch 8, .000), GradAlign none there (final PGD .264, .316): 3/10 CO runs in all, where
the seed streams before issue 12 gave 4/5 (and 3/5 with 5,000 crops) — CO on these crops is frequent,
not systematic. GradAlign: no CO in 5/5, final PGD accuracy .24–.28 (above FGSM's in every seed),
alignment ≥ .91. Zeroing the culprit filter restores the alignment to .87–.97 where it had fallen
(seeds 0, 1, 4).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..datasets import ImageData
from ..elle_a import ElleA
from ..errors import ConfigError, check_bool, check_choice, check_int, check_positive, check_range
from ..progress import progress
from ..rng import check_seed, child_seed, stream
from . import attacks, model, regularizers
from .model import CNNParams

__all__ = ["REGS", "FD_REGS", "default_reg_lambda", "PHOTOS_REG_LAMBDA", "TrainConfig", "TrainResult", "train", "resolve", "detect_co", "default_lambda", "cyclic_lr", "ATTACKS",
           "SCHEDULES", "DEFAULT_EPS", "DEFAULT_EPOCHS", "HISTORY_KEYS", "evaluate", "default_eps", "PHOTOS_LAMBDA",
           "DATASET_EPS", "MAX_EPOCHS", "MAX_FILTERS", "MAX_STEPS", "MAX_RESTARTS", "MAX_POINTS", "MAX_LAMBDA"]

ATTACKS = ("none", "fgsm", "fgsm-rs", "pgd", "n-fgsm")
#: the regularizers of ``TrainConfig.reg`` (:mod:`toymodels.cnn.regularizers`; "gradalign" = ``grad_align``)
REGS = ("none", "gradalign", "gradalign-fd", "elle", "elle-a", "gradnorm", "cure")
#: the regularizers whose parameter gradient is a finite difference with step ``reg_h``
FD_REGS = ("gradalign-fd", "gradnorm", "cure")
SCHEDULES = ("cyclic", "constant")
DEFAULT_EPS = 10 / 255
DEFAULT_EPOCHS = 30
#: keys of every history / final record (besides ``epoch``)
HISTORY_KEYS = ("clean_acc", "clean_loss", "fgsm_acc", "fgsm_loss", "pgd_acc", "pgd_loss",
                "grad_alignment", "cos_fgsm_pgd")

#: upper bounds, where time or memory runs out: an epoch of the default data takes seconds (10⁵
#: epochs: days); the per-chunk gradient rows of the kernels take 16·K·M·H·(W+2)·8 bytes (M = 256
#: filters: 330 MB on 32×32 images, 10 classes); an attack step is a forward and a backward pass per
#: point; batch and evaluation sizes are bounded by the data (at most this many points)
MAX_EPOCHS = 100_000
MAX_FILTERS = 256
MAX_STEPS = 10_000
MAX_RESTARTS = 1_000
MAX_POINTS = 10 ** 6
#: the largest GradAlign λ given as a number (the thesis uses λ ≤ 4; far beyond, Ω dominates and
#: the classifier becomes constant)
MAX_LAMBDA = 1e6

#: CO rule constants (see :func:`detect_co`)
CO_DROP_RATIO = 0.5
CO_MIN_DROP = 0.05
CO_MIN_GAP = 0.10
CO_PATIENCE = None
#: accuracies are fractions k/n: thresholds are compared with this slack against rounding
_TOL = 1e-9

#: the named random streams of a run (:func:`toymodels.rng.stream` (seed, name))
STREAMS = {"init": "cnn/init", "batches": "cnn/batches", "noise": "cnn/noise", "eval": "cnn/eval",
           "final": "cnn/final"}


#: GradAlign λ of ``--grad-align default`` on the embedded ``photos`` data (calibrated at ε = 24/255,
#: see the module docstring; the thesis' CIFAR-10 value λ(24/255) = 20 also prevents CO there, at a
#: much lower clean accuracy)
PHOTOS_LAMBDA = 1.0
#: recommended ε per dataset (``python -m toymodels.cnn train`` without ``--eps``); others: DEFAULT_EPS
DATASET_EPS = {"photos": 24 / 255}


def default_lambda(eps: float, dataset: str | None = None) -> float:
    """GradAlign λ of ``--grad-align default``.

    * CIFAR-10 (thesis Table 2.2, used for every dataset without its own row): log-linear between 0.2
      at ε = 8/255 and 2.0 at ε = 16/255, λ(ε) = 0.2 · 10^{(255ε − 8)/8};
    * ``svhn`` (Table 2.2, SVHN row): log-linear between 2.5 at 8/255 and 4.0 at 16/255,
      λ(ε) = 2.5 · 1.6^{(255ε − 8)/8};
    * ``photos`` (embedded default data): the constant :data:`PHOTOS_LAMBDA`."""
    if dataset == "photos":
        return PHOTOS_LAMBDA
    if dataset == "svhn":
        return 2.5 * 1.6 ** ((255.0 * eps - 8.0) / 8.0)
    return 0.2 * 10.0 ** ((255.0 * eps - 8.0) / 8.0)


#: λ of ``reg_lambda="default"`` for ELLE (and ELLE-A's λ_max), the gradient-norm penalty and CURE
#: (every dataset; GradAlign and its finite-difference version use :func:`default_lambda`), calibrated
#: on ``photos`` at ε = 40/255 (the co-study's default grid, where FGSM shows CO in 5/5 seeds; seeds 0–4,
#: 15 epochs, 5,000 images, PGD-50-1 on 500 points): among λ ∈ {300, 1000, 3000} (ELLE), {3, 10, 30}
#: (gradient norm), {0.3, 1, 3, 10} (CURE), the λ with no CO in 5/5 seeds and the highest mean robust
#: accuracy. Measured (CO seeds / 5, robust accuracy mean ± s.e.): ELLE 300: 3/5, .064 ± .031; 1000: 1/5,
#: .120 ± .034; 3000: 0/5, .119 ± .028 · gradient norm 3: 3/5, .092 ± .028; 10: 0/5, .146 ± .023; 30: 0/5,
#: .170 ± .033 (clean .263 vs .352 at 10) · CURE 0.3: 0/5, .153 ± .008; 1: 0/5, .142 ± .019; 3: 0/5,
#: .177 ± .017; 10: 0/5, .161 ± .013 (``co-study --methods elle:300,...,cure:10 --eps 40/255``). The
#: thesis' CIFAR-10 values for ResNet-18 (Table 2.8: gradient norm 1,000 / 2,000, CURE 700 / 20,000 at
#: ε = 8/255 / 16/255) are for another model and data.
PHOTOS_REG_LAMBDA = {"elle": 3000.0, "elle-a": 3000.0, "gradnorm": 30.0, "cure": 3.0}


def default_reg_lambda(reg: str, eps: float, dataset: str | None = None) -> float:
    """λ of ``reg_lambda="default"``: :func:`default_lambda` (ε, ``dataset``) for "gradalign" and
    "gradalign-fd" (the same objective), :data:`PHOTOS_REG_LAMBDA` for the others, 0 for "none"."""
    if reg in ("gradalign", "gradalign-fd"):
        return default_lambda(eps, dataset)
    return PHOTOS_REG_LAMBDA.get(reg, 0.0)


def default_eps(dataset: str | None = None) -> float:
    """The ε of ``python -m toymodels.cnn train`` without ``--eps``: 24/255 on ``photos`` (where FGSM
    training shows CO), else the thesis' 10/255 (Fig. 2.11)."""
    return DATASET_EPS.get(dataset, DEFAULT_EPS)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run; ``None`` = resolved from the others (see :func:`resolve`).
    ``grad_align`` is a number λ ≥ 0 or the word ``"default"`` (:func:`default_lambda`).

    ``reg`` ∈ :data:`REGS` adds λ R(θ) to the training loss, λ = ``reg_lambda`` (a number or
    ``"default"``: :func:`default_reg_lambda`), with R from :mod:`toymodels.cnn.regularizers`:
    "gradalign" (exact gradient, as ``grad_align``; the two must not both be set unless equal),
    "gradalign-fd" (GradAlign with the central finite-difference gradient of step ``reg_h``),
    "elle" (local linearity, three forward passes), "elle-a" (ELLE with the adaptive λ of
    :class:`toymodels.elle_a.ElleA`, λ_max = ``reg_lambda``), "gradnorm" (mean ‖∇ₓℓ(x)‖²), "cure"
    (mean ‖∇ₓℓ(x + δ_FGSM) − ∇ₓℓ(x)‖²); ``reg_h`` (default ``regularizers.DEFAULT_H``) only for
    the finite-difference ones. ``nfgsm_k``: the noise radius kε of ``attack="n-fgsm"``."""

    attack: str = "fgsm"
    eps: float = DEFAULT_EPS
    alpha: float | None = None
    pgd_steps: int = 10
    grad_align: float | str = 0.0
    grad_align_exact: bool = False
    reg: str = "none"
    reg_lambda: float | str = "default"
    reg_h: float | None = None
    nfgsm_k: float = 2.0
    epochs: int = DEFAULT_EPOCHS
    filters: int = 4
    batch: int = 128
    lr: float = 0.003
    schedule: str = "cyclic"
    n_eval: int = 500
    eval_pgd_steps: int = 10
    final_n: int = 1000
    final_pgd_steps: int = 50
    final_restarts: int = 10
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _check_sizes(cfg: TrainConfig, n_train: int | None, n_test: int | None) -> None:
    """The batch fits the training set, the evaluation subsets fit the test set (no silent cap)."""
    check_int("batch", cfg.batch, 1, MAX_POINTS)
    check_int("n_eval", cfg.n_eval, 1, MAX_POINTS)
    check_int("final_n", cfg.final_n, 1, MAX_POINTS)
    if n_train is not None and cfg.batch > n_train:
        raise ConfigError("batch", f"must be at most the {n_train} training images", cfg.batch)
    for name in ("n_eval", "final_n"):
        if n_test is not None and getattr(cfg, name) > n_test:
            raise ConfigError(name, f"must be at most the {n_test} test images", getattr(cfg, name))


def _resolve_lambda(lam, eps: float, dataset: str | None) -> float:
    if isinstance(lam, str):
        if lam != "default":
            raise ConfigError("grad_align", "must be a number >= 0 or 'default'", lam)
        return default_lambda(eps, dataset)
    return check_range("grad_align", lam, 0.0, MAX_LAMBDA)


def _resolve_alpha(cfg: TrainConfig, eps: float) -> float:
    """α of the attack: the default, or the given value checked against its range. FGSM/PGD steps
    beyond ε are clipped by the projection (useless); FGSM-RS is studied for α ∈ (0, 2ε] (Lemma 1),
    beyond 2ε the random start is irrelevant."""
    alpha = cfg.alpha
    if cfg.attack == "none":
        if alpha not in (None, 0, 0.0):
            raise ConfigError("alpha", "applies only to the attacks fgsm, fgsm-rs, pgd and n-fgsm (attack is 'none')",
                              alpha)
        return 0.0
    if alpha is None:
        k = cfg.pgd_steps
        return {"fgsm": eps, "fgsm-rs": 1.25 * eps, "pgd": (eps / 2 if k <= 3 else 2 * eps / k),
                "n-fgsm": eps}[cfg.attack]
    wide = cfg.attack in ("fgsm-rs", "n-fgsm")
    hi = 2 * eps if wide else eps
    span = "2ε" if wide else "ε"
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and 0 < alpha <= hi * (1 + 1e-12)):
        raise ConfigError("alpha", f"must be in (0, {span}] = (0, {hi:.6g}] for the attack {cfg.attack}", alpha)
    return float(alpha)


def resolve(cfg: TrainConfig, dataset: str | None = None, *, n_train: int | None = None,
            n_test: int | None = None) -> TrainConfig:
    """Validate ``cfg`` (a :class:`~toymodels.errors.ConfigError` names the field and its range) and
    fill in the defaults: α (fgsm: ε, fgsm-rs: 1.25ε, pgd: ε/2 for k ≤ 3 else 2ε/k, none: 0) and λ
    (``"default"`` → :func:`default_lambda` (ε, ``dataset``)). With the data sizes ``n_train`` /
    ``n_test``, the batch must fit the training set and ``n_eval`` / ``final_n`` the test set."""
    check_choice("attack", cfg.attack, ATTACKS)
    check_choice("schedule", cfg.schedule, SCHEDULES)
    eps = check_range("eps", cfg.eps, 0.0, 1.0, lo_open=True)
    for name, hi in (("pgd_steps", MAX_STEPS), ("epochs", MAX_EPOCHS), ("filters", MAX_FILTERS),
                     ("eval_pgd_steps", MAX_STEPS), ("final_pgd_steps", MAX_STEPS),
                     ("final_restarts", MAX_RESTARTS)):
        check_int(name, getattr(cfg, name), 1, hi)
    check_positive("lr", cfg.lr)
    check_bool("grad_align_exact", cfg.grad_align_exact)
    check_seed(cfg.seed)
    _check_sizes(cfg, n_train, n_test)
    lam = _resolve_lambda(cfg.grad_align, eps, dataset)
    reg, reg_lam, reg_h = _resolve_reg(cfg, lam, eps, dataset)
    if reg == "gradalign":
        lam = reg_lam
    if cfg.grad_align_exact and lam == 0:
        raise ConfigError("grad_align_exact", "applies only with GradAlign on (grad_align > 0)", True)
    alpha = _resolve_alpha(cfg, eps)
    k = check_range("nfgsm_k", cfg.nfgsm_k, 0.0, 16.0)
    if cfg.attack != "n-fgsm" and k != 2.0:
        raise ConfigError("nfgsm_k", "applies only to attack='n-fgsm'", cfg.nfgsm_k)
    return replace(cfg, eps=eps, alpha=float(alpha), grad_align=float(lam), lr=float(cfg.lr), reg=reg,
                   reg_lambda=float(reg_lam), reg_h=reg_h, nfgsm_k=k)


def _resolve_reg(cfg: TrainConfig, ga_lam: float, eps: float, dataset: str | None):
    """(reg, λ, h) resolved: ``grad_align`` > 0 means reg "gradalign" with that λ (rejected together
    with another reg, or with reg "gradalign" and a different explicit λ)."""
    reg = check_choice("reg", cfg.reg, REGS)
    lam = cfg.reg_lambda
    if isinstance(lam, str):
        if lam != "default":
            raise ConfigError("reg_lambda", "must be a number >= 0 or 'default'", lam)
        lam = default_reg_lambda(reg, eps, dataset)
    else:
        lam = check_range("reg_lambda", lam, 0.0, MAX_LAMBDA)
    if ga_lam > 0:
        if reg not in ("none", "gradalign") or (reg == "gradalign" and cfg.reg_lambda != "default"
                                                 and lam != ga_lam):
            raise ConfigError("reg", f"grad_align = {ga_lam:g} is GradAlign already: set either grad_align or "
                                     "reg / reg_lambda, not both", cfg.reg)
        reg, lam = "gradalign", ga_lam
    if reg == "none":
        lam = 0.0
    h = cfg.reg_h
    if h is not None:
        if reg not in FD_REGS:
            raise ConfigError("reg_h", f"applies only to the finite-difference regularizers {FD_REGS}", h)
        h = check_range("reg_h", h, 0.0, 1.0, lo_open=True)
    elif reg in FD_REGS:
        h = regularizers.DEFAULT_H
    return reg, float(lam), h


def cyclic_lr(t: float, epochs: int, lr_max: float) -> float:
    """Wong et al.'s cyclic schedule at fractional epoch t: linear 0 → lr_max on [0, 0.4E], then
    linear to 0 at E."""
    return float(np.interp(t, [0.0, 0.4 * epochs, float(epochs)], [0.0, lr_max, 0.0]))


def detect_co(history, *, drop_ratio: float = CO_DROP_RATIO, min_drop: float = CO_MIN_DROP,
              min_gap: float = CO_MIN_GAP, patience: int | None = CO_PATIENCE) -> int | None:
    """Epoch of catastrophic overfitting in a training history, or None.

    ``history`` is a sequence of records with ``epoch``, ``pgd_acc`` and ``fgsm_acc`` (in epoch
    order; epoch 0 = initialization). With P_t = max_{s<t} pgd_acc_s (the best PGD accuracy so far),
    CO happens at the first epoch t ≥ 1 with

    1. a collapse of PGD accuracy: pgd_acc_t ≤ drop_ratio · P_t and P_t − pgd_acc_t ≥ min_drop
       (defaults: it at least halves, by at least 5 points — well above the evaluation noise
       √(0.25/500) ≈ 2.2 points on 500 points),
    2. FGSM no longer finds what PGD finds: fgsm_acc_t − pgd_acc_t ≥ min_gap (default 10 points;
       before CO the two attacks agree within a few points, after CO FGSM accuracy jumps above PGD
       accuracy, thesis Fig. 2.4/2.11), and
    3. the collapse lasts: pgd_acc_s ≤ drop_ratio · P_t also for the next ``patience`` − 1 recorded
       epochs s = t+1, … (those that exist); the default ``patience=None`` demands it for every
       later epoch (CO as in the thesis, Fig. 2.4/2.11: a sudden drop that stays). This separates
       CO from a one- or two-epoch wobble during the learning-rate ramp-up after which PGD accuracy
       recovers (seen on the ``photos`` data); ``patience=1`` drops the condition.

    The comparisons are inclusive (with a 1e−9 slack for rounding). 1 and 2 must hold in the same
    epoch: a PGD drop without the FGSM/PGD gap is a plain loss of robustness (e.g. from the learning
    rate), not the failure of the single-step attack."""
    if patience is not None:
        patience = check_int("patience", patience, 1)
    recs = [r for r in history if r["pgd_acc"] is not None and r["fgsm_acc"] is not None]
    best = -math.inf
    for i, rec in enumerate(recs):
        t, p, f = int(rec["epoch"]), rec["pgd_acc"], rec["fgsm_acc"]
        if t >= 1 and best > -math.inf:
            bound = drop_ratio * best + _TOL
            later = recs[i + 1:] if patience is None else recs[i + 1:i + int(patience)]
            if (p <= bound and best - p >= min_drop - _TOL and f - p >= min_gap - _TOL
                    and all(r["pgd_acc"] <= bound for r in later)):
                return t
        best = max(best, p)
    return None


@dataclass
class TrainResult:
    """Outcome of :func:`train`. ``history[t]`` is the record after epoch t (t = 0: at init);
    ``filters[t]`` / ``biases[t]`` are the conv weights (M, C, 3, 3) / biases (M,) at that epoch and
    ``out_norms[t, m]`` = ‖U_m‖_F, the norm of filter m's outgoing weights."""

    config: dict
    data: str
    history: list
    co_epoch: int | None
    final: dict
    params: CNNParams
    init_params: CNNParams
    filters: np.ndarray
    biases: np.ndarray
    out_norms: np.ndarray
    culprit_filter: int | None
    culprit_reference_epoch: int | None
    filter_growth: list
    grad_alignment_without_culprit: float | None
    grad_alignment_without_filter: list
    diverged: bool = False
    diverged_at: dict | None = None
    runtime_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "config": self.config, "data": self.data, "history": self.history, "co_epoch": self.co_epoch,
            "final": self.final, "culprit_filter": self.culprit_filter,
            "culprit_reference_epoch": self.culprit_reference_epoch,
            "filter_growth": self.filter_growth,
            "grad_alignment_without_culprit": self.grad_alignment_without_culprit,
            "grad_alignment_without_filter": self.grad_alignment_without_filter,
            "filter_norms": np.sqrt((self.filters ** 2).sum(axis=(2, 3, 4))),
            "out_norms": self.out_norms, "diverged": self.diverged, "diverged_at": self.diverged_at,
            "runtime_s": self.runtime_s, **self.extra,
        }

    def arrays(self) -> dict:
        """Arrays for an ``.npz`` (snapshots and the final parameters)."""
        return {"filters": self.filters, "biases": self.biases, "out_norms": self.out_norms,
                "Wc": self.params.Wc, "bc": self.params.bc, "U": self.params.U, "c": self.params.c,
                "Wc0": self.init_params.Wc, "bc0": self.init_params.bc, "U0": self.init_params.U,
                "c0": self.init_params.c}


# ----------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------
def _cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of flattened examples; 1 where either is zero (as the metrics module)."""
    N = a.shape[0]
    a, b = a.reshape(N, -1), b.reshape(N, -1)
    na, nb_ = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ok = (na > 0) & (nb_ > 0)
    return np.where(ok, (a * b).sum(axis=1) / np.where(ok, na * nb_, 1.0), 1.0)


def _alignment(params: CNNParams, x, y, noise) -> float:
    g1 = model.input_grad(params, x, y)
    g2 = model.input_grad(params, np.clip(x + noise, 0.0, 1.0), y)
    return float(_cos_rows(g1, g2).mean())


def _acc_loss(params, x, y) -> tuple[float, float]:
    z = model.logits(params, x)
    zmax = z.max(axis=1)
    ls = np.log(np.exp(z - zmax[:, None]).sum(axis=1)) + zmax - z[np.arange(len(y)), y]
    return float((z.argmax(axis=1) == y).mean()), float(ls.mean())


def evaluate(params: CNNParams, x_test, y_test, x_ev, y_ev, noise, eps: float, *, pgd_steps: int,
             restarts: int = 1, pgd_seed: int = 0) -> dict:
    """One record: clean accuracy/loss on (x_test, y_test); FGSM, PGD-``pgd_steps``-``restarts``
    (α = ε/4, random start), gradient alignment and cos(δ_FGSM, δ_PGD) on (x_ev, y_ev) with the
    given alignment noise."""
    rec = {}
    rec["clean_acc"], rec["clean_loss"] = _acc_loss(params, x_test, y_test)
    d_f = attacks.fgsm(params, x_ev, y_ev, eps)
    rec["fgsm_acc"], rec["fgsm_loss"] = _acc_loss(params, x_ev + d_f, y_ev)
    d_p = attacks.pgd(params, x_ev, y_ev, eps, eps / 4, pgd_steps, restarts, seed=pgd_seed)
    rec["pgd_acc"], rec["pgd_loss"] = _acc_loss(params, x_ev + d_p, y_ev)
    rec["grad_alignment"] = _alignment(params, x_ev, y_ev, noise)
    rec["cos_fgsm_pgd"] = float(_cos_rows(d_f, d_p).mean())
    return rec


def _zero_filter(params: CNNParams, m: int) -> CNNParams:
    p = params.copy()
    p.Wc[m] = 0.0
    p.bc[m] = 0.0
    return p


def _contrib(Wc: np.ndarray, out_norms: np.ndarray) -> np.ndarray:
    return np.sqrt((Wc ** 2).sum(axis=(1, 2, 3))) * out_norms


def _out_norms(params: CNNParams) -> np.ndarray:
    M = params.Wc.shape[0]
    K = params.U.shape[0]
    return np.sqrt((params.U.reshape(K, M, -1) ** 2).sum(axis=(0, 2)))


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------
class _Adam:
    """Adam on the flat parameter vector (torch's defaults: β₁ = 0.9, β₂ = 0.999, ε = 1e−8)."""

    def __init__(self, n: int, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
        self.m, self.v, self.t = np.zeros(n), np.zeros(n), 0
        self.b1, self.b2, self.eps = b1, b2, eps

    def step(self, theta: np.ndarray, g: np.ndarray, lr: float) -> None:
        self.t += 1
        self.m *= self.b1
        self.m += (1 - self.b1) * g
        self.v *= self.b2
        self.v += (1 - self.b2) * g * g
        mhat = self.m / (1 - self.b1 ** self.t)
        vhat = self.v / (1 - self.b2 ** self.t)
        theta -= lr * mhat / (np.sqrt(vhat) + self.eps)


def _perturb(params, x, y, cfg: TrainConfig, rng: np.random.Generator, backend: str = "numba",
             g_clean: np.ndarray | None = None) -> np.ndarray:
    """The training input x + δ (``g_clean``: ∇ₓℓ(x) already computed, reused by FGSM)."""
    if cfg.attack == "none":
        return x
    if cfg.attack == "n-fgsm":
        k = cfg.nfgsm_k
        d = attacks.n_fgsm(params, x, y, cfg.eps, k=k, alpha=cfg.alpha, noise=rng.uniform(-k * cfg.eps, k * cfg.eps,
                                                                                        x.shape), backend=backend)
        return np.clip(x + d, 0.0, 1.0)
    if cfg.attack == "fgsm" and g_clean is not None:
        d = attacks.fgsm_from_grad(x, g_clean, cfg.eps, cfg.alpha)
    elif cfg.attack == "fgsm":
        d = attacks.pgd(params, x, y, cfg.eps, cfg.alpha, 1, 1, random_start=False, backend=backend)
    elif cfg.attack == "fgsm-rs":
        d = attacks.fgsm_rs(params, x, y, cfg.eps, cfg.alpha, rng.uniform(-cfg.eps, cfg.eps, x.shape),
                            backend=backend)
    else:
        d = attacks.pgd(params, x, y, cfg.eps, cfg.alpha, cfg.pgd_steps, 1, random_start=False, backend=backend)
    return x + d


def _step(params: CNNParams, theta: np.ndarray, opt: "_Adam", x, y, cfg: TrainConfig, rng: np.random.Generator,
          lr: float, backend: str = "numba", sched: ElleA | None = None) -> tuple[float, float, bool]:
    """One training step on the batch (x, y): attack, ∇θ of CE (+ λ GradAlign), Adam update of the flat
    vector ``theta`` (``params`` holds views into it). Returns (CE loss, Ω, ok); ``ok`` is False (and
    nothing is updated) when the loss or the gradient is not finite."""
    if cfg.attack == "fgsm" and cfg.grad_align > 0:
        # FGSM + GradAlign fused: one clean input-gradient pass serves both the FGSM step and the
        # GradAlign term (same δ and the same gradient as the separate calls below, to ~1e-15)
        eta = rng.uniform(-cfg.eps, cfg.eps, x.shape)
        loss, omega, g, _ = model.fgsm_gradalign_loss_and_grad(params, x, y, eta, cfg.eps, alpha=cfg.alpha,
                                                               lam=cfg.grad_align, both=cfg.grad_align_exact,
                                                               backend=backend)
        gflat = g.flat()
        if not (math.isfinite(loss) and np.isfinite(gflat).all()):
            return loss, omega, False
        opt.step(theta, gflat, lr)
        return loss, omega, True
    if cfg.reg not in ("none", "gradalign") and cfg.reg_lambda > 0:
        return _reg_step(params, theta, opt, x, y, cfg, rng, lr, backend, sched)
    xa = _perturb(params, x, y, cfg, rng, backend)
    loss, g = model.loss_and_grad(params, xa, y, backend=backend)
    gflat = g.flat()
    omega = 0.0
    if cfg.grad_align > 0:
        eta = rng.uniform(-cfg.eps, cfg.eps, x.shape)
        omega, gga = model.gradalign_loss_and_grad(params, x, y, eta, both=cfg.grad_align_exact, backend=backend)
        gflat += cfg.grad_align * gga.flat()
    if not (math.isfinite(loss) and np.isfinite(gflat).all()):
        return loss, omega, False
    opt.step(theta, gflat, lr)
    return loss, omega, True


def _reg_value_grad(params, x, y, cfg: TrainConfig, rng: np.random.Generator, backend: str, grad: bool = True):
    """(R, ∇_θ R, ∇ₓℓ(x) or None) of the regularizer ``cfg.reg`` on the clean batch, its noise drawn
    from ``rng`` (GradAlign-FD: η ~ U[−ε, ε]^d, not clipped, as exact GradAlign; ELLE, ELLE-A:
    :func:`elle_noise`). ``grad=False`` (ELLE-A with λ = 0): ∇_θ R is None."""
    if cfg.reg in ("elle", "elle-a"):
        r, g = regularizers.elle_loss_and_grad(params, x, y, cfg.eps, noise=regularizers.elle_noise(x.shape, cfg.eps,
                                                                                                    rng), grad=grad,
                                               backend=backend)
        return r, g, None
    if cfg.reg == "gradalign-fd":
        eta = rng.uniform(-cfg.eps, cfg.eps, x.shape)
        return regularizers.gradalign_fd_loss_and_grad(params, x, y, eta, h=cfg.reg_h, return_input_grad=True,
                                                       backend=backend)
    if cfg.reg == "gradnorm":
        return regularizers.gradnorm_loss_and_grad(params, x, y, h=cfg.reg_h, return_input_grad=True, backend=backend)
    return regularizers.cure_loss_and_grad(params, x, y, cfg.eps, h=cfg.reg_h, return_input_grad=True, backend=backend)


def _reg_step(params, theta, opt, x, y, cfg: TrainConfig, rng, lr: float, backend: str,
              sched: ElleA | None = None):
    """A step with one of the regularizers of :mod:`toymodels.cnn.regularizers` (λ R added to the
    training loss; ELLE-A: λ = ``sched.lam``, then ``sched.update(R)``). With FGSM the regularizer
    runs first and its clean input gradient ∇ₓℓ(x) gives δ_FGSM (no second clean pass; the same δ as
    :func:`attacks.fgsm`); otherwise the attack draws its noise first, then the regularizer."""
    lam = cfg.reg_lambda if sched is None else sched.lam
    if cfg.attack == "fgsm":
        r, gr, g_clean = _reg_value_grad(params, x, y, cfg, rng, backend, grad=lam > 0)
        xa = _perturb(params, x, y, cfg, rng, backend, g_clean=g_clean)
    else:
        xa = _perturb(params, x, y, cfg, rng, backend)
        r, gr, _ = _reg_value_grad(params, x, y, cfg, rng, backend, grad=lam > 0)
    loss, g = model.loss_and_grad(params, xa, y, backend=backend)
    gflat = g.flat() if gr is None else g.flat() + lam * gr.flat()
    if not (math.isfinite(loss) and math.isfinite(r) and np.isfinite(gflat).all()):
        return loss, r, False
    opt.step(theta, gflat, lr)
    if sched is not None:
        sched.update(r)
    return loss, r, True


@dataclass
class _EvalSet:
    """The fixed test points of one evaluation (per-epoch or final): points, labels, the alignment
    noise and the seed of the PGD starts (the same at every epoch)."""
    x: np.ndarray
    y: np.ndarray
    noise: np.ndarray
    pgd_seed: int


def _eval_set(data: ImageData, n: int, eps: float, seed: int, name: str) -> _EvalSet:
    """``n`` test points drawn without replacement from the stream (seed, name), then their noise;
    the PGD starts come from the stream (seed, name + "/pgd")."""
    rng = stream(seed, name)
    idx = np.sort(rng.choice(len(data.y_test), size=n, replace=False))
    x = np.ascontiguousarray(data.x_test[idx])
    return _EvalSet(x, data.y_test[idx], rng.uniform(-eps, eps, x.shape), child_seed(seed, f"{name}/pgd"))


def _record(params, data: ImageData, ev: _EvalSet, eps: float, pgd_steps: int, restarts: int = 1) -> dict:
    return evaluate(params, data.x_test, data.y_test, ev.x, ev.y, ev.noise, eps, pgd_steps=pgd_steps,
                    restarts=restarts, pgd_seed=ev.pgd_seed)


@dataclass
class _State:
    """The parameters being trained (``params`` holds views into the flat vector ``theta``), the
    optimizer, and the per-epoch snapshots of the filters, biases and outgoing-weight norms."""
    params: CNNParams
    theta: np.ndarray
    opt: _Adam
    sched: ElleA | None = None
    filters: list = field(default_factory=list)
    biases: list = field(default_factory=list)
    out_norms: list = field(default_factory=list)

    @classmethod
    def init(cls, data: ImageData, cfg: TrainConfig) -> "_State":
        C, H, W = data.shape
        p0 = model.init_params(C, H, W, cfg.filters, data.num_classes, seed=stream(cfg.seed, STREAMS["init"]))
        theta = p0.flat()
        sched = ElleA(cfg.reg_lambda) if cfg.reg == "elle-a" else None
        st = cls(CNNParams.from_flat(theta, p0.shapes), theta, _Adam(theta.size), sched)
        st.snapshot()
        return st

    def snapshot(self) -> None:
        self.filters.append(self.params.Wc.copy())
        self.biases.append(self.params.bc.copy())
        self.out_norms.append(_out_norms(self.params))


def _epoch(st: _State, data: ImageData, cfg: TrainConfig, epoch: int, perm: np.ndarray, r_noise, bar):
    """One pass over the batches of ``perm``. Returns (record fields, None) or (None, diverged_at)
    at the first step whose loss, gradient or parameters are not finite."""
    N = len(data.y_train)
    nb = -(-N // cfg.batch)
    tl, tr, seen, lr, lam_sum = 0.0, 0.0, 0, 0.0, 0.0
    on0 = st.sched.n_on if st.sched is not None else 0
    for i in range(nb):
        idx = np.sort(perm[i * cfg.batch:(i + 1) * cfg.batch])
        x, y = data.x_train[idx], data.y_train[idx]
        lr = cyclic_lr(epoch - 1 + (i + 1) / nb, cfg.epochs, cfg.lr) if cfg.schedule == "cyclic" else cfg.lr
        if st.sched is not None:
            lam_sum += st.sched.lam
        loss, omega, ok = _step(st.params, st.theta, st.opt, x, y, cfg, r_noise, lr, sched=st.sched)
        if not ok or not np.isfinite(st.theta).all():
            return None, {"epoch": epoch, "batch": i, "step": (epoch - 1) * nb + i + 1}
        tl += loss * len(y)
        tr += omega * len(y)
        seen += len(y)
        bar.update(1)
    reg_on = cfg.grad_align > 0 or (cfg.reg != "none" and cfg.reg_lambda > 0)
    out = {"train_loss": tl / seen, "grad_align_reg": (tr / seen) if cfg.grad_align > 0 else None,
           "reg_value": (tr / seen) if reg_on else None, "lr": lr}
    if st.sched is not None:
        # ELLE-A: the epoch's mean λ and how many of its steps switched λ on
        out.update(reg_lambda_mean=lam_sum / nb, reg_switch_ons=st.sched.n_on - on0)
    return out, None


def _culprit(result: "TrainResult", params: CNNParams, data: ImageData, cfg: TrainConfig, fin: _EvalSet) -> None:
    """The culprit filter (largest growth of ‖w_m‖‖U_m‖ since the best-PGD epoch before CO), the
    alignment with each filter zeroed, and the final evaluation repeated with the culprit zeroed (same
    points, noise and PGD starts)."""
    history, co = result.history, result.co_epoch
    last = len(history) - 1
    upto = (co - 1) if co is not None else last
    ref = int(max(range(upto + 1), key=lambda t: (history[t]["pgd_acc"], -t)))
    f, o = result.filters, result.out_norms
    growth = _contrib(f[last], o[last]) / np.maximum(_contrib(f[ref], o[ref]), 1e-300)
    culprit = int(np.argmax(growth))
    without = [_alignment(_zero_filter(params, m), fin.x, fin.y, fin.noise) for m in range(cfg.filters)]
    result.culprit_filter, result.culprit_reference_epoch = culprit, ref
    result.filter_growth = growth.tolist()
    result.grad_alignment_without_filter = without
    result.grad_alignment_without_culprit = without[culprit]
    zeroed = _record(_zero_filter(params, culprit), data, fin, cfg.eps, cfg.final_pgd_steps, cfg.final_restarts)
    result.extra["clean_acc_without_culprit"] = zeroed["clean_acc"]
    result.extra["final_without_culprit"] = zeroed


def _final(result: "TrainResult", params: CNNParams, data: ImageData, cfg: TrainConfig) -> None:
    """The final evaluation (PGD-``final_pgd_steps``-``final_restarts`` on ``final_n`` test points) and
    the culprit filter."""
    fin = _eval_set(data, cfg.final_n, cfg.eps, cfg.seed, STREAMS["final"])
    final = {"epoch": len(result.history) - 1}
    final.update(_record(params, data, fin, cfg.eps, cfg.final_pgd_steps, cfg.final_restarts))
    final["n_points"] = len(fin.y)
    final["attack"] = f"PGD-{cfg.final_pgd_steps}-{cfg.final_restarts}, alpha = eps/4"
    result.final = final
    _culprit(result, params, data, cfg, fin)


def train(data: ImageData, cfg: TrainConfig = TrainConfig(), *, show_progress: bool = False) -> TrainResult:
    """Train the CNN on ``data`` with ``cfg`` (validated by :func:`resolve`, with the data's sizes)
    and evaluate every epoch; a run whose loss, gradient or parameters stop being finite ends there
    and is returned with ``diverged_at`` (epoch, batch, step).

    Randomness: the named streams (``cfg.seed``, name) of :mod:`toymodels.rng` (:data:`STREAMS`):
    "cnn/init" for the initialization (torch's default scheme, :func:`toymodels.cnn.model.init_params`),
    "cnn/batches" for the batch order, "cnn/noise" for the training noise (FGSM-RS starts, GradAlign
    η), "cnn/eval" and "cnn/final" for the evaluation subsets and their alignment noise, and
    "cnn/eval/pgd", "cnn/final/pgd" for the PGD starts; a run is determined by its config and seed."""
    cfg = resolve(cfg, data.name, n_train=len(data.y_train), n_test=len(data.y_test))
    t_start = time.perf_counter()
    st = _State.init(data, cfg)
    init = st.params.copy()
    r_batch, r_noise = stream(cfg.seed, STREAMS["batches"]), stream(cfg.seed, STREAMS["noise"])
    ev = _eval_set(data, cfg.n_eval, cfg.eps, cfg.seed, STREAMS["eval"])
    history = [{"epoch": 0, **_record(st.params, data, ev, cfg.eps, cfg.eval_pgd_steps),
                "train_loss": None, "grad_align_reg": None, "reg_value": None, "lr": 0.0,
                "epoch_wall_s": None, "epoch_cpu_time_s": None}]
    diverged_at = None
    nb = -(-len(data.y_train) // cfg.batch)
    with progress(cfg.epochs * nb, disable=not show_progress, desc=f"{cfg.attack} AT", unit="batch") as bar:
        for epoch in range(1, cfg.epochs + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            extra, diverged_at = _epoch(st, data, cfg, epoch, r_batch.permutation(len(data.y_train)), r_noise, bar)
            # the batches only (no evaluation): what a method's cost relative to FGSM is measured on
            timing = {"epoch_wall_s": time.perf_counter() - t0, "epoch_cpu_time_s": time.process_time() - c0}
            if diverged_at is not None:
                break
            history.append({"epoch": epoch, **_record(st.params, data, ev, cfg.eps, cfg.eval_pgd_steps), **extra,
                            **timing})
            st.snapshot()
            h = history[-1]
            bar.set_postfix_str(f"ep {epoch} clean {h['clean_acc']:.2f} pgd {h['pgd_acc']:.2f} "
                                f"align {h['grad_alignment']:.2f}")
    result = TrainResult(config=cfg.as_dict(), data=data.describe(), history=history, co_epoch=detect_co(history),
                         final={}, params=st.params.copy(), init_params=init, filters=np.array(st.filters),
                         biases=np.array(st.biases), out_norms=np.array(st.out_norms), culprit_filter=None,
                         culprit_reference_epoch=None, filter_growth=[], grad_alignment_without_culprit=None,
                         grad_alignment_without_filter=[], diverged=diverged_at is not None, diverged_at=diverged_at)
    if diverged_at is None:
        _final(result, st.params, data, cfg)
    result.runtime_s = time.perf_counter() - t_start
    return result
