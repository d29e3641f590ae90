"""Which method prevents catastrophic overfitting (CO), at what cost, and how robust is the result
(issue 14): a grid of (method, ε, seed) runs of :func:`toymodels.cnn.train.train` on the embedded
``photos`` data and a table per (method, ε).

Methods (:data:`METHODS`: each is a set of :class:`~toymodels.cnn.train.TrainConfig` fields; the
regularized ones are FGSM training plus the regularizer, λ = the training module's per-method
default on ``photos``):

* ``fgsm``          FGSM, α = ε (the method that shows CO);
* ``fgsm-rs``       FGSM with a random start, α = 1.25ε;
* ``pgd-2``         PGD-2, α = ε/2, no random start (thesis Table 2.3);
* ``gradalign``     FGSM + exact GradAlign (double backprop; the reference);
* ``n-fgsm``        N-FGSM (de Jorge et al. 2022): noise U[−2ε, 2ε]^d, step α = ε, no projection;
* ``elle``          FGSM + ELLE's local-linearity penalty (Abad Rocamora et al. 2024);
* ``elle-a``        FGSM + ELLE with the adaptive λ of ELLE-A (λ_max = ELLE's λ, :mod:`toymodels.elle_a`);
* ``gradalign-fd``  FGSM + GradAlign with the finite-difference parameter gradient (no double backprop);
* ``gradnorm``      FGSM + the ℓ₂ input-gradient-norm penalty (thesis App. 2.11.5);
* ``cure``          FGSM + CURE (Moosavi-Dezfooli et al. 2019).

A regularized method may be named ``base:λ`` (``elle:1000``, ``gradnorm:10``; the bases of
:data:`LAMBDA_FIELD`) to run it with that λ instead of its default; each name is its own row, so a
λ-calibration grid is one study (``co-study --methods elle:300,elle:1000,elle:3000 --eps 40/255``).

A method is *available* when the installed :mod:`toymodels.cnn.train` accepts its fields
(:func:`available_methods`); asking for one that is not is a ConfigError naming ``methods``.

Per run (seed s, the data of ``load_images(dataset, n_train, n_test, seed=s)``, exactly as
``python -m toymodels.cnn train --seed s``): CO = :func:`toymodels.cnn.train.detect_co` on the
per-epoch history (PGD-10 on ``n_eval`` test points); clean accuracy on the whole test set after the
last epoch; robust accuracy on ``robust_n`` test points drawn from the stream (s, "co-study/robust"):
``robust="pgd"``: PGD-``pgd_steps``-``pgd_restarts`` (α = ε/4, random starts from the stream
(s, "co-study/robust/pgd")); ``robust="cascade"``: the AutoAttack-style cascade APGD-CE → APGD-T →
Square of :func:`toymodels.cnn.evaluate.evaluate` (``version="standard"``, seed from
(s, "co-study/cascade")). A run that diverges (non-finite loss) counts in ``n_diverged`` and is left
out of the accuracy means.

Table row per (method, ε): CO rate = (runs with CO) / runs; clean and robust accuracy mean ± s.e.
(s.e. = sample standard deviation / √n, n = the non-diverged runs; None for n < 2). Epoch cost
relative to FGSM, measured in the same study twice: (1) in the runs themselves — the mean CPU time
of a training epoch (batches only, no evaluation; all threads of the worker process) over the
method's runs at that ε, divided by FGSM's (``rel_train_epoch_cpu_time``, the reported cost: it
averages over 15 epochs × 5 seeds); (2) apart (:func:`epoch_times`): the CPU time (and the wall time) of one training epoch on
``time_images`` training images, each method timed ``time_repeats`` times interleaved with FGSM in
the same process (the shortest per method), before the grid runs (so the study's own workers do
not compete). On the shared machine (2) is noisy — two such measurements of ELLE gave 1.64× and
2.92× FGSM, one gave PGD-2 at 0.49× — while the runs' CPU times agreed to a few percent between
slices: read (1).

Calibration of the default grid (``photos``, ``train --attack fgsm``, per-epoch PGD-10 on 500 points,
CO by ``detect_co``, final PGD-10-1 on 500 points; wall time on the shared 2-core machine at load
5–9, two runs at a time under ``nice``):

    ======  ========  ======  ===================  ===========================  ==================
    ε·255   images    epochs  FGSM CO (seeds 0–4)  final PGD-10 acc. per seed   wall per run
    ======  ========  ======  ===================  ===========================  ==================
    28      5,000     15      1/5 (2)              .21 .21 .00 .22 .12          61–100 s
    32      5,000     15      4/5 (1, 2, 3, 4)     .21 .00 .00 .07 .00          44–53 s
    32      5,000     10      2/5 (2, 4)           .21 .20 .02 .19 .05          45–60 s
    32      3,000     15      2/5 (2, 4)           .21 .16 .00 .14 .06          16–34 s
    32      10,000    15      1/1 (0)              .00                          90 s
    40      5,000     15      5/5                  .00 .00 .00 .00 .00          77–103 s
    40      5,000     10      3/5 (1, 3, 4)        .18 .00 .00 .00 .00          30–51 s
    ======  ========  ======  ===================  ===========================  ==================

(The thesis-size setting, 24/255 with 10,000 images and 30 epochs, gave CO in 3/10 seeds:
:mod:`toymodels.cnn.train`.) At 40/255 with 10 epochs seed 2 never becomes robust (best PGD
accuracy .01: not CO, no robustness to lose). Fewer epochs or images make CO rarer at 32/255
(2/5 instead of 4/5); 28/255 is mostly below the CO threshold. Hence the default grid: ε ∈ {32/255,
40/255} (CO in 4/5 and 5/5 FGSM seeds), 5,000 training images, 15 epochs, seeds 0–4, every available
method; robust accuracy PGD-50-1 on 500 points (``--robust cascade`` for the cascade; not timed
here: Square's 5,000 queries on every point still robust make it far costlier than PGD-50-1).

Runtime of the default grid (estimate, not a full run): one slice — every method, ε = 32/255, seed 0
— took 310 CPU-s in its nine training runs (FGSM 23 CPU-s, FGSM-RS / PGD-2 / GradAlign / N-FGSM
25–26, gradient norm 38, ELLE / GradAlign-FD / CURE 49–50) and 363 s of wall time on the loaded
machine (load 6–7); the slices (32/255, seed 1) and (40/255, seed 1) took 287 and 294 CPU-s. The
default grid is 10 such slices (2 ε × 5 seeds): ≈ 3,000 CPU-s, ≈ 25 min on 2 idle cores plus about
a minute of epoch timing and worker start-up; at the calibration's load (wall ≈ 2.3 × CPU / 2) about
an hour. ``--quick``: 60 s wall (33 CPU-s of training runs).

First look (one seed each, not the study's 5; robust = PGD-50-1 on 500 points; epoch cost = in-run
CPU time per training epoch / FGSM's, slice 32/255 seed 1):

    ============  ====================  ====================  ==========
    method        32/255, seed 1        40/255, seed 1        epoch cost
    ============  ====================  ====================  ==========
    fgsm          CO (ep. 9), .000      CO (ep. 5), .000      1.00
    fgsm-rs       —, .266               CO (ep. 12), .080     1.15
    pgd-2         —, .234               —, .204               1.19
    gradalign     —, .260               —, .268               1.21
    n-fgsm        —, .324               —, .324               1.21
    elle          —, .184               CO (ep. 6), .000      2.92
    gradalign-fd  —, .280               —, .188               2.63
    gradnorm      —, .234               —, .172               2.03
    cure          —, .238               —, .132               2.94
    ============  ====================  ====================  ==========

Exact GradAlign costs only 1.2× FGSM here (the fused numba kernel, not the thesis' 3× on a GPU),
so the double-backprop-free methods are not cheaper in this toy model; N-FGSM is the candidate
that prevents CO at FGSM cost with robust accuracy above GradAlign's in these two runs.
"""
from __future__ import annotations

