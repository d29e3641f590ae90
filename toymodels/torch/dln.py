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
of the per-example ascent residuals instead, with only (R, b) and (R, d) intermediates. Mini-batches come from each run's own
``numpy.random.Generator`` exactly as in :func:`toymodels.dln.train._prepare` (drawn chunk by chunk on
the host, then copied to the device). A run whose residuals become non-finite stops at that step
(``diverged_at``) and is frozen, as in the numba kernel.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .._cli import UsageError, progress
from ..datasets import RegressionData
from ..dln.train import DLNConfig, _IndexStream, method_name, resolve, schedules_of
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
    if int(threads) < 1:
        raise UsageError(f"threads must be an integer >= 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return _train(data, configs, device, dtype, chunk, show_progress)
    finally:
        torch.set_num_threads(before)


def _train(data, configs, device, dtype, chunk, show_progress) -> EnsembleResult:
    dev = resolve_device(device)
    if dtype not in (torch.float64, torch.float32):
        raise UsageError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
    configs = list(configs)
    R = len(configs)
    if R == 0:
        raise UsageError("train_ensemble_torch needs at least one config")
    shared = not isinstance(data, (list, tuple))
    datas = [data] * R if shared else list(data)
    if len(datas) != R:
        raise UsageError(f"got {len(datas)} data sets for {R} configs")
    n, d = datas[0].n, datas[0].d
    n_test = datas[0].X_test.shape[0]
    if any((dt.n, dt.d, dt.X_test.shape[0]) != (n, d, n_test) for dt in datas):
        raise UsageError("per-run data sets must share n, d and n_test")
    cfgs = [resolve(c, n, d) for c in configs]
    c0 = cfgs[0]
    mode = 1 if c0.ascent == "independent" else 0
    ref_key = (c0.steps, c0.record_every, c0.algo, c0.batch, c0.m, mode, c0.ascent_batch)
    for c in cfgs:
        if (c.steps, c.record_every, c.algo, c.batch, c.m, 1 if c.ascent == "independent" else 0,
                c.ascent_batch) != ref_key:
            raise UsageError("ensemble runs must share steps, record_every, algo, batch size, m and the "
                             "ascent mode / ascent-batch size")
    T, rec, b, m = c0.steps, c0.record_every, c0.batch, c0.m
    full = c0.algo == "gd"

    # per-config schedules (runs that differ only in their seed share one row)
    groups: dict[str, int] = {}
    rows_lr, rows_rho, gidx = [], [], np.empty(R, dtype=np.int64)
    for r, c in enumerate(cfgs):
        k = _key(c)
        if k not in groups:
            groups[k] = len(groups)
            lr, rho = schedules_of(c)
            rows_lr.append(lr)
            rows_rho.append(rho)
        gidx[r] = groups[k]
    lr_all = _as_tensor(np.stack(rows_lr), dev, dtype)
    rho_all = _as_tensor(np.stack(rows_rho), dev, dtype)
    g_dev = torch.as_tensor(gidx).to(dev)
    normalize = torch.as_tensor(np.array([c.normalize for c in cfgs])).to(dev)

    alpha = np.stack([np.broadcast_to(np.asarray(c.alpha, dtype=np.float64), (d,)) for c in cfgs])
    wp = _as_tensor(alpha, dev, dtype)
    wm = wp.clone()
    alpha0 = np.sqrt(np.abs(alpha * alpha))

    if shared:
        X, y = _as_tensor(data.X, dev, dtype), _as_tensor(data.y, dev, dtype)
        Xte, yte = _as_tensor(data.X_test, dev, dtype), _as_tensor(data.y_test, dev, dtype)
    else:
        X = _as_tensor(np.stack([dt.X for dt in datas]), dev, dtype)
        y = _as_tensor(np.stack([dt.y for dt in datas]), dev, dtype)
        Xte = _as_tensor(np.stack([dt.X_test for dt in datas]), dev, dtype)
        yte = _as_tensor(np.stack([dt.y_test for dt in datas]), dev, dtype)
    ar = torch.arange(R, device=dev)
    X2f, X3f = X * X, X * X * X          # full-batch 1-SAM's closed form

    def rows_dot(XB, w):
        """⟨x_j, w_r⟩ for every run r and row j: XB (b, d) shared or (R, b, d) -> (R, b)."""
        if XB.dim() == 2:
            return w @ XB.T
        return torch.einsum("rbd,rd->rb", XB, w)

    def cols_dot(a, XB):
        """Σ_j a_rj x_j for every run: (R, b), XB (b, d) or (R, b, d) -> (R, d)."""
        if XB.dim() == 2:
            return a @ XB
        return torch.einsum("rb,rbd->rd", a, XB)

    def resid(beta, XB, yB):
        """r = XB β − y for every run."""
        return rows_dot(XB, beta) - yB

    def loss(beta, XB, yB):
        rr = resid(beta, XB, yB)
        return 0.25 * (rr * rr).sum(1) / XB.shape[-2]

    # index streams: the same generators, in the same order, as toymodels.dln.train._prepare
    streams, astreams = [], []
    for c in cfgs:
        rng = np.random.default_rng(c.seed)
        streams.append(None if full else _IndexStream(rng, n, b, c.replacement))
        astreams.append(_IndexStream(rng.spawn(1)[0], n, c.ascent_batch, c.replacement) if mode == 1 else None)

    n_rec = T // rec + 1
    rec_train = torch.full((R, n_rec), float("nan"), dtype=dtype, device=dev)
    rec_test = torch.full((R, n_rec), float("nan"), dtype=dtype, device=dev)
    beta0 = wp * wp - wm * wm
    rec_train[:, 0] = loss(beta0, X, y)
    rec_test[:, 0] = loss(beta0, Xte, yte)
    log_flow = torch.zeros(R, d, dtype=dtype, device=dev)
    log_disc = torch.zeros(R, d, dtype=dtype, device=dev)
    status = torch.full((R,), -1, dtype=torch.int64, device=dev)
    active = torch.ones(R, dtype=torch.bool, device=dev)
    zero = torch.zeros((), dtype=dtype, device=dev)

    per_step = max(1, b) * (1 + (c0.ascent_batch or 0) // max(1, b))
    if chunk is None:
        chunk = T if full and mode == 0 else max(1, min(T, (1 << 22) // (R * per_step)))
        chunk = min(chunk, 5000) if full else chunk
    chunk = int(chunk)
    if chunk < 1:
        raise UsageError(f"chunk must be an integer >= 1, got {chunk}")
    C = b // m if mode == 0 else 1
    inv_b = 1.0 / b

    def dsel(A, idx_t):
        """The rows idx_t (R, k) of A, per run: (R, k, d) or (R, k)."""
        if shared:
            return A[idx_t]
        return A[ar[:, None], idx_t]

    t_start = time.perf_counter()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    with progress(T, disable=not show_progress, desc=f"ensemble of {R} on {dev}", unit="step") as bar:
        for t0 in range(0, T, chunk):
            t1 = min(T, t0 + chunk)
            if not full:
                idx = torch.as_tensor(np.stack([s.take(t1 - t0) for s in streams])).to(dev)  # (R, Tc, b)
            if mode == 1:
                aidx = torch.as_tensor(np.stack([s.take(t1 - t0) for s in astreams])).to(dev)
            lr_c = lr_all[:, t0:t1][g_dev]       # (R, Tc)
            rho_c = rho_all[:, t0:t1][g_dev]
            for t in range(t0, t1):
                gamma = lr_c[:, t - t0]
                rh = rho_c[:, t - t0]
                if full:
                    XD, yD = X, y
                else:
                    it = idx[:, t - t0]
                    XD, yD = dsel(X, it), dsel(y, it)
                beta = wp * wp - wm * wm
                r = resid(beta, XD, yD)                          # (R, b)
                s = (r * r).sum(1)
                bad = active & ~(s < float("inf"))
                status = torch.where(bad, torch.full_like(status, t), status)
                active = active & ~bad
                sx = "" if XD.dim() == 2 else "r"
                gD = cols_dot(r, XD) * inv_b
                sq = wp * wp + wm * wm
                if mode == 0 and m == 1:
                    # 1-SAM in closed form (as the numba kernel's _grad_1sam_full): with c_j = ρ_j r_j,
                    # r̃_j = r_j + 2c_j⟨x_j², w₊²+w₋²⟩ + c_j²⟨x_j³, β⟩, and the descent sums are
                    # w₊ ⊙ Σ r̃_j x_j ⊙ (1 + c_j x_j), −w₋ ⊙ Σ r̃_j x_j ⊙ (1 − c_j x_j): only (R, b)
                    # and (R, d) tensors, no (R, b, d) ascent points
                    X2, X3 = (X2f, X3f) if full else (XD * XD, XD * XD * XD)
                    u = rows_dot(X2, sq)
                    v = rows_dot(X3, beta)
                    rc = rh[:, None].expand(R, b)
                    nrm = torch.sqrt(r * r * u)
                    rcn = torch.where(nrm > 0, rc / nrm, zero)
                    rc = torch.where(normalize[:, None] & (rc != 0), rcn, rc)
                    c = rc * r
                    ra = r + 2.0 * c * u + c * c * v
                    P = cols_dot(ra, XD)
                    Q = cols_dot(ra * c, X2)
                    Lw = cols_dot(rc * r * r, X2)
                    gp = wp * (P + Q)
                    gm = -wm * (P - Q)
                    dflow = (gamma * inv_b)[:, None] * Lw
                elif mode == 0:
                    Xc = XD.reshape(*XD.shape[:-2], C, m, d)
                    yc = yD.reshape(*yD.shape[:-1], C, m)
                    A = torch.einsum(f"rcm,{sx}cmd->rcd", r.reshape(R, C, m), Xc) / m   # a_G
                    rc = rh[:, None].expand(R, C)
                    nrm = torch.sqrt(torch.einsum("rcd,rd->rc", A * A, sq))
                    rcn = torch.where(nrm > 0, rc / nrm, zero)
                    rc = torch.where(normalize[:, None] & (rc != 0), rcn, rc)
                    WPA = wp[:, None, :] * (1.0 + rc[..., None] * A)
                    WMA = wm[:, None, :] * (1.0 - rc[..., None] * A)
                    RA = torch.einsum(f"{sx}cmd,rcd->rcm", Xc, WPA * WPA - WMA * WMA) - yc
                    GA = torch.einsum(f"rcm,{sx}cmd->rcd", RA, Xc)
                    gp = (GA * WPA).sum(1)
                    gm = -(GA * WMA).sum(1)
                    dflow = (gamma * (m * inv_b))[:, None] * (rc[..., None] * A * A).sum(1)
                else:
                    ia = aidx[:, t - t0]
                    XA, yA = dsel(X, ia), dsel(y, ia)
                    a = cols_dot(resid(beta, XA, yA), XA) / XA.shape[1]
                    nrm = torch.sqrt((a * a * sq).sum(1))
                    rcn = torch.where(nrm > 0, rh / nrm, zero)
                    rc = torch.where(normalize & (rh != 0), rcn, rh)
                    wpa = wp * (1.0 + rc[:, None] * a)
                    wma = wm * (1.0 - rc[:, None] * a)
                    ga = cols_dot(resid(wpa * wpa - wma * wma, XD, yD), XD)
                    gp, gm = ga * wpa, -ga * wma
                    dflow = (gamma * rc)[:, None] * a * gD
                step = (gamma * inv_b)[:, None]
                keep = active[:, None]
                wp = torch.where(keep, wp - step * gp, wp)
                wm = torch.where(keep, wm - step * gm, wm)
                log_flow = torch.where(keep, log_flow - dflow, log_flow)
                log_disc = torch.where(keep, log_disc - 0.5 * (gamma * gamma)[:, None] * gD * gD, log_disc)
                if (t + 1) % rec == 0:
                    j = (t + 1) // rec
                    bt = wp * wp - wm * wm
                    ltr, lte = loss(bt, X, y), loss(bt, Xte, yte)
                    rec_train[:, j] = torch.where(active, ltr, rec_train[:, j])
                    rec_test[:, j] = torch.where(active, lte, rec_test[:, j])
                    bad = active & ~(ltr < float("inf"))
                    status = torch.where(bad, torch.full_like(status, t), status)
                    active = active & ~bad
            bar.update(t1 - t0)
            if not bool(active.any()):
                break
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    runtime = time.perf_counter() - t_start

    wp_np = wp.double().cpu().numpy()
    wm_np = wm.double().cpu().numpy()
    st = status.cpu().numpy()
    div = st >= 0
    beta = wp_np * wp_np - wm_np * wm_np
    train_loss = np.empty(R)
    test_loss = np.empty(R)
    for r_i, dt in enumerate(datas):
        if div[r_i]:
            train_loss[r_i] = test_loss[r_i] = np.inf
            continue
        rr = dt.X @ beta[r_i] - dt.y
        train_loss[r_i] = 0.25 * float(rr @ rr) / n
        rt = dt.X_test @ beta[r_i] - dt.y_test
        test_loss[r_i] = 0.25 * float(rt @ rt) / n_test
    prod = wp_np * wm_np
    alpha_eff = np.where(np.all(prod >= 0, axis=1, keepdims=True), np.sqrt(np.abs(prod)), np.nan)
    lf, ld = log_flow.double().cpu().numpy(), log_disc.double().cpu().numpy()
    tol = np.array([c.tol for c in cfgs])
    beta_star = (None if any(dt.beta_star is None for dt in datas)
                 else np.stack([np.asarray(dt.beta_star, dtype=np.float64) for dt in datas]))
    return EnsembleResult(
        method=method_name(c0), configs=cfgs, beta=beta, w_plus=wp_np, w_minus=wm_np,
        train_loss=train_loss, test_loss=test_loss, diverged_at=st.astype(np.int64),
        steps_run=np.where(div, st, T).astype(np.int64), converged=(~div) & (train_loss <= tol),
        alpha=alpha0, alpha_eff=alpha_eff, alpha_eff_theory=alpha0 * np.exp(lf),
        alpha_eff_theory_discrete=alpha0 * np.exp(lf + ld), curve_steps=np.arange(n_rec) * rec,
        curve_train=rec_train.double().cpu().numpy(), curve_test=rec_test.double().cpu().numpy(),
        beta_star=beta_star, runtime_s=runtime, device=device_name(dev), dtype=str(dtype).replace("torch.", ""),
        extra={"chunk": chunk, "shared_data": shared})
