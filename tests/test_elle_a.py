"""ELLE-A's adaptive λ (toymodels.elle_a) against a readable re-statement of the authors' rule
(lists, ``np.mean`` / ``np.std`` of every earlier error), its checkpoint state, and its use in the
numba CNN (λ = 0 for the first steps: bitwise FGSM training; the switched-on step equals ELLE's)."""
import math

import numpy as np
import pytest

from toymodels.elle_a import DECAY, MIN_HISTORY, SENSITIVITY, ElleA
from toymodels.errors import ConfigError


def _reference(errors, lam_max, decay=DECAY, s=SENSITIVITY):
    """The rule as the authors' code writes it: λ used at each step, starting from 0."""
    lam, hist, used = 0.0, [], []
    for e in errors:
        used.append(lam)
        if len(hist) > 2 and e > np.mean(hist) + s * np.std(hist):
            lam = lam_max
        else:
            lam *= decay
        hist.append(e)
    return used, lam


@pytest.mark.parametrize("seed", range(5))
def test_schedule_equals_the_list_based_rule(seed):
    rng = np.random.default_rng(seed)
    errs = rng.lognormal(0.0, 0.3, 400)
    errs[rng.choice(400, 12, replace=False)] *= rng.uniform(2, 6, 12)     # spikes that switch λ on
    ref_used, ref_last = _reference(errs, 7.0)
    s = ElleA(7.0)
    used = []
    for e in errs:
        used.append(s.lam)
        s.update(e)
    np.testing.assert_allclose(used, ref_used, rtol=1e-12, atol=0)
    assert s.lam == pytest.approx(ref_last, rel=1e-12)
    assert max(used) == 7.0 and s.n_on >= 1
    assert s.mean == pytest.approx(np.mean(errs), rel=1e-12) and s.std == pytest.approx(np.std(errs), rel=1e-10)


def test_no_switch_before_enough_history_and_geometric_decay():
    s = ElleA(3.0)
    for e in (1.0, 1.0, 100.0):          # a jump at the third step: only 2 earlier errors
        s.update(e)
    assert s.lam == 0.0 and s.n == MIN_HISTORY
    s.update(1e6)                          # 3 earlier errors: switched on
    assert s.lam == 3.0
    for k in range(1, 6):
        s.update(0.0)
        assert s.lam == pytest.approx(3.0 * DECAY ** k, rel=1e-15)


def test_state_dict_continues_exactly():
    rng = np.random.default_rng(1)
    errs = rng.exponential(1.0, 200)
    a = ElleA(2.0)
    for e in errs[:100]:
        a.update(e)
    b = ElleA(1.0)
    b.load_state_dict(a.state_dict())
    for e in errs[100:]:
        assert a.update(e) == b.update(e)
    assert a.state_dict() == b.state_dict()


@pytest.mark.parametrize("kw", [dict(lam_max=-1.0), dict(lam_max=math.nan), dict(lam_max=1.0, decay=1.5),
                                dict(lam_max=1.0, sensitivity=-0.1)])
def test_bad_arguments_name_the_field(kw):
    with pytest.raises(ConfigError):
        ElleA(**kw)


# ------------------------------------------------------------------------------------------------
# the numba CNN
# ------------------------------------------------------------------------------------------------
def _data():
    from toymodels.datasets import load_images

    return load_images("synthetic", None, n_train=128, n_test=40, seed=0)


def _kw(**kw):
    return dict(epochs=1, filters=2, n_eval=16, eval_pgd_steps=2, final_n=16, final_pgd_steps=2, final_restarts=1,
                batch=32, eps=8 / 255, **kw)


def test_elle_a_is_fgsm_while_lambda_is_zero():
    """4 steps (128 images, batch 32): λ is 0 at steps 0..MIN_HISTORY (it can switch on only after
    the step with MIN_HISTORY earlier errors), so the run is FGSM training bitwise — the ELLE noise it
    draws feeds only the error."""
    pytest.importorskip("numba")
    from toymodels.cnn.train import TrainConfig, train

    d = _data()
    a = train(d, TrainConfig(**_kw(attack="fgsm")))
    b = train(d, TrainConfig(**_kw(attack="fgsm", reg="elle-a", reg_lambda=50.0)))
    assert np.array_equal(a.params.flat(), b.params.flat())
    h = b.history[-1]
    assert h["reg_lambda_mean"] == 0.0 and h["reg_value"] > 0


def test_switched_on_step_is_the_elle_step():
    """A step with λ = λ_max equals ELLE's step with that λ (same streams, same Adam state)."""
    pytest.importorskip("numba")
    from toymodels.cnn import train as T
    from toymodels.cnn.model import CNNParams

    d = _data()
    x, y = d.x_train[:32], d.y_train[:32]
    cfg_e = T.resolve(T.TrainConfig(**_kw(attack="fgsm", reg="elle", reg_lambda=50.0)))
    cfg_a = T.resolve(T.TrainConfig(**_kw(attack="fgsm", reg="elle-a", reg_lambda=50.0)))
    outs = []
    for cfg, sched in ((cfg_e, None), (cfg_a, ElleA(50.0))):
        st = T._State.init(d, cfg)
        if sched is not None:
            sched.lam = 50.0
        T._step(st.params, st.theta, st.opt, x, y, cfg, np.random.default_rng(4), 1e-3, sched=sched)
        outs.append(st.theta.copy())
        assert isinstance(st.params, CNNParams)
    assert np.array_equal(outs[0], outs[1])
