"""toymodels.torch.sam's variants and optimizer plumbing: multi-step ascent and the random-perturbation
baseline (thesis Fig. 5.4 / 5.1) against hand-written numpy steps on a float64 diagonal linear network
(to 1e-10), SAM-ON groups (``perturb=False``), ASAM's η and weights-only scaling against an autograd
oracle, the ρ-schedule helper against its closed forms, state-dict round trips (bitwise), and
``step(closure)`` semantics against davda54/sam's README loop. Deterministic (fixed seeds, float64);
no Monte Carlo."""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import mse4, torch_dln_pm  # noqa: E402
from torch import nn  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch.sam import SAM, rho_schedule, sam_update, split_weights  # noqa: E402

DT = torch.float64
LOSS = nn.functional.cross_entropy


DLN = torch_dln_pm              # the w₊/w₋ DLN module (tests/helpers.py)
quarter_mse = mse4              # ℓᵢ = ¼(⟨β, xᵢ⟩ − yᵢ)², batch mean (eq. 5.5)


# --------------------------------------------------------------------------- numpy steps written out
def np_grad(w, X, y):
    """∇L of L = ¼ mean (⟨w₊² − w₋², x⟩ − y)² at w = (w₊, w₋) stacked: (w₊ ⊙ a, −w₋ ⊙ a), a = Xᵀr/n."""
    d = X.shape[1]
    a = X.T @ (X @ (w[:d] ** 2 - w[d:] ** 2) - y) / len(y)
    return np.concatenate([w[:d] * a, -w[d:] * a])


def np_multistep(w, X, y, rho, k, normalize=True, T=None):
    """e = δ_k: δⱼ = δⱼ₋₁ + (ρ/k) T² gⱼ/‖T gⱼ‖ (or (ρ/k) T² gⱼ), gⱼ = ∇L(w + δⱼ₋₁)."""
    T = np.ones_like(w) if T is None else T
    delta = np.zeros_like(w)
    for _ in range(k):
        g = np_grad(w + delta, X, y)
        c = rho / k / np.linalg.norm(T * g) if normalize else rho / k
        delta = delta + c * T * T * g
    return delta


def np_sam_sgd_step(w, X, y, lr, rho, k, m, normalize=True, eta=None, adaptive=False, xis=None):
    """One m-SAM SGD step (chunks of m): multi-step gradient ascent, or e = ρ T ξ/‖ξ‖ with the given
    directions ξ (one per chunk) for the random perturbation."""
    T = (np.abs(w) + (eta or 0.0)) if adaptive else np.ones_like(w)
    n = len(y)
    g = np.zeros_like(w)
    for c in range(n // m):
        Xc, yc = X[c * m:(c + 1) * m], y[c * m:(c + 1) * m]
        if xis is None:
            e = np_multistep(w, Xc, yc, rho, k, normalize, T)
        else:
            e = rho * T * xis[c] / np.linalg.norm(xis[c])
        g += np_grad(w + e, Xc, yc) / (n // m)
    return w - lr * g


def _dln_data(seed=3, n=8, d=6):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d))
    return X, X @ np.concatenate([[1.0, -0.5], np.zeros(d - 2)]) + 0.1 * r.standard_normal(n)


TWIN_CASES = {
    "k=3 normalized": dict(k=3, m=8),
    "k=4 unnormalized": dict(k=4, m=8, normalize=False, rho=0.05),
    "k=2 m-SAM m=2": dict(k=2, m=2),
    "k=3 ASAM eta=0.01": dict(k=3, m=8, adaptive=True, eta=0.01),
    "random": dict(random=True, m=8),
    "random m=4": dict(random=True, m=4),
    "random ASAM": dict(random=True, m=8, adaptive=True, eta=0.1),
}


