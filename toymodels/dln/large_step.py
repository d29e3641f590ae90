"""Large-step-size SGD / GD schedules on a u ⊙ v diagonal linear network (thesis Sec. 6.4.1,
Figs. 6.2, 6.3, 6.11), with the iterate saved at chosen checkpoints.

Model and loss (this project's ¼-normalization), θ = (u, v) ∈ R^{2d}, β = u ⊙ v,

    L(u, v) = 1/(4n) Σᵢ (⟨u ⊙ v, xᵢ⟩ − yᵢ)²,

trained by GD (full batch) or SGD (batch B) with step γ_t in the (u, v) parameterization, i.e.
θ ← θ − γ_t ∇_θ L_batch(θ) (internally γ_t/2 in w± = ((u+v)/2, (u−v)/2), see
:func:`toymodels.dln.train.train_uv`). A large-step schedule is γ_t = γ_large for t < ⌊aT⌋ and
γ_small afterwards (``schedule="step"``, ``decay_at=(a,)``, ``decay_factor=γ_small/γ_large``).

:func:`train_uv_checkpoints` runs the training kernel segment by segment between checkpoints
(one mini-batch stream, one schedule over the whole run), so the saved (u, v) at checkpoint t are
exactly the iterate of one uninterrupted run after t steps.

Metrics of Sec. 6.4 (:func:`metrics`, reusing :mod:`toymodels.sde.dln`): ‖u⊙v‖₀ = #{k : |uₖvₖ| >
``l0_tol``} and rank φ_θ(X̃) = #{σ > ``rank_tol``·σ_max} of the Jacobian φ_θ(X̃) = [X̃ diag v, X̃ diag u]
on p = 2d fresh points X̃ ~ N(0, I_d) (as many points as parameters), computed through the
p × d factor of :func:`jacobian_factor` (same singular values, cheaper SVD).
"""
from __future__ import annotations

import time
import numpy as np

from ..datasets import RegressionData
from ..errors import ConfigError
from ..rng import stream
from ..sde.dln import l0, rank_jacobian
from .train import DLNConfig, DLNResult, finish, prepare, resolve, uv_as_w_config, uv_to_w, w_to_uv

__all__ = ["train_uv_checkpoints", "metrics", "fresh_points", "log_checkpoints", "large_step_config",
           "jacobian_factor", "L0_TOL", "RANK_TOL"]

#: |uₖvₖ| above this counts as non-zero (β* has ±1 entries, so this is 10⁻³ of a true coefficient).
L0_TOL = 1e-3
#: singular values of φ_θ(X̃) above this fraction of the largest count towards the rank.
RANK_TOL = 1e-3


def log_checkpoints(steps: int, count: int = 60) -> np.ndarray:
    """0, steps and ~count log-spaced steps in between (unique ints)."""
    return np.unique(np.concatenate([[0, steps], np.geomspace(1, steps, count).astype(np.int64)]))


def large_step_config(lr_large: float, lr_small: float, decay_at: float | None, steps: int, *,
                      algo: str = "sgd", batch: int | None = 1, seed: int = 0,
                      record_every: int | None = None) -> DLNConfig:
    """γ_large decayed to γ_small at ⌊decay_at·steps⌋ (``decay_at=None``: constant γ_small)."""
    common = dict(algo=algo, batch=(batch if algo == "sgd" else None), steps=steps, seed=seed,
                  record_every=record_every)
    if decay_at is None:
        return DLNConfig(lr=lr_small, **common)
    return DLNConfig(lr=lr_large, schedule="step", decay_at=(float(decay_at),),
                     decay_factor=lr_small / lr_large, **common)


