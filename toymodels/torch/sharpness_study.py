"""Thesis Ch. 7 in miniature: does sharpness predict generalization across a grid of trained models?

A study (:func:`run_study`) has three stages.

1. **Train** a grid of models with the sweep machinery (:func:`toymodels.torch.sweep.expand` /
   :func:`~toymodels.torch.sweep.run_sweep`): learning rate × batch size × SAM ρ × augmentation × seed,
   ρ = 0 being plain SGD (``train-sgd``) and ρ > 0 SAM (``train-sam``), all with the same schedule,
   momentum and weight decay. Each point is a subprocess ``python -m toymodels.torch train-… --out
   OUT/models/<key> --resume-if-present``; finished points are skipped on a re-run (their
   ``OUT/points/<key>.json`` records success) and an interrupted one continues its checkpoint.
   Runs locally (``workers`` at a time) or on a Dask cluster, as ``sweep``.
2. **Measure** every checkpoint (:func:`measure_checkpoint`) on its first ``n_points`` training points:
   every sharpness definition the thesis compares (Sec. 7.3–7.4, Table 7.3) — standard / adaptive ×
   average-case ℓ₂ / worst-case ℓ₂ / worst-case ℓ∞ × m ∈ {``m_small``, ``n_points``} × logit-normalized or
   not, by :func:`toymodels.torch.sharpness.sharpness` — and the Hessian's λ_max (power iteration) and
   trace (Hutchinson), plain and rescaled by c = |w| (adaptive), by :mod:`toymodels.torch.curvature`
   (the ρ → 0 limits of worst-case ℓ₂ and average-case sharpness, eq. 7.2–7.3). Values go to
   ``OUT/models/<key>/measures.json`` (atomic, after each measure, keyed by the measure's settings), so
   a re-run measures only what is missing.
3. **Correlate**: Kendall's τ (eq. 7.4, :func:`toymodels.sharpness.kendall.kendall_tau`) of each measure
   with the test error (1 − the final clean accuracy on the run's whole test set) across the models
   whose measure is finite (:func:`kendall_table`); τ > 0: sharper models generalize worse. The thesis
   (Sec. 7.6.1) keeps only models with at most 1 % training error: ``max_train_error`` (default 1, every
   model; the error is measured on the same points as sharpness) leaves out the others.

Radii. ρ of each sharpness definition (:data:`DEFAULT_RHOS`): the second-smallest ρ of its row group in
thesis Table 7.3 (ResNet-18 trained from scratch on CIFAR-10, the setting closest to this one; the
smallest ρ is the ρ → 0 regime already covered by λ_max and the trace): adaptive average-case 0.1,
worst-case ℓ₂ 0.5, ℓ∞ 0.002; standard worst-case ℓ₂ 0.5, ℓ∞ 0.001; logit-normalized ones the same.
Standard average case: γ ~ N(0, σ²I) per parameter (the definition of
:mod:`toymodels.torch.sharpness`) with σ = ρ/√P, P the number of parameters (the same for every model
of a grid), so that ‖δ‖₂ ≈ ρ = 0.1 is an ℓ₂ radius comparable to the worst case's; σ = 0.1 per
parameter would exceed the weights themselves. Every radius is a parameter (``rhos``).
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .._io import write_json
from ..errors import ConfigError, check_int, check_nonneg, check_positive, check_range
from ..sharpness.kendall import kendall_tau
from .sweep import SweepPoint, expand, run_point, run_sweep

__all__ = ["DEFAULT_RHOS", "PRESETS", "Measure", "StudyConfig", "measures_of", "study_points",
           "train_grid", "measure_checkpoint", "kendall_table", "run_study", "plot_study"]

MODULE = "toymodels.torch"
CACHE = "measures.json"

#: default radius per sharpness definition (module docstring): keys "{standard|adaptive}/{kind}"
DEFAULT_RHOS = {"adaptive/avg-l2": 0.1, "adaptive/worst-l2": 0.5, "adaptive/worst-linf": 0.002,
                "standard/avg-l2": 0.1, "standard/worst-l2": 0.5, "standard/worst-linf": 0.001}

#: the grids: ``quick`` runs in minutes on 2 CPU cores, ``default`` is sized for one GPU
PRESETS = {
    # quick: SGD at lr >= 0.1 leaves the 4-filter CNN at chance on photos; 0.01-0.03 reach ~45-55 % test
    # accuracy in 10 epochs on 512 images (measured), so the grid spans models that generalize differently
    "quick": dict(model="cnn", filters=4, n_train=512, n_test=256, epochs=10, lrs=(0.01, 0.03), batch_sizes=(32, 64),
                  rhos=(0.0, 0.05), augment=(False, True), n_seeds=1, n_points=128, m_small=16, n_samples=8,
                  n_iter=5, power_iter=20, trace_samples=10),
    "default": dict(model="preact-resnet18", filters=4, n_train=None, n_test=None, epochs=20, lrs=(0.05, 0.1),
                    batch_sizes=(128, 256), rhos=(0.0, 0.05, 0.1), augment=(False, True), n_seeds=2,
                    n_points=1024, m_small=128, n_samples=100, n_iter=20, power_iter=100, trace_samples=100),
}


@dataclass(frozen=True)
class Measure:
    """One measure: a sharpness definition (``kind`` in avg-l2 / worst-l2 / worst-linf) or a Hessian
    quantity (``kind`` in lambda_max / trace), with its settings."""

    name: str
    kind: str
    adaptive: bool
    logit_norm: bool = False
    m: int | None = None
    rho: float | None = None

    @property
    def family(self) -> str:
        return "hessian" if self.kind in ("lambda_max", "trace") else "sharpness"


@dataclass
class StudyConfig:
    """Everything a study does (the CLI's options; see :data:`PRESETS` for the two grids)."""

    out: str
    model: str = "cnn"
    dataset: str = "photos"
    data_dir: str | None = None
    filters: int = 4
    n_train: int | None = 256
    n_test: int | None = 256
    epochs: int = 3
    lrs: tuple = (0.05, 0.1)
    batch_sizes: tuple = (32, 64)
    rhos: tuple = (0.0, 0.05)
    augment: tuple = (False, True)
    seeds: tuple = (0,)
    schedule: str = "step"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    device: str = "auto"
    n_points: int = 128
    m_small: int = 16
    n_samples: int = 8
    n_iter: int = 5
    power_iter: int = 20
    power_tol: float = 1e-3
    trace_samples: int = 10
    max_batch: int | None = None
    max_train_error: float = 1.0
    sharp_rhos: dict = field(default_factory=lambda: dict(DEFAULT_RHOS))
    seed: int = 0
    workers: int = 1
    cluster: str | None = None
    timeout: float | None = None

    def check(self) -> "StudyConfig":
        for name in ("epochs", "n_points", "m_small", "workers", "power_iter"):
            check_int(name, getattr(self, name), 1)
        check_int("n_samples", self.n_samples, 2)
        check_int("trace_samples", self.trace_samples, 2)
        check_int("n_iter", self.n_iter, 1)
        if self.m_small > self.n_points:
            raise ConfigError("m_small", f"must be <= n_points = {self.n_points}", self.m_small)
        if self.n_train is not None and self.n_points > self.n_train:
            raise ConfigError("n_points", f"must be <= n_train = {self.n_train} (sharpness is measured on "
                              "training points)", self.n_points)
        if self.n_train is not None and max(self.batch_sizes) > self.n_train:
            raise ConfigError("batch_sizes", f"must be <= n_train = {self.n_train}", max(self.batch_sizes))
        check_range("max_train_error", self.max_train_error, 0.0, 1.0)
        for lr in self.lrs:
            check_positive("lrs", lr)
        for r in self.rhos:
            check_nonneg("rhos", r)
        for k, v in self.sharp_rhos.items():
            if k not in DEFAULT_RHOS:
                raise ConfigError("sharp_rhos", "keys must be " + ", ".join(DEFAULT_RHOS), k)
            check_positive("sharp_rhos", v)
        n_models = len(self.lrs) * len(self.batch_sizes) * len(self.rhos) * len(self.augment) * len(self.seeds)
        if n_models < 2:
            raise ConfigError("lrs", "the grid must hold at least 2 models (Kendall τ compares pairs)", n_models)
        return self


# ----------------------------------------------------------------------------------------------------
# stage 1: training

def study_points(cfg: StudyConfig) -> list[SweepPoint]:
    """The grid's runs: one :func:`~toymodels.torch.sweep.expand` per (SAM ρ, augmentation) with the axes
    lr × batch size and the seeds (train-sgd for ρ = 0, train-sam otherwise)."""
    common = ["--model", cfg.model, "--dataset", cfg.dataset, "--epochs", str(cfg.epochs), "--schedule",
              cfg.schedule, "--momentum", repr(float(cfg.momentum)), "--weight-decay", repr(float(cfg.weight_decay)),
              "--device", cfg.device]
    if cfg.model == "cnn":
        common += ["--filters", str(cfg.filters)]
    if cfg.data_dir is not None:
        common += ["--data-dir", str(cfg.data_dir)]
    for name, v in (("--n-train", cfg.n_train), ("--n-test", cfg.n_test)):
        if v is not None:
            common += [name, str(v)]
    grid = {"lr": [repr(float(v)) for v in cfg.lrs], "batch-size": [str(int(b)) for b in cfg.batch_sizes]}
    points = []
    for rho in cfg.rhos:
        for aug in cfg.augment:
            n_sp = str(min(32, cfg.n_train or 32))       # train-sgd's feature sparsity: kept cheap
            head = ["train-sgd", "--sparsity-n", n_sp, "--sparsity-neurons", "64"] if rho == 0 else \
                ["train-sam", "--rho", repr(float(rho))]
            args = head + (["--augment"] if aug else []) + common
            points += expand(MODULE, args, grid, cfg.seeds)
    return points


def describe_point(p: SweepPoint) -> dict:
    """The grid coordinates of a point: task, lr, batch size, SAM ρ, augmentation, seed."""
    args, params = list(p.args), dict(p.params)
    rho = float(args[args.index("--rho") + 1]) if "--rho" in args else 0.0
    return {"key": p.key, "task": args[0], "lr": float(params["lr"]), "batch_size": int(params["batch-size"]),
            "sam_rho": rho, "augment": "--augment" in args, "seed": p.seed}


def _train_point(point: SweepPoint, models_dir: str, timeout: float | None = None) -> dict:
    """:func:`~toymodels.torch.sweep.run_point` with ``--out models_dir/<key> --resume-if-present``
    added (module-level, so that Dask can ship it); the record keeps the point's own key."""
    out = os.path.join(models_dir, point.key)
    p = SweepPoint(point.module, (*point.args, "--out", out, "--resume-if-present", "--quiet"), point.params,
                   point.seed)
    res = run_point(p, timeout=timeout)
    res["point"], res["key"] = point.describe(), point.key
    return res


def train_grid(cfg: StudyConfig, on_result: Callable[[dict], None] | None = None):
    """Stage 1: train (or skip) every point; returns (points, the sweep's report)."""
    points = study_points(cfg)
    # absolute: Dask workers on other hosts need it on a shared file system (the measuring reads it here)
    runner = functools.partial(_train_point, models_dir=str((Path(cfg.out) / "models").resolve()))
    report = run_sweep(points, out=cfg.out, cluster=cfg.cluster, workers=cfg.workers, timeout=cfg.timeout,
                       on_result=on_result, runner=runner)
    return points, report


# ----------------------------------------------------------------------------------------------------
# stage 2: measuring

def measures_of(cfg: StudyConfig, n_params: int | None = None) -> list[Measure]:
    """Every measure of the study, in table order (standard/adaptive × kind × logit-norm × m, then the
    Hessian's). ``n_params`` (P) sets the standard average case's σ = ρ/√P (module docstring)."""
    out = []
    ms = sorted({cfg.m_small, cfg.n_points})
    for adaptive in (False, True):
        for kind in ("avg-l2", "worst-l2", "worst-linf"):
            for ln in (False, True):
                for m in ms:
                    key = f"{'adaptive' if adaptive else 'standard'}/{kind}"
                    rho = float(cfg.sharp_rhos.get(key, DEFAULT_RHOS[key]))
                    if key == "standard/avg-l2" and n_params is not None:
                        rho = rho / math.sqrt(n_params)
                    name = f"{key}{'/logit-norm' if ln else ''}/m={m}"
                    out.append(Measure(name, kind, adaptive, ln, m, rho))
    for kind in ("lambda_max", "trace"):
        for adaptive in (False, True):
            out.append(Measure(f"hessian/{kind}{'/adaptive' if adaptive else ''}", kind, adaptive))
    return out


def _settings(meas: Measure, cfg: StudyConfig) -> dict:
    s = {**asdict(meas), "n_points": cfg.n_points, "seed": cfg.seed}
    if meas.kind == "avg-l2":
        s["n_samples"] = cfg.n_samples
    elif meas.kind.startswith("worst"):
        s["n_iter"] = cfg.n_iter
    elif meas.kind == "lambda_max":
        s.update(power_iter=cfg.power_iter, power_tol=cfg.power_tol)
    else:
        s["trace_samples"] = cfg.trace_samples
    return s


def _read_cache(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
        return obj if isinstance(obj, dict) and isinstance(obj.get("measures"), dict) else {"measures": {}}
    except (OSError, json.JSONDecodeError):
        return {"measures": {}}


def _measure_one(meas: Measure, cfg: StudyConfig, model, x, y) -> dict:
    from . import curvature
    from .sharpness import sharpness

    t0 = time.perf_counter()
    try:
        if meas.family == "sharpness":
            r = sharpness(model, x, y, meas.rho, kind=meas.kind, m=meas.m, adaptive=meas.adaptive,
                          logit_norm=meas.logit_norm, seed=cfg.seed, n_samples=cfg.n_samples, n_iter=cfg.n_iter,
                          max_batch=cfg.max_batch)
            rec = {"value": r.value, "se": r.se, "base_loss": float(np.mean(r.base_loss))}
        else:
            batches = curvature.as_batches(x, y, cfg.max_batch)
            if meas.kind == "lambda_max":
                r = curvature.top_eigenvalues(model, None, batches, k=1, method="power", tol=cfg.power_tol,
                                              max_iter=cfg.power_iter, seed=cfg.seed, adaptive=meas.adaptive)
                rec = {"value": float(r.eigenvalues[0]), "se": None, "converged": bool(r.converged[0]),
                       "iterations": int(r.iterations[0])}
            else:
                r = curvature.trace(model, None, batches, n_samples=cfg.trace_samples, seed=cfg.seed,
                                    adaptive=meas.adaptive)
                rec = {"value": r.mean, "se": r.se}
    except FloatingPointError as exc:
        rec = {"value": None, "se": None, "diverged": str(exc)}
    if rec["value"] is not None and not math.isfinite(rec["value"]):
        rec = {"value": None, "se": None, "diverged": f"non-finite value {rec['value']}"}
    rec["runtime_s"] = time.perf_counter() - t0
    return rec


_DATA: dict = {}


def _training_points(src, n_train, n_points: int):
    from .data import load

    key = (src.dataset, src.data_dir, n_train, src.data_seed)
    if key not in _DATA:
        _DATA.clear()                     # one training set in memory at a time
        x, y, _, _, k = load(src.dataset, src.data_dir, n_train, 1, src.data_seed)
        _DATA[key] = (x, y, k)
    x, y, k = _DATA[key]
    if x.shape[0] < n_points:
        raise ConfigError("n_points", f"must be <= {x.shape[0]} (training points of {src.dataset})", n_points)
    return x[:n_points], y[:n_points], k


def measure_checkpoint(path: str | os.PathLike, cfg: StudyConfig, device=None,
                       on_measure: Callable[[str], None] | None = None) -> tuple[dict, int]:
    """Stage 2 for one checkpoint: ``({measure name: record, "train_error": float}, number measured now)``.

    ``train_error`` is the error on the measured points (no augmentation). Records (``value``, ``se``
    and the measure's extras) are read from and written to ``measures.json`` next to the checkpoint
    (atomically, after each measure); a record is reused when its settings equal the requested ones.
    The model is measured on the first ``n_points`` points of its own training set (its dataset, size
    and data seed)."""
    import torch

    from .checkpoint import instantiate, model_source
    from .device import resolve_device

    device = resolve_device(cfg.device) if device is None else device
    path = Path(path)
    cache_path = path.parent / CACHE
    cache = _read_cache(cache_path)
    src = model_source(str(path), None, None, None, cfg.seed, device)
    x, y, k = _training_points(src, src.config.get("n_train"), cfg.n_points)
    with torch.random.fork_rng(devices=[]):   # instantiate draws an initialization before loading the weights
        torch.manual_seed(0)
        model = instantiate(src, k, tuple(x.shape[1:])).to(device)
    dtype = next(model.parameters()).dtype
    x, y = x.to(device=device, dtype=dtype), y.to(device)
    n_params = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    model.eval()
    with torch.no_grad():
        step = cfg.max_batch or len(y)
        correct = sum(int((model(x[i:i + step]).argmax(1) == y[i:i + step]).sum()) for i in range(0, len(y), step))
    out, n_new = {"train_error": 1.0 - correct / len(y)}, 0
    for meas in measures_of(cfg, n_params):
        want = _settings(meas, cfg)
        old = cache["measures"].get(meas.name)
        if isinstance(old, dict) and old.get("settings") == want:
            out[meas.name] = old
            continue
        rec = {**_measure_one(meas, cfg, model, x, y), "settings": want}
        cache["measures"][meas.name] = rec
        out[meas.name] = rec
        n_new += 1
        write_json(cache_path, {"checkpoint": path.name, "n_params": n_params, "train_error": out["train_error"],
                                "measures": cache["measures"]})
        if on_measure is not None:
            on_measure(meas.name)
    return out, n_new


# ----------------------------------------------------------------------------------------------------
# stage 3: correlation

def kendall_table(models: Sequence[dict], names: Sequence[str], target: str = "test_error") -> list[dict]:
    """Kendall τ (eq. 7.4) of each measure with ``target`` across ``models``.

    ``models``: dicts with ``target`` (a float) and ``measures`` (``{name: value or None}``, or
    ``{name: {"value": ...}}``). Models whose target or measure is missing or non-finite are left out
    of that measure's τ; τ is None with fewer than 2 models. Rows: name, tau, n_models, and the range of
    the measure."""
    rows = []
    for name in names:
        t, s = [], []
        for mdl in models:
            v = mdl.get("measures", {}).get(name)
            v = v.get("value") if isinstance(v, dict) else v
            e = mdl.get(target)
            if isinstance(v, (int, float)) and isinstance(e, (int, float)) and math.isfinite(v) and math.isfinite(e):
                t.append(float(e))
                s.append(float(v))
        tau = kendall_tau(t, s) if len(t) >= 2 else None
        rows.append({"measure": name, "tau": tau, "n_models": len(t), "min": min(s) if s else None,
                     "max": max(s) if s else None})
    return rows


def _test_error(res: dict | None) -> float | None:
    if not res or res.get("diverged") or not res.get("final"):
        return None
    acc = res["final"].get("clean_acc")
    return None if acc is None else 1.0 - float(acc)


def run_study(cfg: StudyConfig, *, progress: Callable[[int | None, str], object] | None = None,
              note: Callable[[str], None] | None = None) -> dict:
    """The three stages (module docstring); returns the JSON-able study (grid, models, table)."""
    import contextlib

    cfg.check()
    t0 = time.perf_counter()
    bar_of = progress or (lambda total, desc: contextlib.nullcontext(None))
    pts = study_points(cfg)
    with bar_of(len(pts), "train") as bar:
        points, report = train_grid(cfg, on_result=(lambda r: bar.update(1)) if bar is not None else None)
        if bar is not None:
            bar.update(report.skipped)
    t_train = time.perf_counter() - t0
    by_key = {r["key"]: r for r in report.points}
    models, n_measured = [], 0
    names = [m.name for m in measures_of(cfg)]
    n_ok = sum(1 for p in points if by_key.get(p.key, {}).get("returncode") == 0)
    with bar_of(n_ok * len(names), "measure") as bar:
        for p in points:
            rec = by_key.get(p.key, {})
            row = {**describe_point(p), "returncode": rec.get("returncode"), "error": rec.get("error"),
                   "test_error": None, "train_error": None, "measures": {}}
            if rec.get("returncode") == 0:
                res = rec.get("result")
                row["test_error"] = _test_error(res)
                ck = Path(cfg.out) / "models" / p.key / "checkpoint.pt"
                if row["test_error"] is None:
                    row["error"] = "diverged"
                elif not ck.exists():
                    row["error"] = f"no checkpoint at {ck}"
                else:
                    meas, n_new = measure_checkpoint(
                        ck, cfg, on_measure=(lambda n: bar.update(1)) if bar is not None else None)
                    if bar is not None:
                        bar.update(len(names) - n_new)
                    n_measured += n_new
                    row["train_error"] = meas.pop("train_error")
                    row["measures"] = {k: {"value": v["value"], "se": v.get("se")} for k, v in meas.items()}
                    if row["train_error"] > cfg.max_train_error:
                        row["error"] = (f"training error {row['train_error']:.3g} on the measured points > "
                                        f"max_train_error = {cfg.max_train_error:g}")
            models.append(row)
    if note is not None:
        bad = [m for m in models if m["error"]]
        if bad:
            note(f"{len(bad)} of {len(models)} models left out: " + "; ".join(
                f"{m['task']} lr={m['lr']} bs={m['batch_size']} seed={m['seed']}: {m['error']}" for m in bad[:3]))
    table = kendall_table([m for m in models if not m["error"]], names)
    n_params = next((_read_cache(Path(cfg.out) / "models" / m["key"] / CACHE).get("n_params")
                     for m in models if m["measures"]), None)
    for row, meas in zip(table, measures_of(cfg, n_params)):    # the radii used (σ = ρ/√P: needs P)
        row.update(kind=meas.kind, adaptive=meas.adaptive, logit_norm=meas.logit_norm, m=meas.m,
                   rho=None if meas.family == "sharpness" and n_params is None and meas.name.startswith(
                       "standard/avg") else meas.rho)
    return {"n_models": len(models), "n_params": n_params, "n_trained_now": len(points) - report.skipped,
            "n_skipped": report.skipped,
            "n_failed": report.n_failed, "n_measured_now": n_measured, "executor": report.executor,
            "models": models, "table": table, "train_runtime_s": t_train,
            "runtime_s": time.perf_counter() - t0}


# ----------------------------------------------------------------------------------------------------
# figure

def plot_study(study: dict, path: str | os.PathLike) -> None:
    """Table 7.3 / Fig. 7.5 in miniature: τ of every measure (bars), and the measures with the highest
    and the lowest τ against test error (one point per model; colour: SAM ρ, marker: augmentation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .._io import save_figure

    rows = [r for r in study["table"] if r["tau"] is not None]
    fig = plt.figure(figsize=(13, max(5.0, 0.22 * len(study["table"]) + 1.5)))
    gs = fig.add_gridspec(2, 2, width_ratios=[1.3, 1.0])
    ax = fig.add_subplot(gs[:, 0])
    names = [r["measure"] for r in study["table"]]
    taus = [r["tau"] if r["tau"] is not None else 0.0 for r in study["table"]]
    ypos = np.arange(len(names))[::-1]
    colors = ["tab:red" if t > 0 else "tab:blue" for t in taus]
    ax.barh(ypos, taus, color=colors)
    ax.set_yticks(ypos)
    ax.set_yticklabels(names, fontsize=7)
    ax.axvline(0, color="k", lw=0.8)
    for x in (-0.5, 0.5):
        ax.axvline(x, color="grey", lw=0.6, ls="--")
    ax.set_xlim(-1, 1)
    ax.set_xlabel("Kendall τ with test error")
    ax.set_title(f"{study['n_models']} models")
    if rows:
        best = max(rows, key=lambda r: r["tau"])
        worst = min(rows, key=lambda r: r["tau"])
        rhos = sorted({m["sam_rho"] for m in study["models"]})
        cmap = plt.get_cmap("viridis", max(2, len(rhos)))
        for i, (row, title) in enumerate(((best, "highest τ"), (worst, "lowest τ"))):
            a = fig.add_subplot(gs[i, 1])
            for m in study["models"]:
                v = m["measures"].get(row["measure"], {}).get("value") if m["measures"] else None
                if v is None or m["test_error"] is None:
                    continue
                a.scatter(v, m["test_error"], color=cmap(rhos.index(m["sam_rho"])),
                          marker="s" if m["augment"] else "o", s=30)
            for j, r in enumerate(rhos):
                a.scatter([], [], color=cmap(j), marker="o", label=f"SAM ρ={r:g}" if r else "SGD (ρ=0)")
            if any(m["augment"] for m in study["models"]):
                a.scatter([], [], color="k", marker="s", label="augmented")
            a.xaxis.set_major_locator(MaxNLocator(4))
            a.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
            a.set_xlabel(row["measure"], fontsize=8)
            a.set_ylabel("test error")
            a.set_title(f"{title}: τ = {row['tau']:.2f}", fontsize=9)
            if i == 0:
                a.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)