@pytest.mark.parametrize("case", list(TWIN_CASES))
def test_multistep_and_random_variants_equal_numpy_on_the_dln(case):
    kw = dict(TWIN_CASES[case])
    random, k, m = kw.pop("random", False), kw.pop("k", 1), kw.pop("m")
    normalize, adaptive, eta = kw.get("normalize", True), kw.get("adaptive", False), kw.get("eta")
    X, y = _dln_data()
    d = X.shape[1]
    w = np.concatenate([np.full(d, 0.6), np.full(d, 0.5)])
    lr, rho, steps = 0.1, kw.pop("rho", 0.3), 25
    model = DLN(w[:d], w[d:])
    gen = torch.Generator().manual_seed(11)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=lr, normalize=normalize, adaptive=adaptive, eta=eta,
              ascent_steps=k, perturbation="random" if random else "gradient", generator=gen)
    twin = torch.Generator().manual_seed(11)        # the same directions, drawn the documented way
    Xt, yt = torch.tensor(X), torch.tensor(y)
    for _ in range(steps):
        xis = None
        if random:
            xis = [np.concatenate([torch.randn(d, dtype=DT, generator=twin).numpy() for _ in range(2)])
                   for _ in range(len(y) // m)]
        w = np_sam_sgd_step(w, X, y, lr, rho, k, m, normalize, eta, adaptive, xis)
        sam_update(model, opt, quarter_mse, Xt, yt, m=m)
    got = np.concatenate([model.wp.detach().numpy(), model.wm.detach().numpy()])
    assert np.max(np.abs(got - w)) <= 1e-10 * np.max(np.abs(w))
    # the variant matters (the comparison can fail): plain one-step SAM ends elsewhere
    one = np.concatenate([np.full(d, 0.6), np.full(d, 0.5)])
    for _ in range(steps):
        one = np_sam_sgd_step(one, X, y, lr, rho, 1, m, normalize, eta, adaptive)
    assert np.max(np.abs(one - w)) > 1e-6


@pytest.mark.parametrize("k", [1, 3])
def test_multistep_user_loop_and_closure_equal_sam_update(k):
    X, y = _dln_data(seed=4)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    models = [DLN(np.full(6, 0.6), np.full(6, 0.5)) for _ in range(3)]
    opts = [SAM(mod.parameters(), torch.optim.SGD, rho=0.3, lr=0.1, momentum=0.9, ascent_steps=k) for mod in models]
    calls = []

    def closure():
        calls.append(1)
        quarter_mse(models[1](Xt), yt).backward()

    for _ in range(5):
        sam_update(models[0], opts[0], quarter_mse, Xt, yt)
        opts[1].step(closure)
        opt, mod = opts[2], models[2]
        quarter_mse(mod(Xt), yt).backward()
        for _ in range(k):            # k ascent steps: first_step after each ascent backward
            opt.first_step(zero_grad=True)
            quarter_mse(mod(Xt), yt).backward()
        opt.second_step(zero_grad=True)
    assert len(calls) == 5 * (k + 1)
    for mod in models[1:]:
        assert float((mod.wp - models[0].wp).detach().abs().max()) <= 1e-14
    assert float((models[0].wp.detach() - 0.6).abs().max()) > 1e-3


def test_random_perturbation_is_reproducible_and_uses_one_pass():
    X, y = _dln_data(seed=5)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    runs = []
    for seed in (1, 1, 2):
        mod = DLN(np.full(6, 0.6), np.full(6, 0.5))
        opt = SAM(mod.parameters(), torch.optim.SGD, rho=0.3, lr=0.1, perturbation="random",
                  generator=torch.Generator().manual_seed(seed))
        calls = []
        for _ in range(4):
            opt.step(lambda: (calls.append(1), quarter_mse(mod(Xt), yt).backward()))
        assert len(calls) == 4
        runs.append(mod.wp.detach().clone())
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


# --------------------------------------------------------------------------- groups: SAM-ON, ASAM η, weights only
def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.Tanh(), nn.Linear(7, 3)).to(DT)


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 5, generator=g, dtype=DT), torch.randint(0, 3, (8,), generator=g)


