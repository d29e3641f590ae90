"""``python -m toymodels.sam_convergence``: measure both sides of every SAM convergence bound (thesis §5.6.1,
App. 5.10) on problems with exact constants and print a table (theorem, problem, measured, bound, ratio,
verdict).

Each inequality is written LHS ≤ RHS; Monte-Carlo rows average --seeds independent runs (run r draws its
batches from the random stream (seed, "run", r) of toymodels.rng) and hold when LHS − 5 s.e. ≤ RHS. Rows
marked "printed" evaluate statements that are wrong as printed (see ERRATA.md) and are expected to fail.
Exit status 1 if a row is not as expected.
"""
from __future__ import annotations

from .._cli import Cli, Command, Int, Result
from .table import MAX_RUNS, build_rows, counterexample

PROG = "python -m toymodels.sam_convergence"


def add_arguments(p) -> None:
    p.add_argument("--seeds", type=Int(2, MAX_RUNS, "the time grows linearly with the runs"), default=100,
                   help="Monte-Carlo runs per stochastic row, >= 2 (default 100); run r draws from the random "
                        "stream (seed, 'run', r)")
    p.add_argument("--fast", action="store_true", help="shorter stochastic runs (T=64 instead of 256) and "
                                                       "fewer random points")


def _human(rows, ce, ok) -> None:
    w = max(len(r["theorem"]) for r in rows)
    print("ratio = LHS/RHS of 'LHS <= RHS' (upper bounds: measured/bound; lower bounds, marked >=: "
          "bound/measured); MC rows hold when LHS - 5 se <= RHS")
    print(f"{'theorem':{w}s}  {'problem':26s} {'measured':>11s} {'bound':>13s} {'ratio':>9s} {'5se':>9s}  verdict")
    for r in rows:
        b = (">= " if r["kind"] == "lower" else "<= ") + f"{r['bound']:.4g}"
        print(f"{r['theorem']:{w}s}  {r['problem'][:26]:26s} {r['measured']:11.4g} {b:>13s} "
              f"{r['ratio']:9.3g} {5 * r['se']:9.2g}  {r['verdict']}")
    a, b = ce["rho=1/beta"], ce["rho=0.5/beta"]
    print(f"\ncounterexample (rho = 1/beta, {ce['problem']}, beta={ce['beta']}, x0={ce['x0']}): moved "
          f"{a['max_abs_move']:.3g} in {ce['T']} steps with |L'(x)| = {a['grad_norm_T']:.3g}; "
          f"with rho = 0.5/beta: x_T = {b['x_T']:.6g}, |L'| = {b['grad_norm_T']:.2g}")
    print("all rows as expected" if ok else "SOME ROWS NOT AS EXPECTED")


def run(args, session) -> Result:
    rows = build_rows(seed=args.seed, runs=args.seeds, fast=args.fast)
    ce = counterexample()
    ok = all(r["holds"] == bool(r["expect_hold"]) for r in rows)
    if not ok:
        session.note("some rows are not as expected (see their verdicts)")
    return Result(payload={"rows": rows, "counterexample": ce, "all_as_expected": ok},
                  config={"seeds": args.seeds, "seed": args.seed, "fast": args.fast},
                  human=lambda: _human(rows, ce, ok), exit_code=0 if ok else 1)


CLI = Cli(PROG, __doc__, [Command(None, "measure both sides of every SAM convergence bound", add_arguments, run,
                                  description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                  flags={"runs": "--seeds"},
                                  smoke=("--fast", "--seeds", "10"))])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
