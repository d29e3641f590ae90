"""``python -m toymodels.dln``: train a diagonal linear network with GD/SGD/SAM beside an ERM
baseline on the same data, and check the implicit-bias theory (thesis Ch. 5, Thm 5.9.1–5.9.3).

Default: Fig. 5.13's setting, full batch — d=30, n=20, k=3, α=0.01, γ=ρ=1/d — for 600k steps, enough for
the training loss of 1-SAM and ERM to fall below the default tol 1e-8 for every data seed 0–9.
"""
from __future__ import annotations

import argparse

import numpy as np

from .._cli import Choice, Cli, Command, InFile, Int, ListOf, Num, Result
from .._io import save_figure, save_npz
from ..datasets import load_regression, make_sparse_regression
from ..errors import ConfigError, RunError
from ..schedules import SCHEDULES
from .train import MAX_BATCH, MAX_STEPS, DLNConfig, DLNResult, erm_baseline, resolve, train

PROG = "python -m toymodels.dln"
DEFAULT_STEPS = 600_000
#: the generated data sets: X (n × d) and X_test (n_test × d) take 8 bytes an entry
MAX_N, MAX_D, MAX_ENTRIES = 10 ** 6, 10 ** 5, 10 ** 8

__all__ = ["CLI", "add_dln_arguments", "config_from_args", "data_from_args"]


def _algorithm_arguments(g) -> None:
    g.add_argument("--sam", type=Choice("none", "1", "n", "m"), default="1",
                   help="SAM variant: none (ERM), 1 (1-SAM), n (n-SAM), m (m-SAM with --m); default 1")
    g.add_argument("--rho", type=Num(0), default=None, help="SAM ascent step ρ >= 0 (default 1/d)")
    g.add_argument("--m", type=Int(1, MAX_BATCH, "at most the batch size"), default=None,
                   help="chunk size for --sam m (divides the batch)")
    g.add_argument("--lr", type=Num(0, lo_open=True), default=None, help="step size γ > 0 (default 1/d)")
    g.add_argument("--alpha", type=Num(0, lo_open=True), default=0.01,
                   help="initialization scale α > 0 (default 0.01)")
    g.add_argument("--steps", type=Int(1, MAX_STEPS, "the schedules take 16 bytes a step"), default=DEFAULT_STEPS,
                   help=f"iterations (default {DEFAULT_STEPS})")
    g.add_argument("--algo", type=Choice("gd", "sgd"), default="gd", help="gd (full batch, default) or sgd")
    g.add_argument("--batch", type=Int(1, MAX_BATCH, "memory"), default=None, help="SGD batch size B (default 1)")
    g.add_argument("--no-replacement", action="store_true",
                   help="SGD batches without replacement (reshuffled every epoch)")
    g.add_argument("--normalize", action="store_true", help="normalized ascent ρ/‖∇L_batch‖ (Foret et al.)")
    g.add_argument("--ascent", type=Choice("same", "independent"), default="same",
                   help="same (eq. 5.4) or independent ascent batch (eq. 5.21, --sam n --algo sgd)")
    g.add_argument("--ascent-batch", type=Int(1, MAX_BATCH, "memory"), default=None,
                   help="size of the independent ascent batch (default: the batch size)")
    g.add_argument("--switch-at", type=Int(0, MAX_STEPS), default=None, metavar="T0",
                   help="switch between ERM and SAM at step T0 (Fig. 5.15)")
    g.add_argument("--switch-mode", type=Choice("erm-to-sam", "sam-to-erm"), default="erm-to-sam",
                   help="erm-to-sam (default) or sam-to-erm")


def _schedule_arguments(g) -> None:
    g.add_argument("--schedule", type=Choice(*SCHEDULES), default="constant",
                   help=f"step-size schedule: {', '.join(SCHEDULES)} (default constant)")
    g.add_argument("--decay-at", type=ListOf(Num(0, 1, lo_open=True, hi_open=True)), default=(),
                   help="comma-separated fractions of the run at which the step size is multiplied by "
                        "--decay-factor, e.g. 0.5,0.75 (schedule step or a warmup)")
    g.add_argument("--decay-factor", type=Num(0, lo_open=True), default=None,
                   help="step-size factor at each --decay-at fraction (default 0.1)")
    g.add_argument("--warmup-steps", type=Int(0, MAX_STEPS), default=0,
                   help="warmup length (schedules linear-warmup, exp-warmup)")
    g.add_argument("--warmup-ratio", type=Num(0, 1, lo_open=True), default=None,
                   help="exp-warmup start ratio in (0, 1] (default 1e-3)")
    g.add_argument("--rho-schedule", type=Choice("constant", "same-as-lr"), default="constant",
                   help="constant (default) or same-as-lr (ρ_t/ρ = γ_t/γ)")
    g.add_argument("--tol", type=Num(0, lo_open=True), default=1e-8,
                   help="train loss counted as converged (default 1e-8)")
    g.add_argument("--record-every", type=Int(1, MAX_STEPS), default=None,
                   help="loss-curve stride in [1, steps] (default steps/2000)")
    g.add_argument("--no-baseline", action="store_true", help="skip the ERM baseline run")


