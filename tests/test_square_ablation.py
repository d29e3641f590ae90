"""Table 3.1 ablation variants of the ℓ∞ Square Attack (toymodels.square.ablation) and the
``ablation`` subcommand's payload and ``--quick`` resolution. Properties that hold for every seed
(checked for seeds 0–99 outside the suite by looping ``seed``; the library draws from
``toymodels.rng.stream(seed)``, the same stream as before); no Monte-Carlo tolerances."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import run_cli

from toymodels.cnn import model
from toymodels.square.__main__ import CLI, ablation_config
from toymodels.square.ablation import ROWS, ROWS_37, _support, ablation_attack
from toymodels.square.attack_linf import margin_and_loss


def _setup(seed=0, N=10, C=3, H=8, W=8, K=4):
    params = model.init_params(C=C, H=H, W=W, M=3, K=K, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(N, C, H, W))
    x[:, :, :2, :2] = 0.0
    y = model.logits(params, x).argmax(axis=1)
    return params, x, y


@pytest.mark.parametrize("shape", ["square", "random", "rectangle"])
def test_support_shapes(shape):
    rng = np.random.default_rng(0)
    m = _support(rng, shape, 200, 3, 8, 8)
    if shape == "random":
        assert np.all(m.sum(axis=(1, 2)) == 9)
    else:   # an axis-aligned rectangle: the support equals the product of its row and column extents
        rows, cols = m.any(axis=2), m.any(axis=1)
        assert np.array_equal(m, rows[:, :, None] & cols[:, None, :])
        assert np.all(np.diff(rows.astype(int), axis=1).clip(0).sum(axis=1) + rows[:, 0] == 1)   # contiguous
        if shape == "square":
            assert np.all(m.sum(axis=(1, 2)) == 9)


@pytest.mark.parametrize("row", ROWS_37)        # every row of Table 3.7 (ROWS, Table 3.6's, among them)
def test_ablation_invariants(row):
    shape, signs, init = row
    params, x, y = _setup()
    eps = 0.05
    calls = []

    def f(v):
        calls.append(v.shape[0])
        return model.logits(params, v)

    r = ablation_attack(f, x, y, eps, 40, 0.3, shape=shape, signs=signs, init=init, seed=1)
    assert np.all(np.abs(r.x_adv - x) <= eps + 1e-12) and r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    assert sum(calls) == r.n_queries.sum() and np.all(r.n_queries <= 40) and np.all(r.n_queries >= 1)
    ok, _ = margin_and_loss(model.logits(params, r.x_adv), y, False)
    assert np.array_equal(ok, r.success)
    assert np.all(r.n_queries[~r.success] == 40)
    c = r.curve(40)
    assert np.all(np.diff(c) >= 0) and np.isclose(c[-1], r.success.mean())


def _config(*argv):
    return ablation_config(CLI.subparser("ablation").parse_args(list(argv)))


def test_quick_changes_defaults_and_explicit_values_win():
    assert (_config().n_points, _config().queries, _config().epochs, _config().n_train) == (50, 300, 3, 3000)
    q = _config("--quick")
    assert (q.n_points, q.queries, q.epochs, q.n_train, q.quick) == (20, 100, 1, 500, True)
    e = _config("--quick", "--queries", "40", "--n-points", "7", "--epochs", "2", "--n-train", "300")
    assert (e.n_points, e.queries, e.epochs, e.n_train) == (7, 40, 2, 300)
    assert _config("--queries", "40").n_points == 50


def test_ablation_cli_quick_json():
    out = run_cli("toymodels.square", ["ablation", "--quick", "--queries", "30", "--eps", "8/255", "--json"]).json
    assert [(r["shape"], r["signs"], r["init"]) for r in out["rows"]] == list(ROWS)
    c = out["config"]
    assert c["queries"] == 30 and c["n_points"] == 20 and c["quick"] is True and c["eps"] == 8 / 255
    assert out["curve_queries"][-1] == 30 and out["n_attacked"] > 0
    for r in out["rows"]:
        assert 0 <= r["failure_rate"] <= 1 and r["n_points"] == out["n_attacked"]
        assert len(r["success_curve"]) == len(out["curve_queries"])


@pytest.mark.parametrize("seed", [0, 5])
def test_square_c_vstripes_row_is_the_square_attack(seed):
    # the last row of Table 3.1 is Alg. 1–2: same RNG stream as square_attack_linf, so identical results
    from toymodels.square.attack_linf import square_attack_linf
    params, x, y = _setup(seed=seed)
    f = lambda v: model.logits(params, v)  # noqa: E731
    a = ablation_attack(f, x, y, 0.05, 60, 0.3, shape="square", signs="c", init="vstripes", seed=seed)
    b = square_attack_linf(f, x, y, 0.05, 60, 0.3, seed=seed, backend="numpy")
    assert np.array_equal(a.x_adv, b.x_adv) and np.array_equal(a.n_queries, b.n_queries)
    assert np.array_equal(a.success, b.success)
