"""Adaptive sharpness of linear / logistic classifiers (thesis Ch. 7, eq. 7.1, 7.5; Fig. 7.1).

Weights are one flat vector w ∈ R^p, data X ∈ R^{n×d}, and the loss is the mean over the points:

* K = 1 (binary logistic, one logit): p = d, z = ⟨w, x⟩, labels y ∈ {−1, +1},
  L(w) = (1/n) Σᵢ log(1 + exp(−yᵢ⟨w, xᵢ⟩)).
* K ≥ 2 (softmax cross-entropy): w = vec(W), W ∈ R^{K×d} row-major (p = Kd), logits z = Wx, labels
  yᵢ ∈ {0, …, K−1}, L(w) = (1/n) Σᵢ [logsumexp(z̃ᵢ) − z̃ᵢ,yᵢ] with z̃ = z, or with the logit
  normalization of eq. 7.5, z̃ = z / sd(z), sd(z)² = (1/K) Σ_c (z_c − z̄)².

Eq. 7.5 makes the loss invariant to w → αw (α > 0) and hence the *adaptive* (c = |w|) sharpness
exactly scale-invariant; without it a classifier with zero training error has a loss (and adaptive
sharpness) that decays to 0 as the weights are scaled up (Fig. 7.1). For K = 2 the normalized margin
z̃₁ − z̃₀ is ±2, so the normalized loss is piecewise constant (zero gradient a.e.): average-case
sharpness counts label flips, worst-case ascent has no gradient to follow; use K ≥ 3 for it.

Hessians (no normalization; used as closed-form oracles), with σ the logistic function and
p(x) = softmax(Wx):  K = 1: (1/n) Σ σ(zᵢ)σ(−zᵢ) xᵢxᵢᵀ;  K ≥ 2: (1/n) Σ (diag pᵢ − pᵢpᵢᵀ) ⊗ xᵢxᵢᵀ.

Streams (:mod:`toymodels.rng`): :func:`gaussian_mixture` draws split ``s`` ("train", "test") from
``(seed, "gaussian-mixture/s")``; :func:`train_linear`'s random start (eq. 7.5 only) from
``(seed, "linear/init")``; :func:`measure_linear` batches as :func:`~toymodels.sharpness.batches.m_sharpness`.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, check_choice, check_int, check_nonneg, check_positive
from ..rng import stream
from . import _kernels, _reference
from .batches import m_sharpness
from .measures import check_radius

__all__ = ["check_linear", "linear_loss", "linear_grad", "linear_hessian", "gaussian_mixture",
           "train_linear", "measure_linear", "MAX_STEPS"]

#: the longest logistic-regression training (time)
MAX_STEPS = 10 ** 7


def check_linear(X, y, K, normalize=False):
    """Validate data and class count; returns float64 X and int64 y."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.int64)
    K = check_int("K", K, 1)
    if X.ndim != 2 or X.shape[0] < 1 or y.shape != (X.shape[0],):
        raise ConfigError("X", f"must be (n, d) with n >= 1 and y (n,); got X{X.shape} y{y.shape}")
    if K == 1 and not np.all(np.abs(y) == 1):
        raise ConfigError("y", "must be -1 or +1 (binary labels, K = 1)")
    if K >= 2 and (y.min() < 0 or y.max() >= K):
        raise ConfigError("y", f"must lie in [0, {K - 1}] for K = {K}")
    if normalize and K < 2:
        raise ConfigError("normalize", "(logit normalization, eq. 7.5) needs K >= 2 logits")
    return X, y, K


def linear_loss(W, X, y, K, normalize=False, backend="auto"):
    """Mean loss (module docstring) for each row of the stack ``W`` (k, p) → (k,).

    ``backend``: "numba" (fused kernel), "numpy" (reference: one BLAS matmul for all logits), or
    "auto": numpy for K = 1, whose cost is a plain matmul that BLAS does ~3× faster than the kernel
    (``python -m toymodels.bench sharpness_linear_k4096``), numba otherwise."""
    W = np.ascontiguousarray(np.atleast_2d(W), dtype=np.float64)
    if W.shape[1] != K * X.shape[1]:
        raise ConfigError("W", f"must have K*d = {K * X.shape[1]} entries per row", f"{W.shape[1]} entries")
    out = np.empty(W.shape[0])
    backend = check_choice("backend", backend, ("auto", "numba", "numpy"))
    if backend == "auto":
        backend = "numpy" if K == 1 else "numba"
    fn = _kernels.linear_loss_batch if backend == "numba" else _reference.linear_loss_batch
    fn(W, X, y, int(K), bool(normalize), out)
    return out


def _softmax(Z):
    E = np.exp(Z - Z.max(axis=0, keepdims=True))
    return E / E.sum(axis=0, keepdims=True)


def linear_grad(w, X, y, K, normalize=False):
    """∇L(w) (analytic). With eq. 7.5: ∂z̃_c/∂z_j = δ_cj/s − z_c(z_j − z̄)/(K s³), so the logit
    gradient is g/s − (z − z̄)⟨g, z⟩/(K s³) with g = softmax(z̃) − e_y."""
    n, d = X.shape
    if K == 1:
        mrg = y * (X @ w)
        return -(y * np.exp(-np.logaddexp(0.0, mrg))) @ X / n   # σ(−m) = exp(−log(1 + e^m))
    Z = w.reshape(K, d) @ X.T                                   # (K, n)
    if normalize:
        zc = Z - Z.mean(axis=0, keepdims=True)
        s = np.sqrt(np.mean(zc * zc, axis=0, keepdims=True))
        G = _softmax(Z / s)
        G[y, np.arange(n)] -= 1.0
        Gz = G / s - zc * np.sum(G * Z, axis=0, keepdims=True) / (K * s ** 3)
    else:
        Gz = _softmax(Z)
        Gz[y, np.arange(n)] -= 1.0
    return (Gz @ X / n).ravel()


