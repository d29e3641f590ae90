"""``python -m toymodels.relu SUBCOMMAND``: ReLU networks trained with large-step-size SGD (thesis Ch. 6) and
SAM (Sec. 5.5.3). Subcommands: ``regression1d`` (Fig. 6.4, 6.12, 6.13), ``teacher3`` (Fig. 6.5), ``teacher2``
(Fig. 6.10, 6.14), ``sam`` (Fig. 5.7).

Random numbers come from named streams of --seed (:mod:`toymodels.relu.streams`).
"""
from __future__ import annotations

import numpy as np

from .._cli import Cli, Command, Int, ListOf, Num, Result
from .._io import save_figure, save_npz
from .sam_cli import SAM
from .teacher_cli import FLAGS, TEACHER2, TEACHER3, note_divergence

PROG = "python -m toymodels.relu"
DEFAULT_STEPS = 100_000


def add_regression1d(p) -> None:
    from .model import MAX_M, MAX_STEPS, ReLUConfig

    p.add_argument("--steps", type=Int(1, MAX_STEPS, "the schedule and the SGD indices take 16 bytes a step"),
                   default=DEFAULT_STEPS, help=f"SGD iterations (default {DEFAULT_STEPS})")
    p.add_argument("--lr", type=Num(0, lo_open=True), default=ReLUConfig.lr,
                   help="base step size η (loss with ½; default 4e-4)")
    p.add_argument("--warmup-factor", type=Num(1), default=400.0,
                   help="warmup coefficient F >= 1 (Fig. 6.4: 400, Fig. 6.12: 500)")
    p.add_argument("--decay-factor", type=Num(1), default=ReLUConfig.decay_factor,
                   help="step size divided by D >= 1 at the transition")
    p.add_argument("--transitions", type=ListOf(Num(0, 1, lo_open=True, hi_open=True), max_len=20),
                   default=(0.02, 0.5), help="comma-separated transition fractions in (0, 1) (default 0.02,0.5)")
    p.add_argument("--m", type=Int(1, MAX_M, "the Jacobian has 3m columns"), default=100,
                   help="hidden neurons (default 100)")
    p.add_argument("--s-a", type=Num(0, lo_open=True), default=ReLUConfig.s_a, help="output-layer init scale")
    p.add_argument("--checkpoints", type=Int(1, 100_000, "the metrics take one SVD per checkpoint"), default=250,
                   help="rank/sparsity checkpoints (default 250)")
    p.add_argument("--corr-threshold", type=Num(-1, 1), default=0.95,
                   help="feature-sparsity correlation threshold in [-1, 1] (default 0.95)")
    p.add_argument("--rank-tol", type=Num(0, 1, lo_open=True), default=1e-4,
                   help="relative singular-value threshold of the rank, in (0, 1] (default 1e-4)")


def _human_regression1d(base, runs) -> None:
    print(f"two-layer ReLU net, m={base.m}, {base.steps} SGD steps (batch 1), η={base.lr:g}, "
          f"warmup F={base.warmup_factor:g}, decay D={base.decay_factor:g}, seed {base.seed}")
    print("(O1) loss stabilization (median train loss, 2nd half of large-step phase):")
    for r in runs:
        lvl = r["stabilization_loss"]
        print(f"   decay at {r['decay_fraction']:.0%}: {lvl:.3g} (log10 {np.log10(lvl):.2f})"
              if lvl else f"   decay at {r['decay_fraction']:.0%}: n/a")
    print("(O2) generalization proxy (no test labels): final train loss, kinks, ∫|f''| in data range:")
    for r in runs:
        print(f"   decay at {r['decay_fraction']:.0%}: train {r['train_loss']:.3g}, kinks {r['n_kinks']}, "
              f"slope variation {r['slope_variation']:.3g}")
    print("(O3) sparse features: rank φ(X) and feature sparsity (init → at decay → final):")
    for r in runs:
        print(f"   decay at {r['decay_fraction']:.0%}: rank {r['rank_init']} → {r['rank_at_decay']} → "
              f"{r['rank_jacobian']}; sparsity {r['sparsity_init']:.3f} → {r['sparsity_at_decay']:.3f} "
              f"→ {r['feature_sparsity']:.3f}")


def _figure(results, runs):
    from matplotlib.figure import Figure

    from .model import blanc_data, predict

    x, y = blanc_data()
    grid = np.linspace(x.min() - 0.1, x.max() + 0.1, 600)
    fig = Figure(figsize=(12, 3.4))
    ax = fig.subplots(1, 4)
    for k, (res, r) in enumerate(zip(results, runs)):
        lab = f"decay at {r['decay_fraction']:.0%}"
        ax[0].plot(res.iters, res.train_loss, color=f"C{k}", label=lab)
        ax[1].plot(grid, predict(grid, res.w[-1], res.b[-1], res.a[-1]), color=f"C{k}", label=lab)
        ax[2].plot(res.iters, res.rank, color=f"C{k}", label=lab)
        ax[3].plot(res.iters, res.sparsity, color=f"C{k}", label=lab)
    ax[1].scatter(x, y, color="k", zorder=3, s=12)
    ax[0].set_yscale("log")
    for a_, t in zip(ax, ("train loss", "final predictor", "rank φ_θ(X)", "feature sparsity")):
        a_.set_title(t)
        a_.legend()
    for a_ in (ax[0], ax[2], ax[3]):
        a_.set_xlabel("iteration")
    fig.tight_layout()
    return fig


def run_regression1d(args, session) -> Result:
    from .model import ReLUConfig, config_dict
    from .regression1d import run_schedules, summarize

    base = ReLUConfig(m=args.m, steps=args.steps, lr=args.lr, warmup_factor=args.warmup_factor,
                      decay_factor=args.decay_factor, s_a=args.s_a, n_checkpoints=args.checkpoints,
                      corr_threshold=args.corr_threshold, rank_tol=args.rank_tol, seed=args.seed,
                      transition=args.transitions[0]).validate()
    results = run_schedules(base, args.transitions)
    runs = [summarize(r) for r in results]
    note_divergence(session, runs)
    cfg = config_dict(base)
    cfg.pop("transition")
    cfg.update(transitions=list(args.transitions), command="regression1d")
    arrays = {}
    for k, res in enumerate(results):
        arrays.update({f"iters_{k}": res.iters, f"train_loss_{k}": res.train_loss, f"rank_{k}": res.rank,
                       f"sparsity_{k}": res.sparsity, f"w_{k}": res.w, f"b_{k}": res.b, f"a_{k}": res.a})
    payload = {"runs": runs,
               "test_note": "no ground truth: test_loss is null; n_kinks / slope_variation measure simplicity"}
    return Result(payload, cfg, human=lambda: _human_regression1d(base, runs),
                  files={"regression1d.npz": lambda path: save_npz(path, **arrays),
                         "regression1d.png": lambda path: save_figure(_figure(results, runs), path)})


REGRESSION1D = Command(
    "regression1d", "Fig. 6.4: 1D regression of Blanc et al., schedules with decay at 2 %% and 50 %%",
    add_regression1d, run_regression1d, flags=FLAGS, smoke=("--steps", "20000", "--checkpoints", "10"),
    description="Two-layer ReLU net (100 neurons) on Blanc et al.'s 12 points, SGD batch 1, linear warmup then "
                "decay at each --transitions fraction. The init draws from the random stream (seed), the SGD "
                "indices from (seed, 'relu/sgd').")

CLI = Cli(PROG, __doc__, [REGRESSION1D, TEACHER3, TEACHER2, SAM])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
