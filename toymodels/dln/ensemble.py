"""Ensembles of DLN runs (seeds or hyperparameter grids) advanced in parallel with ``prange``.

All runs of an ensemble must share the number of steps, ``record_every``, (n, d, n_test), the batch
size and the ascent-batch size, so that their arrays stack; everything else (data, seed, α, γ, ρ,
m, SAM variant, schedules, normalization) may differ per run. Each run's result is identical to
``train(data_s, config_s)`` (tested), only faster on several cores.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from .._cli import UsageError, progress
from ..datasets import RegressionData
from . import _kernels
from .train import DLNConfig, DLNResult, _finish, _prepare

__all__ = ["train_ensemble"]


def _stack(states, attr):
    return np.ascontiguousarray(np.stack([getattr(s, attr) for s in states]))


def train_ensemble(data: RegressionData | Sequence[RegressionData], configs: Sequence[DLNConfig], *,
                   show_progress: bool = False, chunks: int = 50) -> list[DLNResult]:
    """Run ``len(configs)`` DLNs in parallel; ``data`` is shared or given per run."""
    configs = list(configs)
    if not configs:
        raise UsageError("train_ensemble needs at least one config")
    datas = list(data) if isinstance(data, (list, tuple)) else [data] * len(configs)
    if len(datas) != len(configs):
        raise UsageError(f"got {len(datas)} data sets for {len(configs)} configs")
    states = [_prepare(dt, c) for dt, c in zip(datas, configs)]
    keys = {(s.cfg.steps, s.cfg.record_every, s.X.shape, s.Xte.shape, s.cfg.batch,
             s.cfg.ascent_batch if s.mode == 1 else None, s.mode) for s in states}
    if len(keys) != 1:
        raise UsageError("ensemble runs must share steps, record_every, data shapes, batch size and "
                         "ascent mode")
    T, rec = states[0].cfg.steps, states[0].cfg.record_every
    X, y, Xte, yte = (_stack(states, a) for a in ("X", "y", "Xte", "yte"))
    wp, wm, lr, rho = (_stack(states, a) for a in ("wp", "wm", "lr", "rho"))
    log_flow, log_disc = _stack(states, "log_flow"), _stack(states, "log_disc")
    rec_train, rec_test = _stack(states, "rec_train"), _stack(states, "rec_test")
    mode = np.array([s.mode for s in states], dtype=np.int64)
    m = np.array([s.cfg.m for s in states], dtype=np.int64)
    normalize = np.array([s.cfg.normalize for s in states], dtype=np.bool_)
    status = np.full(len(states), -1, dtype=np.int64)
    step = max(1, -(-T // max(1, int(chunks))))
    t_start = time.perf_counter()
    with progress(T, disable=not show_progress, desc=f"ensemble of {len(states)}", unit="step") as bar:
        for t0 in range(0, T, step):
            t1 = min(T, t0 + step)
            pairs = [s.batches(t0, t1) for s in states]
            idx = np.ascontiguousarray(np.stack([p[0] for p in pairs]))
            aidx = np.ascontiguousarray(np.stack([p[1] for p in pairs]))
            _kernels._run_many(X, y, Xte, yte, wp, wm, lr, rho, t0, t1, idx, aidx, mode, m, normalize,
                               log_flow, log_disc, rec, rec_train, rec_test, status)
            bar.update(t1 - t0)
            if np.all(status >= 0):
                break
    runtime = time.perf_counter() - t_start
    out = []
    for s_i, st in enumerate(states):
        st.wp, st.wm = wp[s_i].copy(), wm[s_i].copy()
        st.log_flow, st.log_disc = log_flow[s_i].copy(), log_disc[s_i].copy()
        st.rec_train, st.rec_test = rec_train[s_i].copy(), rec_test[s_i].copy()
        out.append(_finish(st, int(status[s_i]), runtime))
    return out
