"""``python -m toymodels.sde``: SGD vs its SDE model (thesis eq. 6.58) vs gradient flow.

Subcommands (one per model): ``dln`` — the diagonal linear network u⊙v of Fig. 6.2 (n=80, d=200,
20-sparse β*, u₀=0.1, v₀=0), batch-1 SGD with a large step beside the SDE discretization and a
gradient-flow discretization from the same init; ``relu2`` / ``relu3`` — the ReLU teacher–student
models of Fig. 6.10/6.14 (two layers, d=2) and Fig. 6.5 (three layers, 2-2 teacher, 10-10 student,
d=5, n=50) under their large-step schedule (:mod:`toymodels.sde.relu`).
"""
from __future__ import annotations

import sys

import numpy as np

from .._cli import Parser, UsageError, add_common, emit_json, run_main
from .._io import save_npz, write_json
from .dln import SDEDLNConfig, compare
from .relu import SDEReLUConfig
from .relu import compare as compare_relu

PROG = "python -m toymodels.sde"


def build_parser() -> Parser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="model", metavar="MODEL", parser_class=Parser)
    sub.required = True
    dflt = SDEDLNConfig()
    q = sub.add_parser("dln", help="diagonal linear network u⊙v (Fig. 6.2 / 6.9)",
                       description="SGD vs SDE (6.58) vs gradient flow on a DLN u⊙v; losses ¼-normalized.",
                       epilog=f"Example: {PROG} dln --steps 5000 --json")
    q.add_argument("--n", type=int, default=dflt.n, help=f"training points (default {dflt.n})")
    q.add_argument("--d", type=int, default=dflt.d, help=f"dimension (default {dflt.d})")
    q.add_argument("--k", type=int, default=dflt.k, help=f"nonzeros r of β* (default {dflt.k})")
    q.add_argument("--n-test", type=int, default=dflt.n_test, help=f"test points (default {dflt.n_test})")
    q.add_argument("--u0", type=float, default=dflt.u0, help=f"initial u (default {dflt.u0})")
    q.add_argument("--v0", type=float, default=dflt.v0, help=f"initial v (default {dflt.v0})")
    q.add_argument("--lr", type=float, default=dflt.lr, help=f"SGD step η > 0 (default {dflt.lr})")
    q.add_argument("--steps", type=int, default=dflt.steps, help=f"SGD steps T (default {dflt.steps}); "
                   "the SDE/GF run substeps·T steps")
    q.add_argument("--substeps", type=int, default=dflt.substeps, help="SDE steps per SGD step, γ = η/substeps "
                   f"(default {dflt.substeps})")
    q.add_argument("--c", type=float, default=None, help="noise constant, δ_t = c·L_SGD (default (n−1)/n²)")
    q.add_argument("--rank-tol", type=float, default=dflt.rank_tol, help="rank threshold on singular values "
                   f"normalized by the largest (default {dflt.rank_tol})")
    q.add_argument("--l0-tol", type=float, default=dflt.l0_tol, help=f"‖u⊙v‖₀ threshold on |uₖvₖ| (default {dflt.l0_tol})")
    q.add_argument("--record-every", type=int, default=dflt.record_every, help="loss-curve stride in SGD steps")
    add_common(q)
    for name, what in (("relu2", "two-layer ReLU teacher-student, d=2 (Fig. 6.10/6.14 setting)"),
                       ("relu3", "three-layer ReLU teacher-student, d=5, n=50 (Fig. 6.5 setting)")):
        _add_relu(sub, name, what)
    return p


def _add_relu(sub, name: str, what: str) -> None:
    d = SDEReLUConfig()
    q = sub.add_parser(name, help=f"{what} (Fig. 6.9)",
                       description=f"SGD vs SDE (6.58) vs gradient flow on the {what}; loss (1/2n)Σ(f−y)². "
                       "Unset model options take the teacher module's defaults.",
                       epilog=f"Example: {PROG} {name} --steps 20000 --json")
    q.add_argument("--steps", type=int, default=None, help="SGD steps T (default: the teacher module's); "
                   "the SDE/GF run substeps·T steps")
    q.add_argument("--transition", type=float, default=d.transition, help="decay fraction of the SGD "
                   f"large-step schedule, in (0, 1) (default {d.transition})")
    q.add_argument("--lr", type=float, default=None, help="base step size of the schedule (> 0)")
    q.add_argument("--warmup-factor", type=float, default=None, help="warmup coefficient F >= 1")
    q.add_argument("--decay-factor", type=float, default=None, help="decay factor D >= 1")
    q.add_argument("--init-scale", type=float, default=None, help="student init scale (> 0)")
    q.add_argument("--substeps", type=int, default=d.substeps, help="SDE steps per SGD step, γ = η/substeps "
                   f"(default {d.substeps})")
    q.add_argument("--c", type=float, default=None, help="noise constant, δ_t = c·L_SGD (default 2(n−1)/n²)")
    q.add_argument("--checkpoints", type=int, default=d.n_checkpoints, help="metric checkpoints "
                   f"(default {d.n_checkpoints})")
    q.add_argument("--rank-tol", type=float, default=None, help="rank threshold on singular values "
                   "normalized by the largest (default: the teacher module's)")
    q.add_argument("--corr-threshold", type=float, default=d.corr_threshold, help="feature-sparsity "
                   f"correlation threshold in [-1, 1] (default {d.corr_threshold})")
    add_common(q)


