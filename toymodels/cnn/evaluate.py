"""AutoAttack-style robustness evaluation of the numba single-layer CNN (thesis Ch. 4 in miniature):
the cascade of :func:`toymodels.cascade.run_cascade` — each attack on the points every earlier attack
left robust — over the attacks that exist for this model without torch:

* ``apgd-ce``  APGD with cross-entropy (:func:`toymodels.cnn.apgd.apgd`, 100 steps, 1 restart);
* ``apgd-t``   APGD-T with the targeted DLR loss over the 9 (fast: 3) runner-up classes of the clean
               logits (at most K − 1), 100 steps, 1 restart per target;
* ``square``   the Square Attack (:mod:`toymodels.square`, the numpy/numba twin), margin loss, the
               reference-code schedule with AutoAttack's rescaling, p_init = 0.8, 5,000 queries, 1 restart.

``version="standard"`` runs all three (AutoAttack's standard cascade minus FAB-T: FAB exists only
for ``nn.Module`` s (:mod:`toymodels.torch.fab`) and has no numba twin — its projection subproblem
needs the per-class input Jacobian at every step; run ``python -m toymodels.torch evaluate`` on the
torch twin (:func:`toymodels.cnn.torch_twin.to_torch`) for it). ``version="fast"`` runs APGD-CE and
APGD-T with 3 targets. The targeted DLR loss needs K ≥ 4 classes: with fewer, APGD-T uses the
targeted CE loss instead (recorded under ``extra``).

Threat model {x̂ : ‖x̂ − x‖_p ≤ ε, x̂ ∈ [0, 1]^d}, p ∈ {∞, 2}. All attacks draw from named streams of
``seed`` (APGD: (seed, "apgd", j); Square: ``stream(seed)``), so an evaluation is determined by the
parameters, the points and the seed.
"""
from __future__ import annotations

import numpy as np

from ..cascade import Attack, CascadeResult, run_cascade
from ..errors import ConfigError, check_choice, check_int, check_positive
from ..rng import check_seed
from .apgd import NORMS, apgd
from .model import CNNParams, _logits_core, _params, _validate

__all__ = ["VERSIONS", "ATTACKS", "evaluate", "cascade_attacks", "distance", "load_snapshot"]

VERSIONS = ("standard", "fast")
#: attack names, in cascade order
ATTACKS = ("apgd-ce", "apgd-t", "square")
_VERSION_ATTACKS = {"standard": ("apgd-ce", "apgd-t", "square"), "fast": ("apgd-ce", "apgd-t")}
_TARGETS = {"standard": 9, "fast": 3}


