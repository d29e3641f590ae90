"""``python -m toymodels.sharpness {dln, linear, one-sharpness}``: adaptive sharpness (thesis Ch. 7, Sec. 5.4).

``dln``: adaptive sharpness of a diagonal linear network at a minimum (thesis Sec. 7.6.2): plain and
DLN-rescaled Hessian trace / λ_max, MC average-case and Auto-PGD worst-case (ℓ₂) sharpness at radius
ρ, beside ‖β‖₁ and ‖β‖_∞. Default: whitened data (XᵀX = n I, n = 40, d = 10, β* = three ±1 entries
plus 0.05·N(0, 1) elsewhere) and a DLN trained by GD with :mod:`toymodels.dln` from α = 0.1 to a
minimum. Loss normalization: L = 1/(4n) ‖X(u⊙v) − y‖².

``linear``: a linear classifier on a Gaussian mixture (:mod:`toymodels.sharpness.linear`), trained by
full-batch logistic-regression GD, scaled by ``--scale``, then average/worst-case standard (c = 1) and
adaptive (c = |w|) m-sharpness (Fig. 7.1 setting: d = 100, n = 50).

``one-sharpness``: Sec. 5.4 — k interpolating least-squares solutions of one problem have the same
1-sharpness (:mod:`toymodels.sharpness.one_sharpness`).
"""
from __future__ import annotations

import numpy as np

from .._cli import Choice, Cli, Command, InFile, Int, Num, Result
from .._io import load_npz_arrays
from ..errors import ConfigError, RunError
from .measures import MAX_ITERS, MAX_RESTARTS, MAX_SAMPLES

PROG = "python -m toymodels.sharpness"
#: data sizes of the generated problems (X takes 8 bytes an entry)
MAX_POINTS, MAX_DIM, MAX_ENTRIES = 10 ** 6, 10 ** 5, 10 ** 8


def _budget_arguments(p, samples: int, iters: int, restarts: int) -> None:
    p.add_argument("--samples", type=Int(2, MAX_SAMPLES, "time: one loss evaluation a draw"), default=samples,
                   help=f"Monte-Carlo draws for the average case (default {samples})")
    p.add_argument("--iters", type=Int(1, MAX_ITERS, "time"), default=iters,
                   help=f"Auto-PGD iterations (default {iters})")
    p.add_argument("--restarts", type=Int(1, MAX_RESTARTS, "time"), default=restarts,
                   help=f"Auto-PGD random restarts (default {restarts})")


def _print_values(res: dict) -> None:
    for key, val in res.items():
        print(f"{key:>22s}  {val:.6g}")


# ----------------------------------------------------------------------------------------------------
# dln

def dln_arguments(p) -> None:
    p.add_argument("--weights", type=InFile(".npz"), metavar="FILE.npz", default=None,
                   help="npz with arrays u (d,), v (d,), X (n, d), y (n,); default: train a DLN")
    p.add_argument("--rho", type=Num(0, lo_open=True), default=0.01, help="sharpness radius ρ > 0 (default 0.01)")
    p.add_argument("--m", type=Int(1, MAX_POINTS), default=None, help="m-sharpness batch size in [1, n] (default n)")
    _budget_arguments(p, 2000, 100, 10)


def run_dln(a, session) -> Result:
    from .dln import check_uvxy, measure_dln, whitened_problem

    if a.weights is not None:
        z = load_npz_arrays(a.weights, "weights", required=("u", "v", "X", "y"))
        u, v, X, y = check_uvxy(z["u"], z["v"], z["X"], z["y"])
        source = str(a.weights)
    else:
        problem, diverged_at = whitened_problem(a.seed)
        if problem is None:
            raise RunError(f"the DLN training of the default problem diverged at step {diverged_at}")
        u, v, X, y = problem
        source = "trained"
    if a.m is not None and a.m > X.shape[0]:
        raise ConfigError("m", f"must be an integer in [1, n = {X.shape[0]}]", a.m)
    res = measure_dln(u, v, X, y, rho=a.rho, m=a.m, n_samples=a.samples, n_iter=a.iters, n_restarts=a.restarts,
                      seed=a.seed)
    config = {"model": "dln", "weights": source, "rho": a.rho, "m": a.m or X.shape[0], "samples": a.samples,
              "iters": a.iters, "restarts": a.restarts, "seed": a.seed, "n": X.shape[0], "d": X.shape[1],
              "normalization": "L = 1/(4n) |X(u*v) - y|^2, c = [sqrt|u/v|, sqrt|v/u|]"}
    return Result(res, config, human=lambda: _print_values(res))


