"""``python -m toymodels.sde``: SGD vs its SDE model (thesis eq. 6.58) vs gradient flow.

Subcommands (one per model): ``dln`` — the diagonal linear network u⊙v of Fig. 6.2 (n=80, d=200,
20-sparse β*, u₀=0.1, v₀=0), batch-1 SGD with a large step beside the SDE discretization and a
gradient-flow discretization from the same init; ``relu2`` / ``relu3`` — the ReLU teacher–student
models of Fig. 6.10/6.14 (two layers, d=2) and Fig. 6.5 (three layers, 2-2 teacher, 10-10 student,
d=5, n=50) under their large-step schedule (:mod:`toymodels.sde.relu`).
"""
from __future__ import annotations

import argparse

import numpy as np

from .._cli import Cli, Command, Int, Num, Result
from .._io import save_npz
from .dln import D_WHY, DATA_WHY, MAX_D, MAX_DATA, MAX_INIT, MAX_SDE_STEPS, SDE_WHY, SDEDLNConfig
from .relu import SDEReLUConfig

PROG = "python -m toymodels.sde"
RUNS = ("sgd", "sde", "gf")
_STEPS = Int(1, MAX_SDE_STEPS, SDE_WHY)
_SUBSTEPS = Int(1, 1000, "each SGD step costs substeps SDE steps")


# ----------------------------------------------------------------------------------------------------
# dln

def add_dln_arguments(q) -> None:
    d = SDEDLNConfig()
    q.add_argument("--n", type=Int(2, MAX_DATA, DATA_WHY), default=d.n, help=f"training points (default {d.n})")
    q.add_argument("--d", type=Int(1, MAX_D, D_WHY), default=d.d, help=f"dimension (default {d.d})")
    q.add_argument("--k", type=Int(0, MAX_D), default=d.k, help=f"nonzeros r <= d of β* (default {d.k})")
    q.add_argument("--n-test", type=Int(1, MAX_DATA, DATA_WHY), default=d.n_test,
                   help=f"test points (default {d.n_test})")
    q.add_argument("--u0", type=Num(-MAX_INIT, MAX_INIT), default=d.u0, help=f"initial u (default {d.u0})")
    q.add_argument("--v0", type=Num(-MAX_INIT, MAX_INIT), default=d.v0, help=f"initial v (default {d.v0})")
    q.add_argument("--lr", type=Num(0, lo_open=True), default=d.lr, help=f"SGD step η > 0 (default {d.lr})")
    q.add_argument("--steps", type=_STEPS, default=d.steps,
                   help=f"SGD steps T (default {d.steps}); the SDE/GF run substeps·T steps")
    q.add_argument("--substeps", type=_SUBSTEPS, default=d.substeps,
                   help=f"SDE steps per SGD step, γ = η/substeps (default {d.substeps})")
    q.add_argument("--c", type=Num(0), default=None, help="noise constant >= 0, δ_t = c·L_SGD (default (n−1)/n²)")
    q.add_argument("--rank-tol", type=Num(0, 1, lo_open=True, hi_open=True), default=d.rank_tol,
                   help=f"rank threshold on singular values normalized by the largest (default {d.rank_tol})")
    q.add_argument("--l0-tol", type=Num(0, lo_open=True), default=d.l0_tol,
                   help=f"‖u⊙v‖₀ threshold on |uₖvₖ| (default {d.l0_tol})")
    q.add_argument("--record-every", type=Int(1, MAX_SDE_STEPS), default=None,
                   help="loss-curve stride in SGD steps, <= steps (default min(100, steps))")


def _note_divergence(session, summary: dict) -> None:
    for name in RUNS:
        if summary[name]["diverged"]:
            session.note(f"{name} diverged at SGD step {summary[name]['diverged_at']}; try a smaller --lr")


