"""``python -m toymodels.quad1d``: SGD on the 1D quadratic parameterization (thesis eq. 6.5) and a
test of Prop. 6.3.2 / 6.7.1 (loss stabilization between two level sets, eq. 6.6 / 6.22; eventual
2-periodic bouncing across θ*, eq. 6.7; Lemma 9's bounded region).

Defaults: the proposition's setting, ρ̂ = U[1, 1.05], θ* = 1, η = 1.1 inside the interval
((θ*x_min)⁻², 1.25(θ*x_max)⁻²) = (1, 1.1338), θ₀ ~ U(0, θ*), 10⁴ runs × 10³ steps. The loss is
F(θ) = ¼E_ρ̂(y − xθ²)² = (E[x²]/4)(θ*² − θ²)².
"""
from __future__ import annotations

import argparse

from .._cli import Cli, Command, Int, ListOf, Num, Result, parse_number
from .._io import save_npz
from .claims import evaluate, summary
from .sim import MAX_RUNS, MAX_STEPS, Quad1DConfig, simulate

PROG = "python -m toymodels.quad1d"


class _Theta0(Num):
    """A number, or the word 'random'."""

    def describe(self) -> str:
        return "must be a finite number or 'random'"

    def __call__(self, text: str):
        if str(text).strip() == "random":
            return "random"
        try:
            return parse_number(text)
        except ValueError:
            self.fail(text, self.describe())


def add_arguments(p) -> None:
    p.add_argument("--eta", type=Num(0, lo_open=True), default=1.1, help="step size η > 0 (default 1.1)")
    p.add_argument("--xmin", dest="x_min", type=Num(0, lo_open=True), default=1.0,
                   help="x_min > 0 of ρ̂ = U[x_min, x_max] (default 1)")
    p.add_argument("--xmax", dest="x_max", type=Num(0, lo_open=True), default=1.05,
                   help="x_max > x_min (default 1.05)")
    p.add_argument("--points", type=ListOf(Num(0, lo_open=True)), default=None,
                   help="ρ̂ uniform on these comma-separated points > 0 instead (overrides --xmin/--xmax)")
    p.add_argument("--theta-star", type=Num(0, lo_open=True), default=1.0, help="θ* > 0 (default 1)")
    p.add_argument("--theta0", type=_Theta0(), default="random",
                   help="θ₀: a number, or 'random' = U(0, θ*) per run (default)")
    p.add_argument("--steps", type=Int(1, MAX_STEPS, "the stream counter holds 2^32 steps"), default=1000,
                   help="SGD steps per run ≥ 1 (default 1000)")
    p.add_argument("--runs", type=Int(1, MAX_RUNS, "96 bytes of statistics a run"), default=10_000,
                   help="independent runs ≥ 1 (default 10000)")


def _human(res, claims) -> None:
    c = res.config
    print(f"eta={c.eta} rho=" + (f"uniform on {c.points}" if c.points else f"U[{c.x_min}, {c.x_max}]")
          + f" theta*={c.theta_star} theta0={c.theta0} runs={c.runs} steps={c.steps} seed={c.seed}")
    d = res.derived
    print(f"eta interval {d['eta_interval']} (inside: {d['eta_in_interval']}), gamma in {d['gamma_range']}, "
          f"eps_o={d['eps_o']:.4g}, levels ({d['delta1']:.4g}, {d['delta2']:.4g})")
    s = summary(res)
    print(f"loss min {s['loss_min']}, max {s['loss_max']}, final max {s['loss_final_max']}; regime {s['regime']}")
    for cl in claims:
        mark = {True: "HOLDS", False: "FAILS", None: "n/a"}[cl["holds"]]
        cx = cl["evidence"].get("counterexample")
        print(f"  [{mark:5s}] {cl['name']}" + (f"  counterexample {cx}" if cx else ""))


def run(a: argparse.Namespace, session) -> Result:
    cfg = Quad1DConfig(eta=a.eta, x_min=a.x_min, x_max=a.x_max, theta_star=a.theta_star, theta0=a.theta0,
                       steps=a.steps, runs=a.runs, seed=a.seed,
                       points=list(a.points) if a.points is not None else None)
    res = simulate(cfg, show_progress=session.show_progress and cfg.runs * cfg.steps > 10 ** 8)
    claims = evaluate(res)
    arrays = dict(theta0=res.theta0, theta_final=res.theta_final, loss_min=res.loss_min, loss_max=res.loss_max,
                  loss_final=res.loss_final, bounce_start=res.bounce_start, band_start=res.band_start,
                  div_step=res.div_step)
    return Result(payload={"claims": claims} | summary(res) | {"derived": res.derived},
                  config=dict(res.config.__dict__), human=lambda: _human(res, claims),
                  files={"runs.npz": lambda path: save_npz(path, **arrays)})


CLI = Cli(PROG, __doc__, [Command(None, "SGD ensemble on the 1D quadratic parameterization", add_arguments, run,
                                  description=__doc__.split("\n\n")[0], smoke=("--runs", "200", "--steps", "100"))])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
