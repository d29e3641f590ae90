"""The generic evaluation cascade (toymodels.cascade) on hand-made attacks whose outcome is known, with
numpy arrays and (when installed) torch tensors: every number below follows from the attack definitions,
not from the code under test."""
import numpy as np
import pytest

from toymodels.cascade import Attack, run_cascade
from toymodels.errors import ConfigError

EPS = 0.1


def _problem():
    # 1-d "images"; the classifier is the sign of the first coordinate minus 0.5
    x = np.array([[0.10], [0.45], [0.55], [0.58], [0.95], [0.30]])
    y = np.array([0, 0, 1, 1, 1, 1])               # the last point is misclassified clean
    return x, y


def predict(x):
    return (np.asarray(x)[:, 0] > 0.5).astype(int)


def dist(xa, x):
    return np.abs(np.asarray(xa) - np.asarray(x)).reshape(len(x), -1).max(1)


def push(step):
    """Moves every point by ``step`` towards the boundary 0.5 (breaks the points within |step|)."""
    def run(x, y):
        return np.clip(x + np.where(np.asarray(y)[:, None] == 1, -step, step), 0, 1)
    return run


def test_stages_run_on_the_points_still_robust_and_accuracies_follow():
    x, y = _problem()
    seen = []

    def spy(x, y):
        seen.append(len(y))
        return push(0.09)(x, y)

    res = run_cascade(predict, [Attack("small", push(0.06)), Attack("big", spy)], x, y, norm="linf", eps=EPS,
                      distance=dist)
    # clean: the last point is wrong; 0.06 breaks 0.45 (→0.51) and 0.55 (→0.49); 0.09 then breaks 0.58 (→0.49)
    assert list(res.broken_by) == ["", "small", "small", "big", "", "clean"]
    assert seen == [3]                             # only the three points left robust by the first stage
    assert res.clean_acc == pytest.approx(5 / 6)
    assert res.robust_after == {"small": pytest.approx(3 / 6), "big": pytest.approx(2 / 6)}
    assert res.robust_acc == pytest.approx(2 / 6)
    assert predict(res.x_adv)[3] != y[3] and res.x_adv[0, 0] == x[0, 0]


def test_infeasible_proposals_are_not_breaks():
    x, y = _problem()
    res = run_cascade(predict, [Attack("too-far", push(0.3))], x, y, norm="linf", eps=EPS, distance=dist)
    # 0.3 > ε: every moved point is rejected, even those it misclassifies
    assert res.robust_acc == pytest.approx(5 / 6)
    assert res.invalid["too-far"] == 5


def test_cascade_never_weaker_than_any_single_stage():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (200, 1))
    y = (x[:, 0] > 0.5).astype(int)
    stages = [Attack(f"s{k}", push(s)) for k, s in enumerate((0.02, 0.05, 0.08))]
    all_ = run_cascade(predict, stages, x, y, norm="linf", eps=EPS, distance=dist)
    for st in stages:
        alone = run_cascade(predict, [st], x, y, norm="linf", eps=EPS, distance=dist)
        assert all_.robust_acc <= alone.robust_acc
    # points within 0.08 of the boundary (and not at it) are broken: the exact count of the data
    expected = np.mean(np.abs(x[:, 0] - 0.5) >= 0.08)
    assert all_.robust_acc == pytest.approx(expected, abs=1 / 200)


def test_bad_configuration_names_the_field():
    x, y = _problem()
    for kw, field in (({"norm": "l1", "eps": EPS}, "norm"), ({"norm": "linf", "eps": 0.0}, "eps")):
        with pytest.raises(ConfigError) as e:
            run_cascade(predict, [Attack("a", push(0.01))], x, y, distance=dist, **kw)
        assert e.value.field == field
    with pytest.raises(ConfigError):
        run_cascade(predict, [Attack("a", push(0.01)), Attack("a", push(0.02))], x, y, norm="l2", eps=EPS,
                    distance=dist)


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    x, y = _problem()
    xt, yt = torch.tensor(x), torch.tensor(y)

    def tpush(x, y):
        return (x + torch.where(y[:, None] == 1, -0.06, 0.06)).clamp(0, 1)

    res = run_cascade(lambda a: (a[:, 0] > 0.5).long(), [Attack("t", tpush, info=lambda: {"queries": 1})], xt, yt,
                      norm="linf", eps=EPS, distance=lambda a, b: (a - b).abs().flatten(1).amax(1))
    assert list(res.broken_by) == ["", "t", "t", "", "", "clean"]
    assert torch.is_tensor(res.x_adv) and res.extra == {"t": {"queries": 1}}
    assert res.to_json()["broken_by"] == {"clean": 1, "t": 2}
