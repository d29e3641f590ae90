"""``python -m toymodels.dln``: train a diagonal linear network with GD/SGD/SAM beside an ERM
baseline on the same data, and check the implicit-bias theory (thesis Ch. 5, Thm 5.9.1–5.9.3).

Default: Fig. 5.13's setting, full batch — d=30, n=20, k=3, α=0.01, γ=ρ=1/d — for 500k steps,
enough for the training loss to fall to ≲1e-8.
"""
from __future__ import annotations

import sys

import numpy as np

from .. import __version__
from .._cli import Parser, UsageError, add_common, emit_json, run_main
from .._io import save_figure, save_npz, write_json
from ..datasets import load_regression, make_sparse_regression
from ..schedules import SCHEDULES
from .train import DLNConfig, DLNResult, resolve, train

DEFAULT_STEPS = 500_000


def build_parser() -> Parser:
    p = Parser(prog="python -m toymodels.dln", description=__doc__.split("\n\n")[0],
               epilog="Example: python -m toymodels.dln --sam 1 --rho 0.05 --steps 200000 --json")
    g = p.add_argument_group("algorithm")
    g.add_argument("--sam", default="1", help="SAM variant: none (ERM), 1 (1-SAM), n (n-SAM), m (m-SAM "
                   "with --m); default 1")
    g.add_argument("--rho", type=float, default=None, help="SAM ascent step ρ >= 0 (default 1/d)")
    g.add_argument("--m", type=int, default=None, help="chunk size for --sam m (divides the batch)")
    g.add_argument("--lr", type=float, default=None, help="step size γ > 0 (default 1/d)")
    g.add_argument("--alpha", type=float, default=0.01, help="initialization scale α > 0 (default 0.01)")
    g.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"iterations (default {DEFAULT_STEPS})")
    g.add_argument("--algo", default="gd", help="gd (full batch, default) or sgd")
    g.add_argument("--batch", type=int, default=None, help="SGD batch size B (default 1)")
    g.add_argument("--no-replacement", action="store_true", help="SGD batches without replacement "
                   "(reshuffled every epoch)")
    g.add_argument("--normalize", action="store_true", help="normalized ascent ρ/‖∇L_batch‖ (Foret et al.)")
    g.add_argument("--ascent", default="same", help="same (eq. 5.4) or independent ascent batch (eq. 5.21, "
                   "--sam n --algo sgd)")
    g.add_argument("--ascent-batch", type=int, default=None, help="size of the independent ascent batch")
    g.add_argument("--switch-at", type=int, default=None, metavar="T0", help="switch between ERM and SAM at "
                   "step T0 (Fig. 5.15)")
    g.add_argument("--switch-mode", default="erm-to-sam", help="erm-to-sam (default) or sam-to-erm")
    g.add_argument("--schedule", default="constant", help=f"step-size schedule: {', '.join(SCHEDULES)}")
    g.add_argument("--decay-at", default="", help="comma-separated fractions of the run at which the step "
                   "size is multiplied by --decay-factor, e.g. 0.5,0.75")
    g.add_argument("--decay-factor", type=float, default=0.1)
    g.add_argument("--warmup-steps", type=int, default=0)
    g.add_argument("--warmup-ratio", type=float, default=1e-3, help="exp-warmup start ratio in (0, 1]")
    g.add_argument("--rho-schedule", default="constant", help="constant (default) or same-as-lr")
    g.add_argument("--tol", type=float, default=1e-8, help="train loss counted as converged (default 1e-8)")
    g.add_argument("--record-every", type=int, default=None, help="loss-curve stride (default steps/2000)")
    g.add_argument("--no-baseline", action="store_true", help="skip the ERM baseline run")
    d = p.add_argument_group("data (sparse regression, xᵢ ~ N(0, I), β* k-sparse with ±1 entries)")
    d.add_argument("--n", type=int, default=20, help="training points (default 20)")
    d.add_argument("--d", type=int, default=30, help="dimension (default 30)")
    d.add_argument("--k", type=int, default=3, help="nonzeros of β* (default 3)")
    d.add_argument("--n-test", type=int, default=1000, help="test points (default 1000)")
    d.add_argument("--noise", type=float, default=0.0, help="label-noise std on training labels")
    d.add_argument("--data", default=None, metavar="FILE.npz", help="use X, y, X_test, y_test "
                   "(beta_star optional) from an npz file instead")
    add_common(p)
    return p


def _decay(text: str) -> tuple:
    if not text.strip():
        return ()
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--decay-at must be comma-separated fractions in (0, 1), got {text!r}") from None


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
    except ValueError as exc:
        out["implicit_bias_note"] = str(exc)
        return out
    out["beta_implicit"] = b_eff
    out["implicit_bias_rel_error"] = float(np.linalg.norm(res.beta - b_eff)) / nb
    out["implicit_bias_rel_error_alpha"] = float(np.linalg.norm(res.beta - b_alpha)) / nb
    return out


def _record(res: DLNResult, X, y) -> dict:
    rec = res.summary()
    rec.update(_implicit(res, X, y))
    rec["alpha_eff_mean"] = float(np.mean(res.alpha_eff))
    rec["alpha_eff_theory_mean"] = float(np.mean(res.alpha_eff_theory))
    return rec


def _fmt(v, spec=".3e") -> str:
    if v is None:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(v)
    return format(float(v), spec)


