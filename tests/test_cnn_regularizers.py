"""Issue 14 regularizers of the numba CNN (toymodels.cnn.regularizers) and N-FGSM (toymodels.cnn.attacks.n_fgsm):
finite-difference gradients against the exact GradAlign kernel and torch double backprop (float64 twin), their
measured error order, parameter gradients against central differences in θ, ELLE's invariants, N-FGSM's norm
and noise distribution, the training config and a 1-epoch smoke run of every method. Tiny sizes only."""
from __future__ import annotations

import numpy as np
import pytest

from toymodels.cnn import attacks, model
from toymodels.cnn import regularizers as R
from toymodels.cnn.model import CNNParams
from toymodels.cnn.train import REGS, TrainConfig, default_lambda, resolve, train
from toymodels.datasets import load_images
from toymodels.errors import ConfigError

EPS = 8 / 255


def _problem(N=6, C=2, H=5, W=6, M=3, K=4, seed=0):
    """x in [0.1, 0.9] (so that x ± small steps stay in the box), labels, GradAlign noise, torch-scale
    parameters with a doubled conv weight (input-dependent ReLU masks)."""
    rng = np.random.default_rng(seed)
    p = model.init_params(C, H, W, M, K, seed=seed + 1)
    p.Wc *= 2
    x = rng.uniform(0.1, 0.9, (N, C, H, W))
    return p, x, rng.integers(0, K, N), rng.uniform(-EPS, EPS, x.shape)


def _rel(a: CNNParams, b) -> float:
    b = b.flat() if isinstance(b, CNNParams) else b
    return float(np.abs(a.flat() - b).max() / np.abs(b).max())


# ---------------------------------------------------------------------------------------------
# finite-difference GradAlign vs the exact double-backprop kernel: value, error, error order
# ---------------------------------------------------------------------------------------------
def test_gradalign_fd_matches_exact_kernel_with_order_two():
    p, x, y, eta = _problem()
    om, g_exact = model.gradalign_loss_and_grad(p, x, y, eta, both=False)
    o, g1 = R.gradalign_fd_loss_and_grad(p, x, y, eta, h=1e-3)
    _, g2 = R.gradalign_fd_loss_and_grad(p, x, y, eta, h=5e-4)
    assert o == pytest.approx(om, abs=1e-14)
    e1, e2 = _rel(g1, g_exact), _rel(g2, g_exact)
    assert e1 < 1e-6
    # central difference: halving h divides the error by 4 (band [3, 5]: the h⁴ term and rounding,
    # ~1e-16/h ≈ 1e-13 relative, are far below the h² error ~1e-9 here)
    assert 3.0 < e1 / e2 < 5.0, (e1, e2)
    # forward difference: order one (halving h halves the error, band [1.6, 2.4])
    _, f1 = R.gradalign_fd_loss_and_grad(p, x, y, eta, h=1e-3, scheme="forward")
    _, f2 = R.gradalign_fd_loss_and_grad(p, x, y, eta, h=5e-4, scheme="forward")
    assert 1.6 < _rel(f1, g_exact) / _rel(f2, g_exact) < 2.4
    # the returned clean input gradient is model.input_grad's
    _, _, gx = R.gradalign_fd_loss_and_grad(p, x, y, eta, return_input_grad=True)
    np.testing.assert_allclose(gx, model.input_grad(p, x, y), rtol=1e-12, atol=1e-15)


def test_numpy_backend_agrees():
    p, x, y, eta = _problem()
    for f in (lambda b: R.gradalign_fd_loss_and_grad(p, x, y, eta, backend=b),
              lambda b: R.gradnorm_loss_and_grad(p, x, y, backend=b),
              lambda b: R.cure_loss_and_grad(p, x, y, EPS, backend=b),
              lambda b: R.elle_loss_and_grad(p, x, y, EPS, seed=3, backend=b)):
        (va, ga), (vb, gb) = f("numba"), f("numpy")
        assert va == pytest.approx(vb, rel=1e-9, abs=1e-15)
        # FD gradients divide rounding differences by h: tolerance 1e-6 relative
        assert _rel(ga, gb) < 1e-6