import math
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..datasets import IMAGE_DATASETS, ImageData, load_images
from ..errors import ConfigError, RunError, check_choice, check_int, check_range
from ..rng import check_seed, child_seed, stream
from . import attacks, model
from . import train as _train

__all__ = ["METHODS", "LAMBDA_FIELD", "split_method", "StudyConfig", "RunRecord", "RunSpec", "available_methods", "resolve_study", "run_one", "run_study", "aggregate",
           "mean_se", "epoch_times", "goal_summary", "ROBUST", "QUICK", "MAX_SEEDS", "MAX_WORKERS"]

#: method → the TrainConfig fields that define it (module docstring)
METHODS = {
    "fgsm": dict(attack="fgsm"),
    "fgsm-rs": dict(attack="fgsm-rs"),
    "pgd-2": dict(attack="pgd", pgd_steps=2),
    "gradalign": dict(attack="fgsm", grad_align="default"),
    "n-fgsm": dict(attack="n-fgsm"),
    "elle": dict(attack="fgsm", reg="elle", reg_lambda="default"),
    "elle-a": dict(attack="fgsm", reg="elle-a", reg_lambda="default"),
    "gradalign-fd": dict(attack="fgsm", reg="gradalign-fd", reg_lambda="default"),
    "gradnorm": dict(attack="fgsm", reg="gradnorm", reg_lambda="default"),
    "cure": dict(attack="fgsm", reg="cure", reg_lambda="default"),
}
#: the regularized methods and the TrainConfig field of their λ: a method may be named ``base:λ``
#: (e.g. ``elle:1000``) to run it with that λ instead of the default (λ calibration grids)
LAMBDA_FIELD = {"gradalign": "grad_align", "elle": "reg_lambda", "elle-a": "reg_lambda", "gradalign-fd": "reg_lambda",
                "gradnorm": "reg_lambda", "cure": "reg_lambda"}
