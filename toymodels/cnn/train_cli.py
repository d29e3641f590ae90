"""The ``train`` command of ``python -m toymodels.cnn``: adversarial training of the single-layer CNN
with catastrophic-overfitting detection (:mod:`toymodels.cnn.train`)."""
from __future__ import annotations

import argparse
import re

from .._cli import Choice, Command, InDir, Int, Num, Result
from .._io import save_figure, save_npz
from ..datasets import DEFAULT_IMAGE_DATASET, IMAGE_DATASETS, load_images
from ..datasets.images import PHOTOS_DEFAULTS, STROKES_DEFAULTS, SYNTHETIC_DEFAULTS
from ..errors import ConfigError
from .regularizers import DEFAULT_H
from .train import (ATTACKS, DEFAULT_EPOCHS, REGS, MAX_EPOCHS, MAX_FILTERS, MAX_LAMBDA, MAX_POINTS, MAX_RESTARTS,
                    MAX_STEPS, SCHEDULES, TrainConfig, default_eps, resolve, train)

__all__ = ["TRAIN", "EpsMultiple", "Alpha", "GradAlign"]

#: the sizes of the generated datasets (known before loading, so that --batch / --n-eval / --final-n
#: are checked before any work)
_GENERATED = {"photos": PHOTOS_DEFAULTS, "synthetic": SYNTHETIC_DEFAULTS, "strokes": STROKES_DEFAULTS}
_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_IMAGES = "at most 10^6 images (24.6 KB each at 32×32×3 in float64)"


class EpsMultiple(float):
    """α given as a multiple of ε (``1.25eps``): the factor, resolved once ε is known."""

    def __repr__(self) -> str:
        return f"{float(self):g}eps"


class Alpha(Num):
    """The attack step α: a number or fraction in (0, 2], or a multiple of ε in (0, 2]·ε such as
    ``1.25eps``, ``0.5*eps`` or ``eps`` (an :class:`EpsMultiple`). The attack's own range
    (fgsm, pgd: α ≤ ε; fgsm-rs: α ≤ 2ε) is checked once ε is known."""

    def describe(self) -> str:
        return "must be a number in (0, 2] (a fraction a/b is allowed) or a multiple of eps such as 1.25eps"

    def __call__(self, text: str):
        m = re.fullmatch(rf"({_NUM})?\*?eps", str(text).strip().replace(" ", ""))
        if m:
            k = float(m.group(1)) if m.group(1) else 1.0
            if not 0.0 < k <= 2.0:
                self.fail(text, self.describe())
            return EpsMultiple(k)
        return super().__call__(text)


class GradAlign(Num):
    """The GradAlign weight λ: a number in [0, MAX_LAMBDA] or the word ``default``."""

    def describe(self) -> str:
        return f"must be a number in [0, {MAX_LAMBDA:g}] or 'default'"

    def __call__(self, text: str):
        if str(text).strip() == "default":
            return "default"
        return super().__call__(text)


