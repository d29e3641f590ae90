"""toymodels.torch.sam under mixed precision in users' own loops: bfloat16 autocast without a scaler,
GradScaler-aware first_step / second_step and ``scaler.step(sam)``, and gradient clipping in the order
unscale → clip → step. Checked against float32 (bf16, with a tolerance derived from bf16's unit
roundoff), against the unscaled float64 path (the scale is a power of two: exact) and against SAM
steps written out by hand. Deterministic (fixed data; the bf16 check was also run for data seeds 0-99,
see ``test_bf16_sam_step_is_close_to_float32``); no Monte Carlo."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import mse4, torch_dln_pm  # noqa: E402
from torch import nn  # noqa: E402

from toymodels.torch.sam import SAM, sam_update  # noqa: E402

F = nn.functional
DT = torch.float64
U_BF16 = 2.0 ** -8      # bfloat16 unit roundoff (8 significant bits, round to nearest)


# --------------------------------------------------------------------------- bfloat16 autocast, no scaler
def _mlp():
    return nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 5))


def _cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 8, 3, padding=1), nn.Tanh(),
                         nn.Flatten(), nn.Linear(8 * 6 * 6, 5))


def _sam_displacement(arch, seed, rho, bf16, how):
    """w_after − w_before of one SAM-SGD step (lr 0.5) on a fixed batch; float32 weights."""
    torch.manual_seed(0)
    model = _mlp() if arch == "mlp" else _cnn()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((64, 20) if arch == "mlp" else (32, 3, 6, 6), generator=g)
    y = torch.randint(0, 5, (len(x),), generator=g)
    w0 = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=0.5)
    if how == "sam_update":
        sam_update(model, opt, F.cross_entropy, x, y, autocast_dtype=torch.bfloat16 if bf16 else None)
    else:       # a user's loop: the whole update inside one autocast region
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            F.cross_entropy(model(x), y).backward()
            opt.first_step(zero_grad=True)
            F.cross_entropy(model(x), y).backward()
            opt.second_step(zero_grad=True)
    return torch.cat([(p.detach() - w).flatten() for p, w in zip(model.parameters(), w0)])


@pytest.mark.parametrize("how", ["sam_update", "user_loop"])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bf16_sam_step_is_close_to_float32(arch, how, seed):
    """Tolerance: autocast rounds the two operands of every matmul / convolution (forward, and the two
    of each backward) to bfloat16, relative error <= u = 2^-8 each, and accumulates in float32. To first
    order each gradient then has a relative error of at most ~2u per rounded operand on its path —
    about 6u for these three layers with all errors aligned (and √ of that typically); the normalized
    ascent direction is scale-free and the descent gradient at w + e has the same bound. We allow
    8u = 1/32 on the relative error of the update ‖Δw_bf16 − Δw_f32‖ / ‖Δw_f32‖ (measured: 1.2u for
    the MLP; data seeds 0-99 all pass). It can fail: the SAM update differs from the plain SGD update
    by ≈ 0.4 relative (ρ = 0.5), so an update that loses its perturbation fails — as it did while
    autocast served the cached bf16 copy of w (not w + e) to the second forward of the user's loop."""
    d32 = _sam_displacement(arch, seed, 0.5, False, how)
    d16 = _sam_displacement(arch, seed, 0.5, True, how)
    sgd = _sam_displacement(arch, seed, 0.0, False, how)
    tol = 8 * U_BF16
    assert float((d16 - d32).norm() / d32.norm()) <= tol
    assert float((sgd - d32).norm() / d32.norm()) > 2 * tol       # the check can fail


# --------------------------------------------------------------------------- a float64 DLN under a GradScaler
DLN = torch_dln_pm              # the w₊/w₋ DLN module (tests/helpers.py)
quarter_mse = mse4              # ℓᵢ = ¼(⟨β, xᵢ⟩ − yᵢ)², batch mean (eq. 5.5)


def _data(seed=3, n=12, d=8):
    g = np.random.default_rng(seed)
    return torch.tensor(g.standard_normal((n, d))), torch.tensor(g.standard_normal(n))


def _np_grad(wp, wm, X, y):
    """∇ of L = ¼ mean (⟨w₊² − w₋², x⟩ − y)²: (w₊ ⊙ Xᵀr/n, −w₋ ⊙ Xᵀr/n)."""
    a = X.T @ (X @ (wp ** 2 - wm ** 2) - y) / len(y)
    return wp * a, -wm * a


def _np_sam_descent_grad(wp, wm, X, y, rho):
    gp, gm = _np_grad(wp, wm, X, y)
    c = rho / np.sqrt((gp ** 2).sum() + (gm ** 2).sum())
    return _np_grad(wp + c * gp, wm + c * gm, X, y)


def _user_loop(model, opt, X, y, scaler, *, via):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = quarter_mse(model(X), y)
    scaler.scale(loss).backward()
    opt.first_step(zero_grad=True, scaler=scaler)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss2 = quarter_mse(model(X), y)
    scaler.scale(loss2).backward()
    if via in ("scaler.step", "unscale_+scaler.step"):
        if via == "unscale_+scaler.step":       # a user unscaling first (to clip or log): no double unscale
            scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    else:
        opt.second_step(zero_grad=True, scaler=scaler)