ROBUST = ("pgd", "cascade")
MAX_SEEDS = 1000
MAX_WORKERS = 64
#: the reference method of the relative epoch cost
REFERENCE = "fgsm"


@dataclass(frozen=True)
class StudyConfig:
    """The grid and the per-run settings (module docstring). ``methods=None``: every available
    method; ``seeds`` runs per (method, ε) with the seeds ``seed``, ``seed + 1``, …"""

    methods: tuple | None = None
    eps: tuple = (32 / 255, 40 / 255)
    seeds: int = 5
    seed: int = 0
    epochs: int = 15
    n_train: int = 5000
    n_test: int = 2000
    dataset: str = "photos"
    n_eval: int = 500
    eval_pgd_steps: int = 10
    robust: str = "pgd"
    robust_n: int = 500
    pgd_steps: int = 50
    pgd_restarts: int = 1
    cascade_queries: int = 5001
    time_images: int = 2000
    time_repeats: int = 3
    workers: int = 2

    def as_dict(self) -> dict:
        return asdict(self)


#: ``--quick``: a ≤ 3-minute smoke version of the default study (every available method, one ε,
#: two seeds, few images and epochs; CO is not expected at this size)
QUICK = dict(eps=(32 / 255,), seeds=2, epochs=3, n_train=1000, n_test=500, n_eval=200, robust_n=200, pgd_steps=10,
             time_images=1000, time_repeats=2)


def split_method(name: str) -> tuple[str, float | None]:
    """(base method, λ or None) of a method name ``base`` or ``base:λ`` (λ a number ≥ 0, only for the
    methods of :data:`LAMBDA_FIELD`); ConfigError naming ``methods`` otherwise."""
    base, sep, lam = str(name).partition(":")
    if base not in METHODS:
        raise ConfigError("methods", f"{name!r}: {base!r} is not a method; methods: {', '.join(METHODS)}", name)
    if not sep:
        return base, None
    if base not in LAMBDA_FIELD:
        raise ConfigError("methods", f"{name!r}: only the regularized methods {', '.join(LAMBDA_FIELD)} take ':λ'",
                          name)
    try:
        x = float(lam)
    except ValueError:
        x = math.nan
    if not (math.isfinite(x) and 0 <= x <= _train.MAX_LAMBDA):
        raise ConfigError("methods", f"{name!r}: λ must be a number in [0, {_train.MAX_LAMBDA:g}]", name)
    return base, x