def _data_arguments(g) -> None:
    g.add_argument("--n", type=Int(1, MAX_N, "memory"), default=20, help="training points (default 20)")
    g.add_argument("--d", type=Int(1, MAX_D, "memory"), default=30, help="dimension (default 30)")
    g.add_argument("--k", type=Int(0, MAX_D), default=3, help="nonzeros of β*, at most d (default 3)")
    g.add_argument("--n-test", type=Int(1, MAX_N, "memory"), default=1000, help="test points (default 1000)")
    g.add_argument("--noise", type=Num(0), default=0.0, help="label-noise std on training labels (default 0)")
    g.add_argument("--data", type=InFile(".npz"), default=None, metavar="FILE.npz",
                   help="use X, y, X_test, y_test (beta_star optional) from an npz file instead")


def add_dln_arguments(parser: argparse.ArgumentParser) -> None:
    """Every DLN option (algorithm, schedule, data), typed; read back with :func:`config_from_args`
    and :func:`data_from_args` (also used by ``python -m toymodels.torch dln-ensemble``)."""
    _algorithm_arguments(parser.add_argument_group("algorithm"))
    _schedule_arguments(parser.add_argument_group("schedule and output"))
    _data_arguments(parser.add_argument_group("data (sparse regression, xᵢ ~ N(0, I), β* k-sparse with ±1 entries)"))


def config_from_args(args) -> DLNConfig:
    """The (unresolved) DLNConfig of parsed :func:`add_dln_arguments` options."""
    return DLNConfig(
        sam=args.sam, rho=args.rho, m=args.m, lr=args.lr, alpha=args.alpha, steps=args.steps,
        algo=args.algo, batch=args.batch, replacement=not args.no_replacement, normalize=args.normalize,
        ascent=args.ascent, ascent_batch=args.ascent_batch, switch_at=args.switch_at,
        switch_mode=args.switch_mode, schedule=args.schedule, decay_at=tuple(args.decay_at),
        decay_factor=args.decay_factor, warmup_steps=args.warmup_steps, warmup_ratio=args.warmup_ratio,
        rho_schedule=args.rho_schedule, tol=args.tol, record_every=args.record_every, seed=args.seed)


def data_from_args(args, seed: int | None = None):
    """(data, description, config fields) of the data options; generated data from ``seed``
    (default ``args.seed``). Sizes are checked before anything is drawn."""
    if args.data is not None:
        data = load_regression(args.data)
        return data, f"data {args.data} (n={data.n}, d={data.d}, n_test={data.n_test})", {"data": args.data}
    for field, rows in (("n", args.n), ("n_test", args.n_test)):
        if rows * args.d > MAX_ENTRIES:
            raise ConfigError(field, f"must be <= {MAX_ENTRIES // args.d} at d = {args.d} (at most "
                                     f"{MAX_ENTRIES:.0e} entries of 8 bytes in X)", rows)
    data = make_sparse_regression(args.n, args.d, args.k, args.n_test, args.noise,
                                  args.seed if seed is None else seed)
    desc = f"sparse regression n={args.n}, d={args.d}, k={args.k}, noise={args.noise}"
    return data, desc, {"n": args.n, "d": args.d, "k": args.k, "n_test": args.n_test, "noise": args.noise}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    """:func:`add_dln_arguments` and the options of this command only."""
    add_dln_arguments(parser)
    parser.add_argument("--no-theory", action="store_true",
                        help="skip the implicit-bias logs (lean kernel, same iterates; α_eff theory "
                             "reported as null)")


def _implicit(res: DLNResult, X, y) -> dict:
    """The implicit-bias check: β vs argmin φ_{α_eff} (and φ_α) subject to Xβ = y."""
    from .implicit_bias import solve_implicit_bias

    out = {"beta_implicit": None, "implicit_bias_rel_error": None, "implicit_bias_rel_error_alpha": None}
    if res.diverged or not np.all(np.isfinite(res.alpha_eff)) or not np.all(res.alpha_eff > 0):
        return out
    nb = float(np.linalg.norm(res.beta)) or 1.0
    try:
        b_eff = solve_implicit_bias(X, y, res.alpha_eff)
        b_alpha = solve_implicit_bias(X, y, res.alpha)
    except (ConfigError, RunError) as exc:
        out["implicit_bias_note"] = str(exc)
        return out
    out["beta_implicit"] = b_eff
    out["implicit_bias_rel_error"] = float(np.linalg.norm(res.beta - b_eff)) / nb
    out["implicit_bias_rel_error_alpha"] = float(np.linalg.norm(res.beta - b_alpha)) / nb
    return out


def _record(res: DLNResult, X, y) -> dict:
    rec = res.summary()
    rec.update(_implicit(res, X, y))
    rec["alpha_eff_mean"] = float(np.mean(res.alpha_eff))    # NaN (JSON null) without the theory logs
    rec["alpha_eff_theory_mean"] = float(np.mean(res.alpha_eff_theory))
    return rec


