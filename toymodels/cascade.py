"""The evaluation cascade of AutoAttack (Croce & Hein 2020; thesis Ch. 4): attacks run in sequence, each
on the points that every earlier attack left robust, so that robust accuracy after stage j is

    RA_j = (1/n) #{i : f(xᵢ) = yᵢ  and  f(x̂ᵢ⁽ᵏ⁾) = yᵢ for every stage k ≤ j},

which is non-increasing in j and never above the robust accuracy of any single stage run alone on the
same points with the same draws (the cascade only adds points to the broken set). A proposal x̂ counts
as a break only if it is *feasible*: ‖x̂ − x‖_p ≤ ε(1 + 10⁻⁵) + 10⁻⁷ and x̂ ∈ [−10⁻⁶, 1 + 10⁻⁶]^d; an
infeasible proposal is counted in ``invalid`` and ignored (AutoAttack's check).

Array-agnostic: ``x``/``y`` may be numpy arrays or torch tensors (the caller supplies ``predict`` and
``distance`` for its framework), so the numba CNN (:mod:`toymodels.cnn.evaluate`) and any ``nn.Module``
(:mod:`toymodels.torch.evaluate`) share this one loop. No torch import here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ConfigError, check_choice
from .progress import progress

__all__ = ["Attack", "CascadeResult", "run_cascade", "NORMS", "feasible"]

NORMS = ("linf", "l2")
#: relative / absolute slack on ‖x̂ − x‖ ≤ ε and on the box (float32 rounding of clip and rescale)
RTOL, ATOL, BOX_TOL = 1e-5, 1e-7, 1e-6


@dataclass
class Attack:
    """One stage: ``run(x_sub, y_sub) -> x_adv_sub`` on the points still robust; ``info()`` (optional)
    returns extra numbers about its last run (e.g. Square's queries), reported under ``extra``."""
    name: str
    run: Callable[[Any, Any], Any]
    info: Callable[[], dict] | None = None


@dataclass
class CascadeResult:
    """Outcome of :func:`run_cascade` (accuracies are fractions of all n points)."""
    n: int
    norm: str
    eps: float
    clean_acc: float
    robust_acc: float
    robust_after: dict[str, float]
    broken_by: np.ndarray                       # per point: "clean", an attack name, or "" (robust)
    runtime_s: dict[str, float]
    extra: dict[str, dict] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    x_adv: Any = None

    @property
    def robust(self) -> np.ndarray:
        """Boolean mask of the points still robust after every stage."""
        return self.broken_by == ""

    def to_json(self) -> dict:
        names = list(self.robust_after)
        return {"n_points": self.n, "norm": self.norm, "eps": self.eps, "clean_acc": self.clean_acc,
                "robust_acc": self.robust_acc, "robust_acc_after": dict(self.robust_after),
                "broken_by": {k: int(np.sum(self.broken_by == k)) for k in ["clean", *names]},
                "runtime_s": dict(self.runtime_s), "total_runtime_s": float(sum(self.runtime_s.values())),
                "invalid": dict(self.invalid), "extra": dict(self.extra)}


def feasible(dist: np.ndarray, x_adv, eps: float) -> np.ndarray:
    """Per point: ‖x̂ − x‖ ≤ ε(1 + 10⁻⁵) + 10⁻⁷ and x̂ in the box up to 10⁻⁶ (``x_adv`` numpy or torch)."""
    n = len(dist)
    flat = x_adv.reshape(n, -1)
    if hasattr(flat, "amin"):                    # torch: min(dim) returns (values, indices)
        lo, hi = _as_numpy(flat.amin(1)), _as_numpy(flat.amax(1))
    else:
        lo, hi = flat.min(1), flat.max(1)
    return (np.asarray(dist) <= eps * (1 + RTOL) + ATOL) & (lo >= -BOX_TOL) & (hi <= 1 + BOX_TOL)


def _copy(x):
    return x.clone() if hasattr(x, "clone") else np.array(x, copy=True)


def _labels(a) -> np.ndarray:
    return np.asarray(a.detach().cpu() if hasattr(a, "detach") else a).astype(np.int64).reshape(-1)


def _check(attacks: Sequence[Attack], norm: str, eps: float) -> None:
    check_choice("norm", norm, NORMS)
    if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps > 0):
        raise ConfigError("eps", "must be a finite number > 0", eps)
    names = [a.name for a in attacks]
    if not names:
        raise ConfigError("attacks", "must name at least one attack", names)
    if len(set(names)) != len(names) or "clean" in names or "" in names:
        raise ConfigError("attacks", "must be distinct names other than 'clean'", names)


def run_cascade(predict: Callable, attacks: Sequence[Attack], x, y, *, norm: str, eps: float,
                distance: Callable, show_progress: bool = False) -> CascadeResult:
    """Run ``attacks`` in order on the points still robust (AutoAttack's protocol).

    Parameters
    ----------
    predict : x -> predicted labels (n,) (numpy or torch integers).
    attacks : the stages, in order.
    x, y : images (n, ...) in [0, 1] and labels (n,), numpy arrays or torch tensors.
    norm, eps : the threat model (``linf`` or ``l2``, radius ε > 0); used for the feasibility check.
    distance : (x_adv, x) -> per-point ‖x_adv − x‖ in ``norm`` (numpy or torch).

    Returns
    -------
    CascadeResult — ``x_adv`` holds, per point, the first feasible misclassified proposal (x itself
    for points misclassified without attack or never broken).
    """
    _check(attacks, norm, eps)
    y_np = _labels(y)
    n = len(y_np)
    x_adv = _copy(x)
    broken_by = np.full(n, "", dtype=object)
    if n:
        broken_by[_labels(predict(x)) != y_np] = "clean"
    clean_acc = float(np.mean(broken_by == "")) if n else float("nan")
    after, runtime, extra, invalid = {}, {}, {}, {}
    with progress(len(attacks), disable=not show_progress, desc="cascade", unit="attack") as bar:
        for atk in attacks:
            idx = np.flatnonzero(broken_by == "")
            t0 = time.perf_counter()
            if idx.size:
                xs, ys = x[idx], y[idx]
                xa = atk.run(xs, ys)
                ok = feasible(np.asarray(_as_numpy(distance(xa, xs)), dtype=np.float64), xa, eps)
                fooled = (_labels(predict(xa)) != y_np[idx]) & ok
                invalid[atk.name] = int(np.sum(~ok))
                hit = idx[fooled]
                broken_by[hit] = atk.name
                x_adv[hit] = xa[fooled if not hasattr(xa, "clone") else _bool_index(fooled, xa)]
            else:
                invalid[atk.name] = 0
            runtime[atk.name] = time.perf_counter() - t0
            after[atk.name] = float(np.mean(broken_by == "")) if n else float("nan")
            if atk.info is not None and idx.size:
                extra[atk.name] = atk.info()
            bar.update(1)
    robust = after[attacks[-1].name]
    return CascadeResult(n, norm, float(eps), clean_acc, robust, after, broken_by, runtime, extra, invalid, x_adv)


def _as_numpy(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def _bool_index(mask: np.ndarray, like):
    """A boolean mask usable on ``like`` (a torch tensor: a CPU bool tensor moved to its device)."""
    import torch  # only reached with torch tensors

    return torch.from_numpy(mask).to(like.device)
