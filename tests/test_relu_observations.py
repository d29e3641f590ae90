"""toymodels.relu public exports, and the Fig. 6.5 helpers of toymodels.relu.teacher3: ``fresh_ranks``
(rank of φ on p fresh points, against the numpy-reference Jacobian) and ``observations`` (the
(O1)–(O3) booleans, on hand-built results whose answers are known). Deterministic, no Monte Carlo."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import toymodels.relu as relu
from toymodels.relu import _reference
from toymodels.relu.streams import fresh_points
from toymodels.relu.teacher3 import Teacher3Config, Teacher3Result, fresh_ranks, observations, train_teacher3


def test_all_exports_resolve():
    for name in relu.__all__:
        assert getattr(relu, name) is not None
    assert relu.run_schedules3 is not relu.run_schedules2
    assert relu.train_teacher3.__module__ == "toymodels.relu.teacher3"


def test_fresh_ranks_match_numpy_reference_jacobian():
    res = train_teacher3(Teacher3Config(steps=300, n_checkpoints=3, seed=1))
    c = res.config
    p = c.m * c.d + c.m * c.m + c.m
    Xf = fresh_points(c.seed, p, c.d)
    got = fresh_ranks(res)
    assert got.shape == res.iters.shape
    for k in range(res.iters.size):
        J = np.empty((p, p))
        _reference.teacher3.jacobian(Xf, res.W1[k], res.W2[k], res.a[k], J)
        s = np.linalg.svd(J, compute_uv=False)
        assert got[k] == int(np.sum(s > c.rank_tol * s[0]))
        assert 0 < got[k] <= p


def _fake(transition, train, test, sparsity, seed=0, scale=1.0):
    cfg = Teacher3Config(steps=100, transition=transition, seed=seed)
    K = len(train)
    it = np.linspace(0, 100, K).astype(np.int64)
    rng = np.random.default_rng(seed)
    W1 = np.repeat(rng.standard_normal((1, 10, 5)), K, axis=0) * scale
    W2 = np.repeat(np.abs(rng.standard_normal((1, 10, 10))), K, axis=0)
    a = np.repeat(rng.standard_normal((1, 10)), K, axis=0)
    return Teacher3Result(cfg, it, np.array(train, float), np.array(test, float), np.zeros(K, np.int64),
                          np.array(sparsity, float), W1, W2, a, np.zeros(100))


def test_observations_logic_on_hand_built_runs():
    const = _fake(None, [1.0, 0.1, 0.01, 0.01, 0.01], [1, 1, 1, 1, 0.5], [[0.5, 0.5]] * 5)
    # large-step run: plateau 0.05 during the phase up to t = 50, then 0.001; better test, sparser
    large = _fake(0.5, [1.0, 0.05, 0.05, 0.002, 0.001], [1, 1, 1, 1, 0.2], [[0.5, 0.5]] * 4 + [[0.4, 0.3]])
    o = observations(const, large)
    assert not o["dead"] and o["O1"] and o["O2"] and o["O3_sparsity"]
    assert o["stabilization_loss"] == pytest.approx(0.05)
    # same weights ⇒ same rank: no (O3) rank claim
    assert o["rank_fresh"] == o["const_rank_fresh"] and not o["O3_rank"]
    # one hidden layer not sparser ⇒ no (O3) sparsity claim
    o2 = observations(const, replace(large, sparsity=np.array([[0.5, 0.5]] * 4 + [[0.6, 0.3]])))
    assert not o2["O3_sparsity"]
    # a run whose loss ends above 0.1 × its initial loss is dead, and then no observation holds
    dead = _fake(0.5, [1.0, 0.05, 0.05, 0.5, 0.5], [1, 1, 1, 1, 0.1], [[0.5, 0.0]] * 5)
    od = observations(const, dead)
    assert od["dead"] and not (od["O1"] or od["O2"] or od["O3_rank"] or od["O3_sparsity"])
    # no plateau: phase loss only 2× the final one (< stab_ratio = 3)
    flat = _fake(0.5, [1.0, 0.002, 0.002, 0.001, 0.001], [1, 1, 1, 1, 0.2], [[0.4, 0.3]] * 5)
    assert not observations(const, flat)["O1"]
