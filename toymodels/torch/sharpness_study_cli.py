"""``python -m toymodels.torch sharpness-study``: thesis Ch. 7 in miniature — train a grid of models
(learning rate × batch size × SAM ρ × augmentation × seed), measure every sharpness definition and the
Hessian's λ_max and trace on each, and report Kendall's τ of each with test error (table and figure).

Two grids (:data:`toymodels.torch.sharpness_study.PRESETS`): ``--quick`` (the 4-filter CNN on 512
``photos`` images, 10 epochs, 2 lr × 2 batch sizes × ρ ∈ {0, 0.05} × augmentation off/on = 16 models,
measured on 128 training points with few samples: minutes on 2 idle cores) and the default one, sized for
a GPU (PreAct ResNet-18 on the whole training set, 20 epochs, 48 models, 1024 points, the thesis's
sample counts). Any option overrides its preset value. ``--out DIR`` (required) holds the trained
models (``models/<key>/checkpoint.pt``), their measurements (``models/<key>/measures.json``), the sweep's
records, ``result.json`` and the figure ``sharpness_study.png``; re-running into the same DIR trains and
measures only what is missing. Data: the embedded ``photos`` by default, CIFAR-10 with ``--data-dir``.
``--seed S`` seeds the measurements and the training seeds are S, S+1, … (``--seeds N``).
"""
from __future__ import annotations

from .._cli import Choice, Command, InDir, Int, ListOf, Num, Result, Text
from ..datasets import IMAGE_DATASETS
from ..errors import ConfigError, RunError
from ..optional import missing_modules
from ..rng import SEED_MAX
from .config import MODELS, SCHEDULES
from .train_cli import DEVICE, MAX_IMAGES

__all__ = ["COMMAND", "add_arguments", "study_config"]

