"""Plain-numpy references of :mod:`toymodels.sde._kernels` (same names, signatures and semantics),
vectorized per step, never deliberately slow: the test oracles of the kernels and the baselines of
the benchmark (``CASES`` at the end is this package's part of :func:`toymodels.kernels.registry`).
Also the generic Euler–Maruyama scheme for arbitrary drift/diffusion callables.
"""
from __future__ import annotations

import numpy as np

from ..kernels import KernelCase
from ..rng import stream
from . import _kernels


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


def em_gbm(x0, mu, sigma, T, dW, levels, out):
    """EM on geometric Brownian motion, all paths at once, one level after the other."""
    M, N = dW.shape
    for a, lv in enumerate(levels):
        h = lv * T / N
        db = dW.reshape(M, N // lv, lv).sum(axis=2)
        x = np.full(M, float(x0))
        for s in range(N // lv):
            x = x + mu * x * h + sigma * x * db[:, s]
        out[a] = x


def em_dln(X, y, u, v, gamma, scale, Z, t0, t1, rec_every, rec):
    """Eq. (6.58) on the DLN u⊙v, one vectorized step per iteration."""
    n = X.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
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


def _em_relu(ref, params, X, y, theta, gamma, scale, Z, t0, t1, rec_every, rec):
    """Per step θ ← θ − γ∇L(θ) + √γ·scale·φ_θ(X)ᵀz with ∇L = φᵀr/n, r = f(X) − y from the relu
    package's numpy reference module ``ref`` (``ref.predict``, not the Jacobian, so the kernel's
    f = J[:, −p_a:]·a shortcut is checked independently); ``params`` are views into ``theta``."""
    n = X.shape[0]
    J = np.empty((n, theta.size))
    f = np.empty(n)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(t0, t1):
            ref.jacobian(X, *params, J)
            ref.predict(X, *params, f)
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


def em_relu2(X, y, theta, m, gamma, scale, Z, t0, t1, rec_every, rec):
    """Eq. (6.58) on the two-layer ReLU net, θ = (vec W, a), W m × d."""
    from ..relu._reference import teacher2 as _reference2

    d = X.shape[1]
    params = (theta[:m * d].reshape(m, d), theta[m * d:])
    return _em_relu(_reference2, params, X, y, theta, gamma, scale, Z, t0, t1, rec_every, rec)


def em_relu3(X, y, theta, m1, m2, gamma, scale, Z, t0, t1, rec_every, rec):
    """Eq. (6.58) on the three-layer ReLU net, θ = (vec W₁, vec W₂, a), W₁ m1 × d, W₂ m2 × m1."""
    from ..relu._reference import teacher3 as _reference3

    d = X.shape[1]
    o = m1 * d
    params = (theta[:o].reshape(m1, d), theta[o:o + m2 * m1].reshape(m2, m1), theta[o + m2 * m1:])
    return _em_relu(_reference3, params, X, y, theta, gamma, scale, Z, t0, t1, rec_every, rec)


def label_noise_gd(x, y, u, eta, sigma, z, traj):
    """Label-noise GD on the 2-parameter DLN u = v, one step per iteration."""
    traj[0] = u
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(z.shape[0]):
            w = traj[t]
            traj[t + 1] = w - eta * (float((w * w) @ x) - y - sigma * z[t]) * w * x
            if not np.all(np.isfinite(traj[t + 1])):
                return t + 1
    return -1


# ----------------------------------------------------------------------------------------------------
# the registry's cases (inputs drawn from fixed unnamed streams: test inputs, not experiment streams)

def _gbm_args(size: str):
    """small: 50 paths × 16 fine steps, levels 4, 2, 1; bench: 20 000 paths × 512, levels 64 … 2
    (the test_sde_order setting)."""
    M, N, levels = (50, 16, (4, 2, 1)) if size == "small" else (20_000, 512, (64, 32, 16, 8, 4, 2))
    dW = stream(1).standard_normal((M, N)) * np.sqrt(1.0 / N)
    return 1.0, 0.7, 0.4, 1.0, dW, np.array(levels, dtype=np.int64), np.empty((len(levels), M))


def _dln_args(size: str, kind: str = "noisy"):
    """small: n = 7, d = 5, 60 steps (``diverging``: γ = 3, 200 steps, no noise); bench: Fig. 6.2's
    size n = 80, d = 200, 20 000 steps, loss every 100 (the ``sde_dln_em_2e4`` workload)."""
    n, d, S, every = (7, 5, 60, 3) if size == "small" else (80, 200, 20_000, 100)
    rng = stream(2024)
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    u, v = rng.normal(0.5, 0.3, d), rng.normal(0.2, 0.3, d)
    gamma = np.full(S, 3.0 if kind == "diverging" else 0.01)
    scale = np.linspace(0.1, 0.3, S) if kind == "noisy" else np.zeros(S)
    Z = rng.standard_normal((S, n))
    return X, y, u, v, gamma, scale, Z, 0, S, every, np.full(S // every + 1, np.nan)


def _relu_args(model: str, size: str, noisy: bool = True):
    """The student of the relu package's teacher module (seed 0; small: n = 12, width 6 or 8, 40
    steps; bench: Fig. 6.5's three-layer student, 20 000 steps, the ``sde_relu3_em_2e4`` workload)."""
    from dataclasses import replace

    from .relu import SDEReLUConfig, problem, teacher_config

    tc = teacher_config(SDEReLUConfig(model=model, steps=10))
    if size == "small":
        tc = replace(tc, n=12, n_test=20, m=6 if model == "relu3" else 8)
    X, y, _, _, theta, shapes = problem(model, tc)
    S, every = (40, 4) if size == "small" else (20_000, 10)
    n = X.shape[0]
    gamma = np.full(S, 0.01 if size == "small" else 1e-4)
    scale = (np.linspace(0.05, 0.2, S) if size == "small" else np.full(S, 0.05)) if noisy else np.zeros(S)
    Z = stream(3).standard_normal((S, n))
    widths = (shapes[0][0],) if model == "relu2" else (shapes[0][0], shapes[1][0])
    return (X, y, theta, *widths, gamma, scale, Z, 0, S, every, np.full((S - 1) // every + 1, np.nan))


def _label_noise_args(size: str, diverging: bool = False):
    """Fig. 6.8's setting, x = (1, 0.5), y = 1, η = 0.8, σ = 0.3 (``diverging``: u₀ = (3, 3), η = 5,
    σ = 0); small: 400 steps, bench: 10⁶."""
    S = 400 if size == "small" else 1_000_000
    z = stream(0).standard_normal(S)
    u0, eta, sigma = (np.array([3.0, 3.0]), 5.0, 0.0) if diverging else (np.array([1.2, 0.45]), 0.8, 0.3)
    return np.array([1.0, 0.5]), 1.0, u0, eta, sigma, z, np.full((S + 1, 2), np.nan)


_DOT = "the kernel's dot products may be reassociated (fastmath 'reassoc'), the reference uses BLAS"
_RELU = ("the reference computes f(X) with the relu package's predict and its matrix products with BLAS; "
         "the kernel takes f from the Jacobian's last columns and sums in its own order")
CASES = [
    KernelCase("sde.em_gbm", _kernels.em_gbm, em_gbm, _gbm_args, rtol=1e-13,
               why="the kernel sums a coarse step's fine increments in a loop, the reference with numpy's sum"),
    KernelCase("sde.em_dln", _kernels.em_dln, em_dln, _dln_args, rtol=1e-12, atol=1e-14, why=_DOT),
    KernelCase("sde.em_dln.gf", _kernels.em_dln, em_dln, lambda size: _dln_args(size, "gf"),
               rtol=1e-12, atol=1e-14, why=_DOT),
    KernelCase("sde.em_dln.diverging", _kernels.em_dln, em_dln, lambda size: _dln_args(size, "diverging"),
               rtol=1e-12, atol=1e-14, why=_DOT),
    KernelCase("sde.em_relu2", _kernels.em_relu2, em_relu2, lambda size: _relu_args("relu2", size),
               rtol=1e-11, atol=1e-13, why=_RELU),
    KernelCase("sde.em_relu2.gf", _kernels.em_relu2, em_relu2, lambda size: _relu_args("relu2", size, False),
               rtol=1e-11, atol=1e-13, why=_RELU),
    KernelCase("sde.em_relu3", _kernels.em_relu3, em_relu3, lambda size: _relu_args("relu3", size),
               rtol=1e-11, atol=1e-13, why=_RELU),
    KernelCase("sde.em_relu3.gf", _kernels.em_relu3, em_relu3, lambda size: _relu_args("relu3", size, False),
               rtol=1e-11, atol=1e-13, why=_RELU),
    KernelCase("sde.label_noise_gd", _kernels.label_noise_gd, label_noise_gd, _label_noise_args, rtol=1e-12,
               atol=1e-300, why="the reference's ⟨u⊙u, x⟩ is a numpy dot product, the kernel's a sum in its order"),
    KernelCase("sde.label_noise_gd.diverging", _kernels.label_noise_gd, label_noise_gd,
               lambda size: _label_noise_args(size, True), rtol=1e-12, atol=1e-300,
               why="the reference's ⟨u⊙u, x⟩ is a numpy dot product, the kernel's a sum in its order"),
]
