"""``python -m toymodels.torch sweep``: a grid of runs of any toymodels command, locally or on Dask.

Example (the thesis's Fig. 2.8 shape, scaled down: ε × method × seed)::

    python -m toymodels.torch sweep --grid eps=2/255,4/255,8/255 --grid attack=fgsm,fgsm-rs \\
        --seeds 3 --metric final.pgd_acc --out sweeps/fig28 -- train-at --epochs 2

Everything after ``--`` is the base command line of ``python -m MODULE`` (default module
``toymodels.torch``; ``--module toymodels.dln`` sweeps the numba toy models the same way). Each grid
axis NAME becomes ``--NAME VALUE``; each point also gets ``--seed S --json``. ``--out DIR`` holds
``points/*.json`` and ``results.jsonl`` besides ``result.json``; re-running into the same DIR resumes.
A sweep with failed points still prints its result, with exit status 1. Needs no torch (the points do
what their module needs); ``--cluster`` needs ``distributed``.
"""
from __future__ import annotations

import math
import time

from .._cli import Command, Int, ListOf, Num, Result, Text
from ..optional import missing_modules
from ..errors import ConfigError, RunError
from ..rng import SEED_MAX

__all__ = ["COMMAND", "add_arguments", "summarize", "add_gpus", "gpu_list"]

_CLUSTER = r"local-dask|[a-z]+://\S+|[A-Za-z0-9_.-]+:[0-9]+"


def add_arguments(p) -> None:
    p.add_argument("--module", type=Text(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", "a python module name"),
                   default="toymodels.torch", help="python module run for every point (default toymodels.torch)")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   type=Text(r"-{0,2}[A-Za-z][\w-]*=.*\S.*", "NAME=V1,V2,... (one grid axis)"),
                   help="one grid axis (repeatable): passed as --NAME V to each run")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seeds", type=Int(1, 10 ** 6, "runs per grid point"), default=1,
                   help="seeds 0..N-1 per grid point (default 1)")
    g.add_argument("--seed-list", type=ListOf(Int(0, SEED_MAX), unique=True), default=None,
                   help="explicit comma-separated seeds, e.g. 0,3,7")
    p.add_argument("--cluster", type=Text(_CLUSTER, "a Dask scheduler address (tcp://host:8786) or local-dask"),
                   default=None, help="Dask scheduler address (tcp://host:8786), or local-dask for a throw-away "
                                      "LocalCluster; default: run locally")
    p.add_argument("--workers", type=Int(1, 1024), default=1, help="points run at once (default 1)")
    add_gpus(p)
    p.add_argument("--timeout", type=Num(0, 10 ** 7, lo_open=True), default=None,
                   help="seconds per point, at most 1e7 (default: no limit)")
    p.add_argument("--metric", type=Text(r"[\w.-]+", "a dotted key of the runs' JSON, e.g. final.pgd_acc"),
                   default=None, help="dotted key of each run's JSON to summarize over seeds (e.g. final.pgd_acc)")
    p.add_argument("--dry-run", action="store_true", help="list the points' command lines and exit (honours --json)")
    p.add_argument("base", nargs="*", metavar="BASE", type=Text(r"(?s).+", "a non-empty argument"),
                   help="after --: the base command line of python -m MODULE")


def add_gpus(p) -> None:
    p.add_argument("--gpus", type=Text(r"auto|none|\d+(,\d+)*", "auto, none or GPU ids such as 0,1,2"), default="auto",
                   help="local workers: one GPU per running point, from these ids (auto: CUDA_VISIBLE_DEVICES or "
                        "all GPUs torch sees, when --workers >= 2; none: leave CUDA_VISIBLE_DEVICES alone)")


def gpu_list(text: str):
    """The ``--gpus`` value as :func:`toymodels.torch.sweep.run_sweep`'s ``gpus``."""
    return "auto" if text == "auto" else (() if text == "none" else tuple(text.split(",")))


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


