"""Sweeps (toymodels.torch.sweep): grid expansion, resume, failures recorded, local vs Dask executors.

Points run ``python -m toymodels.fgsm`` (cheap, deterministic in its seed), so the checks compare a
sweep's recorded results with direct runs of the same command lines — not with numbers of the sweep
code itself. Sweeps need no torch (nor these tests); the Dask test needs ``distributed``."""
import json
import subprocess
import sys

import pytest
from helpers import run_cli

from toymodels.errors import ConfigError
from toymodels.torch.sweep import expand, parse_grid, run_point, run_sweep

BASE = ["--samples", "200"]


def _direct(d, seed):
    proc = subprocess.run([sys.executable, "-m", "toymodels.fgsm", *BASE, "--d", str(d), "--seed", str(seed),
                           "--json"], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_parse_grid_and_expand_order():
    grid = parse_grid(["d=3,5", "eps=0.1,0.2,0.3"])
    assert grid == {"d": ["3", "5"], "eps": ["0.1", "0.2", "0.3"]}
    pts = expand("toymodels.fgsm", BASE, grid, [0, 1])
    assert len(pts) == 2 * 3 * 2
    assert [dict(p.params) for p in pts[:3]] == [{"d": "3", "eps": "0.1"}] * 2 + [{"d": "3", "eps": "0.2"}]
    assert [p.seed for p in pts[:2]] == [0, 1]
    assert len({p.key for p in pts}) == len(pts)
    argv = pts[0].argv()
    assert argv[1:] == ["-m", "toymodels.fgsm", *BASE, "--d", "3", "--eps", "0.1", "--seed", "0", "--json"]


@pytest.mark.parametrize("spec", ["d", "d=", "=1,2", "seed=1,2", "json=1"])
def test_parse_grid_rejects(spec):
    with pytest.raises(ConfigError, match="^grid "):
        parse_grid([spec])
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["d=1", "d=2"])


def test_local_sweep_matches_direct_runs_and_resumes(tmp_path):
    pts = expand("toymodels.fgsm", BASE, {"d": ["4", "9"]}, [0, 1])
    rep = run_sweep(pts, out=tmp_path, workers=2)
    assert rep.n_failed == 0 and rep.skipped == 0 and len(rep.points) == 4
    # results come back in sweep order and equal a direct run of the same command line
    assert [r["key"] for r in rep.points] == [p.key for p in pts]
    direct = _direct(9, 1)
    assert rep.points[3]["result"]["mc_sq_norm"] == direct["mc_sq_norm"]
    assert rep.points[3]["result"]["config"] == direct["config"]
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["point"]["params"] == {"d": "4"}
    # resume: nothing runs again
    calls = []
    rep2 = run_sweep(pts, out=tmp_path, runner=lambda p: calls.append(p) or run_point(p))
    assert rep2.skipped == 4 and calls == []


def test_failed_point_is_recorded_not_raised(tmp_path):
    pts = expand("toymodels.fgsm", BASE, {"eps": ["-1", "0.1"]}, [0])
    rep = run_sweep(pts, out=tmp_path)
    bad, good = rep.points
    assert bad["returncode"] == 2 and "eps" in bad["error"]
    assert good["returncode"] == 0
    # a failed point is retried on resume, a finished one is not
    rep2 = run_sweep(pts, out=tmp_path)
    assert rep2.skipped == 1


def test_dask_local_cluster_equals_local(tmp_path):
    pytest.importorskip("distributed")
    pts = expand("toymodels.fgsm", BASE, {"d": ["4", "9"]}, [0])
    local = run_sweep(pts, workers=1)
    dask = run_sweep(pts, cluster="local-dask", workers=2)
    assert dask.executor == "dask:local-dask"
    assert [r["result"]["mc_sq_norm"] for r in dask.points] == [r["result"]["mc_sq_norm"] for r in local.points]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "toymodels.torch", "sweep", *args], capture_output=True, text=True)