def oracle_step(model, x, y, rho, lr, scale_of, perturbed):
    """One normalized SAM-SGD step written out with torch.autograd.grad: e = ρ T² g/‖T g‖ over the
    parameters i with perturbed[i] (others: e = 0, not in the norm), T = scale_of(i, w)."""
    ps = list(model.parameters())
    w = [p.detach().clone() for p in ps]
    g = torch.autograd.grad(LOSS(model(x), y), ps)
    T = [scale_of(i, v) for i, v in enumerate(w)]
    nrm = torch.sqrt(sum(((t * gi) ** 2).sum() for i, (t, gi) in enumerate(zip(T, g)) if perturbed[i]))
    with torch.no_grad():
        for i, p in enumerate(ps):
            if perturbed[i]:
                p.add_(rho / nrm * T[i] * T[i] * g[i])
    gd = torch.autograd.grad(LOSS(model(x), y), ps)
    with torch.no_grad():
        for p, v, gi in zip(ps, w, gd):
            p.copy_(v - lr * gi)


def test_split_weights_separates_biases_and_normalization_layers():
    net = _mlp()
    weights, rest = split_weights(net)
    assert {id(p) for p in weights} == {id(net[0].weight), id(net[3].weight)}
    assert {id(p) for p in rest} == {id(net[0].bias), id(net[1].weight), id(net[1].bias), id(net[3].bias)}


@pytest.mark.parametrize("variant", ["sam-on", "asam-eta-weights-only", "asam-eta-all"])
def test_param_group_options_match_the_oracle(variant):
    ref, mod = _mlp(), _mlp()
    weights, rest = split_weights(mod)
    wid = {id(p) for p in weights}
    is_weight = [id(p) in wid for p in mod.parameters()]
    eta, rho, lr = 0.05, 0.4, 0.2
    if variant == "sam-on":        # only the normalization layers' (and biases') parameters perturbed
        groups = [{"params": weights, "perturb": False}, {"params": rest}]
        opt = SAM(groups, torch.optim.SGD, rho=rho, lr=lr)
        scale_of, perturbed = (lambda i, v: torch.ones_like(v)), [not w for w in is_weight]
    elif variant == "asam-eta-weights-only":
        groups = [{"params": weights}, {"params": rest, "adaptive": False}]
        opt = SAM(groups, torch.optim.SGD, rho=rho, lr=lr, adaptive=True, eta=eta)
        scale_of = (lambda i, v: v.abs() + eta if is_weight[i] else torch.ones_like(v))
        perturbed = [True] * len(is_weight)
    else:
        opt = SAM(mod.parameters(), torch.optim.SGD, rho=rho, lr=lr, adaptive=True, eta=eta)
        scale_of, perturbed = (lambda i, v: v.abs() + eta), [True] * len(is_weight)
    plain = _mlp()
    op = SAM(plain.parameters(), torch.optim.SGD, rho=rho, lr=lr)
    for t in range(3):
        x, y = _batch(20 + t)
        oracle_step(ref, x, y, rho, lr, scale_of, perturbed)
        mod.train(), ref.train()
        opt.step(lambda: LOSS(mod(x), y).backward())
        op.step(lambda: LOSS(plain(x), y).backward())
    diff = max(float((a - b).detach().abs().max()) for a, b in zip(ref.parameters(), mod.parameters()))
    assert diff <= 1e-12
    assert max(float((a - b).detach().abs().max()) for a, b in zip(plain.parameters(), mod.parameters())) > 1e-6


# --------------------------------------------------------------------------- ρ schedules
def test_rho_schedule_closed_forms():
    assert rho_schedule("constant", 0.1, 3) == [0.1, 0.1, 0.1]
    lin = rho_schedule("linear", 0.2, 4, final=0.0)
    assert lin == pytest.approx([0.2, 0.15, 0.1, 0.05], abs=1e-15)
    cos = rho_schedule("cosine", 0.2, 4, final=0.1)
    assert cos == pytest.approx([0.2, 0.1 + 0.05 * (1 + math.sqrt(0.5)), 0.15, 0.1 + 0.05 * (1 - math.sqrt(0.5))],
                                abs=1e-15)
    assert rho_schedule("step", 1.0, 8, milestones=(0.5, 0.75), factor=0.1) == pytest.approx(
        [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01], abs=1e-15)
    warm = rho_schedule("linear", 0.3, 5, warmup=2, final=0.0)
    assert warm == pytest.approx([0.1, 0.2, 0.3, 0.2, 0.1], abs=1e-15)
    for bad in (dict(kind="exp"), dict(rho=-1.0), dict(steps=0), dict(warmup=5), dict(factor=0.0),
                dict(milestones=(1.0,)), dict(final=-0.1)):
        args = {**dict(kind="step", rho=0.1, steps=5), **bad}
        with pytest.raises(ConfigError, match=f"^{next(iter(bad))} "):
            rho_schedule(args.pop("kind"), args.pop("rho"), args.pop("steps"), **args)


