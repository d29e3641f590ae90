"""Square Attack (thesis Ch. 3): Prop. 3.5.2 formula vs exhaustive search, the ℓ∞ and ℓ2 attacks'
invariants, p schedule, the resampling rule of the proposal (kernel and reference), the public
``backend=`` switch, and what the contract test cannot know about ``python -m toymodels.square``
(payloads, cross-field errors, the random streams of a run). Kernel-vs-reference parity is the
registry's (``tests/test_kernel_parity.py``, case ``square.linf_propose``).

The attack tests are properties that hold for every seed (checked for seeds 0–99 outside the suite);
no Monte-Carlo tolerances are involved. The library attacks draw from ``toymodels.rng.stream(seed)``,
the stream of ``numpy.random.default_rng(seed)`` they used before, so these seeds give the same draws."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import run_cli

from toymodels.cnn import model
from toymodels.errors import ConfigError
from toymodels.rng import child_seed
from toymodels.square import _kernels, _reference
from toymodels.square.attack_l2 import eta_block, eta_update, l2_init, l2_propose, l2_side, square_attack_l2
from toymodels.square.attack_linf import p_schedule, square_attack_linf, square_side
from toymodels.square.theory import n_star_bruteforce, n_star_formula, windows_in


# ---------------------------------------------------------------- Prop. 3.5.2
@pytest.mark.parametrize("s", [1, 2, 3])
def test_formula_equals_exhaustive_maximum_for_all_k_le_12(s):
    for k in range(s * s, 13):
        assert n_star_formula(k, s) == n_star_bruteforce(k, s), (k, s)


def _grid_max(k, s, n):
    """Independent oracle: max windows over all k-subsets of an n×n grid (bitmasks)."""
    cells = [(i, j) for i in range(n) for j in range(n)]
    bit = {c: 1 << t for t, c in enumerate(cells)}
    wins = [sum(bit[(u + a, v + b)] for a in range(s) for b in range(s))
            for u in range(n - s + 1) for v in range(n - s + 1)]
    best = 0
    for comb in itertools.combinations(range(n * n), k):
        m = 0
        for t in comb:
            m |= 1 << t
        best = max(best, sum((m & w) == w for w in wins))
    return best


@pytest.mark.parametrize("k", [4, 5, 6, 7, 8])
def test_exhaustive_search_matches_subsets_of_a_grid(k):
    # all k-subsets of a 4×4 grid (not only connected ones); the optimum fits in it for k ≤ 8
    assert n_star_bruteforce(k, 2) == _grid_max(k, 2, 4)


def test_known_shapes():
    # 3×4 rectangle: (3−1)(4−1) = 6 windows of side 2; windows_in counts them directly
    rect = [(i, j) for i in range(3) for j in range(4)]
    assert windows_in(rect, 2) == 6 == n_star_formula(12, 2)
    # 3×3 plus a 2-cell bump on a side: 4 + 1
    assert windows_in([(i, j) for i in range(3) for j in range(3)] + [(3, 0), (3, 1)], 2) == 5
    assert n_star_formula(11, 2) == 5
    # two separated 2×2 squares (k = 8) hold 2 < 3 = the 2×4 rectangle
    assert windows_in([(0, 0), (0, 1), (1, 0), (1, 1), (5, 5), (5, 6), (6, 5), (6, 6)], 2) == 2
    assert n_star_bruteforce(8, 2) == 3


# ---------------------------------------------------------------- schedule
def test_p_schedule_halves_at_thesis_iterations():
    p = 0.8
    expect = {1: p, 9: p, 10: p / 2, 49: p / 2, 50: p / 4, 199: p / 4, 200: p / 8, 999: p / 8,
              1000: p / 16, 2000: p / 32, 4000: p / 64, 6000: p / 128, 7999: p / 128, 8000: p / 256,
              9999: p / 256}
    for i, v in expect.items():
        assert p_schedule(p, i, 10000) == pytest.approx(v), i


def test_p_schedule_rescales_with_budget():
    # budget 1000: the breakpoints are at iterations 1, 5, 20, 100, 200, 400, 600, 800
    p = 0.4
    assert p_schedule(p, 0, 1000) == p
    assert p_schedule(p, 1, 1000) == p / 2
    assert p_schedule(p, 4, 1000) == p / 2 and p_schedule(p, 5, 1000) == p / 4
    assert p_schedule(p, 99, 1000) == p / 8 and p_schedule(p, 100, 1000) == p / 16
    assert p_schedule(p, 800, 1000) == p / 256


def test_square_side():
    assert square_side(0.05, 32, 32) == 7          # √51.2 = 7.16
    assert square_side(1.0, 32, 32) == 32
    assert square_side(1e-6, 32, 32) == 1
    assert square_side(0.3, 28, 28) == 15          # √235.2 = 15.34


# ---------------------------------------------------------------- attack
def _setup(seed=0, N=12, C=3, H=8, W=8, K=4):
    params = model.init_params(C=C, H=H, W=W, M=3, K=K, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(N, C, H, W))
    x[:, :, :2, :2] = 0.0           # some pixels at the box boundary, where clipping matters
    x[:, :, -2:, -2:] = 1.0
    y = model.logits(params, x).argmax(axis=1)   # attack points the model classifies "correctly"
    return params, x, y


class Counter:
    def __init__(self, params):
        self.params, self.rows, self.calls = params, 0, 0

    def __call__(self, v):
        self.rows += v.shape[0]
        self.calls += 1
        return model.logits(self.params, v)


@pytest.mark.parametrize("targeted", [False, True])
def test_attack_invariants(targeted):
    params, x, y = _setup()
    eps, budget = 0.05, 60
    f = Counter(params)
    r = square_attack_linf(f, x, y, eps, budget, 0.3, targeted=targeted, seed=3)
    d = r.x_adv - x
    assert np.abs(d).max() <= eps + 1e-12
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    # corners of the ε-box (thesis l.983): |δ| = ε wherever ε ≤ x ≤ 1 − ε
    inner = (x >= eps) & (x <= 1 - eps)
    assert np.allclose(np.abs(d[inner]), eps, atol=1e-12)
    # query accounting: every evaluated row is one point's query
    assert f.rows == r.n_queries.sum()
    assert np.all((r.n_queries >= 1) & (r.n_queries <= budget))
    assert np.all(r.n_queries[~r.success] == budget)
    pred = model.logits(params, r.x_adv).argmax(axis=1)
    if targeted:
        assert np.all(r.target != y)
        np.testing.assert_array_equal(pred == r.target, r.success)
    else:
        np.testing.assert_array_equal(pred != y, r.success)


def test_successful_points_stop_querying():
    params, x, y = _setup()
    K = 4
    # a classifier fooled everywhere: every point succeeds at the init query and is never queried again
    r = square_attack_linf(lambda v: np.tile(np.eye(K)[0], (v.shape[0], 1)), x, y * 0 + 1, 0.05, 100, 0.1)
    assert r.success.all() and np.all(r.n_queries == 1)
    # real model: identify each evaluated row's point (points are > 2ε apart in ℓ∞) and check that a
    # point's fooling evaluation is its last one and that its evaluations number n_queries
    log = [[] for _ in range(len(y))]

    def f(v):
        z = model.logits(params, v)
        owner = np.abs(v[:, None] - x[None]).reshape(v.shape[0], len(y), -1).max(axis=2).argmin(axis=1)
        for o, fooled in zip(owner, z.argmax(axis=1) != y[owner]):
            log[o].append(bool(fooled))
        return z

    r = square_attack_linf(f, x, y, 0.05, 150, 0.3, seed=1)
    assert r.success.any() and not r.success.all()
    for n in range(len(y)):
        assert len(log[n]) == r.n_queries[n]
        assert not any(log[n][:-1])
        assert log[n][-1] == r.success[n]


def test_resample_until_the_window_changes():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, size=(2, 3, 6, 6))
    eps, side = 0.1, 3
    pos = np.array([[1, 2], [0, 0]], dtype=np.int64)
    first = np.array([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])
    x_best = x.copy()
    for n in range(2):   # current iterate already has the first try's signs in the window
        r0, c0 = pos[n]
        x_best[n, :, r0:r0 + side, c0:c0 + side] += eps * first[n][:, None, None]
    signs = np.stack([first, first, -first])
    for propose in (_reference.linf_propose, _kernels.linf_propose):
        xn, used = np.empty_like(x), np.empty(2, dtype=np.int64)
        propose(x, x_best, eps, pos, side, signs, xn, used)
        np.testing.assert_array_equal(used, [3, 3])
        for n in range(2):
            r0, c0 = pos[n]
            np.testing.assert_allclose(xn[n, :, r0:r0 + side, c0:c0 + side],
                                       x[n, :, r0:r0 + side, c0:c0 + side] - eps * first[n][:, None, None])
            mask = np.ones((6, 6), bool)
            mask[r0:r0 + side, c0:c0 + side] = False
            np.testing.assert_array_equal(xn[n][:, mask], x_best[n][:, mask])


@pytest.mark.parametrize("targeted", [False, True])
def test_numba_matches_numpy_on_the_same_seed(targeted):
    params, x, y = _setup(seed=2)
    f = lambda v: model.logits(params, v)
    a = square_attack_linf(f, x, y, 0.03, 80, 0.2, targeted=targeted, seed=7, backend="numba")
    b = square_attack_linf(f, x, y, 0.03, 80, 0.2, targeted=targeted, seed=7, backend="numpy")
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    np.testing.assert_array_equal(a.n_queries, b.n_queries)
    np.testing.assert_array_equal(a.success, b.success)


def test_unknown_backend_and_bad_inputs_are_config_errors():
    params, x, y = _setup()
    f = lambda v: model.logits(params, v)  # noqa: E731
    for kw, field in [(dict(backend="nunba"), "backend"), (dict(eps=1.5), "eps"), (dict(eps=0.0), "eps"),
                      (dict(n_queries=0), "n_queries"), (dict(p_init=1.5), "p_init"), (dict(x=x * 2), "x"),
                      (dict(y=y[:3]), "x")]:
        args = dict(predict=f, x=x, y=y, eps=0.05, n_queries=10, p_init=0.1) | kw
        with pytest.raises(ConfigError) as e:
            square_attack_linf(**args)
        assert e.value.field == field, (kw, e.value)
    with pytest.raises(ConfigError, match=r"eps must be in \(0, 13\.856"):   # √(3·8·8)
        square_attack_l2(f, x, y, 14.0, 10, 0.1)


def test_empty_batch_spends_no_query():
    def never(v):
        raise AssertionError("queried")

    x0, y0 = np.zeros((0, 3, 8, 8)), np.zeros(0, int)
    for r in (square_attack_linf(never, x0, y0, 0.1, 50, 0.1, targeted=True),
              square_attack_l2(never, x0, y0, 0.5, 50, 0.1)):
        assert r.n_queries.size == 0 and r.success.size == 0 and r.sides.shape == (49,) and not r.sides.any()


def test_sides_follow_the_schedule():
    params, x, y = _setup()
    const = lambda v: np.tile(np.eye(4)[0], (v.shape[0], 1))   # predicts class 0: never fooled
    r = square_attack_linf(const, x, np.zeros(len(y), int), 0.05, 40, 0.5, seed=0)
    assert not r.success.any() and np.all(r.n_queries == 40)
    for i, h in enumerate(r.sides, start=1):
        halvings = sum((10000 * i) // 40 >= t for t in (10, 50, 200, 1000, 2000, 4000, 6000, 8000))
        assert h == max(1, min(8, int(np.floor(np.sqrt(0.5 * 64 / 2 ** halvings) + 0.5))))


# ---------------------------------------------------------------- ℓ2 attack
def _eta_rings(h1, h2):
    """Independent η^{(h1,h2)}: ring c = 0..n around the centre adds 1/(c+1)² to the box of radius c."""
    n = h1 // 2
    out = np.zeros((h1, h2))
    ci, cj = h1 // 2, h2 // 2
    for c in range(n + 1):
        out[max(ci - c, 0):ci + c + 1, max(cj - c, 0):cj + c + 1] += 1.0 / (c + 1) ** 2
    return out


@pytest.mark.parametrize("h1,h2", [(3, 1), (3, 2), (5, 2), (8, 4), (9, 4), (9, 5), (12, 6)])
def test_eta_block_matches_ring_construction(h1, h2):
    np.testing.assert_allclose(eta_block(h1, h2), _eta_rings(h1, h2), rtol=1e-14)
    assert eta_block(h1, h2).min() > 0            # "never reaching zero"


@pytest.mark.parametrize("h", [3, 4, 7, 8])
def test_eta_update_two_halves_of_opposite_sign(h):
    k = h // 2
    e = eta_update(h)
    assert np.sum(e ** 2) == pytest.approx(1.0, abs=1e-14)
    assert np.all(e[:, :k] > 0) and np.all(e[:, k:] < 0)
    np.testing.assert_allclose(e[:, :k] / e[:, :k].max(), _eta_rings(h, k) / _eta_rings(h, k).max())
    np.testing.assert_array_equal(eta_update(h, True), e.T)


def test_prop341_every_proposal_is_on_the_sphere_before_clipping():
    # Prop. 3.4.1: ‖x̂ + δ − x‖₂ = ε for any current iterate (already clipped, so ‖x̂ − x‖ ≤ ε),
    # any windows (overlapping or not), orientations and signs. 200 random cases.
    rng = np.random.default_rng(0)
    N, C, H, W = 200, 3, 10, 10
    x = rng.uniform(0, 1, (N, C, H, W))
    x[:50] = rng.integers(0, 2, (50, C, H, W))                   # corners of the box: heavy clipping
    eps = rng.uniform(0.1, 3.0, N)
    nu = rng.normal(size=(N, C, H, W))
    nu *= (eps * rng.uniform(0.2, 1.0, N) / np.sqrt((nu ** 2).sum(axis=(1, 2, 3))))[:, None, None, None]
    x_best = np.clip(x + nu, 0, 1)
    for h in (3, 4, 6):
        pos1 = rng.integers(0, H - h + 1, (N, 2))
        pos2 = rng.integers(0, H - h + 1, (N, 2))
        pos2[:20] = pos1[:20]                                    # W1 = W2
        for n in range(N):
            x_new, nu_new = l2_propose(x[n:n + 1], x_best[n:n + 1], eps[n], pos1[n:n + 1], pos2[n:n + 1], h,
                                       rng.random(1) < 0.5, rng.choice([-1.0, 1.0], (1, C)))
            assert np.sqrt((nu_new ** 2).sum()) == pytest.approx(eps[n], rel=1e-12)
            np.testing.assert_array_equal(x_new, np.clip(x[n:n + 1] + nu_new, 0, 1))


def test_l2_degenerate_direction_stays_on_the_sphere():
    # the same W₁ drawn twice with opposite signs makes ν_temp = 0; the update must stay finite, norm ε
    x = np.full((1, 1, 8, 8), 0.5)
    eps, h = 0.3, 3
    pos1, pos2 = np.array([[1, 1]]), np.array([[5, 5]])
    _, nu1 = l2_propose(x, x, eps, pos1, pos2, h, np.array([False]), np.array([[1.0]]))
    x_new, nu2 = l2_propose(x, x + nu1, eps, pos1, pos2, h, np.array([False]), np.array([[-1.0]]))
    assert np.all(np.isfinite(nu2)) and np.sqrt((nu2 ** 2).sum()) == pytest.approx(eps, rel=1e-12)


def test_l2_init_has_norm_eps_before_clipping():
    rng = np.random.default_rng(1)
    x = np.full((4, 3, 32, 32), 0.5)                            # no clipping at ε = 0.5
    xi = l2_init(x, 0.5, rng)
    assert np.sqrt(((xi - x) ** 2).sum(axis=(1, 2, 3))) == pytest.approx(0.5, rel=1e-12)
    assert np.all(xi[:, :, :1] == 0.5) and np.all(xi[:, :, 31:] == 0.5)    # 5 tiles of side 6 from row 1


def test_l2_side():
    assert l2_side(0.1, 32, 32) == 10 and l2_side(0.001, 32, 32) == 3 and l2_side(1.0, 8, 8) == 8


@pytest.mark.parametrize("targeted", [False, True])
def test_l2_attack_invariants(targeted):
    params, x, y = _setup()
    eps, budget = 0.8, 60
    f = Counter(params)
    r = square_attack_l2(f, x, y, eps, budget, 0.3, targeted=targeted, seed=3)
    assert np.sqrt(((r.x_adv - x) ** 2).sum(axis=(1, 2, 3))).max() <= eps * (1 + 1e-12)
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    assert f.rows == r.n_queries.sum()
    assert np.all((r.n_queries >= 1) & (r.n_queries <= budget))
    assert np.all(r.n_queries[~r.success] == budget)
    pred = model.logits(params, r.x_adv).argmax(axis=1)
    np.testing.assert_array_equal((pred == r.target) if targeted else (pred != y), r.success)


# ---------------------------------------------------------------- CLI
SMALL = ["--n-points", "20", "--queries", "30", "--n-train", "300", "--epochs", "3", "--pgd-steps", "3"]


def test_shape_count_payload():
    out = run_cli("toymodels.square", ["shape-count", "--k", "11", "--s", "2", "--json"]).json
    assert out["n_star_formula"] == 5 and out["n_star_bruteforce"] == 5 and out["agree"] is True
    out = run_cli("toymodels.square", ["shape-count", "--k", "40", "--s", "3", "--json"]).json
    assert out["n_star_formula"] == n_star_formula(40, 3) and "n_star_bruteforce" not in out


@pytest.mark.parametrize("args,needle", [
    (["shape-count", "--k", "3", "--s", "2"], "--k must be an integer >= 4"),
    (["attack", "--eps", "1.5"], "--eps must be in (0, 1]"),                 # linf: ε ≤ 1
    (["attack", "--norm", "l2", "--eps", "56"], "--eps must be in (0, 55.4"),  # l2: ε ≤ √(3·32·32)
])
def test_cross_field_errors_name_the_flag(args, needle):
    r = run_cli("toymodels.square", args)
    assert r.rc == 2 and len(r.err_lines) == 1 and needle in r.err, r.err


def test_attack_payload_eps_fraction_and_streams():
    """``--eps 8/255`` is accepted (the runner's Num) and the run's streams are the documented ones:
    the attack's seed is child_seed(seed, "square/attack"), PGD's child_seed(seed, "square/pgd")."""
    out = run_cli("toymodels.square", ["attack", *SMALL, "--eps", "8/255", "--seed", "5", "--json"]).json
    c = out["config"]
    # p = 0.8: the size default for 32×32 images (AutoAttack's value, toymodels.square.options)
    assert c["eps"] == 8 / 255 and c["queries"] == 30 and c["p_init"] == 0.8 and c["pgd_alpha"] == 2 / 255
    assert c["attack_seed"] == child_seed(5, "square/attack") and c["pgd_seed"] == child_seed(5, "square/pgd")
    for key in ("failure_rate", "mean_queries", "median_queries", "clean_acc", "pgd_robust_acc", "n_attacked",
                "max_perturbation_norm", "square_robust_acc"):
        assert key in out
    assert out["n_attacked"] > 0 and out["max_perturbation_norm"] <= 8 / 255 + 1e-12
    assert out["square_robust_acc"] == pytest.approx(out["clean_acc"] * out["failure_rate"])
    l2 = run_cli("toymodels.square", ["attack", *SMALL, "--norm", "l2", "--json"]).json
    assert l2["config"]["eps"] == 0.5 and l2["config"]["p_init"] == 0.8 and l2["config"]["loss"] == "margin"
    # the ℓ2 white-box reference (PGD ℓ2 on the same points) is reported and no weaker than no attack
    assert 0 <= l2["pgd_robust_acc"] <= l2["clean_acc"]
    assert l2["max_perturbation_norm"] <= 0.5 * (1 + 1e-12)


def test_attack_and_ablation_share_points_and_attack_stream():
    """The ablation's last row (square, c, vstripes) is Alg. 1–2: on the same seed, ε, budget and p it
    attacks the same points with the same stream as ``attack``, so it reports the same numbers."""
    common = ["--n-points", "20", "--queries", "30", "--n-train", "300", "--epochs", "3", "--eps", "0.1",
              "--p-init", "0.1", "--seed", "2", "--json"]
    a = run_cli("toymodels.square", ["attack", *common, "--pgd-steps", "1"]).json
    b = run_cli("toymodels.square", ["ablation", *common]).json
    last = b["rows"][-1]
    assert (last["shape"], last["signs"], last["init"]) == ("square", "c", "vstripes")
    assert b["n_attacked"] == a["n_attacked"] > 0 and b["clean_acc"] == a["clean_acc"]
    assert last["failure_rate"] == a["failure_rate"]
    assert last["mean_queries"] == a["mean_queries"] and last["median_queries"] == a["median_queries"]
