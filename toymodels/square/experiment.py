"""The toy experiments of ``python -m toymodels.square attack`` and ``ablation`` (also used by the
square figures): a standard-trained target on the synthetic images, its correctly classified test
points, and the attacks on them.

Target. ``cnn``: the single-layer CNN of :mod:`toymodels.cnn.model`, trained without attack
(:func:`toymodels.cnn.train.train`, Adam, cyclic learning rate, mini-batches of min(128, n_train));
``linear``: a softmax linear classifier, 100 full-batch GD steps per epoch
(:mod:`toymodels.square.linear_model`). Data: ``load_images("synthetic", n_train, n_test =
max(2·n_points, 200))``; the attacked points are the correctly classified ones among the first
``n_points`` test points.

Random streams (:mod:`toymodels.rng`) of a run with seed s:

* data: (s, "synthetic/train"), (s, "synthetic/test") (:func:`toymodels.datasets.load_images`);
* the CNN: ``TrainConfig(seed=s)`` (the training's own streams);
* the linear target: ``train_softmax(seed=child_seed(s, "square/linear"))``;
* the Square Attack, and every row of the ablation (the same draws for each row):
  ``seed=child_seed(s, "square/attack")``;
* the white-box PGD reference (ℓ∞: :func:`toymodels.cnn.attacks.pgd`; ℓ2: :func:`toymodels.cnn.apgd.pgd`
  with ``norm="l2"``, whose restart r draws from (that seed, "pgd", r)): ``seed=child_seed(s, "square/pgd")``.

Defaults (issue 13, item 5): 5,000 queries and p = 0.8, the size defaults of
:mod:`toymodels.square.options` for 32×32 images; :data:`DEFAULTS_EVIDENCE` holds the measurement.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace

import numba
import numpy as np

from ..backends import check_backend
from ..errors import check_bool, check_choice, check_int
from ..rng import check_seed, child_seed
from .ablation import ROWS, ablation_attack
from .attack_linf import LINF_EPS_WHY, check_attack_args, resolve_budget
from .options import check_search_options

__all__ = ["DEFAULTS_EVIDENCE", "AttackConfig", "AblationConfig", "QUICK", "resolve_attack", "resolve_ablation", "run_attack",
           "run_ablation", "trained_points", "attack_seed", "pgd_seed", "IMAGE_SHAPE", "L2_EPS_MAX",
           "MAX_POINTS", "MAX_TRAIN", "MAX_EPOCHS", "MAX_PGD_STEPS", "attack_config_dict", "ablation_config_dict"]

#: the synthetic images (C, H, W)
IMAGE_SHAPE = (3, 32, 32)
#: the ℓ2 ball of this radius holds the whole box [0, 1]^{3×32×32}
L2_EPS_MAX = math.sqrt(IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2])
L2_EPS_WHY = f"the ℓ2 ball of radius √(3·32·32) = {L2_EPS_MAX:.4g} already holds every image"
#: upper bounds where time or memory runs out (stated in the CLI's messages)
MAX_POINTS = 2000           # the test set is generated with max(2·n_points, 200) images
MAX_TRAIN = 50_000          # 24.6 kB an image in memory
MAX_EPOCHS = 1000
MAX_PGD_STEPS = 10_000
#: radius of the CNN training's per-epoch evaluation (attack "none": it does not affect the weights)
TRAIN_EVAL_EPS = 8 / 255
#: robust accuracy of ``attack`` (ℓ∞, ε = 8/255, 100 points, thesis schedule, margin loss) per seed s of
#: the run vs white-box PGD-50 on the same points, measured while choosing the defaults: with 5,000
#: queries and p = 0.8 Square is within 0–3 points of PGD on every seed (the reference schedule alike),
#: with 1,000 queries 5–7 points above, with the thesis' p = 0.05 and 1,000 queries 31 points above.
DEFAULTS_EVIDENCE = {
    "pgd50": {0: 0.12, 1: 0.15, 2: 0.20, 3: 0.11},
    "q5000_p0.8_thesis": {0: 0.13, 1: 0.15, 2: 0.20, 3: 0.14},
    "q5000_p0.8_reference": {0: 0.13, 1: 0.14, 2: 0.19, 3: 0.11},
    "q1000_p0.8_thesis": {0: 0.17, 1: 0.22, 2: 0.26, 3: 0.24},
    "q1000_p0.05_thesis": {0: 0.43},
}
#: ``ablation --quick``: smaller defaults (explicit values win)
QUICK = {"n_points": 20, "queries": 100, "epochs": 1, "n_train": 500}


def attack_seed(seed: int) -> int:
    """The Square Attack's seed of a run with seed ``seed``: ``child_seed(seed, "square/attack")``."""
    return child_seed(seed, "square/attack")


