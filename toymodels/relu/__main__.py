"""``python -m toymodels.relu SUBCOMMAND``: two-layer ReLU networks trained with large-step-size SGD
(thesis Ch. 6). Subcommands: ``regression1d`` (Fig. 6.4, 6.12, 6.13), ``teacher3`` (Fig. 6.5), ``teacher2`` (Fig. 6.10, 6.14)."""
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


def _add_teacher_args(p, C, *, lr_help: str, lr_const_help: str, decay_help: str, init_help: str) -> None:
    """The options shared by the teacher-student subcommands (defaults from their config class C)."""
    p.add_argument("--steps", type=int, default=C.steps, help=f"SGD iterations (default {C.steps})")
    p.add_argument("--lr", type=float, default=C.lr, help=f"{lr_help} (default {C.lr:g})")
    p.add_argument("--lr-const", type=float, default=C.lr_const, help=f"{lr_const_help} (default {C.lr_const:g})")
    p.add_argument("--warmup-factor", type=float, default=C.warmup_factor, help="warmup coefficient F >= 1")
    p.add_argument("--decay-factor", type=float, default=C.decay_factor, help=decay_help)
    p.add_argument("--transitions", default="0.1,0.3,0.5", help="comma-separated transition fractions "
                   "in (0, 1) (the constant run is always added)")
    p.add_argument("--init-scale", type=float, default=C.init_scale, help=init_help)
    p.add_argument("--checkpoints", type=int, default=C.n_checkpoints, help="metric checkpoints")
    p.add_argument("--corr-threshold", type=float, default=C.corr_threshold, help="feature-sparsity "
                   "correlation threshold in [-1, 1]")
    p.add_argument("--rank-tol", type=float, default=C.rank_tol, help="relative singular-value threshold")
    add_common(p)


def _add_teacher3(sub) -> None:
    from .teacher3 import Teacher3Config as C

    p = sub.add_parser("teacher3", help="Fig. 6.5: three-layer teacher-student (teacher 2-2, student "
                       "10-10, d=5, n=50)",
                       description="Three-layer bias-free ReLU student trained by SGD (batch 1) on 50 "
                       "examples of a 2-2 teacher: a constant medium step size and large-step schedules "
                       "with decay at each --transitions fraction.")
    _add_teacher_args(p, C, lr_help="base step size η of the large-step schedule, loss with ½",
                      lr_const_help="the constant medium step size",
                      decay_help="step size divided by D >= 1 at the transition",
                      init_help="student init scale (> 0)")


def _add_teacher2(sub) -> None:
    from .teacher2 import Teacher2Config as C

    p = sub.add_parser("teacher2", help="Fig. 6.10/6.14: two-layer teacher-student in d=2 (Chizat et "
                       "al.), neuron movement",
                       description="Bias-free two-layer ReLU student (m=50, large init) trained by SGD "
                       "(batch 1) on 50 examples of a 3-neuron teacher in d=2: a constant small step and "
                       "large-step schedules with decay at each --transitions fraction.")
    _add_teacher_args(p, C, lr_help="base step size of the large-step schedule",
                      lr_const_help="the constant small step size", decay_help="decay factor D >= 1",
                      init_help="student init scale τ (> 0)")


def _teacher_base(args, Config):
    """Validate the shared options and build the base config (its transition = the first one)."""
    check_int_range("--steps", args.steps, 1, 10**8)
    check_int_range("--checkpoints", args.checkpoints, 1, 100_000)
    trs = _transitions(args.transitions)
    base = Config(steps=args.steps, lr=args.lr, lr_const=args.lr_const, warmup_factor=args.warmup_factor,
                  decay_factor=args.decay_factor, init_scale=args.init_scale, n_checkpoints=args.checkpoints,
                  corr_threshold=args.corr_threshold, rank_tol=args.rank_tol, seed=args.seed,
                  transition=trs[0])
    try:
        base.validate()
    except UsageError as e:
        raise UsageError("--" + str(e).replace("_", "-")) from None
    return base, trs


def _teacher_output(args, command, base, trs, results, runs, cfg_dict, arrays) -> dict:
    """Assemble the JSON object and write ``<command>.json`` / ``.npz`` under --out."""
    cfg = cfg_dict(base)
    cfg.pop("transition")
    cfg.update(transitions=[None, *trs], command=command)
    out = {"config": cfg, "runs": runs, "version": __version__}
    if args.out:
        from pathlib import Path

        d = Path(args.out)
        write_json(d / f"{command}.json", out)
        for k, r in enumerate(results):
            arrays.update({f"iters_{k}": r.iters, f"train_loss_{k}": r.train_loss, f"test_loss_{k}": r.test_loss,
                           f"rank_{k}": r.rank, f"sparsity_{k}": r.sparsity})
        save_npz(d / f"{command}.npz", **arrays)
    return out


def _run_name(r) -> str:
    return "constant η" if r["decay_fraction"] is None else f"decay at {r['decay_fraction']:.0%}"


def _lg(v) -> str:
    return "n/a" if v is None or v <= 0 else f"{v:.3g} (log10 {np.log10(v):.2f})"


