"""toymodels.torch.dln: batched DLN ensembles against the numba ensemble (toymodels.dln.ensemble) and
toymodels.dln.train, and the ``python -m toymodels.torch dln-ensemble`` CLI (payload content, member
seeds, cross-field errors; the contract itself is tests/test_contract.py's). Deterministic (float64, CPU)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402

from toymodels.datasets import make_sparse_regression  # noqa: E402
from toymodels.dln.ensemble import train_ensemble  # noqa: E402
from toymodels.dln.train import DLNConfig, train  # noqa: E402
from toymodels.errors import ConfigError  # noqa: E402
from toymodels.rng import child_seed  # noqa: E402
from toymodels.torch.dln import train_ensemble_torch  # noqa: E402


DATA = make_sparse_regression(12, 8, 2, n_test=10, seed=3)
BASE = dict(alpha=0.5, lr=0.05, rho=0.1, steps=60)
CASES = {
    "1-SAM gd": dict(sam="1", algo="gd"),
    "1-SAM gd normalized": dict(sam="1", algo="gd", normalize=True),
    # full-batch normalized SAM amplifies rounding once it bounces around the minimum: 30 steps
    "n-SAM gd normalized": dict(sam="n", algo="gd", normalize=True, steps=30),
    "m-SAM sgd B=6 m=2": dict(sam="m", m=2, algo="sgd", batch=6),
    "1-SAM sgd normalized, no replacement": dict(sam="1", algo="sgd", batch=3, normalize=True, replacement=False),
    "n-SAM eq. 5.21": dict(sam="n", algo="sgd", batch=4, ascent="independent", ascent_batch=3, normalize=True),
    "ERM->1-SAM, decay, rho same-as-lr": dict(sam="1", algo="gd", switch_at=40, schedule="step", decay_at=(0.5,),
                                              rho_schedule="same-as-lr"),
    "SAM->ERM, warmup": dict(sam="n", algo="sgd", batch=4, switch_at=20, switch_mode="sam-to-erm",
                             schedule="linear-warmup", warmup_steps=10),
    "SGD B=2": dict(sam="none", algo="sgd", batch=2, rho=0.0),
}


def _compare(tr, nb, tol=1e-10):
    for i, r in enumerate(nb):
        assert (tr.diverged_at[i] >= 0) == r.diverged
        if r.diverged:
            assert tr.diverged_at[i] == r.diverged_at and tr.steps_run[i] == r.steps_run
            continue
        scale = max(1.0, np.abs(r.w_plus).max(), np.abs(r.w_minus).max())
        assert np.max(np.abs(tr.w_plus[i] - r.w_plus)) <= tol * scale
        assert np.max(np.abs(tr.w_minus[i] - r.w_minus)) <= tol * scale
        assert tr.train_loss[i] == pytest.approx(r.train_loss, rel=1e-9, abs=1e-14)
        assert tr.test_loss[i] == pytest.approx(r.test_loss, rel=1e-9, abs=1e-14)
        np.testing.assert_allclose(tr.curve_train[i], r.curve_train, rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(tr.alpha_eff_theory[i], r.alpha_eff_theory, rtol=1e-9)
        np.testing.assert_allclose(tr.alpha_eff_theory_discrete[i], r.alpha_eff_theory_discrete, rtol=1e-9)


@pytest.mark.parametrize("case", list(CASES))
def test_matches_numba_ensemble(case):
    base = DLNConfig(**{**BASE, **CASES[case]})
    cfgs = [replace(base, seed=s) for s in range(4)]
    nb = train_ensemble(DATA, cfgs)
    tr = train_ensemble_torch(DATA, cfgs, device="cpu", chunk=7)
    _compare(tr, nb)
    assert max(np.abs(r.w_plus - 0.5).max() for r in nb) > 1e-3     # the runs moved
    if cfgs[0].algo == "sgd":                                         # and their batch streams differ
        assert np.abs(tr.w_plus[0] - tr.w_plus[1]).max() > 1e-6


def test_per_run_data_and_per_run_hyperparameters_match_single_numba_runs():
    datas = [make_sparse_regression(12, 8, 2, n_test=10, seed=s) for s in range(5)]
    cfgs = [DLNConfig(sam="m", m=2, algo="sgd", batch=4, alpha=a, lr=lr, rho=rho, normalize=nz, steps=50, seed=s)
            for s, (a, lr, rho, nz) in enumerate([(0.5, 0.05, 0.1, False), (0.3, 0.08, 0.0, False),
                                                  (0.5, 0.05, 0.05, True), (0.7, 0.02, 0.2, False),
                                                  (0.4, 0.05, 0.1, True)])]
    tr = train_ensemble_torch(datas, cfgs, device="cpu")
    _compare(tr, [train(dt, c) for dt, c in zip(datas, cfgs)])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_step_matches_numba_and_other_runs_continue():
    base = DLNConfig(sam="1", algo="sgd", batch=2, alpha=0.5, rho=0.1, steps=80)
    cfgs = [replace(base, seed=s, lr=lr) for s, lr in enumerate([0.05, 0.4, 0.02, 0.8])]
    nb = train_ensemble(DATA, cfgs)
    assert sum(r.diverged for r in nb) == 2        # the test exercises both outcomes
    tr = train_ensemble_torch(DATA, cfgs, device="cpu", chunk=9)
    _compare(tr, nb)
    assert np.isinf(tr.train_loss[tr.diverged]).all()


def test_results_do_not_depend_on_chunking():
    cfgs = [DLNConfig(sam="1", algo="sgd", batch=3, replacement=False, **BASE, seed=s) for s in range(3)]
    a = train_ensemble_torch(DATA, cfgs, device="cpu", chunk=1)
    b = train_ensemble_torch(DATA, cfgs, device="cpu")
    assert np.array_equal(a.w_plus, b.w_plus) and np.array_equal(a.w_minus, b.w_minus)


def test_float32_is_close_to_float64():
    cfgs = [DLNConfig(sam="1", algo="gd", **BASE, seed=s) for s in range(2)]
    a = train_ensemble_torch(DATA, cfgs, device="cpu", dtype=torch.float32)
    b = train_ensemble_torch(DATA, cfgs, device="cpu")
    assert a.dtype == "float32"
    np.testing.assert_allclose(a.beta, b.beta, atol=1e-4)


def test_incompatible_configs_are_rejected():
    with pytest.raises(ConfigError, match="^configs .*share"):
        train_ensemble_torch(DATA, [DLNConfig(sam="1", steps=5), DLNConfig(sam="1", steps=6)], device="cpu")
    with pytest.raises(ConfigError, match="^device"):
        train_ensemble_torch(DATA, [DLNConfig(steps=5)], device="tpu")
    with pytest.raises(ConfigError, match="^threads"):
        train_ensemble_torch(DATA, [DLNConfig(steps=5)], device="cpu", threads=0)


# --------------------------------------------------------------------------- CLI
def test_cli_json_runs_equal_single_toymodels_dln_runs():
    """Member r has seed child_seed(--seed, "member", r): it is `python -m toymodels.dln --seed s_r`."""
    r = run_cli("toymodels.torch", ["dln-ensemble", "--sam", "1", "--steps", "300", "--seeds", "3", "--seed", "5",
                                    "--n", "10", "--d", "12", "--n-test", "50", "--device", "cpu", "--json"])
    assert r.rc == 0 and r.err == "", r.err
    out = r.json
    for key in ("method", "config", "version", "device", "beta", "train_loss", "test_loss", "summary",
                "runtime_s", "throughput_run_steps_per_s", "baseline", "seeds"):
        assert key in out, key
    seeds = [child_seed(5, "member", i) for i in range(3)]
    assert out["device"] == "cpu" and out["seeds"] == seeds and out["config"]["seeds"] == seeds
    assert out["config"]["seed"] == 5 and out["config"]["runs"] == 3
    assert out["config"]["lr"] == pytest.approx(1 / 12) and out["config"]["steps"] == 300
    assert len(out["beta"]) == 3 and all(len(b) == 12 for b in out["beta"])
    assert out["summary"]["runs"] == 3 and out["baseline"]["method"].startswith("ERM")
    for i, s in enumerate(out["seeds"]):
        dln = run_cli("toymodels.dln", ["--sam", "1", "--steps", "300", "--seed", s, "--n", "10", "--d", "12",
                                        "--n-test", "50", "--no-baseline", "--json"]).json
        np.testing.assert_allclose(out["beta"][i], dln["beta"], rtol=0, atol=1e-10)
        assert out["test_loss"][i] == pytest.approx(dln["test_loss"], rel=1e-8)
    tl = np.array(out["test_loss"])
    assert out["summary"]["test_loss"]["mean"] == pytest.approx(tl.mean())
    assert out["summary"]["test_loss"]["se"] == pytest.approx(tl.std(ddof=1) / np.sqrt(3))


@pytest.mark.parametrize("args,flag", [(["--sam", "m"], "--m"),
                                       (["--algo", "sgd", "--no-replacement", "--batch", "30"], "--batch"),
                                       (["--seeds", "900000", "--n-test", "1000"], "--seeds")])
def test_cli_cross_field_errors_exit_2_with_one_line(args, flag):
    r = run_cli("toymodels.torch", ["dln-ensemble", "--steps", "10", "--device", "cpu", "--n", "20", *args])
    assert r.rc == 2 and len(r.err_lines) == 1 and flag in r.err and r.out == "", r.err


def test_cli_out_and_shared_data(tmp_path):
    r = run_cli("toymodels.torch", ["dln-ensemble", "--sam", "n", "--algo", "sgd", "--batch", "2", "--steps", "40",
                                    "--seeds", "2", "--shared-data", "--no-baseline", "--n", "6", "--d", "5",
                                    "--n-test", "20", "--device", "cpu", "--out", tmp_path])
    assert r.rc == 0, r.err
    assert "n-SAM" in r.out
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["config"]["shared_data"] is True and "baseline" not in res
    arr = np.load(tmp_path / "ensemble.npz")
    assert arr["method_beta"].shape == (2, 5)
    np.testing.assert_allclose(arr["method_beta"], np.array(res["beta"], dtype=float), equal_nan=True)
