"""``square-success`` figure (figures/square.py): success rate vs query budget of the ℓ∞ and ℓ2
Square Attack on the toy CNN. Deterministic (fixed seeds, no Monte-Carlo tolerances): the curve is
checked against hand-computed values and, on the quick render, against the per-point results."""
from __future__ import annotations

import numpy as np
import pytest

from figures import Context, registry
from figures.square import fig_square_success, success_curve


def test_success_curve_by_hand():
    # points: fooled at query 1, fooled at 3, never fooled (ran out at 3), fooled at 5 (> budget 4)
    c = success_curve(np.array([1, 3, 3, 5]), np.array([True, True, False, True]), 4)
    np.testing.assert_array_equal(c, [0.25, 0.25, 0.5, 0.5])
    assert success_curve(np.array([], dtype=int), np.array([], dtype=bool), 3).tolist() == [0, 0, 0]


def test_registered_as_project_figure():
    spec = registry()["square-success"]
    assert spec.thesis_figure is None and spec.func is fig_square_success


@pytest.fixture(scope="module")
def quick():
    import matplotlib

    matplotlib.use("Agg", force=True)
    return fig_square_success(Context(quick=True))


def test_quick_render_curves(quick):
    res = quick
    d, s = res.data, res.summary
    n, budget = s["n_attacked"], s["queries"]
    assert n >= 5                                   # enough attacked points for a non-trivial curve
    assert d["queries"] == list(range(1, budget + 1))
    for norm in ("linf", "l2"):
        curve = np.array(d[f"{norm}_curve"])
        nq = np.array(d[f"{norm}_n_queries"])
        ok = np.array(d[f"{norm}_success"], dtype=bool)
        assert curve.shape == (budget,) and nq.shape == ok.shape == (n,)
        assert np.all(np.diff(curve) >= 0) and 0 <= curve[0] and curve[-1] <= 1
        assert np.all((1 <= nq) & (nq <= budget))
        # a failed point used the whole budget
        assert np.all(nq[~ok] == budget)
        # ends at 1 − failure rate, the failure rate counted from the per-point outcomes
        failure_rate = sum(1 for v in ok if not v) / n
        assert curve[-1] == pytest.approx(1 - failure_rate, abs=1e-12)
        assert s[norm]["failure_rate"] == pytest.approx(failure_rate, abs=1e-12)
        # every point of the curve by direct counting
        for q in range(1, budget + 1):
            assert curve[q - 1] == pytest.approx(sum(1 for a, b in zip(nq, ok) if b and a <= q) / n, abs=1e-12)
    assert 0 <= s["pgd_success_rate"] <= 1
    assert s["pgd_robust_acc"] == pytest.approx(s["clean_acc"] * (1 - s["pgd_success_rate"]))
    # the PGD reference is drawn as a horizontal line at its success rate
    lines = res.fig.axes[0].get_lines()
    ys = [ln.get_ydata() for ln in lines]
    assert any(len(set(np.asarray(y, dtype=float))) == 1 and float(y[0]) == s["pgd_success_rate"] for y in ys)
