"""train-at --pgd-init zero (thesis Sec. 2.9: PGD-AT "without random initialization"): the training attack
starts at δ₀ = 0 and draws nothing, so one at_step equals a step on x + PGD(δ₀ = 0) computed independently
(float64 twin of the single-layer CNN), and the attack's generator is left as it was."""
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from helpers import run_cli, small_cnn  # noqa: E402

from toymodels.torch import attacks  # noqa: E402
from toymodels.torch.models import cnn_from_numba  # noqa: E402
from toymodels.torch.train import TrainConfig, at_step  # noqa: E402

EPS, ALPHA, STEPS = 0.1, 0.025, 5


def _step(init: str, seed: int = 0):
    p, x, y = small_cnn(seed=seed, N=8, K=5, weight_scale=2.0)
    net = cnn_from_numba(p)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    cfg = TrainConfig(task="at", attack="pgd", eps=EPS, alpha=ALPHA, pgd_steps=STEPS, pgd_init=init)
    gen = torch.Generator().manual_seed(11)
    seen = {}
    at_step(cfg, net, net, X, Y, gen, lambda loss: seen.setdefault("loss", float(loss.detach())),
            lambda: torch.autocast("cpu", enabled=False))
    return net, X, Y, gen, seen["loss"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zero_init_step_is_a_step_on_pgd_from_zero_and_draws_nothing(seed):
    net, X, Y, gen, loss = _step("zero", seed)
    d = attacks.pgd(net, X, Y, EPS, ALPHA, STEPS, random_start=False)
    with torch.no_grad():
        want = float(F.cross_entropy(net(X + d), Y))
    assert loss == pytest.approx(want, rel=1e-12, abs=1e-14)
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(11).get_state())


def test_random_init_draws_its_start_and_lands_elsewhere():
    _, _, _, gen_r, loss_r = _step("random")
    *_, loss_z = _step("zero")
    assert not torch.equal(gen_r.get_state(), torch.Generator().manual_seed(11).get_state())
    assert loss_r != loss_z


def test_bad_pgd_init_exits_2_with_one_line():
    p = run_cli("toymodels.torch", ["train-at", "--attack", "pgd", "--pgd-init", "corner"])
    assert p.rc == 2 and "--pgd-init" in p.err and len(p.err.strip().splitlines()) == 1
