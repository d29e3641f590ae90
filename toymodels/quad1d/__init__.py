"""1D quadratic parameterization and loss stabilization under large-step SGD (thesis Ch. 6,
eq. 6.5, Prop. 6.3.2 / 6.7.1, Lemmas 9–14).

``python -m toymodels.quad1d`` simulates an ensemble of SGD runs
θ_{t+1} = θ_t + ηθ_t x(y − xθ_t²), y = xθ*², x ~ ρ̂, and tests every claim of the propositions
(:mod:`toymodels.quad1d.claims`); closed forms are in :mod:`toymodels.quad1d.theory`.
"""
from . import theory
from .claims import evaluate, regime, summary
from .sim import DIV_FACTOR, Quad1DConfig, Quad1DResult, resolve, simulate, stream_keys

__all__ = ["Quad1DConfig", "Quad1DResult", "resolve", "simulate", "stream_keys", "evaluate", "regime",
           "summary", "theory", "DIV_FACTOR"]
