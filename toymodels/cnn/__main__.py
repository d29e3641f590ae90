"""``python -m toymodels.cnn``: the single-layer CNN of thesis Ch. 2 (Sec. 2.5, App. 2.10.2).

Subcommands:

* ``train``      — standard / FGSM / FGSM-RS / PGD-k adversarial training, optionally with GradAlign,
                   per-epoch clean/FGSM/PGD accuracy, gradient alignment and cos(δ_FGSM, δ_PGD),
                   catastrophic-overfitting detection and the culprit filter.
* ``align-init`` — gradient alignment at initialization (Lemma 2), from :mod:`toymodels.cnn.align_init`.
"""
from __future__ import annotations

import re
import sys

import numpy as np

from .. import __version__
from .._cli import Parser, UsageError, add_common, emit_json, run_main
from .._io import save_figure, save_npz, write_json
from ..datasets import IMAGE_DATASETS, DEFAULT_IMAGE_DATASET, load_images
from .train import ATTACKS, DEFAULT_EPOCHS, SCHEDULES, TrainConfig, default_eps, parse_eps, resolve, train

PROG = "python -m toymodels.cnn"
_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def parse_alpha(text: str, eps: float) -> float:
    """α as a number, a fraction ``a/b`` or a multiple of ε (``1.25eps``, ``0.5*eps``, ``eps``)."""
    t = str(text).strip().replace(" ", "")
    m = re.fullmatch(rf"({_NUM})?\*?eps", t)
    if m:
        return (float(m.group(1)) if m.group(1) else 1.0) * eps
    try:
        return parse_eps(t)
    except UsageError:
        raise UsageError(f"--alpha must be a number, a fraction a/b or a multiple of eps such as 1.25eps, "
                         f"got {text!r}") from None


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="adversarial training with CO detection (Fig. 2.5–2.7, 2.11–2.13)",
        description="Train the single-layer CNN (4 filters 3×3, ReLU, linear layer; Adam with the cyclic "
                    "learning rate) with standard, FGSM, FGSM-RS or PGD-k adversarial training, optionally "
                    "with GradAlign; report per-epoch clean/FGSM/PGD accuracy and loss, gradient alignment "
                    "and cos(δ_FGSM, δ_PGD), the epoch of catastrophic overfitting and the culprit filter.",
        epilog="Examples: train --attack fgsm (embedded photo crops, ε = 24/255: shows CO)   "
               "train --attack fgsm --grad-align default (λ = 1 there: no CO)   "
               "train --dataset cifar10 --data-dir ~/data --eps 10/255 --json")
    g = p.add_argument_group("training")
    g.add_argument("--attack", default="fgsm", help=f"one of {{{', '.join(ATTACKS)}}} (default fgsm)")
    g.add_argument("--eps", default=None, help="ℓ∞ radius in (0, 1], a number or a fraction (default 24/255 on "
                   "photos, 10/255 otherwise)")
    g.add_argument("--alpha", default=None, help="attack step: fgsm (0, ε] (default ε), fgsm-rs (0, 2ε] "
                   "(default 1.25ε), pgd (0, ε] (default ε/2 for k ≤ 3, else 2ε/k); e.g. 8/255 or 1.25eps")
    g.add_argument("--pgd-steps", type=int, default=10, metavar="K", help="PGD-k training steps k >= 1 (default 10)")
    g.add_argument("--grad-align", default="0", metavar="LAMBDA",
                   help="GradAlign weight λ >= 0, or 'default' = 1 on photos, 2.5·1.6^((255ε−8)/8) on svhn, "
                        "0.2·10^((255ε−8)/8) otherwise (thesis Table 2.2); default 0 (off)")
    g.add_argument("--grad-align-exact", action="store_true",
                   help="differentiate GradAlign through both input gradients (default: only through "
                        "∇ℓ(x+η), as the authors' code)")
    g.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs >= 1 (default {DEFAULT_EPOCHS})")
    g.add_argument("--filters", type=int, default=4, metavar="M", help="number of 3×3 filters M >= 1 (default 4)")
    g.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    g.add_argument("--lr", type=float, default=0.003, help="maximal Adam learning rate (default 0.003)")
    g.add_argument("--schedule", default="cyclic", help=f"one of {{{', '.join(SCHEDULES)}}} (default cyclic)")
    e = p.add_argument_group("evaluation")
    e.add_argument("--n-eval", type=int, default=500, help="test points for the per-epoch attacks (default 500)")
    e.add_argument("--eval-pgd-steps", type=int, default=10, help="PGD steps per epoch (α = ε/4; default 10)")
    e.add_argument("--final-n", type=int, default=1000, help="test points of the final evaluation (default 1000)")
    e.add_argument("--final-pgd-steps", type=int, default=50, help="final PGD steps (default 50)")
    e.add_argument("--final-restarts", type=int, default=10, help="final PGD restarts (default 10)")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default=DEFAULT_IMAGE_DATASET, help=f"one of {{{', '.join(IMAGE_DATASETS)}}} (default "
                   f"{DEFAULT_IMAGE_DATASET}: 32×32 crops of the 8 colour photos shipped with scikit-image, 8 classes; "
                   "synthetic and strokes are generated; nothing is downloaded)")
    d.add_argument("--data-dir", default=None, metavar="DIR", help="folder with the standard files of cifar10 "
                   "(cifar-10-batches-py/), cifar100 (cifar-100-python/) or svhn (train_32x32.mat, test_32x32.mat)")
    d.add_argument("--n-train", type=int, default=None, help="training set size (generated sets: default 10000 for photos, "
                   "synthetic and strokes; files: random subset, default all)")
    d.add_argument("--n-test", type=int, default=None, help="test set size (photos 2000, synthetic 2000, strokes 1000; "
                   "files: random subset, default all)")
    add_common(p)
    p.set_defaults(func=run_train)