_CLUSTER = r"local-dask|[a-z]+://\S+|[A-Za-z0-9_.-]+:[0-9]+"
_IMAGES = "images held in memory"
#: the whole training / test split of each dataset (the default grid trains on all of it)
FULL_SIZES = {"photos": (10_000, 2_000), "synthetic": (10_000, 2_000), "strokes": (10_000, 1_000),
              "cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000), "svhn": (73_257, 26_032)}
#: --rho-* flag → key of DEFAULT_RHOS
RHO_FLAGS = {"rho_adaptive_avg": "adaptive/avg-l2", "rho_adaptive_worst_l2": "adaptive/worst-l2",
             "rho_adaptive_worst_linf": "adaptive/worst-linf", "rho_standard_avg": "standard/avg-l2",
             "rho_standard_worst_l2": "standard/worst-l2", "rho_standard_worst_linf": "standard/worst-linf"}


def add_arguments(p) -> None:
    from .sharpness_study import DEFAULT_RHOS

    p.add_argument("--quick", action="store_true",
                   help="the small grid (cnn, 512 images, 10 epochs, 16 models; minutes on 2 cores) instead of "
                        "the GPU-sized default (preact-resnet18, whole training set, 20 epochs, 48 models)")
    g = p.add_argument_group("grid (default: the preset's)")
    g.add_argument("--model", type=Choice(*MODELS), default=None, help="default: cnn (--quick), preact-resnet18")
    g.add_argument("--dataset", type=Choice(*IMAGE_DATASETS), default=None,
                   help="default: cifar10 with --data-dir, else photos (embedded)")
    g.add_argument("--data-dir", type=InDir(), default=None, help="folder with the dataset's files (nothing downloads)")
    g.add_argument("--filters", type=Int(1, 4096, "conv filters of the cnn model"), default=None,
                   help="filters of the cnn model (default 4)")
    g.add_argument("--n-train", type=Int(1, MAX_IMAGES, _IMAGES), default=None,
                   help="training images (default: 512 with --quick, else the whole split)")
    g.add_argument("--n-test", type=Int(1, MAX_IMAGES, _IMAGES), default=None,
                   help="test images the test error is measured on (default: 256 with --quick, else all)")
    g.add_argument("--epochs", type=Int(1, 10 ** 6), default=None, help="default: 10 (--quick), 20")
    g.add_argument("--lrs", type=ListOf(Num(0, lo_open=True), unique=True), default=None,
                   help="learning rates (default: 0.01,0.03 with --quick, else 0.05,0.1)")
    g.add_argument("--batch-sizes", type=ListOf(Int(1, 2 ** 16, "examples per step"), unique=True), default=None,
                   help="batch sizes (default: 32,64 with --quick, else 128,256)")
    g.add_argument("--sam-rhos", type=ListOf(Num(0), unique=True), default=None,
                   help="SAM radii; 0 is plain SGD (default: 0,0.05 with --quick, else 0,0.05,0.1)")
    g.add_argument("--augment", type=ListOf(Choice("off", "on"), unique=True), default=None,
                   help="augmentation (random crop + flip) off, on or both (default off,on)")
    g.add_argument("--seeds", type=Int(1, 10 ** 4, "training runs per grid point"), default=None,
                   help="training seeds S, S+1, ... per grid point, S = --seed (default: 1 with --quick, else 2)")
    g.add_argument("--schedule", type=Choice(*SCHEDULES), default="step",
                   help="learning-rate schedule of every run (default step: ×0.1 at 50%% and 75%%)")
    g.add_argument("--momentum", type=Num(0, 1, hi_open=True), default=0.9, help="default 0.9")
    g.add_argument("--weight-decay", type=Num(0), default=5e-4, help="default 5e-4")
    m = p.add_argument_group("measurements (default: the preset's)")
    m.add_argument("--n-points", type=Int(1, MAX_IMAGES, "training points measured on"), default=None,
                   help="training points every measure uses (default: 128 with --quick, else 1024)")
    m.add_argument("--m-small", type=Int(1, MAX_IMAGES, "points per batch"), default=None,
                   help="the small m of m-sharpness, at most --n-points (default: 16 with --quick, else 128); "
                        "the large m is --n-points")
    m.add_argument("--n-samples", type=Int(2, 10 ** 6), default=None,
                   help="average case: perturbations per batch (default: 8 with --quick, else 100)")
    m.add_argument("--n-iter", type=Int(1, 10 ** 5), default=None,
                   help="worst case: Auto-PGD iterations (default: 5 with --quick, else 20)")
    m.add_argument("--power-iter", type=Int(1, 10 ** 5), default=None,
                   help="λ_max: at most this many power iterations (default: 20 with --quick, else 100)")
    m.add_argument("--power-tol", type=Num(0, 1, lo_open=True), default=1e-3,
                   help="λ_max: relative change that stops the power iteration (PyHessian's 1e-3, default)")
    m.add_argument("--trace-samples", type=Int(2, 10 ** 6), default=None,
                   help="trace: Hutchinson probes (default: 10 with --quick, else 100)")
    m.add_argument("--max-batch", type=Int(1, MAX_IMAGES, "points per forward pass"), default=None,
                   help="evaluate in chunks of at most this many points (memory only)")
    m.add_argument("--max-train-error", type=Num(0, 1), default=1.0,
                   help="leave out of τ the models whose error on the measured training points exceeds this "
                        "(the thesis: 0.01; default 1, every model)")
    for dest, key in RHO_FLAGS.items():
        extra = " (an ℓ₂ radius: σ = ρ/√P per parameter)" if key == "standard/avg-l2" else ""
        m.add_argument("--" + dest.replace("_", "-"), dest=dest, type=Num(0, lo_open=True), default=None,
                       help=f"ρ of {key} sharpness{extra} (default {DEFAULT_RHOS[key]:g})")
    m.add_argument("--device", type=DEVICE, default="auto", help="auto (cuda if available), cpu, cuda or cuda:K")
    x = p.add_argument_group("execution")
    x.add_argument("--workers", type=Int(1, 1024), default=1, help="training runs at once (default 1)")
    x.add_argument("--cluster", type=Text(_CLUSTER, "a Dask scheduler address (tcp://host:8786) or local-dask"),
                   default=None, help="train on a Dask cluster (address, or local-dask); default: locally")
    x.add_argument("--dry-run", action="store_true",
                   help="list the training runs' command lines and the measures, and exit (--out not needed)")
    x.add_argument("--timeout", type=Num(0, 10 ** 7, lo_open=True), default=None,
                   help="seconds per training run (default: no limit)")


def study_config(a, out: str):
    """The :class:`~toymodels.torch.sharpness_study.StudyConfig` of parsed options ``a``."""
    from .sharpness_study import DEFAULT_RHOS, PRESETS, StudyConfig

    pre = PRESETS["quick" if a.quick else "default"]
    dataset = a.dataset or ("cifar10" if a.data_dir else "photos")
    full = FULL_SIZES.get(dataset, (None, None))

    def pick(v, key):
        return pre[key] if v is None else v

    n_train = a.n_train if a.n_train is not None else (pre["n_train"] or full[0])
    n_test = a.n_test if a.n_test is not None else (pre["n_test"] or full[1])
    seeds = int(pick(a.seeds, "n_seeds"))
    if a.seed + seeds - 1 > SEED_MAX:
        raise ConfigError("seeds", f"--seed + --seeds - 1 must be <= {SEED_MAX}", seeds)
    rhos = dict(DEFAULT_RHOS)
    for dest, key in RHO_FLAGS.items():
        if getattr(a, dest) is not None:
            rhos[key] = float(getattr(a, dest))
    return StudyConfig(
        out=str(out), model=pick(a.model, "model"), dataset=dataset, data_dir=a.data_dir,
        filters=int(pick(a.filters, "filters")), n_train=n_train, n_test=n_test, epochs=int(pick(a.epochs, "epochs")),
        lrs=tuple(float(v) for v in pick(a.lrs, "lrs")),
        batch_sizes=tuple(int(v) for v in pick(a.batch_sizes, "batch_sizes")),
        rhos=tuple(float(v) for v in pick(a.sam_rhos, "rhos")),
        augment=tuple((v == "on") if isinstance(v, str) else bool(v) for v in pick(a.augment, "augment")),
        seeds=tuple(range(a.seed, a.seed + seeds)), schedule=a.schedule, momentum=float(a.momentum),
        weight_decay=float(a.weight_decay), device=a.device, n_points=int(pick(a.n_points, "n_points")),
        m_small=int(pick(a.m_small, "m_small")), n_samples=int(pick(a.n_samples, "n_samples")),
        n_iter=int(pick(a.n_iter, "n_iter")), power_iter=int(pick(a.power_iter, "power_iter")),
        power_tol=float(a.power_tol), trace_samples=int(pick(a.trace_samples, "trace_samples")),
        max_batch=a.max_batch, max_train_error=float(a.max_train_error), sharp_rhos=rhos, seed=a.seed,
        workers=a.workers, cluster=a.cluster,
        timeout=a.timeout)


def _fmt(v, spec=".3g") -> str:
    return "-" if v is None else format(v, spec)


def _human(out: dict) -> None:
    ok = sum(1 for m in out["models"] if not m["error"])
    print(f"{out['n_models']} models ({out['n_skipped']} trained before, {out['n_failed']} failed, {ok} in the table; "
          f"{out['n_measured_now']} measurements made now) in {out['runtime_s']:.1f} s")
    print(f"{'measure':44s} {'rho':>9s} {'tau':>6s} {'n':>3s}  range")
    for r in out["table"]:
        tau = "-" if r["tau"] is None else f"{r['tau']:+.2f}"
        print(f"{r['measure']:44s} {_fmt(r.get('rho')):>9s} {tau:>6s} {r['n_models']:3d}  "
              f"[{_fmt(r['min'])}, {_fmt(r['max'])}]")
    print("tau > 0: sharper models have higher test error (thesis eq. 7.4; |tau| > 0.5 is a strong correlation)")


def _dry_run(cfg, config) -> Result:
    import os

    from .sharpness_study import describe_point, measures_of, study_points

    pts = [{**describe_point(p), "argv": ["python", *p.argv()[1:], "--out", os.path.join("OUT", "models", p.key),
                                          "--resume-if-present", "--quiet"]} for p in study_points(cfg)]
    meas = [{"measure": m.name, "rho": m.rho} for m in measures_of(cfg)]
    payload = {"dry_run": True, "n_points": len(pts), "points": pts, "measures": meas}

    def human():
        for p in pts:
            print(" ".join(p["argv"]))
        print(f"{len(pts)} training runs; measures: " + ", ".join(m["measure"] for m in meas))
    return Result(payload, config, human=human)


def run(a, session) -> Result:
    if session.out is None and not a.dry_run:
        raise ConfigError("out", "is required: the folder that holds the trained models and their measurements")
    if a.cluster is not None and missing_modules(("distributed",)):
        raise RunError("--cluster needs distributed, which is not installed: pip install distributed")
    from dataclasses import asdict

    from .sharpness_study import plot_study, run_study

    cfg = study_config(a, str(session.out or "OUT")).check()
    config = {k: v for k, v in asdict(cfg).items() if k != "out"}
    if a.dry_run:
        return _dry_run(cfg, config)
    payload = run_study(cfg, progress=lambda total, desc: session.progress(
                            total, desc=desc, unit="run" if desc == "train" else "measure"),
                        note=session.note)
    if payload["n_failed"]:
        session.note(f"{payload['n_failed']} training runs failed (see 'models' for their errors)")
    files = {"sharpness_study.png": lambda path: plot_study(payload, path)}
    return Result(payload, config, human=lambda: _human(payload), files=files,
                  exit_code=1 if payload["n_failed"] else 0)


COMMAND = Command("sharpness-study", "Kendall τ between every sharpness measure and test error over a grid of "
                  "trained models (thesis Ch. 7)", add_arguments, run,
                  description=__doc__.split("\n\n")[0].replace("``", ""), needs=("torch",),
                  flags={"rhos": "--sam-rhos", "sharp_rhos": "--rho-adaptive-avg", "m_small": "--m-small",
                         "n_points": "--n-points", "batch_sizes": "--batch-sizes", "lrs": "--lrs"},
                  epilog="Example: python -m toymodels.torch sharpness-study --quick --out runs/sharpness-study",
                  smoke=("--quick", "--dry-run"))
