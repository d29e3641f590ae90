"""Linearization error of App. 2.10.1 in the torch layer (toymodels.torch.linearization, train-at
--final-linearization): equal to the single-layer CNN's numba implementation on the same model, points and
δ (float64, 1e-10); the run's final keys are ‖δ‖₂ = ε·√(d − ⌈f·d⌉) and δ = 0 gives error 0 exactly."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from toymodels.cnn import metrics as nmet  # noqa: E402
from toymodels.cnn import model as cnn  # noqa: E402
from toymodels.torch import linearization as L  # noqa: E402
from toymodels.torch import models  # noqa: E402

EPS = 0.05


def _problem(seed=0, N=12, C=3, H=6, M=4, K=5):
    rng = np.random.default_rng(seed)
    p = cnn.init_params(C, H, H, M, K, seed=seed)
    p = cnn.CNNParams(p.Wc * 4, p.bc, p.U * 4, p.c)      # ReLU masks change within the ball: non-linear
    x = rng.uniform(0, 1, (N, C, H, H))
    y = rng.integers(0, K, N)
    return p, x, y


@pytest.mark.parametrize("start", ["fgsm", "random"])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_the_numba_cnn_on_the_same_model_and_draws(start, seed):
    p, x, y = _problem(seed)
    want = nmet.linearization_curve(p, x, y, EPS, L.FRACTIONS, start=start, seed=seed + 7)
    got = L.linearization_curve(models.cnn_from_numba(p), torch.from_numpy(x), torch.from_numpy(y), EPS,
                                L.FRACTIONS, start=start, seed=seed + 7, chunk=5)
    np.testing.assert_allclose(got["error"], want.errors, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got["l2"], want.l2_mean, rtol=1e-12)
    assert want.error_mean[0] > 10 * want.error_mean[-1] == 0.0      # a non-trivial case


def test_bad_arguments_are_config_errors():
    from toymodels.errors import ConfigError

    p, x, y = _problem()
    net, X, Y = models.cnn_from_numba(p), torch.from_numpy(x), torch.from_numpy(y)
    with pytest.raises(ConfigError, match="fractions"):
        L.linearization_curve(net, X, Y, EPS, (0.5, 1.5))
    with pytest.raises(ConfigError, match="start"):
        L.linearization_curve(net, X, Y, EPS, start="pgd")


def _run(*extra):
    return subprocess.run([sys.executable, "-m", "toymodels.torch", "train-at", "--dataset", "synthetic", "--n-train",
                           "64", "--n-test", "32", "--epochs", "1", "--batch-size", "32", "--eval-n", "8",
                           "--final-n", "16", "--final-pgd-steps", "2", "--eval-pgd-steps", "1", "--device", "cpu",
                           "--eps", "8/255", "--json", "--quiet", *extra], capture_output=True, text=True, timeout=300)


def test_train_at_reports_the_curve_keyed_by_l2_norm():
    p = _run("--final-linearization")
    assert p.returncode == 0, p.stderr
    final = json.loads(p.stdout)["final"]
    d = 3 * 32 * 32
    for start in ("fgsm", "random"):
        curve = final[f"linearization_{start}"]
        assert curve["0"] == 0.0 and all(math.isfinite(v) for v in curve.values())
    # random corners have no zero coordinate: ‖δ‖₂ = ε·√(d − ⌈f·d⌉) exactly, for every fraction f
    want = {f"{8 / 255 * math.sqrt(d - math.ceil(f * d - 1e-12)):.6g}" for f in L.FRACTIONS}
    assert set(final["linearization_random"]) == want


def test_only_train_at_takes_the_flag():
    p = subprocess.run([sys.executable, "-m", "toymodels.torch", "train-sam", "--final-linearization"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "final-linearization" in p.stderr