def linear_hessian(w, X, y, K):
    """Closed-form Hessian of the unnormalized loss (module docstring), shape (p, p)."""
    n, d = X.shape
    if K == 1:
        z = X @ w
        s = np.exp(-np.logaddexp(0.0, z) - np.logaddexp(0.0, -z))   # σ(z)σ(−z)
        return (X * s[:, None]).T @ X / n
    P = _softmax(w.reshape(K, d) @ X.T)                               # (K, n)
    H = np.zeros((K * d, K * d))
    for i in range(n):
        A = np.diag(P[:, i]) - np.outer(P[:, i], P[:, i])
        H += np.kron(A, np.outer(X[i], X[i]))
    return H / n


def gaussian_mixture(n=50, d=100, K=1, sep=3.0, seed=0, split="train"):
    """Balanced Gaussian mixture x = μ_y + N(0, I_d), drawn from the stream
    ``(seed, "gaussian-mixture/<split>")`` (a test set: ``split="test"``, same means).

    K = 1 or 2: two Gaussians with means ±μ, μ = sep·(1, …, 1)/√d (labels ±1 for K = 1, and
    1 / 0 for K = 2); K ≥ 3: means sep·e_c (c < min(K, d)). Returns (X, y)."""
    check_int("n", n, 2)
    check_int("d", d, 1)
    check_int("K", K, 1, d)
    check_nonneg("sep", sep)
    rng = stream(seed, f"gaussian-mixture/{check_choice('split', split, ('train', 'test'))}")
    lab = np.arange(n) % max(K, 2)
    rng.shuffle(lab)
    if K <= 2:
        mu = sep * np.ones(d) / np.sqrt(d)
        X = np.where(lab[:, None] == 1, 1.0, -1.0) * mu[None, :] + rng.standard_normal((n, d))
        y = np.where(lab == 1, 1, -1) if K == 1 else lab
    else:
        X = sep * np.eye(d)[lab] + rng.standard_normal((n, d))
        y = lab
    return X, y.astype(np.int64)


def train_linear(X, y, K, steps=500, lr=1.0, normalize=False, seed=0):
    """Full-batch GD on L from w = 0 (logistic regression); returns the flat weights. With eq. 7.5
    (undefined at w = 0: all logits equal) it starts from 1e-3·N(0, I) (stream ``(seed, "linear/init")``)."""
    check_int("steps", steps, 0, MAX_STEPS)
    check_positive("lr", lr)
    w = 1e-3 * stream(seed, "linear/init").standard_normal(K * X.shape[1]) if normalize else np.zeros(K * X.shape[1])
    for _ in range(steps):
        w = w - lr * linear_grad(w, X, y, K, normalize)
    return w


def measure_linear(w, X, y, K, rho=0.05, m=None, normalize=False, p="2", n_samples=1000, n_iter=50,
                   n_restarts=3, seed=0):
    """Average- and worst-case m-sharpness of a linear classifier, standard (c = 1) and elementwise
    adaptive (c = |w|), at radius ``rho`` in the ℓ_p ball (p ∈ {2, inf}); eq. 7.1.

    Returns a dict with ``avg_standard``, ``avg_standard_se``, ``max_standard``, ``max_standard_se``
    and the same for ``adaptive`` (max: a lower bound from Auto-PGD; its s.e. is the spread over
    batches), plus the loss, the training error and the number of batches.
    """
    X, y, K = check_linear(X, y, K, normalize)
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (K * X.shape[1],):
        raise ConfigError("w", f"must have K*d = {K * X.shape[1]} entries", f"shape {w.shape}")
    # logits ⟨w', xᵢ⟩ ≤ ‖xᵢ‖₁ max|w'| (degree 1); c = 1 or |w|
    check_radius(rho, w, np.maximum(1.0, np.abs(w)), float(np.max(np.sum(np.abs(X), axis=1))), 1)
    p = check_choice("p", str(p), ("2", "inf"))
    n = X.shape[0]
    m = n if m is None else check_int("m", m, 1, n)

    def make_fns(idx):
        Xb, yb = np.ascontiguousarray(X[idx]), np.ascontiguousarray(y[idx])
        return (lambda W: linear_loss(W, Xb, yb, K, normalize),
                lambda v: linear_grad(v, Xb, yb, K, normalize))

    out = {}
    for name, c in (("standard", np.ones_like(w)), ("adaptive", np.abs(w))):
        a, ase, _ = m_sharpness(make_fns, w, c, n, rho, m, "avg", p, n_samples, seed=seed)
        mx, mse, _ = m_sharpness(make_fns, w, c, n, rho, m, "max", p, n_iter=n_iter,
                                 n_restarts=n_restarts, seed=seed)
        out |= {f"avg_{name}": a, f"avg_{name}_se": ase, f"max_{name}": mx, f"max_{name}_se": mse}
    z = (X @ w) if K == 1 else (w.reshape(K, -1) @ X.T)
    pred_err = np.mean(np.sign(z) != y) if K == 1 else np.mean(np.argmax(z, axis=0) != y)
    out |= {"loss": float(linear_loss(w, X, y, K, normalize)[0]), "train_error": float(pred_err),
            "weight_norm": float(np.linalg.norm(w)), "n_batches": n // m}
    return out
