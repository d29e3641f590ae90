"""ρ schedules for :class:`toymodels.torch.sam.SAM` (pure Python: no torch needed).

Use: ``rhos = rho_schedule("cosine", 0.1, steps)`` once, then ``opt.set_rho(rhos[t])`` before update t.
The ascent radius is a sequence of its own (ρ_t, decoupled from the learning rate γ_t; the thesis's
convergence analysis, Sec. 5.6, lets ρ_t decrease more slowly than γ_t: O(√γ_t)).
"""
from __future__ import annotations

import math

from ..errors import check_choice, check_int, check_nonneg, check_range

__all__ = ["rho_schedule", "RHO_SCHEDULES"]

RHO_SCHEDULES = ("constant", "linear", "cosine", "step")


def rho_schedule(kind: str, rho: float, steps: int, *, final: float = 0.0, warmup: int = 0,
                 milestones: tuple = (0.5, 0.75), factor: float = 0.1) -> list[float]:
    """ρ_t for t = 0, ..., steps − 1.

    Parameters
    ----------
    kind : {"constant", "linear", "cosine", "step"}
        With s = (t − warmup)/(steps − warmup) ∈ [0, 1) after the warmup:
        constant ρ_t = ρ; linear ρ_t = ρ + (final − ρ)·s; cosine ρ_t = final + (ρ − final)(1 + cos πs)/2;
        step ρ_t = ρ·factor^(number of milestones ≤ t/steps).
    rho : float
        ρ >= 0 at the start (after the warmup).
    steps : int
        Number of updates, >= 1.
    final : float
        The value approached at the end by linear and cosine (>= 0; reached at t = steps, one past the last).
    warmup : int
        0 <= warmup < steps: ρ_t = ρ·(t + 1)/(warmup + 1) for t < warmup (linear ramp), then the schedule.
    milestones : tuple of float
        Fractions of ``steps`` in (0, 1) where ``step`` multiplies by ``factor``.
    factor : float
        Multiplier (> 0) at each milestone of ``step``.
    """
    check_choice("kind", kind, RHO_SCHEDULES)
    rho = check_nonneg("rho", rho)
    steps = check_int("steps", steps, 1)
    final = check_nonneg("final", final)
    warmup = check_int("warmup", warmup, 0, steps - 1)
    for a in milestones:
        check_range("milestones", a, 0.0, 1.0, lo_open=True, hi_open=True)
    factor = check_range("factor", factor, 0.0, None, lo_open=True)
    out = []
    n = steps - warmup
    for t in range(steps):
        if t < warmup:
            out.append(rho * (t + 1) / (warmup + 1))
            continue
        s = (t - warmup) / n
        if kind == "constant":
            v = rho
        elif kind == "linear":
            v = rho + (final - rho) * s
        elif kind == "cosine":
            v = final + (rho - final) * (1.0 + math.cos(math.pi * s)) / 2.0
        else:
            v = rho * factor ** sum(1 for a in milestones if a * steps <= t)
        out.append(float(v))
    return out
