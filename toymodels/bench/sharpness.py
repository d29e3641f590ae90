r"""Sharpness benchmark workloads: the batched-loss kernels of :mod:`toymodels.sharpness._kernels`
(the hot loop of the Monte-Carlo average-case sharpness) vs :mod:`toymodels.sharpness._reference`.

Fixed workloads (one call evaluates L at k perturbed weight vectors w + c⊙γ, c = |w|, ρ = 0.05, γ drawn
once with seed 0; ``--quick`` divides k by 10; targets are numba-vs-numpy speed-ups):

=================================  =====================================================  ==========
name                               model                                                  target
=================================  =====================================================  ==========
sharpness_linear_k4096             binary logistic, Fig. 7.1 data (n = 50, d = 100)       none *
sharpness_softmax_norm_k4096       10-class softmax + logit normalization eq. 7.5, n = 50,
                                   d = 20 (p = 200)                                       ≥ 1×
sharpness_relu_m100_k4096          two-layer ReLU net, Blanc et al.'s 12 points, m = 100  ≥ 3×
=================================  =====================================================  ==========

\* The numpy reference is vectorized over the whole stack (one BLAS matmul for all logits): for the
binary linear model that matmul is all the work and BLAS beats the kernel's vectorized dot loop
(measured ≈ 0.3×; numba's own np.dot was slower still), so ``linear_loss(backend="auto")`` uses the
reference for K = 1 and this workload has no target. The kernel wins where numpy materializes
(k, K, n) or (k, n, m) intermediates. ``max_abs_diff`` compares the two outputs.
"""
from __future__ import annotations

import numpy as np

from ..sharpness import _kernels, _reference
from ..sharpness.linear import gaussian_mixture, train_linear
from ..rng import stream
from . import BenchContext, first_call, timed, workload

K_FULL = 4096
RHO = 0.05


def _stack(w, k):
    g = stream(0).standard_normal((k, w.size))
    return np.ascontiguousarray(w[None, :] + RHO * np.abs(w)[None, :] * g)


def _run(ctx, kern, ref, data, w, extra):
    k = ctx.steps(K_FULL)
    W = _stack(w, k)
    tiny = (W[:2].copy(), *data, *extra, np.empty(2))
    compile_s, cached = first_call(f"sharpness.{kern.__name__}", kern, tiny)
    nb = timed(kern, lambda: (W, *data, *extra, np.empty(k)), ctx.repeats)
    npt = timed(ref, lambda: (W, *data, *extra, np.empty(k)), ctx.repeats, budget_s=ctx.numpy_budget_s)
    diff = float(np.max(np.abs(nb.args[-1] - npt.args[-1])))
    return {"numpy_s": npt.best_s, "numba_s": nb.best_s, "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": npt.repeats, "numba_repeats": nb.repeats, "k": k, "steps": k, "p": w.size,
            "n": int(data[0].shape[0]), "d": int(data[0].shape[1]) if data[0].ndim == 2 else 1,
            "us_per_eval_numba": 1e6 * nb.best_s / k, "us_per_eval_numpy": 1e6 * npt.best_s / k,
            "max_abs_diff": diff}


@workload("sharpness_linear_k4096", target=None,
          description="batched binary logistic loss, n=50, d=100, 4096 perturbed weights")
def linear_binary(ctx: BenchContext) -> dict:
    X, y = gaussian_mixture(50, 100, K=1, seed=0)
    w = train_linear(X, y, 1, steps=500)
    return _run(ctx, _kernels.linear_loss_batch, _reference.linear_loss_batch, (X, y), w, (1, False))


@workload("sharpness_softmax_norm_k4096", target=1.0,
          description="batched 10-class softmax loss with logit normalization, n=50, d=20, 4096 weights")
def softmax_norm(ctx: BenchContext) -> dict:
    X, y = gaussian_mixture(50, 20, K=10, seed=0)
    w = train_linear(X, y, 10, steps=200)
    return _run(ctx, _kernels.linear_loss_batch, _reference.linear_loss_batch, (X, y), w, (10, True))


@workload("sharpness_relu_m100_k4096", target=3.0,
          description="batched two-layer ReLU loss, 12 points, m=100, 4096 perturbed weights")
def relu(ctx: BenchContext) -> dict:
    from ..relu.model import blanc_data, init_params

    x, y = blanc_data()
    th = np.concatenate(init_params(100, 1.0, 0.05, 0))
    return _run(ctx, _kernels.relu_loss_batch, _reference.relu_loss_batch, (x, y), th, ())
