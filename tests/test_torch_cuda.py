"""The torch layer on a CUDA device (issue 7's GPU checks).

* every algorithm gives on cuda what its numba/numpy twin gives (float64, same pre-drawn noise: equal to
  rounding): CNN gradients, attacks, GradAlign, SAM/m-SAM/eq. 5.21 updates with BatchNorm, adaptive
  sharpness, DLN ensembles, Square Attack, feature sparsity; training runs on cuda equal cpu runs;
* AMP: float16 autocast + GradScaler inside SAM (overflow skips the update and backs off the scale; a
  float16 SAM step follows the float32 one) and in the training CLI;
* reproducibility on cuda: two runs with the same config are bitwise equal, a resumed run equals the
  uninterrupted one (deterministic kernels, the default);
* DDP over NCCL: ``torchrun --nproc_per_node 1`` (one GPU here) equals the plain process.

Skipped as a whole without CUDA (CI and the development machine have none); on a GPU machine run
``python -m pytest -q tests/test_torch_cuda.py``. All checks are deterministic (no Monte Carlo).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none in CI)")

from helpers import run_cli, small_cnn  # noqa: E402
from torch import nn  # noqa: E402

from toymodels.cnn import attacks as natt  # noqa: E402
from toymodels.cnn import metrics as nmet  # noqa: E402
from toymodels.cnn import model as cnn  # noqa: E402
from toymodels.datasets import make_sparse_regression  # noqa: E402
from toymodels.dln.ensemble import train_ensemble  # noqa: E402
from toymodels.dln.train import DLNConfig  # noqa: E402
from toymodels.torch import attacks, models, train  # noqa: E402
from toymodels.torch.sam import SAM, sam_update  # noqa: E402
from toymodels.rng import stream  # noqa: E402

CUDA = torch.device("cuda")
EPS = 0.1
F64 = torch.float64


def _cnn_problem(seed=0, N=8, C=2, H=6, M=3, K=4):
    p, x, y = small_cnn(seed, N, C, H, M, K, weight_scale=4.0)     # ReLU masks change inside the ε-ball
    noise = stream(seed, "tests/cuda-noise").uniform(-EPS, EPS, x.shape)
    net = models.cnn_from_numba(p).to(CUDA)
    return p, x, y, noise, net, torch.from_numpy(x).to(CUDA), torch.from_numpy(y).to(CUDA)


def _np(t):
    return t.detach().cpu().numpy()


# ------------------------------------------------------------------ the CNN and the attacks vs numba
def test_cnn_loss_and_gradients_on_cuda_match_numba():
    p, x, y, _, net, X, Y = _cnn_problem()
    X.requires_grad_(True)
    loss = nn.functional.cross_entropy(net(X), Y)
    gi, *gp = torch.autograd.grad(loss, [X] + list(net.parameters()))
    L, g = cnn.loss_and_grad(p, x, y)
    assert next(net.parameters()).device.type == CUDA.type and abs(loss.item() - L) < 1e-10
    for a, b in zip(gp, g.arrays):
        np.testing.assert_allclose(_np(a), b, rtol=0, atol=1e-10)
    np.testing.assert_allclose(_np(gi) * len(y), cnn.input_grad(p, x, y), rtol=0, atol=1e-10)


def test_attacks_and_metrics_on_cuda_match_numba():
    p, x, y, noise, net, X, Y = _cnn_problem(1)
    N = torch.from_numpy(noise).to(CUDA)
    np.testing.assert_allclose(_np(attacks.fgsm(net, X, Y, EPS)), natt.fgsm(p, x, y, EPS), atol=1e-10)
    np.testing.assert_allclose(_np(attacks.fgsm_rs(net, X, Y, EPS, 1.25 * EPS, N)),
                               natt.fgsm_rs(p, x, y, EPS, 1.25 * EPS, noise), atol=1e-10)
    rng = np.random.default_rng(7)
    starts = np.stack([rng.uniform(-EPS, EPS, x.shape) for _ in range(3)])
    d = attacks.pgd(net, X, Y, EPS, EPS / 4, 5, 3, noise=torch.from_numpy(starts).to(CUDA))
    np.testing.assert_allclose(_np(d), natt.pgd(p, x, y, EPS, EPS / 4, 5, 3, seed=7), atol=1e-10)
    assert abs(attacks.grad_alignment(net, X, Y, EPS, N) - nmet.grad_alignment(p, x, y, EPS, noise)) < 1e-10


@pytest.mark.parametrize("exact", [False, True])
def test_gradalign_double_backprop_on_cuda_matches_numba(exact):
    p, x, y, noise, net, X, Y = _cnn_problem(2)
    omega = attacks.gradalign(net, X, Y, EPS, torch.from_numpy(noise).to(CUDA), exact=exact)
    grads = torch.autograd.grad(omega, list(net.parameters()))
    om, g = cnn.gradalign_loss_and_grad(p, x, y, noise, both=exact)
    assert om > 1e-3 and abs(omega.item() - om) < 1e-10
    for a, b in zip(grads, g.arrays):
        np.testing.assert_allclose(_np(a), b, rtol=0, atol=1e-10)


def test_attack_invariants_on_preact_resnet_cuda():
    torch.manual_seed(0)
    net = models.build_model("preact-resnet18", 10, 3, 16, normalize=((0.5,) * 3, (0.25,) * 3)).to(CUDA).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 16, 16, generator=g).to(CUDA)
    y = torch.randint(0, 10, (16,), generator=g).to(CUDA)
    eps = 8 / 255
    for d in (attacks.fgsm(net, x, y, eps), attacks.pgd(net, x, y, eps, eps / 4, 5, generator=g)):
        assert d.device.type == CUDA.type and float(d.abs().max()) <= eps + 1e-6
        assert float((x + d).min()) >= -1e-6 and float((x + d).max()) <= 1 + 1e-6
    d = attacks.pgd(net, x, y, eps, eps / 4, 10, generator=g)
    _, clean = attacks.accuracy_loss(net, x, y)
    _, adv = attacks.accuracy_loss(net, x + d, y)
    assert adv > clean


@pytest.mark.parametrize("H", [9, 10])
def test_fast_conv_double_backward_on_cuda_equals_nn_conv2d(H):
    """toymodels.torch.conv.Conv2d (cuDNN kernels for GradAlign's second derivative) = nn.Conv2d on
    cuda: float64 first and second derivatives, stride 2 and groups; float16 autocast outputs."""
    from toymodels.torch.conv import twice_differentiable, use_fast_convs

    torch.manual_seed(0)
    ref = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2).to(CUDA, F64)
    fast = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2).to(CUDA, F64)
    fast.load_state_dict(ref.state_dict())
    use_fast_convs(fast)
    x = torch.randn(4, 8, H, H, dtype=F64, device=CUDA, requires_grad=True)
    v = torch.randn_like(ref(x))

    def derivs(m):
        with twice_differentiable():
            out = m(x)
        gx, = torch.autograd.grad((out * v).sum().tanh(), x, create_graph=True)
        return torch.autograd.grad((gx ** 2).sum() + (gx * x).sum(), [x] + list(m.parameters()))

    for a, b in zip(derivs(ref), derivs(fast)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)
    ref, fast, xf = ref.float(), fast.float(), x.detach().float()
    with torch.autocast("cuda", dtype=torch.float16), twice_differentiable():
        ya, yb = ref(xf), fast(xf)
    assert ya.dtype == yb.dtype == torch.float16
    torch.testing.assert_close(yb, ya, rtol=0, atol=0)


# ------------------------------------------------------------------ SAM on cuda
def _bn_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.Tanh(), nn.Linear(7, 3)).to(F64)


@pytest.mark.parametrize("mode", ["sam", "m-sam", "eq5.21"])
def test_sam_update_on_cuda_equals_cpu(mode):
    """Weights, momentum buffers and BatchNorm statistics after 6 SAM updates: cuda = cpu (float64)."""
    nets = []
    for dev in ("cpu", "cuda"):
        net = _bn_net().to(dev)
        opt = SAM(net.parameters(), torch.optim.SGD, rho=0.3, lr=0.1, momentum=0.9)
        g = torch.Generator().manual_seed(1)
        for _ in range(6):
            x, y = torch.randn(8, 5, generator=g, dtype=F64), torch.randint(0, 3, (8,), generator=g)
            xa, ya = torch.randn(8, 5, generator=g, dtype=F64), torch.randint(0, 3, (8,), generator=g)
            kw = {"m-sam": dict(m=2), "sam": {}, "eq5.21": dict(ascent_x=xa.to(dev), ascent_y=ya.to(dev))}[mode]
            sam_update(net, opt, nn.functional.cross_entropy, x.to(dev), y.to(dev), **kw)
        nets.append(net)
    sa, sb = nets[0].state_dict(), nets[1].state_dict()
    assert sb["1.running_mean"].device.type == CUDA.type
    for k in sa:
        np.testing.assert_allclose(_np(sb[k]).astype(float), _np(sa[k]).astype(float), rtol=0, atol=1e-10,
                                   err_msg=k)
    assert float((sa["0.weight"] - _bn_net().state_dict()["0.weight"]).abs().max()) > 1e-3   # it moved


def _conv_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 8 * 8, 10)).to(CUDA)


def _conv_batch(seed=0, b=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, 8, 8, generator=g).to(CUDA), torch.randint(0, 10, (b,), generator=g).to(CUDA)


def test_sam_amp_float16_step_follows_float32_step():
    """One SAM update under float16 autocast + GradScaler vs the float32 update from the same weights:
    the weight change agrees in direction (cos > 0.999) and size (within 2 %); float16 rounding of
    activations (relative 1e-3) bounds the difference."""
    x, y = _conv_batch()
    deltas = []
    for amp in (False, True):
        net = _conv_net()
        w0 = torch.cat([q.detach().flatten().clone() for q in net.parameters()])
        opt = SAM(net.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        sam_update(net, opt, nn.functional.cross_entropy, x, y, scaler=scaler if amp else None)
        deltas.append(torch.cat([q.detach().flatten() for q in net.parameters()]) - w0)
        if amp:
            assert scaler.get_scale() == 65536.0          # no overflow: the scale is untouched
    d32, d16 = deltas
    cos = float(d32 @ d16 / (d32.norm() * d16.norm()))
    assert cos > 0.999 and abs(float(d16.norm() / d32.norm()) - 1) < 0.02


def test_sam_amp_overflow_skips_the_update_and_backs_off_the_scale():
    x, y = _conv_batch(1)
    net = _conv_net(1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = SAM(net.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0 ** 40)   # scaled float16 gradients overflow
    sam_update(net, opt, nn.functional.cross_entropy, x, y, scaler=scaler)
    for k, v in net.state_dict().items():
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(v, before[k]), k
    assert scaler.get_scale() == 2.0 ** 39
    assert not opt.base_optimizer.state                           # no momentum buffer was created
    for _ in range(40):                                           # the scale comes down and training goes on
        sam_update(net, opt, nn.functional.cross_entropy, x, y, scaler=scaler)
    assert scaler.get_scale() < 2.0 ** 39
    assert not torch.equal(net.state_dict()["0.weight"], before["0.weight"])


# ------------------------------------------------------------------ sharpness, DLN ensembles, Square, sparsity
class _DLN(nn.Module):
    def __init__(self, u, v):
        super().__init__()
        self.u = nn.Parameter(torch.tensor(u, dtype=F64))
        self.v = nn.Parameter(torch.tensor(v, dtype=F64))

    def forward(self, x):
        return x @ (self.u * self.v)


def test_sharpness_on_cuda_matches_numpy_twin():
    from toymodels.sharpness.dln import dln_grad, dln_loss
    from toymodels.sharpness.measures import avg_sharpness as np_avg, max_sharpness as np_max
    from toymodels.torch.sharpness import avg_sharpness_batch, worst_sharpness_batch

    rng = np.random.default_rng(2)
    n, d = 12, 5
    X = rng.standard_normal((n, d))
    u, v = rng.uniform(0.3, 2, d) * rng.choice([-1, 1], d), rng.uniform(0.3, 2, d) * rng.choice([-1, 1], d)
    yv = X @ (u * v) + 0.3 * rng.standard_normal(n)
    w = np.r_[u, v]

    def loss(W):
        return dln_loss(W[:, :d], W[:, d:], X, yv)

    def mse4(out, t):
        return ((out - t) ** 2).mean() / 4

    net, Xt, yt = _DLN(u, v).to(CUDA), torch.tensor(X, device=CUDA), torch.tensor(yv, device=CUDA)
    ref = np_avg(loss, w, np.abs(w), 0.05, n_samples=200, seed=7)
    mean, se, _ = avg_sharpness_batch(net, Xt, yt, 0.05, n_samples=200, seed=7, loss_fn=mse4)
    assert abs(mean - ref[0]) <= 1e-10 and abs(se - ref[1]) <= 1e-10
    ref = np_max(loss, lambda z: np.concatenate(dln_grad(z[:d], z[d:], X, yv)), w, np.abs(w), 0.05, p="inf",
                 n_iter=30, n_restarts=1, seed=3)
    got = worst_sharpness_batch(net, Xt, yt, 0.05, norm="linf", n_iter=30, seed=3, loss_fn=mse4)
    assert ref.value > 0 and got.value == pytest.approx(ref.value, abs=1e-10)
    np.testing.assert_allclose(got.history, ref.history, rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", [dict(sam="1", algo="gd"), dict(sam="m", m=2, algo="sgd", batch=6),
                                  dict(sam="n", algo="sgd", batch=4, ascent="independent", ascent_batch=3,
                                       normalize=True)])
def test_dln_ensemble_on_cuda_matches_numba(case):
    from toymodels.torch.dln import train_ensemble_torch

    data = [make_sparse_regression(12, 8, 2, n_test=10, seed=s) for s in range(6)]
    cfgs = [replace(DLNConfig(alpha=0.5, lr=0.05, rho=0.1, steps=60, **case), seed=s) for s in range(6)]
    nb = train_ensemble(data, cfgs)
    tr = train_ensemble_torch(data, cfgs, device="cuda")
    assert tr.device.startswith("cuda")
    for i, r in enumerate(nb):
        assert not r.diverged and tr.diverged_at[i] < 0
        np.testing.assert_allclose(tr.w_plus[i], r.w_plus, rtol=0, atol=1e-10)
        np.testing.assert_allclose(tr.w_minus[i], r.w_minus, rtol=0, atol=1e-10)
        assert tr.test_loss[i] == pytest.approx(r.test_loss, rel=1e-9, abs=1e-14)
    assert max(np.abs(r.w_plus - 0.5).max() for r in nb) > 1e-3


def test_square_attack_on_cuda_equals_cpu():
    from toymodels.cnn.torch_twin import to_torch
    from toymodels.torch import square as sq

    P = cnn.init_params(C=3, H=10, W=10, M=4, K=4, seed=3)
    rng = np.random.default_rng(103)
    x, y = rng.uniform(0, 1, (12, 3, 10, 10)), rng.integers(0, 4, 12)
    net = to_torch(P)
    for norm, eps in (("linf", 0.05), ("l2", 0.5)):
        a = sq.square_attack(net, torch.tensor(x), torch.tensor(y), norm=norm, eps=eps, n_queries=100, seed=1)
        b = sq.square_attack(net.to(CUDA), torch.tensor(x, device=CUDA), torch.tensor(y), norm=norm, eps=eps,
                             n_queries=100, seed=1)
        net = net.cpu()
        np.testing.assert_array_equal(np.asarray(a.n_queries), np.asarray(b.n_queries))
        tol = 1e-12 if norm == "linf" else 1e-8
        np.testing.assert_allclose(_np(b.x_adv), _np(a.x_adv), atol=tol)
        assert 0 < int(np.asarray(a.success).sum()) or norm == "l2"


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.5)])
def test_white_box_attacks_and_cascade_on_cuda_equal_cpu(norm, eps):
    """PGD, APGD, APGD-T, FAB-T and the cascade (issue 13) on the float64 CNN twin: every random start is
    drawn on the CPU, so cuda and cpu return the same x_adv up to rounding and the same broken points."""
    from toymodels.cnn.torch_twin import to_torch
    from toymodels.torch.apgd import apgd, apgd_t
    from toymodels.torch.evaluate import evaluate
    from toymodels.torch.fab import fab
    from toymodels.torch.pgd import pgd

    P = cnn.init_params(C=3, H=10, W=10, M=4, K=5, seed=4)
    rng = np.random.default_rng(104)
    xn = rng.uniform(0, 1, (16, 3, 10, 10))
    x, y = torch.tensor(xn), torch.tensor(cnn.logits(P, xn).argmax(1))      # every point correct: all attacked
    net = to_torch(P)
    runs = {"pgd": lambda m, a, b: pgd(m, a, b, norm=norm, eps=eps, steps=10, seed=1),
            "apgd": lambda m, a, b: apgd(m, a, b, norm=norm, eps=eps, steps=10, seed=1),
            "apgd-t": lambda m, a, b: apgd_t(m, a, b, norm=norm, eps=eps, steps=10, n_target_classes=3, seed=1),
            "fab-t": lambda m, a, b: fab(m, a, b, norm=norm, eps=eps, steps=10, n_target_classes=3, seed=1)}
    for name, run in runs.items():
        a = run(net, x, y)
        b = run(net.to(CUDA), x.to(CUDA), y.to(CUDA))
        net = net.cpu()
        assert b.device.type == "cuda", name
        np.testing.assert_allclose(_np(b), _np(a), atol=1e-8, err_msg=name)
    ra = evaluate(net, x, y, norm=norm, eps=eps, version="fast", steps=10, seed=1)
    rb = evaluate(net.to(CUDA), x.to(CUDA), y.to(CUDA), norm=norm, eps=eps, version="fast", steps=10, seed=1)
    assert list(ra.broken_by) == list(rb.broken_by)


def test_feature_sparsity_on_cuda_equals_cpu():
    from toymodels.torch.sparsity import feature_sparsity_at

    torch.manual_seed(0)
    net = models.build_model("preact-resnet18", 10, 3, 16, dtype=F64).eval()
    x = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=F64)
    a = feature_sparsity_at(net, x, ("auto",), max_neurons=256)
    b = feature_sparsity_at(net.to(CUDA), x.to(CUDA), ("auto",), max_neurons=256)
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-12 for k in a)


# ------------------------------------------------------------------ the training loop and the CLIs on cuda
SMALL = dict(n_train=128, n_test=64, batch_size=32, epochs=2, eval_n=32, eval_pgd_steps=3, final_n=32,
             final_pgd_steps=3, final_restarts=1)


@pytest.mark.parametrize("kw", [dict(task="sgd", schedule="constant", lr=0.05),
                                dict(task="sam", m=8, rho=0.1, schedule="constant", lr=0.05)])
def test_training_on_cuda_equals_cpu_in_float64(kw):
    runs = [train.run(train.TrainConfig(**SMALL, **kw, dtype="float64", filters=3, device=dev), progress=False)
            for dev in ("cpu", "cuda")]
    assert runs[1]["device"].startswith("cuda") and runs[0]["device"] == "cpu"
    for r1, r2 in zip(runs[0]["history"], runs[1]["history"]):
        for k, v in r1.items():
            if isinstance(v, float):
                assert abs(v - r2[k]) < 1e-8, (k, v, r2[k])
    assert runs[1]["history"][-1]["train_loss"] < runs[1]["history"][1]["train_loss"]


@pytest.mark.parametrize("kw", [dict(model="preact-resnet18", task="at", attack="fgsm-rs", grad_align=0.2),
                                dict(model="cnn", task="sam", m=8, amp=True)])
def test_cuda_runs_are_bitwise_reproducible_and_resume_exactly(tmp_path, interrupted_after_checkpoint, kw):
    cfg = train.TrainConfig(**SMALL, **kw, device="cuda")
    a = train.run(replace(cfg, out=str(tmp_path / "a")), progress=False)
    again = train.run(cfg, progress=False)
    assert again["history"] == a["history"] and again["final"] == a["final"]
    with interrupted_after_checkpoint():
        train.run(replace(cfg, out=str(tmp_path / "b")), progress=False)
    b = train.run(replace(cfg, out=str(tmp_path / "b"), resume=True), progress=False)
    assert b["history"] == a["history"] and b["final"] == a["final"]
    sa = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model_state"]
    sb = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model_state"]
    assert all(torch.equal(v, sb[k]) for k, v in sa.items())


def _json(argv):
    r = run_cli("toymodels.torch", argv)
    assert r.rc == 0, r.err[-2000:]
    return r.json


@pytest.mark.parametrize("argv", [
    ["train-at", "--model", "preact-resnet18", "--attack", "fgsm", "--grad-align", "0.2", "--amp"],
    ["train-at", "--model", "preact-resnet18", "--attack", "free", "--free-replays", "2", "--amp"],
    ["train-sam", "--model", "preact-resnet18", "--rho", "0.05", "--m", "16", "--amp"],
    ["train-sgd", "--model", "densenet100-12", "--schedule", "warmup-decay", "--amp", "--nondeterministic"],
])
def test_train_cli_on_cuda_with_amp(argv):
    res = _json(argv + ["--device", "cuda", "--n-train", "128", "--n-test", "64", "--batch-size", "32",
                        "--epochs", "1", "--eval-n", "16", "--eval-pgd-steps", "2", "--final-n", "16",
                        "--final-pgd-steps", "2", "--json"])
    assert res["device"].startswith("cuda") and res["config"]["amp"] and not res["diverged"]
    assert all(np.isfinite(r["clean_loss"]) for r in res["history"])


@pytest.mark.parametrize("argv", [
    ["sharpness", "--model", "cnn", "--kind", "worst-linf", "--n-examples", "32", "--n-iter", "3"],
    ["square", "--model", "cnn", "--queries", "20", "--n-points", "16", "--pgd-steps", "3"],
    ["evaluate", "--model", "cnn", "--version", "fast", "--steps", "3", "--n-points", "16"],
    ["dln-ensemble", "--sam", "1", "--seeds", "64", "--steps", "200", "--n", "10", "--d", "8", "--n-test", "20"],
])
def test_other_clis_on_cuda(argv):
    res = _json(argv + ["--device", "cuda", "--json"])
    assert "cuda" in (res.get("device_name") or res["device"])


def _torchrun():
    t = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    return t if os.path.exists(t) else None


@pytest.mark.skipif(_torchrun() is None, reason="torchrun not available")
def test_ddp_over_nccl_equals_the_plain_process(tmp_path):
    """torchrun with one process per GPU (one GPU here): the NCCL process group, DDP's gradient
    all-reduce and the all-gathered checkpoint states; equals train.run in this process (float64)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    opts = ["--device", "cuda", "--n-train", "128", "--n-test", "64", "--batch-size", "32", "--epochs", "2",
            "--eval-n", "32", "--eval-pgd-steps", "3", "--dtype", "float64", "--filters", "3", "--attack", "fgsm-rs", "--schedule",
            "constant", "--lr", "0.05", "--final-n", "32", "--final-pgd-steps", "3"]
    p = subprocess.run([_torchrun(), "--standalone", "--nproc_per_node", "1", "-m", "toymodels.torch", "train-at",
                        *opts, "--json", "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["world_size"] == 1 and res["device"].startswith("cuda")
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["world_size"] == 1
    one = train.run(train.TrainConfig(task="at", attack="fgsm-rs", device="cuda", dtype="float64", filters=3,
                                      schedule="constant", lr=0.05, **{**SMALL, "final_pgd_steps": 3}),
                    progress=False)
    for r1, r2 in zip(one["history"], res["history"]):
        for k, v in r1.items():
            if isinstance(v, float):
                assert abs(v - r2[k]) < 1e-9, (k, v, r2[k])


# ------------------------------------------------------------------ issue 16: the speed options on cuda
def _speed_cfg(**kw):
    base = dict(model="preact-resnet18", width=8, dataset="photos", n_train=128, n_test=64, epochs=2, batch_size=32,
                eval_n=16, final_n=16, eval_pgd_steps=2, final_pgd_steps=2, sparsity_n=16, augment=True,
                device="cuda", seed=0, lr=0.05)
    base.update(kw)
    return train.TrainConfig(**base)


@pytest.mark.parametrize("task", ["sgd", "at", "sam"])
def test_fast_configuration_on_cuda_trains_close_to_float32(task):
    """bf16 + channels-last + data on device (+ compile) against float32 on cuda, 8 steps: the
    tolerances of tests/test_torch_speed.py (8% on the last epoch's mean train loss, 3% on the final
    test loss; bfloat16 rounds to 2⁻⁹ relative per operation; cpu maxima over seeds 0–9: 5.2% / 1.7%)."""
    ref = train.run(_speed_cfg(task=task), progress=False)
    for fast in (dict(bf16=True, channels_last=True, data_on_device=True),
                 dict(bf16=True, channels_last=True, data_on_device=True, compile=True)):
        got = train.run(_speed_cfg(task=task, **fast), progress=False)
        assert not got["diverged"]
        assert got["history"][-1]["train_loss"] == pytest.approx(ref["history"][-1]["train_loss"], rel=0.08)
        assert got["final"]["clean_loss"] == pytest.approx(ref["final"]["clean_loss"], rel=0.03)


def test_compile_with_gradalign_on_cuda_equals_eager():
    """--compile compiles the training forward only (GradAlign's double backprop stays eager, which
    torch.compile cannot differentiate twice): 2 steps equal the eager run to 1e-4 relative."""
    kw = dict(task="at", attack="fgsm", grad_align=0.2, n_train=64, epochs=1)
    ref = train.run(_speed_cfg(**kw), progress=False)
    got = train.run(_speed_cfg(**kw, compile=True), progress=False)
    assert got["history"][-1]["train_loss"] == pytest.approx(ref["history"][-1]["train_loss"], rel=1e-4)


@pytest.mark.parametrize("augment", [False, True])
def test_data_on_device_batches_on_cuda_equal_the_default_path(augment):
    """The batches of --data-on-device on cuda are bitwise those of the default path on cuda and of
    the cpu (same draws of the crop offsets and flips)."""
    from toymodels.torch import speed

    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(300, 3, 32, 32, generator=g), torch.randint(0, 10, (300,), generator=g)
    perm = torch.randperm(300, generator=g)

    def batches(dev, on_device, cl=False):
        aug = torch.Generator().manual_seed(7) if augment else None
        return [(a.cpu(), b.cpu()) for a, b in speed.epoch_batches(x.to(dev), y.to(dev), perm.to(dev), 4, 64, aug,
                                                                   on_device=on_device, channels_last=cl)]
    ref = batches("cpu", False)
    for got in (batches(CUDA, False), batches(CUDA, True), batches(CUDA, True, True)):
        for (xb, yb), (xr, yr) in zip(got, ref):
            assert torch.equal(xb, xr) and torch.equal(yb, yr)


def test_channels_last_on_cuda_matches_the_default_layout():
    """Gradients of PreAct ResNet-18 (BatchNorm) in channels-last equal the default layout's to 1e-5
    relative with TF32 off (cuDNN's NHWC kernels sum in another order)."""
    import copy

    import torch.nn.functional as F

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        torch.manual_seed(0)
        net = models.build_model("preact-resnet18", 10, 3, 32, normalize=((0.5,) * 3, (0.25,) * 3), width=16).to(CUDA)
        x, y = torch.rand(32, 3, 32, 32, device=CUDA), torch.randint(0, 10, (32,), device=CUDA)
        grads = []
        for fmt in (torch.contiguous_format, torch.channels_last):
            m = copy.deepcopy(net).to(memory_format=fmt).train()
            loss = F.cross_entropy(m(x.contiguous(memory_format=fmt)), y)
            grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(m.parameters()))]))
        assert float((grads[1] - grads[0]).norm() / grads[0].norm()) < 1e-5
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
