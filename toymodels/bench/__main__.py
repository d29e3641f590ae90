"""``python -m toymodels.bench [NAME ...]``: numba kernels vs their numpy references on fixed
workloads (see :mod:`toymodels.bench` and :mod:`toymodels.bench.dln`), and every case of the kernel
registry (``kernels``). Workloads that need torch are reported as skipped where it is not installed.
"""
from __future__ import annotations

import argparse
import os
import sys

from .._cli import Choice, Cli, Command, Int, Num, Result

PROG = "python -m toymodels.bench"
SMOKE_WORKLOAD = "kernels.quad1d.ensemble"


def _max_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def add_arguments(p) -> None:
    from . import groups, load_builtin

    names = [*load_builtin(), *groups()]
    p.add_argument("names", nargs="*", default=[], metavar="NAME", type=Choice(*names, metavar="NAME"),
                   help="workloads or groups to run (default: all; see --list). Groups: 'kernels' (every "
                        "case of the kernel registry), 'torch' (the torch workloads)")
    p.add_argument("--repeats", type=Int(1, 100, "each repeat reruns the workload"), default=3, metavar="R",
                   help="repeats per timing in [1, 100], best one reported (default: 3; the numpy reference stops "
                        "early once it has used --numpy-budget seconds)")
    p.add_argument("--numpy-budget", dest="numpy_budget_s", type=Num(0, 86_400, lo_open=True), default=10.0,
                   metavar="SECONDS",
                   help="time budget per workload for the numpy reference's repeats, in (0, 86400] "
                        "(default: 10; it always runs once)")
    p.add_argument("--quick", action="store_true",
                   help="divide all step counts by 10 and time the kernel-registry cases on their small "
                        "arguments (smoke test); targets become not applicable")
    p.add_argument("--threads", type=Int(1, _max_threads(), "the size of numba's thread pool, NUMBA_NUM_THREADS"),
                   default=None, metavar="N",
                   help="numba threads for the parallel kernels (default: numba's, i.e. NUMBA_NUM_THREADS "
                        "or the number of cores)")
    p.add_argument("--list", action="store_true", help="list the workloads (honours --json) and exit")


def _target_str(target, metric: str) -> str:
    if target is None:
        return "-"
    tag = {"speedup": "", "parallel_speedup": " (par)"}.get(metric, f" ({metric})")
    return f">={target:g}x{tag}"


