"""Square Attack for torch models (toymodels.torch.square) against its numpy/numba twin and invariants.

Cross-checks run the twin (toymodels.square, numpy backends — themselves tested equal to the numba
kernels in tests/test_square.py) on the single-layer CNN and the torch attack on its torch twin
(toymodels.cnn.torch_twin.to_torch), float64, same seed. Invariant tests are properties that hold
for every seed (checked for seeds 0–99 outside the suite); no Monte-Carlo tolerances are involved.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import small_cnn  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.cnn import model as cnn  # noqa: E402
from toymodels.cnn.torch_twin import to_torch  # noqa: E402
from toymodels.square import _reference, attack_l2 as tw_l2  # noqa: E402
from toymodels.square.attack_linf import square_attack_linf  # noqa: E402
from toymodels.torch import square as sq  # noqa: E402

SEED = 0  # any seed in 0..99 passes


def _cnn_problem(seed, n=12, side=10, K=4):
    return small_cnn(seed, N=n, C=3, H=side, M=4, K=K)


def _twin_predict(P):
    return lambda v: cnn.logits(P, v, backend="numpy")


# ---------------------------------------------------------------- cross-checks with the twin

@pytest.mark.parametrize("targeted", [False, True])
def test_linf_equals_twin_on_cnn(targeted):
    P, x, y = _cnn_problem(1)
    ref = square_attack_linf(_twin_predict(P), x, y, 0.02, 150, 0.1, targeted=targeted, seed=3, backend="numpy")
    got = sq.square_attack(to_torch(P), torch.tensor(x), torch.tensor(y), norm="linf", eps=0.02, n_queries=150,
                           p_init=0.1, targeted=targeted, seed=3)
    assert 0 < ref.success.sum() < len(y) or targeted  # a non-trivial run
    np.testing.assert_array_equal(got.n_queries, ref.n_queries)
    np.testing.assert_array_equal(got.success, ref.success)
    np.testing.assert_array_equal(got.sides, ref.sides)
    np.testing.assert_allclose(got.x_adv.numpy(), ref.x_adv, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got.loss, ref.loss, rtol=0, atol=1e-12)
    if targeted:
        np.testing.assert_array_equal(got.target, ref.target)


@pytest.mark.parametrize("targeted", [False, True])
def test_l2_equals_twin_on_cnn(targeted):
    # short budget: over hundreds of iterations the ℓ₂ iterates of two implementations drift apart
    # (a "ghost" mass √(rounding) appears when ε² − ‖ν‖² ≈ 0 and W₁ ∪ W₂ is empty, and its direction
    # is later normalized), so equality is checked up to 30 queries (60 drifted on another platform:
    # numpy 2.5 / torch 2.11 / 16 threads); each step is checked below.
    P, x, y = _cnn_problem(2)
    ref = tw_l2.square_attack_l2(_twin_predict(P), x, y, 0.5, 30, 0.1, targeted=targeted, seed=4)
    got = sq.square_attack(to_torch(P), torch.tensor(x), torch.tensor(y), norm="l2", eps=0.5, n_queries=30,
                           p_init=0.1, targeted=targeted, seed=4)
    assert ref.success.any()
    np.testing.assert_array_equal(got.n_queries, ref.n_queries)
    np.testing.assert_array_equal(got.success, ref.success)
    np.testing.assert_array_equal(got.sides, ref.sides)
    np.testing.assert_allclose(got.x_adv.numpy(), ref.x_adv, rtol=0, atol=1e-10)


def test_l2_init_and_proposal_equal_twin_steps():
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (6, 2, 11, 13))
    eps = 0.7
    a = tw_l2.l2_init(x, eps, np.random.default_rng(9))
    b = sq.l2_init(torch.tensor(x), eps, np.random.default_rng(9)).numpy()
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-15)
    for h in (3, 4, 7, 11):
        p1 = np.stack([rng.integers(0, 11 - h + 1, 6), rng.integers(0, 13 - h + 1, 6)], axis=1)
        p2 = np.stack([rng.integers(0, 11 - h + 1, 6), rng.integers(0, 13 - h + 1, 6)], axis=1)
        fl, sg = rng.random(6) < 0.5, rng.choice([-1.0, 1.0], (6, 2))
        xa, nua = tw_l2.l2_propose(x, a, eps, p1, p2, h, fl, sg)
        xb, nub = sq.l2_propose(torch.tensor(x), torch.tensor(a), eps, p1, p2, h, fl, sg)
        np.testing.assert_allclose(nub.numpy(), nua, rtol=0, atol=1e-14)
        np.testing.assert_allclose(xb.numpy(), xa, rtol=0, atol=1e-14)
        # Prop. 3.4.1: the iterate lies on the ε-sphere before clipping
        np.testing.assert_allclose(torch.linalg.vector_norm(nub.flatten(1), dim=1).numpy(), eps, rtol=1e-12)
        a = xa


# ---------------------------------------------------------------- invariants on a generic nn.Module

class TinyNet(torch.nn.Module):
    """Conv-BN-ReLU-dropout-linear: not the CNN twin; BN and dropout test the eval-mode handling."""

    def __init__(self, K=5):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(6)
        self.drop = torch.nn.Dropout(0.3)
        self.lin = torch.nn.Linear(6 * 8 * 8, K)

    def forward(self, x):
        return self.lin(self.drop(torch.relu(self.bn(self.conv(x)))).flatten(1))


def _net(seed, dtype):
    torch.manual_seed(seed)
    net = TinyNet().to(dtype)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(10, 3, 8, 8, generator=g, dtype=dtype)
    x[:, :, :2] = 0.0   # pixels at the box boundary exercise the [0, 1] clipping
    x[:, :, -2:] = 1.0
    y = torch.randint(0, 5, (10,), generator=g)
    return net, x, y


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("norm,eps", [("linf", 0.03), ("l2", 0.4)])
@pytest.mark.parametrize("targeted", [False, True])
def test_invariants(dtype, norm, eps, targeted):
    net, x, y = _net(SEED, dtype)
    net.train()
    budget = 80
    res = sq.square_attack(net, x, y, norm=norm, eps=eps, n_queries=budget, targeted=targeted, seed=SEED)
    assert net.training and net.bn.training and net.drop.training   # flags restored
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    d = (res.x_adv - x).flatten(1)
    nrm = d.abs().max(dim=1).values if norm == "linf" else torch.linalg.vector_norm(d, dim=1)
    assert float(nrm.max()) <= eps * (1 + tol)
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    assert res.n_queries.min() >= 1 and res.n_queries.max() <= budget
    assert np.all(res.n_queries[~res.success] == budget)          # a failed point spent the whole budget
    net.eval()
    with torch.no_grad():
        pred = net(res.x_adv).argmax(dim=1).numpy()
    lab = res.target if targeted else y.numpy()
    hit = pred == lab if targeted else pred != lab
    np.testing.assert_array_equal(hit, res.success)               # success ⟺ (mis)classified as claimed
    if targeted:
        assert np.all(res.target != y.numpy())


def test_points_already_misclassified_cost_one_query_and_hopeless_points_the_budget():
    # logits that ignore x: class 0 always wins by a margin larger than any change
    class Const(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([5.0, 0.0, -1.0], dtype=x.dtype).expand(x.shape[0], 3) + 0 * x.sum()

    x = torch.rand(6, 1, 7, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 2, 1])
    res = sq.square_attack(Const(), x, y, norm="linf", eps=0.1, n_queries=25, seed=SEED)
    np.testing.assert_array_equal(res.n_queries, [25, 25, 25, 1, 1, 1])
    np.testing.assert_array_equal(res.success, [False, False, False, True, True, True])
    # no proposal strictly lowers a constant loss: the iterate stays the documented vertical-stripe init
    stripes = np.random.default_rng(SEED).choice(np.array([-0.1, 0.1]), size=(6, 1, 1, 7))
    np.testing.assert_array_equal(res.x_adv.numpy(), np.clip(x.numpy() + stripes, 0, 1))


def test_linf_proposal_changes_the_window_and_stays_in_the_box():
    rng = np.random.default_rng(7)
    x = torch.tensor(rng.uniform(0, 1, (5, 3, 9, 9)))
    eps = 0.05
    xb = torch.clamp(x + eps * torch.tensor(rng.choice([-1.0, 1.0], (5, 3, 1, 9))), 0, 1)
    pos = np.stack([rng.integers(0, 6, 5), rng.integers(0, 6, 5)], axis=1)
    signs = rng.choice([-1.0, 1.0], (16, 5, 3))
    x_new, used = sq.linf_propose(x, xb, eps, pos, 4, signs)
    for n in range(5):
        r, c = pos[n]
        win = (slice(None), slice(r, r + 4), slice(c, c + 4))
        assert not torch.equal(x_new[n][win], xb[n][win])           # the window changed
        out = torch.ones(9, 9, dtype=torch.bool)
        out[r:r + 4, c:c + 4] = False
        assert torch.equal(x_new[n][:, out], xb[n][:, out])         # nothing outside it did
        t = int(used[n]) - 1
        expect = torch.clamp(x[n][win] + eps * torch.tensor(signs[t, n])[:, None, None], 0, 1)
        assert torch.equal(x_new[n][win], expect)                   # ±ε per channel (= x̂ ± 2ε clipped)
    assert float((x_new - x).abs().max()) <= eps + 1e-15
    ref_x, ref_used = np.empty_like(x.numpy()), np.empty(5, dtype=np.int64)
    _reference.linf_propose(x.numpy(), xb.numpy(), eps, pos, 4, signs, ref_x, ref_used)
    np.testing.assert_array_equal(x_new.numpy(), ref_x)
    np.testing.assert_array_equal(used.numpy(), ref_used)


def test_linf_proposal_uses_last_try_when_no_try_changes_the_window():
    # x = x̂ = 0 and all tries negative: clip(0 − ε) = 0 never changes the window (Alg. 2 gives up)
    x = torch.zeros(2, 2, 6, 6, dtype=torch.float64)
    x[1] = 0.5
    xb = x.clone()
    signs = -np.ones((5, 2, 2))
    signs[3, 1] = 1.0   # point 1 changes at its first try already (0.5 − ε ≠ 0.5); try 3 irrelevant
    x_new, used = sq.linf_propose(x, xb, 0.1, np.array([[1, 2], [0, 0]]), 3, signs)
    assert used.tolist() == [5, 1]
    assert torch.equal(x_new[0], xb[0])
    assert torch.allclose(x_new[1, :, :3, :3], torch.full((2, 3, 3), 0.4, dtype=torch.float64), atol=0)


@pytest.mark.parametrize("kw,field", [
    (dict(eps=0.0), "eps"), (dict(eps=-1.0), "eps"), (dict(eps=0.1, p_init=0.0), "p_init"),
    (dict(eps=0.1, p_init=1.5), "p_init"), (dict(eps=0.1, n_queries=0), "n_queries"),
    (dict(eps=0.1, norm="l1"), "norm"), (dict(eps=0.1, max_tries=0), "max_tries"),
])
def test_bad_arguments_raise_config_errors_naming_the_field(kw, field):
    net, x, y = _net(0, torch.float64)
    with pytest.raises(ConfigError, match=f"^{field} "):
        sq.square_attack(net, x, y, **kw)


def test_inputs_outside_unit_box_rejected():
    net, x, y = _net(0, torch.float64)
    with pytest.raises(ConfigError, match=r"^x must lie in \[0, 1\]"):
        sq.square_attack(net, x + 1.5, y, eps=0.1)
    with pytest.raises(ConfigError, match=r"^y "):
        sq.square_attack(net, x, y[:-1], eps=0.1)
