"""``python -m toymodels.relu SUBCOMMAND``: two-layer ReLU networks trained with large-step-size SGD
(thesis Ch. 6). Subcommands: ``regression1d`` (Fig. 6.4, 6.12, 6.13)."""
from __future__ import annotations

import sys

import numpy as np

from .. import __version__
from .._cli import Parser, UsageError, add_common, check_int_range, emit_json, run_main
from .._io import save_figure, save_npz, write_json
from .model import ReLUConfig, blanc_data, config_dict, predict

DEFAULT_STEPS = 100_000


def _add_regression1d(sub) -> None:
    p = sub.add_parser("regression1d", help="Fig. 6.4: 1D regression of Blanc et al., schedules with "
                       "decay at 2 %% and 50 %%",
                       description="Two-layer ReLU net (100 neurons) on Blanc et al.'s 12 points, SGD "
                       "batch 1, linear warmup then decay at each --transitions fraction.")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"SGD iterations (default {DEFAULT_STEPS})")
    p.add_argument("--lr", type=float, default=ReLUConfig.lr, help="base step size η (loss with ½; default 4e-4)")
    p.add_argument("--warmup-factor", type=float, default=400.0, help="warmup coefficient F >= 1 (Fig. 6.4: "
                   "400, Fig. 6.12: 500)")
    p.add_argument("--decay-factor", type=float, default=ReLUConfig.decay_factor, help="step size divided "
                   "by D >= 1 at the transition")
    p.add_argument("--transitions", default="0.02,0.5", help="comma-separated transition fractions in (0, 1)")
    p.add_argument("--m", type=int, default=100, help="hidden neurons (default 100)")
    p.add_argument("--s-a", type=float, default=ReLUConfig.s_a, help="output-layer init scale")
    p.add_argument("--checkpoints", type=int, default=250, help="rank/sparsity checkpoints (default 250)")
    p.add_argument("--corr-threshold", type=float, default=0.95, help="feature-sparsity correlation "
                   "threshold in [-1, 1] (default 0.95)")
    p.add_argument("--rank-tol", type=float, default=1e-4, help="relative singular-value threshold")
    add_common(p)


def build_parser() -> Parser:
    p = Parser(prog="python -m toymodels.relu", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=Parser)
    sub.required = True
    _add_regression1d(sub)
    return p


def _transitions(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"--transitions must be comma-separated numbers in (0, 1), got {text!r}") from None
    if not vals or any(not 0.0 < v < 1.0 for v in vals):
        raise UsageError(f"--transitions must be comma-separated numbers in (0, 1), got {text!r}")
    return vals


def _regression1d(args) -> int:
    from .regression1d import run_schedules, summarize

    check_int_range("--steps", args.steps, 1, 10**8)
    check_int_range("--checkpoints", args.checkpoints, 1, 100_000)
    trs = _transitions(args.transitions)
    base = ReLUConfig(m=args.m, steps=args.steps, lr=args.lr, warmup_factor=args.warmup_factor,
                      decay_factor=args.decay_factor, s_a=args.s_a, n_checkpoints=args.checkpoints,
                      corr_threshold=args.corr_threshold, rank_tol=args.rank_tol, seed=args.seed)
    try:
        base.validate()
    except UsageError as e:
        raise UsageError("--" + str(e).replace("_", "-")) from None
    results = run_schedules(base, trs)
    runs = [summarize(r) for r in results]
    cfg = config_dict(base)
    cfg.pop("transition")
    cfg.update(transitions=list(trs), command="regression1d")
    out = {"config": cfg, "runs": runs, "version": __version__,
           "test_note": "no ground truth: test_loss is null; n_kinks / slope_variation measure simplicity"}
    if args.out:
        _save(args.out, results, runs, out)
    if args.json:
        emit_json(out)
    else:
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
        for r in runs:
            if r["diverged_at"] is not None:
                print(f"   WARNING: decay at {r['decay_fraction']:.0%} diverged at step {r['diverged_at']}")
        if args.out:
            print(f"wrote {args.out}/")
    return 0


def _save(out_dir, results, runs, obj) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    from pathlib import Path

    out_dir = Path(out_dir)
    write_json(out_dir / "regression1d.json", obj)
    x, y = blanc_data()
    grid = np.linspace(x.min() - 0.1, x.max() + 0.1, 600)
    arrays = {}
    fig = Figure(figsize=(12, 3.4))
    ax = fig.subplots(1, 4)
    for k, (res, r) in enumerate(zip(results, runs)):
        lab = f"decay at {r['decay_fraction']:.0%}"
        ax[0].plot(res.iters, res.train_loss, color=f"C{k}", label=lab)
        ax[1].plot(grid, predict(grid, res.w[-1], res.b[-1], res.a[-1]), color=f"C{k}", label=lab)
        ax[2].plot(res.iters, res.rank, color=f"C{k}", label=lab)
        ax[3].plot(res.iters, res.sparsity, color=f"C{k}", label=lab)
        arrays.update({f"iters_{k}": res.iters, f"train_loss_{k}": res.train_loss, f"rank_{k}": res.rank,
                       f"sparsity_{k}": res.sparsity, f"w_{k}": res.w, f"b_{k}": res.b, f"a_{k}": res.a})
    ax[1].scatter(x, y, color="k", zorder=3, s=12)
    ax[0].set_yscale("log")
    for a_, t in zip(ax, ("train loss", "final predictor", "rank φ_θ(X)", "feature sparsity")):
        a_.set_title(t)
        a_.legend()
    for a_ in (ax[0], ax[2], ax[3]):
        a_.set_xlabel("iteration")
    fig.tight_layout()
    save_figure(fig, out_dir / "regression1d.png")
    save_npz(out_dir / "regression1d.npz", **arrays)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with np.errstate(over="ignore", invalid="ignore"):
        if args.command == "regression1d":
            return _regression1d(args)
    raise UsageError(f"unknown subcommand {args.command!r}")  # pragma: no cover


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog="python -m toymodels.relu"))
