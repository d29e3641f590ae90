"""Stochastic n-SAM (eq. 5.21) on x² + 3 sin² x (d = 2, n = 20, b = 4): :func:`toymodels.sam_convergence._kernels.sam_separable`
vs :func:`toymodels.sam_convergence.run.sam_stochastic_reference`.

``sam_convergence_nsam_2e4``: one run of 2·10⁴ steps (``--quick``: 2·10³) with Thm 5.10.5's PL step sizes, batches
pre-drawn with seed 0 (the same for both backends, which must agree to 1e-12). Target: numba ≥ 20× the lean numpy loop
(holds: measured 99–330×; 400–1400× the reference).

Baselines (issue 17): ``numpy_s`` is a lean numpy loop of the same recursion on the same batches
(:func:`lean_sam_separable`, :func:`lean_sam_logistic`: batch terms gathered for all steps at once, only
the two gradient evaluations of a SAM step inside the Python loop, the per-step loss and ‖∇L‖² computed
afterwards from the stored iterates, vectorized over steps; :func:`lean_gd_sam`: one forward/backward
pass at θ and one at θ + ε per step, where the reference makes three); ``reference_s`` is the readable
reference (:func:`~toymodels.sam_convergence.run.sam_stochastic_reference`, through the problem's methods,
or :func:`toymodels.relu._reference.net1d.gd_sam`). Each lean loop agrees with its reference to rounding
(tests/test_bench_lean.py).

Physical limits (one core: 76 GFLOP/s; all state in L1, no DRAM traffic per step, so every workload
here is latency-bound, i.e. far from both floors):

* ``sam_convergence_nsam_2e4``: d = 2, b = 4: two gradients (2 sin + ~6 flops per coordinate), the batch
  means (2·b·d) and the loss/‖∇L‖² of the iterate (~10 per coordinate): ≈ 60 flops per step, sin counted
  as ~20 flops → ≈ 140.
* ``sam_convergence_logistic_2e4``: n = 16, d = 3, b = 4: two batch gradients (b exp + 4bd flops each),
  the full loss and gradient (n exp, n log1p + 4nd): ≈ 24 exp/log (~20 flops each) + 300 ≈ 800 flops.
* ``relu_sam_fullbatch_2e4``: n = 12, m = 100: two forward/backward passes of ≈ 10nm flops: ≈ 24 000.
"""
from __future__ import annotations

import math

import numpy as np

from ..sam_convergence import bounds
from ..sam_convergence._kernels import sam_separable
from ..sam_convergence.problems import sine
from ..sam_convergence.run import draw_batches, sam_stochastic_reference
from ..rng import stream
from . import BenchContext, audit, best_of, first_call, workload


def _args(T: int):
    p = sine(d=2)
    g, r = bounds.thm5105_pl_steps(p.beta, p.mu, T)
    I, J = draw_batches(stream(0), p.n, 4, T, same=False)
    return p, np.full(2, 2.0), g, r, I, J


def lean_sam_separable(p, w0, gammas, rhos, I, J):
    """:func:`~toymodels.sam_convergence.run.sam_stochastic_reference` on a
    :class:`~toymodels.sam_convergence.problems.Separable` problem (same arguments and outputs, equal to
    rounding) as a lean numpy loop: the batch means of C for all steps at once, the loop updating w only,
    the losses and ‖∇L‖² of the stored iterates afterwards."""
    a, s3 = p.a, 3 * p.s
    cI, cJ = p.C[I].mean(1), p.C[J].mean(1)
    T = len(gammas)
    W = np.empty((T + 1, a.size))
    w = np.array(w0, float)
    g = np.empty_like(w)
    rl, gl = rhos.tolist(), gammas.tolist()
    for t in range(T):
        W[t] = w
        np.sin(2 * w, out=g)
        g *= s3
        g += a * w
        g -= cJ[t]
        wh = w + rl[t] * g
        np.sin(2 * wh, out=g)
        g *= s3
        g += a * wh
        g -= cI[t]
        w -= gl[t] * g
    W[T] = w
    G = a * W + s3 * np.sin(2 * W)
    return np.sum(a * W * W / 2 + 3 * p.s * np.sin(W) ** 2, axis=-1), np.einsum("td,td->t", G, G)


