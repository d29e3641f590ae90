"""Deep-net settings of thesis Ch. 5 in the torch layer (issue 16): label noise, early stopping on a
held-out split, ERM → SAM / SAM → ERM switching, the loss along the line between two checkpoints, and
their bad inputs. Models: the tiny single-layer CNN (float64 where runs are compared bitwise)."""
import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch import data, interpolate as interp, train  # noqa: E402
from toymodels.torch.config import resolve  # noqa: E402
from toymodels.torch.device import torch_generator  # noqa: E402
from toymodels.torch.models import build_model  # noqa: E402

TINY = dict(model="cnn", filters=1, n_train=32, n_test=8, batch_size=16, eval_n=4, final_n=4, device="cpu",
            dtype="float64", schedule="constant", eval_pgd_steps=1, final_pgd_steps=1)
MINI = ["--device", "cpu", "--n-train", "32", "--n-test", "8", "--batch-size", "16", "--epochs", "2",
        "--eval-n", "4", "--final-n", "4", "--filters", "1"]


# ------------------------------------------------------------------------------------------------
# label noise
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,p,k", [(100, 0.29, 29), (50_000, 0.6, 30_000), (10, 0.7, 7), (37, 0.0, 0),
                                   (37, 1.0, 37), (3, 0.5, 1)])
def test_label_noise_changes_exactly_floor_pn_labels_to_other_classes(n, p, k):
    y = torch.arange(n) % 10
    for seed in range(5):
        yn, mask = data.add_label_noise(y, 10, p, seed)
        assert int(mask.sum()) == k                                  # the exact count ⌊p·n⌋
        assert torch.equal(yn != y, mask)                            # changed exactly there, to another class
        assert int(yn.min()) >= 0 and int(yn.max()) < 10
    yn2, _ = data.add_label_noise(y, 10, p, 4)
    assert torch.equal(yn, yn2)                                      # drawn once from the seed


def test_label_noise_new_class_is_uniform_over_the_other_classes():
    """n = 20,000 labels, all replaced (p = 1), K = 10: each offset (y_new − y) mod K ∈ {1..9} has
    probability 1/9; its count is within 5 standard errors (sd = √(n·(1/9)(8/9)) ≈ 44) of n/9 for every
    seed 0–99 (checked here)."""
    n, K = 20_000, 10
    y = torch.from_numpy(np.random.default_rng(0).integers(0, K, n))
    sd = math.sqrt(n * (1 / 9) * (8 / 9))
    for seed in range(100):
        yn, _ = data.add_label_noise(y, K, 1.0, seed)
        counts = np.bincount(((yn - y) % K).numpy(), minlength=K)
        assert counts[0] == 0
        assert np.all(np.abs(counts[1:] - n / 9) < 5 * sd), (seed, counts)


def test_training_uses_the_noisy_labels_and_resume_keeps_them(tmp_path, interrupted_after_checkpoint):
    cfg = train.TrainConfig(task="sgd", epochs=2, label_noise=0.5, **TINY)
    r = train._setup(resolve(cfg), train._Dist())
    clean = data.load("synthetic", None, 32, 8, seed=0)[1]
    assert int((r.data[1] != clean).sum()) == 16 and torch.equal(r.data[1], data.prepare(
        "synthetic", None, 32, 8, seed=0, label_noise=0.5)["y_train"])
    a = train.run(train.TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "a")}), progress=False)
    with interrupted_after_checkpoint():
        train.run(train.TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "b")}), progress=False)
    b = train.run(train.TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "b"), "resume": True}), progress=False)
    assert a["history"] == b["history"] and a["final"] == b["final"] and a["n_noisy_labels"] == 16


def test_noisy_fit_is_the_fit_of_the_noisy_labels():
    cfg = train.TrainConfig(task="sgd", epochs=2, label_noise=0.25, **TINY)
    res, net = train.run(cfg, progress=False, return_model=True)
    d = data.prepare("synthetic", None, 32, 8, seed=0, label_noise=0.25)
    idx = torch.nonzero(d["noisy"]).flatten()
    assert len(idx) == 8
    with torch.no_grad():
        pred = net.eval()(d["x_train"][idx].double()).argmax(1)
    assert res["history"][-1]["noisy_fit"] == float((pred == d["y_train"][idx]).double().mean())
    assert all(0.0 <= h["noisy_fit"] <= 1.0 for h in res["history"])


