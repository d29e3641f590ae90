"""The numba CNN's evaluation cascade (toymodels.cnn.evaluate) and ``python -m toymodels.cnn evaluate``.

Checks by construction and by re-classification (no numbers of the code under test are asserted):
the cascade is never weaker than the attack it starts with, run alone with the same seed; robust ≤
clean; robust accuracy after each stage is non-increasing; the per-point breaking attack agrees with
re-classifying x_adv; x_adv is feasible. The CLI: smoke run, a real ``train --out`` → ``evaluate
--snapshots`` round trip on the run's own test points, and bad input exiting 2 with one line.
"""
from __future__ import annotations

import numpy as np
import pytest
from helpers import run_cli, small_cnn

from toymodels.cnn import model as cnn
from toymodels.cnn.evaluate import distance, evaluate, load_snapshot
from toymodels.errors import ConfigError


def _problem(N=30, seed=0):
    p, x, _ = small_cnn(seed, N=N, K=10, weight_scale=4.0)
    y = cnn.logits(p, x).argmax(1)
    y[:4] = (y[:4] + 1) % 10                # four points misclassified without attack
    return p, x, y


FAST = dict(steps=10, square_queries=200)


@pytest.mark.parametrize("norm,eps", [("linf", 2 / 255), ("l2", 0.1)])
def test_cascade_invariants(norm, eps):
    p, x, y = _problem()
    r = evaluate(p, x, y, norm=norm, eps=eps, seed=1, **FAST)
    pred = cnn.logits(p, r.x_adv).argmax(1)
    assert r.clean_acc == pytest.approx(np.mean(cnn.logits(p, x).argmax(1) == y))
    after = list(r.robust_after.values())
    assert after == sorted(after, reverse=True) and r.robust_acc == after[-1] <= r.clean_acc
    assert list(r.robust_after) == ["apgd-ce", "apgd-t", "square"]
    # the breaking attack per point agrees with re-classifying the returned x_adv
    assert np.all((r.broken_by == "") == (pred == y))
    assert np.all(r.broken_by[:4] == "clean")
    assert r.robust_acc == pytest.approx(np.mean(r.broken_by == ""))
    assert 0 < r.robust_acc < r.clean_acc            # the radius is neither trivial nor total
    d = distance(r.x_adv, x, norm)
    assert np.all(d <= eps * (1 + 1e-6)) and r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    assert sum(r.invalid.values()) == 0
    assert "n_queries" in r.extra.get("square", {"n_queries": 0})


@pytest.mark.parametrize("first", ["apgd-ce", "apgd-t", "square"])
def test_cascade_never_weaker_than_its_first_attack_alone(first):
    """Stage 1 of the cascade is that attack run alone on the same points with the same seed, and later
    stages only add broken points: robust set of the cascade ⊆ robust set of the attack alone."""
    p, x, y = _problem()
    others = [a for a in ("apgd-ce", "apgd-t", "square") if a != first]
    alone = evaluate(p, x, y, norm="linf", eps=2 / 255, attacks=(first,), seed=2, **FAST)
    full = evaluate(p, x, y, norm="linf", eps=2 / 255, attacks=(first, *others), seed=2, **FAST)
    assert np.all(alone.robust[full.robust])
    assert full.robust_after[first] == alone.robust_acc
    assert full.robust_acc <= alone.robust_acc


def test_fast_version_and_validation():
    p, x, y = _problem(N=10)
    r = evaluate(p, x, y, norm="l2", eps=0.1, version="fast", **FAST)
    assert list(r.robust_after) == ["apgd-ce", "apgd-t"] and r.extra["apgd-t"]["n_target_classes"] == 3
    for kw in (dict(norm="l1", eps=0.1), dict(norm="linf", eps=0.0), dict(norm="linf", eps=2.0),
               dict(norm="linf", eps=0.1, version="slow"), dict(norm="linf", eps=0.1, attacks=("fab-t",))):
        with pytest.raises(ConfigError):
            evaluate(p, x, y, **kw, **FAST)


SMOKE = ["evaluate", "--init", "--dataset", "synthetic", "--n-test", "12", "--n-points", "12", "--steps", "3",
         "--version", "fast", "--square-queries", "20"]


