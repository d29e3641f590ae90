"""The attack objects (:mod:`toymodels.torch.attack_objects`) and the evaluation cascade
(:mod:`toymodels.torch.evaluate`): train/eval modes and BatchNorm statistics survive an attack, arguments
are checked at construction, the objects are the functional attacks, the cascade's bookkeeping agrees
with re-classifying its x_adv, the cascade is never weaker than its attacks, and it reaches the robust
accuracy of torchattacks' cascade of the same attacks and budgets on the trained toy CNN.

Monte-Carlo comparisons are paired over the same test points: with b = #(robust for us, broken by the
reference) and c = #(broken for us, robust for the reference), the difference of robust accuracies is
(b − c)/n with standard error ≈ √(b + c)/n (McNemar), and we allow 4 of those.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from attack_models import EPS_L2, EPS_LINF, trained_cnn  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch import attack_objects as ao  # noqa: E402
from toymodels.torch.apgd import apgd  # noqa: E402
from toymodels.torch.evaluate import distance, evaluate  # noqa: E402
from toymodels.torch.pgd import pgd  # noqa: E402

N_CMP = 100          # trained-CNN points of the comparisons (the first 100 test points)


def _bn_model(K: int = 5) -> nn.Module:
    """A small net with BatchNorm and Dropout, its running statistics moved away from their init, left in
    train mode except the Dropout (mixed modes must survive too)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(),
                      nn.Linear(4 * 8 * 8, K))
    with torch.no_grad():
        m(torch.rand(16, 3, 8, 8))            # train mode: updates running_mean / running_var
    m.train()
    m[3].eval()
    return m


def _xy(n: int = 6, K: int = 5):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, K, (n,), generator=g)


def _snapshot(m):
    return {k: v.clone() for k, v in m.state_dict().items()}, [mod.training for mod in m.modules()]


OBJECTS = [
    (ao.PGD, dict(steps=3, restarts=2)),
    (ao.APGD, dict(steps=4)),
    (ao.APGD, dict(steps=4, norm="l2", eps=0.5, loss="dlr")),
    (ao.APGDT, dict(steps=3, n_target_classes=2)),
    (ao.FAB, dict(steps=3, n_target_classes=2)),
    (ao.FAB, dict(steps=3, targeted=False, norm="l2", eps=0.5)),
    (ao.Square, dict(n_queries=20)),
    (ao.AutoAttack, dict(version="fast", steps=3)),
    (ao.AutoAttack, dict(steps=2, n_queries=10)),
]


