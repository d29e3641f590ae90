"""Step-size schedules and the sparse-regression generator."""
import numpy as np
import pytest

from toymodels.errors import ConfigError
from toymodels.datasets import load_regression, make_sparse_regression
from toymodels.schedules import make_schedule


def test_constant_and_step_decay():
    np.testing.assert_array_equal(make_schedule(0.5, 4), [0.5] * 4)
    s = make_schedule(1.0, 10, "step", decay_at=(0.5, 0.8), factor=0.1)
    np.testing.assert_allclose(s, [1] * 5 + [0.1] * 3 + [0.01] * 2)


def test_warmups():
    lin = make_schedule(2.0, 6, "linear-warmup", warmup_steps=4)
    np.testing.assert_allclose(lin, [0.5, 1.0, 1.5, 2.0, 2.0, 2.0])
    ex = make_schedule(1.0, 5, "exp-warmup", warmup_steps=3, warmup_ratio=0.01)
    np.testing.assert_allclose(ex, [0.01, 0.1, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("kw", [dict(kind="cosine"), dict(kind="step", decay_at=(1.0,)),
                                dict(kind="linear-warmup", warmup_steps=0), dict(kind="exp-warmup",
                                                                                 warmup_steps=2, warmup_ratio=0)])
def test_bad_schedules(kw):
    with pytest.raises(ConfigError):
        make_schedule(1.0, 10, **kw)


def test_sparse_regression_generator():
    d = make_sparse_regression(n=7, d=11, k=4, n_test=5, noise=0.0, seed=2)
    assert d.X.shape == (7, 11) and d.X_test.shape == (5, 11)
    assert np.count_nonzero(d.beta_star) == 4 and set(np.abs(d.beta_star[d.beta_star != 0])) == {1.0}
    np.testing.assert_allclose(d.y, d.X @ d.beta_star)
    d2 = make_sparse_regression(n=7, d=11, k=4, n_test=5, noise=0.0, seed=2)
    np.testing.assert_array_equal(d.X, d2.X)
    noisy = make_sparse_regression(n=2000, d=3, k=1, n_test=5, noise=0.5, seed=0)
    resid = noisy.y - noisy.X @ noisy.beta_star
    # sample std of 2000 N(0, 0.25) draws: s.e. of the std ≈ 0.5/√4000 ≈ 0.008; 5 s.e. tolerance
    assert abs(resid.std() - 0.5) < 0.04
    np.testing.assert_allclose(noisy.y_test, noisy.X_test @ noisy.beta_star)  # test labels noiseless
    with pytest.raises(ConfigError):
        make_sparse_regression(n=5, d=3, k=4)


def test_load_regression_roundtrip(tmp_path):
    d = make_sparse_regression(5, 4, 2, 3, seed=0)
    f = tmp_path / "x.npz"
    np.savez(f, X=d.X, y=d.y, X_test=d.X_test, y_test=d.y_test, beta_star=d.beta_star)
    e = load_regression(f)
    np.testing.assert_array_equal(e.X, d.X)
    np.testing.assert_array_equal(e.beta_star, d.beta_star)
    np.savez(f, X=d.X, y=d.y, X_test=d.X_test, y_test=d.y_test, beta_star=np.ones(3))
    with pytest.raises(ConfigError, match="beta_star"):
        load_regression(f)
