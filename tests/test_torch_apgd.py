"""APGD / APGD-T (toymodels.torch.apgd) against torchattacks 3.5.1 (a port of the AutoAttack code),
the paper's checkpoint numbers, and invariants.

* Draw for draw: torchattacks seeds torch's global generator and draws each run's raw start t for the
  points it still attacks; the tests capture those t's (re-drawing them from the same generator state
  just before each run), hand them to ``apgd(noise=...)`` and require the *same* x_adv (float32,
  identical operations: bitwise here, asserted to 1e-6) — every step, momentum, checkpoint, halving and
  restart of the reference is then reproduced, not just its statistics.
* Monte Carlo: with our own random streams the robust accuracy of the 400 test points agrees with
  torchattacks' (seed 0) within 4.5 standard errors of the paired per-point difference.
* Monotone in restarts and in the number of target classes (true by construction: the first runs are
  the same computation on the same points; more *steps* is not monotone — the checkpoints move).
"""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from attack_models import EPS_L2, EPS_LINF, trained_cnn  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch.apgd import apgd, apgd_start_noise, apgd_t, checkpoints  # noqa: E402

TA_NORM = {"linf": "Linf", "l2": "L2"}
EPS = {"linf": EPS_LINF, "l2": EPS_L2}


def _robust(model, xa, y):
    with torch.no_grad():
        return model(xa).argmax(1) == y


