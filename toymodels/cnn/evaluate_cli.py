"""The ``evaluate`` command of ``python -m toymodels.cnn``: the AutoAttack-style cascade (APGD-CE,
APGD-T, Square; :mod:`toymodels.cnn.evaluate`) on a trained CNN's test points.

The model is the ``snapshots.npz`` of ``python -m toymodels.cnn train --out DIR`` (last epoch, or
epoch 0 = the initialization), or with ``--init`` a freshly initialized CNN (stream (seed,
"cnn/init"), a smoke test: its accuracy is about chance). The points are the first ``--n-points`` test
points of the training run's own data: dataset, data folder, test-set size and seed are read from
the ``result.json`` beside the snapshots (``--dataset``, ``--data-dir``, ``--n-test``, ``--data-seed``
override them). ``--seed`` seeds the attacks (and ``--init``'s weights)."""
from __future__ import annotations

import argparse

import numpy as np

from .._cli import ArgType, Choice, Command, InDir, InFile, Int, ListOf, Num, Result
from ..datasets import IMAGE_DATASETS, load_images
from ..errors import ConfigError
from ..rng import SEED_MAX, stream
from .evaluate import ATTACKS, VERSIONS
from .train import STREAMS

__all__ = ["EVALUATE", "Epoch"]

_MAX_POINTS = 100_000
_GENERATED = ("photos", "synthetic", "strokes")


class Epoch(ArgType):
    """``last`` or an epoch number ≥ 0."""
    metavar = "last|K"

    def describe(self) -> str:
        return "must be 'last' or an integer epoch >= 0"

    def __call__(self, text: str):
        t = str(text).strip()
        if t == "last":
            return t
        if not t.isdigit():
            self.fail(text, self.describe())
        return int(t)


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("model").add_mutually_exclusive_group(required=True)
    src.add_argument("--snapshots", type=InFile(".npz"), metavar="FILE.npz",
                     help="snapshots.npz of `python -m toymodels.cnn train --out DIR`")
    src.add_argument("--init", action="store_true",
                     help="attack a freshly initialized CNN instead (a smoke test: its accuracy is chance)")
    p.add_argument("--epoch", type=Epoch(), default="last",
                   help="'last' (default) or 0 (the initialization): the snapshots hold the full model only there")
    p.add_argument("--filters", type=Int(1, 64, "with --init: the dense layer has K·M·H·W weights"), default=4,
                   metavar="M", help="filters of the --init model (default 4)")
    a = p.add_argument_group("attack")
    a.add_argument("--norm", type=Choice("linf", "l2"), default="linf", help="threat model (default linf)")
    a.add_argument("--eps", type=Num(0, lo_open=True), default=None,
                   help="radius ε > 0 (default: ℓ∞ the training run's ε, else 8/255; ℓ2 0.5); fractions a/b allowed")
    a.add_argument("--version", type=Choice(*VERSIONS), default="standard",
                   help="standard: APGD-CE, APGD-T (9 targets, at most K-1), Square (5001 queries = AutoAttack's 5000 + "
                        "the initial one); fast: APGD-CE, APGD-T (3 targets). FAB-T has no numba twin (use "
                        "python -m toymodels.torch evaluate)")
    a.add_argument("--attacks", type=ListOf(Choice(*ATTACKS), 1, len(ATTACKS), unique=True), default=None,
                   help="run these attacks in this order instead of the version's, e.g. apgd-ce,square")
    a.add_argument("--steps", type=Int(1, 10_000, "a step is one forward and backward pass per point"), default=100,
                   help="APGD iterations per run (default 100)")
    a.add_argument("--square-queries", type=Int(1, 100_000, "a query is one forward pass per point"), default=5001,
                   help="Square Attack queries per point, the initialization included (default 5001)")
    a.add_argument("--n-points", type=Int(1, _MAX_POINTS, "each point is attacked separately"), default=None,
                   help="the first N test points (default 1000, at most the test set); not with --points final")
    a.add_argument("--points", type=Choice("first", "final"), default="first",
                   help="first: the first --n-points test points (default); final: the points of the training "
                        "run's final evaluation (its final_n points drawn from the stream (seed, 'cnn/final')), "
                        "so that its PGD accuracy and the cascade are measured on the same points")
    d = p.add_argument_group("data (default: the training run's, from result.json beside the snapshots)")
    d.add_argument("--dataset", type=Choice(*IMAGE_DATASETS), default=None, help="image dataset")
    d.add_argument("--data-dir", type=InDir(), default=None, metavar="DIR", help="folder of the file datasets")
    d.add_argument("--n-test", type=Int(1, _MAX_POINTS, "test images are generated or read in memory"),
                   default=None, help="test-set size (generated sets: default theirs)")
    d.add_argument("--data-seed", type=Int(0, SEED_MAX), default=None,
                   help="seed of the data (default: the training run's, else 0)")


