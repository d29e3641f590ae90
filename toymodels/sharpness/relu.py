"""Adaptive sharpness of the two-layer ReLU net of :mod:`toymodels.relu.model` (thesis Sec. 6.4.2):

    f_θ(x) = Σⱼ aⱼ ReLU(wⱼx + bⱼ),  θ = (w, b, a) ∈ R^{3m} (this order),
    L(θ) = 1/(2n) Σᵢ (f_θ(xᵢ) − yᵢ)².

The net is unchanged under (wⱼ, bⱼ, aⱼ) → (αⱼwⱼ, αⱼbⱼ, aⱼ/αⱼ), αⱼ > 0, and elementwise adaptive
sharpness (c = |θ|) inherits that invariance (thesis l.3656); standard sharpness (c = 1) does not.
At an interpolating θ (all residuals 0, no data point on a kink) the Hessian is the Gauss–Newton
matrix (1/n) JᵀJ with J = ∂f/∂θ (n × 3m): a closed form for the local limits of Prop. 7.8.1/7.8.2.
"""
from __future__ import annotations

import numpy as np

from ..backends import check_backend
from ..errors import ConfigError, check_choice, check_int
from . import _kernels, _reference
from .batches import m_sharpness
from .measures import check_radius

__all__ = ["relu_loss", "relu_grad", "relu_gauss_newton", "relu_rescale", "measure_relu"]


def _check(x, y, theta=None):
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if x.ndim != 1 or y.shape != x.shape or x.size == 0:
        raise ConfigError("x", "and y must be non-empty 1D arrays of equal length", f"x{x.shape} y{y.shape}")
    if theta is not None and (np.ndim(theta) < 1 or np.shape(theta)[-1] % 3):
        raise ConfigError("theta", "must have 3m entries (w, b, a)", f"shape {np.shape(theta)}")
    return x, y


def relu_loss(T, x, y, backend="numba"):
    """L(θ) for each row of the stack ``T`` (k, 3m) → (k,)."""
    x, y = _check(x, y, T)
    T = np.ascontiguousarray(np.atleast_2d(T), dtype=np.float64)
    out = np.empty(T.shape[0])
    (_kernels.relu_loss_batch if check_backend(backend) == "numba" else _reference.relu_loss_batch)(T, x, y, out)
    return out


def relu_grad(theta, x, y):
    """∇L(θ) = (1/n) Σᵢ rᵢ ∂f(xᵢ)/∂θ, with ∂f/∂wⱼ = aⱼ1[hⱼ>0]x, ∂f/∂bⱼ = aⱼ1[hⱼ>0], ∂f/∂aⱼ = ReLU(hⱼ)."""
    m = theta.shape[0] // 3
    w, b, a = theta[:m], theta[m:2 * m], theta[2 * m:]
    Hpre = np.outer(x, w) + b                       # (n, m)
    act = Hpre > 0
    r = np.maximum(Hpre, 0.0) @ a - y
    n = x.shape[0]
    ga = r @ np.maximum(Hpre, 0.0) / n
    D = act * a[None, :] * r[:, None]
    return np.concatenate([x @ D / n, D.sum(axis=0) / n, ga])


def relu_gauss_newton(theta, x):
    """(1/n) JᵀJ with J from :func:`toymodels.relu.model.jacobian` (the Hessian at interpolation)."""
    from ..relu.model import jacobian

    m = theta.shape[0] // 3
    J = jacobian(x, theta[:m], theta[m:2 * m], theta[2 * m:])
    return J.T @ J / x.shape[0]


def relu_rescale(theta, alpha):
    """(αw, αb, a/α) per hidden unit (α > 0, scalar or (m,)): the same function f."""
    m = theta.shape[0] // 3
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (m,))
    if np.any(alpha <= 0):
        raise ConfigError("alpha", "must be > 0 (every hidden unit)", alpha.tolist())
    return np.concatenate([alpha * theta[:m], alpha * theta[m:2 * m], theta[2 * m:] / alpha])


def measure_relu(theta, x, y, rho=0.05, m=None, p="2", n_samples=1000, n_iter=50, n_restarts=3,
                 seed=0):
    """Average/worst-case m-sharpness of the ReLU net, standard (c = 1) and adaptive (c = |θ|);
    same keys as :func:`toymodels.sharpness.linear.measure_linear` (without ``train_error``)."""
    x, y = _check(x, y, theta)
    theta = np.asarray(theta, dtype=np.float64)
    m_units = theta.shape[0] // 3
    # |f(x)| ≤ Σⱼ |aⱼ|(|wⱼ||x| + |bⱼ|) ≤ m(1 + max|x|) max|θ'|² (degree 2); c = 1 or |θ|
    scale = m_units * (1.0 + float(np.max(np.abs(x))))
    check_radius(rho, theta, np.maximum(1.0, np.abs(theta)), scale, 2, "theta")
    p = check_choice("p", str(p), ("2", "inf"))
    n = x.shape[0]
    m = n if m is None else check_int("m", m, 1, n)

    def make_fns(idx):
        xb, yb = np.ascontiguousarray(x[idx]), np.ascontiguousarray(y[idx])
        return (lambda T: relu_loss(T, xb, yb)), (lambda t: relu_grad(t, xb, yb))

    out = {}
    for name, c in (("standard", np.ones_like(theta)), ("adaptive", np.abs(theta))):
        a, ase, _ = m_sharpness(make_fns, theta, c, n, rho, m, "avg", p, n_samples, seed=seed)
        mx, mse, _ = m_sharpness(make_fns, theta, c, n, rho, m, "max", p, n_iter=n_iter,
                                 n_restarts=n_restarts, seed=seed)
        out |= {f"avg_{name}": a, f"avg_{name}_se": ase, f"max_{name}": mx, f"max_{name}_se": mse}
    out |= {"loss": float(relu_loss(theta, x, y)[0]), "n_batches": n // m}
    return out