def test_cli_smoke_and_bad_input(tmp_path):
    r = run_cli("toymodels.cnn", SMOKE + ["--json"])
    assert r.rc == 0, r.err
    j = r.json
    assert j["config"]["source"] == "init" and len(j["broken_by_point"]) == 12
    assert j["robust_acc"] <= j["clean_acc"]
    bad = tmp_path / "other.npz"
    np.savez(bad, a=np.zeros(3))
    for extra in (["--eps", "0"], ["--norm", "l3"], ["--version", "slow"], ["--attacks", "fab-t"],
                  ["--epoch", "x"], ["--n-points", "13"], ["--epoch", "0"]):
        r = run_cli("toymodels.cnn", SMOKE + extra)
        assert r.rc == 2 and len(r.err_lines) == 1 and "Traceback" not in r.err, (extra, r.rc, r.err)
    r = run_cli("toymodels.cnn", ["evaluate", "--snapshots", bad, "--dataset", "synthetic"])
    assert r.rc == 2 and "--snapshots" in r.err and len(r.err_lines) == 1, r.err


def test_train_then_evaluate_the_snapshots(tmp_path):
    """``train --out`` then ``evaluate --snapshots``: the run's data (synthetic, its seed and test size)
    are read from result.json; the clean accuracy is that of the final parameters on those points
    (recomputed here from the file and the data), epoch 0 evaluates the initialization, other epochs
    are refused (the file keeps the dense layer only at the start and the end)."""
    from toymodels.datasets import load_images

    out = tmp_path / "run"
    r = run_cli("toymodels.cnn", ["train", "--epochs", "1", "--dataset", "synthetic", "--n-train", "64",
                                  "--n-test", "40", "--n-eval", "16", "--final-n", "16", "--final-pgd-steps", "2",
                                  "--final-restarts", "1", "--eval-pgd-steps", "2", "--batch", "32", "--seed", "3",
                                  "--out", out, "--quiet"])
    assert r.rc == 0, r.err
    snap = out / "snapshots.npz"
    args = ["evaluate", "--snapshots", snap, "--n-points", "20", "--version", "fast", "--steps", "3", "--json"]
    r = run_cli("toymodels.cnn", args)
    assert r.rc == 0, r.err
    j = r.json
    assert (j["config"]["dataset"], j["config"]["data_seed"], j["config"]["n_test"]) == ("synthetic", 3, 40)
    params, epoch, _ = load_snapshot(snap)
    data = load_images("synthetic", n_train=64, n_test=40, seed=3)
    assert epoch == 1
    assert j["clean_acc"] == pytest.approx(cnn.accuracy(params, data.x_test[:20], data.y_test[:20]))
    assert j["config"]["eps"] == pytest.approx(10 / 255)      # the run's ε (synthetic default)
    r0 = run_cli("toymodels.cnn", args + ["--epoch", "0"])
    p0, _, _ = load_snapshot(snap, 0)
    assert r0.rc == 0 and r0.json["clean_acc"] == pytest.approx(cnn.accuracy(p0, data.x_test[:20], data.y_test[:20]))
    r2 = run_cli("toymodels.cnn", args + ["--epoch", "2"])
    assert r2.rc == 2 and "--epoch" in r2.err, r2.err
    # --points final: the 16 points of the run's final evaluation, as train._eval_set draws them
    from toymodels.cnn.train import STREAMS, _eval_set

    rf = run_cli("toymodels.cnn", ["evaluate", "--snapshots", snap, "--points", "final", "--attacks", "apgd-ce",
                                   "--steps", "2", "--json"])
    assert rf.rc == 0, rf.err
    ev = _eval_set(data, 16, 10 / 255, 3, STREAMS["final"])
    assert rf.json["n_points"] == 16 and rf.json["config"]["points"] == "final"
    assert rf.json["clean_acc"] == pytest.approx(cnn.accuracy(params, ev.x, ev.y))
    bad = run_cli("toymodels.cnn", ["evaluate", "--snapshots", snap, "--points", "final", "--n-points", "5"])
    assert bad.rc == 2 and "--n-points" in bad.err and len(bad.err.strip().splitlines()) == 1, bad.err
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "s.npz").write_bytes(snap.read_bytes())
    r3 = run_cli("toymodels.cnn", ["evaluate", "--snapshots", lone / "s.npz", "--steps", "2"])
    assert r3.rc == 2 and "--dataset" in r3.err, r3.err
    r4 = run_cli("toymodels.cnn", ["evaluate", "--snapshots", lone / "s.npz", "--dataset", "synthetic",
                                   "--points", "final"])
    assert r4.rc == 2 and "--points" in r4.err, r4.err
