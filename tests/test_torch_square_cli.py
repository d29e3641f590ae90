"""``python -m toymodels.torch square``: JSON contract, consistency of the reported numbers, bad input."""
import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")


def _run(*args):
    return subprocess.run([sys.executable, "-m", "toymodels.torch", "square", *args], capture_output=True, text=True)


def test_json_contract_and_consistency(tmp_path):
    p = _run("--model", "cnn", "--queries", "30", "--n-points", "40", "--pgd-steps", "3", "--json",
             "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    out = json.loads(lines[0])
    for k in ("failure_rate", "mean_queries", "median_queries", "clean_acc", "pgd_robust_acc",
              "max_perturbation_norm", "config", "version"):
        assert k in out
    eps = out["config"]["eps"]
    assert out["config"]["eps"] == pytest.approx(8 / 255)
    assert out["max_perturbation_norm"] <= eps * (1 + 1e-6)   # float32 images
    assert out["n_attacked"] == round(out["clean_acc"] * 40)
    if out["n_attacked"]:
        assert 0 <= out["failure_rate"] <= 1
        assert out["square_robust_acc"] == pytest.approx(out["clean_acc"] * out["failure_rate"])
    assert json.loads((tmp_path / "square.json").read_text())["config"] == out["config"]


@pytest.mark.parametrize("args", [
    ["--model", "cnn", "--eps", "0"],
    ["--model", "cnn", "--norm", "l1"],
    ["--model", "cnn", "--queries", "0"],
    ["--model", "cnn", "--p-init", "1.5"],
    ["--model", "nope"],
    ["--checkpoint", "/nonexistent/ck.pt"],
    [],
])
def test_bad_input_exit_2(args, capsys):
    from toymodels.torch.__main__ import main

    try:
        rc = main(["square", *args])
    except SystemExit as exc:  # argparse's own errors (Parser exits 2 with one line)
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error" in err