def _method_config(method: str, eps: float) -> _train.TrainConfig:
    """The TrainConfig of ``method`` (``base`` or ``base:λ``) at ``eps`` (TypeError if the installed
    TrainConfig lacks a field)."""
    base, lam = split_method(method)
    fields = dict(METHODS[base])
    if lam is not None:
        fields[LAMBDA_FIELD[base]] = lam
    return replace(_train.TrainConfig(), eps=float(eps), **fields)


def available_methods(dataset: str = "photos") -> tuple:
    """The names of :data:`METHODS` that the installed :mod:`toymodels.cnn.train` accepts (its
    ``TrainConfig`` has the fields and :func:`~toymodels.cnn.train.resolve` accepts the values)."""
    out = []
    for m in METHODS:
        try:
            _train.resolve(_method_config(m, 32 / 255), dataset)
        except (TypeError, ConfigError):
            continue
        out.append(m)
    return tuple(out)


def _check_methods(methods, dataset: str) -> tuple:
    avail = available_methods(dataset)
    if methods is None:
        return avail
    methods = tuple(methods)
    if not methods or len(set(methods)) != len(methods):
        raise ConfigError("methods", "must be a non-empty list of distinct method names", methods)
    for m in methods:
        base, _ = split_method(m)
        if base not in avail:
            raise ConfigError("methods", f"{m!r} is not available in this toymodels.cnn.train; available: "
                                         f"{', '.join(avail)}", methods)
    return methods


def resolve_study(cfg: StudyConfig) -> StudyConfig:
    """Validate ``cfg`` (ConfigError naming the field) and fill in ``methods``."""
    check_choice("dataset", cfg.dataset, IMAGE_DATASETS)
    check_choice("robust", cfg.robust, ROBUST)
    eps = tuple(cfg.eps)
    if not eps or len(set(eps)) != len(eps):
        raise ConfigError("eps", "must be a non-empty list of distinct radii in (0, 1]", cfg.eps)
    eps = tuple(check_range("eps", e, 0.0, 1.0, lo_open=True) for e in eps)
    check_int("seeds", cfg.seeds, 1, MAX_SEEDS)
    check_seed(cfg.seed)
    if cfg.seed + cfg.seeds - 1 > 2 ** 63 - 1:
        raise ConfigError("seed", "plus seeds - 1 must be at most 2^63 - 1", cfg.seed)
    for name, lo, hi in (("epochs", 1, _train.MAX_EPOCHS), ("n_train", 1, _train.MAX_POINTS),
                         ("n_test", 1, _train.MAX_POINTS), ("n_eval", 1, _train.MAX_POINTS),
                         ("eval_pgd_steps", 1, _train.MAX_STEPS), ("robust_n", 1, _train.MAX_POINTS),
                         ("pgd_steps", 1, _train.MAX_STEPS), ("pgd_restarts", 1, _train.MAX_RESTARTS),
                         ("cascade_queries", 1, 100_000), ("time_images", 1, _train.MAX_POINTS),
                         ("time_repeats", 1, 100), ("workers", 1, MAX_WORKERS)):
        check_int(name, getattr(cfg, name), lo, hi)
    if cfg.n_train < 128:
        raise ConfigError("n_train", "must be at least the batch size 128", cfg.n_train)
    for name in ("n_eval", "robust_n"):
        if getattr(cfg, name) > cfg.n_test:
            raise ConfigError(name, f"must be at most the {cfg.n_test} test images (n_test)", getattr(cfg, name))
    methods = _check_methods(cfg.methods, cfg.dataset)
    return replace(cfg, methods=methods, eps=eps)


