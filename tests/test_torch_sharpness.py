"""Adaptive sharpness for nn.Modules (toymodels.torch.sharpness) against its numpy twin and closed forms.

Oracles: the numpy twin :mod:`toymodels.sharpness.measures` on the diagonal linear network (same draws,
float64: equal to rounding), hand-derived exact expectations/maxima of the DLN loss at a whitened
minimum with c = |w| (see ``_exact_*``), the ReLU rescaling invariance, and eq. (7.5)'s scale invariance.
The Monte-Carlo test uses N = 4000 draws and 5 standard errors; it passes for every seed 0–99
(verified once by looping the seeds outside the suite).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import mse4, run_cli, torch_dln  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.rng import child_seed  # noqa: E402
from toymodels.sharpness.dln import dln_grad, dln_hessian, dln_loss  # noqa: E402
from toymodels.sharpness.measures import avg_sharpness as np_avg, max_sharpness as np_max  # noqa: E402
from toymodels.torch.sharpness import (avg_sharpness_batch, sharpness, worst_sharpness_batch)  # noqa: E402

SEED = 0  # any seed in 0..99 passes
MC_N = 4000




def _problem(seed, n=12, d=5, at_min=False, whitened=False):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    X = np.sqrt(n) * np.linalg.qr(A)[0] if whitened else A
    u = rng.choice([-1, 1], d) * rng.uniform(0.3, 2.0, d)
    v = rng.choice([-1, 1], d) * rng.uniform(0.3, 2.0, d)
    y = X @ (u * v) + (0 if at_min else 0.3 * rng.standard_normal(n))
    return u, v, X, y


def _np_fns(X, y):
    d = X.shape[1]
    return (lambda W: dln_loss(W[:, :d], W[:, d:], X, y),
            lambda w: np.concatenate(dln_grad(w[:d], w[d:], X, y)))


def _exact_avg(beta, X, rho):
    # c = |w| at a minimum: δβᵢ = βᵢ(γ₁ᵢ + γ₂ᵢ + γ₁ᵢγ₂ᵢ)·sign, uncorrelated across i, E δβᵢ² = βᵢ²(2ρ² + ρ⁴)
    return np.sum(np.sum(X * X, axis=0) * beta ** 2 * (2 * rho ** 2 + rho ** 4)) / (4 * X.shape[0])


def _exact_max(beta, rho, norm):
    # XᵀX = nI: L − L* = ¼ Σ βᵢ²(γ₁ᵢ + γ₂ᵢ + γ₁ᵢγ₂ᵢ)². ℓ∞: each coordinate at its corner, (2ρ + ρ²)².
    # ℓ₂: per coordinate with budget tᵢ² the max is (√2 tᵢ + tᵢ²/2)², convex in sᵢ = tᵢ², so the whole
    # budget goes to the largest |βᵢ|.
    if norm == "linf":
        return 0.25 * np.sum(beta ** 2) * (2 * rho + rho ** 2) ** 2
    return 0.25 * np.max(beta ** 2) * (np.sqrt(2) * rho + rho ** 2 / 2) ** 2


# ------------------------------------------------------------------ cross-checks with the numpy twin

@pytest.mark.parametrize("adaptive", [True, False])
def test_avg_equals_numpy_twin_with_same_draws(adaptive):
    u, v, X, y = _problem(1)
    loss, _ = _np_fns(X, y)
    w = np.r_[u, v]
    c = np.abs(w) if adaptive else np.ones_like(w)
    ref = np_avg(loss, w, c, 0.05, n_samples=300, seed=7)
    mean, se, base = avg_sharpness_batch(torch_dln(u, v), torch.tensor(X), torch.tensor(y), 0.05, adaptive=adaptive,
                                         n_samples=300, seed=7, loss_fn=mse4)
    assert abs(mean - ref[0]) <= 1e-10 and abs(se - ref[1]) <= 1e-10
    assert base == pytest.approx(float(loss(w[None])[0]), rel=1e-12)


@pytest.mark.parametrize("norm,p", [("l2", "2"), ("linf", "inf")])
@pytest.mark.parametrize("adaptive", [True, False])
def test_worst_case_follows_numpy_twin_iterates(norm, p, adaptive):
    u, v, X, y = _problem(2)
    loss, grad = _np_fns(X, y)
    w = np.r_[u, v]
    c = np.abs(w) if adaptive else np.ones_like(w)
    ref = np_max(loss, grad, w, c, 0.05, p=p, n_iter=40, n_restarts=1, seed=3)
    got = worst_sharpness_batch(torch_dln(u, v), torch.tensor(X), torch.tensor(y), 0.05, norm=norm, adaptive=adaptive,
                                n_iter=40, seed=3, loss_fn=mse4)
    assert ref.value > 0
    np.testing.assert_allclose(got.history, ref.history, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.gamma.numpy(), ref.gamma, rtol=0, atol=1e-8)
    assert got.value == pytest.approx(ref.value, abs=1e-10)


def test_m_sharpness_uses_the_twins_batch_streams():
    """Several batches: batch b draws with child_seed(seed, "sharpness/avg" | "sharpness/max", b), the
    seeds of toymodels.sharpness.dln.measure_dln, so each batch equals the numpy twin on that batch."""
    u, v, X, y = _problem(5)
    w = np.r_[u, v]
    avg_ref, max_ref = [], []
    for b in range(3):
        Xb, yb = X[4 * b:4 * b + 4], y[4 * b:4 * b + 4]
        loss, grad = _np_fns(Xb, yb)
        avg_ref.append(np_avg(loss, w, np.abs(w), 0.05, n_samples=50, seed=child_seed(7, "sharpness/avg", b))[0])
        max_ref.append(np_max(loss, grad, w, np.abs(w), 0.05, p="2", n_iter=10, n_restarts=1,
                              seed=child_seed(7, "sharpness/max", b)).value)
    kw = dict(m=4, seed=7, loss_fn=mse4)
    avg = sharpness(torch_dln(u, v), torch.tensor(X), torch.tensor(y), 0.05, kind="avg-l2", n_samples=50, **kw)
    mx = sharpness(torch_dln(u, v), torch.tensor(X), torch.tensor(y), 0.05, kind="worst-l2", n_iter=10, **kw)
    assert avg.n_batches == 3 and mx.n_batches == 3
    np.testing.assert_allclose(avg.per_batch, avg_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(mx.per_batch, max_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_worst_case_reaches_exact_max_and_local_limit_at_whitened_minimum(norm):
    u, v, X, y = _problem(3, at_min=True, whitened=True)
    rho = 1e-2
    res = worst_sharpness_batch(torch_dln(u, v), torch.tensor(X), torch.tensor(y), rho, norm=norm, n_iter=60,
                                n_restarts=2, seed=SEED, loss_fn=mse4)
    exact = _exact_max(u * v, rho, norm)
    assert 0.98 * exact <= res.value <= exact * (1 + 1e-9)
    if norm == "l2":  # Prop. 7.8.1: ρ²/2 λ_max(H ⊙ |w||w|ᵀ) + O(ρ³)
        w = np.abs(np.r_[u, v])
        lam = np.linalg.eigvalsh(dln_hessian(u, v, X, y) * np.outer(w, w))[-1]
        assert res.value >= 0.98 * rho ** 2 / 2 * lam


@pytest.mark.parametrize("noise", ["numpy", "torch"])
def test_avg_matches_exact_expectation_at_minimum(noise):
    u, v, X, y = _problem(4, at_min=True)
    rho = 0.1
    mean, se, _ = avg_sharpness_batch(torch_dln(u, v), torch.tensor(X), torch.tensor(y), rho, n_samples=MC_N,
                                      seed=SEED, loss_fn=mse4, noise=noise)
    assert abs(mean - _exact_avg(u * v, X, rho)) <= 5 * se


# ------------------------------------------------------------------ invariants

class SmallNet(torch.nn.Module):
    def __init__(self, bn=True, bias=True):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1, bias=bias)
        self.bn = torch.nn.BatchNorm2d(3) if bn else torch.nn.Identity()
        self.lin = torch.nn.Linear(3 * 5 * 5, 4, bias=bias)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x):
        return self.lin(self.drop(torch.relu(self.bn(self.conv(x))).flatten(1)))


def _net_data(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SmallNet().double()
    with torch.no_grad():  # non-trivial BN statistics
        net.bn.running_mean.uniform_(-0.5, 0.5, generator=g)
        net.bn.running_var.uniform_(0.5, 2.0, generator=g)
    x = torch.rand(n, 2, 5, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (n,), generator=g)
    return net, x, y


@pytest.mark.parametrize("kind", ["avg-l2", "worst-l2", "worst-linf"])
def test_parameters_buffers_grads_and_mode_restored_exactly(kind):
    net, x, y = _net_data(1)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    sharpness(net, x, y, 0.05, kind=kind, m=8, n_samples=5, n_iter=5, logit_norm=True)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats: eval mode was used
    assert net.training and net.bn.training and net.drop.training
    assert all(p.grad is None for p in net.parameters())


def test_parameters_restored_after_an_error():
    net, x, y = _net_data(2)
    before = [p.clone() for p in net.parameters()]

    def bad_loss(z, t):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        avg_sharpness_batch(net, x, y, 0.1, loss_fn=bad_loss, n_samples=3)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_eval_mode_is_used_dropout_off():
    # in train mode dropout would make two evaluations at γ = 0 differ; the base loss is deterministic
    net, x, y = _net_data(3)
    net.train()
    with torch.no_grad():
        net.eval()
        ref = torch.nn.functional.cross_entropy(net(x), y).item()
        net.train()
    _, _, base = avg_sharpness_batch(net, x, y, 0.01, n_samples=2)
    assert base == pytest.approx(ref, rel=1e-13)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_iterates_stay_feasible_and_value_is_nonnegative(norm):
    rho = 0.2
    for seed in range(6):
        net, x, y = _net_data(seed, n=8)
        res = worst_sharpness_batch(net, x, y, rho, norm=norm, n_iter=1 + seed, n_restarts=2, seed=seed,
                                    trace=True)
        assert len(res.iterates) == 2 * (res.history.size)  # (n_iter + 1) evaluations per restart
        for g in res.iterates + [res.gamma]:
            nrm = g.abs().max() if norm == "linf" else torch.linalg.vector_norm(g)
            assert float(nrm) <= rho * (1 + 1e-12)
        assert res.value >= 0
        # the value is the loss increase at the returned γ, recomputed by hand
        w = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        net.eval()
        with torch.no_grad():
            l0 = torch.nn.functional.cross_entropy(net(x), y).item()
            torch.nn.utils.vector_to_parameters(w + w.abs() * res.gamma.double(), net.parameters())
            l1 = torch.nn.functional.cross_entropy(net(x), y).item()
            torch.nn.utils.vector_to_parameters(w, net.parameters())
        assert res.value == pytest.approx(l1 - l0, abs=1e-12)


class Bowl(torch.nn.Module):
    """Output ‖w‖² for every point; with loss −output, w ≈ 0 is a strict local maximum of L."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((3,), 1e-3, dtype=torch.float64))

    def forward(self, x):
        return (self.w ** 2).sum() * torch.ones(x.shape[0], dtype=x.dtype)