# ---------------------------------------------------------------------------------------------
# gradient norm and CURE vs torch double backprop on the float64 twin
# ---------------------------------------------------------------------------------------------
def _torch_reference(p, x, y, kind, delta=None):
    torch = pytest.importorskip("torch")
    from toymodels.cnn.torch_twin import to_torch

    N, _, H, W = x.shape
    net = to_torch(p, H, W)
    yt = torch.tensor(y)

    def grad_at(pt):
        xt = torch.tensor(pt, requires_grad=True)
        loss = torch.nn.functional.cross_entropy(net(xt), yt, reduction="sum")
        return torch.autograd.grad(loss, xt, create_graph=True)[0]

    g = grad_at(x)
    if kind == "gradnorm":
        r = (g ** 2).sum() / N
    else:
        r = ((grad_at(x + delta) - g) ** 2).sum() / N
    grads = torch.autograd.grad(r, list(net.parameters()))
    return float(r.detach()), np.concatenate([t.detach().numpy().ravel() for t in grads])


@pytest.mark.parametrize("kind", ["gradnorm", "cure"])
def test_gradnorm_and_cure_match_torch_double_backprop(kind):
    p, x, y, _ = _problem()
    delta = attacks.fgsm(p, x, y, EPS)          # CURE's default δ: the FGSM point

    def ours(h):
        if kind == "gradnorm":
            return R.gradnorm_loss_and_grad(p, x, y, h=h)
        return R.cure_loss_and_grad(p, x, y, EPS, h=h)

    r_t, g_t = _torch_reference(p, x, y, kind, delta)
    (r1, g1), (_, g2) = ours(1e-3), ours(5e-4)
    assert r1 == pytest.approx(r_t, rel=1e-10, abs=1e-16)
    e1, e2 = _rel(g1, g_t), _rel(g2, g_t)
    assert e1 < 1e-6
    assert 3.0 < e1 / e2 < 5.0, (e1, e2)
    if kind == "cure":                         # an explicit delta gives the same
        r3, g3 = R.cure_loss_and_grad(p, x, y, EPS, h=1e-3, delta=delta)
        assert r3 == r1 and _rel(g3, g1.flat()) < 1e-12


# ---------------------------------------------------------------------------------------------
# parameter gradients vs central differences in θ (a random direction)
# ---------------------------------------------------------------------------------------------
def _theta_fd(p: CNNParams, value, s=1e-6, seed=0):
    """(⟨∇_θ R, u⟩ by a central difference in θ along a random unit u, u)."""
    u = np.random.default_rng(seed).standard_normal(p.size)
    u /= np.linalg.norm(u)
    th = p.flat()
    vp = value(CNNParams.from_flat(th + s * u, p.shapes))
    vm = value(CNNParams.from_flat(th - s * u, p.shapes))
    return (vp - vm) / (2 * s), u


def test_parameter_gradients_vs_central_differences_in_theta():
    p, x, y, _ = _problem()
    noise = R.elle_noise(x.shape, EPS, seed=4)
    delta = attacks.fgsm(p, x, y, EPS)                    # held fixed, as in the regularizer
    cases = {
        "elle": (lambda q: R.elle_loss_and_grad(q, x, y, EPS, noise=noise), 1e-7),
        "gradnorm": (lambda q: R.gradnorm_loss_and_grad(q, x, y, h=1e-4), 1e-6),
        "cure": (lambda q: R.cure_loss_and_grad(q, x, y, EPS, delta=delta, h=1e-4), 1e-6),
    }
    for name, (f, tol) in cases.items():
        fd, u = _theta_fd(p, lambda q: f(q)[0])
        _, g = f(p)
        gu = float(g.flat() @ u)
        # θ-difference error O(s²) + rounding 1e-16·|R|/s; FD-in-x error O(h²)
        assert abs(fd - gu) <= tol * max(abs(gu), np.abs(g.flat()).max()), (name, fd, gu)


