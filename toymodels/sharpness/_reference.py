"""Plain-numpy references of :mod:`toymodels.sharpness._kernels` (same arguments, same semantics),
vectorized over the whole stack of weights: the test oracle and the benchmark baseline."""
from __future__ import annotations

import numpy as np


def linear_loss_batch(W, X, y, K, normalize, out):
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
    m = T.shape[1] // 3
    w, b, a = T[:, :m], T[:, m:2 * m], T[:, 2 * m:]
    H = np.maximum(w[:, None, :] * x[None, :, None] + b[:, None, :], 0.0)   # (k, n, m)
    r = np.einsum("knm,km->kn", H, a) - y[None, :]
    out[:] = np.sum(r * r, axis=1) / (2.0 * x.shape[0])
