"""Recipes: one thesis deep-net figure as a sweep of torch-layer runs, plus the figure drawn from it.

A :class:`Recipe` names the runs of one figure (its *methods*: FGSM, GradAlign, SAM, ... each a set of
command-line flags), a grid axis or two (ε, a switch epoch, ...), and two scales:

* ``quick`` — a miniature on the embedded ``photos`` data that runs on a CPU in minutes;
* ``full`` — the thesis's setting (CIFAR-10 and PreAct ResNet-18, ...), read from ``--data-dir``, for a GPU.

Every point is one run of ``python -m toymodels.torch <command> <method flags> --<axis> <value> --seed S
--json`` through :func:`toymodels.torch.sweep.run_sweep` (local workers or Dask, resumable). The figure
is drawn from the runs' JSON results: ``xy`` (final metrics vs a grid axis, one line per method, mean ±
s.e. over seeds), ``bars`` (one bar per method and grid value), ``curves`` (history metrics over epochs,
averaged over seeds, one panel per metric), ``profile`` (a metric that is itself a curve, a mapping
x → value such as robust accuracy per evaluation ε or the loss along an interpolation, mean ± s.e. per x)
or ``filters`` (scalar metrics as bars beside the convolution filters a run recorded). The built-in
recipes live in :mod:`toymodels.torch.recipes`, one file per
figure; a recipe can also be read from a JSON file with the same fields (:func:`from_dict`).
"""
from __future__ import annotations

import importlib
import json
import math
import pkgutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import ConfigError

__all__ = ["Method", "Scale", "Recipe", "builtin", "load", "from_dict", "points", "table", "plot"]

PLOTS = ("xy", "bars", "curves", "profile", "filters")


@dataclass(frozen=True)
class Method:
    """One line of the figure: a name, the flags it adds to the base command line, flags added at the full
    scale only (``full``, e.g. the thesis's ρ where the miniature needs another) and, optionally, the
    command that replaces the base's first word (e.g. ``train-sgd`` for the ERM line of a SAM figure)."""

    name: str
    args: tuple[str, ...] = ()
    command: str | None = None
    full: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scale:
    """A base command line, a grid (axis → values, each becomes ``--axis value``) and a seed count.
    ``data`` says whether the runs read a dataset from ``--data-dir``."""

    command: tuple[str, ...]
    grid: dict = field(default_factory=dict)
    seeds: int = 1
    data: bool = False


@dataclass(frozen=True)
class Recipe:
    """A thesis figure as a sweep; ``metrics`` are dotted keys of the runs' JSON (``final.pgd_acc``) or,
    for ``plot="curves"``, keys of each entry of the run's ``history``; for ``plot="profile"`` each
    metric's value is a mapping {x: number} with numeric or fractional x strings, and ``x`` is only the
    x label. ``plot="filters"`` draws ``metrics`` as bars and the ``filters`` of each method's first run."""

    figure: str
    title: str
    methods: tuple[Method, ...]
    quick: Scale
    full: Scale
    plot: str
    metrics: tuple[str, ...]
    x: str | None = None
    ylabel: str = ""
    shows: str = ""
    needs_real: str = ""

    def scale(self, quick: bool) -> Scale:
        return self.quick if quick else self.full


