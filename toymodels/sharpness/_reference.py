"""Plain-numpy references of :mod:`toymodels.sharpness._kernels` (same names, arguments and
semantics), vectorized over the whole stack of weights: the test oracle and the benchmark baseline."""
from __future__ import annotations

import numpy as np

from ..kernels import KernelCase
from ..rng import stream
from . import _kernels


def linear_loss_batch(W, X, y, K, normalize, out):
    """Mean loss of the linear classifier with weights ``W[s]`` for each s (see the kernel)."""
    k = W.shape[0]
    n, d = X.shape
    Z = W.reshape(k, K, d) @ X.T                      # (k, K, n) logits
    if K == 1:
        out[:] = np.mean(np.logaddexp(0.0, -y[None, :] * Z[:, 0, :]), axis=1)
        return
    if normalize:
        Z = Z / Z.std(axis=1, keepdims=True)
    zmax = Z.max(axis=1, keepdims=True)
    lse = zmax[:, 0, :] + np.log(np.exp(Z - zmax).sum(axis=1))
    zy = np.take_along_axis(Z, np.broadcast_to(y[None, None, :], (k, 1, n)), axis=1)[:, 0, :]
    out[:] = np.mean(lse - zy, axis=1)


def relu_loss_batch(T, x, y, out):
    """L(θ) = 1/(2n) Σᵢ (Σⱼ aⱼ ReLU(wⱼ xᵢ + bⱼ) − yᵢ)² for each row θ = (w, b, a) of ``T``."""
    m = T.shape[1] // 3
    w, b, a = T[:, :m], T[:, m:2 * m], T[:, 2 * m:]
    H = np.maximum(w[:, None, :] * x[None, :, None] + b[:, None, :], 0.0)   # (k, n, m)
    r = np.einsum("knm,km->kn", H, a) - y[None, :]
    out[:] = np.sum(r * r, axis=1) / (2.0 * x.shape[0])


# ----------------------------------------------------------------------------------------------------
# the registry (the bench workloads of toymodels.bench.sharpness time the same kernels at Fig. 7.1 sizes)

def _linear_args(size: str, K: int, normalize: bool) -> tuple:
    """k perturbed weight stacks w + 0.3·N(0, 1) of a K-logit classifier on a Gaussian mixture:
    small: k = 16, n = 15, d = 6; bench: k = 4096, n = 50, d = 100 (K = 1) or 20 (K ≥ 2)."""
    from .linear import gaussian_mixture

    k, n, d = (16, 15, 6) if size == "small" else (4096, 50, 100 if K == 1 else 20)
    X, y = gaussian_mixture(n, d, K=K, seed=0)
    W = stream(0, "sharpness/kernel-case").standard_normal((k, K * d))
    return np.ascontiguousarray(W), X, y, K, normalize, np.empty(k)


def _relu_args(size: str) -> tuple:
    """k parameter vectors (w, b, a) of a width-m ReLU net ~ N(0, 1) on n points of [−1.5, 1.5]:
    small: k = 16, m = 5, n = 11; bench: k = 4096, m = 100, n = 12."""
    k, m, n = (16, 5, 11) if size == "small" else (4096, 100, 12)
    rng = stream(0, "sharpness/kernel-case")
    return rng.standard_normal((k, 3 * m)), np.linspace(-1.5, 1.5, n), rng.standard_normal(n), np.empty(k)


_WHY_LINEAR = ("the kernel reassociates its dot products and evaluates log(1 + e^-m) by log1p/exp; the "
               "reference uses BLAS and logaddexp: agreement to rounding")
CASES = [
    KernelCase("sharpness.linear_loss_batch.binary", _kernels.linear_loss_batch, linear_loss_batch,
               lambda size: _linear_args(size, 1, False), rtol=1e-12, atol=1e-14, why=_WHY_LINEAR),
    KernelCase("sharpness.linear_loss_batch.softmax", _kernels.linear_loss_batch, linear_loss_batch,
               lambda size: _linear_args(size, 3, False), rtol=1e-12, atol=1e-14, why=_WHY_LINEAR),
    KernelCase("sharpness.linear_loss_batch.logit-norm", _kernels.linear_loss_batch, linear_loss_batch,
               lambda size: _linear_args(size, 4, True), rtol=1e-12, atol=1e-14, why=_WHY_LINEAR),
    KernelCase("sharpness.relu_loss_batch", _kernels.relu_loss_batch, relu_loss_batch, _relu_args,
               rtol=1e-12, atol=1e-14, why="the reference sums with einsum (another order): agreement to rounding"),
]