def test_rho_schedule_through_set_rho_equals_per_step_optimizers():
    X, y = _dln_data(seed=6)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    rhos = rho_schedule("cosine", 0.4, 6)
    a = DLN(np.full(6, 0.6), np.full(6, 0.5))
    oa = SAM(a.parameters(), torch.optim.SGD, rho=0.0, lr=0.1)
    w = np.concatenate([np.full(6, 0.6), np.full(6, 0.5)])
    for t in range(6):
        oa.set_rho(rhos[t])
        sam_update(a, oa, quarter_mse, Xt, yt)
        w = np_sam_sgd_step(w, X, y, 0.1, rhos[t], 1, len(y))
    assert np.max(np.abs(np.concatenate([a.wp.detach().numpy(), a.wm.detach().numpy()]) - w)) <= 1e-12
    assert abs(rhos[0] - 0.4) < 1e-15 and rhos[-1] < 0.1     # the schedule varied (the check can fail)


# --------------------------------------------------------------------------- state dicts
def _train(model, opt, ts, rhos):
    for t in ts:
        x, y = _batch(80 + t)
        opt.set_rho(rhos[t])
        sam_update(model, opt, LOSS, x, y, m=4)


@pytest.mark.parametrize("opts", [dict(ascent_steps=2, adaptive=True, eta=0.01),
                                  dict(perturbation="random")])
@pytest.mark.parametrize("base,kw", [(torch.optim.SGD, dict(lr=0.1, momentum=0.9)), (torch.optim.Adam, dict(lr=0.01))])
def test_state_dict_round_trip_mid_training_is_bitwise(opts, base, kw):
    rhos = rho_schedule("linear", 0.3, 8)
    full = _mlp()
    of = SAM(full.parameters(), base, generator=torch.Generator().manual_seed(5), **opts, **kw)
    _train(full, of, range(8), rhos)
    first = _mlp()
    o1 = SAM(first.parameters(), base, generator=torch.Generator().manual_seed(5), **opts, **kw)
    _train(first, o1, range(4), rhos)
    ckpt = copy.deepcopy({"model": first.state_dict(), "opt": o1.state_dict()})
    resumed, stale = _mlp(seed=99), _mlp(seed=99)
    o2 = SAM(resumed.parameters(), base, rho=0.7, generator=torch.Generator().manual_seed(123), **opts, **kw)
    o3 = SAM(stale.parameters(), base, rho=0.7, generator=torch.Generator().manual_seed(123), **opts, **kw)
    resumed.load_state_dict(ckpt["model"])
    stale.load_state_dict(ckpt["model"])
    o2.load_state_dict(ckpt["opt"])
    o3.load_state_dict(ckpt["opt"]["base_optimizer"])      # a plain base-optimizer state dict: no generator
    assert o2.param_groups is o2.base_optimizer.param_groups and o2.state is o2.base_optimizer.state
    assert o2.param_groups[0]["rho"] == pytest.approx(rhos[3]) and len(o2.state) == len(list(resumed.parameters()))
    _train(resumed, o2, range(4, 8), rhos)
    _train(stale, o3, range(4, 8), rhos)
    assert all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), resumed.state_dict().values()))
    if opts.get("perturbation") == "random":   # the generator's state is part of SAM's state: it matters
        assert not all(torch.equal(a, b) for a, b in zip(full.parameters(), stale.parameters()))


