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

Lean variants :func:`run_lean` / :func:`run_many_lean` (same arguments) skip both logs (their rows of
``state`` are left untouched) and take a fused step for plain GD/SGD (ρ_t = 0, one chunk): residuals,
then w and the next β(w) in one pass. They are the same source as :func:`run` (``_run_impl``, whose
``logs`` argument is True or None; numba prunes the ``logs is None`` branches at compile time), and
end at the same w₊, w₋, recorded losses and divergence step bit for bit (tests/test_dln_lean.py).
Sweeps and ensembles that do not need the implicit-bias prediction use them
(``train(..., theory=False)``, ``train_ensemble(..., theory=False)``, ``python -m toymodels.dln
--no-theory``): about 3× faster on SGD with batch 1, 1.1–1.4× on full batches.

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
2n row passes. Full and mini batches read X in blocks of 8 rows (:func:`_residual_sums`: one pass
from L2 a step, the block's second use from L1). Those blocked passes run on a 64-byte aligned copy of X
padded with zero columns to a multiple of 8 (made once per call), so that every row starts on a cache
line (misaligned rows measured ~25 % slower); the zeros add exact zeros to every sum. Results agree with the numpy reference to
rounding (≈1e-14 relative on w)."""
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
    """⟨X[i], v⟩ (over the X.shape[1] columns of X; v may be longer)."""
    s = 0.0
    for k in range(X.shape[1]):
        s += X[i, k] * v[k]
    return s


@nb.njit(cache=True, fastmath=_DOT_MATH)
def _residual_sums(X, y, rows, beta, r, S):
    """rⱼ = ⟨x_{rows[j]}, β⟩ − y_{rows[j]} for every j, S = Σⱼ rⱼ x_{rows[j]}; returns Σⱼ rⱼ² (inf/NaN
    when a residual is). Rows in blocks of 8 (then 4, then single rows): β is loaded once per block
    for its dot products, and S once per block for its updates (the block's rows are still in L1).
    X is read once from L2 a step; eight independent dot products per block keep the FMA units busy
    (blocks of 8 instead of 4: ~10 % faster full-batch GD at n=80, d=200)."""
    b, d = rows.shape[0], X.shape[1]
    for k in range(d):
        S[k] = 0.0
    s = 0.0
    j = 0
    while j + 8 <= b:
        x0, x1, x2, x3 = X[rows[j]], X[rows[j + 1]], X[rows[j + 2]], X[rows[j + 3]]
        x4, x5, x6, x7 = X[rows[j + 4]], X[rows[j + 5]], X[rows[j + 6]], X[rows[j + 7]]
        p0 = p1 = p2 = p3 = p4 = p5 = p6 = p7 = 0.0
        for k in range(d):
            bk = beta[k]
            p0 += x0[k] * bk
            p1 += x1[k] * bk
            p2 += x2[k] * bk
            p3 += x3[k] * bk
            p4 += x4[k] * bk
            p5 += x5[k] * bk
            p6 += x6[k] * bk
            p7 += x7[k] * bk
        r0, r1, r2, r3 = p0 - y[rows[j]], p1 - y[rows[j + 1]], p2 - y[rows[j + 2]], p3 - y[rows[j + 3]]
        r4, r5, r6, r7 = p4 - y[rows[j + 4]], p5 - y[rows[j + 5]], p6 - y[rows[j + 6]], p7 - y[rows[j + 7]]
        r[j], r[j + 1], r[j + 2], r[j + 3] = r0, r1, r2, r3
        r[j + 4], r[j + 5], r[j + 6], r[j + 7] = r4, r5, r6, r7
        s += r0 * r0 + r1 * r1 + r2 * r2 + r3 * r3 + r4 * r4 + r5 * r5 + r6 * r6 + r7 * r7
        for k in range(d):
            S[k] += (r0 * x0[k] + r1 * x1[k] + r2 * x2[k] + r3 * x3[k]
                     + r4 * x4[k] + r5 * x5[k] + r6 * x6[k] + r7 * x7[k])
        j += 8
    while j + 4 <= b:
        i0, i1, i2, i3 = rows[j], rows[j + 1], rows[j + 2], rows[j + 3]
        x0, x1, x2, x3 = X[i0], X[i1], X[i2], X[i3]       # row views: simpler addressing, ~25 % faster
        p0 = p1 = p2 = p3 = 0.0
        for k in range(d):
            bk = beta[k]
            p0 += x0[k] * bk
            p1 += x1[k] * bk
            p2 += x2[k] * bk
            p3 += x3[k] * bk
        r0, r1, r2, r3 = p0 - y[i0], p1 - y[i1], p2 - y[i2], p3 - y[i3]
        r[j], r[j + 1], r[j + 2], r[j + 3] = r0, r1, r2, r3
        s += r0 * r0 + r1 * r1 + r2 * r2 + r3 * r3
        for k in range(d):
            S[k] += r0 * x0[k] + r1 * x1[k] + r2 * x2[k] + r3 * x3[k]
        j += 4
    while j < b:
        i = rows[j]
        p0 = 0.0
        for k in range(d):
            p0 += X[i, k] * beta[k]
        r0 = p0 - y[i]
        r[j] = r0
        s += r0 * r0
        for k in range(d):
            S[k] += r0 * X[i, k]
        j += 1
    return s


@nb.njit(cache=True, fastmath=_DOT_MATH)
def _ascent_point(X, i, rj, rc, coef, wp, wm, wpa, wma, log_flow, logs):
    """1-SAM ascent on example i (a = rⱼ xᵢ): writes w̃ = (wpa, wma), log_flow −= coef a² (unless
    ``logs`` is None: the lean variant), and returns ⟨β(w̃), xᵢ⟩ (one fused pass; the log in a pass of
    its own, so that the reassociated sum is vectorized alike, and equal, in both variants)."""
    p = 0.0
    for k in range(wp.shape[0]):
        ak = rj * X[i, k]
        u = wp[k] * (1.0 + rc * ak)
        v = wm[k] * (1.0 - rc * ak)
        wpa[k] = u
        wma[k] = v
        p += X[i, k] * (u * u - v * v)
    if logs is not None:
        for k in range(wp.shape[0]):
            ak = rj * X[i, k]
            log_flow[k] -= coef * ak * ak
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
def _col_sums(X, r, ra, rac, lw, S, P, Q, L, logs):
    """S = Σⱼ rⱼ xⱼ, P = Σⱼ raⱼ xⱼ, Q = Σⱼ racⱼ xⱼ², L = Σⱼ lwⱼ xⱼ² (rows in blocks of 4 so that the
    four sums are loaded and stored once per block). With ``logs`` None (lean) only P and Q: S and L
    feed the theory logs only."""
    n, d = X.shape
    for k in range(d):
        P[k] = 0.0
        Q[k] = 0.0
        if logs is not None:
            S[k] = 0.0
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
            P[k] += b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3
            Q[k] += (c0 * x0) * x0 + (c1 * x1) * x1 + (c2 * x2) * x2 + (c3 * x3) * x3
            if logs is not None:
                S[k] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
                L[k] += (e0 * x0) * x0 + (e1 * x1) * x1 + (e2 * x2) * x2 + (e3 * x3) * x3
        j += 4
    while j < n:
        a0, b0, c0, e0 = r[j], ra[j], rac[j], lw[j]
        for k in range(d):
            x0 = X[j, k]
            P[k] += b0 * x0
            Q[k] += (c0 * x0) * x0
            if logs is not None:
                S[k] += a0 * x0
                L[k] += (e0 * x0) * x0
        j += 1


@nb.njit(cache=True, fastmath=False)
def _grad_1sam_full(X, y, wp, wm, gamma, rh, normalize, log_flow, beta, sq, S, P, Q, L, r, ra, rac,
                    lw, u, v, gp, gm, gD, logs):
    """One full-batch 1-SAM step's descent direction (m = 1, D = all n examples).

    Same update as the chunk loop of :func:`run`, evaluated in closed form: with
    c = ρⱼ rⱼ the ascent point of example j is w̃ = (w₊ ⊙ (1 + c xⱼ), w₋ ⊙ (1 − c xⱼ)), so
        β(w̃) = β + 2c xⱼ ⊙ (w₊² + w₋²) + c² xⱼ² ⊙ β,
        r̃ⱼ = ⟨β(w̃), xⱼ⟩ − yⱼ = rⱼ + 2c ⟨xⱼ², w₊² + w₋²⟩ + c² ⟨xⱼ³, β⟩,
        Σⱼ ∇ℓⱼ(w̃ⱼ) = (w₊ ⊙ Σⱼ r̃ⱼ xⱼ ⊙ (1 + cⱼ xⱼ), −w₋ ⊙ Σⱼ r̃ⱼ xⱼ ⊙ (1 − cⱼ xⱼ)),
        Σⱼ ρⱼ aⱼ² = Σⱼ ρⱼ rⱼ² xⱼ²,   ‖∇ℓⱼ(w)‖² = rⱼ² ⟨xⱼ², w₊² + w₋²⟩ (normalization):
    two passes over the data per step instead of 2n. Writes gp, gm (un-scaled sums, as the chunk
    loop of :func:`run`) and gD, updates log_flow (neither with ``logs`` None: the lean variant);
    returns False if the residuals are not finite.
    X may carry zero columns past d = len(w₊) (:func:`_run_impl` pads d to a multiple of 8 so that
    the rows of X are aligned for the vectorized loops of :func:`_row_moments` and :func:`_col_sums`;
    a zero column adds exact zeros to every sum). The rest are scratch arrays (β, w₊² + w₋², S, P,
    Q, L of length X.shape[1], with zero tails for β and w₊² + w₋²; r, ra, rac, lw, u, v of length n)."""
    n, d = X.shape[0], wp.shape[0]
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
    _col_sums(X, r, ra, rac, lw, S, P, Q, L, logs)
    coef = gamma * inv_n
    for k in range(d):
        gp[k] = wp[k] * (P[k] + Q[k])
        gm[k] = -wm[k] * (P[k] - Q[k])
        if logs is not None:
            gD[k] = S[k] * inv_n
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


@nb.njit(cache=True)
def _aligned_zeros(size):
    """A float64 array of ``size`` zeros whose data starts on a 64-byte boundary (a cache line)."""
    buf = np.zeros(size + 8)
    off = (64 - buf.ctypes.data % 64) % 64 // 8
    return buf[off:off + size]


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
    """Advance ``state`` in place over steps t0 ≤ t < t0 + idx.shape[0] (arguments: module docstring),
    with the implicit-bias logs. Returns the step at which the iterate became non-finite, or −1."""
    return _run_impl(data, state, rates, t0, idx, aidx, opts, rec, True)


@nb.njit(cache=True, fastmath=False)
def run_lean(data, state, rates, t0, idx, aidx, opts, rec):
    """:func:`run` without the implicit-bias logs: rows LOG_FLOW and LOG_DISC of ``state`` are left
    as they are; w₊, w₋, ``rec`` and the returned divergence step are those of :func:`run`, bit for
    bit (tested). For runs that do not need the theory (ensembles, sweeps, ``--no-theory``)."""
    return _run_impl(data, state, rates, t0, idx, aidx, opts, rec, None)


@nb.njit(cache=True, fastmath=False)
def _run_impl(data, state, rates, t0, idx, aidx, opts, rec, logs):
    """The step loop of :func:`run` (``logs`` True) and :func:`run_lean` (``logs`` None). numba
    prunes the branches ``logs is (not) None`` at compile time, so the two are separately compiled
    specializations of one source: the lean one without the log updates, and with a fused step for
    plain GD/SGD (ρ_t = 0, one chunk), whose arithmetic on w is that of the generic step.

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
    bt, a, gD = np.empty(d), np.empty(d), np.empty(d)
    gp, gm, wpa, wma, ga = np.empty(d), np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    nf = b if fast1 else 0
    # the blocked passes over X (_residual_sums, the closed-form 1-SAM) read a 64-byte aligned copy
    # padded with zero columns to dp = 8⌈d/8⌉, so that every row starts on a cache line and ends with
    # a full 8-lane vector (measured: misaligned rows make those passes ~25 % slower; d = 30 rows
    # are). β, S (and w₊² + w₋²) have dp entries whose tails stay 0, so every sum is that over the d
    # real columns plus exact zeros.
    dp = (d + 7) // 8 * 8
    pad = fast1 or b > 1
    Xp = _aligned_zeros(n * dp if pad else 0).reshape((n if pad else 0, dp))
    if pad:
        Xp[:, :d] = X
    df = dp if fast1 else 0
    beta, S, sp = _aligned_zeros(dp), _aligned_zeros(dp), _aligned_zeros(df)
    P, Q, L = _aligned_zeros(df), _aligned_zeros(df), _aligned_zeros(df)
    # per-example scratch: residuals at w, and the closed-form 1-SAM terms (full batch only)
    r = np.empty(b)
    ra_, rac, lw, u, v = np.empty(nf), np.empty(nf), np.empty(nf), np.empty(nf), np.empty(nf)
    rows = np.arange(b)
    inv_b = 1.0 / b
    nch = b // m
    fresh = False          # lean fused step: β(w) already computed at the end of the previous step
    next_rec = (t0 // rec_every + 1) * rec_every      # the next t + 1 divisible by rec_every (no % a step)
    for t in range(t0, t0 + idx.shape[0]):
        gamma = rates[LR, t]
        rh = rates[RHO, t]
        if logs is None and rh == 0.0 and nch == 1 and not independent and not fast1:
            # lean plain GD/SGD step: residuals, then w and the next β(w) in one pass (same arithmetic on
            # w as the generic path below: S, g = S ⊙ (w₊, −w₋) for one chunk at ρ = 0, w −= (γ/b) g)
            if not fresh:
                for k in range(d):
                    beta[k] = wp[k] * wp[k] - wm[k] * wm[k]
            step = gamma * inv_b
            if b == 1:
                i = 0 if full else idx[t - t0, 0]
                rj = _dot(X, i, beta) - y[i]
                if not (rj * rj < np.inf):
                    return t
                for k in range(d):      # m = b = 1: a = S/m and m a are exact, left out
                    ak = rj * X[i, k]
                    p = wp[k] - step * (ak * wp[k])
                    q = wm[k] + step * (ak * wm[k])
                    wp[k] = p
                    wm[k] = q
                    beta[k] = p * p - q * q
            else:
                if not full:
                    for jj in range(b):
                        rows[jj] = idx[t - t0, jj]
                if not (_residual_sums(Xp, y, rows, beta, r, S) < np.inf):
                    return t
                for k in range(d):
                    p = wp[k] - step * (S[k] * wp[k])
                    q = wm[k] + step * (S[k] * wm[k])
                    wp[k] = p
                    wm[k] = q
                    beta[k] = p * p - q * q
            fresh = True
        elif fast1:
            fresh = False
            if not _grad_1sam_full(Xp, y, wp, wm, gamma, rh, normalize, log_flow, beta, sp, S, P, Q, L, r, ra_,
                                   rac, lw, u, v, gp, gm, gD, logs):
                return t
        else:
            fresh = False
            if not full:
                for jj in range(b):
                    rows[jj] = idx[t - t0, jj]
            for k in range(d):
                beta[k] = wp[k] * wp[k] - wm[k] * wm[k]
                gp[k] = 0.0
                gm[k] = 0.0
            # residuals at w on the descent batch, S = Σ rᵢ xᵢ; also the divergence check
            if b == 1:
                i = rows[0]
                rj = _dot(X, i, beta) - y[i]
                r[0] = rj
                s = rj * rj
                for k in range(d):
                    S[k] = rj * X[i, k]
            else:
                s = _residual_sums(Xp, y, rows, beta, r, S)
            if not (s < np.inf):
                return t
            if logs is not None:
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
                                               log_flow, logs) - y[i]
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
                        # (= S ⊙ (w₊, −w₋) for one chunk, without the rounding of m (S/m))
                        if nch == 1:
                            for k in range(d):
                                gp[k] += S[k] * wp[k]
                                gm[k] -= S[k] * wm[k]
                            continue
                        for k in range(d):
                            gp[k] += m * a[k] * wp[k]
                            gm[k] -= m * a[k] * wm[k]
                        continue
                    coef = gamma * rc * (m * inv_b)
                    for k in range(d):
                        wpa[k] = wp[k] * (1.0 + rc * a[k])
                        wma[k] = wm[k] * (1.0 - rc * a[k])
                        bt[k] = wpa[k] * wpa[k] - wma[k] * wma[k]
                        if logs is not None:
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
                    if logs is not None:
                        log_flow[k] -= gamma * rc * a[k] * gD[k]
                for jj in range(b):
                    i = rows[jj]
                    ra = _dot(X, i, bt) - y[i]
                    for k in range(d):
                        ga[k] += ra * X[i, k]
                for k in range(d):
                    gp[k] = ga[k] * wpa[k]
                    gm[k] = -ga[k] * wma[k]
        if not fresh:          # not the fused step: w −= (γ/b) g, and the discretization log
            step = gamma * inv_b
            hg2 = 0.5 * gamma * gamma
            for k in range(d):
                wp[k] -= step * gp[k]
                wm[k] -= step * gm[k]
                if logs is not None:
                    log_disc[k] -= hg2 * gD[k] * gD[k]
        if t + 1 == next_rec:
            next_rec += rec_every
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


@nb.njit(cache=True, parallel=True)
def run_many_lean(data, state, rates, t0, idx, aidx, opts, rec, status):
    """:func:`run_many` with :func:`run_lean` (no implicit-bias logs; w and ``rec`` bit for bit
    those of :func:`run_many`)."""
    X, y, Xte, yte = data
    for s in nb.prange(state.shape[0]):
        if status[s] >= 0:
            continue
        status[s] = run_lean((X[s], y[s], Xte[s], yte[s]), state[s], rates[s], t0, idx[s], aidx[s], opts[s],
                             rec[s])
