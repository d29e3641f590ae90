"""The CO study (``python -m toymodels.cnn co-study``, :mod:`toymodels.cnn.co_study`): the table's
aggregation against hand-made run records, the grid, the goal summary, determinism across worker
counts, the CLI's smoke run and bad input. No training-length runs: the study is a command."""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import run_cli, strip_timings

from toymodels.cnn import co_study as cs
from toymodels.errors import ConfigError

A, B = 32 / 255, 40 / 255

#: the tiny settings of the smoke runs (synthetic data, one epoch)
TINY = dict(dataset="synthetic", epochs=1, n_train=128, n_test=32, n_eval=16, robust_n=16, pgd_steps=2,
            eval_pgd_steps=2, time_images=128, time_repeats=1, workers=1)
TINY_ARGS = ["--dataset", "synthetic", "--epochs", "1", "--n-train", "128", "--n-test", "32", "--n-eval", "16",
             "--robust-n", "16", "--pgd-steps", "2", "--eval-pgd-steps", "2", "--time-images", "128",
             "--time-repeats", "1", "--workers", "1"]


def _rec(method, eps, seed, co=None, clean=0.5, robust=0.2, diverged=False, epoch_cpu=None):
    return {"method": method, "eps": eps, "seed": seed, "co_epoch": co, "diverged": diverged,
            "clean_acc": None if diverged else clean, "robust_acc": None if diverged else robust,
            "train_epoch_cpu_s": epoch_cpu}


def _runs():
    """FGSM at A: CO in seeds 1 and 2 of 0–2; at B: CO in seed 0, seed 2 diverged (and CO'd);
    GradAlign: no CO."""
    return [
        _rec("fgsm", A, 0, None, 0.6, 0.30), _rec("fgsm", A, 1, 7, 0.4, 0.00), _rec("fgsm", A, 2, 11, 0.5, 0.03),
        _rec("fgsm", B, 0, 4, 0.3, 0.00), _rec("fgsm", B, 1, None, 0.5, 0.20), _rec("fgsm", B, 2, 3, diverged=True),
        _rec("gradalign", A, 0, None, 0.5, 0.25), _rec("gradalign", A, 1, None, 0.5, 0.27),
        _rec("gradalign", A, 2, None, 0.5, 0.29),
        _rec("gradalign", B, 0, None, 0.4, 0.20), _rec("gradalign", B, 1, None, 0.4, 0.22),
        _rec("gradalign", B, 2, None, 0.4, 0.24),
    ]


def _row(rows, m, e):
    (r,) = [r for r in rows if r["method"] == m and r["eps"] == e]
    return r


def test_aggregate_against_hand_computed_rows():
    rows = cs.aggregate(_runs(), ("fgsm", "gradalign"), (A, B), {"fgsm": 2.0, "gradalign": 5.0},
                        {"fgsm": 4.0, "gradalign": 6.0})
    assert [(r["method"], r["eps"]) for r in rows] == [("fgsm", A), ("fgsm", B), ("gradalign", A), ("gradalign", B)]
    r = _row(rows, "fgsm", A)
    assert (r["n_runs"], r["n_co"], r["co_seeds"], r["n_diverged"]) == (3, 2, [1, 2], 0)
    assert r["co_rate"] == pytest.approx(2 / 3)
    # clean 0.6, 0.4, 0.5: mean 0.5, sample sd 0.1, s.e. 0.1/√3
    assert r["clean_acc_mean"] == pytest.approx(0.5) and r["clean_acc_se"] == pytest.approx(0.1 / math.sqrt(3))
    # robust 0.30, 0.00, 0.03: mean 0.11, deviations .19, −.11, −.08 → var (.0361+.0121+.0064)/2 = .0273
    assert r["robust_acc_mean"] == pytest.approx(0.11)
    assert r["robust_acc_se"] == pytest.approx(math.sqrt(0.0273 / 3))
    r = _row(rows, "fgsm", B)
    # the diverged run counts as a run (and its CO), not in the accuracy means
    assert (r["n_runs"], r["n_co"], r["co_seeds"], r["n_diverged"]) == (3, 2, [0, 2], 1)
    assert r["clean_acc_mean"] == pytest.approx(0.4) and r["robust_acc_mean"] == pytest.approx(0.1)
    # two values a, b: s.e. = |a − b| / 2
    assert r["clean_acc_se"] == pytest.approx(0.1) and r["robust_acc_se"] == pytest.approx(0.1)
    r = _row(rows, "gradalign", B)
    assert (r["n_co"], r["co_rate"], r["clean_acc_se"]) == (0, 0.0, pytest.approx(0.0, abs=1e-15))
    assert r["robust_acc_se"] == pytest.approx(0.02 / math.sqrt(3))
    assert r["rel_epoch_time"] == pytest.approx(2.5) and _row(rows, "fgsm", A)["rel_epoch_time"] == 1.0
    assert r["rel_epoch_cpu_time"] == pytest.approx(1.5) and r["epoch_cpu_time_s"] == 6.0