def _human_dln(out: dict, summary: dict) -> None:
    c = out["config"]
    print(f"DLN u⊙v: n={c['n']} d={c['d']} r={c['k']} u0={c['u0']} v0={c['v0']} η={c['lr']} T={c['steps']} "
          f"substeps={c['substeps']} c={c['c']:.4g} seed={c['seed']}")
    print(f"  init: rank φ={out['rank_jacobian_init']}  l0={out['l0_init']}")
    print(f"  {'run':4s} {'train':>10s} {'test':>10s} {'rank φ':>7s} {'l0':>5s}")
    for name in RUNS:
        r = summary[name]
        if r["diverged"]:
            print(f"  {name:4s} diverged at SGD step {r['diverged_at']}")
        else:
            print(f"  {name:4s} {r['train_loss']:10.3e} {r['test_loss']:10.3e} {r['rank_jacobian']:7d} {r['l0']:5d}")


def run_dln(args: argparse.Namespace, session) -> Result:
    from .dln import compare, resolve

    cfg = resolve(SDEDLNConfig(n=args.n, d=args.d, k=args.k, n_test=args.n_test, u0=args.u0, v0=args.v0,
                               lr=args.lr, steps=args.steps, substeps=args.substeps, c=args.c,
                               rank_tol=args.rank_tol, l0_tol=args.l0_tol, record_every=args.record_every,
                               seed=args.seed))
    out = compare(cfg, show_progress=session.show_progress)
    keys = ("train_loss", "test_loss", "rank_jacobian", "l0", "diverged", "diverged_at")
    summary = {"model": "dln", "rank_jacobian_init": out["rank_jacobian_init"], "l0_init": out["l0_init"],
               "runtime_s": out["runtime_s"], **{name: {k: out[name][k] for k in keys} for name in RUNS}}
    _note_divergence(session, summary)
    arrays = {f"{k}_{f}": out[k][f] for k in RUNS for f in ("beta", "curve_steps", "curve_train")}
    return Result(summary, out["config"], human=lambda: _human_dln(out, summary),
                  files={"sde_dln.npz": lambda path: save_npz(path, beta_star=out["beta_star"], **arrays)})


# ----------------------------------------------------------------------------------------------------
# relu2, relu3

def add_relu_arguments(q) -> None:
    d = SDEReLUConfig()
    q.add_argument("--steps", type=_STEPS, default=None,
                   help="SGD steps T (default: the teacher module's); the SDE/GF run substeps·T steps")
    q.add_argument("--transition", type=Num(0, 1, lo_open=True, hi_open=True), default=d.transition,
                   help=f"decay fraction of the SGD large-step schedule, in (0, 1) (default {d.transition})")
    q.add_argument("--lr", type=Num(0, lo_open=True), default=None, help="base step size of the schedule (> 0)")
    q.add_argument("--warmup-factor", type=Num(1), default=None, help="warmup coefficient F >= 1")
    q.add_argument("--decay-factor", type=Num(1), default=None, help="decay factor D >= 1")
    q.add_argument("--init-scale", type=Num(0, 1e6, lo_open=True), default=None,
                   help="student init scale in (0, 1e6] (the loss grows like a power of it: far larger "
                        "scales overflow the first forward pass)")
    q.add_argument("--substeps", type=_SUBSTEPS, default=d.substeps,
                   help=f"SDE steps per SGD step, γ = η/substeps (default {d.substeps})")
    q.add_argument("--c", type=Num(0), default=None, help="noise constant >= 0, δ_t = c·L_SGD (default 2(n−1)/n²)")
    q.add_argument("--checkpoints", dest="n_checkpoints", type=Int(1, 10_000), default=d.n_checkpoints,
                   help=f"metric checkpoints (default {d.n_checkpoints})")
    q.add_argument("--rank-tol", type=Num(0, 1, lo_open=True, hi_open=True), default=None,
                   help="rank threshold on singular values normalized by the largest (default: the teacher module's)")
    q.add_argument("--corr-threshold", type=Num(-1, 1), default=d.corr_threshold,
                   help=f"feature-sparsity correlation threshold in [-1, 1] (default {d.corr_threshold})")


_RELU_KEYS = ("train_loss", "test_loss", "rank_jacobian", "feature_sparsity", "diverged", "diverged_at")
_SERIES = ("train_loss", "test_loss", "rank_jacobian", "feature_sparsity")