# ----------------------------------------------------------------------------------------------
# one run
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid (picklable: it travels to a worker process)."""
    method: str
    eps: float
    seed: int
    study: StudyConfig


def _train_config(spec: RunSpec) -> _train.TrainConfig:
    """The run's TrainConfig: the method's fields, the study's sizes; the training module's own final
    evaluation is reduced to one point (the study evaluates robustness itself, :func:`_robust`)."""
    s = spec.study
    return replace(_method_config(spec.method, spec.eps), epochs=s.epochs, n_eval=s.n_eval,
                   eval_pgd_steps=s.eval_pgd_steps, final_n=1, final_pgd_steps=1, final_restarts=1, seed=spec.seed)


def _robust(params, data: ImageData, spec: RunSpec) -> tuple[float, int]:
    """(robust accuracy, points) on ``robust_n`` test points of the stream (seed, "co-study/robust")."""
    s = spec.study
    idx = np.sort(stream(spec.seed, "co-study/robust").choice(len(data.y_test), size=s.robust_n, replace=False))
    x, y = np.ascontiguousarray(data.x_test[idx]), data.y_test[idx]
    if s.robust == "cascade":
        from .evaluate import evaluate

        res = evaluate(params, x, y, norm="linf", eps=spec.eps, version="standard",
                       square_queries=s.cascade_queries, seed=child_seed(spec.seed, "co-study/cascade"))
        return float(res.robust_acc), len(y)
    d = attacks.pgd(params, x, y, spec.eps, spec.eps / 4, s.pgd_steps, s.pgd_restarts,
                    seed=child_seed(spec.seed, "co-study/robust/pgd"))
    return float((model.logits(params, x + d).argmax(axis=1) == y).mean()), len(y)


@dataclass
class RunRecord:
    """The outcome of one run (JSON-ready): CO epoch (None: no CO), final clean accuracy (whole test
    set), robust accuracy, the last epoch's FGSM / PGD-10 accuracy on the ``n_eval`` points, and the
    per-epoch PGD / FGSM accuracy curves; wall time and CPU time (all threads of the process) of the run
    and the mean CPU / wall time of its training epochs (batches only, the ``epoch_cpu_time_s`` / ``epoch_wall_s`` that train records per epoch)."""
    method: str
    eps: float
    seed: int
    co_epoch: int | None
    diverged: bool
    clean_acc: float | None
    robust_acc: float | None
    fgsm_acc: float | None
    pgd10_acc: float | None
    pgd_curve: list
    fgsm_curve: list
    runtime_s: float
    cpu_s: float
    train_epoch_cpu_s: float | None
    train_epoch_wall_s: float | None


def run_one(spec: RunSpec) -> dict:
    """Train one (method, ε, seed) run and evaluate it; returns a :class:`RunRecord` as a dict."""
    t0, c0 = time.perf_counter(), time.process_time()
    s = spec.study
    data = load_images(s.dataset, None, n_train=s.n_train, n_test=s.n_test, seed=spec.seed)
    res = _train.train(data, _train_config(spec))
    # the training epochs' own timings (batches only, recorded by train)
    epochs = [h for h in res.history[1:] if h.get("epoch_cpu_time_s") is not None]
    ep = {"n": len(epochs), "wall_s": sum(h["epoch_wall_s"] for h in epochs),
          "cpu_s": sum(h["epoch_cpu_time_s"] for h in epochs)} if epochs else {}
    last = res.history[-1]
    clean = robust = None
    if not res.diverged:
        clean = float(res.final["clean_acc"])
        robust, _ = _robust(res.params, data, spec)
    rec = RunRecord(spec.method, float(spec.eps), int(spec.seed), res.co_epoch, bool(res.diverged), clean, robust,
                    last["fgsm_acc"], last["pgd_acc"], [h["pgd_acc"] for h in res.history],
                    [h["fgsm_acc"] for h in res.history], time.perf_counter() - t0,
                    time.process_time() - c0, ep["cpu_s"] / ep["n"] if ep else None,
                    ep["wall_s"] / ep["n"] if ep else None)
    return asdict(rec)


# ----------------------------------------------------------------------------------------------
# epoch cost
# ----------------------------------------------------------------------------------------------
def _timing_data(data: ImageData, n: int) -> ImageData:
    """The first ``n`` training images and 2 test images (the per-epoch evaluation then costs ~nothing)."""
    n = min(n, len(data.y_train))
    return ImageData(data.name, data.x_train[:n], data.y_train[:n], data.x_test[:2], data.y_test[:2],
                     data.num_classes, data.meta)


def epoch_times(methods, eps: float, study: StudyConfig) -> tuple[dict, dict]:
    """(wall, CPU): the shortest wall time and the shortest CPU time (s; all threads of this process)
    of one training epoch per method (and of :data:`REFERENCE`), on the first ``time_images``
    training images of seed ``study.seed``'s data, batch 128, evaluation on 2 points; the methods are
    timed round-robin ``time_repeats`` times after one untimed warm-up each (numba compilation). The
    minimum, not the mean, estimates the cost on a machine shared with other work (interference only
    adds time); the CPU time is much less sensitive to that interference than the wall time."""
    data = load_images(study.dataset, None, n_train=study.n_train, n_test=study.n_test, seed=study.seed)
    td = _timing_data(data, study.time_images)
    names = list(dict.fromkeys([REFERENCE, *methods]))
    wall, cpu = {m: [] for m in names}, {m: [] for m in names}
    for rep in range(study.time_repeats + 1):
        for m in names:
            cfg = replace(_method_config(m, eps), epochs=1, n_eval=1, eval_pgd_steps=1, final_n=1, final_pgd_steps=1,
                          final_restarts=1, batch=min(128, len(td.y_train)), seed=study.seed)
            t0, c0 = time.perf_counter(), time.process_time()
            _train.train(td if rep else _timing_data(td, min(256, len(td.y_train))), cfg)
            if rep:
                wall[m].append(time.perf_counter() - t0)
                cpu[m].append(time.process_time() - c0)
    return {m: min(v) for m, v in wall.items()}, {m: min(v) for m, v in cpu.items()}


# ----------------------------------------------------------------------------------------------
# aggregation
# ----------------------------------------------------------------------------------------------
def mean_se(values) -> tuple[float | None, float | None]:
    """(mean, standard error = sample std (ddof 1) / √n) of the non-None values; (None, None) for none,
    (x, None) for one."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return None, None
    if len(v) == 1:
        return v[0], None
    return statistics.fmean(v), statistics.stdev(v) / math.sqrt(len(v))


