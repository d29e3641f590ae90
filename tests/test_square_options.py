"""Square Attack options (toymodels.square.options / search, both twins): the p schedules against
hand-derived tables and torchattacks' ``p_selection``, the losses against torchattacks' formulas,
restarts (never lower the success of a point, queries accumulate), the size defaults, twin equality
with every option switched on, and robust accuracy vs ``torchattacks.Square`` on ``trained_cnn()``.

Deterministic tests are properties that hold for every seed (checked for seeds 0–99 outside the
suite). The comparison with torchattacks is Monte Carlo: see its docstring for n and the tolerance."""
from __future__ import annotations

import numpy as np
import pytest

from toymodels.cnn import model as cnn
from toymodels.errors import ConfigError
from toymodels.square.attack_l2 import l2_side, square_attack_l2
from toymodels.square.attack_linf import square_attack_linf, square_side
from toymodels.square.options import (P_HALVINGS, P_HALVINGS_REFERENCE, default_n_queries, default_p_init,
                                      p_schedule)
from toymodels.square.search import margin_and_loss

SEED = 0  # any seed in 0..99 passes


# ---------------------------------------------------------------- schedules

def _thesis_table(p, k):
    """Thesis l.961 by hand: halved at 10, 50, 200, 1000, 2000, 4000, 6000, 8000 (k ≥ threshold)."""
    for m, t in reversed(list(enumerate((10, 50, 200, 1000, 2000, 4000, 6000, 8000), start=1))):
        if k >= t:
            return p / 2 ** m
    return p


def _reference_table(p, k):
    """The authors' p_selection by hand: (10, 50] → p/2, (50, 200] → p/4, (200, 500] → p/8, (500, 1000]
    → p/16, (1000, 2000] → p/32, (2000, 4000] → p/64, (4000, 6000] → p/128, (6000, 8000] → p/256, > 8000 → p/512."""
    edges = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
    return p / 2 ** sum(k > e for e in edges)