def _human_relu(model: str, out: dict, summary: dict) -> None:
    c = out["config"]
    print(f"{model}: n={c['n']} d={c['d']} m={c['m']} p={c['n_params']} T={c['steps']} decay at "
          f"{c['transition']:.0%} η={c['lr']:g}×(warmup {c['warmup_factor']:g}) substeps={c['substeps']} "
          f"c={c['c']:.4g} seed={c['seed']}")
    print(f"  init: rank φ={summary['rank_jacobian_init']}  sparsity={summary['feature_sparsity_init']}")
    print(f"  {'run':4s} {'train':>10s} {'test':>10s} {'rank φ':>7s}  feature sparsity")
    for name in RUNS:
        r = summary[name]
        if r["diverged"]:
            print(f"  {name:4s} diverged at SGD step {r['diverged_at']}")
        else:
            sp = r["feature_sparsity"]
            sp = ", ".join(f"{v:.3f}" for v in sp) if isinstance(sp, list) else f"{sp:.3f}"
            print(f"  {name:4s} {r['train_loss']:10.3e} {r['test_loss']:10.3e} {r['rank_jacobian']:7d}  {sp}")


def run_relu(args: argparse.Namespace, session) -> Result:
    from .relu import compare, resolve

    model = args._command.name
    cfg = resolve(SDEReLUConfig(model=model, steps=args.steps, transition=args.transition, lr=args.lr,
                                warmup_factor=args.warmup_factor, decay_factor=args.decay_factor,
                                init_scale=args.init_scale, substeps=args.substeps, c=args.c,
                                n_checkpoints=args.n_checkpoints, rank_tol=args.rank_tol,
                                corr_threshold=args.corr_threshold, seed=args.seed))
    out = compare(cfg, show_progress=session.show_progress)
    init = {k: out["sgd"]["series"][k][0] for k in ("rank_jacobian", "feature_sparsity")}
    sp0 = init["feature_sparsity"]
    summary = {"model": model, "runtime_s": out["runtime_s"], "rank_jacobian_init": int(init["rank_jacobian"]),
               "feature_sparsity_init": sp0.tolist() if np.ndim(sp0) else float(sp0),
               **{name: {k: out[name][k] for k in _RELU_KEYS} for name in RUNS}}
    _note_divergence(session, summary)
    arrays = {**{f"{k}_{f}": out[k]["series"][f] for k in RUNS for f in _SERIES},
              **{f"{k}_curve": out[k]["curve"] for k in RUNS}}
    return Result(summary, out["config"], human=lambda: _human_relu(model, out, summary),
                  files={f"sde_{model}.npz": lambda path: save_npz(path, iters=out["iters"], lr=out["lr"], **arrays)})


_RELU_HELP = {"relu2": "two-layer ReLU teacher-student, d=2 (Fig. 6.10/6.14 setting)",
              "relu3": "three-layer ReLU teacher-student, d=5, n=50 (Fig. 6.5 setting)"}


def _relu_command(name: str) -> Command:
    what = _RELU_HELP[name]
    return Command(name, f"{what} (Fig. 6.9)", add_relu_arguments, run_relu,
                   description=f"SGD vs SDE (6.58) vs gradient flow on the {what}; loss (1/2n)Σ(f−y)². "
                               "Unset model options take the teacher module's defaults.",
                   epilog=f"Example: {PROG} {name} --steps 20000 --json",
                   smoke=("--steps", "200", "--checkpoints", "2"))


CLI = Cli(PROG, __doc__, [
    Command("dln", "diagonal linear network u⊙v (Fig. 6.2 / 6.9)", add_dln_arguments, run_dln,
            description="SGD vs SDE (6.58) vs gradient flow on a DLN u⊙v; losses ¼-normalized.",
            epilog=f"Example: {PROG} dln --steps 5000 --json",
            smoke=("--n", "20", "--d", "30", "--k", "3", "--n-test", "50", "--steps", "200", "--lr", "0.1")),
    _relu_command("relu2"),
    _relu_command("relu3"),
])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
