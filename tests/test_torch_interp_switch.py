"""``interpolate_switch`` (thesis Fig. 5.10, issue 16): a run with a switch keeps w_switch (the model at the
start of epoch ``switch_at``) and at the end evaluates (1 − α)·w_switch + α·w_final. Checked: w_switch is the
model of an independent run of the first ``switch_at`` − 1 epochs; α = 0 / 1 reproduce the losses and errors
of w_switch and w_final evaluated directly (a plain forward, and BatchNorm re-estimated for a BN net); the α
keys; exact resume (checkpoint before and after the switch); bad values exit 2 with one line naming the flag.
Deterministic; no Monte Carlo."""
from __future__ import annotations

import copy
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch import train  # noqa: E402
from toymodels.torch.config import TrainConfig, resolve  # noqa: E402
from toymodels.torch.data import prepare  # noqa: E402

TINY = dict(task="sgd", device="cpu", n_train=64, n_test=32, batch_size=16, epochs=3, eval_n=8, final_n=8,
            filters=2, schedule="constant", lr=0.05, momentum=0.9, weight_decay=5e-4, rho=0.1,
            sparsity_n=16, sparsity_neurons=32)
MINI = ["train-sgd", "--device", "cpu", "--epochs", "2", "--n-train", "16", "--n-test", "8", "--batch-size", "8",
        "--filters", "1"]


def _data(cfg: TrainConfig):
    d = prepare(cfg.dataset, None, cfg.n_train, cfg.n_test, seed=cfg.seed)
    return d["x_train"].float(), d["y_train"], d["x_test"].float(), d["y_test"]


def _direct(net, x, y):
    """Mean cross-entropy and error of ``net`` (eval mode) on all of (x, y) in one forward."""
    net.eval()
    with torch.no_grad():
        z = net(x)
    return float(torch.nn.functional.cross_entropy(z.double(), y)), float((z.argmax(1) != y).double().mean())


def _run_with_checkpoint(tmp_path, **kw):
    cfg = TrainConfig(**{**TINY, **kw}, out=str(tmp_path))
    res, net = train.run(cfg, progress=False, return_model=True)
    ck = torch.load(os.path.join(tmp_path, "checkpoint.pt"), weights_only=False)
    return res, net, ck


def test_w_switch_is_the_model_after_the_first_epochs_of_erm(tmp_path):
    """w_switch of ERM → SAM at epoch 3 equals the final model of a plain ERM run of 2 epochs (same seed,
    constant step size: the same first epochs; ERM steps inside the SAM wrapper are its base SGD's)."""
    _, _, ck = _run_with_checkpoint(tmp_path, switch_at=3, switch_to="sam", interpolate_switch=3)
    _, erm = train.run(TrainConfig(**{**TINY, "epochs": 2}), progress=False, return_model=True)
    for k, v in erm.state_dict().items():
        assert torch.equal(ck["w_switch"][k], v), k          # the same steps: bit for bit


def test_endpoints_reproduce_the_switch_and_final_models(tmp_path):
    res, net, ck = _run_with_checkpoint(tmp_path, switch_at=2, switch_to="sam", interpolate_switch=4,
                                        interpolate_alpha_min=0.0, interpolate_alpha_max=1.0)
    interp = res["interpolation"]
    assert list(interp["train_loss"]) == ["0", "0.333333333333", "0.666666666667", "1"]
    assert all(float(k) == pytest.approx(a) for k, a in zip(interp["test_err"], np.linspace(0, 1, 4)))
    xtr, ytr, xte, yte = _data(resolve(TrainConfig(**TINY)))
    start = copy.deepcopy(net)
    start.load_state_dict(ck["w_switch"])
    for key, model in (("0", start), ("1", net)):
        for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
            loss, err = _direct(model, x, y)
            assert interp[f"{split}_loss"][key] == pytest.approx(loss, rel=1e-6, abs=1e-7), (key, split)
            assert interp[f"{split}_err"][key] == err, (key, split)      # a multiple of 1/64 or 1/32
    dist = torch.sqrt(sum(((p.detach().double() - ck["w_switch"][n].double()) ** 2).sum() for n, p in net.named_parameters()))
    assert interp["distance"] == pytest.approx(float(dist), rel=1e-12)