# ---------------------------------------------------------------------------------------------
# ELLE
# ---------------------------------------------------------------------------------------------
def test_elle_value_is_the_linearity_error_of_the_three_losses():
    p, x, y, _ = _problem()
    ua, ub, t = R.elle_noise(x.shape, EPS, seed=7)
    xa, xb = np.clip(x + ua, 0, 1), np.clip(x + ub, 0, 1)
    xc = (1 - t)[:, None, None, None] * xa + t[:, None, None, None] * xb
    e = model.losses(p, xc, y) - (1 - t) * model.losses(p, xa, y) - t * model.losses(p, xb, y)
    val, _ = R.elle_loss_and_grad(p, x, y, EPS, noise=(ua, ub, t))
    assert val == pytest.approx(np.mean(e ** 2), rel=1e-10)


def test_elle_is_zero_where_the_loss_is_linear_on_the_segment():
    p, x, y, _ = _problem()
    ua, ub, t = R.elle_noise(x.shape, EPS, seed=8)
    # t ∈ {0, 1}: x_c is an endpoint, e = 0 exactly for any model
    t01 = (np.arange(x.shape[0]) % 2).astype(float)
    val, g = R.elle_loss_and_grad(p, x, y, EPS, noise=(ua, ub, t01))
    assert val == 0.0 and np.abs(g.flat()).max() == 0.0
    # identical rows of U: all logits shift together, ℓ is constant (affine) in x: E_lin = 0 up to rounding
    q = p.copy()
    q.U[:] = q.U[0]
    val, g = R.elle_loss_and_grad(q, x, y, EPS, noise=(ua, ub, t))
    assert val < 1e-28 and np.abs(g.flat()).max() < 1e-13


# ---------------------------------------------------------------------------------------------
# N-FGSM
# ---------------------------------------------------------------------------------------------
def test_n_fgsm_norm_and_step():
    p, x, y, _ = _problem()
    k = 2.0
    noise = np.random.default_rng(11).uniform(-k * EPS, k * EPS, x.shape)
    d = attacks.n_fgsm(p, x, y, EPS, noise=noise)
    assert np.abs(d).max() <= (k + 1) * EPS * (1 + 1e-12)
    # δ − η = α sign ∇ₓℓ(clip(x + η)) with α = ε (the gradient of the public input_grad)
    g = model.input_grad(p, np.clip(x + noise, 0, 1), y)
    np.testing.assert_allclose(d - noise, EPS * np.sign(g), atol=1e-15)
    # x ∈ [0.1, 0.9], |η| ≤ 2ε < 0.1: x + η is in the box, the unclipped noise is the same point
    d2 = attacks.n_fgsm(p, x, y, EPS, noise=noise, alpha=EPS / 2, clip_noise=False)
    np.testing.assert_allclose(d2 - noise, EPS / 2 * np.sign(g), atol=1e-15)


def test_n_fgsm_adds_the_step_to_the_box_clipped_noise():
    """Where x + η leaves [0, 1] the step starts from the box point (the authors' code): δ − η₀ = α sign g
    with η₀ = clip(x + η, 0, 1) − x; clip_noise=False starts from η itself."""
    p, x, y, _ = _problem()
    x = x.copy()
    x[:, :, :2] = 0.0                                  # two rows at the lower edge of the box
    noise = np.random.default_rng(12).uniform(-2 * EPS, 2 * EPS, x.shape)
    eta0 = np.clip(x + noise, 0, 1) - x
    assert np.any(eta0 != noise)
    g = model.input_grad(p, x + eta0, y)
    np.testing.assert_allclose(attacks.n_fgsm(p, x, y, EPS, noise=noise) - eta0, EPS * np.sign(g), atol=1e-15)
    np.testing.assert_allclose(attacks.n_fgsm(p, x, y, EPS, noise=noise, clip_noise=False) - noise,
                               EPS * np.sign(g), atol=1e-15)


def test_n_fgsm_noise_distribution():
    # U = 0: the input gradient is 0, sign 0, so δ = η: its entries must be U[−kε, kε]
    p, x, y, _ = _problem(N=40)
    p.U[:] = 0.0
    k = 2.0
    d = attacks.n_fgsm(p, x, y, EPS, k=k, seed=5).ravel()
    n, a = d.size, k * EPS
    assert np.abs(d).max() <= a
    # mean 0 ± 4 s.e. (s.e. = a/√(3n)); E δ² = a²/3 ± 4 s.e. (Var δ² = 4a⁴/45)
    assert abs(d.mean()) < 4 * a / np.sqrt(3 * n)
    assert abs((d ** 2).mean() - a * a / 3) < 4 * np.sqrt(4 / 45) * a * a / np.sqrt(n)


