"""Diagonal-linear-network ensembles as one batched torch program: R runs advance together as (R, d)
tensors on cpu or cuda, with exactly the algorithms, options and pre-drawn mini-batch index streams of
:func:`toymodels.dln.ensemble.train_ensemble` (numba), so that both agree to rounding (tested to 1e-10
in float64).

Model, loss and algorithms are those of :mod:`toymodels.dln.train` (thesis eq. 5.5, 5.4, 5.8, 5.21):
β = w₊² − w₋², ℓᵢ = ¼(⟨β, xᵢ⟩ − yᵢ)², initialized at w₊ = w₋ = α. One step with descent batch D
(|D| = b, all n examples for GD), γ = γ_t, ρ = ρ_t:

* chunked ascent (m-SAM; m = 1: 1-SAM, m = b: n-SAM; ρ = 0: GD/SGD): for each chunk G of m
  consecutive examples of D, a_G = (1/m) Σ_{j∈G} r_j x_j, ρ_G = ρ (or ρ/‖∇L_G(w)‖₂ normalized,
  0 if the gradient vanishes), w̃_G = (w₊ ⊙ (1 + ρ_G a_G), w₋ ⊙ (1 − ρ_G a_G)) = w + ρ_G ∇L_G(w), and
  w ← w − (γ/b) Σ_G Σ_{i∈G} ∇ℓᵢ(w̃_G);
* independent ascent batch A (eq. 5.21): w ← w − (γ/b) Σ_{i∈D} ∇ℓᵢ(w + ρ_A ∇L_A(w)).

Per step all R runs' chunks are evaluated at once with einsum contractions over (R, chunks, m, d)
(shared data: the data tensors carry no run axis); 1-SAM (m = 1) uses the numba kernel's closed form
of the per-example ascent residuals instead, with only (R, b) and (R, d) intermediates. Mini-batches
come from each run's own index streams, those of :func:`toymodels.dln.train.index_streams` (drawn
chunk by chunk on the host, then copied to the device). A run whose residuals become non-finite stops
at that step (``diverged_at``) and is frozen, as in the numba kernel.

The code: :class:`_Ensemble` holds what a call keeps fixed (data, schedules, shapes), :class:`_State`
the iterates; :func:`_step` advances all runs by one step through one of three descent functions
(1-SAM closed form, m-SAM chunks, independent ascent batch).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..datasets import RegressionData
from ..dln.train import DLNConfig, index_streams, method_name, resolve, schedules_of
from ..errors import ConfigError, check_int
from ..progress import progress
from .device import device_name, resolve_device

__all__ = ["EnsembleResult", "train_ensemble_torch"]


@dataclass
class EnsembleResult:
    """Per-run outcomes (leading axis R) of :func:`train_ensemble_torch`; numpy arrays, float64.

    Same definitions as :class:`toymodels.dln.train.DLNResult`: losses with the ¼-normalization
    (``inf`` for diverged runs), ``diverged_at`` = -1 for runs that stayed finite, α_eff = √(w₊⊙w₋)
    (NaN for a run where w₊⊙w₋ changes sign), ``alpha_eff_theory = α·exp(log_flow)``.
    """

    method: str
    configs: list
    beta: np.ndarray
    w_plus: np.ndarray
    w_minus: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    diverged_at: np.ndarray
    steps_run: np.ndarray
    converged: np.ndarray
    alpha: np.ndarray
    alpha_eff: np.ndarray
    alpha_eff_theory: np.ndarray
    alpha_eff_theory_discrete: np.ndarray
    curve_steps: np.ndarray
    curve_train: np.ndarray
    curve_test: np.ndarray
    beta_star: np.ndarray | None
    runtime_s: float
    device: str
    dtype: str
    extra: dict = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return int(self.beta.shape[0])

    @property
    def diverged(self) -> np.ndarray:
        return self.diverged_at >= 0

    @property
    def throughput(self) -> float:
        """Run·steps per second (all runs' steps, diverged runs counted to their last step)."""
        return float(self.steps_run.sum()) / self.runtime_s if self.runtime_s > 0 else float("inf")


def _key(cfg: DLNConfig) -> str:
    d = cfg.as_dict()
    d.pop("seed")
    return json.dumps(d, sort_keys=True, default=str)


def _as_tensor(a, dev, dtype):
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype).to(dev)