# ----------------------------------------------------------------------------------------------------
# linear

def linear_arguments(p) -> None:
    p.add_argument("--n", type=Int(2, MAX_POINTS, "memory"), default=50, help="training points (default 50)")
    p.add_argument("--d", type=Int(1, MAX_DIM, "memory"), default=100, help="input dimension (default 100)")
    p.add_argument("--classes", type=Int(1, MAX_DIM), default=1,
                   help="K in [1, d]: K = 1: binary logistic, one logit (default); K >= 2: softmax on K logits "
                        "(K = 2: two Gaussians; K >= 3: K Gaussians)")
    p.add_argument("--rho", type=Num(0, lo_open=True), default=0.05, help="sharpness radius > 0 (default 0.05)")
    p.add_argument("--m", type=Int(1, MAX_POINTS), default=None, help="m-sharpness batch size in [1, n] (default n)")
    p.add_argument("--p", type=Choice("2", "inf"), default="2",
                   help="perturbation norm for the worst case: 2 or inf (default 2)")
    p.add_argument("--scale", type=Num(0, lo_open=True), default=1.0, help="multiply the trained weights by S > 0")
    p.add_argument("--logit-norm", action="store_true", help="logit normalization eq. 7.5 (needs --classes >= 2)")
    p.add_argument("--steps", type=Int(0, 10 ** 7, "time"), default=500,
                   help="logistic-regression GD steps (default 500)")
    _budget_arguments(p, 2000, 50, 3)


def _test_metrics(w, d: int, K: int, logit_norm: bool, seed: int) -> dict:
    """Error and loss on 2000 fresh points of the same mixture (split "test")."""
    from .linear import gaussian_mixture, linear_loss

    Xte, yte = gaussian_mixture(2000, d, K, seed=seed, split="test")
    z = Xte @ w if K == 1 else (w.reshape(K, -1) @ Xte.T)
    err = np.mean(np.sign(z) != yte) if K == 1 else np.mean(np.argmax(z, axis=0) != yte)
    return {"test_error": float(err), "test_loss": float(linear_loss(w, Xte, yte, K, logit_norm)[0])}


def run_linear(a, session) -> Result:
    from .linear import gaussian_mixture, measure_linear, train_linear

    rows = max(a.n, 2000)                # the training set and the 2000 test points
    if rows * a.d > MAX_ENTRIES:
        raise ConfigError("d", f"must be <= {MAX_ENTRIES // rows} at n = {a.n} (X holds max(n, 2000) x d entries "
                               "of 8 bytes)", a.d)
    if a.m is not None and a.m > a.n:
        raise ConfigError("m", f"must be an integer in [1, n = {a.n}]", a.m)
    if a.logit_norm and a.classes < 2:
        raise ConfigError("logit_norm", "needs --classes >= 2 (eq. 7.5 normalizes over K logits)")
    X, y = gaussian_mixture(a.n, a.d, a.classes, seed=a.seed)
    w = train_linear(X, y, a.classes, steps=a.steps)
    if not np.all(np.isfinite(w)):
        raise RunError("the logistic-regression training diverged (non-finite weights)")
    w = a.scale * w
    res = measure_linear(w, X, y, a.classes, rho=a.rho, m=a.m, normalize=a.logit_norm, p=a.p, n_samples=a.samples,
                         n_iter=a.iters, n_restarts=a.restarts, seed=a.seed)
    res |= _test_metrics(w, a.d, a.classes, a.logit_norm, a.seed)
    config = {"model": "linear", "n": a.n, "d": a.d, "classes": a.classes, "rho": a.rho, "m": a.m or a.n, "p": a.p,
              "scale": a.scale, "logit_norm": a.logit_norm, "steps": a.steps, "samples": a.samples, "iters": a.iters,
              "restarts": a.restarts, "seed": a.seed,
              "data": "Gaussian mixture x = mu_y + N(0, I), |mu| = 3 (see toymodels.sharpness.linear)",
              "definition": "S_avg = E L(w + c*g) - L(w), g ~ N(0, rho^2 I); S_max = max_{|g|_p <= rho}; "
                            "standard c = 1, adaptive c = |w|; mean loss over each batch of m points"}
    return Result(res, config, human=lambda: _print_values(res))


