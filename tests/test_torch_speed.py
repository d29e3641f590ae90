"""The speed options of the torch training loop (issue 16, :mod:`toymodels.torch.speed`), checked on the CPU.

* ``data_on_device``: the batches (gather + crop/flip augmentation) are bitwise those of the default
  path — for the batch generator alone (several seeds, chunked augmentation) and inside a training run
  (every step's inputs recorded); the run's history is then identical too.
* ``channels_last``: gradients and a short run equal the default layout to 1e-5 relative on models
  without BatchNorm (the single-layer CNN, the GroupNorm PreAct ResNet-18); both layouts are within
  1e-5 of a float64 reference. With BatchNorm on the CPU torch's float32 channels-last batch norm is
  less accurate (measured: gradient error 2.7e-3 relative to float64, against 1.4e-6 in the default
  layout, PreAct ResNet-18 width 4): checked against float64 with a tolerance of 2e-2.
* ``bf16``: a short run's losses are close to float32's (tolerance below); ``amp`` and ``bf16`` exclude
  each other; bf16 needs float32.
* ``compile``: with the ``eager`` backend (fast; tests the wiring: the compiled module shares the eager
  module's parameters) a run equals the uncompiled run; a failing compilation is one line and exit 1.

All checks are deterministic (fixed seeds, no Monte Carlo); the bf16 tolerances were checked for the
seeds 0–9 of the run (largest deviations stated at the test; the test itself runs seed 0).
"""
from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from helpers import run_cli  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch import speed, train  # noqa: E402
from toymodels.torch.augment import random_crop_flip  # noqa: E402
from toymodels.torch.config import TrainConfig, resolve  # noqa: E402
from toymodels.torch.models import build_model  # noqa: E402

CL = torch.channels_last


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


# ------------------------------------------------------------------ data_on_device: the same batches
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("augment", [False, True])
def test_epoch_batches_on_device_are_bitwise_the_default_ones(seed, augment, monkeypatch):
    g = torch.Generator().manual_seed(100 + seed)
    x, y = torch.rand(50, 3, 6, 5, generator=g), torch.randint(0, 10, (50,), generator=g)
    perm = torch.randperm(50, generator=g)
    monkeypatch.setattr(speed, "CHUNK", 7)              # several augmentation chunks, not batch-aligned

    def batches(on_device, channels_last=False):
        aug = torch.Generator().manual_seed(seed) if augment else None
        return list(speed.epoch_batches(x, y, perm, 4, 11, aug, on_device=on_device, channels_last=channels_last))

    # the default path written out: batch b = crop/flip of x[perm[b·11:(b+1)·11]], drawn batch by batch
    aug = torch.Generator().manual_seed(seed)
    ref = [(random_crop_flip(x[perm[b * 11:(b + 1) * 11]], aug) if augment else x[perm[b * 11:(b + 1) * 11]],
            y[perm[b * 11:(b + 1) * 11]]) for b in range(4)]
    for got in (batches(False), batches(True), batches(True, True)):
        assert len(got) == 4
        for (xb, yb), (xr, yr) in zip(got, ref):
            assert torch.equal(xb, xr) and torch.equal(yb, yr)
    assert all(xb.is_contiguous(memory_format=CL) for xb, _ in batches(True, True))
    if augment:       # the augmentation did something (else the equality above would be vacuous)
        assert not torch.equal(ref[0][0], x[perm[:11]])


def _tiny(**kw) -> TrainConfig:
    base = dict(task="at", model="cnn", dataset="photos", n_train=96, n_test=16, epochs=2, batch_size=32,
                eval_n=8, final_n=8, eval_pgd_steps=1, final_pgd_steps=1, augment=True, device="cpu", seed=3)
    base.update(kw)
    return TrainConfig(**base)


_SWITCHED_STEP = train._switched_step


def _recorded_run(cfg, monkeypatch):
    seen = []
    orig = _SWITCHED_STEP

    def record(r, st, x, y, epoch):
        seen.append((x.detach().clone(), y.clone()))
        return orig(r, st, x, y, epoch)

    monkeypatch.setattr(train, "_switched_step", record)
    return train.run(cfg, progress=False), seen


@pytest.mark.parametrize("task", ["at", "sam"])
def test_data_on_device_trains_on_the_same_batches(task, monkeypatch):
    ref, seen_ref = _recorded_run(_tiny(task=task), monkeypatch)
    got, seen = _recorded_run(_tiny(task=task, data_on_device=True), monkeypatch)
    assert len(seen) == len(seen_ref) == 2 * (96 // 32)
    for (xb, yb), (xr, yr) in zip(seen, seen_ref):
        assert torch.equal(xb, xr) and torch.equal(yb, yr)
    assert got["history"] == ref["history"]               # same batches, same arithmetic


# ------------------------------------------------------------------ channels_last
def _grads(net, x, y, fmt=torch.contiguous_format):
    net = copy.deepcopy(net).to(memory_format=fmt).train()
    loss = F.cross_entropy(net(x.contiguous(memory_format=fmt)), y)
    return [g.double() for g in torch.autograd.grad(loss, list(net.parameters()))]


def _rel(a, b) -> float:
    return float(torch.sqrt(sum(((u - v) ** 2).sum() for u, v in zip(a, b)) / sum((v ** 2).sum() for v in b)))


@pytest.mark.parametrize("model", ["cnn", "preact-resnet18-gn", "preact-resnet18"])
def test_channels_last_gradients(model):
    torch.manual_seed(0)
    width = None if model == "cnn" else 4
    net = build_model(model, 10, 3, 32, normalize=((0.5,) * 3, (0.25,) * 3), width=width)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)
    ref = _grads(copy.deepcopy(net).double(), x.double(), y)       # float64, default layout
    contiguous, last = _grads(net, x, y), _grads(net, x, y, CL)
    assert _rel(contiguous, ref) < 1e-5                             # float32 rounding (measured ≤ 1.4e-6)
    if model == "preact-resnet18":
        # torch's cpu float32 channels-last batch norm: measured 2.7e-3 (see the module docstring)
        assert _rel(last, ref) < 2e-2
    else:
        assert _rel(last, ref) < 1e-5 and _rel(last, contiguous) < 1e-5


