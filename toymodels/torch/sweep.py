"""Grids of runs (ε × method × seed, ρ × m × seed, …) for any toymodels command — locally or on Dask.

A sweep is a base command line plus a grid: every point of the Cartesian product of the grid axes
(and of ``seeds``) is one run of ``python -m <module> <args> --<axis> <value> … --seed <s> --json``.
Each run is a separate Python process, so points are isolated (numba caches, torch threads, CUDA
contexts) and a crashed point never takes the sweep down; its exit status and last stderr line are
recorded instead. Results go to ``OUT/points/<key>.json`` (atomic, one per point) and
``OUT/results.jsonl``; re-running the same sweep into the same ``OUT`` skips finished points, so an
interrupted sweep resumes where it stopped.

Executors:

* ``local`` (default) — ``workers`` points at a time on this machine (a process pool of subprocesses);
* ``dask`` — submitted to an existing Dask cluster given by its scheduler address
  (``tcp://host:8786``), e.g. one started with ``dask scheduler`` / ``dask worker`` or dask-jobqueue on
  SLURM. Every worker needs this package installed. ``"local-dask"`` starts a throw-away
  ``LocalCluster`` (used by the tests).

Why Dask and not Ray: the points are independent, coarse-grained subprocess runs, so all a sweep needs
is "run this function on some worker and give me its result"; ``distributed`` is pure Python (one
``pip install "toymodels[sweep]"``), its ``LocalCluster`` runs in-process for tests, and HPC users can
reach SLURM/PBS clusters through dask-jobqueue. Ray brings a large binary runtime and its own object
store that this workload never uses.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .._io import atomic_write, to_jsonable, write_json
from ..errors import ConfigError, RunError, check_int

__all__ = ["SweepPoint", "parse_grid", "expand", "run_point", "run_sweep", "visible_gpus"]


@dataclass(frozen=True)
class SweepPoint:
    """One run: ``python -m module *args --k v ... --seed seed --json``."""

    module: str
    args: tuple[str, ...]
    params: tuple[tuple[str, str], ...]
    seed: int

    def argv(self) -> list[str]:
        out = [sys.executable, "-m", self.module, *self.args]
        for k, v in self.params:
            out += [f"--{k}", v]
        return out + ["--seed", str(self.seed), "--json"]

    @property
    def key(self) -> str:
        """Stable identifier of the point (hash of module, args, params, seed)."""
        blob = json.dumps([self.module, list(self.args), list(self.params), self.seed])
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"module": self.module, "args": list(self.args), "params": dict(self.params), "seed": self.seed}


def parse_grid(specs: Iterable[str]) -> dict[str, list[str]]:
    """``["eps=2/255,4/255", "attack=fgsm,fgsm-rs"]`` → ``{"eps": [...], "attack": [...]}`` (ordered)."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip().lstrip("-")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name or not vals:
            raise ConfigError("grid", "must look like NAME=V1,V2,...", spec)
        if name in ("seed", "json"):
            raise ConfigError("grid", f"must not set {name}: the sweep sets it per point (use --seeds N or "
                              "--seed-list for seeds)", spec)
        if name in grid:
            raise ConfigError("grid", f"must name each axis once; {name!r} is given twice", spec)
        grid[name] = vals
    return grid


def expand(module: str, args: Sequence[str], grid: dict[str, list[str]], seeds: Sequence[int]) -> list[SweepPoint]:
    """The Cartesian product of the grid axes (in the given order) and the seeds (innermost)."""
    names = list(grid)
    points = []
    for combo in itertools.product(*(grid[n] for n in names)):
        for s in seeds:
            points.append(SweepPoint(module, tuple(args), tuple(zip(names, combo)), int(s)))
    return points


def run_point(point: SweepPoint, timeout: float | None = None, env: dict | None = None) -> dict:
    """Run one point in a subprocess; return ``{"point", "returncode", "result" | "error", "runtime_s"}``.

    Module-level and dependency-free so that Dask can ship it to a remote worker."""
    t0 = time.perf_counter()
    run_env = dict(os.environ)
    run_env.update(env or {})
    try:
        proc = subprocess.run(point.argv(), capture_output=True, text=True, timeout=timeout, env=run_env)
    except subprocess.TimeoutExpired:
        return {"point": point.describe(), "key": point.key, "returncode": None,
                "error": f"timed out after {timeout} s", "runtime_s": time.perf_counter() - t0}
    out = {"point": point.describe(), "key": point.key, "returncode": proc.returncode,
           "runtime_s": time.perf_counter() - t0}
    if proc.returncode == 0:
        try:
            out["result"] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            out["returncode"] = -1
            out["error"] = "run did not print a JSON object"
    else:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        out["error"] = lines[-1] if lines else f"exit status {proc.returncode}"
    return out


