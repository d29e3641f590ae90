"""toymodels.torch.sam: the SAM optimizer wrapper and sam_update, checked against the base optimizers,
an autograd oracle written out here, toymodels.dln's numba trajectories and BatchNorm forward passes.
All deterministic (CPU, float64); no Monte Carlo."""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import mse4, torch_dln_pm  # noqa: E402
from torch import nn  # noqa: E402

from toymodels.datasets import make_sparse_regression  # noqa: E402
from toymodels.dln.train import DLNConfig, prepare, schedules_of, train  # noqa: E402
from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch.sam import SAM, bn_frozen, sam_update  # noqa: E402

DT = torch.float64


def mlp(seed=0, bn=False):
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 7)] + ([nn.BatchNorm1d(7)] if bn else []) + [nn.Tanh(), nn.Linear(7, 3)]
    return nn.Sequential(*layers).to(DT)


def batch(seed=1, b=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 5, generator=g, dtype=DT), torch.randint(0, 3, (b,), generator=g)


LOSS = nn.functional.cross_entropy


def _max_diff(m1, m2):
    return max(float((a - b).detach().abs().max()) for a, b in zip(m1.parameters(), m2.parameters()))


# --------------------------------------------------------------------------- rho = 0 is the base optimizer
@pytest.mark.parametrize("base,kw", [(torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
                                     (torch.optim.Adam, dict(lr=0.01))])
@pytest.mark.parametrize("how", ["closure", "sam_update", "two_steps"])
def test_rho_zero_equals_base_optimizer(base, kw, how):
    ref, mod = mlp(), mlp()
    opt_ref = base(ref.parameters(), **kw)
    opt = SAM(mod.parameters(), base, rho=0.0, normalize=True, **kw)
    for t in range(5):
        x, y = batch(seed=10 + t)
        opt_ref.zero_grad()
        LOSS(ref(x), y).backward()
        opt_ref.step()
        if how == "closure":
            opt.step(lambda: LOSS(mod(x), y).backward())
        elif how == "sam_update":
            sam_update(mod, opt, LOSS, x, y)
        else:
            opt.zero_grad()
            LOSS(mod(x), y).backward()
            opt.first_step(zero_grad=True)
            LOSS(mod(x), y).backward()
            opt.second_step(zero_grad=True)
    assert _max_diff(ref, mod) <= 1e-12
    # and SAM with rho > 0 does move elsewhere (the comparison can fail)
    other = mlp()
    opt2 = SAM(other.parameters(), base, rho=0.5, **kw)
    for t in range(5):
        x, y = batch(seed=10 + t)
        sam_update(other, opt2, LOSS, x, y)
    assert _max_diff(ref, other) > 1e-6


# --------------------------------------------------------------------------- an autograd oracle
def oracle_step(model, x, y, m, rho, lr, normalize, adaptive, ascent=None):
    """One m-SAM (or eq. 5.21) step with plain SGD, written out with torch.autograd.grad."""
    ps = list(model.parameters())
    w = [p.detach().clone() for p in ps]

    def grad_at(wt, xb, yb):
        with torch.no_grad():
            for p, v in zip(ps, wt):
                p.copy_(v)
        return torch.autograd.grad(LOSS(model(xb), yb), ps)

    def perturbed(g):
        scale = [v.abs() if adaptive else torch.ones_like(v) for v in w]
        if normalize:
            nrm = torch.sqrt(sum(((s * gi) ** 2).sum() for s, gi in zip(scale, g)))
            c = rho / nrm
        else:
            c = rho
        return [v + c * s * s * gi for v, s, gi in zip(w, scale, g)]

    if ascent is not None:
        gd = grad_at(perturbed(grad_at(w, *ascent)), x, y)
    else:
        k = x.shape[0] // m
        gd = [torch.zeros_like(v) for v in w]
        for c in range(k):
            xc, yc = x[c * m:(c + 1) * m], y[c * m:(c + 1) * m]
            gc = grad_at(perturbed(grad_at(w, xc, yc)), xc, yc)
            gd = [a + b / k for a, b in zip(gd, gc)]
    with torch.no_grad():
        for p, v, g in zip(ps, w, gd):
            p.copy_(v - lr * g)


@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("normalize,adaptive", [(True, False), (False, False), (True, True), (False, True)])
def test_msam_matches_the_chunked_oracle(m, normalize, adaptive):
    ref, mod = mlp(), mlp()
    opt = SAM(mod.parameters(), torch.optim.SGD, rho=0.3, normalize=normalize, adaptive=adaptive, lr=0.2)
    for t in range(3):
        x, y = batch(seed=20 + t)
        oracle_step(ref, x, y, m, 0.3, 0.2, normalize, adaptive)
        sam_update(mod, opt, LOSS, x, y, m=m)
    assert _max_diff(ref, mod) <= 1e-12


def test_msam_with_m_equal_batch_is_plain_sam_and_m1_differs():
    a, b, c = mlp(), mlp(), mlp()
    oa = SAM(a.parameters(), torch.optim.SGD, rho=0.2, lr=0.1, momentum=0.9)
    ob = SAM(b.parameters(), torch.optim.SGD, rho=0.2, lr=0.1, momentum=0.9)
    oc = SAM(c.parameters(), torch.optim.SGD, rho=0.2, lr=0.1, momentum=0.9)
    for t in range(4):
        x, y = batch(seed=30 + t)
        sam_update(a, oa, LOSS, x, y, m=8)
        ob.step(lambda: LOSS(b(x), y).backward())
        sam_update(c, oc, LOSS, x, y, m=1)
    assert _max_diff(a, b) <= 1e-12
    assert _max_diff(a, c) > 1e-6


def test_independent_ascent_batch_matches_oracle():
    ref, mod = mlp(), mlp()
    opt = SAM(mod.parameters(), torch.optim.SGD, rho=0.3, lr=0.2)
    for t in range(3):
        x, y = batch(seed=40 + t)
        xa, ya = batch(seed=140 + t, b=5)
        oracle_step(ref, x, y, None, 0.3, 0.2, True, False, ascent=(xa, ya))
        sam_update(mod, opt, LOSS, x, y, ascent_x=xa, ascent_y=ya)
    assert _max_diff(ref, mod) <= 1e-12


def test_base_optimizer_instance_and_ascent_lr():
    a, b = mlp(), mlp()
    oa = SAM(a.parameters(), torch.optim.SGD, rho=0.2, lr=0.1)
    ob = SAM(None, torch.optim.SGD(b.parameters(), lr=0.1), rho=5.0, ascent_lr=0.2)
    sched = torch.optim.lr_scheduler.StepLR(ob, step_size=1, gamma=0.5)
    sched_a = torch.optim.lr_scheduler.StepLR(oa, step_size=1, gamma=0.5)
    for t in range(3):
        x, y = batch(seed=50 + t)
        sam_update(a, oa, LOSS, x, y)
        sam_update(b, ob, LOSS, x, y)
        ob.set_rho(7.0)                 # a rho schedule does not touch the pinned ascent_lr
        sched.step()
        sched_a.step()
    assert ob.param_groups is ob.base_optimizer.param_groups
    assert ob.param_groups[0]["lr"] == pytest.approx(0.1 / 8)
    assert _max_diff(a, b) <= 1e-12
    with pytest.raises(ConfigError, match="^params "):
        SAM(list(mlp().parameters()), torch.optim.SGD(b.parameters(), lr=0.1))
    with pytest.raises(ConfigError, match="^rho "):
        SAM(list(mlp().parameters()), torch.optim.SGD, rho=-1.0, lr=0.1)
    with pytest.raises(ConfigError, match="^m "):
        x, y = batch(seed=1)
        sam_update(b, ob, LOSS, x, y, m=3)


# --------------------------------------------------------------------------- BatchNorm
def _stats(model):
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)][0]
    return bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)


