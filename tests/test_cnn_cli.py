"""``python -m toymodels.cnn train``: what the contract test (tests/test_contract.py) cannot know — the
payload's content, the resolution of ε / α / λ from the flags, errors that involve several flags or
the data (batch and evaluation sizes, data folders, scikit-image), and a diverged run reported as a
result. One tiny run: 1 epoch on 64 images (a second or two)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import run_cli

MOD = "toymodels.cnn"
TINY = ["--epochs", "1", "--n-train", "64", "--n-test", "40", "--n-eval", "16", "--final-n", "16",
        "--final-pgd-steps", "2", "--final-restarts", "2", "--eval-pgd-steps", "2", "--batch", "32"]


def _error(argv, *words):
    r = run_cli(MOD, argv)
    assert r.rc == 2 and len(r.err_lines) == 1 and r.out == "", (argv, r.rc, r.err)
    for w in words:
        assert w in r.err, (w, r.err)
    return r.err


@pytest.mark.parametrize("args, words", [
    (["--attack", "fgsm", "--alpha", "0.5"], ["--alpha", "(0, ε]"]),
    (["--attack", "fgsm-rs", "--eps", "8/255", "--alpha", "0.3"], ["--alpha", "(0, 2ε]"]),
    (["--attack", "fgsm", "--alpha", "1.5eps"], ["--alpha", "(0, ε]"]),
    (["--alpha", "2.5eps"], ["--alpha", "multiple of eps"]),
    (["--attack", "pgd", "--eps", "0.1", "--alpha", "0.2"], ["--alpha", "(0, ε]"]),
    (["--attack", "none", "--alpha", "0.01"], ["--alpha", "none"]),
    (["--batch", "65"], ["--batch", "64 training images"]),
    (["--n-eval", "41"], ["--n-eval", "40 test images"]),
    (["--final-n", "41"], ["--final-n", "40 test images"]),
    (["--n-train", "2", "--batch", "3"], ["--batch", "2 training images"]),
    (["--dataset", "cifar10"], ["--data-dir"]),
    (["--data-dir", "/"], ["--data-dir", "generated 'synthetic'"]),
    (["--grad-align-exact"], ["--grad-align-exact", "GradAlign on"]),
])
def test_cross_field_errors(args, words):
    """Exit 2 with one line naming the flag, before any training (no data generated for these)."""
    _error(["train", *TINY, "--dataset", "synthetic", *args], *words)


def test_default_sizes_are_checked_before_loading():
    """Without --n-test the generated sets have their default sizes (photos: 2000 test crops)."""
    _error(["train", "--n-eval", "2001"], "--n-eval", "2000 test images")
    _error(["train", "--dataset", "strokes", "--final-n", "1001"], "--final-n", "1000 test images")


def test_data_dir_files(tmp_path):
    _error(["train", "--dataset", "cifar100", "--data-dir", str(tmp_path)], "--data-dir", "missing file")


def test_photos_without_skimage_exits_2(monkeypatch):
    import sys

    from toymodels.datasets import images

    images._photo_levels.cache_clear()          # the decoded photos are cached per process
    monkeypatch.setitem(sys.modules, "skimage", None)
    try:
        _error(["train", *TINY], "--dataset", "scikit-image")
    finally:
        monkeypatch.undo()
        images._photo_levels.cache_clear()


def test_payload_and_out_files(tmp_path):
    """Defaults: the embedded photo crops at ε = 24/255; the culprit filter and the final evaluation with
    it zeroed; the snapshots and the training curves under --out."""
    pytest.importorskip("skimage")
    r = run_cli(MOD, ["train", *TINY, "--json", "--out", str(tmp_path / "res")])
    assert r.rc == 0, r.err
    out = r.json
    c = out["config"]
    assert c["attack"] == "fgsm" and c["eps"] == pytest.approx(24 / 255) and c["alpha"] == pytest.approx(24 / 255)
    assert c["dataset"] == "photos" and (c["n_train"], c["n_test"], c["seed"]) == (64, 40, 0)
    assert 0 <= out["culprit_filter"] < 4
    z = out["final_without_culprit"]
    assert z["grad_alignment"] == pytest.approx(out["grad_alignment_without_culprit"])
    assert set(z) >= {"clean_acc", "fgsm_acc", "pgd_acc", "grad_alignment"}
    assert [h["epoch"] for h in out["history"]] == [0, 1] and out["diverged"] is False
    assert out["final"]["n_points"] == 16
    snap = np.load(tmp_path / "res" / "snapshots.npz")
    assert snap["filters"].shape == (2, 4, 3, 3, 3) and snap["U"].shape == (8, 4 * 32 * 32)
    assert (tmp_path / "res" / "training_curves.png").stat().st_size > 1000


def test_eps_fraction_alpha_multiple_and_default_lambda():
    r = run_cli(MOD, ["train", *TINY, "--json", "--attack", "fgsm-rs", "--eps", "8/255", "--alpha", "1.25eps",
                      "--grad-align", "default", "--dataset", "synthetic"])
    assert r.rc == 0, r.err
    cfg = r.json["config"]
    assert cfg["eps"] == pytest.approx(8 / 255)
    assert cfg["alpha"] == pytest.approx(10 / 255)
    assert cfg["grad_align"] == pytest.approx(0.2)          # Table 2.2 (CIFAR-10 row) at ε = 8/255
    # the other forms of a multiple of ε, and ε's default on the generated sets
    r = run_cli(MOD, ["train", *TINY, "--json", "--attack", "pgd", "--alpha", "0.5*eps", "--dataset", "strokes"])
    assert r.rc == 0, r.err
    assert r.json["config"]["eps"] == pytest.approx(10 / 255) and r.json["config"]["alpha"] == pytest.approx(5 / 255)


def test_diverged_run_is_a_result():
    """Exit 0, the step in the payload, one note on stderr that suggests a smaller --lr."""
    r = run_cli(MOD, ["train", *TINY, "--dataset", "synthetic", "--lr", "1e200", "--json"])
    assert r.rc == 0, r.err
    out = r.json
    assert out["diverged"] is True and out["diverged_at"]["step"] >= 1 and out["final"] == {}
    assert "diverged" in r.err and "--lr" in r.err and len(r.err_lines) == 1
    human = run_cli(MOD, ["train", *TINY, "--dataset", "synthetic", "--lr", "1e200", "--quiet"])
    assert human.rc == 0 and "diverged" in human.out and human.err == ""


def test_human_output():
    r = run_cli(MOD, ["train", *TINY, "--dataset", "synthetic", "--quiet"])
    assert r.rc == 0 and "catastrophic overfitting:" in r.out and "culprit filter" in r.out, r.err