def aggregate(runs, methods, eps, epoch_time: dict | None = None, epoch_cpu: dict | None = None) -> list[dict]:
    """One row per (method, ε) in the given order from run records (dicts with ``method``, ``eps``,
    ``seed``, ``co_epoch``, ``diverged``, ``clean_acc``, ``robust_acc``): runs, CO count, rate and seeds,
    diverged count, clean / robust accuracy mean ± s.e. over the non-diverged runs, and — with
    the mean CPU time of a training epoch in the runs (``train_epoch_cpu_s``, records without it
    skipped) and its ratio to FGSM's at the same ε (``rel_train_epoch_cpu_time``: None without FGSM
    runs); with ``epoch_time`` / ``epoch_cpu`` (method → wall / CPU seconds of the separate timing,
    :func:`epoch_times`) also those and their ratios to FGSM's (``rel_epoch_time``,
    ``rel_epoch_cpu_time``)."""
    rows = []
    for m in methods:
        for e in eps:
            rs = [r for r in runs if r["method"] == m and math.isclose(r["eps"], e, rel_tol=1e-12)]
            ok = [r for r in rs if not r["diverged"]]
            co = sorted(r["seed"] for r in rs if r["co_epoch"] is not None)
            cm, cs = mean_se([r["clean_acc"] for r in ok])
            rm, rse = mean_se([r["robust_acc"] for r in ok])
            row = {"method": m, "eps": e, "eps_255": round(255 * e, 6), "n_runs": len(rs), "n_co": len(co),
                   "co_rate": (len(co) / len(rs)) if rs else None, "co_seeds": co,
                   "n_diverged": len(rs) - len(ok), "clean_acc_mean": cm, "clean_acc_se": cs,
                   "robust_acc_mean": rm, "robust_acc_se": rse}
            tm, _ = mean_se([r.get("train_epoch_cpu_s") for r in rs])
            tf, _ = mean_se([r.get("train_epoch_cpu_s") for r in runs if r["method"] == REFERENCE
                             and math.isclose(r["eps"], e, rel_tol=1e-12)])
            row["train_epoch_cpu_s"] = tm
            row["rel_train_epoch_cpu_time"] = tm / tf if tm is not None and tf else None
            for key, et in (("epoch_time", epoch_time), ("epoch_cpu_time", epoch_cpu)):
                if et is not None and m in et:
                    row[key + "_s"] = et[m]
                    row["rel_" + key] = et[m] / et[REFERENCE] if et.get(REFERENCE) else None
            rows.append(row)
    return rows


