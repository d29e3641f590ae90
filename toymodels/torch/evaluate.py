"""Robustness evaluation of any torch classifier with the AutoAttack cascade (Croce & Hein 2020; thesis
Ch. 4): :func:`evaluate` runs attacks in sequence, each on the points that every earlier attack left
robust (:func:`toymodels.cascade.run_cascade`), so that the robust accuracy after stage j is

    RA_j = (1/n) #{i : f(xᵢ) = yᵢ and f(x̂ᵢ⁽ᵏ⁾) = yᵢ for every stage k ≤ j},

with f(x) = argmax_k of the model's logits, x̂ᵢ⁽ᵏ⁾ the feasible proposal of stage k
(‖x̂ − x‖_p ≤ ε, x̂ ∈ [0, 1]^d; an infeasible proposal never counts as a break).

Versions (the attacks, in order, and their budgets):

* ``"standard"`` — AutoAttack's standard version, as run by RobustBench: APGD-CE (100 iterations, 1 run),
  APGD-T (targeted DLR loss, 9 target classes × 100 iterations), FAB-T (9 targets × 100 iterations) and
  Square (5,000 proposals after the initialization, p_init = 0.8, margin loss, the reference-code
  schedule rescaled to the budget). "9 targets" means the 2nd … 10th ranked classes, capped at K − 1.
* ``"fast"`` — APGD-CE and APGD-T with the 3 best-ranked targets (2nd … 4th class), ≈ 1/3 of the
  gradient steps of APGD-T and no FAB-T / Square. In the AutoAttack paper (Table 2: 5 of 5 defenses
  reported within 0.1 points) APGD-CE + APGD-T already give the cascade's robust accuracy on
  non-obfuscated models; FAB-T and Square are there to catch gradient masking, so use ``standard`` for any
  claim and ``fast`` for monitoring (e.g. during training).

Other stage names for ``attacks``: ``apgd-dlr`` (untargeted DLR), ``fab`` (untargeted FAB), ``pgd``
(PGD-50 with CE). Every stage draws from the named streams of the same ``seed`` (as AutoAttack gives one
seed to every attack); points are attacked in chunks of ``batch_size`` and every chunk gets the same seed
(AutoAttack reseeds per batch too), so a point's outcome does not depend on the chunk it falls in beyond
its position. The model is put in eval mode for the evaluation and its modes restored afterwards.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..cascade import Attack as Stage
from ..cascade import CascadeResult, run_cascade
from ..errors import ConfigError, check_choice, check_int, check_positive
from ..rng import check_seed
from .attack_objects import APGD, APGDT, FAB, PGD, Attack, Square, _check_xy, eval_mode, model_device
from .config import NORMS

__all__ = ["evaluate", "stages", "check_options", "predict", "distance", "seed_summary", "rank", "VERSIONS", "ATTACK_NAMES",
           "VERSION_ATTACKS", "SQUARE_QUERIES", "SQUARE_P_INIT"]

VERSIONS = ("standard", "fast")
#: every stage name :func:`stages` knows, in AutoAttack's order
ATTACK_NAMES = ("apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "fab", "square", "pgd")
VERSION_ATTACKS = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"), "fast": ("apgd-ce", "apgd-t")}
#: target classes of APGD-T / FAB-T per version (capped at K − 1)
VERSION_TARGETS = {"standard": 9, "fast": 3}
#: AutoAttack's Square budget: 5,000 proposals, + 1 for the initialization that our count includes
SQUARE_QUERIES = 5001
SQUARE_P_INIT = 0.8
DEFAULT_STEPS = 100
PGD_STEPS = 50


def check_options(*, norm, eps, version="standard", attacks=None, seed=0, batch_size=500, steps=None,
                  n_queries=None) -> dict:
    """The options of :func:`evaluate`, checked (:class:`~toymodels.errors.ConfigError`); ``attacks``
    becomes a tuple of stage names and attack objects (None: the version's stages)."""
    cfg = dict(norm=check_choice("norm", norm, NORMS), eps=check_positive("eps", eps),
               version=check_choice("version", version, VERSIONS), seed=check_seed(seed),
               batch_size=check_int("batch_size", batch_size, 1),
               steps=None if steps is None else check_int("steps", steps, 1, 10 ** 6),
               n_queries=None if n_queries is None else check_int("n_queries", n_queries, 1, 10 ** 8))
    if attacks is None:
        cfg["attacks"] = VERSION_ATTACKS[cfg["version"]]
        return cfg
    if isinstance(attacks, (str, Attack)):
        attacks = [attacks]
    out = []
    for a in attacks:
        if not isinstance(a, Attack) and a not in ATTACK_NAMES:
            raise ConfigError("attacks", "must be names in {" + ", ".join(ATTACK_NAMES) + "} or attack objects", a)
        out.append(a)
    names = [a.name if isinstance(a, Attack) else a for a in out]
    if not out or len(set(names)) != len(names):
        raise ConfigError("attacks", "must be a non-empty list of distinct attacks", names)
    cfg["attacks"] = tuple(out)
    return cfg


def _object(model, name: str, *, norm, eps, version, seed, steps, n_queries) -> Attack:
    """The attack object of stage ``name`` with the version's budget."""
    it = DEFAULT_STEPS if steps is None else steps
    m = VERSION_TARGETS[version]
    common = dict(norm=norm, eps=eps, seed=seed)
    if name in ("apgd-ce", "apgd-dlr"):
        atk = APGD(model, steps=it, loss=name[5:], **common)
    elif name == "apgd-t":
        atk = APGDT(model, steps=it, n_target_classes=m, loss="dlr", **common)
    elif name in ("fab-t", "fab"):
        atk = FAB(model, steps=it, targeted=name == "fab-t", n_target_classes=m, **common)
    elif name == "square":
        atk = Square(model, n_queries=SQUARE_QUERIES if n_queries is None else n_queries, p_init=SQUARE_P_INIT,
                     loss="margin", schedule="reference", rescale=True, **common)
    else:
        atk = PGD(model, steps=PGD_STEPS if steps is None else steps, loss="ce", **common)
    atk.name = name
    return atk


class _Chunked:
    """A cascade stage: the attack object run in chunks of ``batch_size`` points; for Square, the query
    counts of all chunks of the last call."""

    def __init__(self, atk: Attack, batch_size: int):
        self.atk, self.batch_size, self.results = atk, batch_size, []

    def run(self, x, y):
        self.results = []
        parts = []
        for s in range(0, x.shape[0], self.batch_size):
            parts.append(self.atk(x[s:s + self.batch_size], y[s:s + self.batch_size]))
            if getattr(self.atk, "last_result", None) is not None:
                self.results.append(self.atk.last_result)
        return torch.cat(parts) if parts else x.clone()

    def info(self) -> dict:
        q = np.concatenate([r.n_queries for r in self.results]) if self.results else np.zeros(0, np.int64)
        ok = np.concatenate([r.success for r in self.results]) if self.results else np.zeros(0, bool)
        return {"n_attacked": int(ok.size), "success_rate": float(ok.mean()) if ok.size else float("nan"),
                "mean_queries": float(q[ok].mean()) if ok.any() else float("nan"),
                "median_queries": float(np.median(q[ok])) if ok.any() else float("nan"),
                "total_queries": int(q.sum())}


def stages(model, *, norm, eps, version="standard", attacks=None, seed=0, batch_size=500, steps=None,
           n_queries=None) -> list[Stage]:
    """The cascade stages (:class:`toymodels.cascade.Attack`) of :func:`evaluate` for ``model``."""
    cfg = check_options(norm=norm, eps=eps, version=version, attacks=attacks, seed=seed, batch_size=batch_size,
                        steps=steps, n_queries=n_queries)
    out = []
    for a in cfg["attacks"]:
        atk = a if isinstance(a, Attack) else _object(model, a, norm=cfg["norm"], eps=cfg["eps"], seed=cfg["seed"],
                                                       version=cfg["version"], steps=cfg["steps"],
                                                       n_queries=cfg["n_queries"])
        st = _Chunked(atk, cfg["batch_size"])
        out.append(Stage(atk.name, st.run, st.info if isinstance(atk, Square) else None))
    return out


def predict(model, batch_size: int = 500):
    """x -> numpy labels argmax_k model(x)_k, evaluated without gradients in chunks of ``batch_size``."""
    @torch.no_grad()
    def f(x):
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        z = torch.cat([model(x[s:s + batch_size]) for s in range(0, x.shape[0], batch_size)])
        return z.argmax(1).cpu().numpy()
    return f


def distance(norm: str):
    """(x_adv, x) -> numpy ‖x_adv − x‖_p per point, in float64 (the feasibility check's precision)."""
    def f(xa, x):
        d = (xa.detach().double() - x.detach().double()).flatten(1)
        return (d.abs().amax(1) if norm == "linf" else d.norm(dim=1)).cpu().numpy()
    return f


def evaluate(model, x, y, *, norm: str, eps: float, version: str = "standard",
             attacks: Sequence | None = None, seed: int = 0, batch_size: int = 500, steps: int | None = None,
             n_queries: int | None = None, show_progress: bool = False) -> CascadeResult:
    """Robust accuracy of ``model`` on (x, y) under the AutoAttack cascade (module docstring).

    Parameters
    ----------
    model : nn.Module (or callable) mapping x ∈ [0, 1]^(n, C, H, W) to logits (n, K); normalization
        inside. An nn.Module is put in eval mode for the evaluation, its modes restored afterwards.
    x, y : images (n, C, H, W) in [0, 1] and integer labels (n,); moved to the model's device.
    norm, eps : threat model {x̂ : ‖x̂ − x‖_p ≤ ε} ∩ [0, 1]^d, p ∈ {∞, 2}, ε > 0.
    version : "standard" | "fast" (module docstring).
    attacks : the stages, in order — names of :data:`ATTACK_NAMES` (with the version's budget) and/or
        attack objects of :mod:`toymodels.torch.attack_objects` (their ``name`` labels the stage);
        default: the version's stages.
    seed : the seed every stage draws from.  batch_size : points per attack call and per forward pass.
    steps : iterations of the gradient stages (default 100; ``pgd``: 50).  n_queries : Square's budget
        (default 5,001 = AutoAttack's 5,000 proposals + the initialization).
    show_progress : a bar over the stages on stderr.

    Returns
    -------
    CascadeResult — ``clean_acc``, ``robust_acc``, ``robust_after`` (per stage), ``broken_by`` (per point:
    "clean", the stage name, or "" = robust), ``runtime_s`` per stage, ``extra["square"]`` (queries),
    ``invalid`` (infeasible proposals per stage), ``x_adv`` (on the model's device).
    """
    cfg = check_options(norm=norm, eps=eps, version=version, attacks=attacks, seed=seed, batch_size=batch_size,
                        steps=steps, n_queries=n_queries)
    x, y = _check_xy(x, y)
    dev = model_device(model, x.device)
    x, y = x.to(dev), y.to(dev)
    with eval_mode(model):
        return run_cascade(predict(model, cfg["batch_size"]), stages(model, **cfg), x, y, norm=cfg["norm"],
                           eps=cfg["eps"], distance=distance(cfg["norm"]), show_progress=show_progress)


def seed_summary(results: Sequence[CascadeResult]) -> dict:
    """One leaderboard row from the evaluations of one model with different seeds (thesis Table 4.2):
    ``robust_acc`` the mean over seeds, ``robust_acc_seeds`` each, ``robust_std`` the sample standard
    deviation (ddof = 1; 0 for one seed), ``robust_spread`` max − min, ``robust_after`` per stage (mean),
    ``runtime_s`` summed, and the Ch. 4 sanity checks: robust ≤ clean for every seed, robust accuracy
    non-increasing along the cascade, no infeasible proposal."""
    ra = np.array([r.robust_acc for r in results], dtype=np.float64)
    names = list(results[0].robust_after)
    after = {k: float(np.mean([r.robust_after[k] for r in results])) for k in names}
    monotone = all(all(b <= a for a, b in zip([r.clean_acc, *r.robust_after.values()], r.robust_after.values()))
                   for r in results)
    invalid = int(sum(sum(r.invalid.values()) for r in results))
    sanity = {"robust_le_clean": bool(all(r.robust_acc <= r.clean_acc for r in results)),
              "monotone_cascade": bool(monotone), "no_invalid_proposals": invalid == 0}
    return {"n_points": results[0].n, "clean_acc": results[0].clean_acc, "robust_acc": float(ra.mean()),
            "robust_acc_seeds": ra.tolist(), "robust_std": float(ra.std(ddof=1)) if ra.size > 1 else 0.0,
            "robust_spread": float(ra.max() - ra.min()), "robust_after": after,
            "broken_by": results[0].to_json()["broken_by"], "invalid": invalid,
            "runtime_s": float(sum(sum(r.runtime_s.values()) for r in results)),
            "sanity": sanity, "sanity_ok": all(sanity.values())}


def rank(rows: Sequence[dict]) -> list[dict]:
    """Rows sorted by robust accuracy (descending), then clean accuracy, then name; ``rank`` added
    (1 = most robust)."""
    out = sorted(rows, key=lambda r: (-r["robust_acc"], -r["clean_acc"], r["name"]))
    return [{"rank": i + 1, **r} for i, r in enumerate(out)]
