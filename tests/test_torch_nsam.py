"""n-SAM of thesis Fig. 5.1 in ``train-sam`` (issue 16; ``sam_ascent_batch="other"``, Sec. 5.11 l.2915:
the ascent on a batch other than the descent batch, eq. 5.21): one float64 training step against a
hand-written step (the ascent batch drawn independently from a copy of the run's generator; m = b and
m-SAM chunks of the ascent batch), the drawn batches (without replacement, uniform: a Monte-Carlo check
over seeds 0-99, not the descent batch), a bitwise resume, and the bad combinations (ConfigError / exit 2)."""
from __future__ import annotations

import copy
import os
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import assert_resume_bitwise  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from helpers import run_cli  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch import sam as sam_mod, train  # noqa: E402
from toymodels.torch.config import TrainConfig, resolve  # noqa: E402
from toymodels.torch.sam import SAM, sam_update  # noqa: E402

TINY = dict(task="sam", model="cnn", filters=2, device="cpu", dtype="float64", n_train=64, n_test=16, batch_size=16,
            epochs=2, eval_n=8, final_n=8, eval_pgd_steps=1, final_pgd_steps=1, rho=0.3, momentum=0.9,
            weight_decay=5e-4, lr=0.05, schedule="constant", sam_ascent_batch="other")
MINI = ["--device", "cpu", "--epochs", "1", "--n-train", "16", "--n-test", "8", "--batch-size", "8", "--filters", "1",
        "--eval-n", "4", "--final-n", "4"]


def _hand_step(net, xa, ya, x, y, *, rho, m, lr, momentum, wd, eps):
    """The eq. 5.21 step written out (no SAM code): per chunk G (m = b: one), e_G = ρ g_G/(‖g_G‖ + eps) with
    g_G = ∇L_{A_G}(w), d = (1/k) Σ_G ∇L_{D_G}(w + e_G); then SGD's first step with momentum and weight
    decay: buf = d + wd·w, w ← w − lr·buf. Returns the new weights."""
    params = list(net.parameters())
    w = [p.detach().clone() for p in params]
    k = len(y) // m
    d = [torch.zeros_like(p) for p in params]
    for c in range(k):
        s = slice(c * m, (c + 1) * m)
        g = torch.autograd.grad(F.cross_entropy(net(xa[s]), ya[s]), params)
        norm = torch.sqrt(sum((gi ** 2).sum() for gi in g))
        with torch.no_grad():
            for p, wi, gi in zip(params, w, g):
                p.copy_(wi + rho * gi / (norm + eps))
        gd = torch.autograd.grad(F.cross_entropy(net(x[s]), y[s]), params)
        with torch.no_grad():
            for p, wi in zip(params, w):
                p.copy_(wi)
        d = [di + gi / k for di, gi in zip(d, gd)]
    return [wi - lr * (di + wd * wi) for wi, di in zip(w, d)]


@pytest.mark.parametrize("m", [None, 4])
def test_step_equals_a_hand_written_step_on_the_drawn_batch(m):
    r = train._setup(resolve(TrainConfig(**TINY, m=m)), train._Dist())
    r.net.train()
    ref = copy.deepcopy(r.net)
    gen = torch.Generator()
    gen.set_state(r.gen.get_state())
    xtr, ytr = r.data[0], r.data[1]
    x, y = xtr[:16], ytr[:16]
    for g in r.opt.param_groups:
        g["lr"] = TINY["lr"]
    train._step(r, train._State(), x, y)
    # the ascent batch, drawn independently: 16 of the 64 training images without replacement from r.gen
    idx = torch.randperm(64, generator=gen)[:16]
    assert len(set(idx.tolist())) == 16 and set(idx.tolist()) != set(range(16))
    want = _hand_step(ref, xtr[idx], ytr[idx], x, y, rho=TINY["rho"], m=m or 16, lr=TINY["lr"],
                      momentum=TINY["momentum"], wd=TINY["weight_decay"], eps=r.opt.eps)
    got = [p.detach() for p in r.net.parameters()]
    assert max(float((a - b).abs().max()) for a, b in zip(got, want)) < 1e-12
    # and not the SAM step on the descent batch itself
    same = _hand_step(copy.deepcopy(ref), x, y, x, y, rho=TINY["rho"], m=m or 16, lr=TINY["lr"],
                      momentum=TINY["momentum"], wd=TINY["weight_decay"], eps=r.opt.eps)
    assert max(float((a - b).abs().max()) for a, b in zip(got, same)) > 1e-8


