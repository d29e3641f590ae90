"""``python -m toymodels.square``: the Square Attack (thesis Ch. 3) on the single-layer CNN, and
Prop. 3.5.2 (how many s×s squares a shape of area k holds).

Subcommands:

* ``shape-count --k K --s S``: N* of eq. (3.4) and, for k ≤ 12, the exhaustive maximum over all
  pixel sets of area k (:mod:`toymodels.square.theory`).
* ``attack``: train a standard (attack "none") single-layer CNN (or, ``--model linear``, a softmax
  linear classifier: :mod:`toymodels.square.linear_model`, 100 GD steps per ``--epochs``) on the
  synthetic dataset, then run the ℓ∞ (or ℓ2) Square Attack on the first ``--n-points`` test points that it classifies
  correctly, and (ℓ∞ only) white-box PGD (``toymodels.cnn.attacks.pgd``) on the same points for
  comparison; ``max_perturbation_norm`` is in the attack's norm.
* ``ablation``: thesis Table 3.1 on the same toy model: the seven (update shape, # random signs,
  initialization) rows of :data:`toymodels.square.ablation.ROWS`, each run untargeted on the same
  correctly classified points with the same seed; failure rate, mean/median queries of successes
  (:mod:`toymodels.square.ablation`).
"""
from __future__ import annotations

import time

import numpy as np

from .. import __version__
from .._cli import Parser, UsageError, add_common, check_int_range, emit_json, run_main
from .._io import write_json

BRUTE_MAX_K = 12


