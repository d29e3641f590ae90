"""Torch CO-prevention methods (toymodels.torch.regularizers, issue 14): the float64 CNN twin against
the numba functions of toymodels.cnn.regularizers / toymodels.cnn.attacks.n_fgsm (same noise, 1e-10);
the finite-difference (FD) gradients against torch's exact double backprop with their error order
measured on a smooth (tanh) network; ELLE against closed forms (zero on a loss affine in x, the
t(1 − t) identity on a quadratic loss); N-FGSM against its closed form on a linear model and its noise
distribution; config / CLI errors (exit 2 naming the flag)."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import assert_mc_close, run_cli, small_cnn  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch import attacks, regularizers as R  # noqa: E402
from toymodels.torch.config import TrainConfig, resolve  # noqa: E402

EPS = 8 / 255


def _flat(t, params):
    return torch.cat([g.flatten() for g in torch.autograd.grad(t, params)])


def _np_flat(g) -> np.ndarray:
    return np.concatenate([a.ravel() for a in g.arrays])


def _close(a, b, tol=1e-10):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.abs(b).max()))
    assert np.abs(a - b).max() <= tol * scale, (np.abs(a - b).max(), scale)


# ------------------------------------------------------------------------------------------------
# torch vs numba on the float64 twin
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def twin():
    creg = pytest.importorskip("toymodels.cnn.regularizers")
    from toymodels.cnn.torch_twin import to_torch

    p, x, y = small_cnn(seed=3, N=6, K=5, weight_scale=2.0)
    m = to_torch(p)
    return creg, p, x, y, m, torch.from_numpy(x), torch.from_numpy(y)


def test_elle_matches_numba(twin):
    creg, p, x, y, m, xt, yt = twin
    ua, ub, t = R.elle_noise(xt, EPS, torch.Generator().manual_seed(0))
    e = R.elle(m, xt, yt, EPS, (ua, ub, t))
    val, g = creg.elle_loss_and_grad(p, x, y, EPS, noise=(ua.numpy(), ub.numpy(), t.numpy()))
    assert val > 1e-8                                   # not trivially zero
    _close(float(e.detach()), val)
    _close(_flat(e, list(m.parameters())).numpy(), _np_flat(g))


@pytest.mark.parametrize("scheme", ["central", "forward"])
def test_gradalign_fd_matches_numba(twin, scheme):
    creg, p, x, y, m, xt, yt = twin
    eta = attacks.uniform_noise(xt.shape, EPS, torch.Generator().manual_seed(1), xt)
    r = R.gradalign_fd(m, xt, yt, EPS, eta, h=1e-3, scheme=scheme)
    val, g = creg.gradalign_fd_loss_and_grad(p, x, y, eta.numpy(), h=1e-3, scheme=scheme)
    _close(float(r.detach()), val)
    _close(_flat(r, list(m.parameters())).numpy(), _np_flat(g))


@pytest.mark.parametrize("scheme", ["central", "forward"])
def test_gradnorm_and_cure_fd_match_numba(twin, scheme):
    creg, p, x, y, m, xt, yt = twin
    r = R.gradnorm(m, xt, yt, exact=False, h=1e-3, scheme=scheme)
    val, g = creg.gradnorm_loss_and_grad(p, x, y, h=1e-3, scheme=scheme)
    _close(float(r.detach()), val)
    _close(_flat(r, list(m.parameters())).numpy(), _np_flat(g))
    r = R.cure(m, xt, yt, EPS, exact=False, h=1e-3, scheme=scheme)
    val, g = creg.cure_loss_and_grad(p, x, y, EPS, h=1e-3, scheme=scheme)
    _close(float(r.detach()), val)
    _close(_flat(r, list(m.parameters())).numpy(), _np_flat(g))


def test_exact_values_match_the_fd_values_and_numba(twin):
    """The exact (double-backprop) regularizers have the same values as the FD ones and numba's."""
    creg, p, x, y, m, xt, yt = twin
    _close(float(R.gradnorm(m, xt, yt).detach()), creg.gradnorm_loss_and_grad(p, x, y)[0])
    _close(float(R.cure(m, xt, yt, EPS).detach()), creg.cure_loss_and_grad(p, x, y, EPS)[0])


