"""The step-size schedule of thesis Fig. 6.4 / 6.12: a long linear warmup, then one decay.

Following the authors' implementation (``train_fc_net`` in tml-epfl/sgd-sparse-features, which the
thesis cites for its code), the warmup slope is set relative to the *whole* run of T steps, not to the
warmup length, so a later transition also reaches a larger peak:

    η_t = η · (1 + (F − 1) · t / T)                       for t < t_d = ⌊α T⌋,
    η_t = η · (1 + (F − 1) · t_d / T) / D                 for t ≥ t_d,

with F the "warmup coefficient" (400× in Fig. 6.4, 500× in Fig. 6.12), α the transition fraction
(2 % or 50 %) and D the decay factor. This is not one of :data:`toymodels.schedules.SCHEDULES`
(there a linear warmup ends at η itself after W steps), hence this module.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, check_int, check_positive, check_range


def warmup_decay_schedule(base: float, steps: int, transition: float, warmup_factor: float,
                          decay_factor: float) -> np.ndarray:
    """Per-iteration step sizes η_0, …, η_{T−1} of the schedule above (float64 array of length T).
    Raises :class:`~toymodels.errors.ConfigError` naming ``lr`` (``base``), ``steps``, ``transition``,
    ``warmup_factor`` or ``decay_factor``."""
    check_int("steps", steps, 1)
    check_positive("lr", base)
    check_range("transition", transition, 0.0, 1.0, lo_open=True, hi_open=True)
    check_range("warmup_factor", warmup_factor, 1.0)
    check_range("decay_factor", decay_factor, 1.0)
    t = np.arange(steps, dtype=np.float64)
    td = int(np.floor(transition * steps))
    if not np.isfinite(float(base) * (1.0 + (float(warmup_factor) - 1.0) * td / steps)):
        raise ConfigError("warmup_factor", f"must keep the peak step size lr·(1 + (F − 1)·⌊αT⌋/T) finite "
                          f"(lr = {base:g})", warmup_factor)
    out = base * (1.0 + (warmup_factor - 1.0) * t / steps)
    out[td:] = base * (1.0 + (warmup_factor - 1.0) * td / steps) / decay_factor
    return out