def _steps(why: str) -> Int:
    return Int(1, MAX_STEPS, why)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--attack", type=Choice(*ATTACKS), metavar=Choice(*ATTACKS).metavar, default="fgsm",
                   help="the training attack (default fgsm)")
    g.add_argument("--eps", type=Num(0, 1, lo_open=True), default=None,
                   help="ℓ∞ radius in (0, 1], a number or a fraction (default 24/255 on photos, 10/255 otherwise)")
    g.add_argument("--alpha", type=Alpha(0, 2, lo_open=True), default=None,
                   help="attack step: fgsm (0, ε] (default ε), fgsm-rs (0, 2ε] (default 1.25ε), n-fgsm (0, 2ε] (default ε), pgd (0, ε] "
                        "(default ε/2 for k ≤ 3, else 2ε/k); e.g. 8/255 or 1.25eps")
    g.add_argument("--pgd-steps", type=_steps("a step is a forward and backward pass per image"), default=10,
                   metavar="K", help="PGD-k training steps k >= 1 (default 10)")
    g.add_argument("--grad-align", type=GradAlign(0, MAX_LAMBDA), default=0.0, metavar="LAMBDA",
                   help="GradAlign weight λ >= 0, or 'default' = 1 on photos, 2.5·1.6^((255ε−8)/8) on svhn, "
                        "0.2·10^((255ε−8)/8) otherwise (thesis Table 2.2); default 0 (off)")
    g.add_argument("--grad-align-exact", action="store_true",
                   help="differentiate GradAlign through both input gradients (default: only through "
                        "∇ℓ(x+η), as the authors' code)")
    g.add_argument("--reg", type=Choice(*REGS), metavar=Choice(*REGS).metavar, default="none",
                   help="regularizer added to the training loss (default none): gradalign (exact, = --grad-align), "
                        "gradalign-fd (finite-difference gradient, no double backprop), elle (local linearity), "
                        "elle-a (ELLE with ELLE-A's adaptive λ, λ_max = --reg-lambda), gradnorm (mean ‖∇ₓℓ‖²), cure (mean ‖∇ₓℓ(x+δ_FGSM) − ∇ₓℓ(x)‖²)")
    g.add_argument("--reg-lambda", type=GradAlign(0, MAX_LAMBDA), default="default", metavar="LAMBDA",
                   help="weight λ of --reg, a number >= 0 or 'default' (per method; see toymodels.cnn.train."
                        "default_reg_lambda)")
    g.add_argument("--reg-h", type=Num(0, 1, lo_open=True), default=None, metavar="H",
                   help=f"finite-difference step (ℓ₂ length in input units) of gradalign-fd, gradnorm and cure "
                        f"(default {DEFAULT_H:g})")
    g.add_argument("--nfgsm-k", type=Num(0, 16), default=2.0, metavar="K",
                   help="N-FGSM noise radius kε, k in [0, 16] (default 2; only with --attack n-fgsm)")
    g.add_argument("--epochs", type=Int(1, MAX_EPOCHS, "an epoch takes seconds"), default=DEFAULT_EPOCHS,
                   help=f"epochs >= 1 (default {DEFAULT_EPOCHS})")
    g.add_argument("--filters", type=Int(1, MAX_FILTERS, "the gradient buffers grow with 16·K·M·H·W·8 bytes"),
                   default=4, metavar="M", help="number of 3×3 filters M >= 1 (default 4)")
    g.add_argument("--batch", type=Int(1, MAX_POINTS, _IMAGES), default=128,
                   help="batch size, at most the training set (default 128)")
    g.add_argument("--lr", type=Num(0, lo_open=True), default=0.003, help="maximal Adam learning rate (default 0.003)")
    g.add_argument("--schedule", type=Choice(*SCHEDULES), metavar=Choice(*SCHEDULES).metavar, default="cyclic",
                   help="learning-rate schedule (default cyclic)")
    e = p.add_argument_group("evaluation")
    e.add_argument("--n-eval", type=Int(1, MAX_POINTS, _IMAGES), default=500,
                   help="test points for the per-epoch attacks, at most the test set (default 500)")
    e.add_argument("--eval-pgd-steps", type=_steps("a step is a forward and backward pass per point"), default=10,
                   help="PGD steps per epoch (α = ε/4; default 10)")
    e.add_argument("--final-n", type=Int(1, MAX_POINTS, _IMAGES), default=1000,
                   help="test points of the final evaluation, at most the test set (default 1000)")
    e.add_argument("--final-pgd-steps", type=_steps("a step is a forward and backward pass per point"), default=50,
                   help="final PGD steps (default 50)")
    e.add_argument("--final-restarts", type=Int(1, MAX_RESTARTS, "each restart repeats the final attack"),
                   default=10, help="final PGD restarts (default 10)")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", type=Choice(*IMAGE_DATASETS), metavar=Choice(*IMAGE_DATASETS).metavar,
                   default=DEFAULT_IMAGE_DATASET,
                   help=f"default {DEFAULT_IMAGE_DATASET}: 32×32 crops of the 8 colour photos shipped with "
                        "scikit-image, 8 classes; synthetic and strokes are generated; nothing is downloaded")
    d.add_argument("--data-dir", type=InDir(), default=None, metavar="DIR",
                   help="folder with the standard files of cifar10 (cifar-10-batches-py/), cifar100 "
                        "(cifar-100-python/) or svhn (train_32x32.mat, test_32x32.mat)")
    d.add_argument("--n-train", type=Int(1, MAX_POINTS, _IMAGES), default=None,
                   help="training set size (generated sets: default 10000 for photos, synthetic and strokes; "
                        "files: random subset, default all)")
    d.add_argument("--n-test", type=Int(1, MAX_POINTS, _IMAGES), default=None,
                   help="test set size (photos 2000, synthetic 2000, strokes 1000; files: random subset, "
                        "default all)")