def pgd_seed(seed: int) -> int:
    """The white-box PGD's seed of a run with seed ``seed``: ``child_seed(seed, "square/pgd")``."""
    return child_seed(seed, "square/pgd")


@dataclass(frozen=True)
class AttackConfig:
    """``python -m toymodels.square attack``. ``eps`` None: 8/255 (ℓ∞) or 0.5 (ℓ2); ``queries`` /
    ``p_init`` None: the size defaults of :mod:`toymodels.square.options` for the 32×32 synthetic
    images, 5,000 queries and p = 0.8 (AutoAttack's CIFAR values; the evidence: :data:`DEFAULTS_EVIDENCE`).
    ``loss`` None: margin (untargeted) / CE (targeted); ``schedule``, ``rescale``, ``restarts`` as the
    library attack's."""

    norm: str = "linf"
    eps: float | None = None
    queries: int | None = None
    p_init: float | None = None
    targeted: bool = False
    loss: str | None = None
    schedule: str = "thesis"
    rescale: bool = True
    restarts: int = 1
    n_points: int = 100
    n_train: int = 3000
    epochs: int = 3
    pgd_steps: int = 50
    backend: str = "numba"
    model: str = "cnn"
    seed: int = 0


@dataclass(frozen=True)
class AblationConfig:
    """``python -m toymodels.square ablation`` (thesis Table 3.1 on the toy CNN). The default ε = 0.1:
    at 8/255, 77–85 % of the 39 attacked points (seed 0, the other defaults) resist every row within
    300 queries, which hides the differences between the rows."""

    eps: float = 0.1
    queries: int = 300
    p_init: float = 0.05
    n_points: int = 50
    n_train: int = 3000
    epochs: int = 3
    seed: int = 0
    quick: bool = False


def _check_run(cfg) -> None:
    check_int("n_points", cfg.n_points, 1, MAX_POINTS)
    check_int("n_train", cfg.n_train, 1, MAX_TRAIN)
    check_int("epochs", cfg.epochs, 1, MAX_EPOCHS)
    check_seed(cfg.seed)


def resolve_attack(cfg: AttackConfig) -> AttackConfig:
    """Validate every field (ConfigError naming it) and fill in the norm's defaults of ε and p."""
    check_choice("norm", cfg.norm, ("linf", "l2"))
    check_choice("model", cfg.model, ("cnn", "linear"))
    check_backend(cfg.backend)
    check_bool("targeted", cfg.targeted)
    linf = cfg.norm == "linf"
    eps = (8 / 255 if linf else 0.5) if cfg.eps is None else cfg.eps
    queries, p = resolve_budget(cfg.norm, IMAGE_SHAPE, cfg.queries, cfg.p_init, cfg.restarts)
    check_attack_args(eps, queries, p, *((1.0, LINF_EPS_WHY) if linf else (L2_EPS_MAX, L2_EPS_WHY)))
    loss = check_search_options(cfg.loss, cfg.schedule, cfg.rescale, cfg.restarts, cfg.targeted)
    check_int("pgd_steps", cfg.pgd_steps, 1, MAX_PGD_STEPS)
    _check_run(cfg)
    return replace(cfg, eps=float(eps), queries=int(queries), p_init=float(p), loss=loss)