@pytest.mark.parametrize("via", ["scaler.step", "unscale_+scaler.step", "second_step"])
def test_scaler_aware_user_loop_equals_the_unscaled_update(via):
    X, y = _data()
    plain = DLN(np.full(8, 0.7), np.full(8, 0.4))
    scaled = DLN(np.full(8, 0.7), np.full(8, 0.4))
    op = SAM(plain.parameters(), torch.optim.SGD, rho=0.1, lr=0.05, momentum=0.9)
    os_ = SAM(scaled.parameters(), torch.optim.SGD, rho=0.1, lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16, growth_interval=1000)
    for _ in range(10):
        sam_update(plain, op, quarter_mse, X, y)
        _user_loop(scaled, os_, X, y, scaler, via=via)
    # the scale is a power of two and the model runs in float64 under CPU autocast: exact
    assert float((plain.wp - scaled.wp).detach().abs().max()) <= 1e-14
    assert float((plain.wm - scaled.wm).detach().abs().max()) <= 1e-14
    assert float((plain.wp.detach() - 0.7).abs().max()) > 1e-3          # it moved: the comparison can fail
    assert scaler.get_scale() == 2.0 ** 16
    assert os_.state is os_.base_optimizer.state and len(os_.state) == 2      # momentum buffers, visible


@pytest.mark.parametrize("via", ["scaler.step", "unscale_+scaler.step", "second_step"])
def test_scaler_aware_user_loop_skips_non_finite_steps(via):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16, growth_interval=1000)
    # non-finite ascent gradient: nothing moves, no base step (no momentum buffer), the scale backs off
    model = DLN(np.full(8, 0.5), np.full(8, 0.4))
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9)
    x = torch.ones(4, 8, dtype=DT)
    x[0, 0] = float("inf")
    _user_loop(model, opt, x, torch.zeros(4, dtype=DT), scaler, via=via)
    assert torch.equal(model.wp.detach(), torch.full((8,), 0.5, dtype=DT)) and scaler.get_scale() == 2.0 ** 15
    assert not opt.state
    # finite ascent, overflowing perturbed point: w restored (not left at w + e), step skipped
    model = DLN(np.full(8, 0.6), np.full(8, 0.5))
    opt = SAM(model.parameters(), torch.optim.SGD, rho=1e300, normalize=False, lr=0.1, momentum=0.9)
    _user_loop(model, opt, torch.ones(4, 8, dtype=DT), torch.zeros(4, dtype=DT), scaler, via=via)
    assert torch.equal(model.wp.detach(), torch.full((8,), 0.6, dtype=DT)) and scaler.get_scale() == 2.0 ** 14
    assert not opt.state


# --------------------------------------------------------------------------- clipping: unscale → clip → step
@pytest.mark.parametrize("how", ["sam_update", "scaler.step", "sam_update_fn"])
def test_clipping_acts_on_the_unscaled_descent_gradient(how):
    """With a scale S = 2^16 and a clipping threshold c = 0.3‖g_D‖ (active): clipping after unscaling
    gives w − γ c g_D/‖g_D‖; clipping the scaled gradient (before unscaling) would give
    w − γ (c/S) g_D/‖g_D‖. Both written out here in numpy."""
    X, y = _data(seed=5)
    wp0, wm0 = np.full(8, 0.7), np.full(8, 0.4)
    lr, rho, S = 0.05, 0.1, 2.0 ** 16
    gp, gm = _np_sam_descent_grad(wp0, wm0, X.numpy(), y.numpy(), rho)
    gn = np.sqrt((gp ** 2).sum() + (gm ** 2).sum())
    c = 0.3 * gn
    # torch.nn.utils.clip_grad_norm_ scales by max_norm / (‖g‖ + 1e-6)
    right = (wp0 - lr * c * gp / (gn + 1e-6), wm0 - lr * c * gm / (gn + 1e-6))
    wrong = (wp0 - lr * (c / S) * gp / gn, wm0 - lr * (c / S) * gm / gn)
    model = DLN(wp0, wm0)
    scaler = torch.amp.GradScaler("cpu", init_scale=S)
    if how == "sam_update":
        opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=lr)
        sam_update(model, opt, quarter_mse, X, y, scaler=scaler, max_grad_norm=c)
    elif how == "sam_update_fn":      # clip_fn sees the unscaled gradients too
        opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=lr,
                  clip_fn=lambda ps: torch.nn.utils.clip_grad_norm_(ps, c))
        sam_update(model, opt, quarter_mse, X, y, scaler=scaler)
    else:
        opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=lr, max_grad_norm=c)
        _user_loop(model, opt, X, y, scaler, via="scaler.step")
    got = (model.wp.detach().numpy(), model.wm.detach().numpy())
    for a, b in zip(got, right):
        assert np.max(np.abs(a - b)) <= 1e-13
    assert max(np.max(np.abs(a - b)) for a, b in zip(got, wrong)) > 1e-4       # the order matters here


def test_clipping_without_scaler_and_inactive_threshold():
    """No scaler: the same clipped step; a threshold above ‖g_D‖ leaves the SAM step unchanged."""
    X, y = _data(seed=6)
    wp0, wm0 = np.full(8, 0.6), np.full(8, 0.3)
    gp, gm = _np_sam_descent_grad(wp0, wm0, X.numpy(), y.numpy(), 0.2)
    gn = np.sqrt((gp ** 2).sum() + (gm ** 2).sum())
    for c, factor in ((0.5 * gn, 0.5 * gn / (gn + 1e-6)), (2.0 * gn, 1.0)):     # clip_grad_norm_'s + 1e-6
        model = DLN(wp0, wm0)
        opt = SAM(model.parameters(), torch.optim.SGD, rho=0.2, lr=0.1, max_grad_norm=c)
        opt.step(lambda: quarter_mse(model(X), y).backward())
        assert np.max(np.abs(model.wp.detach().numpy() - (wp0 - 0.1 * factor * gp))) <= 1e-13
        assert np.max(np.abs(model.wm.detach().numpy() - (wm0 - 0.1 * factor * gm))) <= 1e-13
