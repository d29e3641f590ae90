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

from .._io import load_npz_arrays
from ..errors import ConfigError, check_int, check_nonneg
from ..rng import stream

__all__ = ["RegressionData", "make_sparse_regression", "load_regression"]


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
    """Draw the sparse regression problem described in the module docstring from the stream
    ``(seed, "sparse-regression")`` of :mod:`toymodels.rng`."""
    check_int("n", n, 1)
    check_int("d", d, 1)
    check_int("k", k, 0, d)
    check_int("n_test", n_test, 1)
    check_nonneg("noise", noise)
    rng = stream(seed, "sparse-regression")
    beta = np.zeros(d)
    support = rng.choice(d, size=k, replace=False)
    beta[support] = rng.choice([-1.0, 1.0], size=k)
    X = rng.standard_normal((n, d))
    X_test = rng.standard_normal((n_test, d))
    y = X @ beta + noise * rng.standard_normal(n)
    return RegressionData(X, y, X_test, X_test @ beta, beta, source="generated")


_KEYS = ("X", "y", "X_test", "y_test")


def load_regression(path: str | Path, field: str = "data") -> RegressionData:
    """Load ``X (n,d), y (n,), X_test (m,d), y_test (m,)`` and optional ``beta_star (d,)`` from an
    ``.npz`` file. Every problem (missing file, not an npz, missing/mismatched/non-finite arrays)
    raises :class:`~toymodels.errors.ConfigError` for ``field`` (the parameter that named the file)."""
    z = load_npz_arrays(path, field, required=_KEYS, optional=("beta_star",))
    X, y, Xt, yt, bs = z["X"], z["y"], z["X_test"], z["y_test"], z.get("beta_star")
    path = str(path)

    def bad(what):
        return ConfigError(field, f"must be an .npz file whose {what}", path)

    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise bad(f"X is a non-empty 2-D array (n, d); X has shape {X.shape}")
    n, d = X.shape
    if y.shape != (n,):
        raise bad(f"y has shape ({n},) to match X; y has shape {y.shape}")
    if Xt.ndim != 2 or Xt.shape[1] != d or Xt.shape[0] < 1:
        raise bad(f"X_test has shape (m, {d}) with m >= 1; X_test has shape {Xt.shape}")
    if yt.shape != (Xt.shape[0],):
        raise bad(f"y_test has shape ({Xt.shape[0]},); y_test has shape {yt.shape}")
    if bs is not None and bs.shape != (d,):
        raise bad(f"beta_star has shape ({d},); beta_star has shape {bs.shape}")
    return RegressionData(X, y, Xt, yt, bs, source=path)
