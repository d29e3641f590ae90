"""The ``sam`` command of ``python -m toymodels.relu`` (Fig. 5.7: full-batch ERM vs normalized SAM on Blanc et
al.'s 12 points, several initializations): options, the run, the printout."""
from __future__ import annotations

from dataclasses import asdict

from .._cli import Choice, Command, Int, Num, Result
from .._io import save_figure, save_npz


def add_arguments(p) -> None:
    from .model import MAX_M
    from .sam import MAX_INITS, MAX_STEPS, SAMReLUConfig

    d = SAMReLUConfig()
    p.add_argument("--rho", type=Num(0, lo_open=True), default=d.rho, help=f"SAM radius ρ > 0 (default {d.rho})")
    p.add_argument("--steps", type=Int(1, MAX_STEPS, "the step-size schedule takes 8 bytes a step"),
                   default=d.steps, help=f"max GD steps T (default {d.steps})")
    p.add_argument("--lr", type=Num(0, lo_open=True), default=d.lr,
                   help=f"step size η for L = (1/2n)Σ(f−y)² (default {d.lr:g})")
    p.add_argument("--lr-decay", type=Choice("auto", "yes", "no"), default="auto",
                   help="linear step decay: auto = SAM only, as the authors (default auto)")
    p.add_argument("--stop-loss", type=Num(0), default=d.stop_loss,
                   help="stop once ½Σ(f−y)² ≤ this at the descent-gradient point (default 1e-5; 0: never)")
    p.add_argument("--inits", type=Int(1, MAX_INITS, "two full runs each"), default=5,
                   help="number of initializations; init k draws from the random stream (seed, 'relu/sam/init', k) "
                        "(default 5)")
    p.add_argument("--m", type=Int(1, MAX_M, "the gradient has 3m entries per data point"), default=d.m,
                   help=f"hidden units (default {d.m})")
    p.add_argument("--kink-tol", type=Num(0), default=d.kink_tol,
                   help="slope jump below which a kink is not counted (default 1e-2)")


def _human(summary) -> None:
    from .sam import KINK_TOLS

    print(f"{'init':>4s}  {'ERM loss':>10s} {'ERM kinks':>9s}  {'SAM loss':>10s} {'SAM kinks':>9s}")
    for p_ in summary["per_init"]:
        print(f"{p_['init']:4d}  {p_['erm']['train_loss']:10.3g} {p_['erm']['n_kinks']:9d}  "
              f"{p_['sam']['train_loss']:10.3g} {p_['sam']['n_kinks']:9d}")
    for t in KINK_TOLS:
        print(f"mean kinks with slope jump > {t:g}: ERM {summary['mean_kinks_by_tol_erm'][f'{t:g}']:.1f}, "
              f"SAM {summary['mean_kinks_by_tol_sam'][f'{t:g}']:.1f}")
    print(f"mean kinks (kink_tol): ERM {summary['mean_kinks_erm']:.2f}, SAM {summary['mean_kinks_sam']:.2f}; "
          f"spread of the functions over inits (RMS): ERM {summary['function_spread_erm']:.3g}, "
          f"SAM {summary['function_spread_sam']:.3g}")


def run(args, session) -> Result:
    from .sam import SAMReLUConfig, plot_fig57, run_fig57

    base = SAMReLUConfig(rho=args.rho, m=args.m, steps=args.steps, lr=args.lr,
                         lr_decay={"auto": None, "yes": True, "no": False}[args.lr_decay],
                         stop_loss=args.stop_loss, kink_tol=args.kink_tol,
                         loss_every=max(1, args.steps // 1000)).validate()
    summary, runs, grid, preds = run_fig57(base, args.seed, args.inits, show_progress=session.show_progress)
    for key, rs in runs.items():
        for k, r in enumerate(rs):
            if r.diverged_at is not None:
                session.note(f"the {key.upper()} run of init {k} diverged at step {r.diverged_at}; "
                             "try a smaller --lr")
    config = asdict(base) | {"inits": args.inits, "seed": args.seed}
    config.pop("init_seed")
    return Result(summary, config, human=lambda: _human(summary),
                  files={"relu_sam.npz": lambda path: save_npz(path, grid=grid, erm=preds["erm"], sam=preds["sam"]),
                         "relu_sam.png": lambda path: save_figure(plot_fig57(runs, grid, preds), path)})


SAM = Command("sam", "Fig. 5.7: ERM vs normalized SAM, full batch, on the 12-point regression", add_arguments, run,
              smoke=("--steps", "2000", "--inits", "2", "--m", "20"),
              description="Fig. 5.7: two-layer ReLU net (100 units) on Blanc et al.'s 12 points, full-batch GD, ERM vs "
                          "normalized SAM, several initializations; prints per-init train loss and number of "
                          "distinct kinks.")