def _paper_checkpoints(n_iter):
    """w_j = ⌈p_j N_iter⌉, p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06) (paper, §3.2);
    exact rational arithmetic in hundredths so that ⌈·⌉ is not fooled by rounding."""
    p_prev, p, out = 0, 22, []
    while p <= 100:
        out.append(-(-p * n_iter // 100))
        p_prev, p = p, p + max(p - p_prev - 3, 6)
    return out


def test_checkpoints_match_the_paper():
    # the paper's sequence for N_iter = 100: 0, 22, 41, 57, 70, 80, 87, 93, 99 (w₀ = 0 not listed)
    assert _paper_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    for n in (100, 200, 1000):      # N_iter multiple of 100: the code's integer rule is the paper's
        assert checkpoints(n) == _paper_checkpoints(n)
    # N = 50, the reference code's integers: first window ⌊11⌋, shrink ⌊1.5⌋ = 1, least ⌊3⌋ = 3:
    # windows 11, 10, 9, 8, 7 → 11, 21, 30, 38, 45 (next window 6 would end at 51 > 50)
    assert checkpoints(50) == [11, 21, 30, 38, 45]
    assert checkpoints(1) == [1]


def _capture_ta_starts(atk, x, norm):
    """Wrap ``atk.attack_single_run`` so that it records the raw start t each run draws (re-drawn from
    the same global-generator state just before the run), placed at the rows of x it attacks."""
    orig, starts = atk.attack_single_run, []

    def run(xs, ys):
        state = torch.get_rng_state()
        t = 2 * torch.rand(xs.shape) - 1 if norm == "linf" else torch.randn(xs.shape)
        torch.set_rng_state(state)
        rows = (xs.flatten(1)[:, None, :] == x.flatten(1)[None, :, :]).all(-1).float().argmax(1)
        full = torch.zeros_like(x)
        full[rows] = t
        starts.append(full)
        return orig(xs, ys)

    atk.attack_single_run = run
    return starts


def _noise(starts, runs, x):
    """(runs, *x.shape): the captured starts, zero rows for runs torchattacks skipped (nothing left)."""
    return torch.stack(starts + [torch.zeros_like(x)] * (runs - len(starts)))


@pytest.mark.parametrize("norm,loss", [("linf", "ce"), ("linf", "dlr"), ("l2", "ce"), ("l2", "dlr")])
def test_apgd_equals_torchattacks_draw_for_draw(norm, loss):
    ta = pytest.importorskip("torchattacks")
    model, x, y = trained_cnn()
    x, y = x[:48], y[:48]
    atk = ta.APGD(model, norm=TA_NORM[norm], eps=EPS[norm], steps=40, n_restarts=2, loss=loss, seed=0)
    starts = _capture_ta_starts(atk, x, norm)
    ref = atk(x, y)
    ours = apgd(model, x, y, norm=norm, eps=EPS[norm], steps=40, restarts=2, loss=loss,
                noise=_noise(starts, 2, x))
    assert len(starts) == 2
    assert torch.equal(_robust(model, ours, y), _robust(model, ref, y))
    assert (ours - ref).abs().max() <= 1e-6


def test_apgd_t_equals_torchattacks_draw_for_draw_linf():
    ta = pytest.importorskip("torchattacks")
    model, x, y = trained_cnn()
    x, y = x[:48], y[:48]
    # n_classes = 4 → torchattacks attacks the targets ranked 2, 3, 4 (its n_target_classes = n_classes − 1)
    atk = ta.APGDT(model, norm="Linf", eps=EPS_LINF, steps=40, n_restarts=1, seed=0, n_classes=4)
    starts = _capture_ta_starts(atk, x, "linf")
    ref = atk(x, y)
    ours = apgd_t(model, x, y, norm="linf", eps=EPS_LINF, steps=40, n_target_classes=3,
                  noise=_noise(starts, 3, x))
    assert torch.equal(_robust(model, ours, y), _robust(model, ref, y))
    assert (ours - ref).abs().max() <= 1e-6


def test_apgd_t_equals_torchattacks_draw_for_draw_l2_single_points():
    """torchattacks' APGDT ℓ₂ step uses the *first* point's step size for the whole batch (AutoAttack uses
    each point's); on batches of one point the two agree, so the ℓ₂ comparison runs point by point."""
    ta = pytest.importorskip("torchattacks")
    model, x, y = trained_cnn()
    for i in range(6):
        xi, yi = x[i:i + 1], y[i:i + 1]
        atk = ta.APGDT(model, norm="L2", eps=EPS_L2, steps=30, n_restarts=1, seed=0, n_classes=3)
        starts = _capture_ta_starts(atk, xi, "l2")
        ref = atk(xi, yi)
        ours = apgd_t(model, xi, yi, norm="l2", eps=EPS_L2, steps=30, n_target_classes=2,
                      noise=_noise(starts, 2, xi))
        assert (ours - ref).abs().max() <= 1e-6


def _paired_check(r_ours, r_ref, k=4.5):
    """|mean(d)| ≤ k·s.e.(mean d), d = per-point robust indicator difference (paired: same points)."""
    d = r_ours.double() - r_ref.double()
    n = d.numel()
    se = math.sqrt(float(d.var(unbiased=True)) / n) if n > 1 else 0.0
    assert abs(float(d.mean())) <= k * se + 1e-12, (float(r_ours.double().mean()), float(r_ref.double().mean()), se)


@pytest.mark.parametrize("norm,loss", [("linf", "ce"), ("l2", "dlr")])
def test_apgd_robust_accuracy_matches_torchattacks(norm, loss):
    """n = 400 points, one seed each (ours: stream seed 0; torchattacks: seed 0), 100 steps, 1 restart;
    tolerance 4.5 s.e. of the paired per-point difference."""
    ta = pytest.importorskip("torchattacks")
    model, x, y = trained_cnn()
    ours = apgd(model, x, y, norm=norm, eps=EPS[norm], steps=100, loss=loss, seed=0)
    ref = ta.APGD(model, norm=TA_NORM[norm], eps=EPS[norm], steps=100, n_restarts=1, loss=loss, seed=0)(x, y)
    _paired_check(_robust(model, ours, y), _robust(model, ref, y))


def test_apgd_t_robust_accuracy_matches_torchattacks_linf():
    """n = 400 points, 3 targets, 100 steps, one seed each; tolerance 4.5 s.e. of the paired difference."""
    ta = pytest.importorskip("torchattacks")
    model, x, y = trained_cnn()
    ours = apgd_t(model, x, y, norm="linf", eps=EPS_LINF, steps=100, n_target_classes=3, seed=0)
    ref = ta.APGDT(model, norm="Linf", eps=EPS_LINF, steps=100, n_restarts=1, seed=0, n_classes=4)(x, y)
    _paired_check(_robust(model, ours, y), _robust(model, ref, y))


# ---------------------------------------------------------------- invariants

@pytest.mark.parametrize("norm,loss,targeted", [("linf", "ce", False), ("l2", "dlr", False),
                                                 ("linf", "dlr", True), ("l2", "ce", True)])
def test_feasible_and_unbroken_points_come_back_clean(norm, loss, targeted):
    model, x, y = trained_cnn()
    x, y = x[:64], y[:64]
    eps = EPS[norm]
    xa = apgd(model, x, y, norm=norm, eps=eps, steps=12, loss=loss, targeted=targeted, n_target_classes=2,
              restarts=2, seed=5)
    d = (xa - x).flatten(1)
    assert xa.dtype == x.dtype and xa.shape == x.shape and not xa.requires_grad
    assert xa.min() >= 0 and xa.max() <= 1
    if norm == "linf":
        assert d.abs().max() <= eps + 1e-6
    else:
        assert d.norm(dim=1).max() <= eps * (1 + 1e-6)
    robust = _robust(model, xa, y)
    assert torch.equal(xa[robust], x[robust])             # AutoAttack returns x where it fails
    with torch.no_grad():
        clean_wrong = model(x).argmax(1) != y
    assert torch.equal(xa[clean_wrong], x[clean_wrong])   # misclassified points are not attacked
    assert (~robust & ~clean_wrong).any()                 # and some points were broken


def test_more_restarts_never_weaker():
    model, x, y = trained_cnn()
    x, y = x[:64], y[:64]
    a1 = apgd(model, x, y, norm="linf", eps=EPS_LINF / 2, steps=10, restarts=1, seed=3)
    a3 = apgd(model, x, y, norm="linf", eps=EPS_LINF / 2, steps=10, restarts=3, seed=3)
    r1, r3 = _robust(model, a1, y), _robust(model, a3, y)
    assert not (r3 & ~r1).any()
    assert torch.equal(a3[~r1], a1[~r1])  # run 0 is the same computation in both


def test_more_target_classes_never_weaker():
    model, x, y = trained_cnn()
    x, y = x[:64], y[:64]
    a1 = apgd_t(model, x, y, norm="l2", eps=EPS_L2 / 2, steps=10, n_target_classes=1, seed=3)
    a4 = apgd_t(model, x, y, norm="l2", eps=EPS_L2 / 2, steps=10, n_target_classes=4, seed=3)
    r1, r4 = _robust(model, a1, y), _robust(model, a4, y)
    assert not (r4 & ~r1).any()
    assert torch.equal(a4[~r1], a1[~r1])


def test_noise_is_the_drawn_start():
    model, x, y = trained_cnn()
    x, y = x[:16], y[:16]
    t = apgd_start_noise(x.shape, norm="l2", count=2, seed=7)
    a = apgd(model, x, y, norm="l2", eps=EPS_L2, steps=5, restarts=2, seed=7)
    b = apgd(model, x, y, norm="l2", eps=EPS_L2, steps=5, restarts=2, noise=t, seed=123)
    assert torch.equal(a, b)
    assert not torch.equal(t[0], t[1])


@pytest.mark.parametrize("kw,field", [({"eps": 0.0}, "eps"), ({"eps": -1.0}, "eps"), ({"norm": "l1"}, "norm"),
                                      ({"loss": "margin"}, "loss"), ({"steps": 0}, "steps"),
                                      ({"restarts": 0}, "restarts"), ({"rho": 1.5}, "rho"),
                                      ({"noise": torch.zeros(1, 2, 3)}, "noise"), ({"seed": -1}, "seed"),
                                      ({"targeted": True, "n_target_classes": 10}, "n_target_classes")])
def test_bad_arguments_raise_config_error(kw, field):
    model, x, y = trained_cnn()
    args = {"eps": EPS_LINF, **kw}
    with pytest.raises(ConfigError) as e:
        apgd(model, x[:4], y[:4], steps=args.pop("steps", 2), **args)
    assert e.value.field == field