def test_cli_json_summary(tmp_path):
    proc = _cli("--module", "toymodels.fgsm", "--grid", "d=4,9", "--seeds", "2", "--metric", "mc_sq_norm",
                "--out", str(tmp_path), "--json", "--", *BASE)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["n_points"] == 4 and out["n_failed"] == 0
    rows = {r["params"]["d"]: r for r in out["summary"]}
    vals = [p["result"]["mc_sq_norm"] for p in out["points"] if p["point"]["params"]["d"] == "9"]
    assert rows["9"]["n"] == 2 and rows["9"]["mean"] == pytest.approx(sum(vals) / 2, rel=1e-12)


def test_cli_dry_run_honours_json():
    r = run_cli("toymodels.torch", ["sweep", "--module", "toymodels.fgsm", "--grid", "d=4,9", "--seed-list", "3,7",
                                    "--dry-run", "--json", "--", *BASE])
    assert r.rc == 0, r.err
    out = r.json
    assert out["dry_run"] is True and out["n_points"] == 4 and out["config"]["seeds"] == [3, 7]
    assert out["points"][1]["argv"] == ["python", "-m", "toymodels.fgsm", *BASE, "--d", "4", "--seed", "7", "--json"]
    human = run_cli("toymodels.torch", ["sweep", "--module", "toymodels.fgsm", "--grid", "d=4,9", "--dry-run",
                                        "--", *BASE])
    assert human.out.splitlines()[0] == "python -m toymodels.fgsm --samples 200 --d 4 --seed 0 --json"


@pytest.mark.parametrize("args,needle", [
    (["--"], "BASE"),                                                   # no base command for toymodels.torch
    (["--", "sweep", "--grid", "d=1"], "BASE"),                         # a sweep of sweeps
    (["--module", "toymodels.fgsm", "--", "--seed", "3"], "BASE"),      # the sweep sets --seed
    (["--module", "toymodels.fgsm", "--grid", "d=1", "--grid", "d=2"], "--grid"),
    (["--module", "toymodels.fgsm", "--grid", "seed=1,2"], "--grid"),
])
def test_cli_cross_field_errors_exit_2(args, needle):
    r = run_cli("toymodels.torch", ["sweep", *args])
    assert r.rc == 2 and len(r.err_lines) == 1 and needle in r.err and r.out == "", r.err


def test_cli_failed_points_give_exit_1_with_the_result(tmp_path):
    r = run_cli("toymodels.torch", ["sweep", "--module", "toymodels.fgsm", "--grid", "eps=-1,0.1", "--json",
                                    "--out", tmp_path, "--", *BASE])
    assert r.rc == 1 and len(r.err_lines) == 1 and "1 of 2 points failed" in r.err
    out = r.json
    assert out["n_failed"] == 1 and (tmp_path / "result.json").exists() and (tmp_path / "results.jsonl").exists()


def test_local_workers_get_distinct_gpus(tmp_path):
    """Two workers, GPUs 0 and 1: each running point has CUDA_VISIBLE_DEVICES set to one GPU, and two
    points that run at the same time never share one (the runner records the overlap)."""
    import threading
    import time as _time

    from toymodels.torch.sweep import expand, run_sweep

    lock, running, seen = threading.Lock(), set(), []

    def runner(p, env=None):
        gpu = env["CUDA_VISIBLE_DEVICES"]
        with lock:
            assert gpu not in running
            running.add(gpu)
            seen.append(gpu)
        _time.sleep(0.05)
        with lock:
            running.discard(gpu)
        return {"point": p.describe(), "key": p.key, "returncode": 0, "result": {}, "runtime_s": 0.05}

    pts = expand("toymodels.fgsm", [], {"d": ["3", "5", "7"]}, [0, 1])
    rep = run_sweep(pts, workers=2, runner=runner, gpus=("0", "1"))
    assert rep.n_failed == 0 and sorted(seen) == sorted(r["gpu"] for r in rep.points)
    assert set(seen) == {"0", "1"} and len(seen) == 6
    # one worker, or gpus=(): no CUDA_VISIBLE_DEVICES is set
    rep = run_sweep(pts, workers=1, runner=lambda p: {"point": p.describe(), "key": p.key, "returncode": 0},
                    gpus=("0", "1"))
    assert rep.n_failed == 0 and all("gpu" not in r for r in rep.points)


def test_visible_gpus_reads_cuda_visible_devices(monkeypatch):
    from toymodels.torch.sweep import visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
