"""Smoke test of ``python -m toymodels.bench`` (structure only, never timings)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "dln_gd_n80_d200_10k"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "toymodels.bench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_bench_quick_json_structure():
    proc = _run("--quick", "--json", "--repeats", "2", NAME)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one JSON object"
    out = json.loads(lines[0])
    for key in ("workloads", "device", "numba_threads", "version", "config"):
        assert key in out, key
    assert isinstance(out["device"], str) and out["device"]
    assert out["numba_threads"] >= 1
    assert out["config"]["quick"] is True
    (w,) = out["workloads"]
    for key in ("name", "numpy_s", "numba_s", "speedup", "compile_s", "target_speedup", "meets_target",
                "steps", "n", "d", "numpy_repeats"):
        assert key in w, key
    assert w["name"] == NAME
    assert (w["n"], w["d"], w["steps"]) == (80, 200, 1_000)      # 10^4 steps / 10 under --quick
    assert w["record_every"] == w["steps"] // 100
    for key in ("numpy_s", "numba_s", "speedup", "compile_s"):
        assert w[key] > 0, key
    assert w["target_speedup"] == 3.0 and w["meets_target"] is None   # not applicable under --quick
    assert 1 <= w["numpy_repeats"] <= 2
    assert w["max_rel_diff"] < 1e-10                                   # both backends end at the same w


def test_bench_unknown_workload_exits_2_with_one_line():
    proc = _run("--quick", "no_such_workload")
    assert proc.returncode == 2
    assert proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "no_such_workload" in err[0]
