"""Benchmarks of the numba kernels against their plain-numpy references: ``python -m toymodels.bench``.

Every workload is a fixed, deterministic problem (documented in the module that defines it, e.g.
:mod:`toymodels.bench.dln`) timed on the kernel call itself, not on the Python wrappers:

* ``numpy_s`` / ``numba_s`` — best wall-clock time over ``--repeats`` repeats (default 3), each on a
  freshly copied initial state with the same data and the same pre-drawn mini-batches. The numpy
  reference stops repeating early once its repeats have used ``numpy_budget_s`` seconds; the number
  it actually ran is reported as ``numpy_repeats`` (and noted below the table).
* ``compile_s`` — the first call of the kernel in this process, on a tiny input with exactly the
  argument types of the timed calls, so that no timed call compiles. With numba's on-disk cache
  (``cache=True``) this is the cache load rather than a full compile; ``compile_cached`` says which.
* ``speedup = numpy_s / numba_s``; ``meets_target`` compares it (or ``parallel_speedup`` for the
  ensemble workload, see ``target_metric``) with ``target_speedup``. Under ``--quick`` (step counts
  divided by 10, for smoke tests) targets are not applicable: ``meets_target`` is ``null``.

Besides these hand-written workloads, every case of the kernel registry
(:func:`toymodels.kernels.registry`, filled by each package's ``_reference.CASES``) is a workload
``kernels.<case>`` (:mod:`toymodels.bench.kernels`): the kernel against its numpy reference on the
case's ``"bench"`` arguments (``"small"`` under ``--quick``). A new kernel is benchmarked as soon as
it is registered.

Adding a workload for another model: in ``toymodels/bench/<model>.py`` decorate a function
``fn(ctx: BenchContext) -> dict`` with :func:`workload` and add the module to ``BUILTIN_MODULES``.
The function returns at least ``numpy_s``, ``numba_s`` and ``compile_s`` (plus free-form problem
sizes such as ``steps``, ``n``, ``d``, and ``notes``: a list of lines printed below the table, e.g. a
baseline that was skipped); :func:`run_workload` adds the name, speed-up and target. A workload that
needs an optional module declares it (``needs=("torch",)``): without the module it is reported as
skipped (``skipped``: the reason), with no numbers, and the others run. Optional modules (torch) are
imported inside the workload functions, never at module level.
"""
from __future__ import annotations

import importlib
import os
import platform
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..optional import install_hint, missing_modules

__all__ = [
    "Workload", "BenchContext", "Timing", "WORKLOADS", "BUILTIN_MODULES", "LOAD_ERRORS", "workload", "load_builtin",
    "best_of", "timed", "first_call", "run_workload", "device_info", "numba_threads", "select", "groups",
    "skipped_row", "failed_row",
]

#: modules whose import registers workloads (in this order, which is also the table order)
BUILTIN_MODULES: tuple[str, ...] = tuple(f"toymodels.bench.{m}" for m in (
    "dln", "fgsm", "cnn", "relu", "quad1d", "sde", "square", "sam_convergence", "sharpness", "torch_dln",
    "torch_train", "co_methods", "attacks", "curvature", "kernels"))


@dataclass(frozen=True)
class Workload:
    """One registered benchmark. ``target_speedup`` applies to the result key ``target_metric``."""

    name: str
    func: Callable[["BenchContext"], dict]
    target_speedup: float | None
    target_metric: str = "speedup"
    description: str = ""
    #: the target only makes sense with at least this many numba threads (parallel workloads)
    min_threads: int = 1
    #: optional modules the workload needs (e.g. ``("torch",)``); without them it is skipped
    needs: tuple[str, ...] = ()

    def listing(self) -> dict:
        """What ``--list`` shows of the workload."""
        missing = missing_modules(self.needs)
        return {"name": self.name, "description": self.description, "target_speedup": self.target_speedup,
                "target_metric": self.target_metric, "needs": list(self.needs),
                "available": not missing}


#: name -> Workload, in registration order
WORKLOADS: dict[str, Workload] = {}


