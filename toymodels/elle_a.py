"""ELLE-A's adaptive λ (Abad Rocamora et al., ICLR 2024), shared by the numba CNN and the torch layer.

ELLE adds λ E_lin to the training loss, E_lin the local-linearity error of the batch
(:func:`toymodels.cnn.regularizers.elle_loss_and_grad`, :func:`toymodels.torch.regularizers.elle`).
ELLE-A switches the penalty on only when E_lin jumps — the sign of incipient catastrophic
overfitting — and lets it decay otherwise. The rule, as the authors' code (``lambda_schedule="onoff"``)
applies it after every training step t with the error Eₜ of that step (computed with λₜ):

    λ₀ = 0;
    λₜ₊₁ = λ_max   if t ≥ 3 and Eₜ > mean(E₀ … Eₜ₋₁) + s · std(E₀ … Eₜ₋₁),
    λₜ₊₁ = γ λₜ    otherwise,

with the population standard deviation (``np.std``), s = 2 (``sensitivity``) and γ = 0.99
(``decay``); the mean and deviation run over *every* earlier step of the run, so a run of length T
keeps O(1) state (count, mean, sum of squared deviations: Welford's update, equal to ``np.mean`` /
``np.std`` of the list to rounding).

Checkable property: while λ = 0 (before the first jump, or after it has decayed below
``off_below``) the step needs the error's value only — no backward pass through the penalty — so an
ELLE-A epoch costs between FGSM's (penalty off: three extra forward passes) and ELLE's.
"""
from __future__ import annotations

import math

from .errors import check_range

__all__ = ["ElleA", "DECAY", "SENSITIVITY", "MIN_HISTORY"]

DECAY = 0.99
SENSITIVITY = 2.0
#: earlier errors needed before a jump can switch λ on (the authors' ``len(values) > 2``)
MIN_HISTORY = 3


class ElleA:
    """ELLE-A's λ schedule (module docstring). ``lam`` is the λ of the next step; call
    :meth:`update` with each step's error, in order."""

    def __init__(self, lam_max: float, decay: float = DECAY, sensitivity: float = SENSITIVITY):
        self.lam_max = check_range("reg_lambda", lam_max, 0.0, math.inf)
        self.decay = check_range("decay", decay, 0.0, 1.0)
        self.sensitivity = check_range("sensitivity", sensitivity, 0.0, math.inf)
        self.lam = 0.0
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.n_on = 0

    @property
    def std(self) -> float:
        """Population standard deviation of the errors so far (0 for none)."""
        return math.sqrt(self.m2 / self.n) if self.n else 0.0

    def update(self, err: float) -> float:
        """Apply the rule with this step's error ``err``; returns the λ of the next step."""
        err = float(err)
        if self.n >= MIN_HISTORY and err > self.mean + self.sensitivity * self.std:
            self.lam = self.lam_max
            self.n_on += 1
        else:
            self.lam *= self.decay
        self.n += 1
        d = err - self.mean
        self.mean += d / self.n
        self.m2 += d * (err - self.mean)
        return self.lam

    def state_dict(self) -> dict:
        """Everything :meth:`load_state_dict` needs to continue the schedule exactly (checkpoints)."""
        return {"lam_max": self.lam_max, "decay": self.decay, "sensitivity": self.sensitivity, "lam": self.lam,
                "n": self.n, "mean": self.mean, "m2": self.m2, "n_on": self.n_on}

    def load_state_dict(self, st: dict) -> None:
        for k in ("lam_max", "decay", "sensitivity", "lam", "mean", "m2"):
            setattr(self, k, float(st[k]))
        self.n, self.n_on = int(st["n"]), int(st["n_on"])