def distance(x_adv: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    """Per-point ‖x_adv − x‖_p (p = ∞ or 2) over all non-batch axes."""
    d = (np.asarray(x_adv, dtype=np.float64) - np.asarray(x, dtype=np.float64)).reshape(len(x), -1)
    return np.abs(d).max(axis=1) if norm == "linf" else np.sqrt((d ** 2).sum(axis=1))


def _square(params, norm, eps, seed, queries, info):
    """The Square stage: ``run(x, y)`` and its query log (mean/median over the attacked points)."""
    from ..square import square_attack_l2, square_attack_linf

    P = _params(params)

    def predict(xs):
        return _logits_core(P, np.ascontiguousarray(xs, dtype=np.float64))

    fn = square_attack_linf if norm == "linf" else square_attack_l2

    def run(xs, ys):
        r = fn(predict, xs, ys, eps, queries, 0.8, loss="margin", schedule="reference", rescale=True,
               restarts=1, seed=seed)
        q = np.asarray(r.n_queries)
        ok = np.asarray(r.success)
        info.update(n_queries=int(queries), p_init=0.8, schedule="reference",
                    mean_queries_success=float(q[ok].mean()) if ok.any() else None,
                    median_queries_success=float(np.median(q[ok])) if ok.any() else None)
        return r.x_adv

    return run


def cascade_attacks(params: CNNParams, *, norm: str, eps: float, version: str = "standard", attacks=None,
                    steps: int = 100, square_queries: int = 5001, seed: int = 0, n_classes: int,
                    backend: str = "numba") -> list[Attack]:
    """The cascade stages (module docstring) as :class:`toymodels.cascade.Attack` objects; ``attacks``
    (names from :data:`ATTACKS`, in the given order) overrides the version's list."""
    names = _VERSION_ATTACKS[check_choice("version", version, VERSIONS)] if attacks is None else tuple(attacks)
    for a in names:
        check_choice("attacks", a, ATTACKS)
    n_targets = min(_TARGETS[version], n_classes - 1)
    t_loss = "dlr" if n_classes >= 4 else "ce"
    common = dict(norm=norm, eps=eps, steps=steps, seed=seed, backend=backend)
    t_info = {"n_target_classes": n_targets, "loss": t_loss, "steps": steps}
    stages = {
        "apgd-ce": lambda: Attack("apgd-ce", lambda xs, ys: apgd(params, xs, ys, loss="ce", **common),
                                  lambda: {"steps": steps, "loss": "ce"}),
        "apgd-t": lambda: Attack("apgd-t", lambda xs, ys: apgd(params, xs, ys, loss=t_loss, targeted=True,
                                                               n_target_classes=n_targets, **common),
                                 lambda: dict(t_info)),
    }
    sq_info: dict = {}
    stages["square"] = lambda: Attack("square", _square(params, norm, eps, seed, square_queries, sq_info),
                                      lambda: dict(sq_info))
    return [stages[a]() for a in names]


def evaluate(params: CNNParams, x, y, *, norm: str, eps: float, version: str = "standard", attacks=None,
             steps: int = 100, square_queries: int = 5001, seed: int = 0, show_progress: bool = False,
             backend: str = "numba") -> CascadeResult:
    """Run the cascade on (x, y): x (N, C, H, W) in [0, 1], y (N,) labels; returns the
    :class:`toymodels.cascade.CascadeResult` (clean and robust accuracy, robust accuracy after each
    stage, the breaking attack per point, runtimes, Square's queries under ``extra``, x_adv)."""
    norm = check_choice("norm", norm, NORMS)
    eps = check_positive("eps", eps)
    if norm == "linf" and eps > 1:
        raise ConfigError("eps", "must be at most 1 in ℓ∞ (the box [0, 1] is the whole ball)", eps)
    check_int("steps", steps, 1)
    check_int("square_queries", square_queries, 1)
    seed = check_seed(seed)
    P, x, y = _validate(params, x, y)
    stages = cascade_attacks(params, norm=norm, eps=eps, version=version, attacks=attacks, steps=steps,
                             square_queries=square_queries, seed=seed, n_classes=P[2].shape[0], backend=backend)
    return run_cascade(lambda xs: _logits_core(P, np.ascontiguousarray(xs, dtype=np.float64), backend).argmax(1),
                       stages, x, y, norm=norm, eps=eps, distance=lambda a, b: distance(a, b, norm),
                       show_progress=show_progress)


# ----------------------------------------------------------------------------------------------
# snapshots of ``python -m toymodels.cnn train --out DIR``
# ----------------------------------------------------------------------------------------------
_SNAPSHOT_KEYS = ("Wc", "bc", "U", "c", "Wc0", "bc0", "U0", "c0", "filters")


def load_snapshot(path, epoch="last") -> tuple[CNNParams, int, dict | None]:
    """(params, epoch, run config or None) from the ``snapshots.npz`` of ``cnn train --out DIR``.

    The file holds the full parameters only at initialization (epoch 0: Wc0, bc0, U0, c0) and at the
    end (Wc, bc, U, c); per-epoch snapshots keep the filters and biases but not the dense layer, so
    ``epoch`` must be "last", 0 or the last epoch's number. The run config (dataset, its seed and
    sizes, ε) is read from the ``result.json`` written beside the file, if there is one."""
    import json
    from pathlib import Path

    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in _SNAPSHOT_KEYS if k not in f.files]
            arrays = {k: np.array(f[k], dtype=np.float64) for k in _SNAPSHOT_KEYS if k in f.files}
    except (OSError, ValueError) as exc:
        raise ConfigError("snapshots", "must be a .npz file written by `python -m toymodels.cnn train --out`",
                          f"{path} ({type(exc).__name__})") from None
    if missing:
        raise ConfigError("snapshots", "must be the snapshots.npz of `python -m toymodels.cnn train --out` "
                                       f"(missing arrays {missing})", str(path))
    last = arrays["filters"].shape[0] - 1
    e = last if epoch == "last" else check_int("epoch", epoch, 0)
    if e not in (0, last):
        raise ConfigError("epoch", f"must be 'last', 0 or {last}: the snapshots hold the dense layer only at "
                                   "initialization and at the end", epoch)
    sfx = "" if e == last else "0"
    params = CNNParams(*(arrays[k + sfx] for k in ("Wc", "bc", "U", "c")))
    _params(params)
    config = None
    rj = p.parent / "result.json"
    if rj.is_file():
        try:
            config = json.loads(rj.read_text()).get("config")
        except (OSError, ValueError):
            config = None
    return params, e, config if isinstance(config, dict) else None
