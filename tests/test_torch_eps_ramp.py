"""train-at --eps-ramp E (thesis Sec. 2.9, SVHN: "we linearly increase the perturbation radius from 0 to ε
during the first 5 epochs for all methods"): the training attack of step t (0-based) gets ε_t = s_t·ε and
α_t = s_t·α with s_t = min(1, (t + 1)/(E · steps per epoch)), written out here by hand; the evaluations keep
ε; other tasks refuse the flag (exact resume across the ramp: tests/test_torch_train.py)."""
import pytest

torch = pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402

from toymodels.torch import attacks, train  # noqa: E402

EPS = 8 / 255
#: 64 images in batches of 16: 4 steps per epoch; a ramp over 2 epochs reaches ε at step 7
CFG = dict(device="cpu", n_train=64, n_test=32, batch_size=16, epochs=3, eval_n=16, eval_pgd_steps=2, final_n=16,
           final_pgd_steps=2, filters=2, task="at", eps=EPS, eps_ramp=2)
SCALES = [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875] + [1.0] * 5


def _spy(monkeypatch, module, name, pick):
    seen, orig = [], getattr(module, name)

    def spy(*a, **kw):
        seen.append(pick(*a, **kw))
        return orig(*a, **kw)

    monkeypatch.setattr(module, name, spy)
    return seen


@pytest.mark.parametrize("attack, ratio", [("fgsm-rs", 1.25), ("fgsm", 1.0), ("n-fgsm", 1.0)])
def test_training_attack_radius_and_step_follow_the_ramp(monkeypatch, attack, ratio):
    steps = _spy(monkeypatch, train, "at_step", lambda cfg, *a, **kw: (cfg.eps, cfg.alpha))
    evals = _spy(monkeypatch, train, "_attack_sums", lambda cfg, *a, **kw: cfg.eps)
    res = train.run(train.TrainConfig(attack=attack, **CFG), progress=False)
    assert len(steps) == len(SCALES)
    for (eps_t, alpha_t), s in zip(steps, SCALES):
        assert eps_t == pytest.approx(s * EPS, rel=1e-15) and alpha_t == pytest.approx(ratio * s * EPS, rel=1e-15)
    assert evals and all(e == EPS for e in evals) and res["config"]["eps"] == EPS


def test_free_at_ball_follows_the_ramp(monkeypatch):
    seen = _spy(monkeypatch, attacks, "free_at_batch", lambda model, opt, x, y, delta, eps, *a, **kw: eps)
    train.run(train.TrainConfig(attack="free", free_replays=2, **CFG), progress=False)
    assert seen == pytest.approx([s * EPS for s in SCALES], rel=1e-15)


def test_without_a_ramp_nothing_changes():
    kw = {**CFG, "epochs": 1}
    a = train.run(train.TrainConfig(attack="fgsm-rs", **{**kw, "eps_ramp": 0}), progress=False)
    b = train.run(train.TrainConfig(attack="fgsm-rs", **{k: v for k, v in kw.items() if k != "eps_ramp"}),
                  progress=False)
    assert a["history"] == b["history"]


@pytest.mark.parametrize("argv, word", [(["train-sam", "--eps-ramp", "5"], "--eps-ramp"),
                                        (["train-at", "--eps-ramp", "-1"], "--eps-ramp")])
def test_bad_ramp_exits_2_with_one_line(argv, word):
    p = run_cli("toymodels.torch", argv + ["--device", "cpu", "--epochs", "1", "--n-train", "16", "--n-test", "8",
                                            "--batch-size", "8"])
    assert p.rc == 2 and word in p.err and len(p.err.strip().splitlines()) == 1
