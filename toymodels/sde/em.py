"""Measured strong and weak order of Euler–Maruyama on geometric Brownian motion.

dX = μX dt + σX dW, X₀ = x₀, exact solution X_T = x₀ exp((μ − σ²/2)T + σW_T). With N fine steps and
EM step h = ℓT/N for each level ℓ (all levels driven by the same Brownian path):

    strong error  e_s(h) = E|X_T^h − X_T|             (theory: O(h^{1/2}) for multiplicative noise)
    weak error    e_w(h) = |E X_T^h − E X_T|,  E X_T = x₀e^{μT}, and exactly E X_T^h = x₀(1 + μh)^{T/h}
                                                       (theory: O(h))

The weak error is estimated as the mean of X_T^h − X_T over paths (the coupling to the exact path
removes most of the Monte-Carlo variance of E X_T). Orders are least-squares slopes of log e vs log h;
their standard errors come from a delete-one-group jackknife over ``groups`` independent groups of
paths (the errors at different h share paths, so per-point standard errors are not independent).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import check_backend
from ..errors import ConfigError, check_finite, check_int, check_positive
from ..rng import stream
from . import _kernels, _reference

__all__ = ["OrderFit", "gbm_em_terminal", "em_orders", "weak_error_exact"]

#: paths·N at most in :func:`em_orders` (the increments take 8 bytes each: 8 GB)
MAX_INCREMENTS = 10 ** 9


@dataclass
class OrderFit:
    h: np.ndarray
    strong_err: np.ndarray
    weak_err: np.ndarray
    strong_order: float
    strong_se: float
    weak_order: float
    weak_se: float
    paths: int
    groups: int

    def ci(self, which: str, z: float = 1.96) -> tuple[float, float]:
        p, se = (self.strong_order, self.strong_se) if which == "strong" else (self.weak_order, self.weak_se)
        return p - z * se, p + z * se


def weak_error_exact(h, mu: float, T: float = 1.0, x0: float = 1.0):
    """x₀e^{μT} − x₀(1 + μh)^{T/h}: the exact weak error of EM on GBM (E X_{k+1} = (1 + μh) E X_k)."""
    h = np.asarray(h, dtype=np.float64)
    return x0 * (np.exp(mu * T) - (1.0 + mu * h) ** (T / h))


def gbm_em_terminal(dW, levels, mu: float, sigma: float, T: float = 1.0, x0: float = 1.0,
                    backend: str = "numba") -> np.ndarray:
    """Terminal EM values (len(levels), M) for increments dW (M, N); see :func:`._kernels.em_gbm`."""
    fn = {"numba": _kernels.em_gbm, "numpy": _reference.em_gbm}[check_backend(backend)]
    dW = np.ascontiguousarray(dW, dtype=np.float64)
    if dW.ndim != 2 or dW.shape[1] < 1:
        raise ConfigError("dW", "must be an (M, N) array of Brownian increments with N >= 1", dW.shape)
    levels = np.asarray(levels, dtype=np.int64).ravel()
    if levels.size == 0 or np.any(levels < 1) or np.any(dW.shape[1] % levels):
        raise ConfigError("levels", f"must be integers >= 1 that divide the number of fine steps N = {dW.shape[1]}",
                          levels.tolist())
    out = np.empty((levels.size, dW.shape[0]))
    fn(check_finite("x0", x0), check_finite("mu", mu), check_finite("sigma", sigma), check_positive("T", T),
       dW, levels, out)
    return out


def _slope(logh, loge):
    return float(np.polyfit(logh, loge, 1)[0])


def em_orders(mu: float = 1.0, sigma: float = 0.5, T: float = 1.0, x0: float = 1.0, N: int = 256,
              levels=(64, 32, 16, 8, 4), paths: int = 40_000, groups: int = 20, seed: int = 0,
              backend: str = "numba") -> OrderFit:
    """Fit the strong and weak orders of EM on GBM (see the module docstring).

    Returns
    -------
    OrderFit
        Errors per step size h = ℓT/N, slopes and their jackknife standard errors.
    """
    check_positive("sigma", sigma)
    check_positive("T", T)
    check_int("N", N, 1)
    check_int("groups", groups, 2)
    check_int("paths", paths, groups)
    if paths % groups:
        raise ConfigError("paths", f"must be a multiple of groups = {groups}", paths)
    if paths * N > MAX_INCREMENTS:
        raise ConfigError("paths", f"must be <= {MAX_INCREMENTS // N} at N = {N} (paths·N <= 10^9: the "
                                   "increments take 8 bytes each)", paths)
    rng = stream(seed)
    dW = rng.standard_normal((paths, N)) * np.sqrt(T / N)
    XT = x0 * np.exp((mu - 0.5 * sigma**2) * T + sigma * dW.sum(axis=1))
    Xh = gbm_em_terminal(dW, levels, mu, sigma, T, x0, backend)
    diff = Xh - XT[None, :]
    h = np.asarray(levels, dtype=np.float64) * T / N
    logh = np.log(h)
    # per-group sums, so that the pooled mean without group k is cheap
    gs = diff.reshape(len(levels), groups, -1)
    s_abs, s_raw = np.abs(gs).sum(axis=2), gs.sum(axis=2)
    m = paths // groups

    def orders(sel):
        n_ = sel.sum() * m
        es = s_abs[:, sel].sum(axis=1) / n_
        ew = np.abs(s_raw[:, sel].sum(axis=1) / n_)
        return es, ew

    es, ew = orders(np.ones(groups, bool))
    ps, pw = _slope(logh, np.log(es)), _slope(logh, np.log(ew))
    jk = []
    for k in range(groups):
        sel = np.ones(groups, bool)
        sel[k] = False
        a, b = orders(sel)
        jk.append((_slope(logh, np.log(a)), _slope(logh, np.log(b))))
    jk = np.asarray(jk)
    se = np.sqrt((groups - 1) / groups * ((jk - jk.mean(axis=0)) ** 2).sum(axis=0))
    return OrderFit(h, es, ew, ps, float(se[0]), pw, float(se[1]), paths, groups)