def test_batchnorm_endpoint_is_the_final_model_with_statistics_re_estimated(tmp_path):
    """PreAct ResNet-18 (width 2): α = 1 equals the final model whose BatchNorm statistics are reset and
    re-estimated (cumulative average over 500-image batches: here one batch of all 64 training images)."""
    res, net, _ = _run_with_checkpoint(tmp_path, model="preact-resnet18", width=2, epochs=2, switch_at=2,
                                       switch_to="sam", interpolate_switch=2, interpolate_alpha_min=0.0,
                                       interpolate_alpha_max=1.0)
    xtr, ytr, xte, yte = _data(resolve(TrainConfig(**TINY, model="preact-resnet18", width=2)))
    ref = copy.deepcopy(net)
    for m in ref.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    ref.train()
    with torch.no_grad():
        ref(xtr)
    for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        loss, err = _direct(ref, x, y)
        assert res["interpolation"][f"{split}_loss"]["1"] == pytest.approx(loss, rel=1e-5), split
        assert res["interpolation"][f"{split}_err"]["1"] == err, split


@pytest.mark.parametrize("switch_at", [1, 2])
def test_resume_reproduces_the_interpolation(switch_at, tmp_path, interrupted_after_checkpoint):
    """Interrupted after epoch 1 (w_switch already kept for switch_at = 1, not yet for 2), then resumed:
    the same history, final evaluation and interpolation, bit for bit."""
    cfg = dict(TINY, switch_at=switch_at, switch_to="sam", interpolate_switch=5)
    a = train.run(TrainConfig(**cfg, out=str(tmp_path / "a")), progress=False)
    with interrupted_after_checkpoint():
        train.run(TrainConfig(**cfg, out=str(tmp_path / "b")), progress=False)
    ck = torch.load(os.path.join(tmp_path / "b", "checkpoint.pt"), weights_only=False)
    assert (ck["w_switch"] is None) == (switch_at == 2)
    b = train.run(TrainConfig(**cfg, out=str(tmp_path / "b"), resume=True), progress=False)
    assert a["history"] == b["history"] and a["final"] == b["final"]
    assert a["interpolation"] == b["interpolation"] and len(a["interpolation"]["train_loss"]) == 5


def test_sam_to_erm_and_no_keys_without_the_flag():
    res = train.run(TrainConfig(**{**TINY, "task": "sam", "switch_at": 3, "switch_to": "erm", "interpolate_switch": 2}),
                    progress=False)
    assert list(res["interpolation"]["test_loss"]) == ["-1", "2"]
    assert "interpolation" not in train.run(TrainConfig(**{**TINY, "epochs": 1}), progress=False)


@pytest.mark.parametrize("kw, field", [
    (dict(interpolate_switch=3), "interpolate_switch"),                       # no switch
    (dict(interpolate_switch=1, switch_at=1, switch_to="sam"), "interpolate_switch"),
    (dict(interpolate_switch=3, switch_at=1, switch_to="sam", interpolate_alpha_max=-1.0), "interpolate_alpha_max"),
    (dict(interpolate_alpha_min=0.0), "interpolate_alpha_min"),              # range without the flag
    (dict(interpolate_switch=3, switch_at=1, switch_to="sam", interpolate_alpha_min=-101.0), "interpolate_alpha_min"),
])
def test_bad_configs_name_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        resolve(TrainConfig(**{**TINY, **kw}))


@pytest.mark.parametrize("extra, flag", [
    (["--interpolate-switch", "5"], "--interpolate-switch"),
    (["--switch-at", "1", "--interpolate-switch", "1"], "--interpolate-switch"),
    (["--switch-at", "1", "--interpolate-switch", "3", "--interpolate-alpha-min", "2"], "--interpolate-alpha-max"),
    (["--switch-at", "1", "--interpolate-switch", "3", "--interpolate-alpha-max", "101"], "--interpolate-alpha-max"),
    (["--interpolate-alpha-min", "0"], "--interpolate-alpha-min"),
])
def test_cli_errors_exit_2_with_one_line(extra, flag):
    p = run_cli("toymodels.torch", [*MINI, *extra])
    assert p.rc == 2, p.err
    assert flag in p.err and len(p.err.strip().splitlines()) == 1, p.err


def test_cli_json_has_the_interpolation():
    import json

    p = run_cli("toymodels.torch", [*MINI, "--switch-at", "2", "--interpolate-switch", "3", "--json"])
    assert p.rc == 0, p.err
    res = json.loads(p.out)
    assert res["config"]["interpolate_switch"] == 3 and list(res["interpolation"]["train_err"]) == ["-1", "0.5", "2"]