@pytest.mark.parametrize("mode", ["sam", "msam", "independent"])
def test_bn_running_stats_are_those_of_one_clean_forward(mode):
    mod = mlp(bn=True)
    ref = copy.deepcopy(mod)
    naive = copy.deepcopy(mod)
    opt = SAM(mod.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    x, y = batch(seed=60)
    xa, ya = batch(seed=61, b=6)
    kw = {"sam": {}, "msam": {"m": 2}, "independent": {"ascent_x": xa, "ascent_y": ya}}[mode]
    sam_update(mod, opt, LOSS, x, y, **kw)
    with torch.no_grad():
        ref(xa if mode == "independent" else x)
    for a, b in zip(_stats(mod), _stats(ref)):
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    # the naive closure step lets the perturbed pass into the statistics: they differ
    ob = SAM(naive.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    ob.step(lambda: LOSS(naive(x), y).backward())
    assert _stats(naive)[2] == 2 * _stats(ref)[2] and not torch.allclose(_stats(naive)[0], _stats(ref)[0])


def test_bn_frozen_restores_exactly_and_still_normalizes_by_batch():
    mod = mlp(bn=True)
    before = _stats(mod)
    x, _ = batch(seed=62)
    with bn_frozen(mod):
        out = mod[:2](x)
    after = _stats(mod)
    assert all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in zip(before, after))
    assert float(out.detach().mean(0).abs().max()) < 1e-12     # batch statistics were used (train mode)


# --------------------------------------------------------------------------- toymodels.dln twins
DLN = torch_dln_pm              # the w₊/w₋ DLN module (tests/helpers.py)
quarter_mse = mse4              # ℓᵢ = ¼(⟨β, xᵢ⟩ − yᵢ)², batch mean (eq. 5.5)


def run_torch_dln(data, cfg, scaler=None):
    st = prepare(data, cfg)
    c = st.cfg
    lr, rho = schedules_of(c)
    idx, aidx = st.batches(0, c.steps)
    model = DLN(st.wp, st.wm)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.0, normalize=c.normalize, lr=1.0)
    X, y = torch.tensor(st.X), torch.tensor(st.y)
    for t in range(c.steps):
        for g in opt.param_groups:
            g["lr"] = float(lr[t])
        opt.set_rho(float(rho[t]))
        xb, yb = (X, y) if idx.shape[1] == 0 else (X[idx[t]], y[idx[t]])
        if st.mode == 1:
            sam_update(model, opt, quarter_mse, xb, yb, ascent_x=X[aidx[t]], ascent_y=y[aidx[t]], scaler=scaler)
        else:
            sam_update(model, opt, quarter_mse, xb, yb, m=c.m, scaler=scaler)
    return model.wp.detach().numpy(), model.wm.detach().numpy()


