"""The SAM variants in ``toymodels.torch.train`` / ``train-sam``: the training accuracy of SAM runs (NaN
before issue 16) from the first pass's logits, ``sam_steps`` / ``sam_perturbation`` config fields and
CLI flags, their bad values (exit 2 naming the flag), and an exact resume of a random-perturbation run
(its directions come from the checkpointed generator). Deterministic; no Monte Carlo."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import assert_resume_bitwise  # noqa: E402
from torch import nn  # noqa: E402
from helpers import run_cli  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch import train  # noqa: E402
from toymodels.torch.config import TrainConfig, resolve  # noqa: E402
from toymodels.torch.sam import SAM, sam_update  # noqa: E402

TINY_CFG = dict(task="sam", device="cpu", n_train=64, n_test=32, batch_size=16, epochs=2, eval_n=16, eval_pgd_steps=2,
                final_n=16, final_pgd_steps=3, final_restarts=1, filters=2)
MINI = ["--device", "cpu", "--epochs", "1", "--n-train", "16", "--n-test", "8", "--batch-size", "8", "--filters", "1"]


@pytest.mark.parametrize("kw", [dict(), dict(m=4), dict(ascent_x=True)])
def test_returned_logits_are_those_of_the_first_pass_at_w(kw):
    """The logits returned for the training accuracy equal an independent forward at w (before the
    update) of the batch (m-SAM: chunk by chunk, concatenated) or of the ascent batch (eq. 5.21)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (8,), generator=g)
    xa, ya = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g)
    if kw.get("ascent_x"):
        kw = dict(ascent_x=xa, ascent_y=ya)
    with torch.no_grad():
        expected = net(xa if "ascent_x" in kw else x)
    w0 = [p.detach().clone() for p in net.parameters()]
    opt = SAM(net.parameters(), torch.optim.SGD, rho=0.3, lr=0.1)
    loss, logits = sam_update(net, opt, nn.functional.cross_entropy, x, y, return_logits=True, **kw)
    assert torch.allclose(logits, expected, rtol=0, atol=1e-14)
    assert loss == pytest.approx(float(nn.functional.cross_entropy(expected, ya if "ascent_x" in kw else y)), abs=1e-14)
    assert any(not torch.equal(p, w) for p, w in zip(net.parameters(), w0))     # it stepped


@pytest.mark.parametrize("variant", [dict(), dict(sam_steps=2), dict(sam_perturbation="random")])
def test_sam_runs_report_their_training_accuracy(variant):
    res = train.run(TrainConfig(**TINY_CFG, **variant), progress=False)
    for rec in res["history"][1:]:
        acc = rec["train_acc"]
        assert acc is not None and 0.0 <= acc <= 1.0 and np.isfinite(rec["train_loss"])
        # the mean over 4 steps of accuracies of 16 images: a multiple of 1/64
        assert abs(acc * 64 - round(acc * 64)) < 1e-9
    assert res["config"]["sam_steps"] == variant.get("sam_steps", 1)
    assert res["config"]["sam_perturbation"] == variant.get("sam_perturbation", "gradient")


def test_variants_change_the_run():
    base = train.run(TrainConfig(**TINY_CFG), progress=False)
    for variant in (dict(sam_steps=3), dict(sam_perturbation="random")):
        other = train.run(TrainConfig(**TINY_CFG, **variant), progress=False)
        assert other["history"][-1]["train_loss"] != base["history"][-1]["train_loss"]


def test_random_perturbation_resume_reproduces_uninterrupted_run(tmp_path, interrupted_after_checkpoint):
    assert_resume_bitwise(dict(TINY_CFG, sam_perturbation="random", rho=0.5), tmp_path, interrupted_after_checkpoint)


@pytest.mark.parametrize("kw,field", [
    (dict(sam_steps=0), "sam_steps"), (dict(sam_steps=1001), "sam_steps"), (dict(sam_steps=1.5), "sam_steps"),
    (dict(sam_perturbation="uniform"), "sam_perturbation"),
    (dict(sam_perturbation="random", sam_steps=2), "sam_steps"),
    (dict(sam_perturbation="random", sam_normalize=False), "sam_perturbation"),
    (dict(rho=-0.1), "rho"),
])
def test_bad_config_values(kw, field):
    with pytest.raises(ConfigError, match=f"^{field} "):
        resolve(TrainConfig(**{**TINY_CFG, **kw}))


@pytest.mark.parametrize("argv,flag", [
    (["--sam-steps", "0"], "--sam-steps"),
    (["--sam-perturbation", "uniform"], "--sam-perturbation"),
    (["--sam-perturbation", "random", "--sam-steps", "2"], "--sam-steps"),
    (["--sam-perturbation", "random", "--no-normalize"], "--sam-perturbation"),
    (["--rho", "-0.5"], "--rho"),
])
def test_cli_bad_sam_variants_exit_2_naming_the_flag(argv, flag):
    r = run_cli("toymodels.torch", ["train-sam", *MINI, *argv, "--json"])
    assert r.rc == 2 and len(r.err_lines) == 1 and flag in r.err and r.out == "", (r.rc, r.err)
    assert "Traceback" not in r.err


def test_cli_sam_variant_flags_reach_the_config():
    res = run_cli("toymodels.torch", ["train-sam", *MINI, "--sam-steps", "2", "--json"]).json
    assert res["config"]["sam_steps"] == 2 and res["config"]["sam_perturbation"] == "gradient"
    assert res["history"][-1]["train_acc"] is not None
