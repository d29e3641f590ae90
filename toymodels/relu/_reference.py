"""Plain-numpy references of :mod:`toymodels.relu._kernels` (same signatures and semantics).

Vectorized over neurons per step (the SGD recursion itself is sequential), never deliberately slow:
the test oracle of the numba kernels and the baseline of ``python -m toymodels.bench``.
"""
from __future__ import annotations

import numpy as np


def predict_reference(x, w, b, a, out):
    out[:] = np.maximum(np.outer(x, w) + b, 0.0) @ a


def loss_reference(x, y, w, b, a):
    r = np.maximum(np.outer(x, w) + b, 0.0) @ a - y
    return 0.5 * float(r @ r) / x.shape[0]


def jacobian_reference(x, w, b, a, J):
    z = np.outer(x, w) + b
    on = z > 0.0
    m = w.shape[0]
    J[:, :m] = np.where(on, a * x[:, None], 0.0)
    J[:, m:2 * m] = np.where(on, a, 0.0)
    J[:, 2 * m:] = np.where(on, z, 0.0)


def sgd_reference(x, y, w, b, a, lr, idx, rec_at, rec_w, rec_b, rec_a, rec_loss):
    k = 0
    K = rec_at.shape[0]
    while k < K and rec_at[k] == 0:
        rec_w[k], rec_b[k], rec_a[k] = w, b, a
        rec_loss[k] = loss_reference(x, y, w, b, a)
        k += 1
    for t in range(lr.shape[0]):
        i = idx[t]
        xi = x[i]
        z = w * xi + b
        on = z > 0.0
        g = lr[t] * (float(a[on] @ z[on]) - y[i])
        if not np.isfinite(g):
            return t
        gz = np.where(on, g, 0.0)
        a_old = a.copy()
        a -= gz * np.where(on, z, 0.0)
        w -= gz * a_old * xi
        b -= gz * a_old
        while k < K and rec_at[k] == t + 1:
            rec_w[k], rec_b[k], rec_a[k] = w, b, a
            rec_loss[k] = loss_reference(x, y, w, b, a)
            if not np.isfinite(rec_loss[k]):
                return t
            k += 1
    return -1


def jacobian_ranks_reference(x, rec_w, rec_b, rec_a, rel_tol, ranks, svals):
    n, m = x.shape[0], rec_w.shape[1]
    J = np.empty((n, 3 * m))
    for k in range(rec_w.shape[0]):
        jacobian_reference(x, rec_w[k], rec_b[k], rec_a[k], J)
        s = np.linalg.svd(J, compute_uv=False)
        svals[k, :s.shape[0]] = s
        ranks[k] = int(np.sum(s > rel_tol * s[0])) if s[0] > 0 else 0