def test_threshold_constants_by_hand():
    assert P_HALVINGS == (10, 50, 200, 1000, 2000, 4000, 6000, 8000)
    assert P_HALVINGS_REFERENCE == (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


@pytest.mark.parametrize("n", [101, 1000, 5001, 10001])
def test_schedules_without_rescaling_follow_the_raw_index(n):
    # rescale=False: the schedule of a 10^4 budget truncated at n; thesis index i, reference index i − 1
    for i in range(1, n):
        assert p_schedule(0.8, i, n, "thesis", rescale=False) == _thesis_table(0.8, i)
        assert p_schedule(0.8, i, n, "reference", rescale=False) == _reference_table(0.8, i - 1)


def test_reference_schedule_values_by_hand():
    # budget 1001 queries = 1000 proposals (torchattacks n_queries=1000): k = ⌊10 j⌋, j = i − 1
    p = 0.8
    table = {1: p, 2: p, 3: p / 2, 6: p / 2, 7: p / 4, 21: p / 4, 22: p / 8, 51: p / 8, 52: p / 16,
             101: p / 16, 102: p / 32, 201: p / 32, 202: p / 64, 401: p / 64, 402: p / 128, 601: p / 128,
             602: p / 256, 801: p / 256, 802: p / 512, 1000: p / 512}
    for i, v in table.items():
        assert p_schedule(p, i, 1001, "reference") == v, i
    # the thesis at the same budget: k = ⌊10⁴ i/1001⌋; no halving at 500
    assert p_schedule(p, 50, 1001, "thesis") == p / 8 and p_schedule(p, 60, 1001, "thesis") == p / 8


@pytest.mark.parametrize("Q", [100, 777, 5000])
@pytest.mark.parametrize("resc", [True, False])
def test_reference_schedule_equals_torchattacks_p_selection(Q, resc):
    torch = pytest.importorskip("torch")
    ta = pytest.importorskip("torchattacks")
    atk = ta.Square(torch.nn.Linear(2, 2), n_queries=Q, p_init=0.8, resc_schedule=resc)
    # torchattacks' iteration j (0-based, Q proposals) is our proposal i = j + 1 of a budget Q + 1
    for j in range(Q):
        assert p_schedule(0.8, j + 1, Q + 1, "reference", resc) == atk.p_selection(j), j


def test_bad_schedule_and_options_are_config_errors():
    with pytest.raises(ConfigError, match="^schedule "):
        p_schedule(0.5, 1, 10, "paper")
    x, y = np.full((2, 3, 8, 8), 0.5), np.array([0, 1])
    f = lambda v: np.zeros((len(v), 3))  # noqa: E731
    for kw, field in [(dict(loss="dlr"), "loss"), (dict(schedule="x"), "schedule"), (dict(rescale=1), "rescale"),
                      (dict(restarts=0), "restarts"), (dict(restarts=10 ** 4, n_queries=10 ** 4), "restarts")]:
        for attack in (square_attack_linf, square_attack_l2):
            with pytest.raises(ConfigError, match=f"^{field} "):
                attack(f, x, y, 0.1, **({"n_queries": 10} | kw))


# ---------------------------------------------------------------- defaults by size

def test_size_defaults():
    # AutoAttack's values for CIFAR-sized inputs, the thesis' ImageNet values for large ones
    assert default_p_init("linf", 32, 32) == default_p_init("l2", 28, 28) == 0.8
    assert default_p_init("linf", 224, 224) == 0.05 and default_p_init("l2", 299, 299) == 0.1
    assert default_n_queries(32, 32) == 5000 and default_n_queries(224, 224) == 1000


def test_attack_uses_the_size_defaults():
    const = lambda v: np.tile([1.0, 0.0, 0.0], (len(v), 1))  # noqa: E731  never fooled
    x, y = np.full((2, 3, 32, 32), 0.5), np.zeros(2, int)
    # N: fooled at the first query (labels ≠ 0), so only the side log shows the default budget 5000
    r = square_attack_linf(const, x, y + 1, 0.05, seed=SEED)
    assert r.n_queries.tolist() == [1, 1] and r.sides.shape == (4999,)
    # p: with N = 2 the only proposal has k = ⌊10⁴/2⌋ = 5000 ≥ 4000: six halvings of 0.8, side √(0.0125·1024) = 3.6
    r = square_attack_linf(const, x, y, 0.05, 2, seed=SEED)
    assert r.sides.tolist() == [square_side(0.8 / 64, 32, 32)] == [4]
    r = square_attack_l2(const, x[:, :, :20], y, 0.5, 30, seed=SEED)       # p = 0.8 on 20×32 images too
    assert r.sides.tolist() == [l2_side(p_schedule(0.8, i, 30), 20, 32) for i in range(1, 30)]


# ---------------------------------------------------------------- losses

def test_losses_equal_torchattacks_formulas():
    torch = pytest.importorskip("torch")
    ta = pytest.importorskip("torchattacks")
    from toymodels.torch.square import margin_and_loss as torch_loss

    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 7)) * 3
    y = rng.integers(0, 7, 50)
    for loss in ("margin", "ce"):
        # torchattacks evaluates the model itself: an identity "model" hands it our logits
        atk = ta.Square(torch.nn.Identity(), loss=loss)
        atk.device = "cpu"
        margin_ta, loss_ta = atk.margin_and_loss(torch.tensor(z), torch.tensor(y))
        ok, ours = margin_and_loss(z, y, False, loss)
        np.testing.assert_allclose(ours, loss_ta.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(ok, margin_ta.numpy() < 0)          # no ties in Gaussian logits
        ok_t, ours_t = torch_loss(torch.tensor(z), torch.tensor(y), False, loss)
        np.testing.assert_allclose(ours_t.numpy(), ours, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(ok_t.numpy(), ok)
    # targeted: CE(z, t) (the default) and max_{k≠t} z_k − z_t, by hand
    t = (y + 1) % 7
    lse = np.log(np.exp(z).sum(1))
    np.testing.assert_allclose(margin_and_loss(z, t, True)[1], lse - z[np.arange(50), t], rtol=1e-12)
    other = np.where(np.eye(7)[t] > 0, -np.inf, z).max(1)
    np.testing.assert_allclose(margin_and_loss(z, t, True, "margin")[1], other - z[np.arange(50), t])


# ---------------------------------------------------------------- restarts

def _problem(seed=1, n=16, side=10, K=4):
    P = cnn.init_params(C=3, H=side, W=side, M=4, K=K, seed=seed)
    x = np.random.default_rng(seed).uniform(0, 1, (n, 3, side, side))
    return P, x, cnn.logits(P, x).argmax(1)


@pytest.mark.parametrize("norm,eps", [("linf", 0.02), ("l2", 0.3)])
@pytest.mark.parametrize("loss", ["margin", "ce"])
def test_restarts_never_lower_success_and_queries_accumulate(norm, eps, loss):
    P, x, y = _problem()
    f = lambda v: cnn.logits(P, v)  # noqa: E731
    attack = square_attack_linf if norm == "linf" else square_attack_l2
    N = 40
    one = attack(f, x, y, eps, N, 0.3, loss=loss, seed=SEED)
    three = attack(f, x, y, eps, N, 0.3, loss=loss, restarts=3, seed=SEED)
    assert 0 < one.success.sum() < len(y)                          # a non-trivial run
    assert np.all(three.success[one.success])                      # the first restart is the one-restart run
    np.testing.assert_array_equal(three.n_queries[one.success], one.n_queries[one.success])
    np.testing.assert_array_equal(three.x_adv[one.success], one.x_adv[one.success])
    np.testing.assert_array_equal(three.sides[:N - 1], one.sides)
    later = ~one.success
    q = three.n_queries[later]
    assert np.all(q > N) and np.all(q <= 3 * N)
    assert np.all(q[~three.success[later]] == 3 * N)               # unbroken: three full budgets
    # restarts 2–3 attack exactly the unbroken points: every model row is one of their queries
    rows = []
    attack(lambda v: rows.append(len(v)) or f(v), x, y, eps, N, 0.3, loss=loss, restarts=3, seed=SEED)
    assert sum(rows) == three.n_queries.sum()
    pred = cnn.logits(P, three.x_adv).argmax(1)
    np.testing.assert_array_equal(pred != y, three.success)
    d = (three.x_adv - x).reshape(len(y), -1)
    assert (np.abs(d).max() if norm == "linf" else np.sqrt((d ** 2).sum(1)).max()) <= eps * (1 + 1e-12)


def test_ce_loss_accepts_a_success_whose_loss_is_not_lower():
    """With −CE the loss can rise while the point becomes misclassified; the reference code accepts
    it, so every point the attack reports successful is misclassified at x_adv and it spent its last
    query there (checked on the logits of each query)."""
    P, x, y = _problem(seed=3)
    last = {}

    def f(v):
        z = cnn.logits(P, v)
        for k, row in enumerate(v):
            owner = int(np.abs(row[None] - x).reshape(len(x), -1).max(1).argmin())
            last[owner] = z[k].argmax() != y[owner]
        return z

    r = square_attack_linf(f, x, y, 0.03, 60, 0.3, loss="ce", seed=SEED)
    assert r.success.any()
    for n in np.flatnonzero(r.success):
        assert last[n]
    np.testing.assert_array_equal(cnn.logits(P, r.x_adv).argmax(1) != y, r.success)


# ---------------------------------------------------------------- twins with every option

@pytest.mark.parametrize("norm,eps,N", [("linf", 0.02, 60), ("l2", 0.4, 25)])
@pytest.mark.parametrize("targeted,loss", [(False, "ce"), (True, "margin")])
def test_torch_twin_equal_with_options(norm, eps, N, targeted, loss):
    torch = pytest.importorskip("torch")
    from toymodels.cnn.torch_twin import to_torch
    from toymodels.torch.square import square_attack

    P, x, y = _problem(seed=2, n=12)
    kw = dict(targeted=targeted, loss=loss, schedule="reference", rescale=False, restarts=2, seed=5)
    f = lambda v: cnn.logits(P, v, backend="numpy")  # noqa: E731
    ref = (square_attack_linf(f, x, y, eps, N, 0.4, backend="numpy", **kw) if norm == "linf"
           else square_attack_l2(f, x, y, eps, N, 0.4, **kw))
    got = square_attack(to_torch(P), torch.tensor(x), torch.tensor(y), norm=norm, eps=eps, n_queries=N, p_init=0.4,
                        **kw)
    np.testing.assert_array_equal(got.n_queries, ref.n_queries)
    np.testing.assert_array_equal(got.success, ref.success)
    np.testing.assert_array_equal(got.sides, ref.sides)
    np.testing.assert_allclose(got.x_adv.numpy(), ref.x_adv, rtol=0, atol=1e-10)
    assert ref.n_queries.max() > N or ref.success.all()           # the second restart ran (or nothing left)


# ---------------------------------------------------------------- vs torchattacks.Square

@pytest.mark.parametrize("norm,Q", [("linf", 400), ("l2", 150)])
def test_failure_rate_matches_torchattacks_square(norm, Q):
    """``trained_cnn()`` (400 test points, the ≈ 267 correctly classified attacked), p_init 0.8, margin
    loss, the reference schedule rescaled to the budget (torchattacks' n_queries = Q proposals = our
    Q + 1 queries), one restart, seed 0 on both sides. The per-point outcomes (robust or not) are paired
    on the same points; the failure rates must agree within 4.5 standard errors of the mean paired
    difference (plus 1/n, so that one point of disagreement never fails when all others agree)."""
    torch = pytest.importorskip("torch")
    ta = pytest.importorskip("torchattacks")
    from attack_models import EPS_L2, EPS_LINF, trained_cnn
    from toymodels.torch.square import square_attack

    model, x, y = trained_cnn()
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    xc, yc = x[ok], y[ok]
    eps = EPS_LINF if norm == "linf" else EPS_L2
    atk = ta.Square(model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, n_queries=Q, n_restarts=1, p_init=0.8,
                    loss="margin", resc_schedule=True, seed=0)
    with torch.no_grad():
        robust_ta = (model(atk(xc, yc)).argmax(1) == yc).numpy().astype(float)
    r = square_attack(model, xc, yc, norm=norm, eps=eps, n_queries=Q + 1, p_init=0.8, schedule="reference", seed=0)
    robust = (~r.success).astype(float)
    d = robust - robust_ta
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert 0.05 < robust_ta.mean() < 0.98                          # neither side trivial
    assert abs(d.mean()) <= 4.5 * se + 1 / len(d), (robust.mean(), robust_ta.mean(), se)