def _config(a: argparse.Namespace) -> TrainConfig:
    """The resolved config (validated before any data is loaded; for the generated datasets also the
    batch and evaluation sizes against the data sizes)."""
    eps = default_eps(a.dataset) if a.eps is None else a.eps
    alpha = a.alpha * eps if isinstance(a.alpha, EpsMultiple) else a.alpha
    cfg = TrainConfig(attack=a.attack, eps=eps, alpha=alpha, pgd_steps=a.pgd_steps, grad_align=a.grad_align,
                      grad_align_exact=a.grad_align_exact, reg=a.reg,
                      reg_lambda=a.reg_lambda, reg_h=a.reg_h, nfgsm_k=a.nfgsm_k, epochs=a.epochs, filters=a.filters, batch=a.batch,
                      lr=a.lr, schedule=a.schedule, n_eval=a.n_eval, eval_pgd_steps=a.eval_pgd_steps,
                      final_n=a.final_n, final_pgd_steps=a.final_pgd_steps, final_restarts=a.final_restarts,
                      seed=a.seed)
    sizes = _GENERATED.get(a.dataset)
    if sizes is not None and a.data_dir is not None:
        raise ConfigError("data_dir", f"applies only to the datasets read from files (cifar10, cifar100, svhn), "
                                      f"not to the generated {a.dataset!r}", a.data_dir)
    n_train = a.n_train if a.n_train is not None or sizes is None else sizes["n_train"]
    n_test = a.n_test if a.n_test is not None or sizes is None else sizes["n_test"]
    return resolve(cfg, a.dataset, n_train=n_train, n_test=n_test)


def _fmt(v, spec=".3f") -> str:
    return "—" if v is None else format(v, spec)


def _print_final(out: dict) -> None:
    f = out["final"]
    print(f"final ({f['attack']}, {f['n_points']} points): clean {f['clean_acc']:.3f}  FGSM {f['fgsm_acc']:.3f}  "
          f"PGD {f['pgd_acc']:.3f}  alignment {f['grad_alignment']:.3f}  cos(δ_FGSM, δ_PGD) {f['cos_fgsm_pgd']:.3f}")
    m = out["culprit_filter"]
    print(f"culprit filter w{m + 1} (largest growth of ‖w‖·‖U‖ since epoch {out['culprit_reference_epoch']}: "
          f"×{out['filter_growth'][m]:.2f}); alignment {f['grad_alignment']:.3f} → "
          f"{out['grad_alignment_without_culprit']:.3f} with it zeroed")
    z = out["final_without_culprit"]
    print(f"  with w{m + 1} zeroed: clean {z['clean_acc']:.3f}  FGSM {z['fgsm_acc']:.3f}  PGD {z['pgd_acc']:.3f}  "
          f"(PGD {f['pgd_acc']:.3f} before zeroing)")


