"""``python -m figures``: render thesis figures from the toy models.

Examples::

    python -m figures --list                 # id, thesis figure, title
    python -m figures 5.6 5.14 --out figs    # PNG + JSON per figure into figs/
    python -m figures --quick --json         # every figure, small settings, one JSON object
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from toymodels._cli import Parser, UsageError, add_common, emit_json, progress, run_main

from . import Context, registry, render

PROG = "python -m figures"


def build_parser() -> Parser:
    p = Parser(prog=PROG, description="Render thesis figures (PNG plus a JSON summary of the plotted "
                                      "data) from the toy models.",
               epilog="Example: python -m figures 5.6 --out figs")
    p.add_argument("ids", nargs="*", metavar="ID", help="figure ids to render (default: all; see --list)")
    p.add_argument("--list", action="store_true", help="list the figures (id, thesis figure, title) and exit")
    p.add_argument("--out", metavar="DIR", default="figures_out",
                   help="output folder for fig_<id>.png and fig_<id>.json (default: ./figures_out)")
    p.add_argument("--quick", action="store_true",
                   help="small step counts and grids so that each figure renders in a few seconds")
    add_common(p, seed=False, out=False)
    return p


def _tf(spec) -> str:
    return "—" if spec.thesis_figure is None else f"Fig. {spec.thesis_figure}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reg = registry()
    unknown = [i for i in args.ids if i not in reg]
    if unknown:
        raise UsageError(f"unknown figure id{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(repr(i) for i in unknown)}; valid ids: {', '.join(reg)}")
    ids = list(dict.fromkeys(args.ids)) or list(reg)
    specs = [reg[i] for i in ids]

    if args.list:
        if args.json:
            emit_json({"figures": [s.listing() for s in specs]})
        else:
            w_id = max(len("id"), *(len(s.id) for s in specs))
            w_tf = max(len("thesis figure"), *(len(_tf(s)) for s in specs))
            print(f"{'id':<{w_id}}  {'thesis figure':<{w_tf}}  title")
            for s in specs:
                print(f"{s.id:<{w_id}}  {_tf(s):<{w_tf}}  {s.title}")
        return 0

    ctx = Context(quick=args.quick, show_progress=not args.json)
    out = Path(args.out)
    results = []
    with progress(len(specs), disable=args.json, desc="figures", unit="fig") as bar:
        for s in specs:
            bar.set_description(f"figure {s.id}")
            results.append(render(s, out, ctx))
            bar.update(1)
    if args.json:
        emit_json({"figures": results})
    else:
        for r in results:
            for f in r["files"]:
                print(f)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