def train_ensemble_torch(data: RegressionData | Sequence[RegressionData], configs: Sequence[DLNConfig], *,
                         device: str | torch.device = "auto", dtype: torch.dtype = torch.float64,
                         chunk: int | None = None, show_progress: bool = False,
                         threads: int | None = None) -> EnsembleResult:
    """Train ``len(configs)`` DLNs at once on ``device``; ``data`` is shared or given per run.

    Parameters
    ----------
    data : RegressionData or sequence of RegressionData
        One data set for all runs, or one per run (same n, d, n_test).
    configs : sequence of DLNConfig
        Resolved here against the data. All runs must share steps, record_every, batch size, m, the
        ascent mode and the ascent-batch size; seed, α, γ, ρ, SAM on/off, schedules, switches and
        normalization may differ per run. Run r equals ``toymodels.dln.train(data_r, configs[r])`` and
        the numba ``train_ensemble`` to rounding.
    device : "auto", "cpu", "cuda[:k]" or torch.device
    dtype : torch.float64 (default; needed for numba-level agreement) or torch.float32
    chunk : int, optional
        Steps per host round (index streams drawn, divergence checked, progress updated); default:
        about 4M drawn indices per round. Results do not depend on it.
    threads : int, optional
        torch intra-op threads for the duration of the call (restored afterwards). The per-step
        tensors are small, so on a busy CPU 1 thread is often fastest (several threads spin-wait for
        each other); None keeps torch's setting.
    """
    if threads is None:
        return _train(data, configs, device, dtype, chunk, show_progress)
    check_int("threads", threads, 1)
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return _train(data, configs, device, dtype, chunk, show_progress)
    finally:
        torch.set_num_threads(before)


def _check(data, configs, dtype):
    """(resolved configs, per-run data sets, shared?) after checking that the runs can be stacked."""
    if dtype not in (torch.float64, torch.float32):
        raise ConfigError("dtype", "must be torch.float64 or torch.float32", str(dtype))
    configs = list(configs)
    R = len(configs)
    if R == 0:
        raise ConfigError("configs", "must hold at least one DLNConfig", configs)
    shared = not isinstance(data, (list, tuple))
    datas = [data] * R if shared else list(data)
    if len(datas) != R:
        raise ConfigError("data", f"must be one data set or one per config ({R})", f"{len(datas)} data sets")
    n, d, n_test = datas[0].n, datas[0].d, datas[0].X_test.shape[0]
    if any((dt.n, dt.d, dt.X_test.shape[0]) != (n, d, n_test) for dt in datas):
        raise ConfigError("data", "per-run data sets must share n, d and n_test")
    cfgs = [resolve(c, n, d) for c in configs]

    def shape(c):
        return (c.steps, c.record_every, c.algo, c.batch, c.m, c.ascent == "independent", c.ascent_batch)

    if any(shape(c) != shape(cfgs[0]) for c in cfgs):
        raise ConfigError("configs", "ensemble runs must share steps, record_every, algo, batch size, m and the "
                          "ascent mode / ascent-batch size")
    return cfgs, datas, shared


def _schedule_rows(cfgs):
    """(γ rows, ρ rows, row of each run): runs that differ only in their seed share one row."""
    groups: dict[str, int] = {}
    rows_lr, rows_rho, gidx = [], [], np.empty(len(cfgs), dtype=np.int64)
    for r, c in enumerate(cfgs):
        k = _key(c)
        if k not in groups:
            groups[k] = len(groups)
            lr, rho = schedules_of(c)
            rows_lr.append(lr)
            rows_rho.append(rho)
        gidx[r] = groups[k]
    return np.stack(rows_lr), np.stack(rows_rho), gidx