# ------------------------------------------------------------------------------------------------
# early stopping
# ------------------------------------------------------------------------------------------------
def test_heldout_split_is_a_partition():
    tr, ho = data.heldout_split(50, 12, seed=3)
    assert len(ho) == 12 and len(tr) == 38
    assert sorted(tr.tolist() + ho.tolist()) == list(range(50))
    assert torch.equal(tr, torch.sort(tr).values)                     # training order kept


def test_best_epoch_rule():
    assert train.best_epoch([(1, 0.2), (2, 0.5), (3, 0.5), (4, 0.3)]) == (2, 0.5)    # earliest of ties
    assert train.best_epoch([(1, 0.9), (2, 0.1)]) == (1, 0.9)
    assert train.best_epoch([(3, 0.0)]) == (3, 0.0)


def test_early_stop_keeps_the_forced_best_epoch(monkeypatch, tmp_path):
    """With forced held-out accuracies 0.2, 0.5, 0.5, 0.3 the run keeps epoch 2 (the first of the ties);
    its final_best equals the final evaluation of the same run stopped after 2 epochs (constant lr, so
    the first two epochs are the same)."""
    seq = iter([0.2, 0.5, 0.5, 0.3])
    monkeypatch.setattr(train, "_heldout_acc", lambda r: next(seq))
    cfg = dict(task="at", attack="fgsm", early_stop=True, early_stop_n=8, n_train=40, **{
        k: v for k, v in TINY.items() if k != "n_train"})
    res = train.run(train.TrainConfig(epochs=4, **cfg), progress=False)
    assert res["best_epoch"] == 2 and res["best_heldout_acc"] == 0.5
    assert [h.get("heldout_acc") for h in res["history"]] == [None, 0.2, 0.5, 0.5, 0.3]
    monkeypatch.undo()
    short = train.run(train.TrainConfig(epochs=2, **cfg), progress=False)
    assert res["final_best"] == short["final"] and res["final"] != short["final"]


def test_early_stop_end_to_end_and_resume(tmp_path, interrupted_after_checkpoint):
    cfg = train.TrainConfig(task="at", attack="fgsm", epochs=3, early_stop=True, early_stop_n=8, n_train=40,
                            **{k: v for k, v in TINY.items() if k != "n_train"})
    a = train.run(train.TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "a")}), progress=False)
    accs = [(h["epoch"], h["heldout_acc"]) for h in a["history"][1:]]
    assert a["best_epoch"] == train.best_epoch(accs)[0] and a["final_best"] is not None
    assert all(0.0 <= v <= 1.0 for _, v in accs)
    with interrupted_after_checkpoint():
        train.run(train.TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "b")}), progress=False)
    b = train.run(train.TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "b"), "resume": True}), progress=False)
    assert (a["best_epoch"], a["final_best"], a["history"]) == (b["best_epoch"], b["final_best"], b["history"])


def test_heldout_pgd_accuracy_is_pgd_on_the_heldout_points():
    """Task at: the held-out accuracy is the accuracy under PGD (fixed start) on the split-off points."""
    cfg = resolve(train.TrainConfig(task="at", epochs=1, early_stop=True, early_stop_n=8, n_train=40,
                                    **{k: v for k, v in TINY.items() if k != "n_train"}))
    r = train._setup(cfg, train._Dist())
    x, y = r.hold
    d = data.prepare("synthetic", None, 40, 8, seed=0, heldout=8)
    assert torch.equal(y, d["y_hold"]) and len(r.data[1]) == 32
    g = torch_generator(0, "heldout-noise")
    from toymodels.torch import attacks

    start = attacks.uniform_noise((1,) + tuple(x.shape), cfg.eps, g, x)
    xa = x + attacks.pgd(r.net.eval(), x, y, cfg.eps, cfg.eps / 4, 1, 1, noise=start)
    expected = float((r.net(xa).argmax(1) == y).double().mean())
    assert train._heldout_acc(r) == expected


