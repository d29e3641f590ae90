"""Numba kernels of the SDE package: Euler–Maruyama on geometric Brownian motion (:mod:`.em`), eq. (6.58)
on the DLN u⊙v (:mod:`.dln`) and on the ReLU teacher–student models (:mod:`.relu`), and label-noise GD on
the 2-parameter DLN (:mod:`.dln2d`). Plain-numpy references of the same names and signatures:
:mod:`._reference` (the test oracle, with the registry ``CASES``).

Every kernel takes pre-drawn Gaussian noise and preallocated outputs; RNG and validation live in the
public functions. One Euler–Maruyama step of dθ = b(θ) dt + Σ(θ) dB with step h and increment
ΔB = √h·Z, Z ~ N(0, I), is θ ← θ + h b(θ) + Σ(θ) ΔB.

Why specialized kernels rather than one kernel taking jitted drift/diffusion callables: numba 0.68
re-compiles (and appends a new cache file for) a ``cache=True`` function on every process start when
it receives a dispatcher argument, which costs seconds per CLI call and grows ``__pycache__``.
The generic scheme, for arbitrary callables, is :func:`._reference.euler_maruyama` (numpy).
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def em_gbm(x0, mu, sigma, T, dW, levels, out):
    """EM for geometric Brownian motion dX = μX dt + σX dW on [0, T], many paths, several step sizes.

    dW : (M, N) Brownian increments on the finest grid (step T/N). For each level ℓ (a divisor of N:
    number of fine increments per coarse step), the path is re-simulated with step h = ℓT/N using
    the summed increments, so all levels share one Brownian path (strong coupling).
    out : (len(levels), M) terminal values X_T^h.
    """
    M, N = dW.shape
    for a in range(levels.shape[0]):
        lv = levels[a]
        h = lv * T / N
        for p in range(M):
            x = x0
            for s in range(N // lv):
                db = 0.0
                for q in range(s * lv, (s + 1) * lv):
                    db += dW[p, q]
                x = x + mu * x * h + sigma * x * db
            out[a, p] = x


# only the residual dot products may be reassociated (so they vectorize); no 'nnan'/'ninf', so a
# diverging run still produces inf/NaN and is detected at the same step as in the reference
_DOT_MATH = {"reassoc", "contract"}


@nb.njit(cache=True, fastmath=_DOT_MATH)
def _residuals(X, y, u, v, r):
    """rᵢ = ⟨u⊙v, xᵢ⟩ − yᵢ into r; returns Σ rᵢ²."""
    n, d = X.shape
    loss = 0.0
    for i in range(n):
        acc = 0.0
        for k in range(d):
            acc += X[i, k] * (u[k] * v[k])
        acc -= y[i]
        r[i] = acc
        loss += acc * acc
    return loss


@nb.njit(cache=True, fastmath=_DOT_MATH)
def _axpy2(X, i, a, b, g, s):
    """g += a·xᵢ, s += b·xᵢ."""
    for k in range(X.shape[1]):
        g[k] += X[i, k] * a
        s[k] += X[i, k] * b


@nb.njit(cache=True)
def em_dln(X, y, u, v, gamma, scale, Z, t0, t1, rec_every, rec):
    """Eq. (6.58) for the DLN h(x) = ⟨u⊙v, x⟩, L = 1/(4n) Σ rᵢ², rᵢ = ⟨u⊙v, xᵢ⟩ − yᵢ:

        u ← u − γ_t v⊙g + √γ_t·scale_t · v⊙(XᵀZ_t),   v ← v − γ_t u⊙g + √γ_t·scale_t · u⊙(XᵀZ_t),

    g = Xᵀr/(2n) (so ∇_u L = v⊙g, ∇_v L = u⊙g), both updates from the old (u, v); φ_θ(X)ᵀZ =
    [v⊙XᵀZ; u⊙XᵀZ] is the Jacobian transpose applied to Z. scale_t = √(η_t δ_t); scale = 0 is the
    gradient-flow discretization. Z : (t1 − t0, n) (ignored where scale_t = 0). Steps t0 ≤ t < t1
    (absolute indices into gamma/scale; Z row t − t0). rec[t // rec_every] = L after a step t with
    (t + 1) % rec_every == 0 (rec[0], the initial loss, is written by the caller).
    Returns −1, or the first step at which the loss is not finite (iterates left at that step).
    """
    n, d = X.shape
    r, g, s = np.empty(n), np.empty(d), np.empty(d)
    for t in range(t0, t1):
        loss = _residuals(X, y, u, v, r)
        if not np.isfinite(loss):
            return t
        for k in range(d):
            g[k] = 0.0
            s[k] = 0.0
        sc = np.sqrt(gamma[t]) * scale[t]
        noisy = sc != 0.0
        zrow = t - t0
        for i in range(n):
            ri = r[i] / (2.0 * n)
            zi = Z[zrow, i] if noisy else 0.0
            _axpy2(X, i, ri, zi, g, s)
        gm = gamma[t]
        for k in range(d):
            uk = u[k]
            vk = v[k]
            u[k] = uk - gm * vk * g[k] + sc * vk * s[k]
            v[k] = vk - gm * uk * g[k] + sc * uk * s[k]
        if (t + 1) % rec_every == 0:
            lt = 0.25 * _residuals(X, y, u, v, r) / n
            rec[(t + 1) // rec_every] = lt
            if not np.isfinite(lt):
                return t
    return -1


# --- ReLU teacher–student models (½-normalized loss L = 1/(2n) Σ rᵢ²) ------------------------------
# The Jacobians are the relu package's kernels; the EM step itself is model-free (_em_jacobian_step).
from ..relu._kernels import teacher2 as _relu2, teacher3 as _relu3  # noqa: E402  (after the DLN kernels)


@nb.njit(cache=True)
def _em_jacobian_step(J, y, a, theta, gm, sc, z, noisy, r, w):
    """One step of (6.58) given φ = J (n × p) at θ: θ ← θ − Jᵀ(γ r/n − √γ·scale·z), since
    ∇L = φᵀr/n. The residuals come from the last p_a = len(a) columns of J: for both ReLU models the
    output layer is linear, so ∂f/∂a = last-layer features and f(xᵢ) = J[i, −p_a:]·a. Returns L(θ)."""
    n, p = J.shape
    pa = a.shape[0]
    o = p - pa
    loss = 0.0
    for i in range(n):
        f = 0.0
        for j in range(pa):
            f += J[i, o + j] * a[j]
        ri = f - y[i]
        r[i] = ri
        loss += ri * ri
        w[i] = gm * ri / n - (sc * z[i] if noisy else 0.0)
    loss = 0.5 * loss / n
    if not np.isfinite(loss):
        return loss
    # J already holds every gradient at the old θ, so θ can be updated row by row (contiguous axpy)
    for i in range(n):
        wi = w[i]
        for q in range(p):
            theta[q] -= J[i, q] * wi
    return loss


@nb.njit(cache=True)
def em_relu2(X, y, theta, m, gamma, scale, Z, t0, t1, rec_every, rec):
    """Eq. (6.58) on the two-layer net f = Σⱼ aⱼReLU(wⱼ·x) (:mod:`toymodels.relu._kernels.teacher2`), m hidden
    units: θ = (vec W, a), W = θ[:md] as m × d, a = θ[md:] (updated in place).

    Steps t0 ≤ t < t1 (absolute indices into gamma/scale; Z row t − t0; scale[t] = 0: no noise, Z
    unused). rec[t // rec_every] = L(θ_t) for t % rec_every == 0 (loss *before* step t). Returns −1,
    or the first step whose loss L(θ_t) is not finite.
    """
    n, d = X.shape
    W = theta[:m * d].reshape((m, d))
    a = theta[m * d:]
    J, r, w = np.empty((n, theta.shape[0])), np.empty(n), np.empty(n)
    for t in range(t0, t1):
        _relu2.jacobian(X, W, a, J)
        sc = np.sqrt(gamma[t]) * scale[t]
        loss = _em_jacobian_step(J, y, a, theta, gamma[t], sc, Z[t - t0], sc != 0.0, r, w)
        if t % rec_every == 0:
            rec[t // rec_every] = loss
        if not np.isfinite(loss):
            return t
    return -1


@nb.njit(cache=True)
def em_relu3(X, y, theta, m1, m2, gamma, scale, Z, t0, t1, rec_every, rec):
    """Eq. (6.58) on the three-layer net f = aᵀReLU(W₂ReLU(W₁x)) (:mod:`toymodels.relu._kernels.teacher3`),
    hidden widths m1, m2: θ = (vec W₁, vec W₂, a) with W₁ m1 × d, W₂ m2 × m1, a of length m2;
    otherwise as :func:`em_relu2`."""
    n, d = X.shape
    o = m1 * d
    W1 = theta[:o].reshape((m1, d))
    W2 = theta[o:o + m2 * m1].reshape((m2, m1))
    a = theta[o + m2 * m1:]
    J, r, w = np.empty((n, theta.shape[0])), np.empty(n), np.empty(n)
    for t in range(t0, t1):
        _relu3.jacobian(X, W1, W2, a, J)
        sc = np.sqrt(gamma[t]) * scale[t]
        loss = _em_jacobian_step(J, y, a, theta, gamma[t], sc, Z[t - t0], sc != 0.0, r, w)
        if t % rec_every == 0:
            rec[t // rec_every] = loss
        if not np.isfinite(loss):
            return t
    return -1


# --- label-noise GD on the 2-parameter DLN u = v (Fig. 6.8, :mod:`toymodels.sde.dln2d`) -------------

@nb.njit(cache=True)
def label_noise_gd(x, y, u, eta, sigma, z, traj):
    """traj[0] = u₀; traj[t+1] = traj[t] − η(r_t − σz_t)·traj[t]⊙x with r_t = ⟨traj[t]⊙traj[t], x⟩ − y.
    Returns −1 or the first t with a non-finite iterate (rows after it stay as filled: NaN)."""
    traj[0, 0] = u[0]
    traj[0, 1] = u[1]
    for t in range(z.shape[0]):
        u0 = traj[t, 0]
        u1 = traj[t, 1]
        g = eta * (x[0] * u0 * u0 + x[1] * u1 * u1 - y - sigma * z[t])
        traj[t + 1, 0] = u0 - g * u0 * x[0]
        traj[t + 1, 1] = u1 - g * u1 * x[1]
        if not (np.isfinite(traj[t + 1, 0]) and np.isfinite(traj[t + 1, 1])):
            return t + 1
    return -1
