"""Thesis Fig. 6.4 / 6.12 / 6.13: a two-layer ReLU network (100 neurons) on the 12-point 1D regression
of Blanc et al., SGD with batch 1, a long linear warmup directly followed by a step-size decay at 2 %
or 50 % of the iterations.

There are no test labels in this ground-truth-free task, so no test loss exists. As the generalization
proxy of (O2) we report the simplicity of the predictor: its number of distinct kinks in the data
range (:func:`toymodels.relu.metrics.count_kinks`) and its total slope variation ∫|f''| = Σ|slope jumps|
over that range.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .metrics import kink_positions
from .model import ReLUConfig, ReLUResult, blanc_data, train

DEFAULT_TRANSITIONS = (0.02, 0.5)


def data_range() -> tuple[float, float]:
    x, _ = blanc_data()
    return float(x.min()), float(x.max())


def run_schedules(base: ReLUConfig, transitions=DEFAULT_TRANSITIONS) -> list[ReLUResult]:
    """One run per transition fraction, same initialization (``init_seed``) and same SGD seed."""
    init = base.seed if base.init_seed is None else base.init_seed
    return [train(replace(base, transition=float(a), init_seed=init)) for a in transitions]


def summarize(res: ReLUResult) -> dict:
    lo, hi = data_range()
    c = res.config
    out = res.final(lo, hi)
    td = int(np.floor(c.transition * c.steps))
    # the stabilization level: median loss over the second half of the large-step phase
    phase = (res.iters >= td // 2) & (res.iters <= td)
    out["stabilization_loss"] = float(np.median(res.train_loss[phase])) if phase.any() else None
    pre = res.iters <= td
    out["rank_at_decay"] = int(res.rank[pre][-1])
    out["sparsity_at_decay"] = float(res.sparsity[pre][-1])
    out["rank_init"], out["sparsity_init"] = int(res.rank[0]), float(res.sparsity[0])
    _, jumps = kink_positions(res.w[-1], res.b[-1], res.a[-1], lo, hi, c.kink_tol)
    out["slope_variation"] = float(np.abs(jumps).sum())
    out["test_loss"] = None          # no ground truth in this task (see module docstring)
    out["peak_lr"] = float(res.lr.max())
    return out
