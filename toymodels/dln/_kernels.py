"""Numba kernels for diagonal linear networks (see :mod:`toymodels.dln.train`).

One kernel, :func:`run`, covers every algorithm of the DLN model; :func:`run_many` advances several
independent runs in parallel. A step t with descent batch D (|D| = b, the full data set for GD) and
step sizes γ = rates[LR, t], ρ = rates[RHO, t] is

    chunked ascent (no ascent batch): D is split into consecutive chunks G of m examples; per chunk
        a_G = (1/m) Σ_{j∈G} r_j x_j                    (r_j = ⟨β, x_j⟩ − y_j at w)
        ρ_G = ρ, or ρ / ‖∇L_G(w)‖₂ with normalization
        w̃_G = (w₊ ⊙ (1 + ρ_G a_G), w₋ ⊙ (1 − ρ_G a_G))  (= w + ρ_G ∇L_G(w))
        then  w ← w − (γ/b) Σ_G Σ_{i∈G} ∇ℓᵢ(w̃_G).
      m = 1 is 1-SAM, m = b is n-SAM (full batch) or m-SAM with the same batch (eq. 5.4);
      ρ = 0 is plain GD/SGD.
    independent ascent (an ascent batch A = aidx[t − t0], eq. 5.21): one ascent point from A,
        w ← w − (γ/b) Σ_{i∈D} ∇ℓᵢ(w + ρ_A ∇L_A(w)).

Alongside the iterates the kernel accumulates two per-coordinate logs used by the implicit-bias
theory:
    log_flow  −= γ ρ_G (m/b) a_G²  summed over chunks   (independent ascent: γ ρ_A a_A ⊙ g_D)
    log_disc  −= ½ γ² g_D²,  g_D = (1/b) Σ_{i∈D} rᵢ xᵢ at w   (the O(γ) discretization term)
so that α · exp(log_flow) is the leading-order effective scale of Thm 5.9.2/5.9.3 in this
project's normalization, evaluated along the simulated trajectory.

Arguments (the same for the numpy reference :func:`toymodels.dln._reference.run`):

    data   (X, y, X_test, y_test)
    state  (4, d) float64, rows W_PLUS, W_MINUS, LOG_FLOW, LOG_DISC, advanced in place
    rates  (2, T) float64, rows LR, RHO: the per-step γ_t and ρ_t of the whole run
    t0     the first step of this call; the call runs steps t0 ≤ t < t0 + idx.shape[0]
    idx    (steps, b) int64 descent batches (shape (steps, 0): full batch)
    aidx   (steps, ba) int64 independent ascent batches (shape (steps, 0): none, chunked ascent)
    opts   int64 [m, normalize (0/1), record_every]
    rec    (2, n_rec) float64, rows REC_TRAIN, REC_TEST: after step t, if (t+1) % record_every == 0,
           the train/test losses are written to column (t+1) // record_every
    returns the step at which the iterate became non-finite, or −1.

Performance notes (``python -m toymodels.bench`` times these kernels against ``_reference.py``):
only the dot products and column sums (``_dot``, ``_ascent_point``, ``_row_moments``,
``_col_sums``) are compiled with ``fastmath={"reassoc", "contract"}`` so that they vectorize; no
'nnan'/'ninf', so a diverging run is still detected at the same step. Full-batch 1-SAM evaluates the
n ascent residuals in closed form (:func:`_grad_1sam_full`): two passes over X per step instead of
2n row passes. Results agree with the numpy reference to rounding (≈1e-14 relative on w).
"""
from __future__ import annotations

import numba as nb
import numpy as np

#: rows of ``state``
W_PLUS, W_MINUS, LOG_FLOW, LOG_DISC = 0, 1, 2, 3
N_STATE = 4
#: rows of ``rates`` (the per-step step size γ_t and ascent radius ρ_t)
LR, RHO = 0, 1
#: entries of ``opts``
O_M, O_NORMALIZE, O_RECORD_EVERY = 0, 1, 2
N_OPTS = 3
#: rows of ``rec``
REC_TRAIN, REC_TEST = 0, 1

# Only the dot products may be reassociated (vectorized with several partial sums): every other
# operation keeps IEEE order. No 'nnan'/'ninf' flags, so divergence (inf/NaN) still propagates.
_DOT_MATH = {"reassoc", "contract"}