def resolve_ablation(cfg: AblationConfig) -> AblationConfig:
    """Validate every field (ConfigError naming it)."""
    check_bool("quick", cfg.quick)
    check_attack_args(cfg.eps, cfg.queries, cfg.p_init, 1.0, LINF_EPS_WHY)
    _check_run(cfg)
    return replace(cfg, eps=float(cfg.eps), p_init=float(cfg.p_init))


def _n_test(n_points: int) -> int:
    return max(2 * n_points, 200)


def _data(n_train: int, n_points: int, seed: int):
    from ..datasets import load_images

    return load_images("synthetic", n_train=n_train, n_test=_n_test(n_points), seed=seed)


def _train_cnn(data, epochs: int, seed: int, show_progress: bool):
    from ..cnn.train import TrainConfig, train

    cfg = TrainConfig(attack="none", eps=TRAIN_EVAL_EPS, epochs=epochs, batch=min(128, len(data.y_train)),
                      n_eval=50, eval_pgd_steps=1, final_n=50, final_pgd_steps=1, final_restarts=1, seed=seed)
    return train(data, cfg, show_progress=show_progress).params


def trained_points(n_train: int, epochs: int, n_points: int, seed: int = 0, show_progress: bool = False):
    """Train the standard CNN on the synthetic data; return (predict, x, y of the correctly classified
    points among the first ``n_points`` test points, clean accuracy on those ``n_points``, n_test)."""
    from ..cnn import model

    data = _data(n_train, n_points, seed)
    params = _train_cnn(data, epochs, seed, show_progress)
    x, y = data.x_test[:n_points], data.y_test[:n_points]
    correct = model.logits(params, x).argmax(axis=1) == y
    return (lambda v: model.logits(params, v)), x[correct], y[correct], float(correct.mean()), _n_test(n_points)


def _target(c: AttackConfig, show_progress: bool):
    """(predict, white_box() -> x_adv of PGD-``pgd_steps`` (α = ε/4, one random start) in the run's norm
    or None (ℓ2 on the linear model), x, y of the first n_points)."""
    data = _data(c.n_train, c.n_points, c.seed)
    x, y = data.x_test[:c.n_points], data.y_test[:c.n_points]
    alpha = c.eps / 4
    if c.model == "cnn":
        from ..cnn import apgd, attacks, model

        params = _train_cnn(data, c.epochs, c.seed, show_progress)
        if c.norm == "linf":
            def white_box():
                return x + attacks.pgd(params, x, y, c.eps, alpha, c.pgd_steps, 1, seed=pgd_seed(c.seed))
        else:
            def white_box():
                return apgd.pgd(params, x, y, norm="l2", eps=c.eps, alpha=alpha, steps=c.pgd_steps,
                                seed=pgd_seed(c.seed))
        return (lambda v: model.logits(params, v)), white_box, x, y
    from .linear_model import pgd_linf, train_softmax

    lin = train_softmax(data.x_train, data.y_train, data.num_classes, steps=100 * c.epochs,
                        seed=child_seed(c.seed, "square/linear"))
    if c.norm == "l2":
        return lin.logits, (lambda: None), x, y
    return lin.logits, (lambda: x + pgd_linf(lin, x, y, c.eps, alpha, c.pgd_steps, seed=pgd_seed(c.seed))), x, y


def _median(a: np.ndarray) -> float:
    return float(np.median(a)) if a.size else float("nan")


def _mean(a: np.ndarray) -> float:
    return float(a.mean()) if a.size else float("nan")