def goal_summary(rows, reference: str = "gradalign", tol: float = 0.02) -> dict:
    """Per method: whether it has no CO run at every ε where FGSM has a CO run (``prevents_co``; None
    when FGSM shows no CO anywhere or FGSM is not in the table) and whether its robust accuracy is at
    least the ``reference`` method's minus ``tol`` at every ε (``robust_within_tol``; None without the
    reference). The cost condition (≤ 1.5× FGSM) is read from ``rel_train_epoch_cpu_time`` (a timing)."""
    by = {(r["method"], r["eps"]): r for r in rows}
    eps = sorted({r["eps"] for r in rows})
    co_eps = [e for e in eps if (by.get(("fgsm", e)) or {}).get("n_co")]
    out = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        prevents = None if not co_eps else all(by[(m, e)]["n_co"] == 0 and by[(m, e)]["n_runs"] > 0 for e in co_eps)
        within = None
        if any((reference, e) in by for e in eps):
            within = all(by[(m, e)]["robust_acc_mean"] is not None and by[(reference, e)]["robust_acc_mean"] is not None
                         and by[(m, e)]["robust_acc_mean"] >= by[(reference, e)]["robust_acc_mean"] - tol
                         for e in eps if (reference, e) in by)
        out[m] = {"prevents_co": prevents, "robust_within_tol": within, "fgsm_co_eps": co_eps}
    return out


# ----------------------------------------------------------------------------------------------
# the study
# ----------------------------------------------------------------------------------------------
def _specs(cfg: StudyConfig) -> list[RunSpec]:
    """The grid: every (method, ε) for seed ``cfg.seed``, then for the next seed, …"""
    return [RunSpec(m, e, cfg.seed + i, cfg) for i in range(cfg.seeds) for e in cfg.eps for m in cfg.methods]


def run_study(cfg: StudyConfig = StudyConfig(), *, progress=None) -> dict:
    """Run the grid of ``cfg`` (validated by :func:`resolve_study`) on ``cfg.workers`` processes; returns
    ``{"table": rows, "goal": goal_summary, "runs": records, "epoch_time_s": {...}, "epoch_cpu_time_s": {...},
    "study_runtime_s"}``.
    ``progress``: a callable invoked once per finished run (e.g. a bar's ``update``)."""
    cfg = resolve_study(cfg)
    t0 = time.perf_counter()
    et, ec = epoch_times(cfg.methods, cfg.eps[0], cfg)
    specs = _specs(cfg)
    runs: list = [None] * len(specs)
    if cfg.workers == 1:
        for i, sp in enumerate(specs):
            runs[i] = run_one(sp)
            if progress:
                progress()
    else:
        # spawn, not fork: forking a process that has started numba's OpenMP threads is unsafe
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            futs = {ex.submit(run_one, sp): i for i, sp in enumerate(specs)}
            try:
                for f in as_completed(futs):
                    runs[futs[f]] = f.result()
                    if progress:
                        progress()
            except BrokenProcessPool as exc:
                raise RunError(f"a worker process died ({exc}); try --workers 1") from None
    rows = aggregate(runs, cfg.methods, cfg.eps, et, ec)
    return {"table": rows, "goal": goal_summary(rows), "runs": runs, "epoch_time_s": et, "epoch_cpu_time_s": ec,
            "study_runtime_s": time.perf_counter() - t0, "config": cfg.as_dict()}