@nb.njit(cache=True, fastmath=_DOT_MATH)
def _dot(X, i, v):
    """⟨X[i], v⟩."""
    s = 0.0
    for k in range(v.shape[0]):
        s += X[i, k] * v[k]
    return s


@nb.njit(cache=True, fastmath=_DOT_MATH)
def _ascent_point(X, i, rj, rc, coef, wp, wm, wpa, wma, log_flow):
    """1-SAM ascent on example i (a = rⱼ xᵢ): writes w̃ = (wpa, wma), log_flow −= coef a², and returns
    ⟨β(w̃), xᵢ⟩ (one fused pass)."""
    p = 0.0
    for k in range(wp.shape[0]):
        ak = rj * X[i, k]
        u = wp[k] * (1.0 + rc * ak)
        v = wm[k] * (1.0 - rc * ak)
        wpa[k] = u
        wma[k] = v
        log_flow[k] -= coef * ak * ak
        p += X[i, k] * (u * u - v * v)
    return p


@nb.njit(cache=True, fastmath=_DOT_MATH)
def _row_moments(X, beta, sq, p, u, v):
    """For every row xⱼ of X: pⱼ = ⟨xⱼ, β⟩, uⱼ = ⟨xⱼ², sq⟩, vⱼ = ⟨xⱼ³, β⟩ (rows in blocks of 4 so that
    β and sq are loaded once per block)."""
    n, d = X.shape
    j = 0
    while j + 4 <= n:
        p0 = p1 = p2 = p3 = 0.0
        u0 = u1 = u2 = u3 = 0.0
        v0 = v1 = v2 = v3 = 0.0
        for k in range(d):
            bk = beta[k]
            sk = sq[k]
            x0 = X[j, k]
            x1 = X[j + 1, k]
            x2 = X[j + 2, k]
            x3 = X[j + 3, k]
            p0 += x0 * bk
            p1 += x1 * bk
            p2 += x2 * bk
            p3 += x3 * bk
            u0 += x0 * x0 * sk
            u1 += x1 * x1 * sk
            u2 += x2 * x2 * sk
            u3 += x3 * x3 * sk
            v0 += x0 * x0 * x0 * bk
            v1 += x1 * x1 * x1 * bk
            v2 += x2 * x2 * x2 * bk
            v3 += x3 * x3 * x3 * bk
        p[j], p[j + 1], p[j + 2], p[j + 3] = p0, p1, p2, p3
        u[j], u[j + 1], u[j + 2], u[j + 3] = u0, u1, u2, u3
        v[j], v[j + 1], v[j + 2], v[j + 3] = v0, v1, v2, v3
        j += 4
    while j < n:
        p0 = 0.0
        u0 = 0.0
        v0 = 0.0
        for k in range(d):
            x0 = X[j, k]
            p0 += x0 * beta[k]
            u0 += x0 * x0 * sq[k]
            v0 += x0 * x0 * x0 * beta[k]
        p[j], u[j], v[j] = p0, u0, v0
        j += 1


@nb.njit(cache=True, fastmath=_DOT_MATH)
def _col_sums(X, r, ra, rac, lw, S, P, Q, L):
    """S = Σⱼ rⱼ xⱼ, P = Σⱼ raⱼ xⱼ, Q = Σⱼ racⱼ xⱼ², L = Σⱼ lwⱼ xⱼ² (rows in blocks of 4 so that the
    four sums are loaded and stored once per block)."""
    n, d = X.shape
    for k in range(d):
        S[k] = 0.0
        P[k] = 0.0
        Q[k] = 0.0
        L[k] = 0.0
    j = 0
    while j + 4 <= n:
        a0, a1, a2, a3 = r[j], r[j + 1], r[j + 2], r[j + 3]
        b0, b1, b2, b3 = ra[j], ra[j + 1], ra[j + 2], ra[j + 3]
        c0, c1, c2, c3 = rac[j], rac[j + 1], rac[j + 2], rac[j + 3]
        e0, e1, e2, e3 = lw[j], lw[j + 1], lw[j + 2], lw[j + 3]
        for k in range(d):
            x0 = X[j, k]
            x1 = X[j + 1, k]
            x2 = X[j + 2, k]
            x3 = X[j + 3, k]
            S[k] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
            P[k] += b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3
            Q[k] += (c0 * x0) * x0 + (c1 * x1) * x1 + (c2 * x2) * x2 + (c3 * x3) * x3
            L[k] += (e0 * x0) * x0 + (e1 * x1) * x1 + (e2 * x2) * x2 + (e3 * x3) * x3
        j += 4
    while j < n:
        a0, b0, c0, e0 = r[j], ra[j], rac[j], lw[j]
        for k in range(d):
            x0 = X[j, k]
            S[k] += a0 * x0
            P[k] += b0 * x0
            Q[k] += (c0 * x0) * x0
            L[k] += (e0 * x0) * x0
        j += 1


