"""Plain-numpy references for :mod:`toymodels.sde._kernels` (same signatures and semantics), and the
generic Euler–Maruyama scheme for arbitrary drift/diffusion callables.

Vectorized per step, never deliberately slow: the test oracle of the kernels.
"""
from __future__ import annotations

import numpy as np


def euler_maruyama(drift, diffusion, x0, h, dB):
    """Generic EM: x_{k+1} = x_k + h·b(x_k, t_k) + Σ(x_k, t_k) ΔB_k, t_k = k h.

    Parameters
    ----------
    drift : callable (x, t) -> array like x
    diffusion : callable (x, t, dB) -> array like x
        Σ(x, t) applied to the increment (matrix-free, so a Jacobian-transpose noise φ_θ(X)ᵀΔB
        needs no p×n matrix).
    x0 : array
    h : float
    dB : (K, ...) increments with E ΔB ΔBᵀ = h·I.

    Returns
    -------
    array, the iterate after K steps.
    """
    x = np.array(x0, dtype=np.float64, copy=True)
    for k in range(dB.shape[0]):
        t = k * h
        x = x + h * drift(x, t) + diffusion(x, t, dB[k])
    return x


def em_gbm_reference(x0, mu, sigma, T, dW, levels, out):
    M, N = dW.shape
    for a, lv in enumerate(levels):
        h = lv * T / N
        db = dW.reshape(M, N // lv, lv).sum(axis=2)
        x = np.full(M, float(x0))
        for s in range(N // lv):
            x = x + mu * x * h + sigma * x * db[:, s]
        out[a] = x


def em_dln_reference(X, y, u, v, gamma, scale, Z, t0, t1, r, g, s, rec_every, rec):
    n = X.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        return _em_dln_steps(X, y, u, v, gamma, scale, Z, t0, t1, n, rec_every, rec)


def _em_dln_steps(X, y, u, v, gamma, scale, Z, t0, t1, n, rec_every, rec):
    for t in range(t0, t1):
        res = X @ (u * v) - y
        if not np.isfinite(res @ res):
            return t
        gr = X.T @ res / (2.0 * n)
        sc = np.sqrt(gamma[t]) * scale[t]
        noise = X.T @ Z[t - t0] if sc != 0.0 else np.zeros_like(u)
        u_new = u - gamma[t] * v * gr + sc * v * noise
        v_new = v - gamma[t] * u * gr + sc * u * noise
        u[:], v[:] = u_new, v_new
        if (t + 1) % rec_every == 0:
            rt = X @ (u * v) - y
            lt = 0.25 * float(rt @ rt) / n
            rec[(t + 1) // rec_every] = lt
            if not np.isfinite(lt):
                return t
    return -1


def em_relu_reference(jacobian_fn, predict_fn, X, y, params, theta, gamma, scale, Z, t0, t1, rec_every, rec):
    """Numpy oracle of :func:`._kernels._em_relu2` / ``_em_relu3``: per step
    θ ← θ − γ∇L(θ) + √γ·scale·φ_θ(X)ᵀz with ∇L = φᵀr/n, r = f(X) − y from ``predict_fn`` (not from the
    Jacobian, so the kernel's f = J[:, −p_a:]·a shortcut is checked independently).

    jacobian_fn(X, *params, J) / predict_fn(X, *params, out): the relu package's numpy references;
    ``params`` are views into ``theta``.
    """
    n = X.shape[0]
    J = np.empty((n, theta.size))
    f = np.empty(n)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(t0, t1):
            jacobian_fn(X, *params, J)
            predict_fn(X, *params, f)
            res = f - y
            loss = 0.5 * float(res @ res) / n
            if t % rec_every == 0:
                rec[t // rec_every] = loss
            if not np.isfinite(loss):
                return t
            sc = np.sqrt(gamma[t]) * scale[t]
            step = gamma[t] * (J.T @ res) / n
            if sc != 0.0:
                step = step - sc * (J.T @ Z[t - t0])
            theta -= step
    return -1