def _data_config(a: argparse.Namespace, run: dict | None) -> dict:
    """dataset, data_dir, n_train, n_test, data_seed: the options, else the run's, else defaults."""
    run = run or {}
    if a.snapshots is not None and run == {} and a.dataset is None:
        raise ConfigError("dataset", "is needed: there is no result.json beside the snapshots to read the "
                                     "training run's data from", None)
    ds = a.dataset or run.get("dataset") or "photos"
    same = ds == run.get("dataset")
    cfg = {"dataset": ds, "data_dir": a.data_dir if a.data_dir is not None else (run.get("data_dir") if same else None),
           "n_test": a.n_test if a.n_test is not None else (run.get("n_test") if same else None),
           "n_train": run.get("n_train") if same else None,
           "data_seed": a.data_seed if a.data_seed is not None else int(run.get("seed", 0))}
    if ds in _GENERATED:
        cfg["n_train"] = 1        # generated test sets come from their own stream: skip the training images
        if cfg["data_dir"] is not None:
            raise ConfigError("data_dir", f"applies only to the file datasets, not to {ds!r}", cfg["data_dir"])
    return cfg


def _eps(a: argparse.Namespace, run: dict | None) -> float:
    if a.eps is not None:
        return float(a.eps)
    if a.norm == "l2":
        return 0.5
    return float((run or {}).get("eps") or 8 / 255)


def _points(a: argparse.Namespace, run: dict | None, dc: dict, n_test: int) -> np.ndarray:
    """Indices of the evaluated test points (``--points``, ``--n-points``)."""
    if a.points == "first":
        n = 1000 if a.n_points is None else a.n_points
        if n > n_test:
            if a.n_points is None:
                return np.arange(n_test)
            raise ConfigError("n_points", f"must be at most the test set size {n_test}", n)
        return np.arange(n)
    if a.n_points is not None:
        raise ConfigError("n_points", "must not be given with --points final (the run's final_n is used)", a.n_points)
    same = run is not None and all(run.get(k) == dc[k] for k in ("dataset", "n_test")) \
        and int(run.get("seed", -1)) == dc["data_seed"] and "final_n" in run
    if not same:
        raise ConfigError("points", "final needs the training run's result.json beside the snapshots and its own "
                                    "data (no --dataset/--n-test/--data-seed override)", a.points)
    # the draw of toymodels.cnn.train._eval_set for the final evaluation
    rng = stream(int(run["seed"]), STREAMS["final"])
    return np.sort(rng.choice(n_test, size=int(run["final_n"]), replace=False))


def _print_human(out: dict, cfg: dict) -> None:
    print(f"{cfg['source']} on {out['n_points']} {cfg['dataset']} test points, {cfg['norm']} eps = {cfg['eps']:.4g}, "
          f"{cfg['version']} version")
    print(f"clean accuracy   {out['clean_acc']:.3f}")
    for name, acc in out["robust_acc_after"].items():
        print(f"after {name:<10} {acc:.3f}   ({out['broken_by'][name]} broken, {out['runtime_s'][name]:.1f} s)")
    print(f"robust accuracy  {out['robust_acc']:.3f}")


def run(a: argparse.Namespace, session) -> Result:
    from .evaluate import evaluate, load_snapshot
    from .model import init_params

    if a.snapshots is not None:
        params, epoch, run_cfg = load_snapshot(a.snapshots, a.epoch)
    else:
        if a.epoch != "last":
            raise ConfigError("epoch", "applies only to --snapshots", a.epoch)
        params, epoch, run_cfg = None, None, None
    dc = _data_config(a, run_cfg)
    data = load_images(dc["dataset"], dc["data_dir"], n_train=dc["n_train"], n_test=dc["n_test"], seed=dc["data_seed"])
    if params is None:
        C, H, W = data.shape
        params = init_params(C, H, W, a.filters, data.num_classes, seed=stream(a.seed, "cnn/init"))
    eps = _eps(a, run_cfg)
    idx = _points(a, run_cfg, dc, len(data.y_test))
    x, y = data.x_test[idx], data.y_test[idx]
    res = evaluate(params, x, y, norm=a.norm, eps=eps, version=a.version, attacks=a.attacks, steps=a.steps,
                   square_queries=a.square_queries, seed=a.seed, show_progress=session.show_progress)
    out = res.to_json()
    out["broken_by_point"] = [str(b) for b in res.broken_by]
    config = {"source": "snapshots" if a.snapshots is not None else "init", "snapshots": a.snapshots,
              "epoch": epoch, "filters": int(params.Wc.shape[0]), "norm": a.norm, "eps": eps,
              "version": a.version, "attacks": list(a.attacks) if a.attacks else list(res.robust_after),
              "steps": a.steps, "square_queries": a.square_queries, "points": a.points, "n_points": len(idx), **dc,
              "seed": a.seed}
    return Result(out, config, human=lambda: _print_human(out, config))


EVALUATE = Command(
    "evaluate", "AutoAttack-style cascade (APGD-CE, APGD-T, Square) on a trained CNN", add_arguments, run,
    description="Evaluate the robustness of a CNN trained by `python -m toymodels.cnn train --out DIR` with the "
                "AutoAttack protocol: APGD-CE, APGD-T and the Square Attack in sequence, each on the points still "
                "robust; report clean accuracy, robust accuracy after each attack and overall, the breaking attack "
                "per point, Square's queries and the runtime per attack (FAB-T needs torch: no numba twin).",
    epilog="Example: python -m toymodels.cnn evaluate --snapshots out/snapshots.npz --norm linf --eps 8/255 "
           "--version fast --n-points 500",
    smoke=("--init", "--dataset", "synthetic", "--n-test", "24", "--n-points", "24", "--eps", "1/255", "--steps", "3",
           "--version", "fast", "--attacks", "apgd-ce,apgd-t,square", "--square-queries", "20"))
