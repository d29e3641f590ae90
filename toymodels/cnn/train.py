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
2,000 test, class = photo), where FGSM training shows CO at ε = 24/255 (:data:`DATASET_EPS`) and
GradAlign with λ = 1 prevents it; 10/255 and 16/255 showed no CO in 30 epochs in the exploratory
runs. Measured (``train --attack fgsm [--grad-align default] --seed s``, all other options default,
except a cheaper final attack PGD-50-1 on 500 points; CO = :func:`detect_co`; best = best per-epoch
PGD-10 accuracy (500 points) before CO / during training; align = gradient alignment at the end →
with the culprit filter zeroed; runtimes on a shared, loaded 2-core machine, one numba thread):

    ====  ======================================================  =====================================
    seed  FGSM: CO ep., best PGD → final clean / FGSM / PGD, align  FGSM + GradAlign (λ = 1): same
    ====  ======================================================  =====================================
    0     6,  .238 → .267 / .896 / .000, .13 → .90     (99 s)      —, .318 → .528 / .266 / .236, .96 (216 s)
    1     5,  .214 → .374 / .940 / .000, .13 → .43    (115 s)      —, .334 → .609 / .316 / .276, .96 (205 s)
    2     15, .284 → .408 / .452 / .002, .32 → .98    (111 s)      —, .348 → .539 / .332 / .296, .96 (304 s)
    3     —,  .282 → .551 / .298 / .226, .73 → .77     (48 s)      —, .336 → .581 / .292 / .252, .97 (336 s)
    4     8,  .230 → .251 / .840 / .000, .26 → .89    (122 s)      —, .308 → .568 / .312 / .260, .96 (337 s)
    ====  ======================================================  =====================================

FGSM: CO in 4/5 seeds (PGD accuracy → 0 while FGSM accuracy rises to .45–.94 and alignment falls
from .53–.76 at the best epoch to .13–.32); GradAlign: no CO in 5/5, final PGD accuracy .24–.30, alignment ≥ .95.
With 5,000 crops FGSM training showed CO in 3/5 seeds only (seeds 0, 1, 4). Zeroing the culprit
filter after CO restores the alignment to .89–.98 in 3 of the 4 CO runs (.43 in seed 1) and PGD
accuracy from ≈ 0 to .09–.12 (seed 1: 0).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .._cli import UsageError, check_choice, check_int_range, check_nonneg, check_positive, progress
from . import attacks, model
from ..datasets import ImageData
from .model import CNNParams

__all__ = ["TrainConfig", "TrainResult", "train", "resolve", "detect_co", "default_lambda", "parse_eps",
           "cyclic_lr", "ATTACKS", "DEFAULT_EPS", "DEFAULT_EPOCHS", "HISTORY_KEYS", "evaluate", "default_eps",
           "PHOTOS_LAMBDA", "DATASET_EPS"]

ATTACKS = ("none", "fgsm", "fgsm-rs", "pgd")
SCHEDULES = ("cyclic", "constant")
DEFAULT_EPS = 10 / 255
DEFAULT_EPOCHS = 30
#: keys of every history / final record (besides ``epoch``)
HISTORY_KEYS = ("clean_acc", "clean_loss", "fgsm_acc", "fgsm_loss", "pgd_acc", "pgd_loss",
                "grad_alignment", "cos_fgsm_pgd")

#: CO rule constants (see :func:`detect_co`)
CO_DROP_RATIO = 0.5
CO_MIN_DROP = 0.05
CO_MIN_GAP = 0.10
CO_PATIENCE = None
#: accuracies are fractions k/n: thresholds are compared with this slack against rounding
_TOL = 1e-9


def parse_eps(text) -> float:
    """A radius given as a number (``0.04``) or a fraction (``10/255``)."""
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip()
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            val = float(num) / float(den)
        else:
            val = float(s)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--eps must be a number or a fraction like 10/255, got {text!r}") from None
    return val


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