def test_channels_last_run_equals_default_layout():
    """A short SGD run of the GroupNorm ResNet (2 steps): final train loss and weights to 1e-5 relative
    (measured 1e-8). Longer runs drift apart as any float32 perturbation does: this run's weight
    difference grows about tenfold per step (1e-9, 1e-8, …, 1e-3 after 8 steps at lr 0.05)."""
    kw = dict(task="sgd", model="preact-resnet18-gn", width=4, n_train=32, batch_size=16, sparsity_n=8, lr=0.05,
              epochs=1)
    (ref, net_ref), (got, net) = (train.run(_tiny(**kw, channels_last=cl), progress=False, return_model=True)
                                  for cl in (False, True))
    w_ref = torch.cat([p.detach().flatten() for p in net_ref.parameters()])
    w = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert float((w - w_ref).norm() / w_ref.norm()) < 1e-5
    for a, b in zip(got["history"][1:], ref["history"][1:]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=CL) and not p.is_contiguous() for p in net.parameters())


# ------------------------------------------------------------------ bf16
@pytest.mark.parametrize("task", ["sgd", "at", "sam"])
def test_bf16_and_fast_configuration_close_to_float32(task):
    """Tolerance: bfloat16 keeps 8 significant bits (rounding 2⁻⁹ ≈ 2e-3 relative per operation), and 8
    SGD steps of PreAct ResNet-18 (width 4, BatchNorm) carry such differences into the weights. Over
    seeds 0–9 (bf16 and the fast configuration, tasks sgd/at/sam: 60 runs against float32) the largest
    deviations were 5.2% (mean train loss of the last epoch, 4 steps) and 1.7% (final test loss); the
    float32 seed-to-seed spread of these losses is of the same order (train ≈ 1–4%, test ≈ 0.5–1%).
    Asserted: 8% and 3%."""
    kw = dict(task=task, model="preact-resnet18", width=4, n_train=64, batch_size=16, sparsity_n=8, lr=0.05,
              seed=0)
    ref = train.run(_tiny(**kw), progress=False)
    for fast in (dict(bf16=True), dict(bf16=True, channels_last=True, data_on_device=True)):
        got = train.run(_tiny(**kw, **fast), progress=False)
        assert got["history"][-1]["train_loss"] == pytest.approx(ref["history"][-1]["train_loss"], rel=0.08)
        assert got["final"]["clean_loss"] == pytest.approx(ref["final"]["clean_loss"], rel=0.03)
        assert got["history"][-1]["train_loss"] != ref["history"][-1]["train_loss"]   # bf16 did run


def test_bf16_runs_the_attack_in_bfloat16(monkeypatch):
    """--bf16 puts the attack under autocast too (--amp on the cpu does not): the FGSM input gradient is
    computed with autocast on."""
    from toymodels.torch import attacks

    seen = []
    orig = attacks.input_grad

    def spy(*a, **k):
        seen.append(torch.is_autocast_enabled("cpu"))
        return orig(*a, **k)

    monkeypatch.setattr(attacks, "input_grad", spy)
    train.run(_tiny(epochs=1, bf16=True), progress=False)
    n = len(seen)
    train.run(_tiny(epochs=1, amp=True), progress=False)
    # 3 training steps per run, each one FGSM input gradient; the evaluation's run in full precision
    assert sum(seen[:n]) == 3 and sum(seen[n:]) == 0


def test_speed_option_checks():
    with pytest.raises(ConfigError, match="bf16"):
        resolve(_tiny(bf16=True, amp=True))
    with pytest.raises(ConfigError, match="bf16"):
        resolve(_tiny(bf16=True, dtype="float64"))
    for name in ("bf16", "channels_last", "data_on_device", "compile"):
        with pytest.raises(ConfigError, match=name):
            resolve(_tiny(**{name: 1}))
    r = run_cli("toymodels.torch", ["train-at", "--bf16", "--amp", "--device", "cpu"])
    assert r.rc == 2 and len(r.err_lines) == 1 and "--bf16" in r.err


# ------------------------------------------------------------------ compile
def test_compile_wiring_eager_backend_equals_uncompiled(monkeypatch):
    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")
    ref = train.run(_tiny(epochs=1, grad_align=0.2), progress=False)
    got = train.run(_tiny(epochs=1, grad_align=0.2, compile=True), progress=False)
    assert got["history"][-1]["train_loss"] == pytest.approx(ref["history"][-1]["train_loss"], rel=1e-6)
    assert got["final"]["clean_acc"] == ref["final"]["clean_acc"]


def test_failed_compile_is_one_line_and_exit_1(monkeypatch):
    def broken(gm, example_inputs):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(speed, "COMPILE_BACKEND", broken)
    argv = ["train-sgd", "--device", "cpu", "--n-train", "16", "--n-test", "8", "--batch-size", "8", "--epochs", "1",
            "--eval-n", "4", "--final-n", "4", "--filters", "1", "--compile", "--quiet"]
    r = run_cli("toymodels.torch", argv)
    assert r.rc == 1 and len(r.err_lines) == 1
    assert "compile" in r.err and "no C++ compiler here" in r.err and "Traceback" not in r.err
    assert speed.is_compile_error(RuntimeError("x")) is False