@pytest.mark.parametrize("cls,kw", OBJECTS, ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_objects_restore_modes_and_batchnorm_statistics(cls, kw):
    """After an attack every parameter and buffer (BatchNorm running mean/var, its batch counter) is
    bitwise unchanged and every submodule has its own mode back; x_adv is feasible (‖x_adv − x‖_p ≤
    ε(1 + 10⁻⁶), in [0, 1]) and on x's device and dtype."""
    model = _bn_model()
    x, y = _xy()
    state, modes = _snapshot(model)
    kw = {"eps": 8 / 255, **kw}
    x_adv = cls(model, **kw)(x, y)
    after, modes_after = _snapshot(model)
    assert modes_after == modes
    for k in state:
        assert torch.equal(state[k], after[k]), k
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    d = distance(kw.get("norm", "linf"))(x_adv, x)
    assert np.all(d <= kw["eps"] * (1 + 1e-6) + 1e-7), d
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_the_batchnorm_check_can_fail():
    """The premise of the test above: an attack run on a model in train mode does move the BatchNorm
    statistics (so the unchanged state is the object's doing)."""
    model = _bn_model()
    x, y = _xy()
    before = model[1].running_mean.clone()
    pgd(model, x, y, eps=8 / 255, steps=2)
    assert not torch.equal(before, model[1].running_mean)


class _Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


def test_modes_restored_when_the_attack_raises():
    model = nn.Sequential(_bn_model(), _Boom()).train()
    modes = [m.training for m in model.modules()]
    with pytest.raises(RuntimeError, match="boom"):
        ao.APGD(model, eps=0.1, steps=2)(*_xy())
    assert [m.training for m in model.modules()] == modes


@pytest.mark.parametrize("cls,kw,field", [
    (ao.APGD, dict(eps=0.0), "eps"), (ao.APGD, dict(eps=-1.0), "eps"), (ao.PGD, dict(eps=0.1, norm="l3"), "norm"),
    (ao.APGD, dict(eps=0.1, loss="mse"), "loss"), (ao.APGDT, dict(eps=0.1, steps=0), "steps"),
    (ao.FAB, dict(eps=0.1, beta=0.0), "beta"), (ao.Square, dict(eps=0.1, p_init=1.5), "p_init"),
    (ao.Square, dict(eps=0.1, schedule="paper"), "schedule"), (ao.PGD, dict(eps=0.1, random_start=False, restarts=2),
                                                                "restarts"),
    (ao.AutoAttack, dict(eps=0.1, version="plus"), "version"), (ao.AutoAttack, dict(eps=0.1, attacks=["cw"]), "attacks"),
    (ao.AutoAttack, dict(eps=0.1, attacks=["square", "square"]), "attacks"),
])
def test_objects_check_arguments_at_construction(cls, kw, field):
    with pytest.raises(ConfigError) as e:
        cls(_bn_model(), **kw)
    assert e.value.field == field


def test_bad_model_and_inputs_are_config_errors():
    with pytest.raises(ConfigError) as e:
        ao.APGD("not a model", eps=0.1)
    assert e.value.field == "model"
    atk = ao.APGD(_bn_model(), eps=0.1, steps=2)
    x, y = _xy()
    with pytest.raises(ConfigError) as e:
        atk(x * 2, y)                         # normalized inputs: outside [0, 1]
    assert e.value.field == "x"
    with pytest.raises(ConfigError) as e:
        atk(x, y[:3])
    assert e.value.field == "y"


def test_repr_shows_the_configuration():
    r = repr(ao.APGDT(_bn_model(), norm="l2", eps=0.5, steps=7, n_target_classes=3))
    assert r.startswith("APGDT(model=Sequential") and "norm='l2'" in r and "eps=0.5" in r and "steps=7" in r
    assert "n_target_classes=3" in r and "seed=0" in r


def test_objects_are_the_functional_attacks():
    """APGD / APGD-T objects return exactly the functional attack's x_adv on the eval-mode model;
    APGD-T's ``n_target_classes`` = 9 means every other class (capped at K − 1 = 4, AutoAttack's usage)."""
    model = _bn_model()
    x, y = _xy(8)
    got = ao.APGD(model, eps=8 / 255, steps=5, seed=3)(x, y)
    got_t = ao.APGDT(model, eps=8 / 255, steps=5, seed=3)(x, y)
    model.eval()
    assert torch.equal(got, apgd(model, x, y, eps=8 / 255, steps=5, seed=3))
    assert torch.equal(got_t, apgd(model, x, y, eps=8 / 255, steps=5, seed=3, targeted=True, loss="dlr",
                                   n_target_classes=4))


# ------------------------------------------------------------------------------------------------
# the cascade on the trained toy CNN

@pytest.fixture(scope="module")
def cnn():
    model, x, y = trained_cnn()
    return model, x[:N_CMP], y[:N_CMP]


@pytest.fixture(scope="module")
def fast_linf(cnn):
    model, x, y = cnn
    return evaluate(model, x, y, norm="linf", eps=EPS_LINF, version="fast", seed=0)


def _robust_mask(model, x_adv, y) -> np.ndarray:
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).numpy()


def test_cascade_bookkeeping_agrees_with_reclassifying(cnn, fast_linf):
    """robust ≤ clean, robust accuracy non-increasing along the stages, and per point: "clean" ⇔
    misclassified x; a stage name ⇒ x_adv misclassified and feasible; "" (robust) ⇒ x_adv = x correctly
    classified; the accuracies are the fractions of these labels."""
    model, x, y = cnn
    r = fast_linf
    with torch.no_grad():
        clean_ok = (model(x).argmax(1) == y).numpy()
    adv_ok = _robust_mask(model, r.x_adv, y)
    assert list(r.robust_after) == ["apgd-ce", "apgd-t"]
    seq = [r.clean_acc, *r.robust_after.values()]
    assert all(b <= a for a, b in zip(seq, seq[1:])) and r.robust_acc == seq[-1] <= r.clean_acc
    assert np.array_equal(r.broken_by == "clean", ~clean_ok)
    broken = np.isin(r.broken_by, ["apgd-ce", "apgd-t"])
    assert not adv_ok[broken].any()
    assert np.all(distance("linf")(r.x_adv, x)[broken] <= EPS_LINF * (1 + 1e-6))
    assert adv_ok[r.robust].all() and torch.equal(r.x_adv[torch.from_numpy(r.robust)], x[torch.from_numpy(r.robust)])
    assert r.clean_acc == clean_ok.mean() and r.robust_acc == r.robust.mean() == adv_ok.mean()
    assert sum(r.invalid.values()) == 0
    assert 0 < r.robust_acc < r.clean_acc           # the model is neither broken everywhere nor robust


