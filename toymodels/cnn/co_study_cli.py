"""The ``co-study`` command of ``python -m toymodels.cnn``: which method prevents catastrophic
overfitting, at what epoch cost, with what robust accuracy (:mod:`toymodels.cnn.co_study`)."""
from __future__ import annotations

import argparse

from .._cli import Choice, Command, Int, ListOf, Num, Result
from .._io import save_figure
from ..errors import ConfigError
from .co_study import (LAMBDA_FIELD, MAX_SEEDS, MAX_WORKERS, METHODS, QUICK, ROBUST, StudyConfig, resolve_study,
                       run_study, split_method)
from .train import MAX_EPOCHS, MAX_POINTS, MAX_RESTARTS, MAX_STEPS

__all__ = ["CO_STUDY"]

_GENERATED = ("photos", "synthetic", "strokes")
_IMAGES = "at most 10^6 images (24.6 KB each at 32×32×3 in float64)"
_STEP = "a step is a forward and backward pass per point"
_D = StudyConfig()
_MAX_METHODS = 64


class MethodName(Choice):
    """A method of :data:`METHODS`, or ``base:λ`` for a regularized one (:func:`split_method`)."""

    def describe(self) -> str:
        return ("must be one of {" + ", ".join(self.choices) + "}, or " + "|".join(LAMBDA_FIELD)
                + ":λ with a number λ >= 0")

    def __call__(self, text: str) -> str:
        t = str(text).strip()
        if t in self.choices:
            return t
        try:
            split_method(t)
        except ConfigError:
            self.fail(text, self.describe())
        if ":" not in t:
            self.fail(text, self.describe())
        return t


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("grid")
    g.add_argument("--methods", type=ListOf(MethodName(*METHODS), 1, _MAX_METHODS, unique=True), default=None,
                   metavar="M1,M2,...", help="methods, from {" + ",".join(METHODS) + "} (default: every method "
                   "the installed toymodels.cnn.train supports); a regularized one may carry its λ, e.g. "
                   "elle:1000,elle:3000 (a λ-calibration grid; default: the method's calibrated λ)")
    g.add_argument("--eps", type=ListOf(Num(0, 1, lo_open=True), 1, 32, unique=True), default=None,
                   help="ℓ∞ radii in (0, 1], fractions allowed (default 32/255,40/255; --quick 32/255)")
    g.add_argument("--seeds", type=Int(1, MAX_SEEDS, "each seed is a training run per method and ε"), default=None,
                   help=f"runs per (method, ε), seeds --seed, --seed + 1, ... (default {_D.seeds}; --quick "
                        f"{QUICK['seeds']})")
    g.add_argument("--epochs", type=Int(1, MAX_EPOCHS, "an epoch takes seconds"), default=None,
                   help=f"epochs per run (default {_D.epochs}; --quick {QUICK['epochs']})")
    g.add_argument("--quick", action="store_true",
                   help="a ≤ 3-minute smoke version: one ε, 2 seeds, 3 epochs, 1000 images (options given "
                        "explicitly still apply)")
    g.add_argument("--workers", type=Int(1, MAX_WORKERS, "one process per worker"), default=None,
                   help=f"parallel training runs (processes; default {_D.workers})")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", type=Choice(*_GENERATED), default="photos",
                   help="embedded/generated image data (default photos: the CO setting calibrated here)")
    d.add_argument("--n-train", type=Int(128, MAX_POINTS, "at least one batch of 128; " + _IMAGES), default=None,
                   help=f"training images per run (default {_D.n_train}; --quick {QUICK['n_train']})")
    d.add_argument("--n-test", type=Int(1, MAX_POINTS, _IMAGES), default=None,
                   help=f"test images (default {_D.n_test}; --quick {QUICK['n_test']})")
    e = p.add_argument_group("evaluation")
    e.add_argument("--robust", type=Choice(*ROBUST), default="pgd",
                   help="final robust accuracy: pgd (PGD-STEPS-RESTARTS, α = ε/4; default) or cascade "
                        "(APGD-CE → APGD-T → Square, toymodels.cnn.evaluate, standard version: the strongest)")
    e.add_argument("--robust-n", type=Int(1, MAX_POINTS, _IMAGES), default=None,
                   help=f"test points of the robust evaluation (default {_D.robust_n}; --quick {QUICK['robust_n']})")
    e.add_argument("--pgd-steps", type=Int(1, MAX_STEPS, _STEP), default=None,
                   help=f"steps of the final PGD (default {_D.pgd_steps}; --quick {QUICK['pgd_steps']})")
    e.add_argument("--pgd-restarts", type=Int(1, MAX_RESTARTS, "each restart repeats the attack"), default=None,
                   help=f"restarts of the final PGD (default {_D.pgd_restarts})")
    e.add_argument("--cascade-queries", type=Int(1, 100_000, "a query is a forward pass per point"), default=None,
                   help=f"Square queries in the cascade (default {_D.cascade_queries})")
    e.add_argument("--n-eval", type=Int(1, MAX_POINTS, _IMAGES), default=None,
                   help=f"test points of the per-epoch CO detection (default {_D.n_eval}; --quick {QUICK['n_eval']})")
    e.add_argument("--eval-pgd-steps", type=Int(1, MAX_STEPS, _STEP), default=None,
                   help=f"PGD steps of the per-epoch evaluation (default {_D.eval_pgd_steps})")
    e.add_argument("--time-images", type=Int(1, MAX_POINTS, _IMAGES), default=None,
                   help=f"training images of the epoch-cost measurement (default {_D.time_images}; --quick "
                        f"{QUICK['time_images']})")
    e.add_argument("--time-repeats", type=Int(1, 100, "each repeat trains an epoch per method"), default=None,
                   help=f"timed epochs per method, shortest taken (default {_D.time_repeats}; --quick "
                        f"{QUICK['time_repeats']})")