def train_uv_checkpoints(data: RegressionData, config: DLNConfig, u0, v0, checkpoints) -> DLNResult:
    """:func:`~toymodels.dln.train.train_uv` that also saves (u, v) after each checkpoint step.

    Parameters
    ----------
    data : RegressionData
    config : DLNConfig
        ``lr`` (and the schedule) in the (u, v) parameterization; SAM settings are honored as in
        ``train_uv``.
    u0, v0 : float or (d,) array
        Initialization.
    checkpoints : iterable of int
        Steps t ∈ [0, config.steps] after which the iterate is saved (t = 0: the initialization).

    Returns
    -------
    DLNResult
        As ``train_uv``; ``extra`` additionally holds ``checkpoints`` (K,), ``u_path`` and
        ``v_path`` (K, d). Checkpoints after a divergence are NaN.
    """
    d = data.d
    cfg = resolve(config, data.n, d)
    cps = np.unique(np.asarray(list(checkpoints), dtype=np.int64))
    if cps.size == 0 or cps[0] < 0 or cps[-1] > cfg.steps:
        raise ConfigError("checkpoints", f"must be a non-empty set of steps in [0, {cfg.steps}]", cps.tolist())
    u0 = np.broadcast_to(np.asarray(u0, dtype=np.float64), (d,))
    v0 = np.broadcast_to(np.asarray(v0, dtype=np.float64), (d,))
    st = prepare(data, uv_as_w_config(cfg), init=uv_to_w(u0, v0))
    U = np.full((cps.size, d), np.nan)
    V = np.full((cps.size, d), np.nan)
    t, status = 0, -1
    t_start = time.perf_counter()
    for k, b in enumerate(np.append(cps, cfg.steps)):
        b = int(b)
        if b > t:
            status = st.advance(t, b)
            t = b
            if status >= 0:
                break
        if k < cps.size:
            U[k], V[k] = w_to_uv(st.wp, st.wm)
    res = finish(st, int(status), time.perf_counter() - t_start)
    u, v = w_to_uv(res.w_plus, res.w_minus)
    res.config = cfg.as_dict() | {"parameterization": "uv", "u0": u0.tolist(), "v0": v0.tolist()}
    res.extra.update(u=u, v=v, checkpoints=cps, u_path=U, v_path=V)
    return res


def fresh_points(d: int, seed: int = 0) -> np.ndarray:
    """p = 2d fresh inputs X̃ ~ N(0, I_d) for the Jacobian rank (as many points as parameters), from the
    stream ``(seed, "dln/fresh-points")``."""
    return stream(seed, "dln/fresh-points").standard_normal((2 * d, d))


def metrics(data: RegressionData, Xf: np.ndarray, u: np.ndarray, v: np.ndarray, *, l0_tol: float = L0_TOL,
            rank_tol: float = RANK_TOL) -> dict:
    """Train/test loss (¼-normalized), ‖u⊙v‖₀ and rank φ_θ(X̃) of one iterate (−1 / inf if non-finite)."""
    with np.errstate(all="ignore"):
        beta = u * v
    if not np.all(np.isfinite(beta)):
        return {"train_loss": float("inf"), "test_loss": float("inf"), "l0": -1, "rank": -1}
    r, rt = data.X @ beta - data.y, data.X_test @ beta - data.y_test
    return {"train_loss": 0.25 * float(r @ r) / data.n, "test_loss": 0.25 * float(rt @ rt) / data.n_test,
            "l0": l0(beta, l0_tol), "rank": rank_jacobian(jacobian_factor(Xf, u, v), rank_tol)}


def jacobian_factor(Xf: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """F = X̃ diag(√(u² + v²)) (p × d), with F Fᵀ = φ φᵀ for φ = :func:`~toymodels.sde.dln.jacobian_uv`
    (φφᵀ = X̃ diag(v²) X̃ᵀ + X̃ diag(u²) X̃ᵀ), so F and φ_θ(X̃) have the same non-zero singular
    values and the same rank — at the cost of an SVD of p × d instead of p × 2d."""
    return np.asarray(Xf, dtype=np.float64) * np.sqrt(u * u + v * v)[None, :]