# ------------------------------------------------------------------------------------------------
# ERM → SAM / SAM → ERM
# ------------------------------------------------------------------------------------------------
def test_erm_to_sam_equals_the_two_phases_run_separately(tmp_path):
    """ERM (train-sgd) for epoch 1, then SAM from epoch 2 (switch_at = 2) equals: a 1-epoch ERM run
    (its checkpoint), then SAM epochs 2–3 written out here by hand from the checkpoint's weights and
    momentum (same shuffling streams, same m). Bitwise, float64."""
    kw = dict(task="sgd", rho=0.1, **TINY)
    sw, net = train.run(train.TrainConfig(epochs=3, switch_at=2, switch_to="sam", **kw), progress=False,
                        return_model=True)
    assert sw["phases"] == {"first": "erm", "then": "sam", "switch_at": 2}
    train.run(train.TrainConfig(epochs=1, out=str(tmp_path), **kw), progress=False)
    ck = torch.load(os.path.join(tmp_path, "checkpoint.pt"), weights_only=False)
    from toymodels.torch.sam import SAM, sam_update

    d = data.prepare("synthetic", None, 32, 8, seed=0)
    x, y = d["x_train"].double(), d["y_train"]
    ref = build_model("cnn", d["num_classes"], 3, x.shape[2], filters=1, dtype=torch.float64)
    ref.load_state_dict(ck["model_state"])
    base = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    base.load_state_dict(ck["optimizer_state"])
    opt = SAM(None, base, rho=0.1)
    for epoch in (2, 3):
        perm = torch.randperm(32, generator=torch_generator(0, "shuffle", epoch))
        for i in range(2):
            idx = perm[i * 16:(i + 1) * 16]
            sam_update(ref, opt, torch.nn.functional.cross_entropy, x[idx], y[idx], m=16)
    for (k, a), b in zip(net.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k
    plain = train.run(train.TrainConfig(epochs=3, **kw), progress=False)
    assert plain["history"][1] == sw["history"][1] and plain["history"][2] != sw["history"][2]


def test_sam_to_erm_phases_and_resume_across_the_switch(tmp_path, interrupted_after_checkpoint):
    assert train.phase_of(train.TrainConfig(task="sam", epochs=4, switch_at=3, switch_to="erm"), 2) == "sam"
    assert train.phase_of(train.TrainConfig(task="sam", epochs=4, switch_at=3, switch_to="erm"), 3) == "erm"
    assert train.phase_of(train.TrainConfig(task="sgd", epochs=4, switch_at=1, switch_to="sam"), 1) == "sam"
    cfg = train.TrainConfig(task="sam", epochs=3, switch_at=2, switch_to="erm", m=8, **TINY)
    a = train.run(train.TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "a")}), progress=False)
    with interrupted_after_checkpoint():              # stops after epoch 1, before the switch
        train.run(train.TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "b")}), progress=False)
    b = train.run(train.TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "b"), "resume": True}), progress=False)
    assert a["history"] == b["history"] and a["final"] == b["final"]
    sa = torch.load(os.path.join(tmp_path / "a", "checkpoint.pt"), weights_only=False)["model_state"]
    sb = torch.load(os.path.join(tmp_path / "b", "checkpoint.pt"), weights_only=False)["model_state"]
    assert all(torch.equal(v, sb[k]) for k, v in sa.items())
    sam_only = train.run(train.TrainConfig(**{**TINY, "task": "sam", "epochs": 3, "m": 8}), progress=False)
    assert sam_only["history"][1] == a["history"][1] and sam_only["history"][2] != a["history"][2]


# ------------------------------------------------------------------------------------------------
# loss along the line between two models
# ------------------------------------------------------------------------------------------------
def _two(name, **kw):
    torch.manual_seed(0)
    a = build_model(name, 4, 3, 8, dtype=torch.float64, **kw)
    b = build_model(name, 4, 3, 8, dtype=torch.float64, **kw)
    return a, b


def _mean_ce_err(model, x, y):
    model.eval()
    with torch.no_grad():
        z = model(x)
    return float(torch.nn.functional.cross_entropy(z, y, reduction="sum")) / len(y), \
        float((z.argmax(1) != y).double().mean())


