"""Numba kernels for the three-layer ReLU network of the teacher–student setup (thesis Fig. 6.5;
private, see :mod:`toymodels.relu.teacher3`; numpy references of the same names in
:mod:`toymodels.relu._reference.teacher3`).

Model (no biases; m₁, m₂ hidden neurons, input dimension d):

    h₁ = W₁ x,  r₁ = ReLU(h₁),  h₂ = W₂ r₁,  r₂ = ReLU(h₂),  f_θ(x) = aᵀ r₂,
    θ = (vec W₁, vec W₂, a) ∈ ℝ^{m₁d + m₂m₁ + m₂}   (row-major vec, stored in this order)

with ReLU'(0) := 0 (as torch). Backpropagation for one x:

    ∂f/∂a = r₂,  g₂ = a ⊙ 1[h₂ > 0],  ∂f/∂W₂ = g₂ r₁ᵀ,  g₁ = (W₂ᵀ g₂) ⊙ 1[h₁ > 0],  ∂f/∂W₁ = g₁ xᵀ.

SGD with batch 1 on L = (1/2n) Σᵢ (f(xᵢ) − yᵢ)²:  θ ← θ − η_t (f(x_{i_t}) − y_{i_t}) ∇_θ f(x_{i_t}).
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _forward(xi, W1, W2, a, h1, r1, h2, r2):
    """Fill h₁, r₁, h₂, r₂ for one input and return f(x)."""
    m1, d = W1.shape
    m2 = W2.shape[0]
    for j in range(m1):
        s = 0.0
        for k in range(d):
            s += W1[j, k] * xi[k]
        h1[j] = s
        r1[j] = s if s > 0.0 else 0.0
    f = 0.0
    for j in range(m2):
        s = 0.0
        for k in range(m1):
            s += W2[j, k] * r1[k]
        h2[j] = s
        r2[j] = s if s > 0.0 else 0.0
        f += a[j] * r2[j]
    return f


@nb.njit(cache=True)
def _grad(xi, W1, W2, a, h1, r1, h2, r2, g1, g2, out):
    """out = ∇_θ f(x) (flat, order (W₁, W₂, a)); _forward must have filled h₁, r₁, h₂, r₂."""
    m1, d = W1.shape
    m2 = W2.shape[0]
    o2 = m1 * d
    o3 = o2 + m2 * m1
    for j in range(m2):
        g2[j] = a[j] if h2[j] > 0.0 else 0.0
        out[o3 + j] = r2[j]
        for k in range(m1):
            out[o2 + j * m1 + k] = g2[j] * r1[k]
    for k in range(m1):
        s = 0.0
        if h1[k] > 0.0:
            for j in range(m2):
                s += W2[j, k] * g2[j]
        g1[k] = s
        for q in range(d):
            out[k * d + q] = s * xi[q]


@nb.njit(cache=True)
def predict(X, W1, W2, a, out):
    m1 = W1.shape[0]
    m2 = W2.shape[0]
    h1 = np.empty(m1); r1 = np.empty(m1); h2 = np.empty(m2); r2 = np.empty(m2)
    for i in range(X.shape[0]):
        out[i] = _forward(X[i], W1, W2, a, h1, r1, h2, r2)


@nb.njit(cache=True)
def loss(X, y, W1, W2, a):
    """(1/2n) Σᵢ (f(xᵢ) − yᵢ)²."""
    m1 = W1.shape[0]
    m2 = W2.shape[0]
    h1 = np.empty(m1); r1 = np.empty(m1); h2 = np.empty(m2); r2 = np.empty(m2)
    s = 0.0
    for i in range(X.shape[0]):
        r = _forward(X[i], W1, W2, a, h1, r1, h2, r2) - y[i]
        s += r * r
    return 0.5 * s / X.shape[0]


@nb.njit(cache=True)
def jacobian(X, W1, W2, a, J):
    """J[i] = ∇_θ f(X[i]); J has shape (n, m₁d + m₂m₁ + m₂)."""
    m1 = W1.shape[0]
    m2 = W2.shape[0]
    h1 = np.empty(m1); r1 = np.empty(m1); h2 = np.empty(m2); r2 = np.empty(m2)
    g1 = np.empty(m1); g2 = np.empty(m2)
    for i in range(X.shape[0]):
        _forward(X[i], W1, W2, a, h1, r1, h2, r2)
        _grad(X[i], W1, W2, a, h1, r1, h2, r2, g1, g2, J[i])


@nb.njit(cache=True)
def sgd(X, y, W1, W2, a, lr, idx, rec_at, rec_W1, rec_W2, rec_a, rec_loss):
    """len(lr) SGD steps in place on (W₁, W₂, a); after step t with t+1 = rec_at[k] (rec_at[k] = 0 is
    the initialization) the parameters and the training loss go to row k of rec_*. Returns the first
    step at which the residual or a recorded loss is not finite, or −1."""
    m1, d = W1.shape
    m2 = W2.shape[0]
    P = m1 * d + m2 * m1 + m2
    o2 = m1 * d
    o3 = o2 + m2 * m1
    h1 = np.empty(m1); r1 = np.empty(m1); h2 = np.empty(m2); r2 = np.empty(m2)
    g1 = np.empty(m1); g2 = np.empty(m2)
    grad = np.empty(P)
    k = 0
    while k < rec_at.shape[0] and rec_at[k] == 0:
        rec_W1[k] = W1; rec_W2[k] = W2; rec_a[k] = a
        rec_loss[k] = loss(X, y, W1, W2, a)
        k += 1
    for t in range(lr.shape[0]):
        i = idx[t]
        f = _forward(X[i], W1, W2, a, h1, r1, h2, r2)
        g = lr[t] * (f - y[i])
        if not np.isfinite(g):
            return t
        _grad(X[i], W1, W2, a, h1, r1, h2, r2, g1, g2, grad)   # the gradient at θ_t, then update
        for j in range(m1):
            for q in range(d):
                W1[j, q] -= g * grad[j * d + q]
        for j in range(m2):
            for q in range(m1):
                W2[j, q] -= g * grad[o2 + j * m1 + q]
            a[j] -= g * grad[o3 + j]
        while k < rec_at.shape[0] and rec_at[k] == t + 1:
            rec_W1[k] = W1; rec_W2[k] = W2; rec_a[k] = a
            rec_loss[k] = loss(X, y, W1, W2, a)
            if not np.isfinite(rec_loss[k]):
                return t
            k += 1
    return -1