# ---------------------------------------------------------------------------------------------
# training config and smoke runs
# ---------------------------------------------------------------------------------------------
def test_config_validation_names_the_field():
    for bad, field in ((dict(reg="lle"), "reg"), (dict(reg="elle", reg_lambda=-1.0), "reg_lambda"),
                       (dict(reg="elle", reg_lambda="big"), "reg_lambda"), (dict(reg="elle", reg_h=1e-3), "reg_h"),
                       (dict(reg="gradnorm", reg_h=0.0), "reg_h"), (dict(reg="cure", reg_h=2.0), "reg_h"),
                       (dict(grad_align=1.0, reg="elle"), "reg"),
                       (dict(grad_align=1.0, reg="gradalign", reg_lambda=2.0), "reg"),
                       (dict(nfgsm_k=3.0), "nfgsm_k"), (dict(attack="n-fgsm", nfgsm_k=-1.0), "nfgsm_k"),
                       (dict(attack="n-fgsm", alpha=3 * EPS, eps=EPS), "alpha"), (dict(attack="nfgsm"), "attack")):
        with pytest.raises(ConfigError) as err:
            resolve(TrainConfig(**bad))
        assert err.value.field == field, (bad, err.value)


def test_grad_align_is_reg_gradalign():
    a = resolve(TrainConfig(grad_align=0.7))
    b = resolve(TrainConfig(reg="gradalign", reg_lambda=0.7))
    assert (a.reg, a.reg_lambda, a.grad_align) == (b.reg, b.reg_lambda, b.grad_align) == ("gradalign", 0.7, 0.7)
    assert resolve(a) == a and resolve(b) == b                        # idempotent
    c = resolve(TrainConfig(reg="gradalign-fd", eps=8 / 255))
    assert c.reg_lambda == pytest.approx(default_lambda(8 / 255)) and c.reg_h == R.DEFAULT_H
    assert resolve(TrainConfig(attack="n-fgsm", eps=EPS)).alpha == pytest.approx(EPS)
    assert resolve(TrainConfig()).reg == "none" and resolve(TrainConfig()).reg_lambda == 0.0


@pytest.mark.parametrize("kw", [dict(attack="n-fgsm"), *[dict(reg=r) for r in REGS if r != "none"],
                                dict(attack="n-fgsm", reg="elle"), dict(attack="fgsm-rs", reg="gradnorm")])
def test_one_epoch_smoke(kw):
    data = load_images("synthetic", None, n_train=64, n_test=40, seed=0)
    res = train(data, TrainConfig(epochs=1, filters=2, n_eval=16, eval_pgd_steps=2, final_n=16, final_pgd_steps=2,
                                  final_restarts=2, batch=32, **kw))
    assert not res.diverged
    h = res.history[-1]
    assert np.isfinite(h["train_loss"])
    if "reg" in kw:
        assert h["reg_value"] is not None and np.isfinite(h["reg_value"]) and h["reg_value"] >= 0


def test_gradalign_fd_training_step_tracks_exact_gradalign():
    """One epoch with the FD gradient and one with the exact (author-style) gradient, same streams: the
    training loss and Ω agree to the FD error (not bitwise: the FD gradient differs by O(h²); the
    parameters are not compared, since Adam turns ~1e−17 gradients of dead units into ±lr steps)."""
    data = load_images("synthetic", None, n_train=64, n_test=40, seed=0)
    kw = dict(epochs=1, filters=2, n_eval=16, eval_pgd_steps=2, final_n=16, final_pgd_steps=2, final_restarts=2,
              batch=32, reg_lambda=1.0)
    a = train(data, TrainConfig(reg="gradalign", **kw)).history[-1]
    b = train(data, TrainConfig(reg="gradalign-fd", **kw)).history[-1]
    for key in ("train_loss", "reg_value", "clean_loss"):
        assert b[key] == pytest.approx(a[key], rel=1e-6), key
