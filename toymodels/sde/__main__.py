"""``python -m toymodels.sde``: SGD vs its SDE model (thesis eq. 6.58) vs gradient flow.

Subcommands (one per model; ``relu2``/``relu3`` are to come): ``dln`` — the diagonal linear network
u⊙v of Fig. 6.2 (n=80, d=200, 20-sparse β*, u₀=0.1, v₀=0), batch-1 SGD with a large step beside the
SDE discretization and a gradient-flow discretization from the same init.
"""
from __future__ import annotations

import sys

import numpy as np

from .._cli import Parser, UsageError, add_common, emit_json, run_main
from .._io import save_npz, write_json
from .dln import SDEDLNConfig, compare

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
    return p


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
    return {"dln": _dln}[args.model](args)


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog=PROG))
