"""``python -m toymodels.sde`` as a user runs it: JSON contract, --out, exit 2 on bad input,
divergence reporting; plus the SGD/SDE/GF comparison on a small problem."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from toymodels._cli import run_main
from toymodels.sde import __main__ as cli
from toymodels.sde.dln import SDEDLNConfig, compare

SMALL = ["--n", "20", "--d", "30", "--k", "3", "--n-test", "50", "--steps", "400", "--lr", "0.1",
         "--record-every", "10"]


def test_json_one_object_with_documented_keys(tmp_path):
    p = subprocess.run([sys.executable, "-m", "toymodels.sde", "dln", *SMALL, "--json", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["version"] and out["model"] == "dln"
    c = out["config"]
    assert (c["n"], c["d"], c["k"], c["steps"], c["substeps"], c["seed"]) == (20, 30, 3, 400, 10, 0)
    assert c["c"] == pytest.approx(19 / 400)
    for name in ("sgd", "sde", "gf"):
        r = out[name]
        assert {"train_loss", "test_loss", "rank_jacobian", "l0"} <= set(r)
        assert 0 <= r["rank_jacobian"] <= 60 and 0 <= r["l0"] <= 30
    assert out["rank_jacobian_init"] == 30 and out["l0_init"] == 0       # v₀ = 0: φ = [0, X diag(u₀)]
    assert json.loads((tmp_path / "sde_dln.json").read_text())["sgd"] == out["sgd"]
    z = np.load(tmp_path / "sde_dln.npz")
    assert z["sde_beta"].shape == (30,) and z["gf_curve_train"].size == 41


@pytest.mark.parametrize("args,param", [
    (["dln", "--lr", "0"], "lr"), (["dln", "--steps", "0"], "steps"), (["dln", "--substeps", "0"], "substeps"),
    (["dln", "--c", "-1"], "c"), (["dln", "--k", "500"], "k"), (["dln", "--rank-tol", "0"], "rank_tol"),
    (["dln", "--n", "1"], "n"), (["dln", "--u0", "nan"], "u0"), (["relu4"], "MODEL"), ([], "MODEL"),
    (["dln", "--steps", "x"], "--steps"),
])
def test_bad_input_exits_2_with_one_line(args, param, capsys):
    try:
        rc = run_main(cli.main, args, prog=cli.PROG)
    except SystemExit as exc:           # argparse errors exit through Parser.error
        rc = exc.code
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and param in lines[0], err


def test_divergence_reported_with_its_step(capsys):
    rc = run_main(cli.main, ["dln", "--n", "20", "--d", "30", "--k", "3", "--steps", "200", "--lr", "1.0",
                             "--json"], prog=cli.PROG)
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["sgd"]["diverged"] and out["sgd"]["diverged_at"] is not None
    assert out["sgd"]["train_loss"] is None           # inf → null in strict JSON


def test_sde_tracks_sgd_and_gf_does_not_sparsify():
    """Small instance of the Fig. 6.9 claim (n=40, d=100, r=8, η=0.2, T=4000; a deterministic scenario
    at seed 0, not a Monte-Carlo test): SGD and its SDE model (with the derived c, not tuned) both reach
    a sparse predictor near β*, gradient flow from the same init interpolates with a dense one."""
    o = compare(SDEDLNConfig(n=40, d=100, k=8, n_test=200, lr=0.2, steps=4000, seed=0))
    for name in ("sgd", "sde"):
        assert not o[name]["diverged"]
        assert o[name]["test_loss"] < 0.1 * o["gf"]["test_loss"], (name, o[name]["test_loss"], o["gf"]["test_loss"])
        assert o[name]["l0"] < 0.6 * o["gf"]["l0"]
    assert o["gf"]["train_loss"] < 1e-6
