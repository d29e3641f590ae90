"""``python -m toymodels.torch recipe FIGURE``: a thesis deep-net figure as a sweep, and its plot.

``--quick`` runs the miniature on the embedded photos (a CPU, minutes); without it the thesis's scale,
reading CIFAR-10 (or SVHN) from ``--data-dir`` (a GPU). ``--list`` shows the recipes, what each
miniature shows and what needs the real data. With ``--out DIR`` the runs go to ``DIR/sweep`` (re-running
resumes) and the figure to ``DIR/fig_<figure>.png``. FIGURE may also be a JSON file with a recipe's fields
(:func:`toymodels.torch.recipe.from_dict`).
"""
from __future__ import annotations

import time

from .._cli import Command, Int, Num, Result, Text
from ..errors import ConfigError
from .sweep_cli import _CLUSTER, add_gpus, gpu_list

__all__ = ["COMMAND"]


def add_arguments(p) -> None:
    p.add_argument("figure", nargs="?", default=None, type=Text(r"[\w./ -]+", "a figure id such as 2.8, or a .json file"),
                   help="the thesis figure (e.g. 2.8; see --list) or a recipe .json file")
    p.add_argument("--list", action="store_true", help="list the built-in recipes and exit")
    p.add_argument("--quick", action="store_true", help="the CPU miniature on the embedded photos")
    p.add_argument("--data-dir", default=None, type=Text(r".+", "a directory"),
                   help="dataset directory for the full scale (CIFAR-10/100, SVHN in their standard formats)")
    p.add_argument("--seeds", type=Int(1, 1000, "seeds per point"), default=None,
                   help="seeds 0..N-1 per point (default: the recipe's)")
    p.add_argument("--workers", type=Int(1, 1024), default=1, help="points run at once (default 1)")
    add_gpus(p)
    p.add_argument("--cluster", type=Text(_CLUSTER, "a Dask scheduler address (tcp://host:8786) or local-dask"),
                   default=None, help="Dask scheduler address, or local-dask; default: run locally")
    p.add_argument("--timeout", type=Num(0, 10 ** 7, lo_open=True), default=None, help="seconds per point")
    p.add_argument("--extra-args", default="", type=Text(r"[^\n]*", "flags of the runs' command (one quoted string)"),
                   help="flags appended to every run after the recipe's own, which they override (one quoted "
                        "string), e.g. \"--dataset cifar100 --model resnet34\" for a CIFAR-100 panel")
    p.add_argument("--dry-run", action="store_true", help="list the points' command lines and exit")


def _listing() -> list[dict]:
    from .recipe import builtin

    return [{"figure": r.figure, "title": r.title, "plot": r.plot, "methods": [m.name for m in r.methods],
             "quick_points": _n(r, True),
             "full_points": _n(r, False), "shows": r.shows, "needs_real": r.needs_real}
            for r in builtin().values()]


def _n(r, quick: bool) -> int:
    s = r.scale(quick)
    n = len(r.methods) * s.seeds
    for v in s.grid.values():
        n *= len(v)
    return n


def _human_list(rows) -> None:
    for row in rows:
        print(f"Fig. {row['figure']}: {row['title']}  [{row['quick_points']} quick runs, {row['full_points']} full]")
        print(f"    miniature: {row['shows']}")
        print(f"    real data: {row['needs_real']}")


def _human(out: dict) -> None:
    if out.get("dry_run"):
        for p in out["points"]:
            print(" ".join(p["argv"]))
        return
    print(f"Fig. {out['figure']} ({'quick' if out['quick'] else 'full'}): {out['n_points']} runs "
          f"({out['n_skipped']} already done, {out['n_failed']} failed) in {out['runtime_s']:.1f} s")
    for row in out["table"]:
        cells = []
        for metric in out["metrics"]:
            v = row[metric]
            if "epoch" in v:
                last = v["mean"][-1] if v["mean"] else None
                cells.append(f"{metric}[last]={last:.4g}" if last is not None else f"{metric}=n/a")
            elif "x" in v:
                pts = ", ".join(f"{x}: {m:.4g}" for x, m in zip(v["x"], v["mean"]) if m is not None)
                cells.append(f"{metric}={{{pts}}}" if pts else f"{metric}=n/a")
            elif v["mean"] is None:
                cells.append(f"{metric}=n/a")
            else:
                se = f" ± {v['se']:.3g}" if v["se"] is not None else ""
                cells.append(f"{metric}={v['mean']:.4g}{se}")
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        print(f"  {row['method']:<16} {params:<24} n={row['n']}  " + "  ".join(cells))
    if out.get("figure_file"):
        print(f"figure: {out['figure_file']}")