@dataclass
class SweepReport:
    points: list[dict] = field(default_factory=list)
    skipped: int = 0
    executor: str = "local"

    @property
    def n_failed(self) -> int:
        return sum(1 for p in self.points if p.get("returncode") != 0)


def visible_gpus() -> list[str]:
    """The GPUs local workers can be given: the entries of ``CUDA_VISIBLE_DEVICES`` when it is set, else
    ``0 .. n−1`` with n from torch when it is installed (imported here only), else none."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _local_map(fn: Callable[..., dict], points: list[SweepPoint], workers: int, gpus: Sequence[str] = ()):
    """Run ``fn`` over ``points`` on ``workers`` threads (each just waits on its subprocess). With two or
    more ``gpus``, a point runs with ``CUDA_VISIBLE_DEVICES`` set to one GPU that no other running point
    holds while there are at least as many GPUs as workers (else the GPUs are shared round-robin), so that
    several local workers do not all land on the first GPU."""
    import queue

    slots = None
    if len(gpus) >= 2 and workers >= 2:
        slots = queue.Queue()
        for i in range(workers):
            slots.put(gpus[i % len(gpus)])

    def task(p):
        if slots is None:
            return fn(p)
        gpu = slots.get()
        try:
            return {**fn(p, env={"CUDA_VISIBLE_DEVICES": gpu}), "gpu": gpu}
        finally:
            slots.put(gpu)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(task, p) for p in points]
        for fut in as_completed(futures):
            yield fut.result()


def _dask_map(fn: Callable[[SweepPoint], dict], points: list[SweepPoint], address: str, workers: int):
    try:
        from distributed import Client, LocalCluster, as_completed as dask_as_completed
    except ImportError as exc:
        raise RunError("a Dask cluster needs distributed, which is not installed: pip install "
                       "'toymodels[sweep]' (dask[distributed])") from exc
    cluster = None
    if address == "local-dask":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=False,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(address, timeout=10)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError("cluster", f"must be the address of a reachable Dask scheduler ({exc})",
                              address) from None
    try:
        # pure=False: two identical points (never produced by expand) would still both run
        futures = client.map(fn, points, pure=False)
        for fut in dask_as_completed(futures):
            yield fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_sweep(points: list[SweepPoint], *, out: str | os.PathLike | None = None, cluster: str | None = None,
              workers: int = 1, timeout: float | None = None, on_result: Callable[[dict], None] | None = None,
              runner: Callable[..., dict] = run_point, gpus: Sequence[str] | str | None = "auto") -> SweepReport:
    """Run ``points`` (skipping those already finished in ``out``) and collect their results.

    Parameters
    ----------
    points : from :func:`expand`
    out : directory for ``points/<key>.json`` and ``results.jsonl`` (None: keep in memory only)
    cluster : None (local), a Dask scheduler address, or ``"local-dask"``
    workers : concurrent points (local) or LocalCluster workers (``"local-dask"``)
    timeout : seconds per point (None: no limit)
    gpus : local executor only: GPU ids handed out to the workers, one per running point
        (:func:`_local_map`); ``"auto"`` = :func:`visible_gpus` when ``workers`` ≥ 2, None or ``()``: none
    """
    check_int("workers", workers, 1)
    report = SweepReport(executor="local" if cluster is None else f"dask:{cluster}")
    todo = []
    pdir = None if out is None else Path(out) / "points"
    for p in points:
        f = None if pdir is None else pdir / f"{p.key}.json"
        if f is not None and f.exists():
            try:
                done = json.loads(f.read_text())
            except json.JSONDecodeError:
                done = None
            if done is not None and done.get("returncode") == 0:
                report.points.append(done)
                report.skipped += 1
                continue
        todo.append(p)

    def fn(p, **kw):
        return runner(p, **kw) if timeout is None else runner(p, timeout=timeout, **kw)

    if gpus == "auto":
        gpus = visible_gpus() if (cluster is None and workers >= 2) else ()
    results = (_local_map(fn, todo, workers, tuple(gpus or ())) if cluster is None
               else _dask_map(fn, todo, cluster, workers))
    for res in results:
        res = to_jsonable(res)
        if pdir is not None:
            write_json(pdir / f"{res['key']}.json", res)
        report.points.append(res)
        if on_result is not None:
            on_result(res)
    order = {p.key: i for i, p in enumerate(points)}
    report.points.sort(key=lambda r: order.get(r["key"], len(order)))
    if out is not None:
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in report.points)
        atomic_write(Path(out) / "results.jsonl", lambda fh: fh.write(text.encode()))
    return report