@nb.njit(cache=True, fastmath=False)
def _grad_1sam_full(X, y, wp, wm, gamma, rh, normalize, log_flow, beta, sq, S, P, Q, L, r, ra, rac,
                    lw, u, v, gp, gm, gD):
    """One full-batch 1-SAM step's descent direction (m = 1, D = all n examples).

    Same update as the chunk loop of :func:`run`, evaluated in closed form: with
    c = ρⱼ rⱼ the ascent point of example j is w̃ = (w₊ ⊙ (1 + c xⱼ), w₋ ⊙ (1 − c xⱼ)), so
        β(w̃) = β + 2c xⱼ ⊙ (w₊² + w₋²) + c² xⱼ² ⊙ β,
        r̃ⱼ = ⟨β(w̃), xⱼ⟩ − yⱼ = rⱼ + 2c ⟨xⱼ², w₊² + w₋²⟩ + c² ⟨xⱼ³, β⟩,
        Σⱼ ∇ℓⱼ(w̃ⱼ) = (w₊ ⊙ Σⱼ r̃ⱼ xⱼ ⊙ (1 + cⱼ xⱼ), −w₋ ⊙ Σⱼ r̃ⱼ xⱼ ⊙ (1 − cⱼ xⱼ)),
        Σⱼ ρⱼ aⱼ² = Σⱼ ρⱼ rⱼ² xⱼ²,   ‖∇ℓⱼ(w)‖² = rⱼ² ⟨xⱼ², w₊² + w₋²⟩ (normalization):
    two passes over the data per step instead of 2n. Writes gp, gm (un-scaled sums, as the chunk
    loop of :func:`run`) and gD, updates log_flow; returns False if the residuals are not finite.
    The rest are scratch arrays (β, w₊² + w₋², S, P, Q, L of length d; r, ra, rac, lw, u, v of length n)."""
    n, d = X.shape
    inv_n = 1.0 / n
    for k in range(d):
        beta[k] = wp[k] * wp[k] - wm[k] * wm[k]
        sq[k] = wp[k] * wp[k] + wm[k] * wm[k]
    _row_moments(X, beta, sq, r, u, v)
    s = 0.0
    for j in range(n):
        rj = r[j] - y[j]
        s += rj * rj
        rc = rh
        if rh != 0.0 and normalize:
            nrm = rj * rj * u[j]
            rc = rh / np.sqrt(nrm) if nrm > 0.0 else 0.0
        c = rc * rj
        r[j] = rj
        ra[j] = rj + 2.0 * c * u[j] + c * c * v[j]
        rac[j] = ra[j] * c
        lw[j] = rc * rj * rj
    if not (s < np.inf):
        return False
    _col_sums(X, r, ra, rac, lw, S, P, Q, L)
    coef = gamma * inv_n
    for k in range(d):
        gD[k] = S[k] * inv_n
        gp[k] = wp[k] * (P[k] + Q[k])
        gm[k] = -wm[k] * (P[k] - Q[k])
        log_flow[k] -= coef * L[k]
    return True


@nb.njit(cache=True, fastmath=False)
def _ascent_radius(rh, normalize, a, wp, wm):
    """ρ, or ρ/‖∇L_G(w)‖₂ with normalization, where ∇L_G(w) = (a ⊙ w₊, −a ⊙ w₋); 0 if the gradient
    vanishes (no ascent direction)."""
    if rh == 0.0 or not normalize:
        return rh
    nrm = 0.0
    for k in range(a.shape[0]):
        nrm += a[k] * a[k] * (wp[k] * wp[k] + wm[k] * wm[k])
    return rh / np.sqrt(nrm) if nrm > 0.0 else 0.0


