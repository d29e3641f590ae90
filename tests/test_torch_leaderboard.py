"""``python -m toymodels.torch evaluate`` and ``leaderboard`` on tiny checkpoints (seconds): the JSON the
issue asks for, the ranking and the Ch. 4 sanity checks, the figure, and one-line exit-2 errors for bad
input (ε ≤ 0, unknown norm / attack / version, a non-checkpoint file, an empty folder). The attacks
themselves are checked in tests/test_torch_evaluate.py; the CLI contract in tests/test_contract.py."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import run_cli

torch = pytest.importorskip("torch")

MOD = "toymodels.torch"
FAST = ("--device", "cpu", "--n-points", "40", "--steps", "3", "--queries", "20")


def _checkpoint(path, seed: int, filters: int = 2):
    """A checkpoint as train.py writes it (model_state + config) of a freshly drawn CNN on synthetic data."""
    from toymodels.torch.models import build_model

    torch.manual_seed(seed)
    m = build_model("cnn", 10, 3, 32, filters=filters)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": m.state_dict(), "config": {"model": "cnn", "dataset": "synthetic", "seed": 0,
                                                          "n_train": 64, "filters": filters}}, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    _checkpoint(d / "a.pt", 1)
    _checkpoint(d / "run_b" / "checkpoint.pt", 2)
    _checkpoint(d / "c.pt", 3, filters=3)
    (d / "notes.txt").write_text("not a checkpoint, not a *.pt: ignored")
    return d


def test_evaluate_checkpoint_json(models):
    r = run_cli(MOD, ["evaluate", "--checkpoint", models / "a.pt", *FAST, "--json"])
    assert r.rc == 0, r.err
    j = r.json
    c = j["config"]
    assert (c["model"], c["dataset"], c["version"], c["norm"]) == ("cnn", "synthetic", "standard", "linf")
    assert c["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"] and abs(c["eps"] - 8 / 255) < 1e-15
    assert j["n_points"] == 40 and list(j["robust_acc_after"]) == c["attacks"]
    assert sum(j["broken_by"].values()) == round(40 * (1 - j["robust_acc"]))
    assert j["broken_by"]["clean"] == round(40 * (1 - j["clean_acc"]))
    assert j["robust_acc"] <= j["clean_acc"] and sum(j["invalid"].values()) == 0
    assert j["mean_adv_margin"] <= j["mean_clean_margin"]   # attacks only lower the margin: x_adv = x or broken


def test_evaluate_attacks_and_l2(models):
    r = run_cli(MOD, ["evaluate", "--checkpoint", models / "a.pt", *FAST, "--attacks", "pgd,square", "--norm", "l2",
                      "--json"])
    assert r.rc == 0, r.err
    j = r.json
    assert list(j["robust_acc_after"]) == ["pgd", "square"] and j["config"]["eps"] == 0.5


def test_leaderboard_ranks_every_checkpoint(models, tmp_path):
    r = run_cli(MOD, ["leaderboard", "--models", models, *FAST, "--version", "fast", "--eval-seeds", "3", "--json",
                      "--out", tmp_path / "lb"])
    assert r.rc == 0, r.err
    table = r.json["leaderboard"]
    assert sorted(row["name"] for row in table) == ["a", "c", "run_b"]
    assert [row["rank"] for row in table] == [1, 2, 3]
    keys = [(-row["robust_acc"], -row["clean_acc"], row["name"]) for row in table]
    assert keys == sorted(keys)
    for row in table:
        seeds = np.array(row["robust_acc_seeds"])
        assert seeds.size == 3 and np.isclose(row["robust_acc"], seeds.mean())
        assert np.isclose(row["robust_std"], seeds.std(ddof=1)) and np.isclose(row["robust_spread"], np.ptp(seeds))
        assert row["sanity_ok"] and all(s <= row["clean_acc"] for s in seeds)
    assert r.json["all_sanity_ok"] is True
    png = (tmp_path / "lb" / "leaderboard.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_leaderboard_human_output(models):
    r = run_cli(MOD, ["leaderboard", "--models", models, *FAST, "--version", "fast", "--eval-seeds", "1", "--quiet"])
    assert r.rc == 0, r.err
    assert "rank" in r.out and "run_b" in r.out and r.out.count(" ok") == 3


@pytest.mark.parametrize("argv,flag", [
    (["evaluate", "--model", "cnn", "--eps", "0"], "--eps"),
    (["evaluate", "--model", "cnn", "--eps", "-8/255"], "--eps"),
    (["evaluate", "--model", "cnn", "--norm", "l1"], "--norm"),
    (["evaluate", "--model", "cnn", "--attacks", "apgd-ce,cw"], "--attacks"),
    (["evaluate", "--model", "cnn", "--version", "plus"], "--version"),
    (["evaluate", "--checkpoint", __file__], "--checkpoint"),             # a file, not a checkpoint
    (["leaderboard", "--model", "cnn", "--eval-seeds", "0"], "--eval-seeds"),
])
def test_bad_input_exits_2_with_one_line(argv, flag):
    r = run_cli(MOD, [*argv, "--device", "cpu"])
    assert r.rc == 2 and len(r.err_lines) == 1 and flag in r.err and "Traceback" not in r.err, r.err
    assert r.out == ""


def test_empty_folder_and_bad_checkpoint_in_folder(tmp_path):
    r = run_cli(MOD, ["leaderboard", "--models", tmp_path, "--device", "cpu"])
    assert r.rc == 2 and len(r.err_lines) == 1 and "--models" in r.err, r.err
    _checkpoint(tmp_path / "good.pt", 0)
    (tmp_path / "zz_bad.pt").write_bytes(b"not a torch file")
    r = run_cli(MOD, ["leaderboard", "--models", tmp_path, *FAST])
    # refused before any evaluation: no progress note for good.pt, only the error line
    assert r.rc == 2 and len(r.err_lines) == 1 and "--models" in r.err and "zz_bad.pt" in r.err, r.err