def test_n_fgsm_matches_numba(twin):
    """The same δ as numba's n_fgsm once clipped to the box, in both forms (the step added to the box-clipped
    noise, the authors' code and the default; or to the raw noise), on noise that leaves the box somewhere."""
    from toymodels.cnn.attacks import n_fgsm as n_fgsm_numba

    _, p, x, y, m, xt, yt = twin
    eta = attacks.uniform_noise(xt.shape, 2 * EPS, torch.Generator().manual_seed(2), xt)
    inside = ((x + eta.numpy()) >= 0) & ((x + eta.numpy()) <= 1)
    assert not inside.all()
    for clip in (True, False):
        dn = n_fgsm_numba(p, x, y, EPS, noise=eta.numpy(), clip_noise=clip)
        dt = R.n_fgsm(m, xt, yt, EPS, noise=eta, clip_noise=clip).numpy()
        _close(x + dt, np.clip(x + dn, 0, 1), 1e-12)


# ------------------------------------------------------------------------------------------------
# FD vs exact double backprop: the error order, on a smooth network (no ReLU kinks)
# ------------------------------------------------------------------------------------------------
def _smooth_net():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(),
                            torch.nn.Linear(4 * 6 * 6, 5)).double()
    g = torch.Generator().manual_seed(5)
    x = torch.rand(5, 3, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (5,), generator=g)
    return m, x, y


def _fd_errors(exact_fn, fd_fn, params, hs):
    ge = _flat(exact_fn(), params)
    return [float((_flat(fd_fn(h), params) - ge).norm() / ge.norm()) for h in hs]