def test_worst_case_at_a_local_maximum_is_zero_not_negative():
    # every feasible γ ≠ 0 lowers the loss, so S_max = 0 (attained at γ = 0, which is feasible)
    x, y = torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4)
    for seed in range(5):
        res = worst_sharpness_batch(Bowl(), x, y, 0.1, norm="l2", adaptive=False, n_iter=5, seed=seed,
                                    loss_fn=lambda out, t: -out.mean())
        assert res.value == 0.0 and torch.count_nonzero(res.gamma) == 0
        assert np.all(res.history < 0)   # every iterate was below L(w)


def _relu_mlp(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8, bias=False), torch.nn.ReLU(),
                               torch.nn.Linear(8, 3, bias=False)).double()


@pytest.mark.parametrize("kind", ["avg-l2", "worst-l2", "worst-linf"])
def test_adaptive_sharpness_invariant_under_relu_rescaling(kind):
    net = _relu_mlp(5)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(20, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=g)
    alpha = 3.7
    net2 = _relu_mlp(5)
    with torch.no_grad():
        net2[0].weight.mul_(alpha)
        net2[2].weight.div_(alpha)
    assert torch.allclose(net(x), net2(x), rtol=1e-13, atol=1e-13)
    kw = dict(kind=kind, m=10, n_samples=20, n_iter=10, seed=1)
    a1, a2 = sharpness(net, x, y, 0.1, **kw).value, sharpness(net2, x, y, 0.1, **kw).value
    s1, s2 = (sharpness(net, x, y, 0.1, adaptive=False, **kw).value,
              sharpness(net2, x, y, 0.1, adaptive=False, **kw).value)
    assert a1 > 0 and a2 == pytest.approx(a1, rel=1e-9)
    assert abs(s2 - s1) > 0.05 * abs(s1)  # standard sharpness is not invariant


