"""FAB / FAB-T (toymodels.torch.fab): the projection subproblem against exact brute-force solutions, the
whole attack on linear models against the closed-form boundary distance, and FAB-T against torchattacks'
port of the AutoAttack code on a trained CNN."""
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch.fab import fab, lp_norm, project_hyperplane_box  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from attack_models import EPS_L2, EPS_LINF, trained_cnn  # noqa: E402


def _instances(seed, m, n, zero_frac=0.2, b_scale=1.5):
    """m random problems (t, w, b) in R^n: t ∈ [0, 1]^n, some w_i = 0, w·t − b ~ N(0, b_scale²), large
    enough that some hyperplanes miss the box."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, (m, n))
    w = rng.normal(size=(m, n)) * (rng.uniform(size=(m, n)) > zero_frac)
    b = (w * t).sum(1) + rng.normal(scale=b_scale, size=m)
    return t, w, b


def _project(t, w, b, norm):
    return project_hyperplane_box(torch.tensor(t), torch.tensor(w), torch.tensor(b), norm).numpy()


def _corner(t, w, b):
    """The box corner reached by moving every coordinate with w_i ≠ 0 as far as the box allows towards the
    hyperplane (the convention when the hyperplane misses the box)."""
    side = 1.0 if (w * t).sum() - b >= 0 else -1.0
    ws = side * w
    return np.where(ws > 0, -t, np.where(ws < 0, 1 - t, 0.0))


def test_linf_projection_matches_linear_program():
    """min ‖d‖∞ s.t. w·(t+d) = b, 0 ≤ t+d ≤ 1 as an LP in (d, λ) (scipy linprog, HiGHS): same optimal value
    to 1e-8, our d feasible; where the LP is infeasible, d is the full move to the box corner. 200 problems."""
    linprog = pytest.importorskip("scipy.optimize").linprog
    t, w, b = _instances(0, 200, 6)
    d = _project(t, w, b, "linf")
    n_feasible = 0
    for i in range(len(b)):
        n = t.shape[1]
        a_ub = np.block([[np.eye(n), -np.ones((n, 1))], [-np.eye(n), -np.ones((n, 1))]])   # |d_j| ≤ λ
        res = linprog(np.r_[np.zeros(n), 1.0], A_ub=a_ub, b_ub=np.zeros(2 * n),
                      A_eq=np.r_[w[i], 0.0][None], b_eq=[b[i] - w[i] @ t[i]],
                      bounds=[(-t[i, j], 1 - t[i, j]) for j in range(n)] + [(0, None)], method="highs")
        if res.status == 2:
            np.testing.assert_allclose(d[i], _corner(t[i], w[i], b[i]), atol=1e-12)
            continue
        assert res.status == 0
        n_feasible += 1
        assert abs(np.abs(d[i]).max() - res.fun) < 1e-8
        assert abs(w[i] @ (t[i] + d[i]) - b[i]) < 1e-9
        assert np.all(t[i] + d[i] >= -1e-12) and np.all(t[i] + d[i] <= 1 + 1e-12)
    assert 50 < n_feasible < 200    # both cases exercised


def _l2_brute_force(t, w, b):
    """Exact min ‖d‖₂ s.t. w·(t+d) = b, t+d ∈ [0,1]^n by enumerating the 3^n active sets: coordinates at the
    lower bound (d = −t), at the upper bound (d = 1 − t), or free, where stationarity gives d_F = −μ w_F and μ
    follows from the equality. The smallest feasible candidate is the optimum (None: infeasible)."""
    best = None
    for sets in itertools.product((0, 1, 2), repeat=len(t)):
        s = np.array(sets)
        d = np.where(s == 0, -t, 1 - t)
        free = s == 2
        if not (free & (w != 0)).any():
            continue
        fixed = np.where(free, 0.0, d)
        mu = -(b - w @ t - w @ fixed) / (w[free] @ w[free])
        d = np.where(free, -mu * w, fixed)
        if np.all(t + d >= -1e-12) and np.all(t + d <= 1 + 1e-12) and abs(w @ (t + d) - b) < 1e-9:
            if best is None or d @ d < best @ best - 1e-15:
                best = d
    return best


def test_l2_projection_matches_brute_force():
    """ℓ₂ projection onto hyperplane ∩ box vs the exact active-set enumeration (unique optimum: strictly
    convex), to 1e-9 per coordinate; infeasible problems give the full move. 150 problems, n = 5."""
    t, w, b = _instances(1, 150, 5)
    d = _project(t, w, b, "l2")
    n_feasible = 0
    for i in range(len(b)):
        ref = _l2_brute_force(t[i], w[i], b[i])
        if ref is None:
            np.testing.assert_allclose(d[i], _corner(t[i], w[i], b[i]), atol=1e-12)
        else:
            n_feasible += 1
            np.testing.assert_allclose(d[i], ref, atol=1e-9)
    assert 50 < n_feasible < 150


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_matches_torchattacks(norm):
    """Same d as torchattacks' projection_linf / projection_l2 (= AutoAttack's) on 100 problems in R^3072
    (the CIFAR input size; zeros in w, both feasible and infeasible problems), to 1e-10 in float64."""
    fab_ta = pytest.importorskip("torchattacks.attacks.fab")
    ref = fab_ta.projection_linf if norm == "linf" else fab_ta.projection_l2
    # the hyperplane misses the box when |w·t − b| > Σ|w_i|ρ_i ≈ 3072 · 0.8 · 0.8 · 0.5 ≈ 980
    t, w, b = (torch.tensor(a) for a in _instances(2, 100, 3072, b_scale=1500.0))
    d = project_hyperplane_box(t, w, b, norm)
    torch.testing.assert_close(d, ref(t, w.clone(), b.clone()), atol=1e-10, rtol=0)
    on_plane = ((w * (t + d)).sum(1) - b).abs() < 1e-8
    assert 10 < on_plane.sum() < 90    # both feasible and infeasible problems occur


def _scalar_fab(alpha_max, eta, beta, steps):
    """FAB on a binary linear classifier away from the box is one-dimensional: every iterate is
    x₀ + s d*, d* the minimal-norm step to the boundary (s = 1 on it). From the update rule: the projections
    are δ = (1 − s) d* and δ₀ = d*, α = clip(|1 − s| / (|1 − s| + 1), 0, α_max),
    s ← (1 − α)(s + η(1 − s)) + α η; if s > 1 (misclassified) record s, then s ← β s.
    Returns the smallest recorded s (the FAB distance divided by the true one)."""
    s, best = 0.0, np.inf
    for _ in range(steps):
        a = min(abs(1 - s) / (abs(1 - s) + 1), alpha_max)
        s = (1 - a) * (s + eta * (1 - s)) + a * eta
        if s > 1:
            best, s = min(best, s), beta * s
    return best


def _linear_binary(seed):
    """(model, x, y, v, e): z = Wx + c on flattened 3×4×4 inputs (float64), W ~ N(0, 1), c placing the
    boundary v·x + e = 0 (v = W₁ − W₀, e = c₁ − c₀) through the centre of the box; 64 points
    x ~ U[0.3, 0.7]^48 labelled by the model."""
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(48, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(2, 48, generator=g, dtype=torch.float64))
        lin.bias.copy_(torch.tensor([0.0, -0.5 * float((lin.weight[1] - lin.weight[0]).sum())]))
    model = torch.nn.Sequential(torch.nn.Flatten(), lin)
    x = 0.3 + 0.4 * torch.rand(64, 3, 4, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y, lin.weight[1] - lin.weight[0], lin.bias[1] - lin.bias[0]


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("targeted", [True, False])
@pytest.mark.parametrize("params", [(0.1, 1.05, 0.9), (0.5, 1.2, 0.7)])
def test_linear_model_distance_is_closed_form(norm, targeted, params):
    """A binary linear classifier (:func:`_linear_binary`), 64 points: the minimal ℓp distance to the
    boundary is |v·x + e| / ‖v‖_q (v = W₁ − W₀, e = c₁ − c₀, q dual to p; the box is not active at these
    distances). FAB does not return exactly that distance: its overshoot η > 1 and backward step β < 1
    settle on a fixed point just outside the boundary, 1.0052× for the defaults. The scalar recursion
    (:func:`_scalar_fab`) predicts the factor; FAB's ‖x_adv − x‖_p must equal factor · distance to 1e-6
    relative (float64), with x_adv misclassified."""
    alpha_max, eta, beta = params
    model, x, y, v, e = _linear_binary(0)
    with torch.no_grad():
        dual = v.abs().sum() if norm == "linf" else v.norm()
        dist = (x.reshape(64, -1) @ v + e).abs() / dual
        # the minimal step moves coordinate i by dist (ℓ∞) or dist·|v_i|/‖v‖₂ (ℓ₂); x ∈ [0.3, 0.7]
        move = dist.max() * (1.0 if norm == "linf" else v.abs().max() / v.norm())
    assert eta * move < 0.3    # so FAB's overshooting steps never reach the box
    x_adv = fab(model, x, y, norm=norm, eps=10.0, steps=30, targeted=targeted, n_target_classes=1,
                alpha_max=alpha_max, eta=eta, beta=beta)
    factor = _scalar_fab(alpha_max, eta, beta, 30)
    assert 1.0 < factor < eta
    torch.testing.assert_close(lp_norm(x_adv - x, norm), factor * dist, rtol=1e-6, atol=0)
    assert (model(x_adv).argmax(1) != y).all()


def test_linear_model_eps_cuts_off():
    """Points whose closest adversarial found lies beyond ε are returned unchanged: on the linear model
    (ℓ₂, 64 points) exactly the points with factor·dist ≤ ε move, ε halfway between the 32nd and 33rd
    smallest factor·dist."""
    model, x, y, v, e = _linear_binary(1)
    with torch.no_grad():
        found = _scalar_fab(0.1, 1.05, 0.9, 20) * (x.reshape(64, -1) @ v + e).abs() / v.norm()
    srt = found.sort().values
    eps = float(srt[31] + srt[32]) / 2
    x_adv = fab(model, x, y, norm="l2", eps=eps, steps=20)
    moved = lp_norm(x_adv - x, "l2") > 0
    assert torch.equal(moved, found <= eps)
    assert (model(x_adv[moved]).argmax(1) != y[moved]).all()


def _robust(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


@pytest.mark.parametrize("norm, eps", [("linf", EPS_LINF), ("l2", EPS_L2)])
def test_fab_t_matches_torchattacks_on_trained_cnn(norm, eps):
    """FAB-T vs ``torchattacks.FAB(model, norm, eps, steps, n_classes=4, multi_targeted=True, n_restarts=1,
    seed=0)`` (3 targets) on the trained CNN, 100 test points, 12 steps (budget cut to keep the test fast).

    With one restart neither attack draws random numbers: both run the same deterministic iteration, so
    points can only disagree where float rounding (another summation order) is amplified near the boundary
    (measured: 0 of 400 points differ at 20 steps in ℓ∞ and ℓ₂). Treating each discordant point as a
    ±1/n contribution, the paired difference of robust accuracies has s.e. √(n_disc)/n; we require
    |Δ| ≤ 4·√max(n_disc, 1)/n and at most 5 % discordant points. Also checks feasibility of x_adv."""
    ta = pytest.importorskip("torchattacks")
    model, x, y = trained_cnn()
    x, y = x[:100], y[:100]
    ours = fab(model, x, y, norm=norm, eps=eps, steps=12, n_target_classes=3)
    ref = ta.FAB(model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, steps=12, n_classes=4,
                 multi_targeted=True, n_restarts=1, seed=0)(x, y)
    r_ours, r_ref = _robust(model, ours, y), _robust(model, ref, y)
    n, n_disc = len(y), int((r_ours != r_ref).sum())
    assert n_disc <= 0.05 * n
    assert abs(float(r_ours.float().mean() - r_ref.float().mean())) <= 4 * max(n_disc, 1) ** 0.5 / n
    clean = _robust(model, x, y)
    assert float(r_ours.float().mean()) < float(clean.float().mean())    # the attack breaks some points
    assert (lp_norm(ours - x, norm) <= eps * (1 + 1e-6)).all()
    assert ours.min() >= 0 and ours.max() <= 1
    assert torch.equal(ours[~clean], x[~clean])                          # misclassified: returned as x
    moved = lp_norm(ours - x, norm) > 0
    assert torch.equal(moved, clean & ~r_ours)                           # moved exactly where it broke


def test_untargeted_fab_matches_torchattacks_on_trained_cnn():
    """Untargeted FAB (K backward passes per step) vs ``torchattacks.FAB(..., multi_targeted=False)``,
    ℓ∞, 64 points, 10 steps; same deterministic-iteration argument and tolerance as the FAB-T test."""
    ta = pytest.importorskip("torchattacks")
    model, x, y = trained_cnn()
    x, y = x[:64], y[:64]
    ours = fab(model, x, y, norm="linf", eps=EPS_LINF, steps=10, targeted=False)
    ref = ta.FAB(model, norm="Linf", eps=EPS_LINF, steps=10, n_classes=8, multi_targeted=False,
                 n_restarts=1, seed=0)(x, y)
    r_ours, r_ref = _robust(model, ours, y), _robust(model, ref, y)
    n, n_disc = len(y), int((r_ours != r_ref).sum())
    assert n_disc <= 0.05 * n
    assert abs(float(r_ours.float().mean() - r_ref.float().mean())) <= 4 * max(n_disc, 1) ** 0.5 / n
    assert (lp_norm(ours - x, "linf") <= EPS_LINF * (1 + 1e-6)).all()


def test_restarts_are_reproducible_and_feasible():
    """Restarts r > 0 start at a random point of radius ε/2 drawn from the named stream: the same seed
    gives the same x_adv bit for bit; with ε below every point's boundary distance nothing is returned
    but x itself (random starts never leak an infeasible or unsuccessful point)."""
    model, x, y, v, e = _linear_binary(2)
    a = fab(model, x, y, norm="l2", eps=0.3, steps=5, restarts=3, seed=7)
    b = fab(model, x, y, norm="l2", eps=0.3, steps=5, restarts=3, seed=7)
    assert torch.equal(a, b)
    assert (lp_norm(a - x, "l2") <= 0.3 * (1 + 1e-6)).all()
    tiny = 0.5 * float(((x.flatten(1) @ v + e).abs() / v.norm()).min().detach())
    assert torch.equal(fab(model, x, y, norm="l2", eps=tiny, steps=5, restarts=3, seed=7), x)


@pytest.mark.parametrize("kwargs, field", [
    (dict(eps=0.0), "eps"), (dict(eps=-1.0), "eps"), (dict(eps=0.1, norm="l1"), "norm"),
    (dict(eps=0.1, steps=0), "steps"), (dict(eps=0.1, restarts=0), "restarts"),
    (dict(eps=0.1, beta=0.0), "beta"), (dict(eps=0.1, alpha_max=1.5), "alpha_max"),
    (dict(eps=0.1, eta=0.0), "eta"), (dict(eps=0.1, n_target_classes=0), "n_target_classes"),
    (dict(eps=0.1, seed=-1), "seed"), (dict(eps=0.1, targeted="yes"), "targeted"),
])
def test_bad_arguments_raise_config_error(kwargs, field):
    model, x, y, _, _ = _linear_binary(0)
    with pytest.raises(ConfigError) as err:
        fab(model, x, y, **kwargs)
    assert err.value.field == field


def test_mismatched_labels_raise_config_error():
    model, x, y, _, _ = _linear_binary(0)
    with pytest.raises(ConfigError):
        fab(model, x, y[:-1], eps=0.1)