CASES = {
    "gradalign": (lambda m, x, y, eta: attacks.gradalign(m, x, y, EPS, eta),
                  lambda m, x, y, eta, h, s: R.gradalign_fd(m, x, y, EPS, eta, h=h, scheme=s)),
    "gradnorm": (lambda m, x, y, eta: R.gradnorm(m, x, y),
                 lambda m, x, y, eta, h, s: R.gradnorm(m, x, y, exact=False, h=h, scheme=s)),
    "cure": (lambda m, x, y, eta: R.cure(m, x, y, EPS),
             lambda m, x, y, eta, h, s: R.cure(m, x, y, EPS, exact=False, h=h, scheme=s)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("scheme,order", [("central", 2), ("forward", 1)])
def test_fd_gradient_error_order(name, scheme, order):
    """Halving h divides the FD error by 2^order: ratios within [0.75, 1.25]·2^order (the next Taylor
    term changes the ratio by O(h)); the values equal the exact ones; the error is small at h = 0.05."""
    m, x, y = _smooth_net()
    eta = attacks.uniform_noise(x.shape, EPS, torch.Generator().manual_seed(4), x)
    exact, fd = CASES[name]
    params = list(m.parameters())
    hs = [0.4, 0.2, 0.1, 0.05]
    errs = _fd_errors(lambda: exact(m, x, y, eta), lambda h: fd(m, x, y, eta, h, scheme), params, hs)
    ratios = [errs[i] / errs[i + 1] for i in range(len(hs) - 1)]
    assert all(0.75 * 2 ** order <= r <= 1.25 * 2 ** order for r in ratios), (errs, ratios)
    assert errs[-1] < (0.02 if order == 2 else 0.1), errs
    assert abs(float(fd(m, x, y, eta, 0.05, scheme).detach()) - float(exact(m, x, y, eta).detach())) < 1e-12


def test_exact_gradnorm_and_cure_gradients_vs_parameter_finite_differences():
    """The double-backprop gradients against central differences of the value in θ (a random direction)."""
    m, x, y = _smooth_net()
    params = list(m.parameters())
    u = [torch.randn(p.shape, generator=torch.Generator().manual_seed(i), dtype=p.dtype) for i, p in enumerate(params)]
    for f in (lambda: R.gradnorm(m, x, y), lambda: R.cure(m, x, y, EPS, delta=0.03 * torch.ones_like(x))):
        g = _flat(f(), params)
        h = 1e-5
        vals = []
        for s in (1, -1):
            with torch.no_grad():
                for p, d in zip(params, u):
                    p.add_(s * h * d)
            vals.append(float(f().detach()))
            with torch.no_grad():
                for p, d in zip(params, u):
                    p.sub_(s * h * d)
        fd = (vals[0] - vals[1]) / (2 * h)
        an = float(g @ torch.cat([d.flatten() for d in u]))
        assert abs(fd - an) <= 1e-6 * max(1.0, abs(an)), (fd, an)


# ------------------------------------------------------------------------------------------------
# ELLE closed forms
# ------------------------------------------------------------------------------------------------
class _AffineCE(torch.nn.Module):
    """Logits (0, log(expm1(f(x)))): the CE of label 0 is log(1 + e^{z₁}) = f(x) exactly."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        z1 = torch.log(torch.expm1(self.f(x)))
        return torch.stack([torch.zeros_like(z1), z1], 1)


def test_elle_is_zero_for_a_loss_affine_in_x_and_not_otherwise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 4, 4, generator=g, dtype=torch.float64)
    w = 0.05 * torch.rand(3, 4, 4, generator=g, dtype=torch.float64)
    m = _AffineCE(lambda v: (v * w).flatten(1).sum(1) + 0.5)         # ℓ = w·x + 0.5 > 0 on [0, 1]^d
    y0 = torch.zeros(8, dtype=torch.long)
    e0 = float(R.elle(m, x, y0, 0.1, generator=torch.Generator().manual_seed(1)))
    e1 = float(R.elle(m, x, torch.ones(8, dtype=torch.long), 0.1, generator=torch.Generator().manual_seed(1)))
    assert e1 > 1e-11 and e0 < 1e-24       # label 1 (same points): ℓ = −log(1 − e^{−f}) is not affine


def test_elle_on_a_quadratic_loss_is_the_t_one_minus_t_identity():
    """ℓ = s‖x‖² + c: ℓ(x_c) − (1 − t)ℓ(x_a) − tℓ(x_b) = −t(1 − t) s ‖x_b − x_a‖² exactly."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 4, 4, generator=g, dtype=torch.float64)
    s, eps = 0.7, 0.2
    m = _AffineCE(lambda v: s * v.flatten(1).pow(2).sum(1) + 0.5)
    ua, ub, t = R.elle_noise(x, eps, torch.Generator().manual_seed(3))
    got = R.elle(m, x, torch.zeros(8, dtype=torch.long), eps, (ua, ub, t), per_example=True)
    xa, xb = (x + ua).clamp(0, 1), (x + ub).clamp(0, 1)
    want = (t * (1 - t) * s * (xb - xa).flatten(1).pow(2).sum(1)) ** 2
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-18)


# ------------------------------------------------------------------------------------------------
# N-FGSM
# ------------------------------------------------------------------------------------------------
def test_n_fgsm_closed_form_on_a_linear_two_class_model():
    """z = (0, w·x): for label 0, ∇ₓℓ = σ(w·x) w, so sign ∇ₓℓ = sign w at every point."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 5, 5, generator=g, dtype=torch.float64)
    w = torch.randn(3, 5, 5, generator=g, dtype=torch.float64)
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(75, 2, bias=False)).double()
    with torch.no_grad():
        m[1].weight.copy_(torch.stack([torch.zeros(75, dtype=torch.float64), w.flatten()]))
    y = torch.zeros(16, dtype=torch.long)
    eps, k, alpha = 8 / 255, 2.0, 8 / 255
    eta = attacks.uniform_noise(x.shape, k * eps, torch.Generator().manual_seed(1), x)
    d = R.n_fgsm(m, x, y, eps, k=k, alpha=alpha, noise=eta)
    eta0 = (x + eta).clamp(0, 1) - x
    want = (x + eta0 + alpha * w.sign()).clamp(0, 1) - x
    assert torch.equal(d, want)
    assert float(d.abs().max()) <= (k * eps + alpha) * (1 + 1e-12)
    assert float(d.abs().max()) > eps                   # not projected onto the ε-ball
    assert float((x + d).min()) >= 0 and float((x + d).max()) <= 1


def test_n_fgsm_noise_is_uniform_on_k_eps():
    """A model with zero input gradient (sign 0 = 0) and x = 1/2 (no clipping): δ = η exactly. With
    a = kε and n = N·d draws: mean 0 (s.e. a/√(3n)), E η² = a²/3 (s.e. √(4a⁴/45/n)), tolerance 5 s.e."""
    class Zero(torch.nn.Module):
        def forward(self, v):
            return 0.0 * v.flatten(1)[:, :3]

    x = torch.full((200, 3, 8, 8), 0.5)
    y = torch.zeros(200, dtype=torch.long)
    eps, k = 8 / 255, 2.0
    d = R.n_fgsm(Zero(), x, y, eps, k=k, generator=torch.Generator().manual_seed(7)).double().flatten()
    a, n = k * eps, d.numel()
    assert float(d.abs().max()) <= a * (1 + 1e-6) and float(d.abs().max()) > 0.99 * a
    assert_mc_close(float(d.mean()), a / math.sqrt(3 * n), 0.0, what="mean of η")
    assert_mc_close(float((d ** 2).mean()), math.sqrt(4 * a ** 4 / 45 / n), a * a / 3, what="E η²")


# ------------------------------------------------------------------------------------------------
# config and CLI
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,field", [
    (dict(reg="nope"), "reg"),
    (dict(reg="elle", reg_lambda=-1.0), "reg_lambda"),
    (dict(reg="none", reg_lambda=0.5), "reg_lambda"),
    (dict(reg="elle", reg_h=1e-3), "reg_h"),
    (dict(reg="gradnorm", reg_h=0.0), "reg_h"),
    (dict(reg="cure", reg_scheme="backward"), "reg_scheme"),
    (dict(reg="elle", grad_align=0.2), "grad_align"),
    (dict(reg="gradalign", reg_lambda=0.3, grad_align=0.2), "grad_align"),
    (dict(reg="elle", attack="free"), "reg"),
    (dict(task="sgd", reg="elle"), "reg"),
    (dict(attack="fgsm", nfgsm_k=3.0), "nfgsm_k"),
    (dict(attack="n-fgsm", nfgsm_k=-1.0), "nfgsm_k"),
])
def test_bad_configs_name_the_field(kw, field):
    with pytest.raises(ConfigError) as e:
        resolve(TrainConfig(**kw))
    assert e.value.field == field


def test_resolve_is_idempotent_and_grad_align_is_reg_gradalign():
    c = resolve(TrainConfig(grad_align=0.3))
    assert (c.reg, c.reg_lambda, c.grad_align) == ("gradalign", 0.3, 0.3) and resolve(c) == c
    c = resolve(TrainConfig(reg="gradalign-fd", eps=8 / 255))
    assert (c.reg_lambda, c.reg_h, c.grad_align) == (pytest.approx(0.2), 1e-3, 0.0) and resolve(c) == c
    c = resolve(TrainConfig(reg="cure", eps=16 / 255, attack="n-fgsm"))
    assert c.reg_lambda == pytest.approx(20000.0) and c.reg_h is None and c.alpha == pytest.approx(16 / 255)


MINI = ["--device", "cpu", "--epochs", "1", "--n-train", "16", "--n-test", "8", "--batch-size", "8", "--filters", "1"]


@pytest.mark.parametrize("argv,flag", [
    (["--reg", "sam"], "--reg"),
    (["--reg", "elle", "--reg-lambda", "-2"], "--reg-lambda"),
    (["--reg", "gradnorm", "--reg-h", "0"], "--reg-h"),
    (["--reg", "elle", "--reg-h", "1e-3"], "--reg-h"),
    (["--reg", "elle", "--grad-align", "0.2"], "--grad-align"),
    (["--attack", "fgsm", "--nfgsm-k", "3"], "--nfgsm-k"),
    (["--reg-scheme", "sideways"], "--reg-scheme"),
])
def test_cli_bad_input_exits_2_naming_the_flag(argv, flag):
    r = run_cli("toymodels.torch", ["train-at", *MINI, *argv])
    assert r.rc == 2 and flag in r.err and r.out == "", r.err


def test_cli_n_fgsm_with_a_regularizer_runs():
    r = run_cli("toymodels.torch", ["train-at", *MINI, "--eval-n", "4", "--final-n", "4", "--eval-pgd-steps", "1",
                                    "--final-pgd-steps", "1", "--attack", "n-fgsm", "--reg", "gradalign-fd",
                                    "--reg-lambda", "0.5", "--json"])
    assert r.rc == 0, r.err
    c = r.json["config"]
    got = (c["attack"], c["reg"], c["reg_lambda"], c["reg_h"], c["nfgsm_k"])
    assert got == ("n-fgsm", "gradalign-fd", 0.5, 1e-3, 2.0)
    assert math.isfinite(r.json["history"][-1]["train_loss"])


def test_elle_a_step_is_fgsm_while_off_and_elle_when_on(twin):
    """ELLE-A's training step: with λ = 0 the gradient is FGSM's alone (the error is only measured, and
    fed to the schedule); with λ = λ_max it is ELLE's step with that λ (same draws, float64 twin)."""
    from toymodels.elle_a import ElleA
    from toymodels.torch.train import TrainConfig, at_step

    *_, m, xt, yt = twin

    def grads(cfg, sched):
        out = {}

        def capture(loss):
            m.zero_grad(set_to_none=True)
            loss.backward()
            out["g"] = [q.grad.clone() for q in m.parameters()]

        at_step(cfg, m, m, xt, yt, torch.Generator().manual_seed(5), capture,
                lambda: torch.autocast("cpu", enabled=False), sched=sched)
        return out["g"]

    base = dict(task="at", attack="fgsm", eps=EPS)
    off = ElleA(3.0)
    g_off = grads(TrainConfig(**base, reg="elle-a", reg_lambda=3.0), off)
    assert off.n == 1 and off.mean > 0                      # the error was measured and recorded
    on = ElleA(3.0)
    on.lam = 3.0
    g_on = grads(TrainConfig(**base, reg="elle-a", reg_lambda=3.0), on)
    g_fgsm = grads(TrainConfig(**base), None)
    g_elle = grads(TrainConfig(**base, reg="elle", reg_lambda=3.0), None)
    for a, b in zip(g_off, g_fgsm):
        assert torch.equal(a, b)
    for a, b in zip(g_on, g_elle):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(g_on, g_fgsm))


def test_cli_elle_a_runs_and_records_lambda():
    r = run_cli("toymodels.torch", ["train-at", *MINI, "--eval-n", "4", "--final-n", "4", "--eval-pgd-steps", "1",
                                    "--final-pgd-steps", "1", "--reg", "elle-a", "--reg-lambda", "10", "--json"])
    assert r.rc == 0, r.err
    assert r.json["config"]["reg"] == "elle-a" and r.json["config"]["reg_lambda"] == 10.0
    h = r.json["history"][-1]
    assert 0.0 <= h["elle_a_lambda"] <= 10.0 and h["elle_a_switch_ons"] >= 0
