"""``python -m toymodels.bench``: the structure of its output (never timings), the kernel registry as
workloads, and torch as an optional module (its workloads skipped, never a crash). The CLI contract
(--help, one JSON object, bad values, --out) is tests/test_contract.py's."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from helpers import run_cli

from toymodels import kernels

ROOT = Path(__file__).resolve().parents[1]
NAME = "dln_gd_n80_d200_10k"
OPTIONAL = ("torch", "dask", "distributed")


def _bench(*argv, rc=0):
    r = run_cli("toymodels.bench", argv)
    assert r.rc == rc, r.err[-2000:]
    return r, r.json


def test_bench_quick_json_structure():
    r, out = _bench("--quick", "--json", "--repeats", "2", NAME)
    assert r.rc == 0, r.err
    for key in ("workloads", "device", "numba_threads", "version", "config", "skipped", "errors", "load_errors"):
        assert key in out, key
    assert isinstance(out["device"], str) and out["device"]
    assert out["numba_threads"] >= 1
    assert out["config"]["quick"] is True and out["config"]["names"] == [NAME]
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


def test_every_registered_kernel_is_a_workload():
    """The ``kernels`` group is the kernel registry, whatever the packages have registered: each case
    is timed against its reference (small arguments under --quick) and agrees with it."""
    cases = kernels.registry()
    assert cases
    r, out = _bench("--quick", "--json", "--repeats", "1", "kernels")
    assert r.rc == 0, r.err
    rows = {w["name"]: w for w in out["workloads"]}
    assert set(rows) == {f"kernels.{n}" for n in cases}
    for name, case in cases.items():
        w = rows[f"kernels.{name}"]
        assert w["case"] == name and w["size"] == "small" and w["parity_small"] is True, w
        assert w["numpy_s"] > 0 and w["numba_s"] > 0 and w["speedup"] > 0
        assert (w["rtol"], w["atol"]) == (case.rtol, case.atol)


def test_list_json_names_every_workload_and_the_registry():
    r, out = _bench("--list", "--json")
    assert r.rc == 0, r.err
    names = [w["name"] for w in out["workloads"]]
    assert len(names) == len(set(names))
    assert {f"kernels.{n}" for n in kernels.registry()} <= set(names)
    assert {"torch_dln_ensemble_1sam", "cnn_epoch_fgsm", NAME} <= set(names)
    torch_rows = [w for w in out["workloads"] if "torch" in w["needs"]]
    assert len(torch_rows) == 17               # 4 training/DLN + 4 speed + 2 CO-method + 5 attack + 2 curvature workloads


@pytest.fixture()
def no_torch(monkeypatch):
    """The interpreter as it is without torch, dask and distributed installed: importing them fails
    and ``importlib.util.find_spec`` does not find them."""
    for mod in OPTIONAL:
        monkeypatch.setitem(sys.modules, mod, None)


def test_without_torch_the_torch_workloads_are_skipped(no_torch):
    """The bug of issue 12 (``AttributeError: 'BenchContext' object has no attribute 'notes'``): the
    CNN workload's torch baseline is skipped with a note, the torch workloads are reported as
    skipped with the reason, and the run succeeds."""
    r, out = _bench("--quick", "--json", "--repeats", "1", "torch", "cnn_epoch_fgsm")
    assert r.rc == 0, r.err
    rows = {w["name"]: w for w in out["workloads"]}
    assert set(out["skipped"]) == {n for n in rows if n.startswith("torch_")} and len(out["skipped"]) == 17
    for name in out["skipped"]:
        w = rows[name]
        assert "torch" in w["skipped"] and "pip install" in w["skipped"]
        assert w["numpy_s"] is None and w["numba_s"] is None and w["meets_target"] is None
    cnn = rows["cnn_epoch_fgsm"]
    assert cnn["torch_s"] is None and cnn["numba_s"] > 0 and cnn["numpy_s"] > 0
    assert cnn["target_applicable"] is False and cnn["meets_target"] is None
    assert any("torch" in n for n in cnn["notes"])
    assert not out["errors"]


def test_without_torch_human_output_says_skipped(no_torch):
    r = run_cli("toymodels.bench", ["--quick", "--repeats", "1", "torch_dln_ensemble_1sam"])
    assert r.rc == 0, r.err
    assert "skipped" in r.out and "needs torch" in r.out
    r = run_cli("toymodels.bench", ["--list"])
    assert r.rc == 0 and "skipped here" in r.out


def test_a_failing_workload_is_reported_and_exits_1(monkeypatch):
    import toymodels.bench as bench

    bench.load_builtin()
    wl = bench.WORKLOADS["kernels.quad1d.ensemble"]

    def boom(ctx):
        raise RuntimeError("kernel exploded")

    monkeypatch.setitem(bench.WORKLOADS, wl.name, bench.Workload(wl.name, boom, None))
    r, out = _bench("--quick", "--json", "--repeats", "1", wl.name, "kernels.quad1d.ensemble.points", rc=1)
    assert out["errors"] == {wl.name: "RuntimeError: kernel exploded"}
    assert [w["name"] for w in out["workloads"]] == [wl.name, "kernels.quad1d.ensemble.points"]
    assert out["workloads"][1]["numba_s"] > 0               # the other workload still ran


def _top_level_imports(tree: ast.Module) -> set[str]:
    """Modules imported at module level (also under if/try), not inside functions or classes."""
    names: set[str] = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            todo += node.body + getattr(node, "orelse", []) + getattr(node, "finalbody", [])
            todo += [s for h in getattr(node, "handlers", []) for s in h.body]
    return names


def test_optional_modules_are_never_imported_at_module_level():
    """torch, dask and distributed are optional: only ``toymodels/torch`` may import them at module
    level; everywhere else they are imported inside the function that needs them."""
    offenders = []
    for base in ("toymodels", "figures", "proofs_check"):
        for p in sorted((ROOT / base).rglob("*.py")):
            rel = p.relative_to(ROOT)
            if rel.parts[:2] == ("toymodels", "torch"):
                continue
            bad = _top_level_imports(ast.parse(p.read_text())) & set(OPTIONAL)
            if bad:
                offenders.append(f"{rel}: {sorted(bad)}")
    assert not offenders, offenders
