"""``python -m figures``: render thesis figures from the toy models.

Examples::

    python -m figures --list                 # id, thesis figure, title
    python -m figures 5.6 5.14 --out figs    # PNG + JSON per figure into figs/
    python -m figures --quick --json         # every figure, small settings, one JSON object
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from toymodels._cli import Choice, Cli, Command, OutDir, Result

PROG = "python -m figures"
DEFAULT_OUT = "figures_out"
#: the contract test's smoke run renders one quick figure into this folder (not into ./figures_out)
SMOKE_OUT = str(Path(tempfile.gettempdir()) / "toymodels-figures-smoke")


def add_arguments(p) -> None:
    from . import registry

    p.add_argument("ids", nargs="*", default=[], metavar="ID", type=Choice(*registry(), metavar="ID"),
                   help="figure ids to render (default: all; see --list)")
    p.add_argument("--list", action="store_true",
                   help="list the figures (id, thesis figure, title; honours --json) and exit")
    p.add_argument("--out", dest="out_dir", metavar="DIR", type=OutDir(), default=DEFAULT_OUT,
                   help=f"output folder for fig_<id>.png and fig_<id>.json, written atomically (default: "
                        f"./{DEFAULT_OUT})")
    p.add_argument("--quick", action="store_true",
                   help="small step counts and grids so that each figure renders in a few seconds")


def _tf(spec) -> str:
    return "—" if spec.thesis_figure is None else f"Fig. {spec.thesis_figure}"


def _print_load_errors(errors: dict) -> None:
    for mod, err in errors.items():
        print(f"WARNING figure module {mod} failed to import ({err}); its figures are missing")


def _print_listing(specs, errors: dict) -> None:
    w_id = max([len("id"), *(len(s.id) for s in specs)])
    w_tf = max([len("thesis figure"), *(len(_tf(s)) for s in specs)])
    print(f"{'id':<{w_id}}  {'thesis figure':<{w_tf}}  title")
    for s in specs:
        print(f"{s.id:<{w_id}}  {_tf(s):<{w_tf}}  {s.title}")
    _print_load_errors(errors)


def _print_files(results, failed: dict, errors: dict) -> None:
    for r in results:
        for f in r["files"]:
            print(f)
    for fid, err in failed.items():
        print(f"ERROR figure {fid} failed: {err}")
    _print_load_errors(errors)


def _render_all(specs, out_dir: str, ctx, session) -> tuple[list[dict], dict]:
    """Render every figure; one that raises is recorded (id → error) and the others still render."""
    from . import render

    results, failed = [], {}
    with session.progress(len(specs), desc="figures", unit="fig") as bar:
        for s in specs:
            bar.set_description(f"figure {s.id}")
            try:
                results.append(render(s, out_dir, ctx))
            except Exception as exc:  # noqa: BLE001 - reported in the output and by the exit status
                if os.environ.get("TOYMODELS_DEBUG"):
                    raise
                failed[s.id] = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            bar.update(1)
    return results, failed


def run(a: argparse.Namespace, session) -> Result:
    """Exit status 1 when a figure raised (``errors``), or when all figures were asked for and a topic
    module failed to import (``load_errors``); the other figures are still rendered."""
    from . import LOAD_ERRORS, Context, registry

    reg = registry()
    errors = dict(LOAD_ERRORS)
    specs = [reg[i] for i in dict.fromkeys(a.ids)] or list(reg.values())
    config = {"ids": [s.id for s in specs], "quick": a.quick, "out": a.out_dir}
    if a.list:
        return Result({"figures": [s.listing() for s in specs], "load_errors": errors}, config,
                      human=lambda: _print_listing(specs, errors))
    results, failed = _render_all(specs, a.out_dir, Context(quick=a.quick, show_progress=session.show_progress),
                                  session)
    return Result({"figures": results, "errors": failed, "load_errors": errors}, config,
                  human=lambda: _print_files(results, failed, errors),
                  exit_code=1 if failed or (errors and not a.ids) else 0)


CLI = Cli(PROG, __doc__, [Command(
    None, "render thesis figures", add_arguments, run, seed=False, out=False, random=False,
    description="Render thesis figures (PNG plus a JSON summary of the plotted data) from the toy models. "
                "Exit status 1 if a figure fails (the others are still rendered).",
    epilog="Example: python -m figures 5.6 --out figs",
    smoke=("--quick", "--out", SMOKE_OUT, "prop6.3.2"))])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
