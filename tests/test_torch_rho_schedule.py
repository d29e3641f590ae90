"""``rho_schedule="lr"`` (``--rho-schedule lr``, thesis Fig. 5.21): the SAM ascent radius follows the
learning-rate schedule, ρ_t = ρ · γ_t / γ_peak. Checked by recording, at every SAM ascent, the learning
rate of the step and the length of the perturbation actually applied (‖e_t‖ = ρ_t for the normalized
ascent), in float64 on the tiny single-layer CNN; the expected ρ_t are written out by hand. ``constant``
is standard SAM (ρ in every ascent, the same run bitwise as a follow-the-lr run under a constant lr);
resume across a decay is exact; bad values exit 2 with one line."""
import math

import pytest

torch = pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch import train  # noqa: E402
from toymodels.torch.config import resolve  # noqa: E402
from toymodels.torch.sam import SAM  # noqa: E402

#: 48 training images, batch 16: 3 steps per epoch; float64 throughout
TINY = dict(model="cnn", filters=1, n_train=48, n_test=8, batch_size=16, eval_n=4, final_n=4, device="cpu",
            dtype="float64", eval_pgd_steps=1, final_pgd_steps=1, lr=0.1, rho=0.05)
MINI = ["--device", "cpu", "--n-train", "32", "--n-test", "8", "--batch-size", "16", "--epochs", "2",
        "--eval-n", "4", "--final-n", "4", "--filters", "1"]


@pytest.fixture
def ascents(monkeypatch):
    """Every SAM ascent of the runs inside the test: (lr of the step, group ρ, ‖w + e − w‖)."""
    rec = []
    orig = SAM.first_step

    def spy(self, *a, **k):
        params = [p for g in self.param_groups for p in g["params"]]
        before = [p.detach().clone() for p in params]
        out = orig(self, *a, **k)
        norm = math.sqrt(sum(float(((p.detach() - b) ** 2).sum()) for p, b in zip(params, before)))
        rec.append((self.param_groups[0]["lr"], self.param_groups[0]["rho"], norm))
        return out

    monkeypatch.setattr(SAM, "first_step", spy)
    return rec


def _run(**kw):
    return train.run(train.TrainConfig(**{**TINY, **kw}), progress=False)


def test_rho_follows_the_step_schedule_in_every_ascent(ascents):
    """3 epochs × 3 steps = 9 updates, decay ×0.1 at 0.5·9 = 4.5 and 0.75·9 = 6.75: the learning rate
    (and ρ) decays from update ⌊4.5⌋ = 4 and again from ⌊6.75⌋ = 6."""
    _run(task="sam", epochs=3, schedule="step", decay_at=(0.5, 0.75), rho_schedule="lr")
    want = [0.05] * 4 + [0.005] * 2 + [0.0005] * 3
    assert len(ascents) == 9
    for (lr, rho, norm), w in zip(ascents, want):
        assert rho == pytest.approx(w, rel=1e-14) and norm == pytest.approx(w, rel=1e-9)   # the step taken
        assert lr == pytest.approx(0.1 * w / 0.05, rel=1e-14)


@pytest.mark.parametrize("schedule", ["warmup-decay", "cyclic"])
def test_rho_is_rho_times_lr_over_peak_lr_for_other_schedules(ascents, schedule):
    """Whatever the schedule: ρ_t = ρ · γ_t / max_s γ_s, with γ_t the learning rate the step used."""
    _run(task="sam", epochs=4, schedule=schedule, rho_schedule="lr")
    lrs = [a[0] for a in ascents]
    assert len(lrs) == 12 and len(set(lrs)) > 2
    for lr, rho, norm in ascents:
        assert rho == pytest.approx(0.05 * lr / max(lrs), rel=1e-14) and norm == pytest.approx(rho, rel=1e-9)


def test_erm_to_sam_switch_follows_the_schedule_too(ascents):
    """train-sgd with switch_to sam at epoch 2: ascents only in updates 3..8, with that update's ρ_t."""
    _run(task="sgd", epochs=3, schedule="step", decay_at=(0.5, 0.75), switch_at=2, switch_to="sam",
         rho_schedule="lr")
    want = [0.05] * 1 + [0.005] * 2 + [0.0005] * 3           # updates 3, 4-5, 6-8
    assert [round(r / w, 12) for (_, r, _), w in zip(ascents, want)] == [1.0] * 6 and len(ascents) == 6


def test_constant_is_standard_sam_and_lr_under_a_constant_lr_is_the_same_run_bitwise(ascents):
    a = _run(task="sam", epochs=2, schedule="step", decay_at=(0.5,))
    assert len(ascents) == 6 and all(r == 0.05 and n == pytest.approx(0.05, rel=1e-9) for _, r, n in ascents)
    assert a["config"]["rho_schedule"] == "constant"
    c = _run(task="sam", epochs=2, schedule="constant")
    b = _run(task="sam", epochs=2, schedule="constant", rho_schedule="lr")
    strip = lambda res: {k: v for k, v in res.items() if k not in ("runtime_s", "config")}   # noqa: E731
    assert strip(b) == strip(c)
    # and the schedule changes the run when the lr decays (this test can fail)
    d = _run(task="sam", epochs=2, schedule="step", decay_at=(0.5,), rho_schedule="lr")
    assert d["history"][-1] != a["history"][-1]


def test_resume_across_the_decay_is_bitwise(tmp_path, interrupted_after_checkpoint, ascents):
    """Stopped after epoch 1 (updates 0-2), resumed: the decays at updates 4 and 6 come after the resume."""
    cfg = dict(task="sam", epochs=3, schedule="step", decay_at=(0.5, 0.75), rho_schedule="lr")
    a = _run(**cfg, out=str(tmp_path / "a"))
    with interrupted_after_checkpoint():
        _run(**cfg, out=str(tmp_path / "b"))
    b = _run(**cfg, out=str(tmp_path / "b"), resume=True)
    assert a["history"] == b["history"] and a["final"] == b["final"]
    assert [r for _, r, _ in ascents[12:]] == [r for _, r, _ in ascents[3:9]]   # run b's updates 3..8


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="^rho_schedule "):
        resolve(train.TrainConfig(task="sam", rho_schedule="cosine"))
    with pytest.raises(ConfigError, match="^rho_schedule "):
        resolve(train.TrainConfig(task="sgd", rho_schedule="lr"))            # no SAM step without switch_to sam
    with pytest.raises(ConfigError, match="^rho_schedule "):
        resolve(train.TrainConfig(task="at", rho_schedule="lr"))
    resolve(train.TrainConfig(task="sgd", epochs=2, switch_at=2, switch_to="sam", rho_schedule="lr"))


@pytest.mark.parametrize("argv", [["train-sam", "--rho-schedule", "cosine"], ["train-sam", "--rho-schedule", ""],
                                  ["train-sgd", "--rho-schedule", "lr"]])
def test_bad_values_exit_2_with_one_line(argv):
    r = run_cli("toymodels.torch", [*argv, *MINI])
    assert r.rc == 2 and len(r.err_lines) == 1 and "--rho-schedule" in r.err and "Traceback" not in r.err, r.err
