"""Data for the regression toy models: a sparse-regression generator and a validated ``.npz`` loader.

Sparse regression (thesis Sec. 5.5.2, Fig. 5.13): xᵢ ~ N(0, I_d) i.i.d., β* has k nonzero entries
on a uniformly random support with values ±1 (random signs), yᵢ = ⟨β*, xᵢ⟩ + σ εᵢ with εᵢ ~ N(0, 1)
(training labels only; test labels are noiseless, so the test loss measures the distance to β*:
with the ¼-normalized loss, E test loss = ¼‖β − β*‖²).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._cli import UsageError, check_int_range, check_nonneg

__all__ = ["RegressionData", "make_sparse_regression", "load_npz"]


@dataclass(frozen=True)
class RegressionData:
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    beta_star: np.ndarray | None = None
    source: str = "generated"

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def n_test(self) -> int:
        return self.X_test.shape[0]


def make_sparse_regression(n: int = 20, d: int = 30, k: int = 3, n_test: int = 1000, noise: float = 0.0,
                           seed: int = 0) -> RegressionData:
    """Draw the sparse regression problem described in the module docstring (deterministic in seed)."""
    check_int_range("n", n, 1)
    check_int_range("d", d, 1)
    check_int_range("k", k, 0, d)
    check_int_range("n_test", n_test, 1)
    check_nonneg("noise", noise)
    rng = np.random.default_rng([seed, 0x5EED])
    beta = np.zeros(d)
    support = rng.choice(d, size=k, replace=False)
    beta[support] = rng.choice([-1.0, 1.0], size=k)
    X = rng.standard_normal((n, d))
    X_test = rng.standard_normal((n_test, d))
    y = X @ beta + noise * rng.standard_normal(n)
    return RegressionData(X, y, X_test, X_test @ beta, beta, source="generated")


def _array(z, key: str, path: str) -> np.ndarray:
    if key not in z.files:
        raise UsageError(f"--data {path}: missing array '{key}' (need X, y, X_test, y_test; beta_star optional)")
    a = z[key]
    if a.dtype.kind not in "biuf":
        raise UsageError(f"--data {path}: array '{key}' must be numeric, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise UsageError(f"--data {path}: array '{key}' contains NaN or inf")
    return a


def load_npz(path: str | Path) -> RegressionData:
    """Load ``X (n,d), y (n,), X_test (m,d), y_test (m,)`` and optional ``beta_star (d,)``.

    Every problem (missing file, not an npz, missing/mismatched/non-finite arrays) raises
    :class:`UsageError` naming ``--data`` and what is wrong.
    """
    path = str(path)
    if not Path(path).is_file():
        raise UsageError(f"--data {path}: no such file")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # corrupt or not an npz
        raise UsageError(f"--data {path}: not a readable .npz file ({type(exc).__name__})") from None
    if not hasattr(z, "files"):
        raise UsageError(f"--data {path}: expected an .npz archive, got a single array")
    with z:
        X, y = _array(z, "X", path), _array(z, "y", path)
        Xt, yt = _array(z, "X_test", path), _array(z, "y_test", path)
        bs = _array(z, "beta_star", path) if "beta_star" in z.files else None
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise UsageError(f"--data {path}: X must be a non-empty 2-D array (n, d), got shape {X.shape}")
    n, d = X.shape
    if y.shape != (n,):
        raise UsageError(f"--data {path}: y must have shape ({n},) to match X, got {y.shape}")
    if Xt.ndim != 2 or Xt.shape[1] != d or Xt.shape[0] < 1:
        raise UsageError(f"--data {path}: X_test must have shape (m, {d}) with m >= 1, got {Xt.shape}")
    if yt.shape != (Xt.shape[0],):
        raise UsageError(f"--data {path}: y_test must have shape ({Xt.shape[0]},), got {yt.shape}")
    if bs is not None and bs.shape != (d,):
        raise UsageError(f"--data {path}: beta_star must have shape ({d},), got {bs.shape}")
    return RegressionData(X, y, Xt, yt, bs, source=path)
