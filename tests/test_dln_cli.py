"""``python -m toymodels.dln`` as a user runs it: what the contract test cannot know — the payload's
keys and values, the human table, the files under ``--out``, ``--data`` files, errors that involve two
options, and divergence reporting. (``--help``, one JSON object, one-line exit-2 errors for every
option, atomic ``--out`` and seeds are checked for every command by tests/test_contract.py and
tests/test_fuzz_cli.py.)"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from helpers import run_cli

from toymodels._cli import Parser
from toymodels.dln.__main__ import add_dln_arguments, config_from_args, data_from_args
from toymodels.dln.train import DLNConfig

FAST = ["--steps", "3000"]


def dln(*args):
    return run_cli("toymodels.dln", [str(a) for a in args])


def test_json_payload_has_the_documented_keys_and_values():
    out = dln("--sam", "1", "--json", *FAST).json
    keys = {"method", "train_loss", "test_loss", "beta", "beta_l1", "converged", "diverged", "alpha_eff",
            "alpha_eff_theory", "beta_implicit", "implicit_bias_rel_error", "implicit_bias_rel_error_alpha"}
    assert keys <= set(out) and keys <= set(out["baseline"])
    assert out["config"]["sam"] == "1" and out["baseline"]["config"]["sam"] == "none"
    assert out["config"]["lr"] == pytest.approx(1 / 30) and out["config"]["rho"] == pytest.approx(1 / 30)
    assert out["baseline"]["config"]["rho"] == 0.0 and out["baseline"]["config"]["seed"] == 0
    assert out["config"]["d"] == 30 and out["config"]["n"] == 20 and out["config"]["steps"] == 3000
    assert len(out["beta"]) == 30 and len(out["alpha_eff"]) == 30
    assert out["method"].startswith("1-SAM") and out["baseline"]["method"].startswith("ERM")
    assert out["test_loss"] < out["baseline"]["test_loss"]


def test_sgd_seeds_and_no_baseline():
    a = dln("--sam", "n", "--algo", "sgd", "--batch", "4", "--json", "--no-baseline", *FAST).json
    assert "baseline" not in a and a["config"]["batch"] == 4 and a["method"] == "n-SAM (SGD B=4)"
    c = dln("--sam", "n", "--algo", "sgd", "--batch", "4", "--json", "--no-baseline", "--seed", "1", *FAST).json
    assert c["beta"] != a["beta"]


def test_human_output_and_out_dir(tmp_path):
    r = dln("--sam", "1", *FAST, "--out", tmp_path)
    assert r.rc == 0, r.err
    assert "1-SAM (GD)" in r.out and "ERM (GD)" in r.out and "test loss" in r.out
    assert "test loss, baseline / method" in r.out and "wrote result.json, curves.npz, loss_curves.png" in r.out
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["config"]["sam"] == "1"
    assert (tmp_path / "loss_curves.png").stat().st_size > 1000
    z = np.load(tmp_path / "curves.npz")
    assert z["train_0"].shape == z["steps_0"].shape and z["steps_0"][0] == 0 and z["steps_0"][-1] == 3000
    assert z["test_1"].shape == z["steps_1"].shape


def test_data_file_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    X, Xt = rng.standard_normal((10, 15)), rng.standard_normal((5, 15))
    b = np.zeros(15)
    b[:2] = 1
    f = tmp_path / "d.npz"
    np.savez(f, X=X, y=X @ b, X_test=Xt, y_test=Xt @ b)
    out = dln("--data", f, "--json", "--no-baseline", *FAST).json
    assert len(out["beta"]) == 15 and out["config"]["data"] == str(f) and "n" not in out["config"]


@pytest.mark.parametrize("args,flag", [
    (["--sam", "m"], "--m"), (["--sam", "m", "--m", "3"], "--m"), (["--sam", "1", "--m", "2"], "--m"),
    (["--batch", "3"], "--batch"), (["--no-replacement"], "--no-replacement"),
    (["--algo", "sgd", "--batch", "21", "--no-replacement"], "--batch"), (["--k", "31"], "--k"),
    (["--decay-at", "0.5"], "--decay-at"), (["--schedule", "step"], "--decay-at"),
    (["--decay-factor", "0.5"], "--decay-factor"), (["--warmup-steps", "10"], "--warmup-steps"),
    (["--warmup-ratio", "0.5"], "--warmup-ratio"), (["--ascent", "independent"], "--ascent"),
    (["--ascent-batch", "2"], "--ascent-batch"), (["--switch-at", "10", "--sam", "none"], "--switch-at"),
    (["--switch-at", "20"], "--switch-at"), (["--record-every", "0"], "--record-every"),
    (["--record-every", "11"], "--record-every"), (["--sam", "none", "--rho", "0.1"], "--rho"),
    (["--sam", "none", "--normalize"], "--normalize"), (["--n", "1000000", "--d", "1000"], "--n"),
])
def test_cross_field_errors_exit_2_naming_the_flag(args, flag):
    """Values each valid alone but not together (or a --record-every of 0, once silently replaced by
    the default): exit 2, one line naming the flag, before any training."""
    r = dln(*args, "--steps", "10")
    assert r.rc == 2 and len(r.err_lines) == 1 and r.out == "", (args, r.err)
    assert flag in r.err_lines[0], (args, r.err)


def test_bad_data_files(tmp_path):
    X = np.ones((4, 3))
    cases = {
        "no_ytest.npz": dict(X=X, y=np.ones(4), X_test=X),
        "mismatch.npz": dict(X=X, y=np.ones(5), X_test=X, y_test=np.ones(4)),
        "nan.npz": dict(X=X * np.nan, y=np.ones(4), X_test=X, y_test=np.ones(4)),
        "dtest.npz": dict(X=X, y=np.ones(4), X_test=np.ones((4, 2)), y_test=np.ones(4)),
    }
    for name, arrays in cases.items():
        f = tmp_path / name
        np.savez(f, **arrays)
        r = dln("--data", f, "--steps", "10")
        assert r.rc == 2 and len(r.err_lines) == 1 and "--data" in r.err, (name, r.err)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    r = dln("--data", junk, "--steps", "10")
    assert r.rc == 2 and "--data" in r.err


def test_divergence_is_a_result_reported_with_its_step():
    r = dln("--lr", "5", "--alpha", "1", "--json", "--no-baseline", "--steps", "1000")
    assert r.rc == 0
    out = r.json
    assert out["diverged"] is True and out["converged"] is False
    assert isinstance(out["diverged_at"], int) and out["train_loss"] is None
    assert f"diverged at step {out['diverged_at']}" in r.err and "--lr" in r.err


def test_options_for_other_commands():
    """``add_dln_arguments`` / ``config_from_args`` / ``data_from_args`` (the torch dln-ensemble command
    offers the same options): the defaults give the headline config."""
    p = Parser(prog="x")
    add_dln_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(["--decay-at", "0.5,0.75", "--schedule", "step"])
    cfg = config_from_args(a)
    assert isinstance(cfg, DLNConfig) and cfg.sam == "1" and cfg.steps == 600_000 and cfg.decay_at == (0.5, 0.75)
    data, _, fields = data_from_args(argparse.Namespace(**{**vars(a), "n": 5}), seed=3)
    assert data.n == 5 and data.d == 30 and fields["n"] == 5