_RELU_KEYS = ("train_loss", "test_loss", "rank_jacobian", "feature_sparsity", "diverged", "diverged_at")


def _relu(args) -> int:
    cfg = SDEReLUConfig(model=args.model, steps=args.steps, transition=args.transition, lr=args.lr,
                        warmup_factor=args.warmup_factor, decay_factor=args.decay_factor,
                        init_scale=args.init_scale, substeps=args.substeps, c=args.c,
                        n_checkpoints=args.checkpoints, rank_tol=args.rank_tol,
                        corr_threshold=args.corr_threshold, seed=args.seed)
    try:
        out = compare_relu(cfg, show_progress=not args.json)
    except UsageError as e:
        raise UsageError("--" + str(e).replace("_", "-").replace("n-checkpoints", "checkpoints")) from None
    init = {k: out["sgd"]["series"][k][0] for k in ("rank_jacobian", "feature_sparsity")}
    summary = {"model": args.model, "config": out["config"], "runtime_s": out["runtime_s"],
               "rank_jacobian_init": int(init["rank_jacobian"]),
               "feature_sparsity_init": init["feature_sparsity"].tolist()
               if np.ndim(init["feature_sparsity"]) else float(init["feature_sparsity"])}
    for name in ("sgd", "sde", "gf"):
        summary[name] = {k: out[name][k] for k in _RELU_KEYS}
    if args.out:
        write_json(f"{args.out}/sde_{args.model}.json", summary)
        save_npz(f"{args.out}/sde_{args.model}.npz", iters=out["iters"], lr=out["lr"],
                 **{f"{k}_{f}": out[k]["series"][f] for k in ("sgd", "sde", "gf")
                    for f in ("train_loss", "test_loss", "rank_jacobian", "feature_sparsity")},
                 **{f"{k}_curve": out[k]["curve"] for k in ("sgd", "sde", "gf")})
    if args.json:
        emit_json(summary)
        return 0
    c = out["config"]
    print(f"{args.model}: n={c['n']} d={c['d']} m={c['m']} p={c['n_params']} T={c['steps']} decay at "
          f"{c['transition']:.0%} η={c['lr']:g}×(warmup {c['warmup_factor']:g}) substeps={c['substeps']} "
          f"c={c['c']:.4g} seed={c['seed']}")
    print(f"  init: rank φ={summary['rank_jacobian_init']}  sparsity={summary['feature_sparsity_init']}")
    print(f"  {'run':4s} {'train':>10s} {'test':>10s} {'rank φ':>7s}  feature sparsity")
    for name in ("sgd", "sde", "gf"):
        r = summary[name]
        if r["diverged"]:
            print(f"  {name:4s} diverged at SGD step {r['diverged_at']}")
        else:
            sp = r["feature_sparsity"]
            sp = ", ".join(f"{v:.3f}" for v in sp) if isinstance(sp, list) else f"{sp:.3f}"
            print(f"  {name:4s} {r['train_loss']:10.3e} {r['test_loss']:10.3e} {r['rank_jacobian']:7d}  {sp}")
    return 0


def _dln(args) -> int:
    cfg = SDEDLNConfig(n=args.n, d=args.d, k=args.k, n_test=args.n_test, u0=args.u0, v0=args.v0, lr=args.lr,
                       steps=args.steps, substeps=args.substeps, c=args.c, rank_tol=args.rank_tol,
                       l0_tol=args.l0_tol, record_every=args.record_every, seed=args.seed)
    out = compare(cfg, show_progress=not args.json)
    summary = {"model": "dln", "config": out["config"], "rank_jacobian_init": out["rank_jacobian_init"],
               "l0_init": out["l0_init"], "runtime_s": out["runtime_s"]}
    for name in ("sgd", "sde", "gf"):
        r = out[name]
        summary[name] = {k: r[k] for k in ("train_loss", "test_loss", "rank_jacobian", "l0", "diverged",
                                           "diverged_at")}
    if args.out:
        write_json(f"{args.out}/sde_dln.json", summary)
        save_npz(f"{args.out}/sde_dln.npz", beta_star=out["beta_star"],
                 **{f"{k}_{f}": out[k][f] for k in ("sgd", "sde", "gf")
                    for f in ("beta", "curve_steps", "curve_train")})
    if args.json:
        emit_json(summary)
        return 0
    c = out["config"]
    print(f"DLN u⊙v: n={c['n']} d={c['d']} r={c['k']} u0={c['u0']} v0={c['v0']} η={c['lr']} T={c['steps']} "
          f"substeps={c['substeps']} c={c['c']:.4g} seed={c['seed']}")
    print(f"  init: rank φ={out['rank_jacobian_init']}  l0={out['l0_init']}")
    print(f"  {'run':4s} {'train':>10s} {'test':>10s} {'rank φ':>7s} {'l0':>5s}")
    for name in ("sgd", "sde", "gf"):
        r = summary[name]
        if r["diverged"]:
            print(f"  {name:4s} diverged at SGD step {r['diverged_at']}")
        else:
            print(f"  {name:4s} {r['train_loss']:10.3e} {r['test_loss']:10.3e} {r['rank_jacobian']:7d} {r['l0']:5d}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is not None and not args.out.strip():
        raise UsageError("--out must be a directory path")
    return {"dln": _dln, "relu2": _relu, "relu3": _relu}[args.model](args)


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog=PROG))