def workload(name: str, *, target: float | None, metric: str = "speedup", description: str = "",
             min_threads: int = 1, needs: tuple[str, ...] = ()):
    """Decorator registering ``fn(ctx) -> dict`` as the workload ``name``."""

    def deco(fn: Callable[[BenchContext], dict]):
        if name in WORKLOADS:
            raise ValueError(f"benchmark workload {name!r} registered twice")
        WORKLOADS[name] = Workload(name, fn, target, metric, description or (fn.__doc__ or "").strip(),
                                   min_threads, tuple(needs))
        return fn

    return deco


#: module -> "ExceptionType: message" for workload modules that failed to import (their workloads
#: are missing; the others still run, and the CLI reports these under ``load_errors``)
LOAD_ERRORS: dict[str, str] = {}


def load_builtin() -> dict[str, Workload]:
    for mod in BUILTIN_MODULES:
        if mod in LOAD_ERRORS:
            continue
        try:
            importlib.import_module(mod)
        except Exception as exc:  # one broken model must not take the other benchmarks down
            LOAD_ERRORS[mod] = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return WORKLOADS


@dataclass
class BenchContext:
    """Run-wide settings handed to every workload."""

    repeats: int = 3
    quick: bool = False
    #: the numpy reference stops repeating once its repeats took this long (it always runs once)
    numpy_budget_s: float = 10.0

    def steps(self, full: int) -> int:
        """The step count of a workload: ``full``, or ``full // 10`` under ``--quick``."""
        return max(1, full // 10) if self.quick else full


@dataclass
class Timing:
    """Result of :func:`best_of`: the best wall-clock time, the process CPU time (all threads) of
    that repeat, how many repeats ran, and the arguments of the last repeat (to check outputs)."""

    best_s: float
    cpu_s: float
    repeats: int
    args: Any

    @property
    def cores_used(self) -> float:
        """CPU time / wall time of the best repeat: ≈ the number of busy threads on an idle
        machine, less when other processes compete for the cores."""
        return self.cpu_s / self.best_s if self.best_s > 0 else float("nan")


def timed(call: Callable[..., Any], setup: Callable[[], tuple], repeats: int,
          budget_s: float | None = None) -> Timing:
    """Best wall-clock time of ``call(*setup())`` over ``repeats`` repeats (``setup`` is not timed),
    with the process CPU time of that repeat. With ``budget_s``, stop after the first repeat that
    brings the total past the budget."""
    best, cpu, total, done, args = float("inf"), float("nan"), 0.0, 0, None
    for _ in range(max(1, int(repeats))):
        args = setup()
        c = time.process_time()
        t = time.perf_counter()
        call(*args)
        dt = time.perf_counter() - t
        dc = time.process_time() - c
        if dt < best:
            best, cpu = dt, dc
        total, done = total + dt, done + 1
        if budget_s is not None and total >= budget_s:
            break
    return Timing(best, cpu, done, args)


def best_of(call: Callable[..., Any], setup: Callable[[], tuple], repeats: int,
            budget_s: float | None = None) -> tuple[float, int, Any]:
    """:func:`timed` as ``(best_s, repeats_run, args_of_last_repeat)``."""
    t = timed(call, setup, repeats, budget_s)
    return t.best_s, t.repeats, t.args


_FIRST_CALL: dict[str, tuple[float, bool | None]] = {}


def _cache_hits(dispatcher) -> int | None:
    try:
        return int(sum(dispatcher.stats.cache_hits.values()))
    except Exception:  # not a numba dispatcher, or an API change
        return None


def first_call(key: str, dispatcher, args: tuple) -> tuple[float, bool | None]:
    """Time the first call of a numba ``dispatcher`` in this process (memoized under ``key``).

    Returns ``(seconds, from_cache)``: ``from_cache`` is True when numba loaded the machine code
    from its on-disk cache instead of compiling (None if unknown). Later calls with the same key
    return the first measurement: the one-time cost is paid once per process."""
    if key not in _FIRST_CALL:
        hits = _cache_hits(dispatcher)
        t = time.perf_counter()
        dispatcher(*args)
        dt = time.perf_counter() - t
        after = _cache_hits(dispatcher)
        _FIRST_CALL[key] = (dt, None if hits is None or after is None else after > hits)
    return _FIRST_CALL[key]


def numba_threads() -> int:
    import numba

    return int(numba.get_num_threads())


def device_info() -> dict:
    """CPU model string and core counts of this machine."""
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    total = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = total
    return {"device": f"{model} ({usable} cores)", "cpu_model": model, "cpu_count": total,
            "usable_cores": usable}


def _empty_row(wl: Workload, **why) -> dict:
    return {"name": wl.name, "numpy_s": None, "numba_s": None, "speedup": None, "compile_s": None,
            "target_speedup": wl.target_speedup, "target_metric": wl.target_metric,
            "target_applicable": False, "meets_target": None, **why, "description": wl.description}


def skipped_row(wl: Workload, reason: str) -> dict:
    """The row of a workload that did not run (``reason``: why, and what to install): no numbers."""
    return _empty_row(wl, skipped=reason)


def failed_row(wl: Workload, error: str) -> dict:
    """The row of a workload that raised (``error``: the exception): no numbers."""
    return _empty_row(wl, error=error)


def run_workload(wl: Workload, ctx: BenchContext) -> dict:
    """Run one workload and add name, speed-up, target and whether it is met; a workload whose
    optional modules are missing is not run (:func:`skipped_row`)."""
    missing = missing_modules(wl.needs)
    if missing:
        return skipped_row(wl, install_hint(missing))
    res = dict(wl.func(ctx))
    if res.get("skipped"):
        return skipped_row(wl, str(res["skipped"])) | {k: v for k, v in res.items() if k != "skipped"
                                                        and v is not None}
    numpy_s, numba_s = float(res["numpy_s"]), float(res["numba_s"])
    speedup = numpy_s / numba_s if numba_s > 0 else float("inf")
    res.setdefault("speedup", speedup)
    threads = numba_threads()
    value = res.get(wl.target_metric)
    # a target on a baseline that did not run (torch_speedup without torch) is not applicable
    applicable = (wl.target_speedup is not None and not ctx.quick and threads >= wl.min_threads
                  and value is not None)
    met = bool(value >= wl.target_speedup) if applicable else None
    out = {"name": wl.name, "numpy_s": numpy_s, "numba_s": numba_s, "speedup": res["speedup"],
           "compile_s": res.get("compile_s"), "target_speedup": wl.target_speedup,
           "target_metric": wl.target_metric, "target_applicable": applicable, "meets_target": met}
    for k, v in res.items():
        out.setdefault(k, v)
    out.setdefault("description", wl.description)
    return out


def groups() -> dict[str, list[str]]:
    """Names that select several workloads: ``kernels`` (every kernel-registry case) and ``torch``
    (the workloads that need torch)."""
    reg = load_builtin()
    return {"kernels": [n for n in reg if n.startswith("kernels.")],
            "torch": [n for n, w in reg.items() if "torch" in w.needs]}


def select(names: Sequence[str]) -> list[Workload]:
    """The workloads named, groups (:func:`groups`) expanded, in the order given without repeats
    (all when empty); an unknown name raises :class:`~toymodels.errors.ConfigError` (field ``names``)."""
    from ..errors import ConfigError

    reg = load_builtin()
    if not names:
        return list(reg.values())
    grp = groups()
    unknown = [n for n in names if n not in reg and n not in grp]
    if unknown:
        broken = f" (modules that failed to import: {', '.join(LOAD_ERRORS)})" if LOAD_ERRORS else ""
        raise ConfigError("names", f"must be workload names or groups from --list{broken}", unknown[0])
    seen: dict[str, Workload] = {}
    for n in names:
        for m in grp.get(n, [n]):
            seen.setdefault(m, reg[m])
    return list(seen.values())


# ---------------------------------------------------------------------------------------------------------
# Honest speed-ups and physical limits (issue 17): the lean baseline, the readable reference, the floor.

#: one core's dgemm peak on the 2-core benchmark machine (issue 17), FLOP/s
PEAK_FLOPS = 76e9
_BANDWIDTH: dict[str, float] = {}


def memory_bandwidth_gbs(mbytes: int = 200, repeats: int = 7) -> float:
    """This machine's copy bandwidth in GB/s (10⁹ bytes read + written per second): the best of
    ``repeats`` ``np.copyto`` of a ``mbytes``-MB float64 array onto another (2·mbytes MB of traffic per
    copy), measured once per process and memoized. Other processes' memory traffic lowers it: on a
    loaded machine it is a pessimistic figure (and the byte floors of :func:`physical_limit` optimistic
    ones)."""
    if "copy" not in _BANDWIDTH:
        import numpy as np

        n = mbytes * 1_000_000 // 8
        src, dst = np.ones(n), np.zeros(n)
        best = float("inf")
        for _ in range(max(1, repeats)):
            t = time.perf_counter()
            np.copyto(dst, src)
            best = min(best, time.perf_counter() - t)
        _BANDWIDTH["copy"] = 2 * n * 8 / best / 1e9
    return _BANDWIDTH["copy"]


def physical_limit(flops_per_step: float, bytes_per_step: float, steps: float, kernel_s: float,
                   note: str = "") -> dict:
    """The ``limit`` field of a result row: the floor time of ``steps`` steps at one core's peak,
    ``floor_s = steps · max(flops_per_step / PEAK_FLOPS, bytes_per_step / bandwidth)`` (bandwidth from
    :func:`memory_bandwidth_gbs`; ``bytes_per_step`` counts the memory traffic a step cannot avoid,
    see each workload's docstring), and ``ratio = kernel_s / floor_s`` (≥ 1; how far the kernel is
    from that floor). ``note`` says which resource bounds the workload and why."""
    bw = memory_bandwidth_gbs()
    flop_s = steps * flops_per_step / PEAK_FLOPS
    byte_s = steps * bytes_per_step / (bw * 1e9)
    floor = max(flop_s, byte_s)
    return {"flops_per_step": float(flops_per_step), "bytes_per_step": float(bytes_per_step),
            "steps": float(steps), "peak_gflops": PEAK_FLOPS / 1e9, "bandwidth_gbs": round(bw, 2),
            "flop_floor_s": flop_s, "byte_floor_s": byte_s, "floor_s": floor,
            "bound": "flops" if flop_s >= byte_s else "bytes",
            "ratio": kernel_s / floor if floor > 0 else None, "note": note}


def lean_fields(baseline: str, lean_s: float, reference_s: float, numba_s: float, **extra) -> dict:
    """The row fields of an honest speed-up: ``numpy_s`` = the lean baseline's time (named by
    ``baseline``, e.g. "lean numpy" or "torch cpu"), ``reference_s`` = the readable reference's,
    ``speedup_vs_reference`` = reference_s / numba_s (the speed-up column itself is numpy_s / numba_s,
    i.e. against the lean baseline)."""
    return {"numpy_s": lean_s, "baseline": baseline, "reference_s": reference_s,
            "speedup_vs_reference": reference_s / numba_s if numba_s > 0 else None,
            "lean_over_reference": lean_s / reference_s if reference_s > 0 else None, **extra}


def audit(res: dict, baseline: str, lean_s: float, reference_s: float, flops_per_step: float,
          bytes_per_step: float, steps: float, note: str = "") -> dict:
    """Add to a workload's result ``res`` (which holds ``numba_s``) the fields of :func:`lean_fields`
    and ``limit`` (:func:`physical_limit`), and one line of ``notes`` saying all of it; returns ``res``."""
    nb_s = float(res["numba_s"])
    res.update(lean_fields(baseline, lean_s, reference_s, nb_s))
    lim = physical_limit(flops_per_step, bytes_per_step, steps, nb_s, note)
    res["limit"] = lim
    line = (f"baseline = {baseline} {lean_s:.4g} s; readable reference {reference_s:.4g} s "
            f"(numba {res['speedup_vs_reference']:.1f}x vs reference); floor {lim['floor_s']:.3g} s "
            f"({lim['bound']}: {flops_per_step:.3g} FLOP, {bytes_per_step:.3g} B per step at "
            f"{lim['peak_gflops']:g} GFLOP/s, {lim['bandwidth_gbs']:g} GB/s), kernel/floor {lim['ratio']:.1f}")
    res["notes"] = [*(res.get("notes") or []), line + (f" - {note}" if note else "")]
    return res