def run_attack(cfg: AttackConfig, show_progress: bool = False) -> dict:
    """Train the target, attack its correctly classified points (and, ℓ∞, run white-box PGD on all
    ``n_points`` for reference); the payload of ``python -m toymodels.square attack``."""
    from .attack_l2 import square_attack_l2
    from .attack_linf import square_attack_linf

    c = resolve_attack(cfg)
    t0 = time.perf_counter()
    f, white_box, x, y = _target(c, show_progress)
    correct = f(x).argmax(axis=1) == y
    clean_acc = float(correct.mean())
    xc, yc = x[correct], y[correct]
    kw = dict(targeted=c.targeted, loss=c.loss, schedule=c.schedule, rescale=c.rescale, restarts=c.restarts,
              seed=attack_seed(c.seed), show_progress=show_progress)
    # thousands of forward passes on <= n_points images each: one numba thread (waking the thread pool
    # costs more than the work; 3-4x faster at the defaults), as the square figures do
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        if c.norm == "linf":
            sq = square_attack_linf(f, xc, yc, c.eps, c.queries, c.p_init, backend=c.backend, **kw)
        else:
            sq = square_attack_l2(f, xc, yc, c.eps, c.queries, c.p_init, **kw)
    finally:
        numba.set_num_threads(threads)
    x_wb = white_box()
    pgd_acc = None if x_wb is None else float(np.mean(f(x_wb).argmax(axis=1) == y))
    delta = (sq.x_adv - xc).reshape(len(xc), -1)
    norms = np.abs(delta).max(axis=1) if c.norm == "linf" else np.sqrt((delta ** 2).sum(axis=1))
    succ_q = sq.n_queries[sq.success]
    return {"failure_rate": sq.failure_rate, "mean_queries": _mean(succ_q), "median_queries": _median(succ_q),
            "mean_queries_all": _mean(sq.n_queries), "n_attacked": int(correct.sum()), "clean_acc": clean_acc,
            "square_robust_acc": clean_acc * sq.failure_rate if correct.any() else 0.0,
            "pgd_robust_acc": pgd_acc, "max_perturbation_norm": float(norms.max()) if norms.size else 0.0,
            "seconds": round(time.perf_counter() - t0, 2)}


def attack_config_dict(cfg: AttackConfig) -> dict:
    """The resolved config of an attack run, with what it implies (data sizes, seeds of the streams)."""
    c = resolve_attack(cfg)
    return {**asdict(c), "n_test": _n_test(c.n_points), "pgd_alpha": c.eps / 4, "dataset": "synthetic",
            "train_attack": "none", "linear_gd_steps": 100 * c.epochs if c.model == "linear" else None,
            "attack_seed": attack_seed(c.seed),
            "pgd_seed": pgd_seed(c.seed) if c.norm == "linf" or c.model == "cnn" else None,
            "pgd": None if c.norm == "l2" and c.model == "linear" else
            f"PGD-{c.pgd_steps} {c.norm}, alpha = eps/4, 1 random start"}


def curve_queries(queries: int) -> np.ndarray:
    """The ≤ 30 log-spaced budgets 1..``queries`` at which the ablation reports success curves."""
    return np.unique(np.geomspace(1, queries, 30).astype(int))


def run_ablation(cfg: AblationConfig, show_progress: bool = False) -> dict:
    """Thesis Table 3.1 on the toy CNN: every row of :data:`~toymodels.square.ablation.ROWS` on the same
    correctly classified points with the same attack seed; the payload of ``... square ablation``."""
    c = resolve_ablation(cfg)
    t0 = time.perf_counter()
    f, xc, yc, clean_acc, _ = trained_points(c.n_train, c.epochs, c.n_points, c.seed, show_progress)
    qs = curve_queries(c.queries)
    rows = []
    for shape, signs, init in ROWS:
        r = ablation_attack(f, xc, yc, c.eps, c.queries, c.p_init, shape=shape, signs=signs, init=init,
                            seed=attack_seed(c.seed), show_progress=show_progress)
        rows.append({"shape": shape, "signs": signs, "init": init, **r.stats(),
                     "success_curve": r.curve(c.queries)[qs - 1].tolist()})
    return {"rows": rows, "curve_queries": qs.tolist(), "n_attacked": int(len(yc)), "clean_acc": clean_acc,
            "seconds": round(time.perf_counter() - t0, 2)}


def ablation_config_dict(cfg: AblationConfig) -> dict:
    """The resolved config of an ablation run, with what it implies."""
    c = resolve_ablation(cfg)
    return {**asdict(c), "n_test": _n_test(c.n_points), "attack_seed": attack_seed(c.seed),
            "dataset": "synthetic", "train_attack": "none", "targeted": False}