def _print_o1_o2(runs) -> None:
    print("(O1) loss stabilization (median train loss, 2nd half of the large-step phase):")
    for r in runs:
        print(f"   {_run_name(r)} (peak η {r['peak_lr']:.3g}): {_lg(r['stabilization_loss'])}")
    print("(O2) generalization: final train / test loss (½ mean squared error):")
    for r in runs:
        print(f"   {_run_name(r)}: train {_lg(r['train_loss'])}, test {_lg(r['test_loss'])}")


def _print_tail(args, runs) -> None:
    for r in runs:
        if r["diverged_at"] is not None:
            print(f"   WARNING: {_run_name(r)} diverged at step {r['diverged_at']}")
    if args.out:
        print(f"wrote {args.out}/")


def _teacher3(args) -> int:
    from .teacher3 import Teacher3Config, _final_fresh_rank, config_dict, run_schedules, summarize

    base, trs = _teacher_base(args, Teacher3Config)
    results = run_schedules(base, (None,) + trs)
    runs = [summarize(r) for r in results]
    for r, res in zip(runs, results):
        # the thesis' rank (l. 3155): on as many fresh points as parameters, not capped by n
        r["rank_jacobian_fresh"] = (int(_final_fresh_rank(res)) if np.isfinite(res.train_loss[-1]) else None)
    out = _teacher_output(args, "teacher3", base, trs, results, runs, config_dict, {})
    if args.json:
        emit_json(out)
        return 0
    print(f"three-layer ReLU teacher-student: d={base.d}, teacher {base.m_teacher}-{base.m_teacher}, "
          f"student {base.m}-{base.m}, n={base.n}, {base.steps} SGD steps (batch 1), seed {base.seed}")
    _print_o1_o2(runs)
    print(f"(O3) rank φ(X) (of min(n, #params) = {min(base.n, runs[0]['n_params'])}) and feature sparsity "
          "[layer 1, layer 2] (init → at decay → final):")
    fmt = lambda v: "[" + ", ".join("n/a" if x is None else f"{x:.3f}" for x in v) + "]"  # noqa: E731
    for r in runs:
        print(f"   {_run_name(r)}: rank {r['rank_init']} → {r['rank_at_decay']} → {r['rank_jacobian']}; "
              f"sparsity {fmt(r['sparsity_init'])} → {fmt(r['sparsity_at_decay'])} → {fmt(r['feature_sparsity'])}")
    print(f"   final rank φ(X̃) on {runs[0]['n_params']} fresh points (as many as parameters): "
          + ", ".join(f"{_run_name(r)} {r['rank_jacobian_fresh']}" for r in runs))
    _print_tail(args, runs)
    return 0


def _teacher2(args) -> int:
    from .teacher2 import Teacher2Config, config_dict, run_schedules2, summarize2

    base, trs = _teacher_base(args, Teacher2Config)
    results = run_schedules2(base, (None,) + trs)
    runs = [summarize2(r) for r in results]
    arrays = {"teacher_W": results[0].teacher_W}
    for k, r in enumerate(results):
        arrays.update({f"W_{k}": r.W, f"a_{k}": r.a})
    out = _teacher_output(args, "teacher2", base, trs, results, runs, config_dict, arrays)
    if args.json:
        emit_json(out)
        return 0
    print(f"two-layer ReLU teacher-student (no biases): d={base.d}, teacher {base.m_teacher}, student "
          f"{base.m}, init scale {base.init_scale:g}, n={base.n}, {base.steps} SGD steps (batch 1), seed {base.seed}")
    _print_o1_o2(runs)
    print("(O3) rank φ(X), feature sparsity (init → at decay → final), |a|-weighted alignment with the teacher:")
    for r in runs:
        al = "n/a" if r["teacher_alignment"] is None else f"{r['teacher_alignment']:.3f}"
        print(f"   {_run_name(r)}: rank {r['rank_init']} → {r['rank_at_decay']} → {r['rank_jacobian']}; sparsity "
              f"{r['sparsity_init']:.3f} → {r['sparsity_at_decay']:.3f} → "
              f"{'n/a' if r['feature_sparsity'] is None else format(r['feature_sparsity'], '.3f')}; "
              f"alignment {r['teacher_alignment_init']:.3f} → {al}")
    _print_tail(args, runs)
    return 0


def build_parser() -> Parser:
    p = Parser(prog="python -m toymodels.relu", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=Parser)
    sub.required = True
    _add_regression1d(sub)
    _add_teacher3(sub)
    _add_teacher2(sub)
    # handled by toymodels.relu.sam (its own parser); listed here so that it shows in --help
    sub.add_parser("sam", help="Fig. 5.7: ERM vs normalized SAM, full batch, on the 12-point regression "
                   "(python -m toymodels.relu sam --help)", add_help=False)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sam"]:
        from .sam import main as sam_main

        return sam_main(argv[1:], prog="python -m toymodels.relu sam")
    args = build_parser().parse_args(argv)
    with np.errstate(over="ignore", invalid="ignore"):
        if args.command == "regression1d":
            return _regression1d(args)
        if args.command == "teacher3":
            return _teacher3(args)
        if args.command == "teacher2":
            return _teacher2(args)
    raise UsageError(f"unknown subcommand {args.command!r}")  # pragma: no cover


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog="python -m toymodels.relu"))