def test_in_run_epoch_cost_is_the_ratio_of_mean_epoch_times():
    runs = [_rec("fgsm", A, 0, epoch_cpu=1.0), _rec("fgsm", A, 1, epoch_cpu=3.0), _rec("fgsm", B, 0, epoch_cpu=4.0),
            _rec("elle", A, 0, epoch_cpu=2.0), _rec("elle", A, 1, epoch_cpu=4.0), _rec("elle", B, 0),
            _rec("cure", A, 0, epoch_cpu=5.0)]
    rows = cs.aggregate(runs, ("fgsm", "elle", "cure"), (A, B))
    # elle at A: mean 3 / FGSM's mean 2; at B: no timed run; cure has no B runs
    assert _row(rows, "elle", A)["rel_train_epoch_cpu_time"] == pytest.approx(1.5)
    assert _row(rows, "cure", A)["rel_train_epoch_cpu_time"] == pytest.approx(2.5)
    assert _row(rows, "fgsm", B)["rel_train_epoch_cpu_time"] == 1.0
    assert _row(rows, "elle", B)["rel_train_epoch_cpu_time"] is None and _row(rows, "elle", B)["train_epoch_cpu_s"] is None
    # without FGSM runs there is no reference
    assert cs.aggregate(runs[3:], ("elle",), (A,))[0]["rel_train_epoch_cpu_time"] is None


def test_aggregate_empty_cell_and_no_timing():
    rows = cs.aggregate(_runs(), ("fgsm",), (A, 8 / 255))
    r = _row(rows, "fgsm", 8 / 255)
    assert (r["n_runs"], r["co_rate"], r["clean_acc_mean"], r["robust_acc_se"]) == (0, None, None, None)
    assert "rel_epoch_time" not in r and "rel_epoch_cpu_time" not in r


def test_mean_se_matches_numpy():
    rng = np.random.default_rng(3)
    v = rng.uniform(size=7)
    m, s = cs.mean_se(list(v) + [None])
    assert m == pytest.approx(v.mean(), rel=1e-14) and s == pytest.approx(v.std(ddof=1) / np.sqrt(7), rel=1e-12)
    assert cs.mean_se([]) == (None, None) and cs.mean_se([None]) == (None, None)
    assert cs.mean_se([0.3]) == (0.3, None)


def test_goal_summary():
    rows = cs.aggregate(_runs(), ("fgsm", "gradalign"), (A, B))
    g = cs.goal_summary(rows)
    assert g["gradalign"] == {"prevents_co": True, "robust_within_tol": True, "fgsm_co_eps": [A, B]}
    assert g["fgsm"]["prevents_co"] is False
    # FGSM's robust accuracy .11 < GradAlign's .27 − .02 at A
    assert g["fgsm"]["robust_within_tol"] is False
    # no CO for FGSM anywhere: nothing to prevent
    no_co = [r for r in _runs() if r["method"] == "gradalign"] + [_rec("fgsm", A, 0)]
    g2 = cs.goal_summary(cs.aggregate(no_co, ("fgsm", "gradalign"), (A,)))
    assert g2["gradalign"]["prevents_co"] is None and g2["fgsm"]["robust_within_tol"] is False
    # without the reference method in the table
    assert cs.goal_summary(cs.aggregate(_runs(), ("fgsm",), (A,)))["fgsm"]["robust_within_tol"] is None


def test_grid_seeds_and_methods():
    cfg = cs.resolve_study(cs.StudyConfig(methods=("fgsm", "pgd-2"), eps=(A, B), seeds=3, seed=10, **TINY))
    specs = cs._specs(cfg)
    cells = {(s.method, s.eps, s.seed) for s in specs}
    assert len(specs) == len(cells) == 12
    assert cells == {(m, e, s) for m in ("fgsm", "pgd-2") for e in (A, B) for s in (10, 11, 12)}


def test_base_methods_available_and_unknown_rejected(monkeypatch):
    assert {"fgsm", "fgsm-rs", "pgd-2", "gradalign"} <= set(cs.available_methods())
    assert cs.resolve_study(cs.StudyConfig(**TINY)).methods == cs.available_methods("synthetic")
    monkeypatch.setitem(cs.METHODS, "future", dict(attack="fgsm", no_such_field=1))
    assert "future" not in cs.available_methods()
    with pytest.raises(ConfigError) as e:
        cs.resolve_study(cs.StudyConfig(methods=("fgsm", "future"), **TINY))
    assert e.value.field == "methods"


