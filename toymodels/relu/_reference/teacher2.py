"""Plain-numpy references of :mod:`toymodels.relu._kernels.teacher2` (same names, parameters and
semantics): vectorized over examples and neurons, the test oracle of the numba kernels."""
from __future__ import annotations

import numpy as np

from .._kernels import teacher2 as _k


def predict(X, W, a, out):
    out[:] = np.maximum(X @ W.T, 0.0) @ a


def loss(X, y, W, a):
    r = np.maximum(X @ W.T, 0.0) @ a - y
    return 0.5 * float(r @ r) / X.shape[0]


def jacobian(X, W, a, J):
    z = X @ W.T
    on = z > 0.0
    n = X.shape[0]
    J[:] = np.concatenate([(np.where(on, a, 0.0)[:, :, None] * X[:, None, :]).reshape(n, -1),
                           np.where(on, z, 0.0)], axis=1)


def sgd(X, y, W, a, lr, idx, rec_at, rec_W, rec_a, rec_loss):
    k, K = 0, rec_at.shape[0]
    while k < K and rec_at[k] == 0:
        rec_W[k], rec_a[k] = W, a
        rec_loss[k] = loss(X, y, W, a)
        k += 1
    for t in range(lr.shape[0]):
        xi = X[idx[t]]
        z = W @ xi
        on = z > 0.0
        g = lr[t] * (float(a[on] @ z[on]) - y[idx[t]])
        if not np.isfinite(g):
            return t
        a_old = a.copy()
        a -= np.where(on, g * z, 0.0)
        W -= np.where(on, g * a_old, 0.0)[:, None] * xi
        while k < K and rec_at[k] == t + 1:
            rec_W[k], rec_a[k] = W, a
            rec_loss[k] = loss(X, y, W, a)
            if not np.isfinite(rec_loss[k]):
                return t
            k += 1
    return -1


# ---------------------------------------------------------------- registry cases
def _cases():
    import sys

    from ..teacher2 import Teacher2Config, teacher2_data, init_student2
    from ._cases import teacher_cases

    return teacher_cases("teacher2", _k, sys.modules[__name__], Teacher2Config, teacher2_data, init_student2, sgd_lr=3e-4)


CASES = _cases()
