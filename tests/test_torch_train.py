"""Torch training loop and CLI: one tiny run per subcommand (payload content), exact resume, resume
errors, checkpoints interrupted mid-write, divergence, cross-field errors, schedules, feature sparsity vs
the numpy definition, DDP under torchrun (CPU). The CLI contract itself (--help, one JSON object, bad
values, --out) is tests/test_contract.py's."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch import train  # noqa: E402

TINY = ["--device", "cpu", "--n-train", "64", "--n-test", "32", "--batch-size", "16", "--epochs", "2",
        "--eval-n", "16", "--eval-pgd-steps", "2", "--final-n", "16", "--final-pgd-steps", "3",
        "--final-restarts", "2", "--filters", "2"]
TINY_CFG = dict(device="cpu", n_train=64, n_test=32, batch_size=16, epochs=2, eval_n=16, eval_pgd_steps=2,
                final_n=16, final_pgd_steps=3, final_restarts=1, filters=2)
#: the smallest runs, for the error paths
MINI = ["--device", "cpu", "--epochs", "1", "--n-train", "16", "--n-test", "8", "--batch-size", "8", "--filters", "1"]


@pytest.mark.parametrize("argv", [
    ["train-at", "--attack", "fgsm", "--grad-align", "0.2", "--eps", "8/255"],
    ["train-at", "--attack", "free", "--free-replays", "2"],
    ["train-sam", "--rho", "0.05", "--m", "8"],
    ["train-sgd", "--schedule", "warmup-decay"],
])
def test_cli_tiny_runs(argv):
    res = run_cli("toymodels.torch", argv + TINY + ["--json"]).json
    cfg = res["config"]
    assert res["version"] and res["device"] == "cpu" and cfg["epochs"] == 2 and not res["diverged"]
    assert [r["epoch"] for r in res["history"]] == [0, 1, 2]
    last = res["history"][-1]
    assert 0 <= last["clean_acc"] <= 1 and np.isfinite(last["train_loss"])
    if argv[0] == "train-at":
        assert abs(cfg["eps"] - 8 / 255) < 1e-15 and "co_epoch" in res
        for k in ("fgsm_acc", "pgd_acc", "grad_alignment", "cos_fgsm_pgd"):
            assert k in last and k in res["final"]
        # PGD (from FGSM's ball, more steps) finds at least as much loss as FGSM on average is an
        # attack property tested in test_torch_attacks; here only ranges
        assert -1 <= last["grad_alignment"] <= 1
    if argv[0] == "train-sam":
        assert cfg["m"] == 8 and np.isfinite(last["sharp_loss"])
    if argv[0] == "train-sgd":
        # at initialization some features are active; large steps may kill them all (coefficient 0)
        assert 0 < res["history"][0]["feature_sparsity"]["auto"] <= 1
        assert 0 <= last["feature_sparsity"]["auto"] <= 1
        assert cfg["sparsity_n"] == 64            # the default 256 capped at the 64 training images


@pytest.mark.parametrize("argv,flag", [
    (["train-at", "--alpha", "0.5"], "--alpha"),              # > ε
    (["train-at", "--attack", "free", "--grad-align", "0.2"], "--grad-align"),
    (["train-sam", "--m", "7"], "--m"),                        # does not divide the batch
    (["train-sgd", "--resume"], "--resume"),                   # no --out
    (["train-sgd", "--sparsity-layers", "nosuchlayer"], "--sparsity-layers"),
    (["train-sgd", "--batch-size", "32"], "--batch-size"),     # > --n-train 16
    (["train-sgd", "--eval-n", "9"], "--eval-n"),             # > --n-test 8
    (["train-sgd", "--sparsity-n", "17"], "--sparsity-n"),    # > --n-train 16
])
def test_cross_field_errors_exit_2_naming_the_flag(argv, flag):
    r = run_cli("toymodels.torch", [argv[0], *MINI, *argv[1:]])
    assert r.rc == 2 and len(r.err_lines) == 1 and flag in r.err and r.out == "", r.err


def test_resume_without_a_checkpoint_is_an_error_unless_asked(tmp_path):
    """--resume on a folder without checkpoint.pt used to start from scratch without a word."""
    r = run_cli("toymodels.torch", ["train-sgd", *MINI, "--resume", "--out", tmp_path, "--json"])
    assert r.rc == 2 and len(r.err_lines) == 1 and "--resume" in r.err and str(tmp_path) in r.err, r.err
    assert not (tmp_path / "checkpoint.pt").exists()
    r = run_cli("toymodels.torch", ["train-sgd", *MINI, "--resume-if-present", "--out", tmp_path, "--json"])
    assert r.rc == 0 and r.json["config"]["resume"] == "if-present"
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "result.json").exists()
    # now there is one: --resume continues it (nothing left to train: the same history)
    again = run_cli("toymodels.torch", ["train-sgd", *MINI, "--resume", "--out", tmp_path, "--json"]).json
    assert again["history"] == r.json["history"]


def test_interrupted_checkpoint_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """Ctrl-C while torch.save writes the first checkpoint: no checkpoint, no temporary file, and a
    later --resume says so instead of silently starting over."""
    real_save = torch.save

    def save_half_then_interrupt(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", save_half_then_interrupt)
    r = run_cli("toymodels.torch", ["train-sgd", *MINI, "--out", tmp_path, "--json"])
    assert r.rc == 130 and len(r.err_lines) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.setattr(torch, "save", real_save)
    r = run_cli("toymodels.torch", ["train-sgd", *MINI, "--out", tmp_path, "--resume"])
    assert r.rc == 2 and "--resume" in r.err


def test_sigterm_stops_the_run_like_ctrl_c(tmp_path):
    """A killed job (SIGTERM, also what torchrun sends its workers) exits 130 with one line, leaves no
    temporary file and an intact checkpoint."""
    import signal
    import time

    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "toymodels.torch", "train-sgd", *MINI, "--epochs", "100000",
                          "--out", str(tmp_path), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    deadline = time.time() + 180
    while not (tmp_path / "checkpoint.pt").exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and len(err.strip().splitlines()) == 1 and "interrupted" in err, err[-2000:]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch"] >= 1


def test_corrupt_checkpoint_is_a_resume_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    r = run_cli("toymodels.torch", ["train-sgd", *MINI, "--out", tmp_path, "--resume"])
    assert r.rc == 2 and len(r.err_lines) == 1 and "--resume" in r.err and "checkpoint.pt" in r.err


@pytest.mark.parametrize("kw", [
    dict(task="at", attack="fgsm-rs", grad_align=0.3),          # noise RNG + Adam state
    dict(task="at", attack="free", free_replays=2, optimizer="sgd", lr=0.05),   # persistent δ, momentum
    dict(task="sam", m=8),
    dict(task="at", attack="fgsm", reg="elle-a", reg_lambda=50.0),   # ELLE-A's λ schedule state
    dict(task="at", attack="fgsm-rs", eps_ramp=2),                   # ε ramp across the checkpoint
])
def test_resume_reproduces_uninterrupted_run(tmp_path, interrupted_after_checkpoint, kw):
    cfg = train.TrainConfig(**TINY_CFG, **kw)
    a = train.run(train.TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "a")}), progress=False)
    out_b = str(tmp_path / "b")
    with interrupted_after_checkpoint():
        train.run(train.TrainConfig(**{**cfg.__dict__, "out": out_b}), progress=False)
    assert torch.load(os.path.join(out_b, "checkpoint.pt"), weights_only=False)["epoch"] == 1
    b = train.run(train.TrainConfig(**{**cfg.__dict__, "out": out_b, "resume": True}), progress=False)
    assert a["history"] == b["history"] and a["final"] == b["final"]
    sa = torch.load(os.path.join(tmp_path / "a", "checkpoint.pt"), weights_only=False)
    sb = torch.load(os.path.join(out_b, "checkpoint.pt"), weights_only=False)
    assert sa["epoch"] == sb["epoch"] == 2
    for k, v in sa["model_state"].items():
        assert torch.equal(v, sb["model_state"][k]), k
    assert set(sa) >= {"model_state", "optimizer_state", "epoch", "rng_states", "history", "config"}
    assert sorted(os.listdir(out_b)) == ["checkpoint.pt"]        # result.json is the CLI's
    with pytest.raises(ConfigError, match="^resume .*seed"):     # a checkpoint resumes only its own run
        train.run(train.TrainConfig(**{**cfg.__dict__, "out": out_b, "resume": True, "seed": 5}), progress=False)


def test_divergence_is_reported_with_its_step():
    res = train.run(train.TrainConfig(**{**TINY_CFG, "task": "sgd", "lr": 1e20, "schedule": "constant"}),
                    progress=False)
    assert res["diverged"] and res["final"] is None
    d = res["diverged_at"]
    assert d["epoch"] == 1 and 0 <= d["step"] < res["steps_per_epoch"]


def test_schedules_by_hand():
    spe, E, lr = 10, 4, 0.2
    base = dict(epochs=E, lr=lr, decay_at=(0.5, 0.75), decay_factor=0.1, warmup_frac=0.1)
    T = spe * E
    t = np.arange(T)
    warm = train.lr_schedule(train.TrainConfig(schedule="warmup-decay", **base), spe)
    W = 4
    expect = lr * np.where(t < W, (t + 1) / W, 1.0) * np.where(t >= 20, 0.1, 1.0) * np.where(t >= 30, 0.1, 1.0)
    np.testing.assert_allclose(warm, expect, rtol=1e-12)
    ex = train.lr_schedule(train.TrainConfig(schedule="warmup-decay", warmup="exponential", warmup_ratio=1e-3,
                                             **base), spe)
    assert abs(ex[0] - lr * 1e-3) < 1e-15 and abs(ex[W - 1] - lr) < 1e-15
    np.testing.assert_allclose(ex[1:W] / ex[:W - 1], 1e3 ** (1 / (W - 1)), rtol=1e-12)  # geometric
    cyc = train.lr_schedule(train.TrainConfig(schedule="cyclic", **base), spe)
    frac = (t + 1) / spe                        # fractional epoch after each step
    expect = np.where(frac <= 0.4 * E, lr * frac / (0.4 * E), lr * (E - frac) / (0.6 * E))
    np.testing.assert_allclose(cyc, expect, atol=1e-15)


def test_feature_sparsity_matches_numpy_definition():
    from toymodels.relu.metrics import feature_sparsity as np_fs
    from toymodels.torch.sparsity import feature_sparsity

    rng = np.random.default_rng(0)
    for trial in range(5):
        A = np.maximum(rng.standard_normal((40, 30)), 0)
        A[:, 3] = 2 * A[:, 5] + 1e-3 * rng.standard_normal(40).clip(0)   # nearly collinear: counted once
        A[:, 7] = 0                                                       # dead neuron
        A[:, 9] = 1.5                                                     # constant neuron
        A[:, 11] = A[:, 12]                                               # duplicate
        for thr in (0.95, 0.5):
            assert abs(feature_sparsity(torch.from_numpy(A), thr) - np_fs(A, thr)) < 1e-12


def test_sparsity_hooks_and_subsampling():
    from toymodels.torch.models import build_model
    from toymodels.torch.sparsity import collect_activations, feature_sparsity_at

    torch.manual_seed(0)
    net = build_model("cnn", 3, 2, 6, filters=3).eval()
    x = torch.rand(10, 2, 6, 6)
    acts = collect_activations(net, x, ("auto", "1", "0:in"), max_neurons=20)
    h = torch.relu(net[0](x)).flatten(1)            # the ReLU output = the input of the last Linear
    assert acts["auto"].shape == acts["1"].shape == (10, 20) and acts["0:in"].shape == (10, 20)
    # subsampling keeps whole columns of the full activation matrix
    for j in range(20):
        assert any(torch.equal(acts["auto"][:, j], h[:, k]) for k in range(h.shape[1]))
    assert torch.equal(collect_activations(net, x, ("1",))["1"], h)
    assert torch.equal(collect_activations(net, x, ("0:in",))["0:in"], x.flatten(1))
    assert torch.equal(collect_activations(net, x, ("0:relu",))["0:relu"], h)
    # layer names ignore the Normalize wrapper: "1" is the CNN's ReLU with and without normalization
    torch.manual_seed(0)
    wrapped = build_model("cnn", 3, 2, 6, filters=3, normalize=((0.5, 0.5), (0.25, 0.25))).eval()
    hw = torch.relu(wrapped[1][0]((x - 0.5) / 0.25)).flatten(1)
    assert torch.allclose(collect_activations(wrapped, x, ("1",))["1"], hw)
    fs = feature_sparsity_at(net, x, ("1",))
    assert 0 < fs["1"] <= 1


@pytest.mark.skipif(shutil.which("torchrun") is None and
                    not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")),
                    reason="torchrun not available")
def test_ddp_two_processes_equal_one_process(tmp_path):
    """Without BatchNorm, 2 processes × 8 examples per step (DDP gradient averaging, sharded
    permutation, all-reduced metrics) must reproduce 1 process × 16 examples: same examples per step,
    mean of equal-size shard means = the batch mean. float64, so only summation order differs."""
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    opts = ["--device", "cpu", "--n-train", "64", "--n-test", "32", "--batch-size", "16", "--epochs", "2",
            "--eval-n", "16", "--sparsity-n", "32", "--dtype", "float64", "--filters", "2"]
    args = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "toymodels.torch", "train-sgd", *opts,
            "--json", "--out", str(tmp_path)]
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["world_size"] == 2 and not res["diverged"]
    assert os.path.exists(tmp_path / "checkpoint.pt") and os.path.exists(tmp_path / "result.json")
    one = train.run(train.TrainConfig(task="sgd", device="cpu", n_train=64, n_test=32, batch_size=16, epochs=2,
                                      eval_n=16, sparsity_n=32, dtype="float64", filters=2), progress=False)
    assert len(one["history"]) == len(res["history"]) == 3
    for r1, r2 in zip(one["history"], res["history"]):
        for k, v in r1.items():
            if isinstance(v, float):
                assert abs(v - r2[k]) < 1e-9, (k, v, r2[k])
            else:
                assert v == r2[k] or k == "feature_sparsity" and abs(v["auto"] - r2[k]["auto"]) < 1e-9


@pytest.mark.skipif(shutil.which("torchrun") is None and
                    not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")),
                    reason="torchrun not available")
def test_ddp_resume_reproduces_uninterrupted_ddp_run(tmp_path):
    """2 processes, FGSM-RS (each rank draws its own random starts): 2 epochs straight vs 1 epoch +
    --resume for the second must give the same history — each rank must get its own noise stream back
    (with rank 0's state on every rank, epoch 2 differs). Constant schedule: the cyclic one depends on the
    total number of epochs, which is what the two invocations of the interrupted run differ in."""
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    opts = ["--device", "cpu", "--n-train", "64", "--n-test", "32", "--batch-size", "16", "--eval-n", "16",
            "--dtype", "float64", "--filters", "2", "--attack", "fgsm-rs", "--schedule", "constant", "--json"]

    def run(out, epochs, *extra):
        args = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "toymodels.torch", "train-at", *opts,
                "--epochs", str(epochs), "--out", str(out), *extra]
        p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=240)
        assert p.returncode == 0, p.stderr[-2000:]
        return json.loads(p.stdout.strip().splitlines()[-1])

    straight = run(tmp_path / "a", 2)
    run(tmp_path / "b", 1)
    resumed = run(tmp_path / "b", 2, "--resume")
    assert resumed["world_size"] == 2
    assert resumed["history"] == straight["history"]
    assert resumed["final"] == straight["final"]


def test_sharp_loss_evaluation_leaves_the_weights_bitwise_unchanged():
    """The per-epoch SAM evaluation perturbs w by e and must put back exactly w (w + e − e ≠ w in float32:
    before the fix it moved the weights by a rounding step every epoch)."""
    from toymodels.torch.train import _sharp_loss_sum

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    before = [p.detach().clone() for p in net.parameters()]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 3, 2, 2, generator=g), torch.randint(0, 3, (16,), generator=g)
    total = _sharp_loss_sum(net, x, y, 0.37, 4, True)
    assert total > 0
    for a, b in zip(before, net.parameters()):
        assert torch.equal(a, b)
