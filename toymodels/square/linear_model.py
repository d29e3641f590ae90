"""A linear (softmax) classifier as a second toy target for the Square Attack (thesis Ch. 3).

z(x) = W vec(x) + b,  L(W, b) = (1/n) Σᵢ [logsumexp(z(xᵢ)) − z(xᵢ)_{yᵢ}],  trained by full-batch gradient
descent with step 1/β̂, where β̂ = ‖X‖₂²/n ≥ the smoothness of L in W (the softmax cross-entropy Hessian is
≤ ½(XᵀX/n) ⊗ I in the weights, plus the bias block), so every step decreases L.

For a linear model the white-box input gradient is exact and cheap: ∇ₓℓ(x, y) = Wᵀ(softmax(z) − e_y),
which :func:`pgd_linf` uses as the white-box reference for the black-box attack.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import check_int, check_range
from ..rng import stream

__all__ = ["LinearClassifier", "train_softmax", "pgd_linf"]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class LinearClassifier:
    """Logits z = W vec(x) + b for images x of shape (N, C, H, W)."""

    W: np.ndarray      # (K, d)
    b: np.ndarray      # (K,)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1) @ self.W.T + self.b

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        z = self.logits(x)
        zmax = z.max(axis=1)
        lse = zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(y)), y]))

    def input_grad(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """∇ₓ of the per-example loss ℓ(xᵢ, yᵢ) (not divided by N), shape of x."""
        p = _softmax(self.logits(x))
        p[np.arange(len(y)), y] -= 1.0
        return (p @ self.W).reshape(x.shape)


def _power_norm2(X: np.ndarray, iters: int, rng: np.random.Generator) -> float:
    """‖X‖₂² by power iteration on XᵀX (a slight underestimate, hence the 1.1 safety factor below)."""
    v = rng.standard_normal(X.shape[1])
    for _ in range(iters):
        v = X.T @ (X @ v)
        v /= np.linalg.norm(v)
    return float(np.linalg.norm(X @ v) ** 2)


def train_softmax(x: np.ndarray, y: np.ndarray, num_classes: int, *, steps: int = 300,
                  seed: int = 0) -> LinearClassifier:
    """Full-batch GD on the mean softmax cross-entropy from W = 0, b = 0, step 1/(1.1 β̂), β̂ = (‖X‖₂² + n)/n
    (the +n accounts for the bias column)."""
    check_int("steps", steps, 0)
    X = x.reshape(len(x), -1)
    n = len(y)
    rng = stream(seed)
    beta = 1.1 * (_power_norm2(X, 30, rng) + n) / n
    lr = 1.0 / beta
    W = np.zeros((num_classes, X.shape[1]))
    b = np.zeros(num_classes)
    onehot = np.eye(num_classes)[y]
    for _ in range(steps):
        r = (_softmax(X @ W.T + b) - onehot) / n
        W -= lr * (r.T @ X)
        b -= lr * r.sum(axis=0)
    return LinearClassifier(W, b)


def pgd_linf(model: LinearClassifier, x: np.ndarray, y: np.ndarray, eps: float, alpha: float, steps: int,
             seed: int = 0) -> np.ndarray:
    """White-box ℓ∞ PGD (random start, sign steps of size α, projection, x + δ ∈ [0, 1]); returns δ."""
    check_range("eps", eps, 0.0, None, lo_open=True)
    check_range("alpha", alpha, 0.0, None, lo_open=True)
    check_int("steps", steps, 0)
    rng = stream(seed)
    d = rng.uniform(-eps, eps, x.shape)
    d = np.clip(x + d, 0.0, 1.0) - x
    for _ in range(steps):
        g = model.input_grad(x + d, y)
        d = np.clip(d + alpha * np.sign(g), -eps, eps)
        d = np.clip(x + d, 0.0, 1.0) - x
    return d
