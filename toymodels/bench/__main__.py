"""``python -m toymodels.bench [--json] [--repeats R] [--quick] [NAME ...]``: numba kernels vs their
numpy references on fixed workloads (see :mod:`toymodels.bench` and :mod:`toymodels.bench.dln`)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from .._cli import Parser, add_common, check_int_range, check_positive, emit_json, progress, run_main

PROG = "python -m toymodels.bench"


def build_parser() -> Parser:
    from . import load_builtin

    reg = load_builtin()
    lines = "\n".join(f"  {w.name:<28} {w.description} (target: {_target_str(w.target_speedup, w.target_metric)})"
                      for w in reg.values())
    import argparse

    p = Parser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
               description="Time each numba kernel against its plain-numpy reference on fixed workloads "
                           "(compilation excluded and reported separately as compile_s; best of "
                           "--repeats).",
               epilog="workloads:\n" + lines)
    p.add_argument("names", nargs="*", metavar="NAME", help="workloads to run (default: all)")
    p.add_argument("--repeats", type=int, default=3,
                   help="repeats per timing, best one reported (default: 3; the numpy reference stops "
                        "early once it has used --numpy-budget seconds)")
    p.add_argument("--numpy-budget", type=float, default=10.0, metavar="SECONDS",
                   help="time budget per workload for the numpy reference's repeats (default: 10; it "
                        "always runs once)")
    p.add_argument("--quick", action="store_true",
                   help="divide all step counts by 10 (smoke test); targets become not applicable")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="numba threads for the parallel kernels (default: numba's, i.e. "
                        "NUMBA_NUM_THREADS or the number of cores)")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    add_common(p, seed=False, out=True)
    return p


def _target_str(target, metric: str) -> str:
    if target is None:
        return "-"
    return f">={target:g}x" + ("" if metric == "speedup" else " (par)")


def _fmt_s(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def format_table(rows: list[dict]) -> str:
    head = ("name", "numpy_s", "numba_s", "speedup", "compile_s", "target", "met")
    body = []
    for r in rows:
        tgt = _target_str(r["target_speedup"], r["target_metric"])
        if r["target_speedup"] is not None and not r["target_applicable"]:
            tgt += " n/a"
        met = {True: "yes", False: "NO", None: "-"}[r["meets_target"]]
        body.append((r["name"], _fmt_s(r["numpy_s"]) + ("*" if r.get("numpy_estimated") else ""),
                     _fmt_s(r["numba_s"]), f"{r['speedup']:.1f}x", _fmt_s(r["compile_s"]), tgt, met))
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    lines = [fmt(head), fmt(tuple("-" * w for w in widths))] + [fmt(b) for b in body]
    return "\n".join(lines)


def format_notes(rows: list[dict], repeats: int) -> list[str]:
    notes = []
    for r in rows:
        if "parallel_speedup" in r:
            notes.append(f"{r['name']}: serial_s={r['serial_s']:.4f} ({r.get('runs', '?')} x _run), parallel_s="
                         f"{r['parallel_s']:.4f} (_run_many), parallel_speedup={r['parallel_speedup']:.2f}x "
                         f"(the target column's '(par)': {_target_str(r['target_speedup'], 'speedup')} on "
                         f"{r.get('numba_threads', '?')} numba threads)")
            used, thr = r.get("parallel_cores_used"), r.get("numba_threads") or 1
            if used is not None and thr >= 2 and used < 0.8 * min(thr, r.get("runs", thr)):
                notes.append(f"{r['name']}: WARNING the parallel run got only {used:.2f} cores' worth of "
                             f"CPU time for {thr} threads (other processes busy): parallel_speedup is "
                             f"not meaningful on this run")
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
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    from . import LOAD_ERRORS, BenchContext, device_info, numba_threads, run_workload, select

    args = build_parser().parse_args(argv)
    check_int_range("--repeats", args.repeats, 1)
    check_positive("--numpy-budget", args.numpy_budget)
    if args.threads is not None:
        import numba

        check_int_range("--threads", args.threads, 1, numba.config.NUMBA_NUM_THREADS)
        numba.set_num_threads(args.threads)
    wls = select(args.names)
    if args.list:
        for w in wls:
            print(f"{w.name}\t{w.description}\ttarget {_target_str(w.target_speedup, w.target_metric)}")
        return 0
    ctx = BenchContext(repeats=args.repeats, quick=args.quick, numpy_budget_s=args.numpy_budget)
    load_before = _loadavg()
    rows = []
    with progress(len(wls), disable=args.json, desc="bench", unit="workload") as bar:
        for w in wls:
            bar.set_postfix_str(w.name)
            rows.append(run_workload(w, ctx))
            bar.update(1)
    dev = device_info()
    out = {"workloads": rows, "device": dev["device"], "cpu_model": dev["cpu_model"],
           "cpu_count": dev["cpu_count"], "usable_cores": dev["usable_cores"],
           "numba_threads": numba_threads(), "load_avg_1min": [load_before, _loadavg()],
           "load_errors": dict(LOAD_ERRORS),
           "python": sys.version.split()[0],
           "numba_version": _version("numba"), "numpy_version": _version("numpy"),
           "config": {"names": [w.name for w in wls], "repeats": args.repeats, "quick": args.quick,
                      "numpy_budget_s": args.numpy_budget, "threads": args.threads,
                      "step_divisor": 10 if args.quick else 1}}
    if args.out:
        from .._io import write_json
        from .. import __version__

        write_json(Path(args.out) / "bench.json", {**out, "version": __version__})
    if args.json:
        emit_json(out)
        return 0
    print(f"device: {dev['device']}, numba threads: {out['numba_threads']}, repeats: {args.repeats}"
          + (" (--quick: steps / 10, targets not applicable)" if args.quick else ""))
    print(format_table(rows))
    for line in format_notes(rows, args.repeats):
        print("  " + line)
    for mod, err in LOAD_ERRORS.items():
        print(f"  WARNING workload module {mod} failed to import ({err}); its workloads were skipped")
    busy = max((x for x in out["load_avg_1min"] if x is not None), default=None)
    if busy is not None and busy > 0.5:
        print(f"  note: 1-min load average {busy:.2f} during the run: other processes shared the CPU, "
              "timings (parallel_speedup above all) may be pessimistic")
    if args.out:
        print(f"wrote {Path(args.out) / 'bench.json'}")
    return 0


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


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog=PROG))