class _Ensemble:
    """What one call keeps fixed: resolved configs, data tensors (no run axis when shared), the γ/ρ
    schedule rows, the batch shapes; and the contractions over shared or per-run data."""

    def __init__(self, data, configs, dev, dtype):
        cfgs, datas, shared = _check(data, configs, dtype)
        c0 = cfgs[0]
        self.dev, self.dtype, self.cfgs, self.datas, self.shared = dev, dtype, cfgs, datas, shared
        self.R, self.n, self.d = len(cfgs), datas[0].n, datas[0].d
        self.n_test = datas[0].X_test.shape[0]
        self.T, self.rec, self.b, self.m = c0.steps, c0.record_every, c0.batch, c0.m
        self.full = c0.algo == "gd"
        self.mode = 1 if c0.ascent == "independent" else 0
        self.C = self.b // self.m if self.mode == 0 else 1
        self.inv_b = 1.0 / self.b
        lr, rho, gidx = _schedule_rows(cfgs)
        self.lr_all, self.rho_all = _as_tensor(lr, dev, dtype), _as_tensor(rho, dev, dtype)
        self.g_dev = torch.as_tensor(gidx).to(dev)
        self.normalize = torch.as_tensor(np.array([c.normalize for c in cfgs])).to(dev)
        if shared:
            arrays = (data.X, data.y, data.X_test, data.y_test)
        else:
            arrays = tuple(np.stack([getattr(dt, k) for dt in datas]) for k in ("X", "y", "X_test", "y_test"))
        self.X, self.y, self.Xte, self.yte = (_as_tensor(a, dev, dtype) for a in arrays)
        self.ar = torch.arange(self.R, device=dev)
        self.X2f, self.X3f = self.X * self.X, self.X * self.X * self.X          # full-batch 1-SAM's closed form
        self.zero = torch.zeros((), dtype=dtype, device=dev)

    def rows_dot(self, XB, w):
        """⟨x_j, w_r⟩ for every run r and row j: XB (b, d) shared or (R, b, d) -> (R, b)."""
        if XB.dim() == 2:
            return w @ XB.T
        return torch.einsum("rbd,rd->rb", XB, w)

    def cols_dot(self, a, XB):
        """Σ_j a_rj x_j for every run: (R, b), XB (b, d) or (R, b, d) -> (R, d)."""
        if XB.dim() == 2:
            return a @ XB
        return torch.einsum("rb,rbd->rd", a, XB)

    def resid(self, beta, XB, yB):
        """r = XB β − y for every run."""
        return self.rows_dot(XB, beta) - yB

    def loss(self, beta, XB, yB):
        rr = self.resid(beta, XB, yB)
        return 0.25 * (rr * rr).sum(1) / XB.shape[-2]

    def rows(self, A, idx_t):
        """The rows idx_t (R, k) of A, per run: (R, k, d) or (R, k)."""
        if self.shared:
            return A[idx_t]
        return A[self.ar[:, None], idx_t]

    def index_streams(self):
        """Each run's mini-batch and ascent-batch index streams: those of the numba runs
        (:func:`toymodels.dln.train.index_streams`)."""
        pairs = [index_streams(c, self.n) for c in self.cfgs]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def chunk_size(self, chunk: int | None) -> int:
        """Steps per host round: about 4M drawn indices (at most 5000 steps for full batch)."""
        if chunk is not None:
            return check_int("chunk", chunk, 1)
        per_step = max(1, self.b) * (1 + (self.cfgs[0].ascent_batch or 0) // max(1, self.b))
        chunk = self.T if self.full and self.mode == 0 else max(1, min(self.T, (1 << 22) // (self.R * per_step)))
        return min(chunk, 5000) if self.full else chunk


@dataclass
class _State:
    """The iterates of all runs and what is recorded along the way."""
    wp: torch.Tensor
    wm: torch.Tensor
    log_flow: torch.Tensor
    log_disc: torch.Tensor
    status: torch.Tensor          # step of divergence, -1 while finite
    active: torch.Tensor
    rec_train: torch.Tensor
    rec_test: torch.Tensor

    def mark_bad(self, bad, t: int) -> None:
        self.status = torch.where(bad, torch.full_like(self.status, t), self.status)
        self.active = self.active & ~bad


def _init_state(E: _Ensemble) -> tuple[_State, np.ndarray]:
    """w₊ = w₋ = α for every run (and α itself)."""
    alpha = np.stack([np.broadcast_to(np.asarray(c.alpha, dtype=np.float64), (E.d,)) for c in E.cfgs])
    wp = _as_tensor(alpha, E.dev, E.dtype)
    wm = wp.clone()
    n_rec = E.T // E.rec + 1
    st = _State(wp, wm, torch.zeros(E.R, E.d, dtype=E.dtype, device=E.dev),
                torch.zeros(E.R, E.d, dtype=E.dtype, device=E.dev),
                torch.full((E.R,), -1, dtype=torch.int64, device=E.dev),
                torch.ones(E.R, dtype=torch.bool, device=E.dev),
                torch.full((E.R, n_rec), float("nan"), dtype=E.dtype, device=E.dev),
                torch.full((E.R, n_rec), float("nan"), dtype=E.dtype, device=E.dev))
    beta0 = wp * wp - wm * wm
    st.rec_train[:, 0] = E.loss(beta0, E.X, E.y)
    st.rec_test[:, 0] = E.loss(beta0, E.Xte, E.yte)
    return st, np.sqrt(np.abs(alpha * alpha))


def _descent_1sam(E: _Ensemble, st: _State, r, XD, beta, sq, gamma, rh):
    """1-SAM in closed form (as the numba kernel's _grad_1sam_full): with c_j = ρ_j r_j,
    r̃_j = r_j + 2c_j⟨x_j², w₊²+w₋²⟩ + c_j²⟨x_j³, β⟩, and the descent sums are
    w₊ ⊙ Σ r̃_j x_j ⊙ (1 + c_j x_j), −w₋ ⊙ Σ r̃_j x_j ⊙ (1 − c_j x_j): only (R, b) and (R, d)
    tensors, no (R, b, d) ascent points. Returns (g₊, g₋, d log-flow)."""
    X2, X3 = (E.X2f, E.X3f) if E.full else (XD * XD, XD * XD * XD)
    u = E.rows_dot(X2, sq)
    v = E.rows_dot(X3, beta)
    rc = rh[:, None].expand(E.R, E.b)
    nrm = torch.sqrt(r * r * u)
    rcn = torch.where(nrm > 0, rc / nrm, E.zero)
    rc = torch.where(E.normalize[:, None] & (rc != 0), rcn, rc)
    c = rc * r
    ra = r + 2.0 * c * u + c * c * v
    P = E.cols_dot(ra, XD)
    Q = E.cols_dot(ra * c, X2)
    Lw = E.cols_dot(rc * r * r, X2)
    return st.wp * (P + Q), -st.wm * (P - Q), (gamma * E.inv_b)[:, None] * Lw


def _descent_chunks(E: _Ensemble, st: _State, r, XD, yD, sq, gamma, rh):
    """m-SAM: each chunk G of m examples ascends with its own a_G and descends at w̃_G."""
    sx = "" if XD.dim() == 2 else "r"
    C, m, d, R = E.C, E.m, E.d, E.R
    Xc = XD.reshape(*XD.shape[:-2], C, m, d)
    yc = yD.reshape(*yD.shape[:-1], C, m)
    A = torch.einsum(f"rcm,{sx}cmd->rcd", r.reshape(R, C, m), Xc) / m   # a_G
    rc = rh[:, None].expand(R, C)
    nrm = torch.sqrt(torch.einsum("rcd,rd->rc", A * A, sq))
    rcn = torch.where(nrm > 0, rc / nrm, E.zero)
    rc = torch.where(E.normalize[:, None] & (rc != 0), rcn, rc)
    WPA = st.wp[:, None, :] * (1.0 + rc[..., None] * A)
    WMA = st.wm[:, None, :] * (1.0 - rc[..., None] * A)
    RA = torch.einsum(f"{sx}cmd,rcd->rcm", Xc, WPA * WPA - WMA * WMA) - yc
    GA = torch.einsum(f"rcm,{sx}cmd->rcd", RA, Xc)
    return (GA * WPA).sum(1), -(GA * WMA).sum(1), (gamma * (m * E.inv_b))[:, None] * (rc[..., None] * A * A).sum(1)


def _descent_independent(E: _Ensemble, st: _State, beta, XD, yD, XA, yA, sq, gD, gamma, rh):
    """Eq. 5.21: one ascent from the independent batch A, the descent of D at that point."""
    a = E.cols_dot(E.resid(beta, XA, yA), XA) / XA.shape[1]
    nrm = torch.sqrt((a * a * sq).sum(1))
    rcn = torch.where(nrm > 0, rh / nrm, E.zero)
    rc = torch.where(E.normalize & (rh != 0), rcn, rh)
    wpa = st.wp * (1.0 + rc[:, None] * a)
    wma = st.wm * (1.0 - rc[:, None] * a)
    ga = E.cols_dot(E.resid(wpa * wpa - wma * wma, XD, yD), XD)
    return ga * wpa, -ga * wma, (gamma * rc)[:, None] * a * gD


def _step(E: _Ensemble, st: _State, t: int, batch, abatch, gamma, rh) -> None:
    """Step t of every active run (a run whose residuals are not finite stops at t)."""
    XD, yD = (E.X, E.y) if E.full else (E.rows(E.X, batch), E.rows(E.y, batch))
    beta = st.wp * st.wp - st.wm * st.wm
    r = E.resid(beta, XD, yD)                          # (R, b)
    st.mark_bad(st.active & ~((r * r).sum(1) < float("inf")), t)
    gD = E.cols_dot(r, XD) * E.inv_b
    sq = st.wp * st.wp + st.wm * st.wm
    if E.mode == 0 and E.m == 1:
        gp, gm, dflow = _descent_1sam(E, st, r, XD, beta, sq, gamma, rh)
    elif E.mode == 0:
        gp, gm, dflow = _descent_chunks(E, st, r, XD, yD, sq, gamma, rh)
    else:
        XA, yA = E.rows(E.X, abatch), E.rows(E.y, abatch)
        gp, gm, dflow = _descent_independent(E, st, beta, XD, yD, XA, yA, sq, gD, gamma, rh)
    step = (gamma * E.inv_b)[:, None]
    keep = st.active[:, None]
    st.wp = torch.where(keep, st.wp - step * gp, st.wp)
    st.wm = torch.where(keep, st.wm - step * gm, st.wm)
    st.log_flow = torch.where(keep, st.log_flow - dflow, st.log_flow)
    st.log_disc = torch.where(keep, st.log_disc - 0.5 * (gamma * gamma)[:, None] * gD * gD, st.log_disc)
    if (t + 1) % E.rec == 0:
        _record(E, st, t)


def _record(E: _Ensemble, st: _State, t: int) -> None:
    j = (t + 1) // E.rec
    bt = st.wp * st.wp - st.wm * st.wm
    ltr, lte = E.loss(bt, E.X, E.y), E.loss(bt, E.Xte, E.yte)
    st.rec_train[:, j] = torch.where(st.active, ltr, st.rec_train[:, j])
    st.rec_test[:, j] = torch.where(st.active, lte, st.rec_test[:, j])
    st.mark_bad(st.active & ~(ltr < float("inf")), t)


def _run_rounds(E: _Ensemble, st: _State, chunk: int, show_progress: bool) -> None:
    """All steps, ``chunk`` per host round (indices drawn, progress updated, all-diverged checked)."""
    streams, astreams = E.index_streams()
    with progress(E.T, disable=not show_progress, desc=f"ensemble of {E.R} on {E.dev}", unit="step") as bar:
        for t0 in range(0, E.T, chunk):
            t1 = min(E.T, t0 + chunk)
            idx = aidx = None
            if not E.full:
                idx = torch.as_tensor(np.stack([s.take(t1 - t0) for s in streams])).to(E.dev)  # (R, Tc, b)
            if E.mode == 1:
                aidx = torch.as_tensor(np.stack([s.take(t1 - t0) for s in astreams])).to(E.dev)
            lr_c = E.lr_all[:, t0:t1][E.g_dev]       # (R, Tc)
            rho_c = E.rho_all[:, t0:t1][E.g_dev]
            for t in range(t0, t1):
                _step(E, st, t, None if idx is None else idx[:, t - t0], None if aidx is None else aidx[:, t - t0],
                      lr_c[:, t - t0], rho_c[:, t - t0])
            bar.update(t1 - t0)
            if not bool(st.active.any()):
                break


def _final_losses(E: _Ensemble, beta: np.ndarray, div: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train and test losses of every run in float64 on the host (inf for diverged runs)."""
    train_loss, test_loss = np.empty(E.R), np.empty(E.R)
    for r_i, dt in enumerate(E.datas):
        if div[r_i]:
            train_loss[r_i] = test_loss[r_i] = np.inf
            continue
        rr = dt.X @ beta[r_i] - dt.y
        train_loss[r_i] = 0.25 * float(rr @ rr) / E.n
        rt = dt.X_test @ beta[r_i] - dt.y_test
        test_loss[r_i] = 0.25 * float(rt @ rt) / E.n_test
    return train_loss, test_loss


def _result(E: _Ensemble, st: _State, alpha0: np.ndarray, runtime: float, chunk: int) -> EnsembleResult:
    wp_np, wm_np = st.wp.double().cpu().numpy(), st.wm.double().cpu().numpy()
    status = st.status.cpu().numpy()
    div = status >= 0
    beta = wp_np * wp_np - wm_np * wm_np
    train_loss, test_loss = _final_losses(E, beta, div)
    prod = wp_np * wm_np
    alpha_eff = np.where(np.all(prod >= 0, axis=1, keepdims=True), np.sqrt(np.abs(prod)), np.nan)
    lf, ld = st.log_flow.double().cpu().numpy(), st.log_disc.double().cpu().numpy()
    tol = np.array([c.tol for c in E.cfgs])
    beta_star = (None if any(dt.beta_star is None for dt in E.datas)
                 else np.stack([np.asarray(dt.beta_star, dtype=np.float64) for dt in E.datas]))
    return EnsembleResult(
        method=method_name(E.cfgs[0]), configs=E.cfgs, beta=beta, w_plus=wp_np, w_minus=wm_np,
        train_loss=train_loss, test_loss=test_loss, diverged_at=status.astype(np.int64),
        steps_run=np.where(div, status, E.T).astype(np.int64), converged=(~div) & (train_loss <= tol),
        alpha=alpha0, alpha_eff=alpha_eff, alpha_eff_theory=alpha0 * np.exp(lf),
        alpha_eff_theory_discrete=alpha0 * np.exp(lf + ld), curve_steps=np.arange(E.T // E.rec + 1) * E.rec,
        curve_train=st.rec_train.double().cpu().numpy(), curve_test=st.rec_test.double().cpu().numpy(),
        beta_star=beta_star, runtime_s=runtime, device=device_name(E.dev), dtype=str(E.dtype).replace("torch.", ""),
        extra={"chunk": chunk, "shared_data": E.shared})


def _train(data, configs, device, dtype, chunk, show_progress) -> EnsembleResult:
    dev = resolve_device(device)
    E = _Ensemble(data, configs, dev, dtype)
    st, alpha0 = _init_state(E)
    chunk = E.chunk_size(chunk)
    t_start = time.perf_counter()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    _run_rounds(E, st, chunk, show_progress)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return _result(E, st, alpha0, time.perf_counter() - t_start, chunk)
