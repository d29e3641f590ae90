"""Thesis figures, regenerated from the toy models: ``python -m figures [--list] [ID ...]``.

A figure is a function registered with the :func:`figure` decorator in a *topic module*
(``figures/dln.py``, later ``figures/fgsm.py`` ...). Every topic module is listed once in
:data:`TOPIC_MODULES`; :func:`registry` imports them all and returns the figures by id.

A figure function takes a :class:`Context` (``quick``: shrink steps/grids so that the figure
renders in a few seconds; ``show_progress``: tqdm bars allowed) and returns a :class:`Rendered`:
a matplotlib ``Figure`` (built with ``matplotlib.figure.Figure``, never pyplot), a JSON-ready
``summary`` of the key numbers (settings, final losses, ...) and optionally ``data``, the plotted
series. :func:`render` writes ``fig_<id>.png`` and ``fig_<id>.json`` atomically into the output
folder.

Adding a topic: create ``figures/<topic>.py`` that does ``from . import Context, Rendered, figure``
and decorates its figure functions, then append ``"<topic>"`` to :data:`TOPIC_MODULES`.
"""
from __future__ import annotations

import importlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["TOPIC_MODULES", "FigureSpec", "Context", "Rendered", "figure", "registry", "render",
           "STYLE", "LOAD_ERRORS"]

#: Topic modules (``figures.<name>``) imported by :func:`registry`, in listing order.
TOPIC_MODULES: tuple[str, ...] = ("dln", "fgsm", "cnn_lemma2", "cnn", "cnn_linearization", "relu", "quad1d", "dln_large_step", "square", "relu_sam", "sde", "label_noise", "sharpness")

#: Matplotlib settings applied while a figure is built and saved (no LaTeX; mathtext is fine).
STYLE = {
    "text.usetex": False,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "savefig.dpi": 120,
}


@dataclass(frozen=True)
class FigureSpec:
    id: str
    thesis_figure: str | None  # None: a figure of the project with no counterpart in the thesis
    title: str
    func: Callable[["Context"], "Rendered"]
    module: str

    def listing(self) -> dict:
        return {"id": self.id, "thesis_figure": self.thesis_figure, "title": self.title}


@dataclass(frozen=True)
class Context:
    """What a figure function may depend on besides its own constants."""

    quick: bool = False
    show_progress: bool = False


@dataclass
class Rendered:
    fig: Any                      # matplotlib.figure.Figure
    summary: dict
    data: dict = field(default_factory=dict)


_REGISTRY: dict[str, FigureSpec] = {}


def figure(id: str, thesis_figure: str | None, title: str):
    """Register ``func(ctx: Context) -> Rendered`` as figure ``id`` (thesis figure number as a
    string such as ``"5.6"``)."""
    if not isinstance(id, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", id):
        raise ValueError(f"figure id must match [A-Za-z0-9][A-Za-z0-9._-]*, got {id!r}")

    def deco(func):
        old = _REGISTRY.get(id)
        if old is not None and (old.module, old.func.__qualname__) != (func.__module__, func.__qualname__):
            raise ValueError(f"figure id {id!r} registered twice ({old.module}.{old.func.__qualname__} "
                             f"and {func.__module__}.{func.__qualname__})")
        _REGISTRY[id] = FigureSpec(id, None if thesis_figure is None else str(thesis_figure), title, func,
                                  func.__module__)
        return func

    return deco


def _natural_key(s: str):
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", s) if p)


#: topic module -> "ExceptionType: message" for topic modules that failed to import: their figures
#: are missing, the others still render; ``python -m figures`` reports them and exits 1
LOAD_ERRORS: dict[str, str] = {}


def registry() -> dict[str, FigureSpec]:
    """Import every topic module and return ``{id: FigureSpec}`` in natural order of the thesis
    figure number (5.5 < 5.6 < 5.13). A topic module that fails to import is recorded in
    :data:`LOAD_ERRORS` instead of taking every figure down."""
    for name in TOPIC_MODULES:
        mod = f"{__name__}.{name}"
        if mod in LOAD_ERRORS:
            continue
        try:
            importlib.import_module(mod)
        except Exception as exc:  # noqa: BLE001 - reported by the CLI (exit 1), not a traceback
            LOAD_ERRORS[mod] = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    specs = sorted(_REGISTRY.values(), key=lambda s: (_natural_key(s.thesis_figure or "~"), _natural_key(s.id)))
    return {s.id: s for s in specs}


def render(spec: FigureSpec, out_dir: str | Path, ctx: Context = Context()) -> dict:
    """Build figure ``spec`` and write ``fig_<id>.png`` and ``fig_<id>.json`` (atomically) into
    ``out_dir``. Returns ``{id, thesis_figure, title, files, runtime_s, summary}``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import numpy as np

    from toymodels import __version__
    from toymodels._io import save_figure, write_json

    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    with matplotlib.rc_context(STYLE), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        res = spec.func(ctx)
        runtime = time.perf_counter() - t0
        png = save_figure(res.fig, out_dir / f"fig_{spec.id}.png")
    res.fig.clear()
    record = spec.listing() | {"runtime_s": round(runtime, 3), "quick": bool(ctx.quick),
                               "summary": res.summary}
    js = write_json(out_dir / f"fig_{spec.id}.json", record | {"data": res.data, "version": __version__})
    return spec.listing() | {"files": [str(png), str(js)], "runtime_s": round(runtime, 3),
                             "summary": res.summary}
