"""The ``python -m toymodels.dln`` command as a user runs it: JSON contract, human output, --out,
bad input (exit 2, one stderr line naming the parameter), divergence reporting."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

FAST = ["--steps", "3000"]


def run(*args, check_rc=None):
    p = subprocess.run([sys.executable, "-m", "toymodels.dln", *args], capture_output=True, text=True,
                       timeout=300)
    if check_rc is not None:
        assert p.returncode == check_rc, (p.returncode, p.stdout, p.stderr)
    return p


def test_json_is_one_object_with_the_documented_keys():
    p = run("--sam", "1", "--json", *FAST, check_rc=0)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    out = json.loads(lines[0])
    keys = {"method", "config", "train_loss", "test_loss", "beta", "beta_l1", "converged", "diverged",
            "alpha_eff", "alpha_eff_theory", "beta_implicit", "implicit_bias_rel_error",
            "implicit_bias_rel_error_alpha"}
    assert keys <= set(out) and keys <= set(out["baseline"])
    assert out["version"] and out["config"]["sam"] == "1" and out["baseline"]["config"]["sam"] == "none"
    assert out["config"]["lr"] == pytest.approx(1 / 30) and out["config"]["rho"] == pytest.approx(1 / 30)
    assert out["config"]["d"] == 30 and out["config"]["n"] == 20 and out["config"]["steps"] == 3000
    assert len(out["beta"]) == 30 and len(out["alpha_eff"]) == 30
    assert out["method"].startswith("1-SAM") and out["baseline"]["method"].startswith("ERM")
    assert p.stderr == ""  # progress bars are silent under --json


def test_same_seed_same_result_and_no_baseline():
    a = json.loads(run("--sam", "n", "--algo", "sgd", "--batch", "4", "--json", "--no-baseline", *FAST,
                       check_rc=0).stdout)
    b = json.loads(run("--sam", "n", "--algo", "sgd", "--batch", "4", "--json", "--no-baseline", *FAST,
                       check_rc=0).stdout)
    assert a["beta"] == b["beta"] and "baseline" not in a
    c = json.loads(run("--sam", "n", "--algo", "sgd", "--batch", "4", "--json", "--no-baseline", "--seed", "1",
                       *FAST, check_rc=0).stdout)
    assert c["beta"] != a["beta"]


def test_human_output_and_out_dir(tmp_path):
    p = run("--sam", "1", *FAST, "--out", str(tmp_path), check_rc=0)
    assert "1-SAM (GD)" in p.stdout and "ERM (GD)" in p.stdout and "test loss" in p.stdout
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["config"]["sam"] == "1"
    assert (tmp_path / "loss_curves.png").stat().st_size > 1000
    z = np.load(tmp_path / "curves.npz")
    assert z["train_0"].shape == z["steps_0"].shape
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_data_file_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    X, Xt = rng.standard_normal((10, 15)), rng.standard_normal((5, 15))
    b = np.zeros(15)
    b[:2] = 1
    f = tmp_path / "d.npz"
    np.savez(f, X=X, y=X @ b, X_test=Xt, y_test=Xt @ b)
    out = json.loads(run("--data", str(f), "--json", "--no-baseline", *FAST, check_rc=0).stdout)
    assert len(out["beta"]) == 15 and out["config"]["data"] == str(f)


@pytest.mark.parametrize("args,needle", [
    (["--lr", "0"], "lr"), (["--lr", "-1"], "lr"), (["--alpha", "0"], "alpha"), (["--alpha", "-2"], "alpha"),
    (["--rho", "-0.1"], "rho"), (["--k", "31"], "k"), (["--n", "0"], "n"), (["--d", "0"], "d"),
    (["--sam", "2"], "sam"), (["--algo", "adam"], "algo"), (["--steps", "0"], "steps"),
    (["--sam", "m"], "--m"), (["--sam", "m", "--m", "3"], "m"), (["--batch", "3"], "batch"),
    (["--algo", "sgd", "--batch", "0"], "batch"), (["--lr", "nan"], "lr"), (["--rho", "inf"], "rho"),
    (["--schedule", "cosine"], "schedule"), (["--decay-at", "1.5", "--schedule", "step"], "decay"),
    (["--ascent", "independent"], "ascent"), (["--switch-at", "10", "--sam", "none"], "switch_at"),
    (["--steps", "abc"], "--steps"), (["--bogus"], "--bogus"),
])
def test_bad_input_exits_2_with_one_line(args, needle):
    p = run(*args, "--steps", "10") if "--steps" not in args else run(*args)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert needle in lines[0]


def test_bad_data_files(tmp_path):
    X = np.ones((4, 3))
    cases = {
        "missing.npz": None,
        "no_ytest.npz": dict(X=X, y=np.ones(4), X_test=X),
        "mismatch.npz": dict(X=X, y=np.ones(5), X_test=X, y_test=np.ones(4)),
        "nan.npz": dict(X=X * np.nan, y=np.ones(4), X_test=X, y_test=np.ones(4)),
        "dtest.npz": dict(X=X, y=np.ones(4), X_test=np.ones((4, 2)), y_test=np.ones(4)),
    }
    for name, arrays in cases.items():
        f = tmp_path / name
        if arrays is not None:
            np.savez(f, **arrays)
        p = run("--data", str(f), "--steps", "10")
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, (name, p.stderr)
        assert "--data" in p.stderr
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    p = run("--data", str(junk), "--steps", "10")
    assert p.returncode == 2 and "--data" in p.stderr


def test_divergence_is_reported_with_step():
    p = run("--lr", "5", "--alpha", "1", "--json", "--no-baseline", "--steps", "1000", check_rc=0)
    out = json.loads(p.stdout)
    assert out["diverged"] is True and out["converged"] is False
    assert isinstance(out["diverged_at"], int) and out["train_loss"] is None
    assert "diverged at step" in p.stderr


def test_help():
    p = run("--help", check_rc=0)
    for flag in ("--sam", "--rho", "--m", "--lr", "--alpha", "--steps", "--algo", "--batch", "--n", "--d",
                 "--k", "--n-test", "--data", "--switch-at", "--no-baseline", "--seed", "--json", "--out"):
        assert flag in p.stdout
