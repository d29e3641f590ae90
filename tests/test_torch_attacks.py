"""Torch attacks / GradAlign / metrics vs their numba twins on the single-layer CNN (float64, same
pre-drawn noise, 1e-10) and attack invariants on a small deep net."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from toymodels.cnn import attacks as natt  # noqa: E402
from toymodels.cnn import metrics as nmet  # noqa: E402
from toymodels.cnn import model as cnn  # noqa: E402
from toymodels.torch import attacks, models  # noqa: E402

EPS = 0.1


def _problem(seed=0, N=8, C=2, H=6, M=3, K=4):
    rng = np.random.default_rng(seed)
    p = cnn.init_params(C, H, H, M, K, seed=seed)
    # scale the weights up so that the ReLU masks change within the ε-ball (a non-linear model)
    p = cnn.CNNParams(p.Wc * 4, p.bc, p.U * 4, p.c)
    x = rng.uniform(0, 1, (N, C, H, H))
    y = rng.integers(0, K, N)
    noise = rng.uniform(-EPS, EPS, x.shape)
    return p, x, y, noise, models.cnn_from_numba(p), torch.from_numpy(x), torch.from_numpy(y)


def test_fgsm_and_fgsm_rs_match_numba():
    p, x, y, noise, net, X, Y = _problem()
    np.testing.assert_allclose(attacks.fgsm(net, X, Y, EPS).numpy(), natt.fgsm(p, x, y, EPS), atol=1e-10)
    d = attacks.fgsm_rs(net, X, Y, EPS, 1.25 * EPS, torch.from_numpy(noise)).numpy()
    np.testing.assert_allclose(d, natt.fgsm_rs(p, x, y, EPS, 1.25 * EPS, noise), atol=1e-10)


def test_pgd_matches_numba_with_same_starts():
    p, x, y, _, net, X, Y = _problem(1)
    steps, restarts, seed = 5, 3, 7
    rng = np.random.default_rng(seed)
    starts = np.stack([rng.uniform(-EPS, EPS, x.shape) for _ in range(restarts)])
    d = attacks.pgd(net, X, Y, EPS, EPS / 4, steps, restarts, noise=torch.from_numpy(starts)).numpy()
    np.testing.assert_allclose(d, natt.pgd(p, x, y, EPS, EPS / 4, steps, restarts, seed=seed), atol=1e-10)


@pytest.mark.parametrize("exact", [False, True])
def test_gradalign_value_and_parameter_gradient_match_numba(exact):
    p, x, y, noise, net, X, Y = _problem(2)
    omega = attacks.gradalign(net, X, Y, EPS, torch.from_numpy(noise), exact=exact)
    grads = torch.autograd.grad(omega, list(net.parameters()))
    om, g = cnn.gradalign_loss_and_grad(p, x, y, noise, both=exact)
    assert abs(omega.item() - om) < 1e-10
    assert om > 1e-3  # the test problem is non-linear enough for Ω to matter
    for a, b in zip(grads, g.arrays):
        np.testing.assert_allclose(a.numpy(), b, rtol=0, atol=1e-10)


def test_alignment_and_cos_metrics_match_numba():
    p, x, y, noise, net, X, Y = _problem(3)
    a = attacks.grad_alignment(net, X, Y, EPS, torch.from_numpy(noise))
    assert abs(a - nmet.grad_alignment(p, x, y, EPS, noise)) < 1e-10
    rng = np.random.default_rng(5)
    start = rng.uniform(-EPS, EPS, (1,) + x.shape)
    c = attacks.cos_fgsm_pgd(net, X, Y, EPS, noise=torch.from_numpy(start))
    assert abs(c - nmet.cos_fgsm_pgd(p, x, y, EPS, seed=5)) < 1e-10


def test_attack_invariants_on_preact_resnet():
    torch.manual_seed(0)
    net = models.build_model("preact-resnet18", 10, 3, 8, normalize=((0.5,) * 3, (0.25,) * 3)).eval()
    x = torch.rand(16, 3, 8, 8)
    x[:, :, :2] = 0.0  # pixels at the box boundary
    x[:, :, -2:] = 1.0
    y = torch.randint(0, 10, (16,))
    eps = 8 / 255
    g = torch.Generator().manual_seed(0)
    deltas = {"fgsm": attacks.fgsm(net, x, y, eps),
              "fgsm-rs": attacks.fgsm_rs(net, x, y, eps, 1.25 * eps, generator=g),
              "pgd": attacks.pgd(net, x, y, eps, eps / 4, 10, 2, generator=g)}
    for d in deltas.values():
        assert float(d.abs().max()) <= eps + 1e-7
        assert float((x + d).min()) >= 0 and float((x + d).max()) <= 1
    with torch.no_grad():
        lf = torch.nn.functional.cross_entropy(net(x + deltas["fgsm"]), y)
        lp = torch.nn.functional.cross_entropy(net(x + deltas["pgd"]), y)
        l0 = torch.nn.functional.cross_entropy(net(x), y)
    assert float(lp) >= float(lf) >= float(l0)


def test_free_at_keeps_delta_feasible_and_trains():
    p, x, y, _, net, X, Y = _problem(4)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    before = [q.detach().clone() for q in net.parameters()]
    delta = torch.zeros_like(X)
    for _ in range(3):
        delta, loss, acc = attacks.free_at_batch(net, opt, X, Y, delta, EPS, replays=4)
        assert float(delta.abs().max()) <= EPS + 1e-12
        assert float((X + delta).min()) >= 0 and float((X + delta).max()) <= 1
        assert np.isfinite(loss) and 0 <= acc <= 1
    assert float(delta.abs().max()) > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_detect_co_is_the_numba_rule():
    from toymodels.cnn.train import detect_co

    assert attacks.detect_co is detect_co


def test_training_step_gradient_matches_numba_fgsm_plus_gradalign():
    """The AT step of the training loop (FGSM δ from the clean gradient + λ·GradAlign through
    ∇ₓℓ(x + η) only) gives ∇θ[CE(x + δ) + λΩ] = the numba gradients summed, same η (float64)."""
    from toymodels.torch.train import TrainConfig, at_step

    p, x, y, _, net, X, Y = _problem(6)
    lam = 0.7
    cfg = TrainConfig(task="at", attack="fgsm", eps=EPS, alpha=EPS, grad_align=lam)
    grads = {}

    def capture(loss):                          # no optimizer step: keep the gradient
        net.zero_grad(set_to_none=True)
        loss.backward()
        grads["g"] = [q.grad.clone() for q in net.parameters()]

    at_step(cfg, net, net, X, Y, torch.Generator().manual_seed(3), capture, lambda: torch.autocast("cpu", enabled=False))
    # the same η the step drew: U[−ε, ε] from the same generator state, in float64
    eta = ((2 * torch.rand(X.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64) - 1) * EPS).numpy()
    delta = natt.fgsm(p, x, y, EPS)
    _, g_ce = cnn.loss_and_grad(p, x + delta, y)
    _, g_ga = cnn.gradalign_loss_and_grad(p, x, y, eta, both=False)
    for a, b, c in zip(grads["g"], g_ce.arrays, g_ga.arrays):
        np.testing.assert_allclose(a.numpy(), b + lam * c, rtol=0, atol=1e-10)