def _split(text: str) -> list[str]:
    import shlex

    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ConfigError("extra_args", f"is not a valid flag string ({exc})", text) from None


def _check_runs(mp, field: str) -> None:
    """Parse and check the first run of every method before anything runs: a bad flag is one clear error
    (exit 2), not a sweep of failed runs."""
    import contextlib
    import io

    from .__main__ import CLI
    from .train_cli import config_from_args

    parser, seen = CLI.parser(), set()
    tasks = {"train-at": "at", "train-sam": "sam", "train-sgd": "sgd"}
    for name, p in mp:
        if name in seen:
            continue
        seen.add(name)
        argv = p.argv()[3:]                      # drop python -m toymodels.torch
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                a = parser.parse_args(argv)
            if argv[0] in tasks:
                config_from_args(a, tasks[argv[0]])
        except SystemExit:
            msg = (err.getvalue().strip().splitlines()[-1:] or ["invalid flags"])[0].split("error: ")[-1]
            if msg.startswith("--data-dir "):    # the recipe's own --data-dir, whatever else is given
                raise ConfigError("data_dir", msg[len("--data-dir "):]) from None
            raise ConfigError(field, f"makes an invalid {argv[0]} run for {name!r}: {msg}") from None
        except ConfigError as exc:
            raise ConfigError(field, f"makes an invalid {argv[0]} run for {name!r}: {exc}") from None


def run(a, session) -> Result:
    from .recipe import load, plot, points, table
    from .sweep import run_sweep

    if a.list:
        rows = _listing()
        return Result({"recipes": rows}, {"list": True}, human=lambda: _human_list(rows))
    if a.figure is None:
        raise ConfigError("figure", "is required (a figure id such as 2.8, see --list, or a .json recipe file)")
    r = load(a.figure)
    extra = _split(a.extra_args)
    mp = points(r, quick=a.quick, data_dir=a.data_dir, seeds=a.seeds, extra=extra)
    _check_runs(mp, "extra_args" if extra else "recipe")
    config = {"figure": r.figure, "quick": a.quick, "data_dir": a.data_dir, "seeds": a.seeds, "extra_args": extra,
              "workers": a.workers,
              "gpus": a.gpus, "cluster": a.cluster, "timeout": a.timeout, "dry_run": a.dry_run}
    if a.dry_run:
        payload = {"dry_run": True, "figure": r.figure, "n_points": len(mp),
                   "points": [{"method": m, **p.describe(), "argv": ["python", *p.argv()[1:]]} for m, p in mp]}
        return Result(payload, config, human=lambda: _human(payload))
    t0 = time.perf_counter()
    out = None if session.out is None else session.out / "sweep"
    with session.progress(len(mp), desc=f"fig {r.figure}", unit="run") as bar:
        rep = run_sweep([p for _, p in mp], out=out, cluster=a.cluster, workers=a.workers, timeout=a.timeout,
                        on_result=lambda res: bar.update(1), gpus=gpu_list(a.gpus))
        bar.update(rep.skipped)
    rows = table(r, mp, {rec["key"]: rec for rec in rep.points})
    fig_name = f"fig_{r.figure.replace('.', '_')}.png"
    payload = {"dry_run": False, "figure": r.figure, "title": r.title, "quick": a.quick, "metrics": list(r.metrics),
               "n_points": len(mp), "n_skipped": rep.skipped, "n_failed": rep.n_failed,
               "runtime_s": time.perf_counter() - t0, "table": rows, "shows": r.shows, "needs_real": r.needs_real,
               "figure_file": None if session.out is None else str(session.out / fig_name)}
    if rep.n_failed:
        session.note(f"{rep.n_failed} of {len(mp)} runs failed (their errors are in DIR/sweep/points)")
    return Result(payload, config, human=lambda: _human(payload), files={fig_name: lambda path: plot(r, rows, path)},
                  exit_code=1 if rep.n_failed else 0)


COMMAND = Command("recipe", "a thesis deep-net figure as a sweep (--quick: CPU miniature on photos)", add_arguments,
                  run, seed=False, random=False, description=__doc__.split("\n\n")[0].replace("``", ""),
                  epilog="Example: python -m toymodels.torch recipe 2.8 --quick --out runs/fig28",
                  smoke=("2.8", "--quick", "--dry-run"))