def test_cascade_is_never_weaker_than_its_attacks(cnn, fast_linf):
    """Each stage alone, on the same (correctly classified) points with the same seed. APGD-CE is the
    first stage with the same points and draws: every point it breaks alone is broken in the cascade
    (exactly). APGD-T alone draws other starts (it sees more points): paired tolerance of 4 s.e."""
    model, x, y = cnn
    r = fast_linf
    ok = torch.from_numpy(r.broken_by != "clean")
    xs, ys = x[ok], y[ok]
    alone_ce = _robust_mask(model, ao.APGD(model, eps=EPS_LINF, seed=0)(xs, ys), ys)
    cascade = r.robust[ok.numpy()]
    assert not (cascade & ~alone_ce).any()          # cascade robust ⊆ APGD-CE robust
    alone_t = _robust_mask(model, ao.APGDT(model, eps=EPS_LINF, n_target_classes=3, seed=0)(xs, ys), ys)
    b, c = int(np.sum(cascade & ~alone_t)), int(np.sum(~cascade & alone_t))
    assert b - c <= 4 * math.sqrt(b + c), (b, c)
    assert cascade.sum() <= min(alone_ce.sum(), alone_t.sum()) + 4 * math.sqrt(b + c)


def _paired_close(ours: np.ndarray, theirs: np.ndarray) -> tuple[int, int]:
    b, c = int(np.sum(ours & ~theirs)), int(np.sum(~ours & theirs))
    assert abs(b - c) <= 4 * math.sqrt(b + c), (b, c, ours.mean(), theirs.mean())
    return b, c


def test_fast_cascade_matches_torchattacks(cnn, fast_linf):
    """ℓ∞ 8/255, 100 points, seed 0: our fast cascade (APGD-CE 100 steps, APGD-T 3 targets × 100 steps)
    vs torchattacks.MultiAttack([APGD(ce, 100 steps), APGDT(100 steps, n_classes=4 → 3 targets)]).
    Measured: 0.31 both."""
    ta = pytest.importorskip("torchattacks")
    model, x, y = cnn
    ref = ta.MultiAttack([ta.APGD(model, norm="Linf", eps=EPS_LINF, steps=100, loss="ce", seed=0),
                          ta.APGDT(model, norm="Linf", eps=EPS_LINF, steps=100, n_classes=4, seed=0)])
    _paired_close(fast_linf.robust, _robust_mask(model, ref(x, y), y))


def test_standard_cascade_matches_torchattacks_l2(cnn):
    """ℓ₂ ε = 0.5, 100 points, seed 0: the standard cascade (APGD-CE, APGD-T, FAB-T, Square) at the
    budget of ``torchattacks.AutoAttack``'s defaults (10 iterations; Square cut to 500 proposals for the
    test's runtime) vs torchattacks.MultiAttack of APGD, APGDT(n_classes=K), FAB(multi_targeted,
    n_classes=K) and Square with the same budgets."""
    ta = pytest.importorskip("torchattacks")
    model, x, y = cnn
    K = int(model(x[:1]).shape[1])
    ours = evaluate(model, x, y, norm="l2", eps=EPS_L2, version="standard", steps=10, n_queries=501, seed=0)
    kw = dict(norm="L2", eps=EPS_L2, seed=0)
    ref = ta.MultiAttack([ta.APGD(model, steps=10, loss="ce", **kw), ta.APGDT(model, steps=10, n_classes=K, **kw),
                          ta.FAB(model, steps=10, multi_targeted=True, n_classes=K, **kw),
                          ta.Square(model, n_queries=500, p_init=0.8, **kw)])
    assert list(ours.robust_after) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert "square" not in ours.extra or ours.extra["square"]["n_attacked"] == int(
        round(ours.robust_after["fab-t"] * ours.n))
    _paired_close(ours.robust, _robust_mask(model, ref(x, y), y))
