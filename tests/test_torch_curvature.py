"""toymodels.torch.curvature (issue 15 items 1–2): Hessian-vector products, top eigenvalues, Hutchinson
trace and SLQ density of any nn.Module, checked against exact values.

* DLN u⊙v at an exact minimum on whitened data (XᵀX = nI): λ_max and trace equal the closed forms of
  :mod:`toymodels.sharpness.dln` (plain, DLN-rescaled, and adaptive c = |w|) to 1e-8 (float64);
* small models (MLP, CNN with BatchNorm; float64): the full Hessian by
  ``torch.autograd.functional.hessian`` is the oracle for eigenvalues (1e-8), blocks, chunking (1e-12)
  and the Monte-Carlo estimates (Hutchinson / SLQ: 64 probes, 4.5 s.e.; pass for any seed 0..99);
* PyHessian 0.1 (optional, skipped when absent): same model and data, top eigenvalue within 1e-6
  relative (both at tol 1e-9) and trace within 4.5 s.e.;
* the CLI on a checkpoint as toymodels.torch.train writes it.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import mse4, run_cli, torch_dln  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.sharpness.dln import (block_eigenvalues, dln_hessian, dln_rescaling, hessian_whitened_min,  # noqa: E402
                                     rescaled_hessian, rescaled_lambda_max_closed, rescaled_trace_closed)
from toymodels.torch import curvature as cv  # noqa: E402

SEED = int(os.environ.get("CURVATURE_TEST_SEED", "0"))   # any value in 0..99 must pass
MC_N = 64     # probe vectors of the Monte-Carlo tests
MC_TOL = 4.5  # standard errors


# ------------------------------------------------------------------ DLN closed forms


def _dln_at_min(seed=0, n=12, d=5):
    rng = np.random.default_rng(seed)
    X = np.sqrt(n) * np.linalg.qr(rng.standard_normal((n, d)))[0]          # XᵀX = nI
    u = rng.choice([-1, 1], d) * rng.uniform(0.3, 2.0, d)
    v = rng.choice([-1, 1], d) * rng.uniform(0.3, 2.0, d)
    y = X @ (u * v)                                                         # an exact minimum
    return u, v, X, y


def _dln_batches(X, y, bs=None):
    return cv.as_batches(torch.tensor(X), torch.tensor(y), bs)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_dln_plain_top_eigenvalue_and_trace_equal_closed_forms(method):
    u, v, X, y = _dln_at_min()
    net, data = torch_dln(u, v), _dln_batches(X, y, bs=5)
    np.testing.assert_allclose(dln_hessian(u, v, X, y), hessian_whitened_min(u, v), atol=1e-12)  # the setting
    lam = block_eigenvalues(u, v)[-1]
    res = cv.top_eigenvalues(net, mse4, data, k=1, method=method, tol=1e-13, max_iter=5000)
    assert res.converged == [True]
    assert res.eigenvalues[0] == pytest.approx(lam, rel=1e-8, abs=1e-10)
    # the trace from the dense operator (P products) and, within its s.e., from Hutchinson
    H = cv.dense_hessian(net, mse4, data).numpy()
    assert np.trace(H) == pytest.approx(float(np.sum(block_eigenvalues(u, v))), rel=1e-10)
    t = cv.trace(net, mse4, data, n_samples=MC_N, seed=SEED)
    assert abs(t.mean - np.trace(H)) <= MC_TOL * t.se


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_dln_rescaled_equals_l1_and_linf_of_beta(method):
    """DLN rescaling c = [√|u/v|; √|v/u|]: tr H_c = ‖β‖₁, λ_max H_c = ‖β‖_∞ (thesis Sec. 7.6.2)."""
    u, v, X, y = _dln_at_min(1)
    beta = u * v
    net, data = torch_dln(u, v), _dln_batches(X, y)
    c = torch.tensor(dln_rescaling(u, v))
    res = cv.top_eigenvalues(net, mse4, data, k=1, method=method, tol=1e-13, max_iter=5000, scale=c)
    assert res.eigenvalues[0] == pytest.approx(rescaled_lambda_max_closed(beta, X), rel=1e-8)
    assert rescaled_lambda_max_closed(beta, X) == pytest.approx(np.abs(beta).max(), rel=1e-10)
    Hc = cv.dense_hessian(net, mse4, data, scale=c).numpy()
    assert np.trace(Hc) == pytest.approx(rescaled_trace_closed(beta, X), rel=1e-8)
    assert rescaled_trace_closed(beta, X) == pytest.approx(np.abs(beta).sum(), rel=1e-10)
    t = cv.trace(net, mse4, data, n_samples=MC_N, seed=SEED, scale=c)
    assert abs(t.mean - np.abs(beta).sum()) <= MC_TOL * t.se


def test_dln_adaptive_c_abs_w_gives_squared_norms():
    """c = |w|: H_c has 2×2 blocks ½β_i²[[1, ±1], [±1, 1]], so λ_max = ‖β‖_∞², tr = ‖β‖₂² (thesis l.3808)."""
    u, v, X, y = _dln_at_min(2)
    beta = u * v
    net, data = torch_dln(u, v), _dln_batches(X, y, bs=4)
    res = cv.top_eigenvalues(net, mse4, data, k=1, method="lanczos", tol=1e-13, adaptive=True)
    assert res.eigenvalues[0] == pytest.approx(np.max(beta ** 2), rel=1e-8)
    Hc = cv.dense_hessian(net, mse4, data, adaptive=True).numpy()
    w = np.abs(np.concatenate([u, v]))
    np.testing.assert_allclose(Hc, rescaled_hessian(hessian_whitened_min(u, v), w), atol=1e-12)
    assert np.trace(Hc) == pytest.approx(np.sum(beta ** 2), rel=1e-10)


# ------------------------------------------------------------------ small models vs the full Hessian
def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(3)
        self.fc = torch.nn.Linear(3 * 4 * 4, 3)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x):
        z = torch.nn.functional.softplus(self.bn(self.conv(x)))
        return self.fc(self.drop(z.flatten(1)))


def _cnn(seed=0):
    torch.manual_seed(seed)
    net = SmallCNN().double()
    with torch.no_grad():                  # non-trivial running statistics
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net


def _data(kind, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, 4) if kind == "mlp" else (n, 2, 4, 4), generator=g, dtype=torch.float64)
    return x, torch.randint(0, 3, (n,), generator=g)


def _full_hessian(net, x, y, params=None, train_bn=False):
    """Oracle: torch.autograd.functional.hessian of the mean cross-entropy in the flat parameters."""
    from torch.func import functional_call

    named = dict(net.named_parameters())
    chosen = list(named) if params is None else [k for k, p in named.items() if any(p is q for q in params)]
    w0 = torch.cat([named[k].detach().reshape(-1) for k in chosen])
    net.eval()
    if train_bn:
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.train()
    state = {k: b.clone() for k, b in net.named_buffers()}

    def loss(w):
        ps, i = dict(named), 0
        for k in chosen:
            ps[k] = w[i:i + named[k].numel()].view_as(named[k])
            i += named[k].numel()
        return torch.nn.functional.cross_entropy(functional_call(net, ps, (x,)), y)

    H = torch.autograd.functional.hessian(loss, w0)
    with torch.no_grad():
        for k, b in net.named_buffers():
            b.copy_(state[k])
    net.eval()
    return H


@pytest.fixture(params=["mlp", "cnn"])
def problem(request):
    net = _mlp() if request.param == "mlp" else _cnn()
    x, y = _data(request.param)
    return net, x, y, _full_hessian(net, x, y)


def test_lanczos_top_eigenvalues_equal_full_hessian(problem):
    net, x, y, H = problem
    ev = torch.linalg.eigvalsh(H).numpy()[::-1]
    res = cv.top_eigenvalues(net, None, (x, y), k=3, method="lanczos", tol=1e-12, max_iter=H.shape[0],
                             return_vectors=True)
    assert all(res.converged) and len(res.iterations) == 3
    np.testing.assert_allclose(res.eigenvalues, ev[:3], rtol=0, atol=1e-8 * abs(ev[0]))
    for lam, vec in zip(res.eigenvalues, res.eigenvectors):      # eigenpairs of H
        np.testing.assert_allclose((H @ vec).numpy(), lam * vec.numpy(), atol=1e-6 * abs(ev[0]))


def test_power_iteration_follows_pyhessian_convention(problem):
    """Power iteration finds the largest |λ|; at tol 1e-13 the top one to 1e-8."""
    net, x, y, H = problem
    ev = torch.linalg.eigvalsh(H).numpy()
    top = ev[np.argmax(np.abs(ev))]
    res = cv.top_eigenvalues(net, None, (x, y), k=1, method="power", tol=1e-13, max_iter=20000)
    assert res.converged == [True] and res.iterations[0] < 20000
    assert res.eigenvalues[0] == pytest.approx(top, rel=1e-8)
    loose = cv.top_eigenvalues(net, None, (x, y), k=2, tol=1e-3, max_iter=3)
    assert loose.iterations == [3, 3] and loose.converged == [False, False]
    assert loose.n_products == 6


def test_adaptive_equals_rescaled_full_hessian(problem):
    net, x, y, H = problem
    c = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).abs()
    Hc = c[:, None] * H * c[None, :]
    res = cv.top_eigenvalues(net, None, (x, y), k=2, method="lanczos", tol=1e-12, max_iter=H.shape[0],
                             adaptive=True)
    np.testing.assert_allclose(res.eigenvalues, torch.linalg.eigvalsh(Hc).numpy()[::-1][:2],
                               atol=1e-8 * float(torch.linalg.eigvalsh(Hc).abs().max()))
    D = cv.dense_hessian(net, None, (x, y), adaptive=True)
    torch.testing.assert_close(D, Hc, rtol=0, atol=1e-12)


def test_hutchinson_trace_within_standard_errors_of_exact(problem):
    net, x, y, H = problem
    exact = float(torch.trace(H))
    t = cv.trace(net, None, (x, y), n_samples=MC_N, seed=SEED)
    assert t.n_samples == MC_N and t.converged and t.se > 0
    assert abs(t.mean - exact) <= MC_TOL * t.se, (t.mean, exact, t.se)
    # the s.e. estimates the true one: Var(zᵀHz) = 2 Σ_{i≠j} H_ij²
    true_se = float(np.sqrt(2 * float((H ** 2).sum() - (torch.diagonal(H) ** 2).sum()) / MC_N))
    assert 0.4 * true_se < t.se < 2.0 * true_se
    early = cv.trace(net, None, (x, y), n_samples=1000, tol=0.5, seed=SEED)
    assert early.n_samples < 1000 and early.converged and early.se <= 0.5 * abs(early.mean)


def test_chunked_hvp_equals_unchunked_and_full_hessian(problem):
    net, x, y, H = problem
    v = torch.randn(H.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    one = cv.hvp(net, None, (x, y), v)
    for bs in (1, 5, 16):
        torch.testing.assert_close(cv.hvp(net, None, cv.as_batches(x, y, bs), v), one, rtol=0, atol=1e-12)
    torch.testing.assert_close(one, H @ v, rtol=0, atol=1e-12)
    parts = cv.hvp(net, None, iter(cv.as_batches(x, y, 3)), list(cv.HessianOperator(net, None, (x, y)).unflat(v)))
    assert isinstance(parts, list) and [p.shape for p in parts] == [p.shape for p in net.parameters()]
    torch.testing.assert_close(torch.cat([p.reshape(-1) for p in parts]), one, rtol=0, atol=1e-12)


def test_parameter_subset_is_the_block_of_the_full_hessian(problem):
    net, x, y, H = problem
    groups = cv.layer_groups(net)
    ps = list(net.parameters())
    offsets = np.cumsum([0] + [p.numel() for p in ps])
    for name, sub in groups.items():
        idx = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i, p in enumerate(ps)
                              if any(p is q for q in sub)])
        block = H[np.ix_(idx, idx)]
        torch.testing.assert_close(cv.dense_hessian(net, None, (x, y), sub), block, rtol=0, atol=1e-12)
        res = cv.top_eigenvalues(net, None, (x, y), sub, k=1, method="lanczos", tol=1e-12, max_iter=len(idx))
        assert res.eigenvalues[0] == pytest.approx(float(torch.linalg.eigvalsh(block)[-1]), abs=1e-8)


def test_slq_density_integrates_to_one_and_first_moment_is_trace_over_dim(problem):
    net, x, y, H = problem
    P = H.shape[0]
    d = cv.density(net, None, (x, y), n_iter=8, n_v=MC_N, seed=SEED)
    assert len(d.nodes) == MC_N and d.dim == P and [len(t) for t in d.nodes] == [8] * MC_N
    for w in d.weights:
        assert sum(w) == pytest.approx(1.0, abs=1e-12) and min(w) >= 0
    grid, dens = cv.density_on_grid(d.nodes, d.weights)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-6)
    # Σ_l w_l θ_l = zᵀHz / P for the run's probe z (exact), whose mean is tr(H) / P
    m1 = d.moments(1)
    assert abs(m1.mean() - float(torch.trace(H)) / P) <= MC_TOL * m1.std(ddof=1) / np.sqrt(MC_N)
    # with as many steps as parameters the Ritz values are eigenvalues of H
    ev = torch.linalg.eigvalsh(H).numpy()
    full = cv.density(net, None, (x, y), n_iter=P, n_v=1, seed=SEED)
    assert max(full.nodes[0]) == pytest.approx(ev[-1], abs=1e-8 * abs(ev).max())
    assert min(full.nodes[0]) == pytest.approx(ev[0], abs=1e-8 * abs(ev).max())


def test_bn_modes_restored_and_train_mode_uses_batch_statistics():
    net = _cnn()
    x, y = _data("cnn")
    net.train()
    net.fc.eval()
    flags = [m.training for m in net.modules()]
    params = [p.detach().clone() for p in net.parameters()]
    buffers = [b.detach().clone() for b in net.buffers()]
    H_train = _full_hessian(net, x, y, train_bn=True)
    net.train()
    net.fc.eval()
    res = cv.top_eigenvalues(net, None, (x, y), k=1, method="lanczos", tol=1e-12, max_iter=H_train.shape[0],
                             bn_mode="train")
    assert res.eigenvalues[0] == pytest.approx(float(torch.linalg.eigvalsh(H_train)[-1]), abs=1e-8)
    t = cv.trace(net, None, (x, y), n_samples=4, bn_mode="train")
    assert np.isfinite(t.mean)
    assert [m.training for m in net.modules()] == flags
    for a, b in zip(params, net.parameters()):
        assert torch.equal(a, b) and b.grad is None
    for a, b in zip(buffers, net.buffers()):       # a train-mode forward updates running stats: restored
        assert torch.equal(a, b)
    H_eval = _full_hessian(net, x, y)
    v = torch.ones(H_eval.shape[0], dtype=torch.float64)
    torch.testing.assert_close(cv.hvp(net, None, (x, y), v), H_eval @ v, rtol=0, atol=1e-12)  # eval: dropout off
    assert not torch.allclose(H_eval, H_train)


def test_state_restored_after_an_error():
    net = _cnn()
    net.train()
    x, y = _data("cnn")

    def bad_loss(z, t):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cv.trace(net, bad_loss, (x, y), n_samples=2, bn_mode="train")
    assert all(m.training for m in net.modules())


@pytest.mark.parametrize("call,field", [
    (lambda n, d: cv.top_eigenvalues(n, None, d, k=0), "k"),
    (lambda n, d: cv.top_eigenvalues(n, None, d, k=10 ** 6), "k"),
    (lambda n, d: cv.top_eigenvalues(n, None, d, method="arnoldi"), "method"),
    (lambda n, d: cv.top_eigenvalues(n, None, d, tol=0), "tol"),
    (lambda n, d: cv.top_eigenvalues(n, None, d, max_iter=0), "max_iter"),
    (lambda n, d: cv.top_eigenvalues(n, None, d, k=3, method="lanczos", max_iter=2), "max_iter"),
    (lambda n, d: cv.trace(n, None, d, n_samples=1), "n_samples"),
    (lambda n, d: cv.trace(n, None, d, tol=-1.0), "tol"),
    (lambda n, d: cv.density(n, None, d, n_iter=0), "n_iter"),
    (lambda n, d: cv.density(n, None, d, n_v=0), "n_v"),
    (lambda n, d: cv.trace(n, None, d, bn_mode="batch"), "bn_mode"),
    (lambda n, d: cv.hvp(n, None, d, torch.ones(3)), "v"),
    (lambda n, d: cv.hvp(n, None, d, torch.ones(51), scale=torch.ones(2)), "scale"),
    (lambda n, d: cv.hvp(n, None, d, torch.ones(51), params=[]), "params"),
    (lambda n, d: cv.hvp(n, None, [], torch.ones(51)), "batches"),
    (lambda n, d: cv.as_batches(d[0], d[1][:3]), "y"),
    (lambda n, d: cv.as_batches(d[0], d[1], 0), "batch_size"),
])
def test_bad_arguments_raise_config_errors_naming_the_field(call, field):
    net = _mlp()
    x, y = _data("mlp")
    assert sum(p.numel() for p in net.parameters()) == 51
    with pytest.raises(ConfigError) as e:
        call(net, (x, y))
    assert e.value.field == field


# ------------------------------------------------------------------ PyHessian (optional)
@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_agrees_with_pyhessian_on_the_same_model_and_data():
    pyhessian = pytest.importorskip("pyhessian")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Softplus(),
                              torch.nn.Flatten(), torch.nn.Linear(64, 3))           # float32, as PyHessian
    x, y = _data("cnn", n=32)
    x = x.float()
    crit = torch.nn.CrossEntropyLoss()
    ours = cv.top_eigenvalues(net, crit, (x, y), k=1, tol=1e-9, max_iter=2000)
    ours_t = cv.trace(net, crit, (x, y), n_samples=MC_N, seed=SEED)
    torch.manual_seed(SEED)
    hc = pyhessian.hessian(net, crit, data=(x, y), cuda=False)
    theirs, _ = hc.eigenvalues(maxIter=2000, tol=1e-9, top_n=1)
    samples = hc.trace(maxIter=MC_N, tol=-1.0)      # tol < 0: all MC_N probes
    for p in net.parameters():
        p.grad = None                               # PyHessian leaves graph-carrying .grad fields
    assert ours.eigenvalues[0] == pytest.approx(theirs[0], rel=1e-5)
    se = np.hypot(ours_t.se, np.std(samples, ddof=1) / np.sqrt(len(samples)))
    assert abs(ours_t.mean - np.mean(samples)) <= MC_TOL * se


# ------------------------------------------------------------------ CLI
def _checkpoint(tmp_path):
    from toymodels.torch.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn", 10, 3, 32)
    ck = tmp_path / "ck.pt"
    # as toymodels.torch.train writes it (its RNG states need the full, non-weights-only loader)
    torch.save({"model_state": model.state_dict(), "rng_states": {"numpy": np.random.get_state()},
                "config": {"model": "cnn", "dataset": "synthetic", "seed": 0, "n_train": 8}}, ck)
    return model, ck


def test_cli_checkpoint_matches_direct_call(tmp_path):
    from toymodels.torch.data import load

    model, ck = _checkpoint(tmp_path)
    r = run_cli("toymodels.torch", ["curvature", "--checkpoint", ck, "--top-k", "2", "--max-iter", "5", "--trace",
                                    "--n-samples", "4", "--n-points", "8", "--batch-size", "3", "--device", "cpu",
                                    "--adaptive", "--json"])
    assert r.rc == 0, r.err
    res = r.json
    c = res["config"]
    assert c["model"] == "cnn" and c["n_points"] == 8 and c["batch_size"] == 3 and c["adaptive"] and c["bn"] == "eval"
    assert c["top_k"] == 2 and c["seed"] == 0 and c["n_params"] == sum(p.numel() for p in model.parameters())
    assert len(res["eigen"]["eigenvalues"]) == 2 and res["trace"]["n_samples"] == 4 and res["density"] is None
    x, y, *_ = load("synthetic", None, 8, 1, 0)
    ref = cv.top_eigenvalues(model, None, (x, y), k=2, max_iter=5, adaptive=True, seed=0)
    np.testing.assert_allclose(res["eigen"]["eigenvalues"], ref.eigenvalues, rtol=1e-4)
    assert res["n_products"] == 10 + 4
    r = run_cli("toymodels.torch", ["curvature", "--checkpoint", ck, "--top-k", "1", "--max-iter", "3", "--density",
                                    "--n-iter", "6", "--per-layer", "--n-points", "4", "--bn", "train",
                                    "--device", "cpu", "--out", tmp_path / "o"])
    assert r.rc == 0, r.err
    assert "lambda_1" in r.out and "layer" in r.out
    saved = json.loads((tmp_path / "o" / "result.json").read_text())
    assert saved["config"]["bn"] == "train" and len(saved["density"]["nodes"][0]) == 6
    assert [row["layer"] for row in saved["per_layer"]] == list(cv.layer_groups(model))
    assert (tmp_path / "o" / "density.png").stat().st_size > 1000


@pytest.mark.parametrize("argv,needle", [
    (["--model", "cnn", "--top-k", "-1"], "--top-k"),
    (["--model", "cnn", "--bn", "batch"], "--bn"),
    (["--model", "cnn", "--n-points", "0"], "--n-points"),
    (["--model", "cnn", "--tol", "0"], "--tol"),
    (["--checkpoint", __file__], "--checkpoint"),          # a file, not a checkpoint
    (["--model", "cnn", "--n-points", "4", "--top-k", "100000", "--max-iter", "1"], "--top-k"),
])
def test_cli_bad_inputs_exit_2_naming_the_flag(argv, needle):
    r = run_cli("toymodels.torch", ["curvature", *argv, "--device", "cpu"])
    assert r.rc == 2 and needle in r.err and len(r.err_lines) == 1 and r.out == "", r.err
