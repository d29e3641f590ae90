"""``python -m toymodels.torch sweep``: a grid of runs of any toymodels command, locally or on Dask.

Example (the thesis's Fig. 2.8 shape, scaled down: ε × method × seed)::

    python -m toymodels.torch sweep --grid eps=2/255,4/255,8/255 --grid attack=fgsm,fgsm-rs \\
        --seeds 3 --metric final.pgd_acc --out sweeps/fig28 -- train-at --epochs 2

Everything after ``--`` is the base command line of ``python -m MODULE`` (default module
``toymodels.torch``; ``--module toymodels.dln`` sweeps the numba toy models the same way). Each grid
axis NAME becomes ``--NAME VALUE``; each point also gets ``--seed S --json``.
"""
from __future__ import annotations

import math
import sys
import time

from .. import __version__
from .._cli import Parser, UsageError, emit_json, progress
from .sweep import expand, parse_grid, run_sweep

__all__ = ["main", "build_parser", "summarize"]


def build_parser(command: str = "sweep") -> Parser:
    p = Parser(prog=f"python -m toymodels.torch {command}", description=__doc__.split("\n\n")[0],
               epilog="Example: python -m toymodels.torch sweep --grid rho=0.01,0.05 --seeds 2 "
                      "--metric final.clean_acc -- train-sam --epochs 1")
    p.add_argument("--module", default="toymodels.torch",
                   help="python module run for every point (default toymodels.torch)")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="one grid axis (repeatable): passed as --NAME V to each run")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per grid point (default 1)")
    g.add_argument("--seed-list", default=None, help="explicit comma-separated seeds, e.g. 0,3,7")
    p.add_argument("--cluster", default=None,
                   help="Dask scheduler address (tcp://host:8786), or local-dask for a throw-away "
                        "LocalCluster; default: run locally")
    p.add_argument("--workers", type=int, default=1, help="points run at once (default 1)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per point (default: no limit)")
    p.add_argument("--metric", default=None,
                   help="dotted key of each run's JSON to summarize over seeds (e.g. final.pgd_acc)")
    p.add_argument("--dry-run", action="store_true", help="print the command lines and exit")
    p.add_argument("--out", default=None, help="directory for points/*.json and results.jsonl "
                   "(re-running into the same directory resumes)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    return p


def _get(obj, dotted: str):
    for part in dotted.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.lstrip("-").isdigit():
            obj = obj[int(part)]
        else:
            return None
    return obj


def summarize(points: list[dict], metric: str) -> list[dict]:
    """Mean and standard error of ``metric`` over seeds, per grid combination (in sweep order)."""
    groups: dict[tuple, list] = {}
    for r in points:
        key = tuple(sorted(r["point"]["params"].items()))
        groups.setdefault(key, [])
        v = _get(r.get("result"), metric) if r.get("returncode") == 0 else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            groups[key].append(float(v))
    rows = []
    for key, vals in groups.items():
        n = len(vals)
        mean = sum(vals) / n if n else None
        se = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1) / n) if n > 1 else None)
        rows.append({"params": dict(key), "n": n, "mean": mean, "se": se})
    return rows


def main(argv=None, command: str = "sweep") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        i = argv.index("--")
        own, base = argv[:i], argv[i + 1:]
    else:
        own, base = argv, []
    args = build_parser(command).parse_args(own)
    if args.module == "toymodels.torch" and not base:
        raise UsageError("the base command after -- is required for --module toymodels.torch "
                         "(e.g. -- train-at --epochs 2)")
    if args.module == "toymodels.torch" and base and base[0] == "sweep":
        raise UsageError("a sweep cannot run sweeps: the base command must not be 'sweep'")
    if args.seed_list is not None:
        try:
            seeds = [int(s) for s in args.seed_list.split(",") if s.strip()]
        except ValueError:
            raise UsageError(f"--seed-list must be comma-separated integers, got {args.seed_list!r}") from None
        if not seeds or min(seeds) < 0:
            raise UsageError(f"--seed-list must be non-empty integers >= 0, got {args.seed_list!r}")
    else:
        if args.seeds < 1:
            raise UsageError(f"--seeds must be an integer >= 1, got {args.seeds}")
        seeds = list(range(args.seeds))
    if args.workers < 1:
        raise UsageError(f"--workers must be an integer >= 1, got {args.workers}")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be > 0 seconds, got {args.timeout}")
    grid = parse_grid(args.grid)
    for flag in ("--seed", "--json"):
        if flag in base:
            raise UsageError(f"the base command must not contain {flag}: the sweep sets it per point")
    points = expand(args.module, base, grid, seeds)
    if args.dry_run:
        for p in points:
            print(" ".join(p.argv()[1:]))
        return 0

    t0 = time.perf_counter()
    bar = progress(len(points), disable=args.json, desc="sweep", unit="run")
    report = run_sweep(points, out=args.out, cluster=args.cluster, workers=args.workers,
                       timeout=args.timeout, on_result=lambda r: bar.update(1))
    bar.update(report.skipped)
    bar.close()
    out = {
        "config": {"module": args.module, "base_args": base, "grid": grid, "seeds": seeds,
                   "cluster": args.cluster, "workers": args.workers, "timeout": args.timeout,
                   "metric": args.metric, "out": args.out},
        "version": __version__,
        "executor": report.executor,
        "n_points": len(points), "n_skipped": report.skipped, "n_failed": report.n_failed,
        "runtime_s": time.perf_counter() - t0,
        "points": report.points,
    }
    if args.metric:
        out["summary"] = summarize(report.points, args.metric)
    if args.json:
        emit_json(out)
    else:
        print(f"{len(points)} runs ({report.skipped} already done, {report.n_failed} failed) via "
              f"{report.executor} in {out['runtime_s']:.1f} s" + (f"; results in {args.out}" if args.out else ""))
        for r in report.points:
            if r.get("returncode") != 0:
                print(f"  FAILED {r['point']['params']} seed {r['point']['seed']}: {r.get('error')}")
        if args.metric:
            print(f"{args.metric} (mean ± s.e. over seeds):")
            for row in out["summary"]:
                params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "(no grid)"
                if row["mean"] is None:
                    print(f"  {params}: no finite values")
                else:
                    se = f" ± {row['se']:.4g}" if row["se"] is not None else ""
                    print(f"  {params}: {row['mean']:.4g}{se}  (n={row['n']})")
    return 1 if report.n_failed else 0