def _points(a):
    """The sweep's points, after every check of the base command line."""
    from .sweep import expand, parse_grid

    base = list(a.base)
    if a.module == "toymodels.torch" and not base:
        raise ConfigError("base", "is required for --module toymodels.torch (e.g. -- train-at --epochs 2)")
    if a.module == "toymodels.torch" and base[0] == "sweep":
        raise ConfigError("base", "must not be 'sweep': a sweep cannot run sweeps", " ".join(base))
    for flag in ("--seed", "--json"):
        if any(b == flag or b.startswith(flag + "=") for b in base):
            raise ConfigError("base", f"must not contain {flag}: the sweep sets it per point", " ".join(base))
    if a.cluster is not None and missing_modules(("distributed",)):
        raise RunError("--cluster needs distributed, which is not installed: pip install distributed")
    seeds = list(a.seed_list) if a.seed_list is not None else list(range(a.seeds))
    grid = parse_grid(a.grid)
    return expand(a.module, base, grid, seeds), grid, seeds


def _human(out: dict) -> None:
    if out["dry_run"]:
        for p in out["points"]:
            print(" ".join(p["argv"]))
        return
    c = out["config"]
    print(f"{out['n_points']} runs ({out['n_skipped']} already done, {out['n_failed']} failed) via "
          f"{out['executor']} in {out['runtime_s']:.1f} s")
    for r in out["points"]:
        if r.get("returncode") != 0:
            print(f"  FAILED {r['point']['params']} seed {r['point']['seed']}: {r.get('error')}")
    if c["metric"]:
        print(f"{c['metric']} (mean ± s.e. over seeds):")
        for row in out["summary"]:
            params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "(no grid)"
            if row["mean"] is None:
                print(f"  {params}: no finite values")
            else:
                se = f" ± {row['se']:.4g}" if row["se"] is not None else ""
                print(f"  {params}: {row['mean']:.4g}{se}  (n={row['n']})")


def run(a, session) -> Result:
    from .sweep import run_sweep

    points, grid, seeds = _points(a)
    config = {"module": a.module, "base_args": list(a.base), "grid": grid, "seeds": seeds, "cluster": a.cluster,
              "workers": a.workers, "gpus": a.gpus, "timeout": a.timeout, "metric": a.metric, "dry_run": a.dry_run}
    if a.dry_run:
        payload = {"dry_run": True, "n_points": len(points),
                   "points": [{**p.describe(), "key": p.key, "argv": ["python", *p.argv()[1:]]} for p in points]}
        return Result(payload, config, human=lambda: _human({**payload, "config": config}))
    t0 = time.perf_counter()
    with session.progress(len(points), desc="sweep", unit="run") as bar:
        report = run_sweep(points, out=session.out, cluster=a.cluster, workers=a.workers, timeout=a.timeout,
                           on_result=lambda r: bar.update(1), gpus=gpu_list(a.gpus))
        bar.update(report.skipped)
    payload = {"dry_run": False, "executor": report.executor, "n_points": len(points), "n_skipped": report.skipped,
               "n_failed": report.n_failed, "runtime_s": time.perf_counter() - t0, "points": report.points}
    if a.metric:
        payload["summary"] = summarize(report.points, a.metric)
    if report.n_failed:
        session.note(f"{report.n_failed} of {len(points)} points failed (see 'points' for their errors)")
    return Result(payload, config, human=lambda: _human({**payload, "config": config}),
                  exit_code=1 if report.n_failed else 0)


COMMAND = Command("sweep", "grids over ε, ρ, seeds: locally or on a Dask cluster", add_arguments, run,
                  seed=False, random=False, description=__doc__.split("\n\n")[0].replace("``", ""),
                  epilog="Example: python -m toymodels.torch sweep --grid rho=0.01,0.05 --seeds 2 "
                         "--metric final.clean_acc -- train-sam --epochs 1",
                  smoke=("--module", "toymodels.fgsm", "--grid", "d=3,5", "--seeds", "2", "--dry-run"))
