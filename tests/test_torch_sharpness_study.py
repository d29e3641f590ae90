"""``sharpness-study`` (issue 15 item 3): Kendall table from hand-made measurements, a tiny end-to-end
study, its resumption, and bad options."""
from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("torch")

from toymodels._cli import Cli  # noqa: E402
from toymodels.torch import sharpness_study as ss  # noqa: E402
from toymodels.torch.sharpness_study_cli import COMMAND  # noqa: E402

CLI = Cli("python -m toymodels.torch", "", [COMMAND])

#: 2 models (SGD and SAM), 1 epoch on 32 photos, 16 measured points, the smallest budgets
TINY = ["sharpness-study", "--quick", "--n-train", "32", "--n-test", "16", "--epochs", "1", "--lrs", "0.05",
        "--batch-sizes", "16", "--sam-rhos", "0,0.05", "--augment", "off", "--filters", "1", "--n-points", "16",
        "--m-small", "8", "--n-samples", "2", "--n-iter", "1", "--power-iter", "3", "--trace-samples", "2",
        "--device", "cpu", "--quiet"]


def _run(capsys, argv):
    rc = CLI.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_kendall_table_from_hand_made_measurements():
    errs = [0.1, 0.2, 0.3, 0.4]
    A, B, C = [1, 2, 3, 4], [4, 3, 2, 1], [1, 2, 4, 3]      # τ = 1, −1, (5 − 1)/6
    D = [1.0, None, 3.0, 2.0]                                # left out where missing: τ over 3 models = 1/3
    models = [{"test_error": e, "measures": {"A": a, "B": {"value": b}, "C": c, "D": d}}
              for e, a, b, c, d in zip(errs, A, B, C, D)]
    models.append({"test_error": None, "measures": {"A": 100, "B": 100, "C": 100, "D": 100}})   # no error: out
    models.append({"test_error": 0.5, "measures": {"A": float("nan")}})                          # non-finite: out
    rows = {r["measure"]: r for r in ss.kendall_table(models, ["A", "B", "C", "D", "E"])}
    assert rows["A"]["tau"] == 1.0 and rows["A"]["n_models"] == 4 and (rows["A"]["min"], rows["A"]["max"]) == (1, 4)
    assert rows["B"]["tau"] == -1.0 and rows["B"]["n_models"] == 4
    assert math.isclose(rows["C"]["tau"], 4 / 6)
    assert rows["D"]["n_models"] == 3 and math.isclose(rows["D"]["tau"], 1 / 3)
    assert rows["E"]["tau"] is None and rows["E"]["n_models"] == 0
    # ties in test error count 0 (eq. 7.4)
    tied = [{"test_error": 0.5, "measures": {"A": v}} for v in (1, 2, 3)]
    assert ss.kendall_table(tied, ["A"])[0]["tau"] == 0.0


def test_every_definition_is_measured():
    cfg = ss.StudyConfig(out="unused", n_points=64, m_small=16)
    ms = ss.measures_of(cfg, n_params=400)
    names = [m.name for m in ms]
    assert len(names) == len(set(names)) == 2 * 3 * 2 * 2 + 4
    sharp = [m for m in ms if m.family == "sharpness"]
    combos = {(m.adaptive, m.kind, m.logit_norm, m.m) for m in sharp}
    assert combos == {(a, k, ln, m) for a in (False, True) for k in ("avg-l2", "worst-l2", "worst-linf")
                      for ln in (False, True) for m in (16, 64)}
    assert {(m.kind, m.adaptive) for m in ms if m.family == "hessian"} == {
        (k, a) for k in ("lambda_max", "trace") for a in (False, True)}
    std_avg = [m for m in sharp if m.kind == "avg-l2" and not m.adaptive]
    assert all(math.isclose(m.rho, ss.DEFAULT_RHOS["standard/avg-l2"] / 20) for m in std_avg)   # ρ/√P
    assert all(m.rho == ss.DEFAULT_RHOS["adaptive/worst-linf"] for m in sharp if m.kind == "worst-linf" and m.adaptive)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    rc = CLI.main([*TINY, "--json", "--out", str(out)])
    assert rc == 0
    return out, json.loads((out / "result.json").read_text())


