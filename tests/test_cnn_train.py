"""Training loop of the single-layer CNN (toymodels.cnn.train): CO detector on hand-written histories,
schedule / λ / Adam against independent values, a tiny run that learns, the result contract and
reproducibility. Tiny sizes only (the whole file runs in a few seconds after numba's cache)."""
from __future__ import annotations

import math

import numpy as np
from helpers import strip_timings
import pytest

from toymodels.cnn import model
from toymodels.cnn.train import (HISTORY_KEYS, PHOTOS_LAMBDA, STREAMS, TrainConfig, _Adam, cyclic_lr, default_lambda,
                                 detect_co, resolve, train)
from toymodels.datasets import ImageData
from toymodels.errors import ConfigError
from toymodels.rng import stream

TINY = dict(n_eval=24, eval_pgd_steps=2, final_n=24, final_pgd_steps=2, final_restarts=2, batch=32)


def _hist(pgd, fgsm):
    return [{"epoch": t, "pgd_acc": p, "fgsm_acc": f} for t, (p, f) in enumerate(zip(pgd, fgsm))]


# ---------------------------------------------------------------------------------------------
# CO detector on synthetic histories written by hand
# ---------------------------------------------------------------------------------------------
def test_detect_co_finds_the_collapse_epoch():
    # Fig. 2.11-like: PGD accuracy builds up to 0.30, collapses at epoch 6 while FGSM jumps
    pgd = [0.08, 0.15, 0.22, 0.27, 0.29, 0.30, 0.04, 0.01, 0.00, 0.00]
    fgsm = [0.09, 0.18, 0.25, 0.30, 0.32, 0.33, 0.45, 0.60, 0.70, 0.72]
    assert detect_co(_hist(pgd, fgsm)) == 6


def test_detect_co_none_for_healthy_training():
    # GradAlign / PGD-like: accuracies fluctuate by a few points, FGSM stays close to PGD
    pgd = [0.08, 0.15, 0.22, 0.25, 0.24, 0.27, 0.26, 0.28, 0.29, 0.29]
    fgsm = [0.09, 0.18, 0.25, 0.28, 0.27, 0.30, 0.29, 0.31, 0.32, 0.33]
    assert detect_co(_hist(pgd, fgsm)) is None


def test_detect_co_needs_both_conditions():
    # PGD drop without an FGSM/PGD gap (plain loss of robustness): not CO
    assert detect_co(_hist([0.1, 0.3, 0.1, 0.05], [0.1, 0.32, 0.12, 0.08])) is None
    # a gap without a collapse: not CO
    assert detect_co(_hist([0.1, 0.3, 0.2, 0.25], [0.1, 0.32, 0.45, 0.50])) is None
    # a collapse by half but of only 3 points (within evaluation noise): not CO
    assert detect_co(_hist([0.02, 0.06, 0.03], [0.02, 0.06, 0.2])) is None
    # with patience 1 the first qualifying epoch is returned even if PGD accuracy recovers later;
    # by default (the collapse must last to the end) a collapse that recovers is not CO, and the
    # last epoch counts on its own (nothing follows it)
    h = _hist([0.1, 0.3, 0.1, 0.3, 0.0], [0.1, 0.3, 0.4, 0.3, 0.5])
    assert detect_co(h, patience=1) == 2
    assert detect_co(h) == 4
    # a wobble during the learning-rate ramp-up followed by a lasting collapse: CO at the lasting one
    pgd = [0.0, 0.16, 0.05, 0.27, 0.33, 0.12, 0.10, 0.01, 0.0]
    fgsm = [0.0, 0.18, 0.18, 0.30, 0.35, 0.40, 0.60, 0.80, 0.9]
    assert detect_co(_hist(pgd, fgsm), patience=1) == 2
    assert detect_co(_hist(pgd, fgsm)) == 5
    # patience 2 / 3: the collapse must hold for one / two more epochs
    h2 = _hist([0.0, 0.3, 0.1, 0.1, 0.2, 0.0], [0.0, 0.3, 0.5, 0.5, 0.5, 0.6])
    assert detect_co(h2, patience=2) == 2
    assert detect_co(h2, patience=3) == 5
    assert detect_co(h2) == 5
    # a collapse that never recovers, but a wobble of the FGSM gap: CO where both conditions first meet
    h3 = _hist([0.0, 0.3, 0.1, 0.05, 0.0], [0.0, 0.3, 0.15, 0.4, 0.6])
    assert detect_co(h3) == 3
    with pytest.raises(ConfigError, match="patience"):
        detect_co(h, patience=0)


