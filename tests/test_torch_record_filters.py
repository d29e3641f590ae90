"""``record_filters`` (thesis Fig. 6.17, issue 16): ``weight_change`` = ‖W_T − W_0‖_F / ‖W_0‖_F of every conv
layer and ``filters`` = the first N kernels (first input channel) of four conv layers at init and at the end.
Checked: the init kernels equal a freshly built model's (same seed), the final ones the returned model's;
weight_change against a numpy computation from those two models; the layer keys and the four layers; N = 0
gives no keys; an interrupted and resumed run gives the same records (W_0 is the seed's, not the
checkpoint's); bad values exit 2 naming the flag. Deterministic; no Monte Carlo."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch import train  # noqa: E402
from toymodels.torch.config import TrainConfig, resolve  # noqa: E402
from toymodels.torch.device import seed_everything  # noqa: E402
from toymodels.torch.models import build_model  # noqa: E402

TINY = dict(task="sgd", device="cpu", n_train=64, n_test=32, batch_size=16, epochs=2, eval_n=8, final_n=8,
            filters=3, lr=0.1, momentum=0.0, weight_decay=0.0, sparsity_n=16, sparsity_neurons=32, seed=3)
RESNET = dict(model="preact-resnet18", width=2)


def _convs(net) -> dict:
    """Name → conv weight (numpy float64) of every Conv2d, by an independent walk (names without the
    input normalization's "1." prefix, dots → underscores)."""
    out = {}
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            name = name[2:] if name.startswith("1.") and isinstance(net, torch.nn.Sequential) and len(net) == 2 else name
            out[name.replace(".", "_")] = m.weight.detach().double().numpy()
    return out


def _fresh(extra: dict):
    """The initial model of a run with ``TINY`` + ``extra`` (seed_everything(seed), then build_model, as the
    training loop; the input normalization draws nothing and is left out)."""
    seed_everything(TINY["seed"])
    return build_model(extra.get("model", "cnn"), 10, 3, 32, filters=TINY["filters"], width=extra.get("width"))


@pytest.mark.parametrize("extra", [dict(), RESNET], ids=["cnn", "resnet18"])
def test_records_against_fresh_and_final_models(extra):
    n = 5
    res, net = train.run(TrainConfig(**TINY, **extra, record_filters=n), progress=False, return_model=True)
    w0 = _convs(_fresh(extra))
    wt = _convs(net)
    assert set(res["weight_change"]) == set(w0) and all("." not in k for k in w0)
    for k in w0:
        want = np.linalg.norm(wt[k] - w0[k]) / np.linalg.norm(w0[k])
        assert res["weight_change"][k] == pytest.approx(want, rel=1e-9), k
        assert res["weight_change"][k] > 0
    shown = list(res["filters"])
    if extra:
        assert shown == ["conv1", "layer2_0_conv1", "layer3_1_conv1", "layer4_1_conv2"]
    else:
        assert shown == ["0"]
    for k in shown:
        init, final = np.array(res["filters"][k]["init"]), np.array(res["filters"][k]["final"])
        m = min(n, w0[k].shape[0])                       # the CNN has 3 filters: all of them
        assert init.shape == final.shape == (m,) + w0[k].shape[2:]
        np.testing.assert_array_equal(init, w0[k][:m, 0])
        np.testing.assert_array_equal(final, wt[k][:m, 0])


def test_no_keys_without_the_flag():
    res = train.run(TrainConfig(**{**TINY, "epochs": 1}), progress=False)
    assert "weight_change" not in res and "filters" not in res


def test_resume_gives_the_same_records(tmp_path, interrupted_after_checkpoint):
    cfg = dict(TINY, **RESNET, record_filters=2)
    a = train.run(TrainConfig(**cfg, out=str(tmp_path / "a")), progress=False)
    with interrupted_after_checkpoint():
        train.run(TrainConfig(**cfg, out=str(tmp_path / "b")), progress=False)
    b = train.run(TrainConfig(**cfg, out=str(tmp_path / "b"), resume=True), progress=False)
    assert a["history"] == b["history"] and a["final"] == b["final"]
    assert a["weight_change"] == b["weight_change"] and a["filters"] == b["filters"]


@pytest.mark.parametrize("value", [-1, 4097, 2.5])
def test_bad_values_name_the_field(value):
    with pytest.raises(ConfigError, match="record_filters"):
        resolve(TrainConfig(**TINY, record_filters=value))


@pytest.mark.parametrize("cmd", ["train-sgd", "train-sam", "train-at"])
@pytest.mark.parametrize("value", ["-1", "4097", "x"])
def test_cli_errors_exit_2_with_one_line(cmd, value):
    p = run_cli("toymodels.torch", [cmd, "--device", "cpu", "--epochs", "1", "--n-train", "16", "--n-test", "8",
                                    "--batch-size", "8", "--record-filters", value])
    assert p.rc == 2 and "--record-filters" in p.err and len(p.err.strip().splitlines()) == 1, p.err