DLN_CASES = {
    "1-SAM gd": dict(sam="1", algo="gd"),
    # full-batch normalized SAM bounces around the minimum once the gradient is small, and that
    # regime amplifies rounding (numba vs its own numpy reference differ by 6e-3 after 120 steps):
    # compare over the 30 steps of the descent phase
    "n-SAM gd normalized": dict(sam="n", algo="gd", normalize=True, steps=30),
    "m-SAM sgd B=6 m=2": dict(sam="m", m=2, algo="sgd", batch=6),
    "1-SAM sgd B=3 normalized, no replacement": dict(sam="1", algo="sgd", batch=3, normalize=True,
                                                     replacement=False),
    "n-SAM eq. 5.21": dict(sam="n", algo="sgd", batch=4, ascent="independent", ascent_batch=3, normalize=True),
    "ERM->1-SAM, decays, rho same-as-lr": dict(sam="1", algo="gd", switch_at=40, schedule="step",
                                               decay_at=(0.5,), rho_schedule="same-as-lr"),
}


@pytest.mark.parametrize("case", list(DLN_CASES))
def test_sam_update_reproduces_numba_dln_trajectories(case):
    data = make_sparse_regression(12, 8, 2, n_test=10, seed=3)
    cfg = DLNConfig(**{**dict(alpha=0.5, lr=0.05, rho=0.1, steps=60, seed=5), **DLN_CASES[case]})
    res = train(data, cfg)
    wp, wm = run_torch_dln(data, cfg)
    assert not res.diverged
    scale = max(np.abs(res.w_plus).max(), np.abs(res.w_minus).max())
    assert np.max(np.abs(wp - res.w_plus)) <= 1e-10 * scale
    assert np.max(np.abs(wm - res.w_minus)) <= 1e-10 * scale
    assert np.max(np.abs(res.w_plus - 0.5)) > 1e-3       # the runs moved: the comparison can fail