def test_every_ascent_batch_differs_from_its_descent_batch(monkeypatch):
    """Over a whole run: each step's ascent batch has b distinct training images and is not its descent
    batch, and the ascent batches change from step to step."""
    seen = []

    def spy(model, opt, loss_fn, x, y, **kw):
        seen.append((x.clone(), kw["ascent_x"].clone()))
        return sam_update(model, opt, loss_fn, x, y, **kw)

    monkeypatch.setattr(sam_mod, "sam_update", spy)
    train.run(TrainConfig(**TINY), progress=False)
    assert len(seen) == 2 * 4
    for x, xa in seen:
        assert xa.shape == x.shape and not torch.equal(xa, x)
        assert len({tuple(row.flatten().tolist()) for row in xa}) == len(xa)     # without replacement
    assert len({tuple(xa.flatten()[:50].tolist()) for _, xa in seen}) == len(seen)


def test_ascent_batch_is_uniform_without_replacement_seeds_0_to_99():
    """Monte Carlo, checked for every seed 0-99: n = 16 of N = 64 indices, D = 500 draws per seed. Each
    index's count is Binomial(D, n/N) (mean 125, s.e. √(D·p(1−p)) = 9.68); tolerance 5 s.e. per index.
    Each draw has n distinct indices."""
    N, n, D = 64, 16, 500
    p = n / N
    se = np.sqrt(D * p * (1 - p))
    for seed in range(100):
        r = SimpleNamespace(data=(torch.arange(N, dtype=torch.float64)[:, None], torch.arange(N)),
                            gen=torch.Generator().manual_seed(seed), device=torch.device("cpu"),
                            cfg=SimpleNamespace(augment=False))
        counts = np.zeros(N)
        for _ in range(D):
            xa, ya = train.other_batch(r, n)
            assert len(set(ya.tolist())) == n and torch.equal(xa[:, 0].long(), ya)
            counts[ya.numpy()] += 1
        assert np.abs(counts - D * p).max() < 5 * se, (seed, counts)


@pytest.mark.parametrize("extra", [dict(), dict(augment=True, m=8)])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, interrupted_after_checkpoint, extra):
    cfg = dict(TINY, **extra)
    a = assert_resume_bitwise(cfg, tmp_path, interrupted_after_checkpoint)
    same = train.run(TrainConfig(**dict(cfg, sam_ascent_batch="same")), progress=False)
    assert same["history"][-1]["train_loss"] != a["history"][-1]["train_loss"]


def test_erm_to_sam_switch_uses_the_other_batch(monkeypatch):
    calls = []

    def spy(model, opt, loss_fn, x, y, **kw):
        calls.append(kw["ascent_x"] is not None)
        return sam_update(model, opt, loss_fn, x, y, **kw)

    monkeypatch.setattr(sam_mod, "sam_update", spy)
    train.run(TrainConfig(**dict(TINY, task="sgd", switch_at=2, switch_to="sam", sparsity_n=8)), progress=False)
    assert calls == [True] * 4                      # epoch 2 only, each with an ascent batch


@pytest.mark.parametrize("kw,field", [
    (dict(sam_ascent_batch="another"), "sam_ascent_batch"),
    (dict(sam_ascent_batch="other", sam_perturbation="random"), "sam_ascent_batch"),
    (dict(sam_ascent_batch="other", task="at"), "sam_ascent_batch"),
    (dict(sam_ascent_batch="other", task="sgd"), "sam_ascent_batch"),
])
def test_bad_config_combinations(kw, field):
    with pytest.raises(ConfigError, match=f"^{field} "):
        resolve(TrainConfig(**{**TINY, **kw}))


def test_sam_update_needs_an_ascent_batch_of_b_examples_with_chunks():
    net = torch.nn.Linear(3, 2).double()
    opt = SAM(net.parameters(), torch.optim.SGD, rho=0.1, lr=0.1)
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.zeros(8, dtype=torch.long)
    with pytest.raises(ConfigError, match="^ascent_x "):
        sam_update(net, opt, F.cross_entropy, x, y, m=4, ascent_x=x[:6], ascent_y=y[:6])


@pytest.mark.parametrize("argv,flag", [
    (["train-sam", "--sam-ascent-batch", "another"], "--sam-ascent-batch"),
    (["train-sam", "--sam-ascent-batch", "other", "--sam-perturbation", "random"], "--sam-ascent-batch"),
    (["train-sgd", "--sam-ascent-batch", "other"], "--sam-ascent-batch"),
])
def test_cli_bad_values_exit_2_naming_the_flag(argv, flag):
    r = run_cli("toymodels.torch", [*argv, *MINI, "--json"])
    assert r.rc == 2 and len(r.err_lines) == 1 and flag in r.err and r.out == "", (r.rc, r.err)
    assert "Traceback" not in r.err


def test_cli_flag_reaches_the_config():
    res = run_cli("toymodels.torch", ["train-sam", *MINI, "--sam-ascent-batch", "other", "--json"]).json
    assert res["config"]["sam_ascent_batch"] == "other" and res["history"][-1]["train_acc"] is not None
    res = run_cli("toymodels.torch", ["train-sgd", *MINI, "--epochs", "2", "--switch-at", "2",
                                      "--sam-ascent-batch", "other", "--json"]).json
    assert res["config"]["sam_ascent_batch"] == "other" and res["config"]["switch_to"] == "sam"
