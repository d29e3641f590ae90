"""The two backends of every simulation: ``"numba"`` (the compiled kernels, the default) and
``"numpy"`` (the readable references of :mod:`toymodels.kernels`, the test oracle)."""
from __future__ import annotations

from .errors import check_choice

__all__ = ["BACKENDS", "check_backend"]

BACKENDS = ("numba", "numpy")


def check_backend(backend, field: str = "backend") -> str:
    """``backend`` if it is one of :data:`BACKENDS`; a ConfigError otherwise (never a silent fallback)."""
    return check_choice(field, backend, BACKENDS)