def from_dict(d: dict) -> Recipe:
    """A :class:`Recipe` from plain data (a JSON recipe file); checks the fields."""
    try:
        methods = tuple(Method(m["name"], tuple(m.get("args", ())), m.get("command"), tuple(m.get("full", ())))
                        for m in d["methods"])
        scales = {k: Scale(tuple(d[k]["command"]), {a: tuple(str(v) for v in vs) for a, vs in d[k].get("grid", {}).items()},
                           int(d[k].get("seeds", 1)), bool(d[k].get("data", False))) for k in ("quick", "full")}
        r = Recipe(str(d["figure"]), str(d["title"]), methods, scales["quick"], scales["full"], str(d["plot"]),
                   tuple(d["metrics"]), d.get("x"), d.get("ylabel", ""), d.get("shows", ""), d.get("needs_real", ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError("recipe", f"is not a valid recipe (missing or malformed field: {exc})") from None
    check(r)
    return r


def check(r: Recipe) -> None:
    """Raise ConfigError if the recipe is inconsistent (plot kind, x axis, empty parts)."""
    if r.plot not in PLOTS:
        raise ConfigError("recipe", f"plot must be one of {', '.join(PLOTS)}", r.plot)
    if not r.methods or not r.metrics:
        raise ConfigError("recipe", "needs at least one method and one metric", r.figure)
    for s in (r.quick, r.full):
        if not s.command or s.seeds < 1:
            raise ConfigError("recipe", "each scale needs a command and seeds >= 1", r.figure)
        if r.plot == "xy" and r.x not in s.grid:
            raise ConfigError("recipe", f"plot 'xy' needs x to be a grid axis of both scales ({r.x!r})", r.figure)


def builtin() -> dict[str, Recipe]:
    """figure id → the built-in recipe (:mod:`toymodels.torch.recipes`, one module per figure)."""
    from . import recipes

    out = {}
    for info in pkgutil.iter_modules(recipes.__path__):
        r = importlib.import_module(f"{recipes.__name__}.{info.name}").RECIPE
        check(r)
        out[r.figure] = r
    return dict(sorted(out.items(), key=lambda kv: [int(p) if p.isdigit() else p for p in kv[0].split(".")]))


def load(name: str) -> Recipe:
    """A built-in recipe by figure id (``"2.8"``) or a recipe read from a JSON file."""
    recipes = builtin()
    if name in recipes:
        return recipes[name]
    p = Path(name)
    if p.suffix == ".json" and p.is_file():
        try:
            return from_dict(json.loads(p.read_text()))
        except json.JSONDecodeError as exc:
            raise ConfigError("recipe", f"is not valid JSON ({exc})", name) from None
    raise ConfigError("recipe", f"must be one of {', '.join(recipes)} or a .json recipe file", name)


def points(r: Recipe, *, quick: bool, data_dir: str | None = None, seeds: int | None = None, extra=()):
    """[(method name, SweepPoint)] of the recipe at one scale; ``extra`` flags are appended to every run's
    command line after the recipe's own (the last value of a flag wins: ``("--dataset", "cifar100")``
    gives a figure's CIFAR-100 panel)."""
    from .sweep import expand

    s = r.scale(quick)
    if s.data and data_dir is None:
        raise ConfigError("data_dir", f"is required: recipe {r.figure} at full scale reads its dataset from "
                                      "--data-dir (or use --quick for the photos miniature)")
    data = ["--data-dir", str(data_dir)] if (s.data and data_dir is not None) else []
    extra = list(extra)
    grid = {k: list(v) for k, v in s.grid.items()}
    n = s.seeds if seeds is None else seeds
    out = []
    for m in r.methods:
        base = [m.command or s.command[0], *s.command[1:], *m.args, *(() if quick else m.full), *data, *extra]
        out += [(m.name, p) for p in expand("toymodels.torch", base, grid, list(range(n)))]
    return out


def _get(obj, dotted: str):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _mean_se(vals: list[float]) -> tuple[float | None, float | None]:
    n = len(vals)
    if not n:
        return None, None
    m = sum(vals) / n
    return m, (math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1) / n) if n > 1 else None)


def table(r: Recipe, method_points: list, results: dict[str, dict]) -> list[dict]:
    """One row per (method, grid values): n finished seeds and per metric mean ± s.e. (for ``curves``:
    per epoch). ``results``: point key → the sweep's record of that point."""
    groups: dict[tuple, list] = {}
    for name, p in method_points:
        groups.setdefault((name, tuple(p.params)), []).append(results.get(p.key))
    rows = []
    for (name, params), recs in groups.items():
        ok = [rec["result"] for rec in recs if rec and rec.get("returncode") == 0 and isinstance(rec.get("result"), dict)]
        row = {"method": name, "params": dict(params), "n": len(ok), "failed": len(recs) - len(ok)}
        for metric in r.metrics:
            if r.plot == "curves":
                row[metric] = _curve(ok, metric)
            elif r.plot == "profile":
                row[metric] = _profile(ok, metric)
            else:
                mean, se = _mean_se([float(v) for v in (_get(res, metric) for res in ok) if _finite(v)])
                row[metric] = {"mean": mean, "se": se}
        if r.plot == "filters":
            row["filters"] = next((res["filters"] for res in ok if isinstance(res.get("filters"), dict)), None)
        rows.append(row)
    return rows