@pytest.mark.parametrize("name,bn,kw", [("cnn", "recompute", {"filters": 2}), ("cnn", "keep", {"filters": 2}),
                                        ("preact-resnet18", "keep", {"width": 2}),
                                        ("preact-resnet18-gn", "recompute", {"width": 2})])
def test_interpolation_endpoints_reproduce_the_models(name, bn, kw):
    a, b = _two(name, **kw)
    if name == "preact-resnet18":             # give the BN buffers non-trivial, different values
        for m, s in ((a, 1), (b, 2)):
            m.train()
            with torch.no_grad():
                m(torch.rand(16, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(s)))
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(20, 3, 8, 8, dtype=torch.float64, generator=g), torch.randint(0, 4, (20,), generator=g)
    xt, yt = torch.rand(10, 3, 8, 8, dtype=torch.float64, generator=g), torch.randint(0, 4, (10,), generator=g)
    res = interp.interpolate(a, b, x, y, [0.0, 0.5, 1.0], x_test=xt, y_test=yt, bn=bn)
    for i, m in ((0, a), (2, b)):
        assert (res["train_loss"][i], res["train_err"][i]) == _mean_ce_err(m, x, y)
        assert (res["test_loss"][i], res["test_err"][i]) == _mean_ce_err(m, xt, yt)
    assert res["train_loss"][1] != res["train_loss"][0]
    dist = math.sqrt(sum(float(((p - q) ** 2).sum().detach()) for p, q in zip(a.parameters(), b.parameters())))
    assert res["distance"] == pytest.approx(dist, rel=1e-12)


def test_interpolation_of_a_linear_model_is_the_closed_form_quadratic():
    """Squared loss of a linear model: L(α) = mean ‖(A + αΔ)x + a + αδ − y‖² = c0 + c1 α + c2 α² with
    r = Ax + a − y, d = Δx + δ: c0 = mean ‖r‖², c1 = 2 mean ⟨r, d⟩, c2 = mean ‖d‖²."""
    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3).double(), torch.nn.Linear(5, 3).double()
    x, y = torch.randn(40, 5, dtype=torch.float64), torch.randn(40, 3, dtype=torch.float64)
    alphas = np.linspace(-1, 2, 13)
    res = interp.interpolate(a, b, x, y, alphas, bn="recompute",
                             loss_fn=lambda z, t: ((z - t) ** 2).sum())
    with torch.no_grad():
        r = x @ a.weight.T + a.bias - y
        d = x @ (b.weight - a.weight).T + (b.bias - a.bias)
        c0, c1, c2 = float((r ** 2).sum(1).mean()), float(2 * (r * d).sum(1).mean()), float((d ** 2).sum(1).mean())
    np.testing.assert_allclose(res["train_loss"], c0 + c1 * alphas + c2 * alphas ** 2, rtol=1e-12, atol=0)
    assert res["train_err"] == [None] * 13 and res["test_loss"] == [None] * 13


def test_interpolate_cli_on_two_checkpoints(tmp_path):
    for name, extra in (("erm", []), ("sam", ["--switch-at", "2"])):
        r = run_cli("toymodels.torch", ["train-sgd", *MINI, *extra, "--out", tmp_path / name, "--json"])
        assert r.rc == 0, r.err
    r = run_cli("toymodels.torch", ["interpolate", "--a", tmp_path / "erm" / "checkpoint.pt", "--b",
                                    tmp_path / "sam" / "checkpoint.pt", "--points", "5", "--alpha-min", "-1",
                                    "--alpha-max", "2", "--device", "cpu", "--json", "--out", tmp_path / "i"])
    assert r.rc == 0, r.err
    j = r.json
    assert j["alpha"] == [-1.0, -0.25, 0.5, 1.25, 2.0] and (tmp_path / "i" / "interpolate.png").stat().st_size > 0
    # α = 0 is checkpoint A evaluated on its own training data
    r = run_cli("toymodels.torch", ["interpolate", "--a", tmp_path / "erm" / "checkpoint.pt", "--b",
                                    tmp_path / "sam" / "checkpoint.pt", "--points", "2", "--device", "cpu", "--json"])
    ck = torch.load(tmp_path / "erm" / "checkpoint.pt", weights_only=False)
    d = data.prepare("synthetic", None, 32, 8, seed=0)
    m = build_model("cnn", d["num_classes"], 3, 32, filters=1)
    m.load_state_dict(ck["model_state"])
    assert (r.json["train_loss"][0], r.json["train_err"][0]) == pytest.approx(_mean_ce_err(m, d["x_train"],
                                                                                         d["y_train"]), abs=1e-6)