def test_tiny_study_reports_every_definition(study):
    out, res = study
    assert res["n_models"] == 2 and res["n_failed"] == 0 and res["n_trained_now"] == 2
    names = [m.name for m in ss.measures_of(ss.StudyConfig(out="x", n_points=16, m_small=8))]
    assert [r["measure"] for r in res["table"]] == names
    for r in res["table"]:
        assert r["n_models"] == 2 and -1.0 <= r["tau"] <= 1.0, r
    for m in res["models"]:
        assert m["error"] is None and 0.0 <= m["test_error"] <= 1.0
        assert {m["task"] for m in res["models"]} == {"train-sgd", "train-sam"}
        assert set(m["measures"]) == set(names)
        assert all(math.isfinite(v["value"]) for v in m["measures"].values())
        cache = json.loads((out / "models" / m["key"] / "measures.json").read_text())
        assert set(cache["measures"]) == set(names)
    assert (out / "sharpness_study.png").stat().st_size > 0
    assert res["config"]["seeds"] == [0]


def test_resume_skips_finished_training_and_measurements(study, capsys):
    out, first = study
    cks = sorted((out / "models").glob("*/checkpoint.pt"))
    assert len(cks) == 2
    mtimes = [p.stat().st_mtime_ns for p in cks]
    rc, stdout, _ = _run(capsys, [*TINY, "--json", "--out", out])
    again = json.loads(stdout)
    assert rc == 0 and again["n_skipped"] == 2 and again["n_trained_now"] == 0 and again["n_measured_now"] == 0
    assert [p.stat().st_mtime_ns for p in cks] == mtimes                     # no retraining
    assert [m["measures"] for m in again["models"]] == [m["measures"] for m in first["models"]]
    # a changed worst-case budget re-measures exactly the worst-case measures (2 × 2 × 2 × 2 per model)
    argv = [a if a != "1" or TINY[i - 1] != "--n-iter" else "2" for i, a in enumerate(TINY)]
    rc, stdout, _ = _run(capsys, [*argv, "--json", "--out", out])
    third = json.loads(stdout)
    assert rc == 0 and third["n_trained_now"] == 0 and third["n_measured_now"] == 2 * 16
    assert [p.stat().st_mtime_ns for p in cks] == mtimes


def test_max_train_error_leaves_models_out(study, capsys):
    out, first = study
    assert all(0.0 <= m["train_error"] <= 1.0 for m in first["models"])
    rc, stdout, _ = _run(capsys, [*TINY, "--json", "--out", out, "--max-train-error", "0"])
    res = json.loads(stdout)
    kept = [m for m in first["models"] if m["train_error"] == 0.0]
    assert rc == 0 and res["n_trained_now"] == 0
    assert all(r["n_models"] == len(kept) for r in res["table"])
    assert all("training error" in m["error"] for m in res["models"] if m["train_error"] > 0)


@pytest.mark.parametrize("extra,flag", [
    (["--lrs", "0"], "--lrs"),
    (["--sam-rhos", "-0.1"], "--sam-rhos"),
    (["--augment", "maybe"], "--augment"),
    (["--m-small", "32"], "--m-small"),            # > --n-points 16
    (["--n-points", "64"], "--n-points"),          # > --n-train 32
    (["--batch-sizes", "64"], "--batch-sizes"),    # > --n-train 32
    (["--rho-adaptive-avg", "0"], "--rho-adaptive-avg"),
    (["--seeds", "0"], "--seeds"),
    ([], "--out"),                                 # --out is required (no --out given below)
])
def test_bad_options_exit_2_naming_the_flag(tmp_path, capsys, extra, flag):
    out = [] if flag == "--out" else ["--out", tmp_path / "o"]
    rc, stdout, err = _run(capsys, [*TINY, *extra, *out])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and flag in err and stdout == "", (rc, err)
    assert not (tmp_path / "o").exists()                    # refused before any work


def test_dry_run_lists_the_grid(capsys):
    rc, stdout, _ = _run(capsys, ["sharpness-study", "--quick", "--dry-run", "--json"])
    res = json.loads(stdout)
    assert rc == 0 and res["n_points"] == 16 and len(res["measures"]) == 28
    tasks = {(p["task"], p["sam_rho"], p["augment"]) for p in res["points"]}
    assert tasks == {("train-sgd", 0.0, False), ("train-sgd", 0.0, True), ("train-sam", 0.05, False),
                     ("train-sam", 0.05, True)}
    assert all("--augment" in p["argv"] for p in res["points"] if p["augment"])