def lean_sam_logistic(p, w0, gammas, rhos, I, J):
    """:func:`~toymodels.sam_convergence.run.sam_stochastic_reference` on a
    :class:`~toymodels.sam_convergence.problems.Logistic` problem (same arguments and outputs, equal to
    rounding) as a lean numpy loop: vᵢ = yᵢxᵢ gathered per batch for all steps at once, the loop making the
    two batch gradients λw − (1/b) Σ vᵢ σ(−vᵢᵀw) only, the losses and ‖∇L‖² of the stored iterates
    afterwards (σ(−m) = 1/(1 + eᵐ), which is 0 where eᵐ overflows)."""
    lam = float(p.lam)
    V = p.X * p.y[:, None]
    VI, VJ = V[I], V[J]
    T, b = I.shape
    W = np.empty((T + 1, V.shape[1]))
    w = np.array(w0, float)
    rl, gl = rhos.tolist(), gammas.tolist()
    with np.errstate(over="ignore"):
        for t in range(T):
            W[t] = w
            s = 1.0 / (1.0 + np.exp(VJ[t] @ w))
            wh = w + rl[t] * (lam * w - (s @ VJ[t]) / b)
            s = 1.0 / (1.0 + np.exp(VI[t] @ wh))
            w = w - gl[t] * (lam * wh - (s @ VI[t]) / b)
        W[T] = w
        M = W @ V.T
        S = 1.0 / (1.0 + np.exp(M))
    n = V.shape[0]
    losses = np.mean(np.logaddexp(0.0, -M), axis=1) + lam * np.einsum("td,td->t", W, W) / 2
    G = lam * W - (S @ V) / n
    return losses, np.einsum("td,td->t", G, G)


def _lean_loss_grad(x, y, w, b, a, Z, H, R):
    """L(θ) = (1/2n)‖f(x) − y‖² and its gradient (g_w, g_b, g_a) of the two-layer ReLU net, with the
    (n, m) buffers Z, H, R (ReLU'(0) := 0)."""
    n = x.shape[0]
    np.multiply(x[:, None], w, out=Z)
    Z += b
    np.maximum(Z, 0.0, out=H)
    r = (H @ a - y) / n
    np.multiply(r[:, None], a, out=R)
    R *= Z > 0.0
    return 0.5 * n * float(r @ r), x @ R, R.sum(0), r @ H