def _fmt(v, spec=".3e") -> str:
    if v is None:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(v)
    v = float(v)
    if not np.isfinite(v) or abs(v) >= 1e6:      # a diverged iterate: no 200-digit fixed-point numbers
        return format(v, ".3e")
    return format(v, spec)


def _status(r: DLNResult, tol: float) -> str:
    if r.diverged:
        return f"diverged @ {r.diverged_at}"
    return "converged" if r.converged else f"not converged (> {tol:g})"


_ROWS = [
    ("train loss", lambda r, e: _fmt(r.train_loss)),
    ("test loss", lambda r, e: _fmt(r.test_loss)),
    ("‖β‖₁", lambda r, e: _fmt(r.beta_l1, ".4f")),
    ("‖β − β*‖₂", lambda r, e: _fmt(r.beta_error)),
    ("steps run", lambda r, e: _fmt(r.steps_run)),
    ("status", lambda r, e: _status(r, r.config["tol"])),
    ("α_eff = √(w₊w₋) (mean)", lambda r, e: _fmt(np.mean(r.alpha_eff), ".5f")),
    ("α_eff theory (mean)", lambda r, e: _fmt(np.mean(r.alpha_eff_theory), ".5f")
     if np.all(np.isfinite(r.alpha_eff_theory)) else "—"),
    ("‖β − β_φ(α_eff)‖/‖β‖", lambda r, e: _fmt(e.get("implicit_bias_rel_error"))),
    ("‖β − β_φ(α)‖/‖β‖", lambda r, e: _fmt(e.get("implicit_bias_rel_error_alpha"))),
]


def _print_human(runs: list[tuple[DLNResult, dict]], data_desc: str) -> None:
    c = runs[0][0].config
    print(f"Diagonal linear network, {data_desc}")
    print(f"  α={c['alpha']}  γ={c['lr']:.4g}  ρ={c['rho']:.4g}  steps={c['steps']}  seed={c['seed']}")
    w0 = max(len(r[0]) for r in _ROWS) + 2
    cols = [r.method for r, _ in runs]
    cells = [[f(r, e) for r, e in runs] for _, f in _ROWS]
    wc = max(18, *(len(s) + 2 for s in cols), *(len(c) + 2 for row in cells for c in row))
    print()
    print(" " * w0 + "".join(s.rjust(wc) for s in cols))
    for (name, _), row in zip(_ROWS, cells):
        print(name.ljust(w0) + "".join(c.rjust(wc) for c in row))
    if len(runs) == 2 and not (runs[0][0].diverged or runs[1][0].diverged):
        ratio = runs[1][0].test_loss / runs[0][0].test_loss if runs[0][0].test_loss > 0 else float("inf")
        print(f"\ntest loss, baseline / method: {ratio:.2f}×")
    print("β_φ(a) = argmin φ_a(β) s.t. Xβ = y (eq. 5.12); α_eff theory: leading order of Thm 5.9.2/5.9.3 "
          "in this normalization (see ERRATA.md)")


def _plot(runs, path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for res, _ in runs:
        axes[0].semilogy(res.curve_steps, res.curve_train, label=res.method)
        axes[1].semilogy(res.curve_steps, res.curve_test, label=res.method)
    axes[0].set_title("train loss")
    axes[1].set_title("test loss")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def run(args: argparse.Namespace, session) -> Result:
    data, data_desc, data_cfg = data_from_args(args)
    cfg = resolve(config_from_args(args), data.n, data.d)      # validate everything before any work
    configs = [cfg] if args.no_baseline else [cfg, erm_baseline(cfg)]
    runs = []
    for c in configs:
        res = train(data, c, show_progress=session.show_progress, theory=not args.no_theory)
        runs.append((res, _record(res, data.X, data.y)))
        if res.diverged:
            session.note(f"{res.method}: diverged at step {res.diverged_at} (non-finite iterate); "
                         "try a smaller --lr or --rho")
    out = dict(runs[0][1])
    out.pop("config")
    if len(runs) > 1:
        out["baseline"] = {**runs[1][1], "config": {**runs[1][0].config, **data_cfg}}
    curves = {f"{k}_{i}": v for i, (r, _) in enumerate(runs)
              for k, v in (("steps", r.curve_steps), ("train", r.curve_train), ("test", r.curve_test))}
    return Result(out, {**runs[0][0].config, **data_cfg, "theory": not args.no_theory},
                  human=lambda: _print_human(runs, data_desc),
                  files={"curves.npz": lambda path: save_npz(path, **curves),
                         "loss_curves.png": lambda path: _plot(runs, path)})


CLI = Cli(PROG, __doc__, [Command(
    None, "train a diagonal linear network beside an ERM baseline", _add_arguments, run,
    description=__doc__.split("\n\n")[0],
    epilog="Example: python -m toymodels.dln --sam 1 --rho 0.05 --steps 200000 --json",
    flags={"replacement": "--no-replacement"},
    smoke=("--steps", "2000"))])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