# --------------------------------------------------------------------------- GradScaler
def test_gradscaler_path_matches_unscaled_and_skips_inf():
    data = make_sparse_regression(12, 8, 2, n_test=10, seed=3)
    cfg = DLNConfig(sam="m", m=2, algo="sgd", batch=4, alpha=0.5, lr=0.05, rho=0.1, steps=30, seed=1,
                    normalize=True)
    plain = run_torch_dln(data, cfg)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16, growth_interval=1000)
    scaled = run_torch_dln(data, cfg, scaler=scaler)
    # the scale is a power of two and the model runs in float64 under CPU autocast: exact
    for a, b in zip(plain, scaled):
        assert np.max(np.abs(a - b)) <= 1e-14
    assert scaler.get_scale() == 2.0 ** 16
    # non-finite ascent gradient: nothing moves, the scale backs off
    model = DLN(np.full(8, 0.5), np.full(8, 0.5))
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9)
    x = torch.ones(4, 8, dtype=DT)
    x[0, 0] = float("inf")
    sam_update(model, opt, quarter_mse, x, torch.zeros(4, dtype=DT), scaler=scaler)
    assert torch.equal(model.wp.detach(), torch.full((8,), 0.5, dtype=DT)) and scaler.get_scale() == 2.0 ** 15
    # finite ascent, overflowing perturbed point (unnormalized huge rho): descent skipped by scaler.step
    model = DLN(np.full(8, 0.6), np.full(8, 0.5))
    opt = SAM(model.parameters(), torch.optim.SGD, rho=1e300, normalize=False, lr=0.1, momentum=0.9)
    sam_update(model, opt, quarter_mse, torch.ones(4, 8, dtype=DT), torch.zeros(4, dtype=DT), scaler=scaler)
    assert torch.equal(model.wp.detach(), torch.full((8,), 0.6, dtype=DT)) and scaler.get_scale() == 2.0 ** 14
    assert not opt.base_optimizer.state     # no momentum buffer: the base step never ran


def test_gradscaler_disabled_is_the_plain_path():
    a, b = mlp(), mlp()
    oa = SAM(a.parameters(), torch.optim.Adam, rho=0.1, lr=0.01)
    ob = SAM(b.parameters(), torch.optim.Adam, rho=0.1, lr=0.01)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for t in range(3):
        x, y = batch(seed=70 + t)
        sam_update(a, oa, LOSS, x, y, m=4)
        sam_update(b, ob, LOSS, x, y, m=4, scaler=scaler)
    assert _max_diff(a, b) == 0.0


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("base,kw", [(torch.optim.SGD, dict(lr=0.1, momentum=0.9)), (torch.optim.Adam, dict(lr=0.01))])
def test_state_dict_round_trip_resumes_identically(base, kw):
    full = mlp()
    of = SAM(full.parameters(), base, rho=0.2, **kw)
    for t in range(6):
        x, y = batch(seed=80 + t)
        if t == 3:
            of.set_rho(0.05)
        sam_update(full, of, LOSS, x, y, m=4)
    first = mlp()
    o1 = SAM(first.parameters(), base, rho=0.2, **kw)
    for t in range(3):
        x, y = batch(seed=80 + t)
        sam_update(first, o1, LOSS, x, y, m=4)
    o1.set_rho(0.05)
    ckpt = copy.deepcopy({"model": first.state_dict(), "opt": o1.state_dict()})
    resumed = mlp(seed=99)
    o2 = SAM(resumed.parameters(), base, rho=0.7, **kw)
    resumed.load_state_dict(ckpt["model"])
    o2.load_state_dict(ckpt["opt"])
    assert o2.param_groups is o2.base_optimizer.param_groups and o2.param_groups[0]["rho"] == 0.05
    for t in range(3, 6):
        x, y = batch(seed=80 + t)
        sam_update(resumed, o2, LOSS, x, y, m=4)
    assert _max_diff(full, resumed) == 0.0


# --------------------------------------------------------------------------- DDP (one process, gloo)
def test_ddp_single_process_equals_plain(tmp_path):
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        a, b = mlp(bn=True), mlp(bn=True)
        ddp = nn.parallel.DistributedDataParallel(b)
        oa = SAM(a.parameters(), torch.optim.SGD, rho=0.2, lr=0.1)
        ob = SAM(ddp.parameters(), torch.optim.SGD, rho=0.2, lr=0.1)
        for t in range(3):
            x, y = batch(seed=90 + t)
            sam_update(a, oa, LOSS, x, y, m=4)
            sam_update(ddp, ob, LOSS, x, y, m=4)
        assert _max_diff(a, b) <= 1e-12
        assert all(torch.equal(torch.as_tensor(u), torch.as_tensor(v)) for u, v in zip(_stats(a), _stats(b)))
    finally:
        dist.destroy_process_group()