def _profile(results: list[dict], metric: str) -> dict:
    """{"x": x strings sorted by value, "mean", "se"} over the runs whose ``metric`` is a mapping x → number."""
    by_x: dict[str, list[float]] = {}
    for res in results:
        d = _get(res, metric)
        if isinstance(d, dict):
            for k, v in d.items():
                if _finite(v):
                    by_x.setdefault(str(k), []).append(float(v))
    xs = sorted(by_x, key=axis_value)
    stats = [_mean_se(by_x[k]) for k in xs]
    return {"x": xs, "mean": [st[0] for st in stats], "se": [st[1] for st in stats]}


def _curve(results: list[dict], metric: str) -> dict:
    by_epoch: dict[int, list[float]] = {}
    for res in results:
        for h in res.get("history") or []:
            v = _get(h, metric)
            if _finite(v) and "epoch" in h:
                by_epoch.setdefault(int(h["epoch"]), []).append(float(v))
    epochs = sorted(by_epoch)
    stats = [_mean_se(by_epoch[e]) for e in epochs]
    return {"epoch": epochs, "mean": [s[0] for s in stats], "se": [s[1] for s in stats]}


def axis_value(text: str) -> float:
    """A grid value as a number ("8/255" → 0.0314); ConfigError if it is not one."""
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise ConfigError("recipe", "an xy recipe's x values must be numbers or fractions", text) from None


def _label(row: dict, x: str | None) -> str:
    rest = ", ".join(f"{k}={v}" for k, v in row["params"].items() if k != x)
    return row["method"] + (f" ({rest})" if rest else "")


