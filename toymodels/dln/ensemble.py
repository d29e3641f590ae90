"""Ensembles of DLN runs (seeds or hyperparameter grids) advanced in parallel with ``prange``.

All runs of an ensemble must share the number of steps, ``record_every``, (n, d, n_test), the batch
size and the ascent-batch size, so that their arrays stack; everything else (data, seed, α, γ, ρ,
m, SAM variant, schedules, normalization) may differ per run. Each run's result is identical to
``train(data_s, config_s)`` (tested), only faster on several cores. ``theory=False`` runs the lean
kernels (:func:`toymodels.dln._kernels.run_many_lean`, no implicit-bias logs: the same w and curves,
``alpha_eff_theory*`` NaN), as ``train(..., theory=False)``.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..datasets import RegressionData
from ..errors import ConfigError
from ..progress import progress
from . import _kernels
from .train import DLNConfig, DLNResult, RunState, chunk_steps, finish, prepare

__all__ = ["train_ensemble", "stack_states"]


def _stack(arrays) -> np.ndarray:
    return np.ascontiguousarray(np.stack(list(arrays)))


def _batches(states: Sequence[RunState], t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = [s.batches(t0, t1) for s in states]
    return _stack(p[0] for p in pairs), _stack(p[1] for p in pairs)


def stack_states(states: Sequence[RunState], t0: int, t1: int) -> tuple:
    """The arguments of :func:`toymodels.dln._kernels.run_many` (without ``status``) for steps
    t0 ≤ t < t1 of the prepared runs ``states``: every per-run array stacked on a leading axis
    (copies: the states' own arrays are not advanced)."""
    data = tuple(_stack(getattr(s, a) for s in states) for a in ("X", "y", "Xte", "yte"))
    return (data, _stack(s.state for s in states), _stack(s.rates for s in states), t0,
            *_batches(states, t0, t1), _stack(s.opts for s in states), _stack(s.rec for s in states))


def _check_stackable(states: Sequence[RunState]) -> None:
    keys = {(s.cfg.steps, s.cfg.record_every, s.X.shape, s.Xte.shape, s.cfg.batch, s.cfg.ascent_batch, s.mode)
            for s in states}
    if len(keys) != 1:
        raise ConfigError("configs", "must share steps, record_every, data shapes, batch size and ascent mode "
                                     "(ensemble runs are stacked)")


def train_ensemble(data: RegressionData | Sequence[RegressionData], configs: Sequence[DLNConfig], *,
                   show_progress: bool = False, chunks: int = 50, theory: bool = True) -> list[DLNResult]:
    """Run ``len(configs)`` DLNs in parallel; ``data`` is shared or given per run. ``theory=False``:
    the lean kernels, for ensembles that do not use ``alpha_eff_theory*`` (left NaN)."""
    configs = list(configs)
    if not configs:
        raise ConfigError("configs", "must hold at least one config")
    datas = list(data) if isinstance(data, (list, tuple)) else [data] * len(configs)
    if len(datas) != len(configs):
        raise ConfigError("data", f"must be one data set or one per config ({len(configs)})", f"{len(datas)} data sets")
    states = [prepare(dt, c) for dt, c in zip(datas, configs)]
    _check_stackable(states)
    T = states[0].cfg.steps
    step = chunk_steps(states[0].cfg, chunks)
    status = np.full(len(states), -1, dtype=np.int64)
    args = None
    kernel = _kernels.run_many if theory else _kernels.run_many_lean
    t_start = time.perf_counter()
    with progress(T, disable=not show_progress, desc=f"ensemble of {len(states)}", unit="step") as bar:
        for t0 in range(0, T, step):
            t1 = min(T, t0 + step)
            if args is None:
                args = list(stack_states(states, t0, t1))
            else:
                args[3:6] = t0, *_batches(states, t0, t1)
            kernel(*args, status)
            bar.update(t1 - t0)
            if np.all(status >= 0):
                break
    runtime = time.perf_counter() - t_start
    if args is not None:
        for s_i, st in enumerate(states):
            st.state[:], st.rec[:] = args[1][s_i], args[7][s_i]
    return [finish(st, int(status[s_i]), runtime, theory) for s_i, st in enumerate(states)]
