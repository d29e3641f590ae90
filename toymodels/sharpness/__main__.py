"""``python -m toymodels.sharpness {dln, linear, one-sharpness}``.

``dln``: adaptive sharpness of a diagonal linear network at a minimum
(thesis Sec. 7.6.2): plain and DLN-rescaled Hessian trace / λ_max, MC average-case and Auto-PGD
worst-case (ℓ₂) sharpness at radius ρ, beside ‖β‖₁ and ‖β‖_∞.

Default: whitened data (X^T X = n I, n = 40, d = 10, β* = three ±1 entries plus 0.05·N(0, 1)
elsewhere) and a DLN trained by GD with :mod:`toymodels.dln` from α = 0.1 to a minimum. Loss normalization: L = 1/(4n) ‖X(u⊙v) − y‖².

``linear``: a linear classifier on a Gaussian mixture (:mod:`toymodels.sharpness.linear`), trained by
full-batch logistic-regression GD, scaled by ``--scale``, then average/worst-case standard (c = 1) and
adaptive (c = |w|) m-sharpness (Fig. 7.1 setting: d = 100, n = 50).

``one-sharpness``: Sec. 5.4 — k interpolating least-squares solutions of one problem have the same
1-sharpness (:mod:`toymodels.sharpness.one_sharpness`).
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
    p.add_argument("model", help="model to measure: dln (this parser); also linear, one-sharpness "
                   "(see python -m toymodels.sharpness linear --help)")
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
    from ..datasets import RegressionData
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
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    if args.model != "dln":
        raise UsageError(f"model must be one of {{dln, linear, one-sharpness}}, got {args.model!r}")
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


def _linear_parser() -> Parser:
    p = Parser(prog="python -m toymodels.sharpness linear",
               description="Standard and adaptive sharpness of a trained, rescaled linear classifier.",
               epilog="Example: python -m toymodels.sharpness linear --scale 4 --json")
    p.add_argument("--n", type=int, default=50, help="training points (default 50)")
    p.add_argument("--d", type=int, default=100, help="input dimension (default 100)")
    p.add_argument("--classes", type=int, default=1,
                   help="K = 1: binary logistic, one logit (default); K >= 2: softmax on K logits "
                        "(K = 2: two Gaussians; K >= 3: K Gaussians)")
    p.add_argument("--rho", type=float, default=0.05, help="sharpness radius > 0 (default 0.05)")
    p.add_argument("--m", type=int, default=None, help="m-sharpness batch size in [1, n] (default n)")
    p.add_argument("--p", default="2", help="perturbation norm for the worst case: 2 or inf (default 2)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the trained weights by S > 0")
    p.add_argument("--logit-norm", action="store_true", help="logit normalization eq. 7.5 (needs K >= 2)")
    p.add_argument("--steps", type=int, default=500, help="logistic-regression GD steps (default 500)")
    p.add_argument("--samples", type=int, default=2000, help="MC samples (default 2000)")
    p.add_argument("--iters", type=int, default=50, help="Auto-PGD iterations (default 50)")
    p.add_argument("--restarts", type=int, default=3, help="Auto-PGD restarts (default 3)")
    add_common(p)
    return p


def main_linear(argv) -> int:
    from .linear import gaussian_mixture, linear_loss, measure_linear, train_linear

    a = _linear_parser().parse_args(argv)
    check_int_range("--n", a.n, 2, 100_000)
    check_int_range("--d", a.d, 1, 100_000)
    check_int_range("--classes", a.classes, 1, a.d)
    check_positive("--rho", a.rho)
    check_positive("--scale", a.scale)
    if a.p not in ("2", "inf"):
        raise UsageError(f"--p must be one of {{2, inf}}, got {a.p!r}")
    if a.logit_norm and a.classes < 2:
        raise UsageError("--logit-norm needs --classes >= 2 (eq. 7.5 normalizes over K logits)")
    check_int_range("--m", a.n if a.m is None else a.m, 1, a.n)
    check_int_range("--steps", a.steps, 0, 10**7)
    check_int_range("--samples", a.samples, 2)
    check_int_range("--iters", a.iters, 1)
    check_int_range("--restarts", a.restarts, 1)
    check_int_range("--seed", a.seed, 0)
    X, y = gaussian_mixture(a.n, a.d, a.classes, seed=a.seed)
    w = train_linear(X, y, a.classes, steps=a.steps)
    if not np.all(np.isfinite(w)):
        sys.stderr.write("python -m toymodels.sharpness linear: training diverged\n")
        return 1
    w = a.scale * w
    res = measure_linear(w, X, y, a.classes, rho=a.rho, m=a.m, normalize=a.logit_norm, p=a.p,
                         n_samples=a.samples, n_iter=a.iters, n_restarts=a.restarts, seed=a.seed)
    Xte, yte = gaussian_mixture(2000, a.d, a.classes, seed=a.seed + 10**6)
    z = Xte @ w if a.classes == 1 else (w.reshape(a.classes, -1) @ Xte.T)
    res["test_error"] = float(np.mean(np.sign(z) != yte) if a.classes == 1 else
                              np.mean(np.argmax(z, axis=0) != yte))
    res["test_loss"] = float(linear_loss(w, Xte, yte, a.classes, a.logit_norm)[0])
    config = {"model": "linear", "n": a.n, "d": a.d, "classes": a.classes, "rho": a.rho,
              "m": a.m or a.n, "p": a.p, "scale": a.scale, "logit_norm": a.logit_norm, "steps": a.steps,
              "samples": a.samples, "iters": a.iters, "restarts": a.restarts, "seed": a.seed,
              "data": "Gaussian mixture x = mu_y + N(0, I), |mu| = 3 (see toymodels.sharpness.linear)",
              "definition": "S_avg = E L(w + c*g) - L(w), g ~ N(0, rho^2 I); S_max = max_{|g|_p <= rho}; "
                            "standard c = 1, adaptive c = |w|; mean loss over each batch of m points"}
    out = {**res, "config": config}
    if a.out:
        write_json(f"{a.out}/sharpness_linear.json", out)
    if a.json:
        emit_json(out)
    else:
        for key, val in res.items():
            print(f"{key:>22s}  {val:.6g}")
    return 0


def main_one_sharpness(argv) -> int:
    from .one_sharpness import demo_equal_one_sharpness

    p = Parser(prog="python -m toymodels.sharpness one-sharpness",
               description="Sec. 5.4: all interpolating least-squares solutions are equally 1-sharp.",
               epilog="Example: python -m toymodels.sharpness one-sharpness --json")
    p.add_argument("--n", type=int, default=10, help="training points (default 10)")
    p.add_argument("--d", type=int, default=30, help="dimension d > n (default 30)")
    p.add_argument("--k", type=int, default=5, help="number of interpolating solutions >= 2 (default 5)")
    p.add_argument("--rho", type=float, default=0.1, help="radius > 0 (default 0.1)")
    p.add_argument("--samples", type=int, default=4000, help="MC samples per point (default 4000)")
    add_common(p)
    a = p.parse_args(argv)
    check_int_range("--n", a.n, 1, 10_000)
    check_int_range("--d", a.d, a.n + 1, 100_000)
    check_int_range("--k", a.k, 2, 1000)
    check_positive("--rho", a.rho)
    check_int_range("--samples", a.samples, 2)
    check_int_range("--seed", a.seed, 0)
    res = demo_equal_one_sharpness(a.n, a.d, a.k, a.rho, a.samples, a.seed)
    config = {"n": a.n, "d": a.d, "k": a.k, "rho": a.rho, "samples": a.samples, "seed": a.seed,
              "loss": "per point (<w, x_i> - y_i)^2; 1-sharpness = mean_i max_{|d|_2<=rho} l_i(w+d) - l_i(w)"}
    out = {**res, "config": config}
    if a.out:
        write_json(f"{a.out}/one_sharpness.json", out)
    if a.json:
        emit_json(out)
    else:
        print(f"closed form at interpolation rho^2 mean|x|^2 = {res['closed_form_at_interpolation']:.6g}")
        print(f"{'|w|':>8s} {'test':>9s} {'closed':>10s} {'pgd':>10s} {'avg(MC)':>10s} {'adaptive':>10s}")
        for r in res["solutions"]:
            print(f"{r['w_norm']:8.3f} {r['test_loss']:9.4f} {r['one_sharpness_closed']:10.6f} "
                  f"{r['one_sharpness_pgd']:10.6f} {r['avg_one_sharpness']:10.6f} "
                  f"{r['adaptive_avg_one_sharpness']:10.6f}")
    return 0


SUBCOMMANDS = {"linear": main_linear, "one-sharpness": main_one_sharpness}


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog="python -m toymodels.sharpness"))
