"""Plain-numpy reference of :func:`toymodels.dln._kernels._run` (same signature and semantics).

Vectorized per step (all chunks of a step at once), never deliberately slow: it is the test oracle
for the numba kernel and the baseline of ``python -m toymodels.bench``.
"""
from __future__ import annotations

import numpy as np


def _loss(X, y, wp, wm):
    r = X @ (wp * wp - wm * wm) - y
    return 0.25 * float(r @ r) / X.shape[0]


def run_reference(X, y, Xte, yte, wp, wm, lr, rho, t0, t1, idx, aidx, mode, m, normalize,
                  log_flow, log_disc, rec_every, rec_train, rec_test):
    n, d = X.shape
    full = idx.shape[1] == 0
    b = n if full else idx.shape[1]
    for t in range(t0, t1):
        gamma, rh = lr[t], rho[t]
        XD = X if full else X[idx[t - t0]]
        yD = y if full else y[idx[t - t0]]
        beta = wp * wp - wm * wm
        r = XD @ beta - yD
        if not np.isfinite(r @ r):
            return t
        gD = r @ XD / b
        if mode == 0:
            C = b // m
            XC = XD.reshape(C, m, d)
            A = np.einsum("cm,cmd->cd", r.reshape(C, m), XC) / m          # a_G per chunk
            rc = np.full(C, rh)
            if rh != 0.0 and normalize:
                nrm = np.sqrt((A * A) @ (wp * wp + wm * wm))
                rc = np.divide(rh, nrm, out=np.zeros(C), where=nrm > 0)
            WPA = wp * (1.0 + rc[:, None] * A)
            WMA = wm * (1.0 - rc[:, None] * A)
            RA = np.einsum("cmd,cd->cm", XC, WPA * WPA - WMA * WMA) - yD.reshape(C, m)
            GA = np.einsum("cm,cmd->cd", RA, XC)
            gp = (GA * WPA).sum(0)
            gm = -(GA * WMA).sum(0)
            log_flow -= gamma * (m / b) * (rc[:, None] * A * A).sum(0)
        else:
            XA = X[aidx[t - t0]]
            a = (XA @ beta - y[aidx[t - t0]]) @ XA / XA.shape[0]
            rc = rh
            if rh != 0.0 and normalize:
                nrm = np.sqrt((a * a) @ (wp * wp + wm * wm))
                rc = rh / nrm if nrm > 0 else 0.0
            wpa = wp * (1.0 + rc * a)
            wma = wm * (1.0 - rc * a)
            ga = (XD @ (wpa * wpa - wma * wma) - yD) @ XD
            gp, gm = ga * wpa, -ga * wma
            log_flow -= gamma * rc * a * gD
        wp -= (gamma / b) * gp
        wm -= (gamma / b) * gm
        log_disc -= 0.5 * gamma * gamma * gD * gD
        if (t + 1) % rec_every == 0:
            j = (t + 1) // rec_every
            rec_train[j] = _loss(X, y, wp, wm)
            rec_test[j] = _loss(Xte, yte, wp, wm)
            if not rec_train[j] < np.inf:
                return t
    return -1