_FIELDS = ("methods", "eps", "seeds", "epochs", "workers", "n_train", "n_test", "robust_n", "pgd_steps",
           "pgd_restarts", "cascade_queries", "n_eval", "eval_pgd_steps", "time_images", "time_repeats")


def _config(a: argparse.Namespace) -> StudyConfig:
    """The defaults (``--quick``: :data:`QUICK`), overridden by the options given."""
    kw = dict(QUICK) if a.quick else {}
    kw.update({f: getattr(a, f) for f in _FIELDS if getattr(a, f) is not None})
    return resolve_study(StudyConfig(dataset=a.dataset, robust=a.robust, seed=a.seed, **kw))


def _pm(m, s, spec=".3f") -> str:
    if m is None:
        return "—"
    return format(m, spec) + ("" if s is None else " ± " + format(s, spec))


def _print_human(out: dict, c: dict) -> None:
    print(f"CO study: {c['dataset']}, {c['n_train']} training images, {c['epochs']} epochs, seeds {c['seed']}..."
          f"{c['seed'] + c['seeds'] - 1}; robust = {out['robust_attack']} on {c['robust_n']} points")
    print("epoch cost = CPU time of a training epoch / FGSM's: in the runs (mean over seeds) | timed apart")
    cols = ("method", "eps", "CO rate", "CO seeds", "clean", "robust", "epoch cost")
    print(f"{cols[0]:<14}{cols[1]:>8}{cols[2]:>9}  {cols[3]:<14}{cols[4]:>16}{cols[5]:>16}{cols[6]:>16}")
    for r in out["table"]:
        rel, sep = r.get("rel_train_epoch_cpu_time"), r.get("rel_epoch_cpu_time")
        cost = f"{'—' if rel is None else f'{rel:.2f}×'} | {'—' if sep is None else f'{sep:.2f}×'}"
        print(f"{r['method']:<14}{r['eps_255']:>4.3g}/255{r['n_co']:>5}/{r['n_runs']:<3}  "
              f"{','.join(map(str, r['co_seeds'])) or '—':<14}{_pm(r['clean_acc_mean'], r['clean_acc_se']):>16}"
              f"{_pm(r['robust_acc_mean'], r['robust_acc_se']):>16}{cost:>16}"
              + (f"  ({r['n_diverged']} diverged)" if r["n_diverged"] else ""))
    print()
    costs: dict = {}
    for r in out["table"]:
        if r.get("rel_train_epoch_cpu_time") is not None:
            costs.setdefault(r["method"], []).append(r["rel_train_epoch_cpu_time"])
    for m, g in out["goal"].items():
        rel = max(costs[m]) if m in costs else None
        ok = g["prevents_co"] and g["robust_within_tol"] and rel is not None and rel <= 1.5
        print(f"{m:<14} prevents CO where FGSM shows it: {g['prevents_co']}; robust ≥ GradAlign − 2 pts: "
              f"{g['robust_within_tol']}; cost ≤ 1.5× FGSM: {None if rel is None else rel <= 1.5}"
              + ("  ← meets the issue's goal" if ok else ""))
    cpu = sum(r["cpu_s"] for r in out["runs"])
    print(f"study runtime {out['study_runtime_s']:.0f} s (training runs: {cpu:.0f} CPU-s in all, "
          f"{cpu / 2:.0f} s on 2 idle cores)")


