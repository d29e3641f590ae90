"""``python -m toymodels.cnn``: exit codes, one-line errors, exactly one JSON object under --json."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--n-train", "64", "--n-test", "40", "--n-eval", "16", "--final-n", "16",
        "--final-pgd-steps", "2", "--final-restarts", "2", "--eval-pgd-steps", "2", "--batch", "32"]


def _run(*args, timeout=300):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "toymodels.cnn", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


class _Proc:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _inproc(capsys, *args):
    """Run the CLI in this process (fast); same exit-code handling as ``python -m``."""
    from toymodels._cli import run_main
    from toymodels.cnn.__main__ import PROG, main

    capsys.readouterr()
    try:
        rc = run_main(main, list(args), prog=PROG)
    except SystemExit as exc:       # argparse errors and --help
        rc = exc.code
    out, err = capsys.readouterr()
    return _Proc(rc, out, err)


def _one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert proc.stdout == ""


@pytest.mark.parametrize("args, words", [
    (["--eps", "0"], ["--eps", "(0, 1]"]),
    (["--eps", "-1/255"], ["--eps"]),
    (["--eps", "ten"], ["--eps", "10/255"]),
    (["--attack", "fgsm", "--alpha", "0.5"], ["--alpha", "(0, "]),
    (["--attack", "fgsm-rs", "--alpha", "3eps"], ["--alpha", "2ε"]),
    (["--attack", "pgd", "--alpha", "0"], ["--alpha"]),
    (["--attack", "pgd", "--pgd-steps", "0"], ["--pgd-steps", "[1, inf]"]),
    (["--filters", "0"], ["--filters", "[1, inf]"]),
    (["--epochs", "0"], ["--epochs"]),
    (["--attack", "cw"], ["--attack", "fgsm-rs"]),
    (["--grad-align", "-1"], ["--grad-align", ">= 0"]),
    (["--grad-align", "lots"], ["--grad-align", "default"]),
    (["--dataset", "imagenet"], ["--dataset", "cifar10"]),
    (["--dataset", "cifar10"], ["--data-dir"]),
    (["--dataset", "svhn", "--data-dir", "/nonexistent/dir"], ["--data-dir", "not an existing directory"]),
])
def test_bad_input_exits_2_with_one_line(args, words, capsys):
    _one_line_error(_inproc(capsys, "train", *args), *words)


def test_bad_input_through_python_m():
    # the real entry point: exit status 2 and one line, no traceback
    _one_line_error(_run("train", "--eps", "0"), "--eps")


def test_missing_files_in_data_dir(tmp_path, capsys):
    _one_line_error(_inproc(capsys, "train", "--dataset", "cifar100", "--data-dir", str(tmp_path)), "missing file")


def test_argparse_errors_are_one_line(capsys):
    _one_line_error(_inproc(capsys, "train", "--epochs", "two"), "--epochs")
    _one_line_error(_inproc(capsys, "nosuchcommand"))


def test_help(capsys):
    for args in ([], ["train"]):
        proc = _inproc(capsys, *args, "--help")
        assert proc.returncode == 0 and "usage" in proc.stdout


def test_json_is_one_object_and_out_dir(tmp_path):
    proc = _run("train", *TINY, "--json", "--out", str(tmp_path / "res"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    # defaults: the embedded photo crops at ε = 24/255
    assert out["config"]["attack"] == "fgsm" and out["config"]["eps"] == pytest.approx(24 / 255)
    assert out["config"]["dataset"] == "photos" and "version" in out
    assert out["config"]["n_train"] == 64 and out["config"]["n_test"] == 40
    # the culprit filter and the evaluation with it zeroed are reported
    assert 0 <= out["culprit_filter"] < 4
    z = out["final_without_culprit"]
    assert z["grad_alignment"] == pytest.approx(out["grad_alignment_without_culprit"])
    assert set(z) >= {"clean_acc", "fgsm_acc", "pgd_acc", "grad_alignment"}
    assert [h["epoch"] for h in out["history"]] == [0, 1]
    for name in ("result.json", "snapshots.npz", "training_curves.png"):
        assert (tmp_path / "res" / name).is_file()
    assert json.loads((tmp_path / "res" / "result.json").read_text())["history"] == out["history"]


def test_photos_without_skimage_exits_2(monkeypatch, capsys):
    import sys as _sys

    from toymodels import datasets

    datasets._photo_levels.cache_clear()
    monkeypatch.setitem(_sys.modules, "skimage", None)
    _one_line_error(_inproc(capsys, "train", *TINY), "scikit-image")
    # the other embedded sets need no scikit-image
    proc = _inproc(capsys, "train", *TINY, "--json", "--dataset", "strokes", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)["config"]
    assert cfg["dataset"] == "strokes" and cfg["eps"] == pytest.approx(10 / 255)
    monkeypatch.undo()
    datasets._photo_levels.cache_clear()


def test_eps_fraction_and_alpha_multiple(capsys):
    proc = _inproc(capsys, "train", *TINY, "--json", "--attack", "fgsm-rs", "--eps", "8/255", "--alpha", "1.25eps",
                "--grad-align", "default", "--dataset", "synthetic")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)["config"]
    assert cfg["eps"] == pytest.approx(8 / 255)
    assert cfg["alpha"] == pytest.approx(10 / 255)
    assert cfg["grad_align"] == pytest.approx(0.2)          # Table 2.2 (CIFAR-10 row) at ε = 8/255
    # on the default photo crops 'default' is the calibrated λ = 1
    proc = _inproc(capsys, "train", *TINY, "--json", "--grad-align", "default")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["config"]["grad_align"] == pytest.approx(1.0)


def test_align_init_subcommand_is_wired(capsys):
    proc = _inproc(capsys, "align-init", "--help")
    assert proc.returncode == 0 and "usage" in proc.stdout
