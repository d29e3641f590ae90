"""Plain-numpy references of :mod:`toymodels.dln._kernels` (same names, arguments and semantics).

Vectorized per step (all chunks of a step at once), never deliberately slow: the test oracle of the
numba kernels, timed by ``python -m toymodels.bench`` as ``reference_s`` (the speed-ups themselves are
against the leaner loops of :mod:`toymodels.bench.dln`, which keep no logs). The kernels reassociate their dot
products (and evaluate full-batch 1-SAM in closed form), so the two agree to rounding, not bit for bit.
"""
from __future__ import annotations

import numpy as np

from ..kernels import KernelCase
from . import _kernels
from ._kernels import (LOG_DISC, LOG_FLOW, LR, O_M, O_NORMALIZE, O_RECORD_EVERY, REC_TEST, REC_TRAIN, RHO,
                       W_MINUS, W_PLUS)


def _loss(X, y, wp, wm):
    r = X @ (wp * wp - wm * wm) - y
    return 0.25 * float(r @ r) / X.shape[0]


def _radius(rh, normalize, A, wp, wm):
    """ρ per row of A (the ascent directions a_G), or ρ/‖∇L_G‖ with normalization (0 where it vanishes)."""
    if rh == 0.0 or not normalize:
        return np.full(A.shape[0], rh)
    nrm = np.sqrt((A * A) @ (wp * wp + wm * wm))
    return np.divide(rh, nrm, out=np.zeros(A.shape[0]), where=nrm > 0)


def _chunked_direction(XD, yD, r, wp, wm, rh, m, normalize):
    """(gp, gm, Σ_G ρ_G a_G²) of the chunked ascent, all chunks at once."""
    b, d = XD.shape
    C = b // m
    XC = XD.reshape(C, m, d)
    A = np.einsum("cm,cmd->cd", r.reshape(C, m), XC) / m          # a_G per chunk
    rc = _radius(rh, normalize, A, wp, wm)
    WPA = wp * (1.0 + rc[:, None] * A)
    WMA = wm * (1.0 - rc[:, None] * A)
    RA = np.einsum("cmd,cd->cm", XC, WPA * WPA - WMA * WMA) - yD.reshape(C, m)
    GA = np.einsum("cm,cmd->cd", RA, XC)
    return (GA * WPA).sum(0), -(GA * WMA).sum(0), (rc[:, None] * A * A).sum(0)


def _independent_direction(XD, yD, XA, yA, beta, wp, wm, rh, normalize):
    """(gp, gm, ρ_A a_A) of eq. 5.21."""
    a = (XA @ beta - yA) @ XA / XA.shape[0]
    rc = _radius(rh, normalize, a[None, :], wp, wm)[0]
    wpa = wp * (1.0 + rc * a)
    wma = wm * (1.0 - rc * a)
    ga = (XD @ (wpa * wpa - wma * wma) - yD) @ XD
    return ga * wpa, -ga * wma, rc * a


def run(data, state, rates, t0, idx, aidx, opts, rec):
    """The kernel's computation (see :mod:`toymodels.dln._kernels`), vectorized per step."""
    with np.errstate(over="ignore", invalid="ignore"):      # a diverging run is reported by its step
        return _run(data, state, rates, t0, idx, aidx, opts, rec)


def _run(data, state, rates, t0, idx, aidx, opts, rec):
    X, y, Xte, yte = data
    n = X.shape[0]
    wp, wm, log_flow, log_disc = state[W_PLUS], state[W_MINUS], state[LOG_FLOW], state[LOG_DISC]
    m, normalize, rec_every = int(opts[O_M]), bool(opts[O_NORMALIZE]), int(opts[O_RECORD_EVERY])
    full = idx.shape[1] == 0
    b = n if full else idx.shape[1]
    for j in range(idx.shape[0]):
        t = t0 + j
        gamma, rh = rates[LR, t], rates[RHO, t]
        XD, yD = (X, y) if full else (X[idx[j]], y[idx[j]])
        beta = wp * wp - wm * wm
        r = XD @ beta - yD
        if not np.isfinite(r @ r):
            return t
        gD = r @ XD / b
        if aidx.shape[1] > 0:
            gp, gm, ra = _independent_direction(XD, yD, X[aidx[j]], y[aidx[j]], beta, wp, wm, rh, normalize)
            log_flow -= gamma * ra * gD
        else:
            gp, gm, flow = _chunked_direction(XD, yD, r, wp, wm, rh, m, normalize)
            log_flow -= gamma * (m / b) * flow
        wp -= (gamma / b) * gp
        wm -= (gamma / b) * gm
        log_disc -= 0.5 * gamma * gamma * gD * gD
        if (t + 1) % rec_every == 0:
            c = (t + 1) // rec_every
            rec[REC_TRAIN, c] = _loss(X, y, wp, wm)
            rec[REC_TEST, c] = _loss(Xte, yte, wp, wm)
            if not rec[REC_TRAIN, c] < np.inf:
                return t
    return -1


