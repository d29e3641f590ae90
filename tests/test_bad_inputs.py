"""Bad inputs that a single flag's range cannot catch — the classes found by trying 303 bad inputs on
the 37 entry points as a new user would (issue "One experiment contract"): values that only
conflict with others, extreme-but-finite values, broken input files, values that used to be silently
replaced, valid values that used to be refused, and modes that ignored ``--json``. Each must give exit 2
with one stderr line naming the flag (or run correctly), never a traceback, never a silent change.
The per-flag ranges are covered by ``test_contract.py`` and fuzzed by ``test_fuzz_cli.py``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_of, run_cli

ROOT = Path(__file__).resolve().parents[1]

#: (module, argv, the flag the one-line error must name)
REFUSED = [
    # silently replaced or accepted before
    ("toymodels.dln", ["--record-every", "0"], "--record-every"),
    ("toymodels.dln", ["--steps", "100", "--record-every", "200"], "--record-every"),
    ("toymodels.dln", ["--sam", "none", "--rho", "0.1"], "--rho"),
    ("toymodels.cnn", ["train", "--batch", "100000"], "--batch"),
    ("toymodels.cnn", ["train", "--n-eval", "100000"], "--n-eval"),
    ("toymodels.cnn", ["train", "--final-n", "100000"], "--final-n"),
    # extreme but finite values that overflowed
    ("toymodels.quad1d", ["--eta", "1e300"], "--eta"),
    ("toymodels.quad1d", ["--theta0", "1e300"], "--theta0"),
    ("toymodels.sharpness", ["dln", "--rho", "1e300"], "--rho"),
    ("toymodels.fgsm", ["--eps", "1e300"], "--eps"),
    ("toymodels.square", ["attack", "--norm", "l2", "--eps", "1e300"], "--eps"),
    # sizes that ran out of memory
    ("toymodels.quad1d", ["--runs", "1e12"], "--runs"),
    ("toymodels.fgsm", ["--d", "1e12"], "--d"),
    # messages that named an internal array or swallowed the range
    ("toymodels.cnn", ["train", "--eps", "eight"], "--eps"),
    ("toymodels.square", ["attack", "--eps", "x/255"], "--eps"),
]


@pytest.mark.parametrize("mod,argv,flag", REFUSED, ids=[" ".join([m.split(".")[-1], *a]) for m, a, _ in REFUSED])
def test_refused_with_one_line_naming_the_flag(mod, argv, flag):
    r = run_cli(mod, [*argv, "--json"])
    assert r.rc == 2 and len(r.err_lines) == 1 and flag in r.err and r.out == "", (r.rc, r.err)
    assert "Traceback" not in r.err


def _bad_npz(tmp_path: Path) -> list[Path]:
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    bare = tmp_path / "bare.npz"
    with open(bare, "wb") as fh:           # np.save content under an .npz name: one bare array
        np.save(fh, np.ones(3))
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    missing_key = tmp_path / "missing.npz"
    np.savez(missing_key, X=np.ones((3, 2)))
    nonfinite = tmp_path / "nan.npz"
    np.savez(nonfinite, X=np.full((3, 2), np.nan), y=np.ones(3), X_test=np.ones((1, 2)), y_test=np.ones(1),
             u=np.ones(2), v=np.ones(2))
    return [corrupt, bare, empty, missing_key, nonfinite]


@pytest.mark.parametrize("mod,argv,flag", [("toymodels.dln", ["--steps", "10"], "--data"),
                                           ("toymodels.sharpness", ["dln"], "--weights"),
                                           ("toymodels.torch", ["dln-ensemble", "--steps", "10"], "--data")])
def test_broken_npz_inputs(mod, argv, flag, tmp_path):
    if mod == "toymodels.torch":
        pytest.importorskip("torch")        # without torch the command exits 1 before reading the file
    for f in _bad_npz(tmp_path):
        r = run_cli(mod, [*argv, flag, f, "--json"])
        assert r.rc == 2 and len(r.err_lines) == 1 and flag in r.err and "Traceback" not in r.err, (f.name, r.err)


def test_valid_inputs_that_were_refused_run():
    r = run_cli("toymodels.sde", ["dln", "--steps", "10", "--json"])
    assert r.rc == 0, r.err
    assert r.json["config"]["steps"] == 10


@pytest.mark.parametrize("mod,argv", [("toymodels.cnn", ["train"]), ("toymodels.square", ["attack"]),
                                      ("toymodels.square", ["ablation"]), ("toymodels.fgsm", []),
                                      ("toymodels.torch", ["train-at"]), ("toymodels.torch", ["square", "--model", "cnn"])])
def test_eps_fractions_are_accepted_everywhere(mod, argv):
    """``--eps 8/255`` means the same number for every command that takes an ℓ∞ radius (parsed only)."""
    cli = cli_of(mod)
    args = cli.parser().parse_args([*argv, "--eps", "8/255"])
    assert args.eps == pytest.approx(8 / 255, rel=0, abs=0)


def test_list_and_dry_run_modes_honour_json():
    for mod, argv in (("toymodels.bench", ["--list", "--json"]), ("figures", ["--list", "--json"]),
                      ("proofs_check", ["--list", "--json"]),
                      ("toymodels.torch", ["sweep", "--dry-run", "--seeds", "2", "--json", "--", "train-at", "--epochs", "1"])):
        r = run_cli(mod, argv)
        assert r.rc == 0, (mod, r.err)
        assert isinstance(r.json, dict) and "version" in r.json, mod


def test_diverging_run_is_a_result_without_numpy_warnings():
    """A diverged run exits 0, reports its step, and numpy's overflow warnings do not leak to stderr."""
    r = run_cli("toymodels.dln", ["--lr", "50", "--steps", "1000", "--no-baseline", "--json"])
    assert r.rc == 0, r.err
    j = r.json
    assert j["diverged"] is True and isinstance(j["diverged_at"], int), sorted(j)
    assert "RuntimeWarning" not in r.err and len(r.err_lines) <= 1, r.err
    # the human table (norms of an infinite iterate) is printed under the same silence
    r = run_cli("toymodels.dln", ["--lr", "50", "--steps", "1000", "--quiet"])
    assert r.rc == 0 and "Warning" not in r.err and not r.err_lines, r.err
    assert "diverged @" in r.out


def test_torch_help_without_torch():
    """``python -m toymodels.torch [COMMAND] --help`` needs no torch; a run without it is one line, exit 1."""
    code = ("import sys; sys.modules['torch'] = None; sys.modules['distributed'] = None\n"
            "from toymodels.torch.__main__ import CLI\n"
            "rcs = [CLI.main(['--help']), CLI.main(['train-at', '--help']), CLI.main(['train-at', '--epochs', '1'])]\n"
            "print('RCS', rcs)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(ROOT)})
    assert "RCS [0, 0, 1]" in p.stdout, (p.stdout[-500:], p.stderr[-500:])
    assert "Traceback" not in p.stderr and "torch" in p.stderr