def build_parser() -> Parser:
    p = Parser(prog="python -m toymodels.square", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    s = sub.add_parser("shape-count", help="Prop. 3.5.2: max number of s×s squares in a shape of area k")
    s.add_argument("--k", type=int, required=True, help="area k >= s^2")
    s.add_argument("--s", type=int, default=2, help="square side s >= 1 (default 2)")
    add_common(s, seed=False, out=False)
    a = sub.add_parser("attack", help="ℓ∞ Square Attack on a standard-trained single-layer CNN")
    a.add_argument("--norm", default="linf", help="threat model: linf (default) or l2")
    a.add_argument("--eps", type=float, default=None, help="radius ε > 0 (default 8/255 for linf, 0.5 for l2)")
    a.add_argument("--queries", type=int, default=1000, help="query budget N >= 1 per point (default 1000)")
    a.add_argument("--p-init", type=float, default=None, help="initial fraction p ∈ (0, 1] (default 0.05 for "
                   "linf, 0.1 for l2: the thesis' ImageNet values, l.1377)")
    a.add_argument("--targeted", action="store_true", help="targeted attack (random wrong target, CE loss)")
    a.add_argument("--n-points", type=int, default=100, help="correctly classified test points attacked")
    a.add_argument("--n-train", type=int, default=3000, help="training images (default 3000)")
    a.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    a.add_argument("--pgd-steps", type=int, default=50, help="white-box PGD steps, α = ε/4 (default 50)")
    a.add_argument("--backend", default="numba", help="numba (default) or numpy")
    a.add_argument("--model", default="cnn", help="target: cnn (the single-layer CNN, default) or linear "
                   "(a softmax linear classifier trained by full-batch GD)")
    add_common(a)
    b = sub.add_parser("ablation", help="Table 3.1: update shape x random signs x init on the toy CNN")
    b.add_argument("--eps", type=float, default=0.1, help="ℓ∞ radius ε in (0, 1] (default 0.1: at 8/255 the "
                   "toy CNN resists ~85%% of points within 300 queries, which hides the differences)")
    b.add_argument("--queries", type=int, default=300, help="query budget N >= 1 per point (default 300)")
    b.add_argument("--p-init", type=float, default=0.05, help="initial fraction p ∈ (0, 1] (default 0.05)")
    b.add_argument("--n-points", type=int, default=50, help="test points to attack, the correctly "
                   "classified ones among them are attacked (default 50)")
    b.add_argument("--n-train", type=int, default=3000, help="training images (default 3000)")
    b.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    b.add_argument("--quick", action="store_true", help="smoke run: 20 points, 100 queries, 1 epoch, 500 images")
    add_common(b)
    return p


def _trained_points(args, n_points):
    """Train the standard CNN on the synthetic data; return (predict, correctly classified x, y, clean acc)."""
    from ..cnn import model
    from ..datasets import load_images
    from ..cnn.train import TrainConfig, train

    n_test = max(2 * n_points, 200)
    data = load_images("synthetic", n_train=args.n_train, n_test=n_test, seed=args.seed)
    cfg = TrainConfig(attack="none", eps=args.eps, epochs=args.epochs, n_eval=50, eval_pgd_steps=1,
                      final_n=50, final_pgd_steps=1, final_restarts=1, seed=args.seed)
    params = train(data, cfg, show_progress=not args.json).params
    x, y = data.x_test[:n_points], data.y_test[:n_points]
    correct = model.logits(params, x).argmax(axis=1) == y
    return (lambda v: model.logits(params, v)), x[correct], y[correct], float(correct.mean()), n_test


def _ablation(args) -> dict:
    from .ablation import ROWS, ablation_attack
    from .attack_linf import check_attack_args

    if args.quick:
        args.n_points, args.queries, args.epochs, args.n_train = 20, 100, 1, 500
    check_attack_args(args.eps, args.queries, args.p_init)
    if args.eps > 1:
        raise UsageError(f"--eps must be in (0, 1], got {args.eps!r}")
    check_int_range("--n-points", args.n_points, 1, 2000)
    check_int_range("--n-train", args.n_train, 1)
    check_int_range("--epochs", args.epochs, 1)
    check_int_range("--seed", args.seed, 0, 2**32 - 1)
    t0 = time.perf_counter()
    f, xc, yc, clean_acc, n_test = _trained_points(args, args.n_points)
    rows = []
    for shape, signs, init in ROWS:
        r = ablation_attack(f, xc, yc, args.eps, args.queries, args.p_init, shape=shape, signs=signs, init=init,
                            seed=args.seed + 1, show_progress=not args.json)
        rows.append({"shape": shape, "signs": signs, "init": init, **r.stats(),
                     "success_curve": r.curve(args.queries)[np.unique(np.geomspace(1, args.queries, 30).astype(int)) - 1].tolist()})
    return {"rows": rows, "curve_queries": np.unique(np.geomspace(1, args.queries, 30).astype(int)).tolist(),
            "n_attacked": int(len(yc)), "clean_acc": clean_acc, "seconds": round(time.perf_counter() - t0, 2),
            "config": {"eps": args.eps, "queries": args.queries, "p_init": args.p_init, "n_points": args.n_points,
                       "n_train": args.n_train, "n_test": n_test, "epochs": args.epochs, "quick": args.quick,
                       "seed": args.seed, "attack_seed": args.seed + 1, "dataset": "synthetic",
                       "train_attack": "none", "targeted": False}}


def _shape_count(args) -> dict:
    from .theory import n_star_bruteforce, n_star_formula

    check_int_range("--s", args.s, 1)
    check_int_range("--k", args.k, args.s * args.s)
    out = {"k": args.k, "s": args.s, "n_star_formula": n_star_formula(args.k, args.s)}
    if args.k <= BRUTE_MAX_K:
        out["n_star_bruteforce"] = n_star_bruteforce(args.k, args.s)
        out["agree"] = out["n_star_formula"] == out["n_star_bruteforce"]
    out["config"] = {"k": args.k, "s": args.s, "bruteforce_max_k": BRUTE_MAX_K}
    return out


def _attack(args) -> dict:
    from ..cnn import attacks, model
    from ..datasets import load_images
    from ..cnn.train import TrainConfig, train
    from .attack_l2 import square_attack_l2
    from .attack_linf import check_attack_args, square_attack_linf

    if args.norm not in ("linf", "l2"):
        raise UsageError(f"--norm must be one of {{linf, l2}}, got {args.norm!r}")
    if args.eps is None:
        args.eps = 8 / 255 if args.norm == "linf" else 0.5
    if args.p_init is None:
        args.p_init = 0.05 if args.norm == "linf" else 0.1
    check_attack_args(args.eps, args.queries, args.p_init)
    if args.norm == "linf" and args.eps > 1:
        raise UsageError(f"--eps must be in (0, 1] for linf, got {args.eps!r}")
    check_int_range("--n-points", args.n_points, 1, 2000)
    check_int_range("--n-train", args.n_train, 1)
    check_int_range("--epochs", args.epochs, 1)
    check_int_range("--pgd-steps", args.pgd_steps, 1)
    check_int_range("--seed", args.seed, 0, 2**32 - 1)
    if args.backend not in ("numba", "numpy"):
        raise UsageError(f"--backend must be one of {{numba, numpy}}, got {args.backend!r}")
    if args.model not in ("cnn", "linear"):
        raise UsageError(f"--model must be one of {{cnn, linear}}, got {args.model!r}")
    t0 = time.perf_counter()
    n_test = max(2 * args.n_points, 200)
    data = load_images("synthetic", n_train=args.n_train, n_test=n_test, seed=args.seed)
    x, y = data.x_test[:args.n_points], data.y_test[:args.n_points]
    if args.model == "cnn":
        cfg = TrainConfig(attack="none", eps=args.eps, epochs=args.epochs, n_eval=50, eval_pgd_steps=1,
                          final_n=50, final_pgd_steps=1, final_restarts=1, seed=args.seed)
        params = train(data, cfg, show_progress=not args.json).params
        f = lambda v: model.logits(params, v)  # noqa: E731
        # PGD is untargeted white-box: robust accuracy of the same points under PGD-steps, α = ε/4
        white_box = lambda: attacks.pgd(params, x, y, args.eps, args.eps / 4, args.pgd_steps, 1,  # noqa: E731
                                        seed=args.seed)
    else:
        from .linear_model import pgd_linf, train_softmax

        lin = train_softmax(data.x_train, data.y_train, data.num_classes, steps=100 * args.epochs, seed=args.seed)
        f = lin.logits
        white_box = lambda: pgd_linf(lin, x, y, args.eps, args.eps / 4, args.pgd_steps, seed=args.seed)  # noqa: E731
    correct = f(x).argmax(axis=1) == y
    clean_acc = float(correct.mean())
    xc, yc = x[correct], y[correct]
    if args.norm == "linf":
        sq = square_attack_linf(f, xc, yc, args.eps, args.queries, args.p_init, targeted=args.targeted,
                                seed=args.seed + 1, backend=args.backend,
                                show_progress=not args.json)
        x_pgd = x + white_box()
        pgd_acc = float(np.mean(f(x_pgd).argmax(axis=1) == y))
    else:
        sq = square_attack_l2(f, xc, yc, args.eps, args.queries, args.p_init, targeted=args.targeted,
                              seed=args.seed + 1, show_progress=not args.json)
        pgd_acc = None      # the white-box PGD references are ℓ∞ only
    delta = (sq.x_adv - xc).reshape(len(xc), -1)
    norms = np.abs(delta).max(axis=1) if args.norm == "linf" else np.sqrt((delta ** 2).sum(axis=1))
    succ_q = sq.n_queries[sq.success]
    out = {
        "failure_rate": sq.failure_rate,
        "mean_queries": float(succ_q.mean()) if succ_q.size else float("nan"),
        "median_queries": float(np.median(succ_q)) if succ_q.size else float("nan"),
        "mean_queries_all": float(sq.n_queries.mean()) if sq.n_queries.size else float("nan"),
        "n_attacked": int(correct.sum()),
        "clean_acc": clean_acc,
        "square_robust_acc": clean_acc * sq.failure_rate if correct.any() else 0.0,
        "pgd_robust_acc": pgd_acc,
        "max_perturbation_norm": float(norms.max()) if norms.size else 0.0,
        "seconds": round(time.perf_counter() - t0, 2),
        "config": {"norm": args.norm, "eps": args.eps, "queries": args.queries, "p_init": args.p_init,
                   "targeted": args.targeted, "n_points": args.n_points, "n_train": args.n_train,
                   "n_test": n_test, "epochs": args.epochs, "pgd_steps": args.pgd_steps,
                   "pgd_alpha": args.eps / 4, "backend": args.backend, "seed": args.seed,
                   "dataset": "synthetic", "train_attack": "none", "model": args.model,
                   "linear_gd_steps": 100 * args.epochs if args.model == "linear" else None},
    }
    return out


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = {"shape-count": _shape_count, "attack": _attack, "ablation": _ablation}[args.cmd](args)
    out["version"] = __version__
    if getattr(args, "out", None):
        write_json(f"{args.out}/result.json", out)
    if args.json:
        emit_json(out)
    else:
        for k, v in out.items():
            if k == "rows":
                print(f"{'shape':>9} {'signs':>5} {'init':>8} {'fail':>6} {'mean q':>7} {'median q':>8}")
                for r in v:
                    print(f"{r['shape']:>9} {r['signs']:>5} {r['init']:>8} {r['failure_rate']:6.1%} "
                          f"{r['mean_queries']:7.1f} {r['median_queries']:8.1f}")
            elif k not in ("config", "version", "curve_queries"):
                print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog="python -m toymodels.square"))