def run_many(data, state, rates, t0, idx, aidx, opts, rec, status):
    """:func:`run` for each of the S stacked runs (one after another)."""
    X, y, Xte, yte = data
    for s in range(state.shape[0]):
        if status[s] < 0:
            status[s] = run((X[s], y[s], Xte[s], yte[s]), state[s], rates[s], t0, idx[s], aidx[s], opts[s], rec[s])


def run_lean(data, state, rates, t0, idx, aidx, opts, rec):
    """:func:`run` with rows LOG_FLOW and LOG_DISC of ``state`` left as they were (the lean kernel's
    contract: only w₊, w₋, ``rec`` and the divergence step)."""
    logs = state[2:].copy()
    out = run(data, state, rates, t0, idx, aidx, opts, rec)
    state[2:] = logs
    return out


def run_many_lean(data, state, rates, t0, idx, aidx, opts, rec, status):
    """:func:`run_lean` for each of the S stacked runs (one after another)."""
    X, y, Xte, yte = data
    for s in range(state.shape[0]):
        if status[s] < 0:
            status[s] = run_lean((X[s], y[s], Xte[s], yte[s]), state[s], rates[s], t0, idx[s], aidx[s], opts[s],
                                 rec[s])


# ----------------------------------------------------------------------------------------------------
# the registry: kernel vs reference on the algorithms' code paths

def _run_args(size: str, sam: str = "1", algo: str = "gd", batch: int | None = None, **kw) -> tuple:
    """Arguments of one run from :func:`toymodels.dln.train.prepare` on the sparse-regression problem
    (seed 0): small: n = 12, d = 16, 300 steps; bench: n = 80, d = 200, 10⁴ steps."""
    from ..datasets import make_sparse_regression
    from .train import DLNConfig, prepare

    n, d, steps = (12, 16, 300) if size == "small" else (80, 200, 10_000)
    data = make_sparse_regression(n, d, 3, n_test=20, seed=0)
    st = prepare(data, DLNConfig(sam=sam, algo=algo, batch=batch, steps=steps, record_every=max(1, steps // 30),
                                 **kw))
    idx, aidx = st.batches(0, steps)
    return st.data_tuple(), st.state, st.rates, 0, idx, aidx, st.opts, st.rec


def _run_many_args(size: str) -> tuple:
    """Four SGD m-SAM runs (seeds 0–3, ρ = 0, 1/d, 2/d, 4/d) stacked; the second diverges (γ = 3)."""
    from ..datasets import make_sparse_regression
    from .ensemble import stack_states
    from .train import DLNConfig, prepare

    n, d, steps = (12, 16, 200) if size == "small" else (80, 200, 5000)
    states = []
    for s in range(4):
        data = make_sparse_regression(n, d, 3, n_test=20, seed=s)
        cfg = DLNConfig(sam="m", m=2, algo="sgd", batch=4, rho=s / d, lr=(3.0 if s == 1 else 1.0 / d), alpha=0.3,
                        steps=steps, record_every=10, seed=s)
        states.append(prepare(data, cfg))
    return (*stack_states(states, 0, steps), np.full(4, -1, dtype=np.int64))


_WHY = ("the kernel reassociates its dot products (fastmath reassoc) and evaluates full-batch 1-SAM in "
        "closed form: agreement to rounding (≈1e-14 relative)")
_TOL = dict(rtol=1e-9, atol=1e-12, why=_WHY)

CASES = [
    KernelCase("dln.run.1sam-gd", _kernels.run, run, lambda size: _run_args(size, "1"), **_TOL),
    KernelCase("dln.run.1sam-gd-normalized", _kernels.run, run,
               lambda size: _run_args(size, "1", normalize=True, rho=0.002), **_TOL),
    KernelCase("dln.run.nsam-gd-warmup", _kernels.run, run,
               lambda size: _run_args(size, "n", schedule="linear-warmup", warmup_steps=50,
                                      rho_schedule="same-as-lr"), **_TOL),
    KernelCase("dln.run.erm-sgd", _kernels.run, run, lambda size: _run_args(size, "none", "sgd", 1), **_TOL),
    KernelCase("dln.run.1sam-sgd", _kernels.run, run, lambda size: _run_args(size, "1", "sgd", 4), **_TOL),
    KernelCase("dln.run.msam-sgd-normalized", _kernels.run, run,
               lambda size: _run_args(size, "m", "sgd", 4, m=2, normalize=True, rho=0.002,
                                      replacement=False), **_TOL),
    KernelCase("dln.run.nsam-independent-ascent", _kernels.run, run,
               lambda size: _run_args(size, "n", "sgd", 4, ascent="independent", ascent_batch=2), **_TOL),
    KernelCase("dln.run_many", _kernels.run_many, run_many, _run_many_args, **_TOL),
    KernelCase("dln.run_lean.1sam-gd", _kernels.run_lean, run_lean, lambda size: _run_args(size, "1"), **_TOL),
    KernelCase("dln.run_lean.erm-gd", _kernels.run_lean, run_lean, lambda size: _run_args(size, "none"), **_TOL),
    KernelCase("dln.run_lean.erm-sgd", _kernels.run_lean, run_lean, lambda size: _run_args(size, "none", "sgd", 1),
               **_TOL),
    KernelCase("dln.run_many_lean", _kernels.run_many_lean, run_many_lean, _run_many_args, **_TOL),
]