def _fmt(v, spec=".3f") -> str:
    return "—" if v is None else format(v, spec)


def _print_human(out: dict) -> None:
    c = out["config"]
    lam = c["grad_align"]
    print(f"Single-layer CNN ({c['filters']} filters), {out['data']}")
    print(f"  attack={c['attack']}  eps={c['eps']:.5g} (= {255 * c['eps']:.3g}/255)  alpha={c['alpha']:.5g}"
          f"  GradAlign λ={lam:.4g}  epochs={c['epochs']}  lr={c['lr']}  seed={c['seed']}")
    print()
    cols = ("epoch", "clean", "fgsm", "pgd", "align", "cos(F,P)", "fgsm_loss", "pgd_loss")
    print("".join(s.rjust(10) for s in cols))
    for h in out["history"]:
        print("".join(s.rjust(10) for s in (
            str(h["epoch"]), _fmt(h["clean_acc"]), _fmt(h["fgsm_acc"]), _fmt(h["pgd_acc"]),
            _fmt(h["grad_alignment"]), _fmt(h["cos_fgsm_pgd"]), _fmt(h["fgsm_loss"]), _fmt(h["pgd_loss"]))))
    print()
    if out.get("diverged"):
        d = out["diverged_at"]
        print(f"diverged (non-finite loss or parameters) at epoch {d['epoch']}, batch {d['batch']}")
        return
    co = out["co_epoch"]
    print("catastrophic overfitting: " + (f"at epoch {co}" if co is not None else "none detected"))
    f = out["final"]
    print(f"final ({f['attack']}, {f['n_points']} points): clean {f['clean_acc']:.3f}  FGSM {f['fgsm_acc']:.3f}  "
          f"PGD {f['pgd_acc']:.3f}  alignment {f['grad_alignment']:.3f}  cos(δ_FGSM, δ_PGD) {f['cos_fgsm_pgd']:.3f}")
    m = out["culprit_filter"]
    print(f"culprit filter w{m + 1} (largest growth of ‖w‖·‖U‖ since epoch {out['culprit_reference_epoch']}: "
          f"×{out['filter_growth'][m]:.2f}); alignment {f['grad_alignment']:.3f} → "
          f"{out['grad_alignment_without_culprit']:.3f} with it zeroed")
    z = out.get("final_without_culprit")
    if z is not None:
        print(f"  with w{m + 1} zeroed: clean {z['clean_acc']:.3f}  FGSM {z['fgsm_acc']:.3f}  PGD {z['pgd_acc']:.3f}  "
              f"(PGD {f['pgd_acc']:.3f} before zeroing)")
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


def run_train(args) -> int:
    eps = default_eps(args.dataset) if args.eps is None else parse_eps(args.eps)
    alpha = None if args.alpha is None else parse_alpha(args.alpha, eps)
    cfg = TrainConfig(attack=args.attack, eps=eps, alpha=alpha, pgd_steps=args.pgd_steps,
                      grad_align=args.grad_align, grad_align_exact=args.grad_align_exact, epochs=args.epochs,
                      filters=args.filters, batch=args.batch, lr=args.lr, schedule=args.schedule,
                      n_eval=args.n_eval, eval_pgd_steps=args.eval_pgd_steps, final_n=args.final_n,
                      final_pgd_steps=args.final_pgd_steps, final_restarts=args.final_restarts, seed=args.seed)
    cfg = resolve(cfg, args.dataset)            # validate everything before loading data
    data = load_images(args.dataset, args.data_dir, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    res = train(data, cfg, show_progress=not args.json)
    out = res.to_json()
    out["config"] = {**out["config"], "dataset": args.dataset, "data_dir": args.data_dir,
                     "n_train": len(data.y_train), "n_test": len(data.y_test)}
    out["version"] = __version__
    if res.diverged:
        d = res.diverged_at
        print(f"{PROG} train: diverged (non-finite loss or parameters) at epoch {d['epoch']}, batch {d['batch']}; "
              "try a smaller --lr", file=sys.stderr)
    if args.out:
        write_json(f"{args.out}/result.json", out)
        save_npz(f"{args.out}/snapshots.npz", **res.arrays())
        _plot(res, f"{args.out}/training_curves.png")
    if args.json:
        emit_json(out)
    else:
        _print_human(out)
        if args.out:
            print(f"wrote {args.out}/result.json, snapshots.npz, training_curves.png")
    return 1 if res.diverged else 0


def build_parser() -> Parser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", metavar="{train,align-init}")
    sub.required = True
    _add_train(sub)
    try:
        from . import align_init
    except ImportError:  # pragma: no cover - the module is developed separately
        align_init = None
    if align_init is not None:
        align_init.add_parser(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog=PROG))