def test_detect_co_boundaries_are_inclusive():
    # exactly half and exactly a 10-point gap count (thresholds are ≤ / ≥)
    assert detect_co(_hist([0.0, 0.4, 0.2], [0.0, 0.4, 0.3])) == 2
    assert detect_co(_hist([0.0, 0.4, 0.2001], [0.0, 0.4, 0.3])) is None


# ---------------------------------------------------------------------------------------------
# hyperparameters against thesis values / closed forms
# ---------------------------------------------------------------------------------------------
def test_default_lambda_matches_table_2_2():
    # thesis Table 2.2 (CIFAR-10 row), printed to two decimals
    table = {1: 0.03, 2: 0.04, 3: 0.05, 4: 0.06, 5: 0.08, 6: 0.11, 7: 0.15, 8: 0.20, 9: 0.27, 10: 0.36,
             11: 0.47, 12: 0.63, 13: 0.84, 14: 1.12, 15: 1.50, 16: 2.00}
    for e, lam in table.items():
        assert abs(default_lambda(e / 255) - lam) <= 0.005 + 1e-12, e


def test_default_lambda_svhn_row_and_photos():
    # thesis Table 2.2 (SVHN row), printed to two decimals
    svhn = {1: 1.66, 2: 1.76, 3: 1.86, 4: 1.98, 5: 2.10, 6: 2.22, 7: 2.36, 8: 2.50, 9: 2.65, 10: 2.81,
            11: 2.98, 12: 3.16, 13: 3.35, 14: 3.56, 15: 3.77, 16: 4.00}
    for e, lam in svhn.items():
        assert abs(default_lambda(e / 255, "svhn") - lam) <= 0.005 + 1e-12, e
    # datasets without their own row use the CIFAR-10 row; "default" resolves per dataset
    assert default_lambda(8 / 255, "strokes") == pytest.approx(0.2)
    assert resolve(TrainConfig(grad_align="default", eps=8 / 255), "cifar10").grad_align == pytest.approx(0.2)
    assert resolve(TrainConfig(grad_align="default", eps=8 / 255), "svhn").grad_align == pytest.approx(2.5)
    assert resolve(TrainConfig(grad_align="default"), "photos").grad_align == PHOTOS_LAMBDA


def test_cyclic_lr_is_the_triangle():
    E, lr = 30, 0.003
    assert cyclic_lr(0, E, lr) == 0 and cyclic_lr(E, E, lr) == 0
    assert cyclic_lr(12, E, lr) == pytest.approx(lr)
    assert cyclic_lr(6, E, lr) == pytest.approx(lr / 2)
    assert cyclic_lr(21, E, lr) == pytest.approx(lr / 2)


