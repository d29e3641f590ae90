"""Step-size schedules, materialized as one float64 array of length ``steps``.

Kernels take the whole array (``lr[t]`` is the step size of iteration ``t``), so every schedule —
and the ERM↔SAM switches, which are schedules of ρ — costs nothing inside the hot loop.

Schedules
---------
``constant``  γ_t = γ.
``step``      γ_t = γ · f^{#{j : t ≥ ⌊a_j T⌋}}: multiply by ``factor`` f at each fraction a_j of T
              (e.g. decay_at=(0.5, 0.75), factor=0.1).
``linear-warmup`` / ``exp-warmup``  a warmup over the first W steps followed by the ``step``
              schedule above (factor 1 and no fractions = constant). Linear: γ_t = γ (t+1)/W.
              Exponential: γ_t = γ · r^{W−1−t} with r = ``warmup_ratio``^{−1/(W−1)}, i.e. geometric
              from γ·warmup_ratio at t=0 up to γ at t=W−1.
"""
from __future__ import annotations

import numpy as np

from .errors import ConfigError, check_choice, check_int, check_nonneg, check_positive

__all__ = ["SCHEDULES", "make_schedule"]

SCHEDULES = ("constant", "step", "linear-warmup", "exp-warmup")


def make_schedule(base: float, steps: int, kind: str = "constant", *, decay_at=(), factor: float = 0.1,
                  warmup_steps: int = 0, warmup_ratio: float = 1e-3, name: str = "lr") -> np.ndarray:
    """Return the per-iteration step sizes γ_0, …, γ_{T−1} (see module docstring).

    Bad values raise :class:`~toymodels.errors.ConfigError` for the fields ``name`` (the base value),
    ``steps``, ``schedule``, ``decay_at``, ``decay_factor``, ``warmup_steps`` and ``warmup_ratio``."""
    check_int("steps", steps, 1)
    check_choice("schedule", kind, SCHEDULES)
    base = check_nonneg(name, base)
    out = np.full(steps, base, dtype=np.float64)
    if kind == "constant":
        return out
    decay_at = tuple(decay_at)
    for a in decay_at:
        if not (isinstance(a, (int, float)) and 0.0 < a < 1.0):
            raise ConfigError("decay_at", "must be fractions of the run in (0, 1)", decay_at)
    if decay_at:
        check_positive("decay_factor", factor)
    for a in sorted(decay_at):
        out[int(np.floor(a * steps)):] *= factor
    if kind in ("linear-warmup", "exp-warmup"):
        check_int("warmup_steps", warmup_steps, 1, steps)
        w = warmup_steps
        t = np.arange(w, dtype=np.float64)
        if kind == "linear-warmup":
            out[:w] *= (t + 1.0) / w
        else:
            if not 0.0 < warmup_ratio <= 1.0:
                raise ConfigError("warmup_ratio", "must be in (0, 1]", warmup_ratio)
            if w > 1:
                out[:w] *= warmup_ratio ** ((w - 1.0 - t) / (w - 1.0))
    return out