def _fmt_s(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def format_table(rows: list[dict]) -> str:
    head = ("name", "numpy_s", "numba_s", "speedup", "compile_s", "target", "met")
    body = []
    for r in rows:
        tgt = _target_str(r["target_speedup"], r["target_metric"])
        if r["target_speedup"] is not None and not r["target_applicable"]:
            tgt += " n/a"
        if r.get("skipped") or r.get("error"):
            body.append((r["name"], "skipped" if r.get("skipped") else "ERROR", "-", "-", "-", tgt, "-"))
            continue
        met = {True: "yes", False: "NO", None: "-"}[r["meets_target"]]
        body.append((r["name"], _fmt_s(r["numpy_s"]) + ("*" if r.get("numpy_estimated") else ""),
                     _fmt_s(r["numba_s"]), f"{r['speedup']:.1f}x", _fmt_s(r["compile_s"]), tgt, met))
    widths = [max([len(h), *(len(b[i]) for b in body)]) for i, h in enumerate(head)]

    def fmt(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([fmt(head), fmt(tuple("-" * w for w in widths))] + [fmt(b) for b in body])


def _parallel_notes(r: dict) -> list[str]:
    notes = [f"{r['name']}: serial_s={r['serial_s']:.4f} ({r.get('runs', '?')} x run), parallel_s="
             f"{r['parallel_s']:.4f} (run_many), parallel_speedup={r['parallel_speedup']:.2f}x "
             f"(the target column's '(par)': {_target_str(r['target_speedup'], 'speedup')} on "
             f"{r.get('numba_threads', '?')} numba threads)"]
    used, thr = r.get("parallel_cores_used"), r.get("numba_threads") or 1
    if used is not None and thr >= 2 and used < 0.8 * min(thr, r.get("runs", thr)):
        notes.append(f"{r['name']}: WARNING the parallel run got only {used:.2f} cores' worth of CPU time "
                     f"for {thr} threads (other processes busy): parallel_speedup is not meaningful on this run")
    return notes


def format_notes(rows: list[dict], repeats: int) -> list[str]:
    notes = []
    for r in rows:
        if r.get("skipped"):
            notes.append(f"{r['name']}: skipped, {r['skipped']}")
            continue
        if r.get("error"):
            notes.append(f"{r['name']}: ERROR {r['error']}")
            continue
        if "parallel_speedup" in r:
            notes += _parallel_notes(r)
        for key in ("gradalign_over_fgsm", "fused_gradalign_over_fgsm"):
            if r.get(key) is not None:
                goal, met = r.get(f"{key}_goal"), r.get(f"{key}_met")
                verdict = "" if met is None else ("  (met)" if met else "  (NOT met)")
                notes.append(f"{r['name']}: {key} = {r[key]:.2f}" + (f" (goal <= {goal:g})" if goal else "")
                             + verdict)
        if r.get("numpy_estimated"):
            notes.append(f"{r['name']}: * numpy_s estimated as {r.get('numpy_estimate', 'an extrapolation')}")
        if r.get("numpy_repeats", repeats) < repeats:
            notes.append(f"{r['name']}: numpy reference ran {r['numpy_repeats']} of {repeats} repeats "
                         f"(slow; best of those)")
        if r.get("max_rel_diff") is not None and not r["max_rel_diff"] <= 1e-8:
            notes.append(f"{r['name']}: WARNING numba and numpy end at different w "
                         f"(max relative difference {r['max_rel_diff']:.2e})")
        notes += [f"{r['name']}: {n}" for n in r.get("notes") or ()]
    return notes


def _human(out: dict, rows: list[dict], repeats: int, quick: bool) -> None:
    print(f"device: {out['device']}, numba threads: {out['numba_threads']}, repeats: {repeats}"
          + (" (--quick: steps / 10, targets not applicable)" if quick else ""))
    print(format_table(rows))
    for line in format_notes(rows, repeats):
        print("  " + line)
    for mod, err in out["load_errors"].items():
        print(f"  WARNING workload module {mod} failed to import ({err}); its workloads were skipped")
    busy = max((x for x in out["load_avg_1min"] if x is not None), default=None)
    if busy is not None and busy > 0.5:
        print(f"  note: 1-min load average {busy:.2f} during the run: other processes shared the CPU, "
              "timings (parallel_speedup above all) may be pessimistic")


def _list(wls, config: dict) -> Result:
    from . import LOAD_ERRORS

    rows = [w.listing() for w in wls]

    def human():
        for r in rows:
            avail = "" if r["available"] else f"\t(needs {', '.join(r['needs'])}: skipped here)"
            print(f"{r['name']}\t{r['description']}\ttarget {_target_str(r['target_speedup'], r['target_metric'])}"
                  + avail)
        for mod, err in LOAD_ERRORS.items():
            print(f"WARNING workload module {mod} failed to import ({err}); its workloads are missing")

    return Result({"workloads": rows, "load_errors": dict(LOAD_ERRORS)}, config, human=human)


def _run_all(wls, ctx, session) -> list[dict]:
    """One row per workload; a workload that raises is a row with its ``error`` (the others still
    run, and the command exits 1)."""
    from . import failed_row, run_workload

    rows = []
    with session.progress(len(wls), desc="bench", unit="workload") as bar:
        for w in wls:
            bar.set_postfix_str(w.name)
            try:
                rows.append(run_workload(w, ctx))
            except Exception as exc:  # noqa: BLE001 - reported in its row and by the exit status
                if os.environ.get("TOYMODELS_DEBUG"):
                    raise
                rows.append(failed_row(w, f"{type(exc).__name__}: {exc}".replace("\n", " ")))
            bar.update(1)
    return rows


def run(a: argparse.Namespace, session) -> Result:
    """Exit status 1 when a workload raised, or when all workloads were asked for and a workload
    module failed to import (the other workloads still run; ``errors``/``load_errors`` say which)."""
    from . import LOAD_ERRORS, BenchContext, device_info, numba_threads, select

    wls = select(a.names)
    config = {"names": [w.name for w in wls], "repeats": a.repeats, "quick": a.quick,
              "numpy_budget_s": a.numpy_budget_s, "threads": a.threads, "step_divisor": 10 if a.quick else 1}
    if a.list:
        return _list(wls, config)
    import numba

    prev = numba.get_num_threads()
    if a.threads is not None:
        numba.set_num_threads(a.threads)
    try:
        load_before = _loadavg()
        rows = _run_all(wls, BenchContext(repeats=a.repeats, quick=a.quick, numpy_budget_s=a.numpy_budget_s),
                        session)
        dev = device_info()
        out = {"workloads": rows, "skipped": {r["name"]: r["skipped"] for r in rows if r.get("skipped")},
               "errors": {r["name"]: r["error"] for r in rows if r.get("error")},
               "device": dev["device"], "cpu_model": dev["cpu_model"], "cpu_count": dev["cpu_count"],
               "usable_cores": dev["usable_cores"], "numba_threads": numba_threads(),
               "load_avg_1min": [load_before, _loadavg()], "load_errors": dict(LOAD_ERRORS),
               "python": sys.version.split()[0], "numba_version": _version("numba"),
               "numpy_version": _version("numpy")}
    finally:
        numba.set_num_threads(prev)
    # a failure: a workload raised, or the run of every workload misses those of a broken module
    failed = bool(out["errors"]) or (bool(out["load_errors"]) and not a.names)
    return Result(out, config, human=lambda: _human(out, rows, a.repeats, a.quick), exit_code=int(failed))


def _loadavg() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _version(mod: str) -> str | None:
    try:
        return __import__(mod).__version__
    except Exception:
        return None


CLI = Cli(PROG, __doc__, [Command(
    None, "time the numba kernels against their numpy references", add_arguments, run, seed=False,
    random=False, description="Time each numba kernel against its plain-numpy reference on fixed workloads "
                              "(compilation excluded and reported separately as compile_s; best of --repeats). "
                              "Workloads whose optional modules (torch) are missing are reported as skipped. Exit "
                              "status 1 if a workload fails (the others still run).",
    epilog="Example: python -m toymodels.bench --quick kernels dln_gd_n80_d200_10k; --list shows the workloads.",
    smoke=("--quick", "--repeats", "1", SMOKE_WORKLOAD))])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