def test_plain_base_state_dict_loads_momentum_and_keeps_sam_keys():
    net_a, net_b = _mlp(), _mlp()
    sgd = torch.optim.SGD(net_a.parameters(), lr=0.1, momentum=0.9)
    for t in range(2):
        x, y = _batch(t)
        sgd.zero_grad()
        LOSS(net_a(x), y).backward()
        sgd.step()
    opt = SAM(net_b.parameters(), torch.optim.SGD, rho=0.25, lr=0.5, momentum=0.9)
    opt.load_state_dict(sgd.state_dict())
    assert opt.param_groups[0]["rho"] == 0.25 and opt.param_groups[0]["lr"] == 0.1
    for p, q in zip(net_a.parameters(), net_b.parameters()):
        assert torch.equal(opt.state[q]["momentum_buffer"], sgd.state[p]["momentum_buffer"])
    with pytest.raises(ConfigError, match="^state_dict "):
        opt.load_state_dict({"something": 1})


# --------------------------------------------------------------------------- step(closure) vs davda54/sam
def test_davda54_readme_loop_gives_the_same_weights_and_warns_once():
    """davda54/sam README: loss.backward() at w, then optimizer.step(closure) with a closure doing
    forward + backward, then optimizer.zero_grad(). Here step(closure) recomputes the gradient at w, so
    the weights are the same but each step costs a third pass: a warning, once."""
    ours, theirs = _mlp(), _mlp()
    oo = SAM(ours.parameters(), torch.optim.SGD, rho=0.2, lr=0.1, momentum=0.9)
    ot = SAM(theirs.parameters(), torch.optim.SGD, rho=0.2, lr=0.1, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # our own pattern never warns
        for t in range(3):
            x, y = _batch(40 + t)
            oo.step(lambda: LOSS(ours(x), y).backward())
    caught = []
    for t in range(3):
        x, y = _batch(40 + t)

        def closure():
            loss = LOSS(theirs(x), y)
            loss.backward()
            return loss

        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            LOSS(theirs(x), y).backward()
            ot.step(closure)
            ot.zero_grad()
        caught += [m for m in w if "davda54" in str(m.message)]
    assert len(caught) == 1
    sd_o, sd_t = ours.state_dict(), theirs.state_dict()
    for k in sd_o:      # BatchNorm statistics differ (a third pass), the weights do not
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(sd_o[k], sd_t[k]), k
    assert int(sd_t["1.num_batches_tracked"]) == 3 * 3 and int(sd_o["1.num_batches_tracked"]) == 3 * 2


def test_step_without_closure_needs_first_step():
    net = _mlp()
    opt = SAM(net.parameters(), torch.optim.SGD, rho=0.2, lr=0.1)
    with pytest.raises(ConfigError, match="^closure "):
        opt.step()


# --------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("kw,field", [
    (dict(rho=-0.1), "rho"), (dict(eta=0.0), "eta"), (dict(eta=-1.0), "eta"), (dict(ascent_steps=0), "ascent_steps"),
    (dict(perturbation="uniform"), "perturbation"), (dict(perturbation="random", ascent_steps=2), "ascent_steps"),
    (dict(perturbation="random", normalize=False), "perturbation"), (dict(max_grad_norm=0.0), "max_grad_norm"),
])
def test_bad_optimizer_options_raise_config_error(kw, field):
    with pytest.raises(ConfigError, match=f"^{field} "):
        SAM(_mlp().parameters(), torch.optim.SGD, lr=0.1, **kw)


def test_bad_group_and_update_options_raise_config_error():
    net = _mlp()
    with pytest.raises(ConfigError, match="^eta "):
        SAM([{"params": net.parameters(), "eta": -0.5}], torch.optim.SGD, lr=0.1, adaptive=True)
    opt = SAM(net.parameters(), torch.optim.SGD, lr=0.1)
    x, y = _batch(1)
    with pytest.raises(ConfigError, match="^rho "):
        opt.set_rho(-1.0)
    with pytest.raises(ConfigError, match="^ascent_steps "):
        sam_update(net, opt, LOSS, x, y, ascent_steps=0)
    with pytest.raises(ConfigError, match="^perturbation "):
        sam_update(net, opt, LOSS, x, y, perturbation="random", ascent_x=x, ascent_y=y)
    assert opt.ascent_steps == 1 and opt.perturbation == "gradient"      # overrides do not stick
