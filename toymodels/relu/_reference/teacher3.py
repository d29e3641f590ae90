"""Plain-numpy references of :mod:`toymodels.relu._kernels.teacher3` (same names, parameters and
semantics): vectorized over examples and neurons, the test oracle of the numba kernels."""
from __future__ import annotations

import numpy as np

from .._kernels import teacher3 as _k


def _layers(X, W1, W2):
    h1 = X @ W1.T
    r1 = np.maximum(h1, 0.0)
    h2 = r1 @ W2.T
    return h1, r1, h2, np.maximum(h2, 0.0)


def predict(X, W1, W2, a, out):
    out[:] = _layers(X, W1, W2)[3] @ a


def loss(X, y, W1, W2, a):
    r = _layers(X, W1, W2)[3] @ a - y
    return 0.5 * float(r @ r) / X.shape[0]


def jacobian(X, W1, W2, a, J):
    h1, r1, h2, r2 = _layers(X, W1, W2)
    n = X.shape[0]
    g2 = np.where(h2 > 0.0, a, 0.0)                     # (n, m₂)
    g1 = np.where(h1 > 0.0, g2 @ W2, 0.0)               # (n, m₁)
    J[:] = np.concatenate([(g1[:, :, None] * X[:, None, :]).reshape(n, -1),
                           (g2[:, :, None] * r1[:, None, :]).reshape(n, -1), r2], axis=1)


def sgd(X, y, W1, W2, a, lr, idx, rec_at, rec_W1, rec_W2, rec_a, rec_loss):
    k, K = 0, rec_at.shape[0]
    while k < K and rec_at[k] == 0:
        rec_W1[k], rec_W2[k], rec_a[k] = W1, W2, a
        rec_loss[k] = loss(X, y, W1, W2, a)
        k += 1
    for t in range(lr.shape[0]):
        xi = X[idx[t]]
        h1 = W1 @ xi
        r1 = np.maximum(h1, 0.0)
        h2 = W2 @ r1
        r2 = np.maximum(h2, 0.0)
        g = lr[t] * (float(a @ r2) - y[idx[t]])
        if not np.isfinite(g):
            return t
        g2 = np.where(h2 > 0.0, a, 0.0)
        g1 = np.where(h1 > 0.0, W2.T @ g2, 0.0)
        W1 -= g * np.outer(g1, xi)
        W2 -= g * np.outer(g2, r1)
        a -= g * r2
        while k < K and rec_at[k] == t + 1:
            rec_W1[k], rec_W2[k], rec_a[k] = W1, W2, a
            rec_loss[k] = loss(X, y, W1, W2, a)
            if not np.isfinite(rec_loss[k]):
                return t
            k += 1
    return -1


# ---------------------------------------------------------------- registry cases
def _cases():
    import sys

    from ..teacher3 import Teacher3Config, teacher_data, init_student
    from ._cases import teacher_cases

    return teacher_cases("teacher3", _k, sys.modules[__name__], Teacher3Config, teacher_data, init_student)


CASES = _cases()