@nb.njit(cache=True, fastmath=False)
def _loss(X, y, wp, wm):
    """(1/(4n)) Σ (⟨w₊² − w₋², xᵢ⟩ − yᵢ)²."""
    n, d = X.shape
    beta = np.empty(d)
    for k in range(d):
        beta[k] = wp[k] * wp[k] - wm[k] * wm[k]
    s = 0.0
    for i in range(n):
        r = _dot(X, i, beta) - y[i]
        s += r * r
    return 0.25 * s / n


@nb.njit(cache=True, fastmath=False)
def run(data, state, rates, t0, idx, aidx, opts, rec):
    """Advance ``state`` in place over steps t0 ≤ t < t0 + idx.shape[0] (arguments: module docstring).
    Returns the step at which the iterate became non-finite, or −1.

    Long because the step loop is one function on purpose: with mini-batches of a few examples a
    step costs a fraction of a microsecond, and calling (or numba-inlining) helpers with a dozen
    array arguments per step made SGD 15–40 % slower (measured on the bench workloads). The
    self-contained parts are helpers: the closed-form full-batch 1-SAM (:func:`_grad_1sam_full`),
    the fused 1-SAM ascent (:func:`_ascent_point`), the radius and the losses."""
    X, y, Xte, yte = data
    n, d = X.shape
    wp, wm, log_flow, log_disc = state[W_PLUS], state[W_MINUS], state[LOG_FLOW], state[LOG_DISC]
    m, normalize, rec_every = opts[O_M], opts[O_NORMALIZE] != 0, opts[O_RECORD_EVERY]
    full = idx.shape[1] == 0
    b = n if full else idx.shape[1]
    independent = aidx.shape[1] > 0
    # full-batch 1-SAM: all n ascent residuals in closed form, two passes over X (_grad_1sam_full)
    fast1 = not independent and m == 1 and full
    # per-coordinate scratch: β(w), β at an ascent point, S = Σ_{i∈D} rᵢ xᵢ at w, a_G, g_D, the descent sums,
    # the ascent point, a chunk's gradient sum, and the closed-form 1-SAM column sums
    beta, bt, S, a, gD = np.empty(d), np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    gp, gm, wpa, wma, ga = np.empty(d), np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    nf = b if fast1 else 0
    P, Q, L = np.empty(d if fast1 else 0), np.empty(d if fast1 else 0), np.empty(d if fast1 else 0)
    # per-example scratch: residuals at w, and the closed-form 1-SAM terms (full batch only)
    r = np.empty(b)
    ra_, rac, lw, u, v = np.empty(nf), np.empty(nf), np.empty(nf), np.empty(nf), np.empty(nf)
    rows = np.arange(b)
    inv_b = 1.0 / b
    nch = b // m
    for t in range(t0, t0 + idx.shape[0]):
        gamma = rates[LR, t]
        rh = rates[RHO, t]
        if fast1:
            if not _grad_1sam_full(X, y, wp, wm, gamma, rh, normalize, log_flow, beta, bt, S, P, Q, L, r, ra_, rac,
                                   lw, u, v, gp, gm, gD):
                return t
        else:
            if not full:
                for jj in range(b):
                    rows[jj] = idx[t - t0, jj]
            for k in range(d):
                beta[k] = wp[k] * wp[k] - wm[k] * wm[k]
                S[k] = 0.0
                gp[k] = 0.0
                gm[k] = 0.0
            # residuals at w on the descent batch; also the divergence check
            s = 0.0
            for jj in range(b):
                i = rows[jj]
                rj = _dot(X, i, beta) - y[i]
                r[jj] = rj
                s += rj * rj
                for k in range(d):
                    S[k] += rj * X[i, k]
            if not (s < np.inf):
                return t
            for k in range(d):
                gD[k] = S[k] * inv_b
            if not independent:
                for c in range(nch):
                    # a_G = (1/m) Σ_{i∈G} rᵢ xᵢ
                    if nch == 1:
                        for k in range(d):
                            a[k] = S[k] / m
                    elif m == 1:
                        rj = r[c]
                        i = rows[c]
                        if rh != 0.0 and not normalize:
                            # 1-SAM, fused: ascent point, log_flow and ascent residual in one pass
                            ra = _ascent_point(X, i, rj, rh, gamma * rh * inv_b, wp, wm, wpa, wma,
                                               log_flow) - y[i]
                            for k in range(d):
                                gk = ra * X[i, k]
                                gp[k] += gk * wpa[k]
                                gm[k] -= gk * wma[k]
                            continue
                        for k in range(d):
                            a[k] = rj * X[i, k]
                    else:
                        for k in range(d):
                            a[k] = 0.0
                        for jj in range(c * m, (c + 1) * m):
                            rj = r[jj]
                            i = rows[jj]
                            for k in range(d):
                                a[k] += rj * X[i, k]
                        for k in range(d):
                            a[k] /= m
                    rc = _ascent_radius(rh, normalize, a, wp, wm)
                    if rc == 0.0:
                        # descent at w itself: Σ_{i∈G} ∇ℓᵢ(w) = m a_G ⊙ (w₊, −w₋)
                        for k in range(d):
                            gp[k] += m * a[k] * wp[k]
                            gm[k] -= m * a[k] * wm[k]
                        continue
                    coef = gamma * rc * (m * inv_b)
                    for k in range(d):
                        wpa[k] = wp[k] * (1.0 + rc * a[k])
                        wma[k] = wm[k] * (1.0 - rc * a[k])
                        bt[k] = wpa[k] * wpa[k] - wma[k] * wma[k]
                        log_flow[k] -= coef * a[k] * a[k]
                    if m == 1:
                        i = rows[c]
                        ra = _dot(X, i, bt) - y[i]
                        for k in range(d):
                            gk = ra * X[i, k]
                            gp[k] += gk * wpa[k]
                            gm[k] -= gk * wma[k]
                        continue
                    for k in range(d):
                        ga[k] = 0.0
                    for jj in range(c * m, (c + 1) * m):
                        i = rows[jj]
                        ra = _dot(X, i, bt) - y[i]
                        for k in range(d):
                            ga[k] += ra * X[i, k]
                    for k in range(d):
                        gp[k] += ga[k] * wpa[k]
                        gm[k] -= ga[k] * wma[k]
            else:
                # eq. 5.21: one ascent point from the independent batch aidx[t − t0]
                ba = aidx.shape[1]
                for k in range(d):
                    a[k] = 0.0
                for jj in range(ba):
                    i = aidx[t - t0, jj]
                    ri = _dot(X, i, beta) - y[i]
                    for k in range(d):
                        a[k] += ri * X[i, k]
                for k in range(d):
                    a[k] /= ba
                rc = _ascent_radius(rh, normalize, a, wp, wm)
                for k in range(d):
                    wpa[k] = wp[k] * (1.0 + rc * a[k])
                    wma[k] = wm[k] * (1.0 - rc * a[k])
                    bt[k] = wpa[k] * wpa[k] - wma[k] * wma[k]
                    ga[k] = 0.0
                    log_flow[k] -= gamma * rc * a[k] * gD[k]
                for jj in range(b):
                    i = rows[jj]
                    ra = _dot(X, i, bt) - y[i]
                    for k in range(d):
                        ga[k] += ra * X[i, k]
                for k in range(d):
                    gp[k] = ga[k] * wpa[k]
                    gm[k] = -ga[k] * wma[k]
        step = gamma * inv_b
        hg2 = 0.5 * gamma * gamma
        for k in range(d):
            wp[k] -= step * gp[k]
            wm[k] -= step * gm[k]
            log_disc[k] -= hg2 * gD[k] * gD[k]
        if (t + 1) % rec_every == 0:
            c = (t + 1) // rec_every
            rec[REC_TRAIN, c] = _loss(X, y, wp, wm)
            rec[REC_TEST, c] = _loss(Xte, yte, wp, wm)
            if not (rec[REC_TRAIN, c] < np.inf):
                return t
    return -1


@nb.njit(cache=True, parallel=True)
def run_many(data, state, rates, t0, idx, aidx, opts, rec, status):
    """:func:`run` for S independent runs in parallel: every argument but ``t0`` carries a leading
    axis of length S (data is a tuple of stacked arrays). ``status[s]`` keeps the first divergence
    step of run s (−1 while finite); diverged runs are not advanced further."""
    X, y, Xte, yte = data
    for s in nb.prange(state.shape[0]):
        if status[s] >= 0:
            continue
        status[s] = run((X[s], y[s], Xte[s], yte[s]), state[s], rates[s], t0, idx[s], aidx[s], opts[s],
                        rec[s])