def default_eps(dataset: str | None = None) -> float:
    """The ε of ``python -m toymodels.cnn train`` without ``--eps``: 24/255 on ``photos`` (where FGSM
    training shows CO), else the thesis' 10/255 (Fig. 2.11)."""
    return DATASET_EPS.get(dataset, DEFAULT_EPS)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run; ``None`` = resolved from the others (see :func:`resolve`)."""

    attack: str = "fgsm"
    eps: float = DEFAULT_EPS
    alpha: float | None = None
    pgd_steps: int = 10
    grad_align: float | str = 0.0
    grad_align_exact: bool = False
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


def resolve(cfg: TrainConfig, dataset: str | None = None) -> TrainConfig:
    """Validate ``cfg`` (raising :class:`UsageError` naming the parameter and its range) and fill in
    the defaults: α (fgsm: ε, fgsm-rs: 1.25ε, pgd: ε/2 for k ≤ 3 else 2ε/k, none: 0) and λ
    (``"default"`` → :func:`default_lambda` (ε, ``dataset``))."""
    check_choice("--attack", cfg.attack, ATTACKS)
    check_choice("--schedule", cfg.schedule, SCHEDULES)
    eps = float(cfg.eps)
    if not (math.isfinite(eps) and 0 < eps <= 1):
        raise UsageError(f"--eps must be in (0, 1] (e.g. 10/255), got {cfg.eps!r}")
    check_int_range("--pgd-steps", cfg.pgd_steps, 1)
    check_int_range("--epochs", cfg.epochs, 1)
    check_int_range("--filters", cfg.filters, 1)
    check_int_range("--batch", cfg.batch, 1)
    check_positive("--lr", cfg.lr)
    check_int_range("--n-eval", cfg.n_eval, 1)
    check_int_range("--eval-pgd-steps", cfg.eval_pgd_steps, 1)
    check_int_range("--final-n", cfg.final_n, 1)
    check_int_range("--final-pgd-steps", cfg.final_pgd_steps, 1)
    check_int_range("--final-restarts", cfg.final_restarts, 1)
    check_int_range("--seed", cfg.seed, 0, 2**32 - 1)
    lam = cfg.grad_align
    if isinstance(lam, str):
        if lam.strip().lower() == "default":
            lam = default_lambda(eps, dataset)
        else:
            try:
                lam = float(lam)
            except ValueError:
                raise UsageError(f"--grad-align must be a number >= 0 or 'default', got {lam!r}") from None
    check_nonneg("--grad-align", lam)
    alpha = cfg.alpha
    # α ranges: FGSM/PGD steps beyond ε are clipped by the projection (useless), FGSM-RS is studied
    # for α ∈ (0, 2ε] (Lemma 1); beyond 2ε the random start is irrelevant.
    hi = {"none": None, "fgsm": eps, "fgsm-rs": 2 * eps, "pgd": eps}[cfg.attack]
    if cfg.attack == "none":
        if alpha not in (None, 0, 0.0):
            raise UsageError("--alpha applies only to --attack fgsm, fgsm-rs or pgd")
        alpha = 0.0
    elif alpha is None:
        k = cfg.pgd_steps
        alpha = {"fgsm": eps, "fgsm-rs": 1.25 * eps,
                 "pgd": (eps / 2 if k <= 3 else 2 * eps / k)}[cfg.attack]
    else:
        alpha = float(alpha)
        if not (math.isfinite(alpha) and 0 < alpha <= hi * (1 + 1e-12)):
            span = "ε" if hi == eps else "2ε"
            raise UsageError(f"--alpha must be in (0, {span}] = (0, {hi:.6g}] for --attack {cfg.attack}, "
                             f"got {cfg.alpha!r}")
    return replace(cfg, eps=eps, alpha=float(alpha), grad_align=float(lam))


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
    if patience is not None and int(patience) < 1:
        raise UsageError(f"patience must be >= 1 or None, got {patience!r}")
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


def _perturb(params, x, y, cfg: TrainConfig, rng: np.random.Generator, backend: str = "numba") -> np.ndarray:
    if cfg.attack == "none":
        return x
    if cfg.attack == "fgsm":
        d = attacks.pgd(params, x, y, cfg.eps, cfg.alpha, 1, 1, random_start=False, backend=backend)
    elif cfg.attack == "fgsm-rs":
        d = attacks.fgsm_rs(params, x, y, cfg.eps, cfg.alpha, rng.uniform(-cfg.eps, cfg.eps, x.shape),
                            backend=backend)
    else:
        d = attacks.pgd(params, x, y, cfg.eps, cfg.alpha, cfg.pgd_steps, 1, random_start=False, backend=backend)
    return x + d


def _step(params: CNNParams, theta: np.ndarray, opt: "_Adam", x, y, cfg: TrainConfig, rng: np.random.Generator,
          lr: float, backend: str = "numba") -> tuple[float, float, bool]:
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


def train(data: ImageData, cfg: TrainConfig = TrainConfig(), *, show_progress: bool = False) -> TrainResult:
    """Train the CNN on ``data`` with ``cfg`` (validated by :func:`resolve`) and evaluate every epoch.

    Randomness: ``SeedSequence(cfg.seed)`` spawns independent streams for the initialization
    (torch's default scheme, :func:`toymodels.cnn.model.init_params`), the batch order, the
    training noise (FGSM-RS starts, GradAlign η) and the evaluation (subset, alignment noise, PGD
    starts), so a run is determined by its config and seed."""
    cfg = resolve(cfg, data.name)
    t_start = time.perf_counter()
    ss = np.random.SeedSequence(cfg.seed)
    r_init, r_batch, r_noise, r_eval = (np.random.default_rng(s) for s in ss.spawn(4))
    xtr, ytr, xte, yte = data.x_train, data.y_train, data.x_test, data.y_test
    N = len(ytr)
    C, H, W = data.shape
    M, K = cfg.filters, data.num_classes
    params = model.init_params(C, H, W, M, K, seed=r_init)
    init = params.copy()
    shapes = params.shapes
    theta = params.flat()
    params = CNNParams.from_flat(theta, shapes)        # views into theta: updated in place
    opt = _Adam(theta.size)

    ev_idx = np.sort(r_eval.choice(len(yte), size=min(cfg.n_eval, len(yte)), replace=False))
    x_ev, y_ev = np.ascontiguousarray(xte[ev_idx]), yte[ev_idx]
    noise_ev = r_eval.uniform(-cfg.eps, cfg.eps, x_ev.shape)
    pgd_seed = int(r_eval.integers(2**31))

    def record(epoch: int, extra: dict) -> dict:
        rec = {"epoch": epoch}
        rec.update(evaluate(params, xte, yte, x_ev, y_ev, noise_ev, cfg.eps, pgd_steps=cfg.eval_pgd_steps,
                            pgd_seed=pgd_seed))
        rec.update(extra)
        return rec

    filters = [params.Wc.copy()]
    biases = [params.bc.copy()]
    out_norms = [_out_norms(params)]
    history = [record(0, {"train_loss": None, "grad_align_reg": None, "lr": 0.0})]
    nb = -(-N // cfg.batch)
    diverged_at = None
    bar = progress(cfg.epochs * nb, disable=not show_progress, desc=f"{cfg.attack} AT", unit="batch")
    try:
        for epoch in range(1, cfg.epochs + 1):
            perm = r_batch.permutation(N)
            tl, tr, seen = 0.0, 0.0, 0
            for i in range(nb):
                idx = np.sort(perm[i * cfg.batch:(i + 1) * cfg.batch])
                x, y = xtr[idx], ytr[idx]
                lr = (cyclic_lr(epoch - 1 + (i + 1) / nb, cfg.epochs, cfg.lr) if cfg.schedule == "cyclic"
                      else cfg.lr)
                loss, omega, ok = _step(params, theta, opt, x, y, cfg, r_noise, lr)
                if not ok or not np.isfinite(theta).all():
                    diverged_at = {"epoch": epoch, "batch": i}
                    break
                n = len(y)
                tl += loss * n
                tr += omega * n
                seen += n
                bar.update(1)
            if diverged_at is not None:
                break
            history.append(record(epoch, {"train_loss": tl / seen,
                                          "grad_align_reg": (tr / seen) if cfg.grad_align > 0 else None,
                                          "lr": lr}))
            filters.append(params.Wc.copy())
            biases.append(params.bc.copy())
            out_norms.append(_out_norms(params))
            if show_progress:
                h = history[-1]
                bar.set_postfix_str(f"ep {epoch} clean {h['clean_acc']:.2f} pgd {h['pgd_acc']:.2f} "
                                    f"align {h['grad_alignment']:.2f}")
    finally:
        bar.close()

    filters_a, biases_a, out_a = np.array(filters), np.array(biases), np.array(out_norms)
    co = detect_co(history)
    result = TrainResult(config=cfg.as_dict(), data=data.describe(), history=history, co_epoch=co, final={},
                         params=params.copy(), init_params=init, filters=filters_a, biases=biases_a,
                         out_norms=out_a, culprit_filter=None, culprit_reference_epoch=None, filter_growth=[],
                         grad_alignment_without_culprit=None, grad_alignment_without_filter=[],
                         diverged=diverged_at is not None, diverged_at=diverged_at)
    if diverged_at is not None:
        result.runtime_s = time.perf_counter() - t_start
        return result

    # final evaluation (PGD with restarts) on final_n test points
    r_final = np.random.default_rng(ss.spawn(1)[0])
    fi = np.sort(r_final.choice(len(yte), size=min(cfg.final_n, len(yte)), replace=False))
    x_f, y_f = np.ascontiguousarray(xte[fi]), yte[fi]
    noise_f = r_final.uniform(-cfg.eps, cfg.eps, x_f.shape)
    final = {"epoch": len(history) - 1}
    final_pgd_seed = int(r_final.integers(2**31))
    final.update(evaluate(params, xte, yte, x_f, y_f, noise_f, cfg.eps, pgd_steps=cfg.final_pgd_steps,
                          restarts=cfg.final_restarts, pgd_seed=final_pgd_seed))
    final["n_points"] = len(y_f)
    final["attack"] = f"PGD-{cfg.final_pgd_steps}-{cfg.final_restarts}, alpha = eps/4"
    result.final = final

    # culprit filter: largest growth of ‖w_m‖‖U_m‖ since the best-PGD epoch before CO
    last = len(history) - 1
    upto = (co - 1) if co is not None else last
    ref = int(max(range(upto + 1), key=lambda t: (history[t]["pgd_acc"], -t)))
    c_ref, c_end = _contrib(filters_a[ref], out_a[ref]), _contrib(filters_a[last], out_a[last])
    growth = c_end / np.maximum(c_ref, 1e-300)
    culprit = int(np.argmax(growth))
    without = [_alignment(_zero_filter(params, m), x_f, y_f, noise_f) for m in range(M)]
    result.culprit_filter = culprit
    result.culprit_reference_epoch = ref
    result.filter_growth = growth.tolist()
    result.grad_alignment_without_filter = without
    result.grad_alignment_without_culprit = without[culprit]
    # the whole final evaluation again with the culprit zeroed (same points, noise and PGD starts)
    zeroed = evaluate(_zero_filter(params, culprit), xte, yte, x_f, y_f, noise_f, cfg.eps,
                      pgd_steps=cfg.final_pgd_steps, restarts=cfg.final_restarts, pgd_seed=final_pgd_seed)
    result.extra["clean_acc_without_culprit"] = zeroed["clean_acc"]
    result.extra["final_without_culprit"] = zeroed
    result.runtime_s = time.perf_counter() - t_start
    return result