@pytest.mark.parametrize("kind", ["avg-l2", "worst-linf"])
def test_logit_normalization_removes_output_scale(kind):
    # eq. (7.5): scaling the last layer by α > 0 leaves f̃ (and with c = |w| the perturbed f̃) unchanged
    net = _relu_mlp(6)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(12, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    net2 = _relu_mlp(6)
    with torch.no_grad():
        net2[2].weight.mul_(5.0)
    kw = dict(kind=kind, n_samples=20, n_iter=8, seed=2)
    n1 = sharpness(net, x, y, 0.1, logit_norm=True, **kw).value
    n2 = sharpness(net2, x, y, 0.1, logit_norm=True, **kw).value
    p1 = sharpness(net, x, y, 0.1, **kw).value
    p2 = sharpness(net2, x, y, 0.1, **kw).value
    assert n2 == pytest.approx(n1, rel=1e-9)
    assert abs(p2 - p1) > 0.05 * abs(p1)


def test_m_sharpness_is_the_mean_of_per_batch_sharpness_and_chunking_is_exact():
    net, x, y = _net_data(4, n=12)
    full = sharpness(net, x, y, 0.05, kind="worst-l2", m=4, n_iter=6, seed=3)
    parts = [worst_sharpness_batch(net, x[4 * b:4 * b + 4], y[4 * b:4 * b + 4], 0.05, norm="l2", n_iter=6,
                                   seed=child_seed(3, "sharpness/max", b)).value for b in range(3)]
    assert full.n_batches == 3 and full.value == pytest.approx(np.mean(parts), rel=1e-12)
    chunked = sharpness(net, x, y, 0.05, kind="worst-l2", m=4, n_iter=6, seed=3, max_batch=3)
    assert chunked.value == pytest.approx(full.value, rel=1e-9, abs=1e-13)
    # m = n: one batch, different from the average of per-batch maxima
    one = sharpness(net, x, y, 0.05, kind="worst-l2", n_iter=6, seed=3)
    assert one.n_batches == 1 and one.m == 12


def test_bad_arguments_raise_config_errors_naming_the_field():
    net, x, y = _net_data(0, n=4)
    with pytest.raises(ConfigError, match="^rho"):
        sharpness(net, x, y, 0.0)
    with pytest.raises(ConfigError, match="^kind"):
        sharpness(net, x, y, 0.1, kind="worst-l1")
    with pytest.raises(ConfigError, match="^m must"):
        sharpness(net, x, y, 0.1, m=5)
    with pytest.raises(ConfigError, match="^n_iter"):
        worst_sharpness_batch(net, x, y, 0.1, n_iter=0)
    with pytest.raises(ConfigError, match="^y "):
        sharpness(net, x, y[:3], 0.1)


# ------------------------------------------------------------------ CLI
def test_cli_checkpoint_matches_direct_call(tmp_path):
    from toymodels.torch.data import load
    from toymodels.torch.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn", 10, 3, 32)
    ck = tmp_path / "ck.pt"
    # as toymodels.torch.train writes it (its RNG states need the full, non-weights-only loader)
    torch.save({"model_state": model.state_dict(), "rng_states": {"numpy": np.random.get_state()},
                "config": {"model": "cnn", "dataset": "synthetic", "seed": 0, "n_train": 8}}, ck)
    r = run_cli("toymodels.torch", ["sharpness", "--checkpoint", ck, "--rho", "0.01", "--kind", "worst-linf",
                                    "--n-examples", "8", "--m", "4", "--n-iter", "3", "--device", "cpu", "--json"])
    assert r.rc == 0, r.err
    res = r.json
    assert res["config"]["model"] == "cnn" and res["n_batches"] == 2 and res["sharpness"] >= 0
    assert res["diverged"] is False
    x, y, *_ = load("synthetic", None, 8, 1, 0)
    ref = sharpness(model, x, y, 0.01, kind="worst-linf", m=4, n_iter=3, seed=0)
    assert res["sharpness"] == pytest.approx(ref.value, rel=1e-6, abs=1e-9)
    r = run_cli("toymodels.torch", ["sharpness", "--checkpoint", ck, "--kind", "avg-l2", "--n-examples", "8",
                                    "--n-samples", "4", "--device", "cpu", "--out", tmp_path / "o"])
    assert r.rc == 0 and "avg-l2 adaptive sharpness" in r.out
    saved = json.loads((tmp_path / "o" / "result.json").read_text())
    assert saved["kind"] == "avg-l2" and saved["se"] > 0


def test_cli_non_finite_loss_is_a_result():
    r = run_cli("toymodels.torch", ["sharpness", "--model", "cnn", "--rho", "1e30", "--n-examples", "4",
                                    "--standard", "--kind", "avg-l2", "--n-samples", "2", "--device", "cpu", "--json"])
    assert r.rc == 0 and len(r.err_lines) == 1 and "--rho" in r.err
    assert r.json["diverged"] is True and r.json["sharpness"] is None


@pytest.mark.parametrize("argv,needle", [
    (["--model", "cnn", "--n-examples", "4", "--m", "5"], "--m"),
    (["--checkpoint", __file__], "--checkpoint"),          # a file, not a checkpoint
])
def test_cli_cross_field_errors_exit_2(argv, needle):
    r = run_cli("toymodels.torch", ["sharpness", *argv, "--device", "cpu"])
    assert r.rc == 2 and needle in r.err and len(r.err_lines) == 1 and r.out == "", r.err
