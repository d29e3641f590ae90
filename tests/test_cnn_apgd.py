"""APGD / APGD-T / PGD on the numba CNN (toymodels.cnn.apgd) and the numpy losses (toymodels.cnn.losses).

References: finite differences and hand-derived numbers (the checkpoint sequence), the plain-numpy
vector–Jacobian product of toymodels.cnn.vjp, the torch autograd of the shared torch losses, and the
torch APGD / PGD (toymodels.torch.apgd / pgd, written independently) on the float64 torch twin with
the same starting noise — draw for draw. The target model is a small CNN (8×8 images, 10 classes,
weights ×4 so that ReLU masks change inside the ball) labelled by its own predictions, at radii where
the attacks break about 70 % of the points, so step halving, restarts from x_max and the
broken/unbroken bookkeeping are all exercised.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import fd_grad, small_cnn

from toymodels.cnn import losses as L
from toymodels.cnn import model as cnn
from toymodels.cnn.apgd import apgd, apgd_start_noise, apgd_t, checkpoints, pgd, pgd_start_noise
from toymodels.cnn.vjp import logits_and_vjp, loss_and_input_grad
from toymodels.errors import ConfigError

RADII = {"linf": 4 / 255, "l2": 0.2}


def _problem(N=40, seed=0):
    p, x, _ = small_cnn(seed, N=N, K=10, weight_scale=4.0)
    return p, x, cnn.logits(p, x).argmax(1)


def _logits_cases(seed=0, n=12, K=6):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, (n, K))
    y = rng.integers(0, K, n)
    t = (y + rng.integers(1, K, n)) % K
    return z, y, t


@pytest.mark.parametrize("name", ["margin", "ce", "ce_targeted", "dlr", "dlr_targeted"])
def test_loss_gradients_match_finite_differences(name):
    """∂loss/∂z of every loss against central differences (h = 1e-6, error O(h²) ≈ 1e-10 on logits of
    size ~2 with no ties) to 1e-7; every row of the gradient sums to 0 (shift invariance)."""
    z, y, t = _logits_cases()
    fn = {"margin": lambda zz, i: L.margin(zz, y[i:i + 1]), "ce": lambda zz, i: L.ce(zz, y[i:i + 1]),
          "ce_targeted": lambda zz, i: L.ce_targeted(zz, t[i:i + 1]),
          "dlr": lambda zz, i: L.dlr(zz, y[i:i + 1]),
          "dlr_targeted": lambda zz, i: L.dlr_targeted(zz, y[i:i + 1], t[i:i + 1])}[name]
    grad = {"margin": lambda: L.margin_grad(z, y), "ce": lambda: L.ce_grad(z, y),
            "ce_targeted": lambda: L.ce_targeted_grad(z, t), "dlr": lambda: L.dlr_grad(z, y),
            "dlr_targeted": lambda: L.dlr_targeted_grad(z, y, t)}[name]
    loss, v = grad()
    for i in range(len(y)):
        fd = fd_grad(lambda row: float(fn(row[None, :], i)[0]), z[i])
        np.testing.assert_allclose(v[i], fd, atol=1e-7)
        assert loss[i] == pytest.approx(float(fn(z[i:i + 1], i)[0]), abs=1e-15)
    np.testing.assert_allclose(v.sum(axis=1), 0.0, atol=1e-12)


def test_losses_match_the_torch_losses():
    """The numpy losses and gradients equal toymodels.torch.losses + autograd (float64) to 1e-12."""
    torch = pytest.importorskip("torch")
    from toymodels.torch import losses as TL

    z, y, t = _logits_cases(1, n=20, K=10)
    zt, yt, tt = torch.tensor(z, requires_grad=True), torch.tensor(y), torch.tensor(t)
    for loss, target in (("ce", None), ("ce", tt), ("dlr", None), ("dlr", tt)):
        li = TL.attack_loss(loss, zt, yt, target)
        g, = torch.autograd.grad(li.sum(), zt)
        ln, vn = L.attack_loss_grad(loss, z, y, None if target is None else t)
        np.testing.assert_allclose(ln, li.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(vn, g.numpy(), atol=1e-12)
    np.testing.assert_allclose(L.margin(z, y), TL.margin(zt, yt).detach().numpy(), atol=1e-12)


def test_loss_validation():
    z, y, t = _logits_cases(K=3)
    with pytest.raises(ConfigError):
        L.dlr_targeted(z, y, t)          # needs K >= 4
    with pytest.raises(ConfigError):
        L.attack_loss_grad("hinge", z, y)


@pytest.mark.parametrize("loss,targeted", [("ce", False), ("ce", True), ("dlr", False), ("dlr", True)])
def test_input_gradient_matches_the_numpy_vjp(loss, targeted):
    """The fast input gradient (numba CE passes combined by Jᵀv = −Σ_k v_k ∇ₓCE(x, k)) equals the plain
    numpy Jᵀv (forward pass + transposed convolution) to 1e-12 relative, and finite differences of the
    loss along 3 random directions to 1e-6 (relative to the directional derivative's scale)."""
    p, x, y = _problem(N=8)
    t = (y + 3) % 10 if targeted else None
    P = cnn._params(p)
    li, g, z = loss_and_input_grad(P, x, y, loss, t)
    z2, vjp = logits_and_vjp(P, x)
    l2, v = L.attack_loss_grad(loss, z2, y, t)
    scale = np.abs(g).max()
    np.testing.assert_allclose(g, vjp(v), atol=1e-12 * scale)
    np.testing.assert_allclose(li, l2, atol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(3):
        d = rng.normal(size=x.shape)
        f = lambda s: loss_and_input_grad(P, x + s[0] * d, y, loss, t)[0].sum()  # noqa: E731
        fd = fd_grad(f, np.zeros(1), h=1e-6)[0]
        assert fd == pytest.approx(float((g * d).sum()), rel=1e-6, abs=1e-6 * np.abs(g).sum())


def test_checkpoints_follow_the_paper():
    """Croce & Hein 2020, Sec. 3.2: p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06),
    w_j = ⌈p_j N_iter⌉. By hand for N = 100: the increments are .22, .19, .16, .13, .10, .07, then .06
    (floor): p = .22, .41, .57, .70, .80, .87, .93, .99 (next 1.05 > 1)."""
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    # N = 10: ⌊2.2⌋ = 2, shrink ⌊0.3⌋ → max(.., 1) = 1, least max(⌊0.6⌋, 1) = 1: windows 2, 1, 1, ...
    assert checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9, 10]


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("loss,targeted", [("ce", False), ("dlr", False), ("dlr", True), ("ce", True)])
def test_apgd_is_the_torch_apgd_draw_for_draw(norm, loss, targeted):
    """Same CNN (float64 torch twin), same raw starts: the numba APGD and toymodels.torch.apgd return the
    same x_adv to 1e-8 (measured ≤ 1e-15) and break the same points.

    Exception, untargeted DLR: once y is ranked third, DLR = a/(a + 10⁻¹²) with a = z_π₁ − z_π₃, i.e.
    1 − 10⁻¹²/a — a plateau on which the loss differences, and the gradient (∝ 10⁻¹²/a²), are at the
    level of rounding, so the two implementations may pick different later iterates of a point that is
    *already broken* (measured on seeds 0, 1: 1 and 6 of 40 points, ≤ 1e-4 apart). There we require the
    same broken set, agreement to 1e-8 on at least 80 % of the points, and every disagreeing point broken
    by both."""
    torch = pytest.importorskip("torch")
    from toymodels.cnn.torch_twin import to_torch
    from toymodels.torch.apgd import apgd as torch_apgd

    p, x, y = _problem()
    twin = to_torch(p)
    restarts, targets = (1, 3) if targeted else (2, 1)
    noise = apgd_start_noise(x.shape, norm=norm, count=restarts * targets, seed=3)
    kw = dict(norm=norm, eps=RADII[norm], steps=20, restarts=restarts, loss=loss, targeted=targeted,
              n_target_classes=targets)
    a = apgd(p, x, y, noise=noise, **kw)
    b = torch_apgd(twin, torch.from_numpy(x), torch.from_numpy(y), noise=torch.from_numpy(noise), **kw).numpy()
    broken_a, broken_b = cnn.logits(p, a).argmax(1) != y, cnn.logits(p, b).argmax(1) != y
    assert np.array_equal(broken_a, broken_b)
    assert 0.05 < broken_a.mean() < 0.95, broken_a.mean()    # broken and unbroken points were compared
    same = np.abs(a - b).reshape(len(x), -1).max(axis=1) <= 1e-8
    if loss == "dlr" and not targeted:
        assert same.mean() >= 0.8 and np.all(broken_a[~same]), (same.mean(), np.flatnonzero(~same))
    else:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_is_the_torch_pgd_draw_for_draw(norm):
    torch = pytest.importorskip("torch")
    from toymodels.cnn.torch_twin import to_torch
    from toymodels.torch.pgd import pgd as torch_pgd

    p, x, y = _problem()
    noise = pgd_start_noise(x.shape, norm=norm, eps=RADII[norm], restarts=2, seed=1)
    kw = dict(norm=norm, eps=RADII[norm], steps=10, restarts=2)
    a = pgd(p, x, y, noise=noise, **kw)
    b = torch_pgd(to_torch(p), torch.from_numpy(x), torch.from_numpy(y), noise=torch.from_numpy(noise), **kw)
    np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-8)