def _plot_robust(out: dict, path) -> None:
    """Robust accuracy vs ε per method (mean ± s.e.), runs with CO marked by the CO rate."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for m in dict.fromkeys(r["method"] for r in out["table"]):
        rs = [r for r in out["table"] if r["method"] == m and r["robust_acc_mean"] is not None]
        x = [r["eps_255"] for r in rs]
        line = ax.errorbar(x, [r["robust_acc_mean"] for r in rs], yerr=[r["robust_acc_se"] or 0 for r in rs],
                           marker="o", capsize=3, label=m)
        for r in rs:
            if r["n_co"]:
                ax.scatter([r["eps_255"]], [r["robust_acc_mean"]], marker="x", s=120, color=line[0].get_color())
                ax.annotate(f"CO {r['n_co']}/{r['n_runs']}", (r["eps_255"], r["robust_acc_mean"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("ε (×1/255)")
    ax.set_ylabel(f"robust accuracy ({out['robust_attack']})")
    ax.set_title("robust accuracy vs ε (× = runs with catastrophic overfitting)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _plot_cost(out: dict, path) -> None:
    """Epoch cost relative to FGSM vs robust accuracy, one point per (method, ε)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for m in dict.fromkeys(r["method"] for r in out["table"]):
        rs = [r for r in out["table"] if r["method"] == m and r["robust_acc_mean"] is not None
              and r.get("rel_train_epoch_cpu_time") is not None]
        if rs:
            ax.scatter([r["rel_train_epoch_cpu_time"] for r in rs], [r["robust_acc_mean"] for r in rs], label=m,
                       marker="x" if any(r["n_co"] for r in rs) else "o")
    ax.axvline(1.5, ls="--", c="k", lw=1)
    ax.set_xlabel("epoch CPU time relative to FGSM (in the runs)")
    ax.set_ylabel(f"robust accuracy ({out['robust_attack']})")
    ax.set_title("cost vs robust accuracy (× = a method with CO runs)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:       # no FGSM runs in the study: no relative cost to plot
        ax.text(0.5, 0.5, "no FGSM runs: relative cost unavailable", ha="center", transform=ax.transAxes)
    save_figure(fig, path)


def run(a: argparse.Namespace, session) -> Result:
    cfg = _config(a)
    n = len(cfg.methods) * len(cfg.eps) * cfg.seeds
    with session.progress(n, desc="co-study runs", unit="run") as bar:
        out = run_study(cfg, progress=lambda: bar.update(1))
    config = out.pop("config")
    out["robust_attack"] = ("cascade APGD-CE/APGD-T/Square" if cfg.robust == "cascade"
                            else f"PGD-{cfg.pgd_steps}-{cfg.pgd_restarts}")
    return Result(out, config, human=lambda: _print_human(out, config),
                  files={"robust_vs_eps.png": lambda path: _plot_robust(out, path),
                         "cost_vs_robust.png": lambda path: _plot_cost(out, path)})


CO_STUDY = Command(
    "co-study", "which method prevents catastrophic overfitting, at what cost (issue 14)", add_arguments, run,
    description="Train each method (FGSM, FGSM-RS, PGD-2, exact GradAlign and the FGSM-cost methods N-FGSM, ELLE, "
                "finite-difference GradAlign, gradient-norm penalty, CURE, where available) over seeds and a grid "
                "of ε on the embedded photo crops, and report per (method, ε) the CO rate, clean and robust accuracy "
                "(mean ± s.e.) and the epoch cost relative to FGSM measured in the same run.",
    epilog="Examples: co-study --quick   co-study --methods fgsm,gradalign,n-fgsm --eps 32/255 --seeds 5   "
           "co-study --robust cascade --out co/",
    smoke=("--dataset", "synthetic", "--methods", "fgsm", "--eps", "8/255", "--seeds", "1", "--epochs", "1",
           "--n-train", "128", "--n-test", "32", "--n-eval", "16", "--robust-n", "16", "--pgd-steps", "2",
           "--eval-pgd-steps", "2", "--time-images", "128", "--time-repeats", "1", "--workers", "1"))