# ----------------------------------------------------------------------------------------------------
# one-sharpness

def one_sharpness_arguments(p) -> None:
    p.add_argument("--n", type=Int(1, 10_000, "an SVD of X"), default=10, help="training points (default 10)")
    p.add_argument("--d", type=Int(2, 100_000, "an SVD of X"), default=30, help="dimension d > n (default 30)")
    p.add_argument("--k", type=Int(2, 1000, "time"), default=5, help="number of interpolating solutions >= 2 (default 5)")
    p.add_argument("--rho", type=Num(0, lo_open=True), default=0.1, help="radius > 0 (default 0.1)")
    p.add_argument("--samples", type=Int(2, MAX_SAMPLES, "time: one loss evaluation a draw"), default=4000,
                   help="Monte-Carlo draws per point (default 4000)")


def _print_one_sharpness(res: dict) -> None:
    print(f"closed form at interpolation rho^2 mean|x|^2 = {res['closed_form_at_interpolation']:.6g}")
    print(f"{'|w|':>8s} {'test':>9s} {'closed':>10s} {'pgd':>10s} {'avg(MC)':>10s} {'adaptive':>10s}")
    for r in res["solutions"]:
        print(f"{r['w_norm']:8.3f} {r['test_loss']:9.4f} {r['one_sharpness_closed']:10.6f} "
              f"{r['one_sharpness_pgd']:10.6f} {r['avg_one_sharpness']:10.6f} {r['adaptive_avg_one_sharpness']:10.6f}")


def run_one_sharpness(a, session) -> Result:
    from .one_sharpness import demo_equal_one_sharpness

    if a.n * a.d > MAX_ENTRIES:
        raise ConfigError("d", f"must be <= {MAX_ENTRIES // a.n} at n = {a.n} (memory)", a.d)
    res = demo_equal_one_sharpness(a.n, a.d, a.k, a.rho, a.samples, a.seed)
    config = {"n": a.n, "d": a.d, "k": a.k, "rho": a.rho, "samples": a.samples, "seed": a.seed,
              "loss": "per point (<w, x_i> - y_i)^2; 1-sharpness = mean_i max_{|d|_2<=rho} l_i(w+d) - l_i(w)"}
    return Result(res, config, human=lambda: _print_one_sharpness(res))


CLI = Cli(PROG, __doc__, [
    Command("dln", "adaptive sharpness of a diagonal linear network at a minimum (Sec. 7.6.2)", dln_arguments,
            run_dln, description=__doc__.split("\n\n")[1],
            epilog="Example: python -m toymodels.sharpness dln --rho 0.01 --json",
            flags={"w": "--weights"},
            smoke=("--samples", "200", "--iters", "10", "--restarts", "1")),
    Command("linear", "standard and adaptive sharpness of a trained, rescaled linear classifier (Fig. 7.1)",
            linear_arguments, run_linear, description=__doc__.split("\n\n")[2],
            epilog="Example: python -m toymodels.sharpness linear --scale 4 --json",
            flags={"K": "--classes", "normalize": "--logit-norm", "w": "--scale"},
            smoke=("--n", "20", "--d", "10", "--samples", "200", "--iters", "10", "--restarts", "1")),
    Command("one-sharpness", "Sec. 5.4: all interpolating least-squares solutions are equally 1-sharp",
            one_sharpness_arguments, run_one_sharpness, description=__doc__.split("\n\n")[3],
            epilog="Example: python -m toymodels.sharpness one-sharpness --json",
            smoke=("--n", "5", "--d", "12", "--k", "3", "--samples", "300")),
])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