def test_linf_pgd_is_the_existing_cnn_pgd():
    """ℓ∞ CE PGD with one restart equals x + toymodels.cnn.attacks.pgd(...) (δ-returning, numba kernel)
    from the same start: attacks.pgd draws η ~ U[−ε, ε] from default_rng(seed), passed here as noise."""
    from toymodels.cnn.attacks import pgd as old_pgd

    p, x, y = _problem()
    eps = RADII["linf"]
    delta = old_pgd(p, x, y, eps, eps / 4, 10, 1, seed=5)
    eta = np.random.default_rng(5).uniform(-eps, eps, size=x.shape)
    a = pgd(p, x, y, norm="linf", eps=eps, steps=10, noise=eta[None])
    np.testing.assert_allclose(a, x + delta, rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("attack", ["apgd-ce", "apgd-dlr", "apgd-t", "pgd"])
def test_feasible_and_never_worse_than_x(norm, attack):
    """x_adv ∈ [0, 1] and ‖x_adv − x‖_p ≤ ε(1 + 1e-6); every point either comes back misclassified or
    exactly x (APGD returns x for points it did not break); clean-misclassified points stay broken."""
    p, x, y = _problem()
    y = y.copy()
    y[:3] = (y[:3] + 1) % 10                     # three points misclassified before any attack
    eps = RADII[norm]
    run = {"apgd-ce": lambda: apgd(p, x, y, norm=norm, eps=eps, steps=10),
           "apgd-dlr": lambda: apgd(p, x, y, norm=norm, eps=eps, steps=10, loss="dlr"),
           "apgd-t": lambda: apgd_t(p, x, y, norm=norm, eps=eps, steps=10, n_target_classes=2),
           "pgd": lambda: pgd(p, x, y, norm=norm, eps=eps, steps=10)}[attack]
    a = run()
    d = (a - x).reshape(len(x), -1)
    dist = np.abs(d).max(1) if norm == "linf" else np.sqrt((d ** 2).sum(1))
    assert a.min() >= 0 and a.max() <= 1
    assert np.all(dist <= eps * (1 + 1e-6)), dist.max() / eps
    wrong = cnn.logits(p, a).argmax(1) != y
    assert wrong[:3].all()
    if attack != "pgd":
        assert np.all(wrong | (dist == 0))


def test_more_restarts_never_break_fewer_points():
    """Restart r draws from stream (seed, "apgd", r) whatever the number of restarts, and later restarts
    only add broken points: the broken set with 1 restart ⊆ the broken set with 3 (by construction)."""
    p, x, y = _problem()
    kw = dict(norm="linf", eps=2 / 255, steps=10, seed=4)
    b1 = cnn.logits(p, apgd(p, x, y, restarts=1, **kw)).argmax(1) != y
    b3 = cnn.logits(p, apgd(p, x, y, restarts=3, **kw)).argmax(1) != y
    assert np.all(b3 >= b1)


def test_default_draws_are_the_documented_streams():
    """Without ``noise`` the starts are apgd_start_noise(seed) (so noise=that array gives the same x_adv),
    and a point's start does not depend on the other points (draws for the whole batch)."""
    p, x, y = _problem(N=12)
    a = apgd(p, x, y, norm="l2", eps=0.2, steps=5, restarts=2, seed=7)
    b = apgd(p, x, y, norm="l2", eps=0.2, steps=5, restarts=2, noise=apgd_start_noise(x.shape, norm="l2",
                                                                                    count=2, seed=7))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("kw", [dict(eps=0.0), dict(eps=-1.0), dict(eps=0.1, norm="l1"), dict(eps=0.1, loss="hinge"),
                                dict(eps=0.1, steps=0), dict(eps=0.1, restarts=0), dict(eps=0.1, rho=1.5),
                                dict(eps=0.1, targeted=True, n_target_classes=10),
                                dict(eps=0.1, noise=np.zeros((2, 1, 1, 1, 1)))])
def test_bad_arguments_are_config_errors(kw):
    p, x, y = _problem(N=4)
    with pytest.raises(ConfigError):
        apgd(p, x, y, steps=kw.pop("steps", 2), **kw)


def test_bad_pgd_arguments_are_config_errors():
    p, x, y = _problem(N=4)
    for kw in (dict(eps=0.0), dict(eps=0.1, alpha=0.0), dict(eps=0.1, random_start=False, restarts=2),
               dict(eps=0.1, norm="linf2")):
        with pytest.raises(ConfigError):
            pgd(p, x, y, **kw)
    assert math.isfinite(float(pgd(p, x, y, eps=0.1, steps=1).sum()))
