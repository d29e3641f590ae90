"""``python -m toymodels.sharpness dln``: adaptive sharpness of a diagonal linear network at a minimum
(thesis Sec. 7.6.2): plain and DLN-rescaled Hessian trace / λ_max, MC average-case and Auto-PGD
worst-case (ℓ₂) sharpness at radius ρ, beside ‖β‖₁ and ‖β‖_∞.

Default: whitened data (X^T X = n I, n = 40, d = 10, β* = three ±1 entries plus 0.05·N(0, 1)
elsewhere) and a DLN trained by GD with :mod:`toymodels.dln` from α = 0.1 to a minimum. Loss normalization: L = 1/(4n) ‖X(u⊙v) − y‖².
"""
from __future__ import annotations

import sys

import numpy as np

from .._cli import Parser, UsageError, add_common, check_int_range, check_positive, emit_json, run_main
from .._io import write_json
from .dln import check_uvxy, measure_dln


def build_parser() -> Parser:
    p = Parser(prog="python -m toymodels.sharpness", description=__doc__.split("\n\n")[0],
               epilog="Example: python -m toymodels.sharpness dln --rho 0.01 --json")
    p.add_argument("model", help="model to measure: dln")
    p.add_argument("--weights", metavar="FILE.npz", default=None,
                   help="npz with arrays u (d,), v (d,), X (n, d), y (n,); default: train a DLN")
    p.add_argument("--rho", type=float, default=0.01, help="sharpness radius ρ > 0 (default 0.01)")
    p.add_argument("--m", type=int, default=None, help="m-sharpness batch size in [1, n] (default n)")
    p.add_argument("--samples", type=int, default=2000, help="MC samples for average case (default 2000)")
    p.add_argument("--iters", type=int, default=100, help="Auto-PGD iterations (default 100)")
    p.add_argument("--restarts", type=int, default=10, help="Auto-PGD random restarts (default 10)")
    add_common(p)
    return p


def default_problem(seed: int):
    """Whitened data X^T X = n I and a GD-trained DLN minimum (u, v)."""
    from ..data import RegressionData
    from ..dln import DLNConfig, train, w_to_uv

    rng = np.random.default_rng(seed)
    n, d, k = 40, 10, 3
    Q, _ = np.linalg.qr(rng.standard_normal((n, d)))
    X = np.sqrt(n) * Q
    # approximately sparse: at an exact zero βᵢ = 0 one of uᵢ, vᵢ vanishes and c is undefined
    beta = 0.05 * rng.standard_normal(d)
    beta[rng.choice(d, k, replace=False)] = rng.choice([-1.0, 1.0], k)
    y = X @ beta
    data = RegressionData(X=X, y=y, X_test=X[:1], y_test=y[:1], beta_star=beta, source="whitened")
    res = train(data, DLNConfig(alpha=0.1, lr=0.5, steps=4000, tol=1e-30, seed=seed))
    if res.diverged:
        return None, res.diverged_at
    u, v = w_to_uv(res.w_plus, res.w_minus)
    return (u, v, X, y), None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.model != "dln":
        raise UsageError(f"model must be one of {{dln}}, got {args.model!r}")
    check_positive("--rho", args.rho)
    check_int_range("--samples", args.samples, 2)
    check_int_range("--iters", args.iters, 1)
    check_int_range("--restarts", args.restarts, 1)
    check_int_range("--seed", args.seed, 0)
    if args.weights is not None:
        try:
            with np.load(args.weights) as z:
                u, v, X, y = (z[key] for key in ("u", "v", "X", "y"))
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"--weights must be a readable .npz with arrays u, v, X, y ({exc})") from None
        source = str(args.weights)
    else:
        problem, diverged_at = default_problem(args.seed)
        if problem is None:
            sys.stderr.write(f"python -m toymodels.sharpness: DLN training diverged at step {diverged_at}\n")
            return 1
        u, v, X, y = problem
        source = "trained"
    u, v, X, y = check_uvxy(u, v, X, y)
    if args.m is not None:
        check_int_range("--m", args.m, 1, X.shape[0])
    res = measure_dln(u, v, X, y, rho=args.rho, m=args.m, n_samples=args.samples, n_iter=args.iters,
                      n_restarts=args.restarts,
                      seed=args.seed)
    config = {"model": "dln", "weights": source, "rho": args.rho, "m": args.m or X.shape[0],
              "samples": args.samples, "iters": args.iters,
              "restarts": args.restarts, "seed": args.seed, "n": X.shape[0],
              "d": X.shape[1], "normalization": "L = 1/(4n) |X(u*v) - y|^2, c = [sqrt|u/v|, sqrt|v/u|]"}
    out = {**res, "config": config}
    if args.out:
        write_json(f"{args.out}/sharpness_dln.json", out)
    if args.json:
        emit_json(out)
    else:
        for key, val in res.items():
            print(f"{key:>22s}  {val:.6g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog="python -m toymodels.sharpness"))