def _print_human(runs: list[tuple[DLNResult, dict]], data_desc: str) -> None:
    res0 = runs[0][0]
    c = res0.config
    print(f"Diagonal linear network, {data_desc}")
    print(f"  α={c['alpha']}  γ={c['lr']:.4g}  ρ={c['rho']:.4g}  steps={c['steps']}  seed={c['seed']}")
    rows = [
        ("train loss", lambda r, e: _fmt(r.train_loss)),
        ("test loss", lambda r, e: _fmt(r.test_loss)),
        ("‖β‖₁", lambda r, e: _fmt(r.beta_l1, ".4f")),
        ("‖β − β*‖₂", lambda r, e: _fmt(r.beta_error)),
        ("steps run", lambda r, e: _fmt(r.steps_run)),
        ("status", lambda r, e: ("diverged @ %d" % r.diverged_at) if r.diverged
         else ("converged" if r.converged else f"not converged (> {c['tol']:g})")),
        ("α_eff = √(w₊w₋) (mean)", lambda r, e: _fmt(np.mean(r.alpha_eff), ".5f")),
        ("α_eff theory (mean)", lambda r, e: _fmt(np.mean(r.alpha_eff_theory), ".5f")),
        ("‖β − β_φ(α_eff)‖/‖β‖", lambda r, e: _fmt(e.get("implicit_bias_rel_error"))),
        ("‖β − β_φ(α)‖/‖β‖", lambda r, e: _fmt(e.get("implicit_bias_rel_error_alpha"))),
    ]
    w0 = max(len(r[0]) for r in rows) + 2
    cols = [r.method for r, _ in runs]
    wc = max(18, *(len(s) + 2 for s in cols))
    print()
    print(" " * w0 + "".join(s.rjust(wc) for s in cols))
    for name, f in rows:
        print(name.ljust(w0) + "".join(f(r, e).rjust(wc) for r, e in runs))
    if len(runs) == 2 and not (runs[0][0].diverged or runs[1][0].diverged):
        ratio = runs[1][0].test_loss / runs[0][0].test_loss if runs[0][0].test_loss > 0 else float("inf")
        print(f"\ntest loss, baseline / method: {ratio:.2f}×")
    print("β_φ(a) = argmin φ_a(β) s.t. Xβ = y (eq. 5.12); α_eff theory: leading order of Thm 5.9.2/5.9.3 "
          "in this normalization (see ERRATA.md)")


def _plot(runs, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for res, _ in runs:
        axes[0].semilogy(res.curve_steps, res.curve_train, label=res.method)
        axes[1].semilogy(res.curve_steps, res.curve_test, label=res.method)
    axes[0].set_title("train loss")
    axes[1].set_title("test loss")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def config_from_args(args) -> DLNConfig:
    """The (unresolved) DLNConfig of parsed :func:`build_parser` arguments (also used by the torch
    ``dln-ensemble`` command, which takes the same options)."""
    return DLNConfig(
        sam=args.sam, rho=args.rho, m=args.m, lr=args.lr, alpha=args.alpha, steps=args.steps,
        algo=args.algo, batch=args.batch, replacement=not args.no_replacement, normalize=args.normalize,
        ascent=args.ascent, ascent_batch=args.ascent_batch, switch_at=args.switch_at,
        switch_mode=args.switch_mode, schedule=args.schedule, decay_at=_decay(args.decay_at),
        decay_factor=args.decay_factor, warmup_steps=args.warmup_steps, warmup_ratio=args.warmup_ratio,
        rho_schedule=args.rho_schedule, tol=args.tol, record_every=args.record_every, seed=args.seed)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.data is not None:
        data = load_regression(args.data)
        data_desc = f"data {args.data} (n={data.n}, d={data.d}, n_test={data.n_test})"
        data_cfg = {"data": args.data}
    else:
        data = make_sparse_regression(args.n, args.d, args.k, args.n_test, args.noise, args.seed)
        data_desc = f"sparse regression n={args.n}, d={args.d}, k={args.k}, noise={args.noise}"
        data_cfg = {"n": args.n, "d": args.d, "k": args.k, "n_test": args.n_test, "noise": args.noise}
    cfg = config_from_args(args)
    cfg = resolve(cfg, data.n, data.d)  # validate everything before any work
    configs = [cfg]
    if not args.no_baseline:
        configs.append(DLNConfig(**{**cfg.as_dict(), "sam": "none", "rho": 0.0, "m": None, "normalize": False,
                                    "ascent": "same", "ascent_batch": None, "switch_at": None,
                                    "decay_at": tuple(cfg.decay_at)}))
    runs = []
    for c in configs:
        res = train(data, c, show_progress=not args.json)
        runs.append((res, _record(res, data.X, data.y)))
    for res, _ in runs:
        if res.diverged:
            print(f"{res.method}: diverged at step {res.diverged_at} (non-finite iterate); "
                  "try a smaller --lr or --rho", file=sys.stderr)
    out = dict(runs[0][1])
    out["config"] = {**runs[0][0].config, **data_cfg}
    if len(runs) > 1:
        base = dict(runs[1][1])
        base["config"] = {**runs[1][0].config, **data_cfg}
        out["baseline"] = base
    out["version"] = __version__
    if args.out:
        write_json(f"{args.out}/result.json", out)
        save_npz(f"{args.out}/curves.npz", **{f"{k}_{i}": v for i, (r, _) in enumerate(runs)
                                               for k, v in (("steps", r.curve_steps), ("train", r.curve_train),
                                                            ("test", r.curve_test))})
        _plot(runs, f"{args.out}/loss_curves.png")
    if args.json:
        emit_json(out)
    else:
        _print_human(runs, data_desc)
        if args.out:
            print(f"\nwrote {args.out}/result.json, curves.npz, loss_curves.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog="python -m toymodels.dln"))