def _print_human(out: dict, c: dict) -> None:
    print(f"Single-layer CNN ({c['filters']} filters), {out['data']}")
    print(f"  attack={c['attack']}  eps={c['eps']:.5g} (= {255 * c['eps']:.3g}/255)  alpha={c['alpha']:.5g}"
          f"  GradAlign λ={c['grad_align']:.4g}  reg={c['reg']} λ={c['reg_lambda']:.4g}  epochs={c['epochs']}  lr={c['lr']}  seed={c['seed']}")
    print()
    cols = ("epoch", "clean", "fgsm", "pgd", "align", "cos(F,P)", "fgsm_loss", "pgd_loss")
    print("".join(s.rjust(10) for s in cols))
    for h in out["history"]:
        print("".join(s.rjust(10) for s in (
            str(h["epoch"]), _fmt(h["clean_acc"]), _fmt(h["fgsm_acc"]), _fmt(h["pgd_acc"]),
            _fmt(h["grad_alignment"]), _fmt(h["cos_fgsm_pgd"]), _fmt(h["fgsm_loss"]), _fmt(h["pgd_loss"]))))
    print()
    if out["diverged"]:
        d = out["diverged_at"]
        print(f"diverged (non-finite loss or parameters) at epoch {d['epoch']}, batch {d['batch']} (step {d['step']})")
    else:
        co = out["co_epoch"]
        print("catastrophic overfitting: " + (f"at epoch {co}" if co is not None else "none detected"))
        _print_final(out)
    print(f"runtime {out['runtime_s']:.1f} s")


def _plot(res, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    h = res.history
    ep = [r["epoch"] for r in h]
    fig = Figure(figsize=(12, 3.6))
    axes = fig.subplots(1, 3)
    for key, lab in (("clean_acc", "clean"), ("fgsm_acc", "FGSM"), ("pgd_acc", "PGD")):
        axes[0].plot(ep, [r[key] for r in h], label=lab)
    for key, lab in (("fgsm_loss", "FGSM"), ("pgd_loss", "PGD")):
        axes[1].semilogy(ep, [r[key] for r in h], label=lab)
    axes[2].plot(ep, [r["grad_alignment"] for r in h], label="gradient alignment")
    axes[2].plot(ep, [r["cos_fgsm_pgd"] for r in h], label="cos(δ_FGSM, δ_PGD)")
    for ax, t in zip(axes, ("accuracy", "loss", "alignment")):
        if res.co_epoch is not None:
            ax.axvline(res.co_epoch, ls="--", c="k", lw=1)
        ax.set_title(t)
        ax.set_xlabel("epoch")
        ax.legend()
    save_figure(fig, path)


def run(a: argparse.Namespace, session) -> Result:
    cfg = _config(a)
    data = load_images(a.dataset, a.data_dir, n_train=a.n_train, n_test=a.n_test, seed=a.seed)
    res = train(data, cfg, show_progress=session.show_progress)
    out = res.to_json()
    config = {**out.pop("config"), "dataset": a.dataset, "data_dir": a.data_dir, "n_train": len(data.y_train),
              "n_test": len(data.y_test)}
    if res.diverged:
        d = res.diverged_at
        session.note(f"diverged (non-finite loss or parameters) at epoch {d['epoch']}, batch {d['batch']} "
                     f"(step {d['step']}); try a smaller --lr")
    return Result(out, config, human=lambda: _print_human(out, config),
                  files={"snapshots.npz": lambda path: save_npz(path, **res.arrays()),
                         "training_curves.png": lambda path: _plot(res, path)})


_EPILOG = ("Examples: train --attack fgsm --seed 1 (embedded photo crops, ε = 24/255: CO, as in 3 of seeds 0–9)   "
           "train --attack fgsm --grad-align default --seed 1 (λ = 1 there: no CO)   "
           "train --dataset cifar10 --data-dir ~/data --eps 10/255 --json")

TRAIN = Command(
    "train", "adversarial training with CO detection (Fig. 2.5–2.7, 2.11–2.13)", add_arguments, run,
    description="Train the single-layer CNN (4 filters 3×3, ReLU, linear layer; Adam with the cyclic learning "
                "rate) with standard, FGSM, FGSM-RS, N-FGSM or PGD-k adversarial training, optionally with GradAlign "
                "or another regularizer (finite-difference GradAlign, ELLE, gradient norm, CURE); "
                "report per-epoch clean/FGSM/PGD accuracy and loss, gradient alignment and cos(δ_FGSM, δ_PGD), "
                "the epoch of catastrophic overfitting and the culprit filter.",
    epilog=_EPILOG,
    smoke=("--epochs", "1", "--dataset", "synthetic", "--n-train", "64", "--n-test", "40", "--n-eval", "16",
           "--final-n", "16", "--final-pgd-steps", "2", "--final-restarts", "2", "--eval-pgd-steps", "2",
           "--batch", "32"))