def plot(r: Recipe, rows: list[dict], path) -> None:
    """Draw the recipe's figure from :func:`table` rows into ``path`` (PNG, written atomically):
    ``curves`` and ``profile`` get one panel per metric, ``filters`` a bar panel and one filter mosaic per
    recorded layer (rows: the initialization, then each method's final filters)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import save_figure

    panels = len(r.metrics) if r.plot in ("curves", "profile") else 1
    layers = _filter_layers(rows) if r.plot == "filters" else []
    n = panels + len(layers)
    if layers:                                   # bars on top, one filter mosaic per row below
        fig, axes = plt.subplots(n, 1, figsize=(7.0, 3.6 + 0.9 * len(layers)), squeeze=False,
                                 gridspec_kw={"height_ratios": [4] + [1] * len(layers)})
    else:
        cols = min(n, 3)
        fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.6 * cols, 3.6 * ((n + cols - 1) // cols)),
                                 squeeze=False)
    flat = list(axes.flat)
    styles = ["-", "--", ":", "-."]
    if r.plot == "xy":
        _plot_xy(flat[0], r, rows, styles)
    elif r.plot in ("bars", "filters"):
        _plot_bars(flat[0], r, rows)
    elif r.plot == "curves":
        _plot_curves(flat, r, rows)
    else:
        _plot_profile(flat, r, rows)
    for k, ax in enumerate(flat[:panels]):
        if r.plot in ("curves", "profile"):
            ax.set_ylabel(r.metrics[k])
        else:
            ax.set_ylabel(r.ylabel or ", ".join(r.metrics))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax, layer in zip(flat[panels:], layers):
        _plot_filters(ax, rows, layer)
    for ax in flat[n:]:
        ax.set_visible(False)
    fig.suptitle(f"Fig. {r.figure}: {r.title}" + (f" ({r.ylabel})" if r.ylabel and panels > 1 else ""), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _plot_xy(ax, r: Recipe, rows, styles) -> None:
    lines: dict[str, list] = {}
    for row in rows:
        lines.setdefault(_label(row, r.x), []).append(row)
    scale = 255 if r.x == "eps" else 1
    for k, (label, rs) in enumerate(lines.items()):
        rs = sorted(rs, key=lambda row: axis_value(row["params"][r.x]))
        xs = [axis_value(row["params"][r.x]) * scale for row in rs]
        for j, metric in enumerate(r.metrics):
            ys = [row[metric]["mean"] for row in rs]
            es = [row[metric]["se"] or 0.0 for row in rs]
            ys_ok = [float("nan") if y is None else y for y in ys]
            ax.errorbar(xs, ys_ok, yerr=es, ls=styles[j % len(styles)], color=f"C{k}", marker="o", ms=3,
                        label=f"{label}: {metric}", capsize=2)
    ax.set_xlabel("ε · 255" if r.x == "eps" else r.x)


def _plot_bars(ax, r: Recipe, rows) -> None:
    width = 0.8 / len(r.metrics)
    for j, metric in enumerate(r.metrics):
        ys = [row[metric]["mean"] if row[metric]["mean"] is not None else float("nan") for row in rows]
        es = [row[metric]["se"] or 0.0 for row in rows]
        ax.bar([i + j * width for i in range(len(rows))], ys, width, yerr=es, capsize=2, label=metric)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], [_label(row, None) for row in rows],
                  rotation=30, ha="right", fontsize=7)


def _plot_curves(axes, r: Recipe, rows) -> None:
    for j, metric in enumerate(r.metrics):
        for k, row in enumerate(rows):
            c = row[metric]
            if c["epoch"]:
                axes[j].plot(c["epoch"], c["mean"], color=f"C{k % 10}", label=_label(row, None))
        axes[j].set_xlabel("epoch")


def _plot_profile(axes, r: Recipe, rows) -> None:
    scale = 255 if r.x == "eps" else 1
    for j, metric in enumerate(r.metrics):
        for k, row in enumerate(rows):
            c = row[metric]
            if c["x"]:
                xs = [axis_value(x) * scale for x in c["x"]]
                axes[j].errorbar(xs, c["mean"], yerr=[e or 0.0 for e in c["se"]], color=f"C{k % 10}", marker="o",
                                 ms=3, capsize=2, label=_label(row, None))
        axes[j].set_xlabel("ε · 255" if r.x == "eps" else (r.x or "x"))


def _filter_layers(rows) -> list[str]:
    for row in rows:
        if isinstance(row.get("filters"), dict):
            return list(row["filters"])
    return []


def _mosaic(kernels) -> "np.ndarray":
    """Kernels (k×k each) side by side with one-pixel gaps, each scaled to [-1, 1] by its largest |value|."""
    import numpy as np

    ks = [np.asarray(k, dtype=float) for k in kernels]
    if not ks:
        return np.full((1, 1), np.nan)
    h, w = ks[0].shape
    out = np.full((h, len(ks) * (w + 1) - 1), np.nan)
    for i, k in enumerate(ks):
        m = np.abs(k).max()
        out[:, i * (w + 1):i * (w + 1) + w] = k / m if m > 0 else k
    return out


def _plot_filters(ax, rows, layer: str) -> None:
    import numpy as np

    strips, names = [], []
    for row in rows:
        f = (row.get("filters") or {}).get(layer)
        if not f:
            continue
        if not strips:
            strips.append(_mosaic(f["init"]))
            names.append("initialization")
        strips.append(_mosaic(f["final"]))
        names.append(_label(row, None))
    width = max(s.shape[1] for s in strips)
    gap = np.full((1, width), np.nan)
    img = np.vstack([part for s in strips for part in (np.pad(s, ((0, 0), (0, width - s.shape[1])),
                                                                constant_values=np.nan), gap)][:-1])
    ax.imshow(img, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    h = strips[0].shape[0] + 1
    ax.set_yticks([i * h + (h - 1) / 2 for i in range(len(names))], names, fontsize=7)
    ax.set_xticks([])
    ax.set_title(f"filters of {layer} (first input channel)", fontsize=8)
