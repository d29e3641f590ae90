"""``python -m toymodels.torch square``: consistency of the reported numbers and the cross-field
errors (the contract itself is tests/test_contract.py's)."""
import json

import pytest

pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402


def test_payload_is_consistent(tmp_path):
    r = run_cli("toymodels.torch", ["square", "--model", "cnn", "--queries", "30", "--n-points", "40",
                                    "--pgd-steps", "3", "--device", "cpu", "--json", "--out", tmp_path])
    assert r.rc == 0, r.err
    out = r.json
    for k in ("failure_rate", "mean_queries", "median_queries", "clean_acc", "pgd_robust_acc",
              "max_perturbation_norm", "config", "version"):
        assert k in out
    eps = out["config"]["eps"]
    assert eps == pytest.approx(8 / 255)
    assert out["max_perturbation_norm"] <= eps * (1 + 1e-6)   # float32 images
    assert out["n_attacked"] == round(out["clean_acc"] * 40)
    if out["n_attacked"]:
        assert 0 <= out["failure_rate"] <= 1
        assert out["square_robust_acc"] == pytest.approx(out["clean_acc"] * out["failure_rate"])
    assert json.loads((tmp_path / "result.json").read_text())["config"] == out["config"]


@pytest.mark.parametrize("args,needle", [
    (["--checkpoint", __file__], "--checkpoint"),                  # a file, not a checkpoint
    ([], "--checkpoint"),                                          # neither --checkpoint nor --model
])
def test_bad_input_exit_2(args, needle):
    r = run_cli("toymodels.torch", ["square", *args, "--device", "cpu"])
    assert r.rc == 2 and len(r.err_lines) == 1 and needle in r.err and r.out == "", r.err