def test_adam_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(7)
    grads = rng.standard_normal((5, 7))
    lrs = [0.1, 0.05, 0.02, 0.2, 0.01]
    tp = torch.tensor(theta.copy(), requires_grad=True)
    opt = torch.optim.Adam([tp], lr=1.0)
    ours = _Adam(7)
    th = theta.copy()
    for g, lr in zip(grads, lrs):
        for grp in opt.param_groups:
            grp["lr"] = lr
        tp.grad = torch.tensor(g)
        opt.step()
        ours.step(th, g, lr)
    np.testing.assert_allclose(th, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_resolve_defaults_and_ranges():
    eps = 8 / 255
    assert resolve(TrainConfig(attack="fgsm", eps=eps)).alpha == pytest.approx(eps)
    assert resolve(TrainConfig(attack="fgsm-rs", eps=eps)).alpha == pytest.approx(1.25 * eps)
    assert resolve(TrainConfig(attack="pgd", eps=eps, pgd_steps=2)).alpha == pytest.approx(eps / 2)
    assert resolve(TrainConfig(attack="pgd", eps=eps, pgd_steps=10)).alpha == pytest.approx(eps / 5)
    assert resolve(TrainConfig(attack="none")).alpha == 0.0
    assert resolve(TrainConfig(grad_align="default", eps=eps)).grad_align == pytest.approx(0.2)
    for bad, field in ((dict(eps=0.0), "eps"), (dict(eps=-0.1), "eps"), (dict(eps=1.5), "eps"),
                       (dict(eps=math.nan), "eps"), (dict(attack="fgsm", alpha=2 * eps, eps=eps), "alpha"),
                       (dict(attack="fgsm-rs", alpha=2.1 * eps, eps=eps), "alpha"), (dict(attack="pgd", alpha=0.0), "alpha"),
                       (dict(pgd_steps=0), "pgd_steps"), (dict(filters=0), "filters"), (dict(epochs=0), "epochs"),
                       (dict(grad_align=-0.1), "grad_align"), (dict(grad_align="0.3"), "grad_align"),
                       (dict(attack="bim"), "attack"), (dict(attack="none", alpha=0.01), "alpha"),
                       (dict(seed=-1), "seed"), (dict(lr=math.inf), "lr"), (dict(grad_align_exact=1), "grad_align_exact"),
                       (dict(grad_align_exact=True), "grad_align_exact")):
        with pytest.raises(ConfigError) as err:
            resolve(TrainConfig(**bad))
        assert err.value.field == field, (bad, err.value)


def test_sizes_must_fit_the_data():
    """No silent cap: a batch larger than the training set, or evaluation subsets larger than the test
    set, are errors naming the field (in resolve with the sizes, and in train with the data)."""
    for kw, field in ((dict(batch=65), "batch"), (dict(n_eval=41), "n_eval"), (dict(final_n=41), "final_n")):
        with pytest.raises(ConfigError, match=field) as err:
            resolve(TrainConfig(**{**TINY, **kw}), n_train=64, n_test=40)
        assert err.value.field == field
        with pytest.raises(ConfigError) as err:
            train(_easy_data(n=64, n_test=40), TrainConfig(epochs=1, **{**TINY, **kw}))
        assert err.value.field == field
    assert resolve(TrainConfig(batch=64, n_eval=40, final_n=40), n_train=64, n_test=40).batch == 64


# ---------------------------------------------------------------------------------------------
# training runs (tiny)
# ---------------------------------------------------------------------------------------------
def _easy_data(seed=0, n=256, n_test=120, K=3, size=8):
    """K classes, each a fixed random ±0.2 pattern around grey plus N(0, 0.05²) pixel noise: linearly
    separable with a wide margin, so a few epochs of standard training must beat chance (1/K)."""
    rng = np.random.default_rng(seed)
    protos = 0.2 * rng.choice([-1.0, 1.0], size=(K, 3, size, size))

    def draw(m):
        y = rng.integers(0, K, m)
        x = np.clip(0.5 + protos[y] + 0.05 * rng.standard_normal((m, 3, size, size)), 0, 1)
        return x, y.astype(np.int64)

    xtr, ytr = draw(n)
    xte, yte = draw(n_test)
    return ImageData("easy", xtr, ytr, xte, yte, K)


def test_tiny_standard_training_beats_chance():
    data = _easy_data()
    res = train(data, TrainConfig(attack="none", epochs=3, lr=0.01, **TINY))
    acc = res.history[-1]["clean_acc"]
    # chance is 1/3; with 120 test points its s.e. is √(2/9/120) ≈ 0.043; demand chance + 5 s.e.
    assert acc > 1 / 3 + 5 * 0.043
    assert res.history[-1]["clean_loss"] < res.history[0]["clean_loss"]


@pytest.mark.parametrize("attack, lam", [("fgsm", 0.0), ("fgsm-rs", 0.0), ("pgd", 0.0), ("fgsm", 0.5)])
def test_train_result_contract(attack, lam):
    data = _easy_data(1, n=64, n_test=40)
    res = train(data, TrainConfig(attack=attack, eps=8 / 255, epochs=2, grad_align=lam, pgd_steps=2,
                                  filters=3, seed=4, **TINY))
    out = res.to_json()
    assert [h["epoch"] for h in out["history"]] == [0, 1, 2]
    for rec in out["history"] + [out["final"]]:
        for k in HISTORY_KEYS:
            assert k in rec and rec[k] is not None and math.isfinite(rec[k])
        assert 0 <= rec["clean_acc"] <= 1 and -1 <= rec["grad_alignment"] <= 1
        # PGD starts inside the ball and keeps the worst restart: never easier than clean on these points
    for rec in out["history"][1:]:
        assert rec["train_loss"] is not None
        assert (rec["grad_align_reg"] is not None) == (lam > 0)
    assert out["co_epoch"] is None or 1 <= out["co_epoch"] <= 2
    assert out["final"]["n_points"] == 24
    assert 0 <= out["culprit_filter"] < 3
    assert len(out["grad_alignment_without_filter"]) == 3
    assert out["grad_alignment_without_culprit"] == out["grad_alignment_without_filter"][out["culprit_filter"]]
    assert res.filters.shape == (3, 3, 3, 3, 3) and res.out_norms.shape == (3, 3)
    assert out["config"]["attack"] == attack and out["config"]["grad_align"] == lam
    # the last snapshot is the final parameters
    np.testing.assert_array_equal(res.filters[-1], res.params.Wc)


def test_zeroing_the_culprit_is_what_is_reported():
    # independent recomputation: zero the culprit filter by hand and compute alignment with torch-free
    # numpy cosines of the model's input gradients on the same points and noise
    from toymodels.cnn import model

    data = _easy_data(2, n=64, n_test=40)
    res = train(data, TrainConfig(attack="fgsm", epochs=1, filters=2, seed=1, **TINY))
    assert res.culprit_filter in (0, 1)
    growth = np.asarray(res.filter_growth)
    assert res.culprit_filter == int(np.argmax(growth))
    m = res.culprit_filter
    p = res.params.copy()
    p.Wc[m] = 0
    p.bc[m] = 0
    # with the filter zeroed its feature map is ReLU(0) = 0: logits ignore U's block of that filter
    x = data.x_test[:5]
    z0 = model.logits(p, x)
    p2 = p.copy()
    K = p2.U.shape[0]
    p2.U.reshape(K, 2, -1)[:, m] = 123.0
    np.testing.assert_allclose(model.logits(p2, x), z0, rtol=0, atol=1e-12)
    # the culprit-zeroed final record: clean accuracy of the zeroed net on the whole test set, and
    # a valid record of every key; zeroing changes the net, so its alignment is the one reported
    z = res.extra["final_without_culprit"]
    assert z["clean_acc"] == pytest.approx(model.accuracy(p, data.x_test, data.y_test), abs=1e-12)
    assert z["grad_alignment"] == pytest.approx(res.grad_alignment_without_culprit, abs=1e-12)
    for k in HISTORY_KEYS:
        assert math.isfinite(z[k])
    assert res.to_json()["final_without_culprit"] == z


def test_tiny_training_on_photo_crops():
    pytest.importorskip("skimage")
    from toymodels.datasets import load_images

    data = load_images("photos", n_train=64, n_test=32, seed=0)
    res = train(data, TrainConfig(attack="fgsm", eps=24 / 255, grad_align="default", epochs=1, **TINY))
    assert res.config["grad_align"] == PHOTOS_LAMBDA and not res.diverged
    assert res.params.U.shape == (8, 4 * 32 * 32)
    for k in HISTORY_KEYS:
        assert math.isfinite(res.final[k])


def test_named_streams():
    """The initialization is the stream (seed, "cnn/init") of toymodels.rng (torch's scheme), and the
    per-epoch evaluation points are drawn without replacement from (seed, "cnn/eval")."""
    data = _easy_data(3, n=64, n_test=40)
    res = train(data, TrainConfig(attack="none", epochs=1, seed=5, **TINY))
    C, H, W = data.shape
    p0 = model.init_params(C, H, W, 4, data.num_classes, seed=stream(5, STREAMS["init"]))
    for a, b in zip(res.init_params.arrays, p0.arrays):
        assert np.array_equal(a, b)
    assert STREAMS == {"init": "cnn/init", "batches": "cnn/batches", "noise": "cnn/noise", "eval": "cnn/eval",
                       "final": "cnn/final"}


def test_divergence_is_a_result():
    """A learning rate far too large: the run stops at the first non-finite step and reports it."""
    data = _easy_data(4, n=64, n_test=40)
    res = train(data, TrainConfig(attack="fgsm", epochs=2, lr=1e200, **TINY))
    assert res.diverged and res.final == {} and res.culprit_filter is None
    d = res.diverged_at
    assert d["step"] == (d["epoch"] - 1) * 2 + d["batch"] + 1 and d["step"] <= 3
    assert len(res.history) == d["epoch"]


def test_reproducible_with_seed():
    data = _easy_data(3, n=64, n_test=40)
    cfg = TrainConfig(attack="fgsm-rs", epochs=2, grad_align=0.3, seed=11, **TINY)
    a, b = train(data, cfg), train(data, cfg)
    # equal but for the per-epoch timings (epoch_wall_s, epoch_cpu_time_s)
    assert strip_timings(a.history) == strip_timings(b.history) and a.final == b.final
    np.testing.assert_array_equal(a.params.flat(), b.params.flat())
    c = train(data, TrainConfig(**{**cfg.as_dict(), "seed": 12}))
    assert not np.array_equal(a.params.flat(), c.params.flat())