# ------------------------------------------------------------------------------------------------
# bad input: exit 2, one line naming the parameter
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,flag", [
    (["train-sgd", "--label-noise", "1.5"], "--label-noise"),
    (["train-sgd", "--label-noise", "-0.1"], "--label-noise"),
    (["train-sam", "--switch-at", "3"], "--switch-at"),              # epochs = 2
    (["train-sam", "--switch-at", "0"], "--switch-at"),
    (["train-sam", "--switch-at", "1", "--switch-to", "sam"], "--switch-to"),
    (["train-sgd", "--switch-to", "sam"], "--switch-at"),
    (["train-at", "--model", "vgg"], "--model"),
    (["train-at", "--model", "wrn-28-10", "--width", "4"], "--width"),
    (["train-at", "--early-stop"], "--early-stop-n"),
    (["train-at", "--early-stop", "--early-stop-n", "20"], "--early-stop-n"),   # 32 − 16 at most
    (["interpolate", "--a", __file__, "--device", "cpu"], "--b"),
    (["interpolate", "--model", "cnn", "--alpha-min", "1", "--alpha-max", "0", "--device", "cpu"], "--alpha-max"),
])
def test_bad_settings_exit_2_with_one_line(argv, flag):
    extra = MINI if argv[0].startswith("train") else []
    r = run_cli("toymodels.torch", [*argv, *extra])
    assert r.rc == 2 and len(r.err_lines) == 1 and flag in r.err and "Traceback" not in r.err, (r.rc, r.err)


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="^label_noise "):
        resolve(train.TrainConfig(label_noise=2.0))
    with pytest.raises(ConfigError, match="^switch_at "):
        resolve(train.TrainConfig(task="sam", epochs=2, switch_at=3, switch_to="erm"))
    with pytest.raises(ConfigError, match="^switch_to "):
        resolve(train.TrainConfig(task="at", epochs=2, switch_at=1, switch_to="sam"))


# ------------------------------------------------------------------------------------------------
# checkpoints of models with --width (issue 16): the commands that load them build that width
# ------------------------------------------------------------------------------------------------
def test_checkpoint_of_a_width_8_resnet_loads_in_the_measuring_commands(tmp_path):
    from toymodels.torch.checkpoint import instantiate, model_source

    out = str(tmp_path / "w8")
    cfg = dict(TINY, task="sgd", model="preact-resnet18", width=8, epochs=1, sparsity_n=8, dtype="float32")
    res, net = train.run(train.TrainConfig(**cfg, out=out), progress=False, return_model=True)
    ck = os.path.join(out, "checkpoint.pt")
    # the width-8 network: its parameter count from build_model, not the default width 64 one
    n8 = sum(p.numel() for p in build_model("preact-resnet18", 10, 3, 32, width=8).parameters())
    assert res["n_params"] == n8 < sum(p.numel() for p in build_model("preact-resnet18", 10, 3, 32).parameters())
    src = model_source(ck, None, None, None, 0, "cpu")
    model = instantiate(src, 10, (3, 32, 32))
    assert sum(p.numel() for p in model.parameters()) == n8
    for (k, a), b in zip(model.state_dict().items(), net.state_dict().values()):
        assert torch.equal(a, b), k
    r = run_cli("toymodels.torch", ["sharpness", "--checkpoint", ck, "--kind", "avg-l2", "--n-examples", "8",
                                    "--n-samples", "2", "--device", "cpu", "--json"])
    assert r.rc == 0, r.err
    assert r.json["config"]["checkpoint"] == ck and math.isfinite(r.json["sharpness"])
    r = run_cli("toymodels.torch", ["curvature", "--checkpoint", ck, "--n-points", "8", "--batch-size", "8",
                                    "--max-iter", "3", "--device", "cpu", "--json"])
    assert r.rc == 0, r.err
    assert r.json["n_params"] == n8 and math.isfinite(r.json["eigen"]["eigenvalues"][0])