@pytest.mark.parametrize("field,value", [("eps", ()), ("eps", (A, A)), ("eps", (1.5,)), ("seeds", 0),
                                         ("robust", "fab"), ("robust_n", 33), ("n_eval", 33), ("n_train", 64),
                                         ("methods", ()), ("methods", ("fgsm", "fgsm")), ("workers", 0)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ConfigError) as e:
        cs.resolve_study(cs.StudyConfig(**{**TINY, field: value}))
    assert e.value.field == field


def test_runs_do_not_depend_on_the_worker_count():
    """The same grid on 2 worker processes gives the records of the runs made one by one in this
    process (timings aside): every run draws only from its own seed's streams."""
    cfg = cs.resolve_study(cs.StudyConfig(methods=("fgsm",), eps=(A,), seeds=2, **{**TINY, "workers": 2}))
    pooled = cs.run_study(cfg)
    inline = [cs.run_one(sp) for sp in cs._specs(cfg)]
    assert strip_timings(pooled["runs"]) == strip_timings(inline)
    assert [r["seed"] for r in inline] == [0, 1] and inline[0] != inline[1]
    assert set(pooled["epoch_time_s"]) == set(pooled["epoch_cpu_time_s"]) == {"fgsm"}
    assert isinstance(pooled["epoch_time_s"]["fgsm"], float) and isinstance(pooled["epoch_cpu_time_s"]["fgsm"], float)
    for r in inline:
        assert r["train_epoch_cpu_s"] is not None and r["train_epoch_wall_s"] is not None   # recorded by train
        assert len(r["pgd_curve"]) == cfg.epochs + 1 and 0 <= r["robust_acc"] <= 1 and 0 <= r["clean_acc"] <= 1


def test_cli_quick_smoke(tmp_path):
    r = run_cli("toymodels.cnn", ["co-study", "--quick", *TINY_ARGS, "--methods", "fgsm,gradalign", "--seeds", "1",
                                  "--json", "--out", tmp_path / "o"])
    assert r.rc == 0, r.err[-2000:]
    j = r.json
    c = j["config"]
    # --quick's ε, explicit options over --quick's values
    assert c["eps"] == [32 / 255] and c["epochs"] == 1 and c["n_train"] == 128 and c["seeds"] == 1
    assert [(row["method"], row["n_runs"]) for row in j["table"]] == [("fgsm", 1), ("gradalign", 1)]
    assert j["table"][0]["rel_epoch_cpu_time"] == 1.0 and j["table"][0]["rel_train_epoch_cpu_time"] == 1.0
    assert j["robust_attack"] == "PGD-2-1"
    assert {p.name for p in (tmp_path / "o").iterdir()} >= {"result.json", "robust_vs_eps.png", "cost_vs_robust.png"}


@pytest.mark.parametrize("name,base,lam", [("elle", "elle", None), ("elle:1000", "elle", 1000.0),
                                           ("gradalign:0.5", "gradalign", 0.5), ("cure:0", "cure", 0.0),
                                           ("elle-a:3e2", "elle-a", 300.0)])
def test_method_names_with_lambda(name, base, lam):
    assert cs.split_method(name) == (base, lam)
    cfg = cs._method_config(name, A)
    if lam is not None:
        assert getattr(cfg, cs.LAMBDA_FIELD[base]) == lam


@pytest.mark.parametrize("name", ["fgsm:1", "n-fgsm:2", "elle:", "elle:abc", "elle:-1", "elle:nan", "elle:1e9",
                                  "bogus:1"])
def test_bad_method_lambda_names_the_field(name):
    with pytest.raises(ConfigError) as e:
        cs.split_method(name)
    assert e.value.field == "methods"


def test_lambda_grid_runs_each_lambda_as_its_own_row():
    """Two λ of one method are two rows, each run with its own λ; the run with λ = 0 is FGSM training
    (same streams), so its records equal FGSM's run (timings aside)."""
    cfg = cs.resolve_study(cs.StudyConfig(methods=("fgsm", "gradnorm:0", "gradnorm:5"), eps=(A,), seeds=1, **TINY))
    runs = [cs.run_one(sp) for sp in cs._specs(cfg)]
    by = {r["method"]: r for r in runs}
    keys = ("co_epoch", "clean_acc", "robust_acc", "pgd_curve", "fgsm_curve")
    assert all(by["gradnorm:0"][k] == by["fgsm"][k] for k in keys)
    lams = {sp.method: cs._train.resolve(cs._train_config(sp)).reg_lambda for sp in cs._specs(cfg)}
    assert lams == {"fgsm": 0.0, "gradnorm:0": 0.0, "gradnorm:5": 5.0}
    rows = cs.aggregate(runs, cfg.methods, cfg.eps)
    assert [r["method"] for r in rows] == ["fgsm", "gradnorm:0", "gradnorm:5"]


@pytest.mark.parametrize("args,flag", [
    (["--methods", "fgsm,bogus"], "--methods"), (["--methods", "elle:abc"], "--methods"),
    (["--methods", "fgsm:2"], "--methods"), (["--eps", "0"], "--eps"), (["--eps", "1/255,1/255"], "--eps"),
    (["--seeds", "0"], "--seeds"), (["--robust", "fab"], "--robust"), (["--n-train", "64"], "--n-train"),
    (["--robust-n", "100"], "--robust-n"), (["--n-eval", "100"], "--n-eval"), (["--workers", "0"], "--workers"),
])
def test_cli_bad_input_exits_2(args, flag):
    r = run_cli("toymodels.cnn", ["co-study", *TINY_ARGS, "--methods", "fgsm", "--seeds", "1", *args])
    assert r.rc == 2 and len(r.err_lines) == 1 and flag in r.err and r.out == "", (r.rc, r.err)