def lean_gd_sam(x, y, w, b, a, lrs, rho, stop_loss, loss_every, loss_out):
    """:func:`toymodels.relu._reference.net1d.gd_sam` (same arguments, outputs and return value, equal
    to rounding) as a lean numpy loop: the loss at θ comes from the same pass as ∇L(θ) (two passes per
    step instead of the reference's three) and the (n, m) temporaries are preallocated."""
    n, m = x.shape[0], w.shape[0]
    Z, H, R = np.empty((n, m)), np.empty((n, m)), np.empty((n, m))
    lr = lrs.tolist()
    for t in range(len(lr)):
        L, gw, gb, ga = _lean_loss_grad(x, y, w, b, a, Z, H, R)
        if t % loss_every == 0:
            loss_out[t // loss_every] = L
        nrm = math.sqrt(gw @ gw + gb @ gb + ga @ ga)
        s = rho / nrm if (rho > 0 and nrm > 0) else 0.0
        Lp, pw, pb, pa = _lean_loss_grad(x, y, w + s * gw, b + s * gb, a + s * ga, Z, H, R)
        if not (math.isfinite(L) and math.isfinite(Lp)):
            return -(t + 1)
        if n * Lp <= stop_loss:
            return t
        w -= lr[t] * pw
        b -= lr[t] * pb
        a -= lr[t] * pa
    return len(lr)


@workload("sam_convergence_nsam_2e4", target=20.0, description="n-SAM on x^2+3sin^2 x, 2*10^4 steps, b=4")
def sam_convergence_nsam(ctx: BenchContext) -> dict:
    T = ctx.steps(20_000)

    def kargs(T):
        p, w0, g, r, I, J = _args(T)
        return (p.a, p.s, p.C, w0, g, r, I, J, np.empty(T + 1), np.empty(T + 1))

    compile_s, cached = first_call("sam_convergence.sam_separable", sam_separable, kargs(2))
    numba_s, nrep, a_nb = best_of(sam_separable, lambda: kargs(T), ctx.repeats)
    lean_s, lrep, _ = best_of(lean_sam_separable, lambda: _args(T), ctx.repeats, budget_s=ctx.numpy_budget_s)
    ref_s, prep, _ = best_of(sam_stochastic_reference, lambda: _args(T), ctx.repeats, budget_s=ctx.numpy_budget_s)
    ref = sam_stochastic_reference(*_args(T))
    lean = lean_sam_separable(*_args(T))
    diff = float(max(np.max(np.abs(a_nb[-2] - ref[0])), np.max(np.abs(a_nb[-1] - ref[1]))))
    ldiff = float(max(np.max(np.abs(lean[0] - ref[0])), np.max(np.abs(lean[1] - ref[1]))))
    res = {"numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached, "numpy_repeats": lrep,
           "reference_repeats": prep, "numba_repeats": nrep, "steps": T, "d": 2, "b": 4, "max_abs_diff": diff,
           "lean_max_abs_diff": ldiff}
    return audit(res, "lean numpy", lean_s, ref_s, 140, 0.0, T, "latency-bound: d = 2, all state in registers")


# ---------------------------------------------------------------------------------------------------------
# ``sam_convergence_logistic_2e4``: stochastic n-SAM on regularized logistic regression (n = 16, d = 3,
# λ = 0.1, b = 4; :func:`toymodels.sam_convergence.problems.logistic`), 2·10⁴ steps with Thm 5.10.5's PL step
# sizes: :func:`toymodels.sam_convergence._kernels.sam_logistic` vs the generic numpy reference. Target ≥ 10× the lean loop
# (issue 17: it was 20× against the reference; measured 10–23× the lean loop, 30–70× the reference).
#
# ``relu_sam_fullbatch_2e4``: Fig. 5.7's full-batch normalized SAM (ρ = 0.3) on the two-layer ReLU net
# (100 units, Blanc et al.'s 12 points), 2·10⁴ steps, no early stop:
# :func:`toymodels.relu._kernels.net1d.gd_sam` vs :func:`toymodels.relu._reference.net1d.gd_sam`. Target ≥ 10×.

def _logistic_args(T: int):
    from ..sam_convergence.problems import logistic

    p = logistic()
    g, r = bounds.thm5105_pl_steps(p.beta, p.mu, T)
    I, J = draw_batches(stream(0), p.n, 4, T, same=False)
    return p, np.zeros(p.X.shape[1]), g, r, I, J


@workload("sam_convergence_logistic_2e4", target=10.0,
          description="n-SAM on logistic regression, 2*10^4 steps, b=4")
def sam_convergence_logistic(ctx: BenchContext) -> dict:
    from ..sam_convergence._kernels import sam_logistic

    T = ctx.steps(20_000)

    def kargs(T):
        p, w0, g, r, I, J = _logistic_args(T)
        return (p.X, p.y, float(p.lam), w0, g, r, np.ascontiguousarray(I, np.int64),
                np.ascontiguousarray(J, np.int64), np.empty(T + 1), np.empty(T + 1))

    compile_s, cached = first_call("sam_convergence.sam_logistic", sam_logistic, kargs(2))
    numba_s, nrep, a_nb = best_of(sam_logistic, lambda: kargs(T), ctx.repeats)
    lean_s, lrep, _ = best_of(lean_sam_logistic, lambda: _logistic_args(T), ctx.repeats,
                              budget_s=ctx.numpy_budget_s)
    ref_s, prep, _ = best_of(sam_stochastic_reference, lambda: _logistic_args(T), ctx.repeats,
                             budget_s=ctx.numpy_budget_s)
    ref = sam_stochastic_reference(*_logistic_args(T))
    lean = lean_sam_logistic(*_logistic_args(T))
    diff = float(max(np.max(np.abs(a_nb[-2] - ref[0])), np.max(np.abs(a_nb[-1] - ref[1]))))
    ldiff = float(max(np.max(np.abs(lean[0] - ref[0])), np.max(np.abs(lean[1] - ref[1]))))
    res = {"numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached, "numpy_repeats": lrep,
           "reference_repeats": prep, "numba_repeats": nrep, "steps": T, "n": 16, "d": 3, "b": 4,
           "max_abs_diff": diff, "lean_max_abs_diff": ldiff}
    return audit(res, "lean numpy", lean_s, ref_s, 800, 0.0, T, "latency-bound: n = 16, d = 3, all state in L1")


def _relu_sam_args(T: int):
    from ..relu.model import blanc_data, init_params

    x, y = blanc_data()
    w, b, a = (np.ascontiguousarray(v) for v in init_params(100, 1.0, 1.0, 0))
    return (x, y, w, b, a, np.full(T, 6e-4), 0.3, 0.0, 1000, np.empty(T // 1000 + 1))


@workload("relu_sam_fullbatch_2e4", target=10.0, description="Fig. 5.7 normalized SAM, ReLU net m=100, 2*10^4 steps")
def relu_sam(ctx: BenchContext) -> dict:
    from ..relu._kernels.net1d import gd_sam
    from ..relu._reference.net1d import gd_sam as gd_sam_reference

    T = ctx.steps(20_000)
    compile_s, cached = first_call("relu.gd_sam", gd_sam, _relu_sam_args(2))
    numba_s, nrep, a_nb = best_of(gd_sam, lambda: _relu_sam_args(T), ctx.repeats)
    lean_s, lrep, a_ln = best_of(lean_gd_sam, lambda: _relu_sam_args(T), ctx.repeats, budget_s=ctx.numpy_budget_s)
    ref_s, prep, a_np = best_of(gd_sam_reference, lambda: _relu_sam_args(T), ctx.repeats,
                                budget_s=ctx.numpy_budget_s)
    diff = float(max(np.max(np.abs(a_nb[i] - a_np[i])) for i in (2, 3, 4)))
    ldiff = float(max(np.max(np.abs(a_ln[i] - a_np[i])) for i in (2, 3, 4)))
    res = {"numba_s": numba_s, "compile_s": compile_s, "compile_cached": cached, "numpy_repeats": lrep,
           "reference_repeats": prep, "numba_repeats": nrep, "steps": T, "m": 100, "n": 12, "max_abs_diff": diff,
           "lean_max_abs_diff": ldiff}
    return audit(res, "lean numpy", lean_s, ref_s, 20 * 12 * 100, 0.0, T,
                 "latency-bound: two passes over a 12 x 100 hidden layer per step, all in L1")
