"""1D quadratic parameterization (thesis Ch. 6, eq. 6.5, Prop. 6.3.2 / 6.7.1, Lemmas 9–14): the numba
kernel vs its numpy reference and a scalar Python oracle, the claims and their counterexamples, the
CLI contract, proofs_check (perturbed constants rejected), the figure.

No Monte-Carlo averages are asserted; the claim tests are about the existence of violating runs in
an ensemble of ``RUNS`` runs, which happens with probability ≈ 1 for any seed (a run violates the
upper level 0.17 whenever θ₀ ≲ 0.2, probability ≈ 0.2 each): they pass for every SEED in 0..99
(verified once outside the suite by looping the seeds).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from scipy import integrate

from toymodels.quad1d import Quad1DConfig, evaluate, regime, simulate, theory
from toymodels.quad1d._reference import uniforms
from toymodels.quad1d.sim import stream_keys

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
RUNS, STEPS = 2000, 300
#: θ₀ with fl(h_1.1(θ₀)) == 1 exactly in the kernel's arithmetic (found next to inverse_h_of_one(1.1))
THETA0_FIXED = 0.5766108438479101


def _claims(res):
    return {c["name"].split(":")[0]: c for c in evaluate(res)}


@pytest.mark.parametrize("kw", [dict(), dict(eta=3.0), dict(points=[1.0, 1.02, 1.04]),
                                dict(eta=0.9, theta0=0.3), dict(theta_star=2.0, x_min=0.5, x_max=0.52, eta=0.27)])
def test_backends_agree_through_simulate(kw):
    """The public ``backend=`` switch: the kernel parity test covers the kernel, this the wiring."""
    cfg = Quad1DConfig(runs=300, steps=200, seed=SEED, **kw)
    a = simulate(cfg, record=50)
    b = simulate(cfg, record=50, backend="numpy")
    for f in ("theta_final", "loss_min", "loss_max", "loss_final", "theta_min", "theta_max", "traj"):
        assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f
    for f in ("argmin", "argmax", "bounce_start", "band_start", "div_step"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f


def test_scalar_oracle_and_loss_definition():
    """Recursion (6.5) written directly, x from the documented stream; loss from its definition
    F = ¼∫(y − xθ²)² dρ̂ by quadrature."""
    cfg = Quad1DConfig(runs=5, steps=40, seed=SEED, eta=1.1)
    res = simulate(cfg, record=5)
    key, key0 = stream_keys(SEED)
    a, b = cfg.x_min, cfg.x_max
    for r in range(5):
        th = float(uniforms(key0, np.array([r], np.uint64), 0)[0])
        assert res.traj[r, 0] == th
        for t in range(40):
            x = a + (b - a) * float(uniforms(key, np.array([r], np.uint64), t)[0])
            th = th + 1.1 * th * x * (x * 1.0 - x * th ** 2)
            assert math.isclose(res.traj[r, t + 1], th, rel_tol=1e-12)
        F = integrate.quad(lambda x: (x - x * th ** 2) ** 2 / (b - a), a, b)[0] / 4
        assert math.isclose(res.loss_final[r], F, rel_tol=1e-9)


def test_streams_do_not_depend_on_ensemble_size():
    big = simulate(Quad1DConfig(runs=400, steps=100, seed=3))
    small = simulate(Quad1DConfig(runs=7, steps=100, seed=3))
    assert np.array_equal(big.theta_final[:7], small.theta_final)


def _reproduce(cx, **kw):
    """Re-simulate the counterexample's run alone and recompute F at its step from θ."""
    res = simulate(Quad1DConfig(runs=cx["run"] + 1, seed=cx["seed"], **kw), record=cx["run"] + 1)
    th = res.traj[cx["run"], cx["step"]]
    return theory.loss(th, kw.get("theta_star", 1.0), res.m2), res.theta0[cx["run"]]


def test_default_claims_and_counterexamples(seed=SEED):
    kw = dict(steps=STEPS, eta=1.1)
    res = simulate(Quad1DConfig(runs=RUNS, seed=seed, **kw))
    c = _claims(res)
    d1, d2 = res.derived["delta1"], res.derived["delta2"]
    assert d1 == pytest.approx(0.02 ** 2) and d2 == pytest.approx(0.17)
    assert c["6.6 lower level"]["holds"] is False and c["6.6 upper level"]["holds"] is False
    F, th0 = _reproduce(c["6.6 lower level"]["evidence"]["counterexample"], **kw)
    assert F <= d1 and 0 < th0 < 1
    F, th0 = _reproduce(c["6.6 upper level"]["evidence"]["counterexample"], **kw)
    assert F >= d2 and 0 < th0 < 1
    for name in ("6.7 eventual 2-periodic bouncing across theta*", "6.22 bands", "6.22 corrected levels (eventual)",
                 "6.6 corrected upper (all t > 0)", "Lemma 9 bounded region", "Lemma 9 sharp"):
        assert c[name]["holds"] is True, name


def test_upper_level_fails_at_step_one_from_small_theta0():
    """Independent of the ensemble: θ₀ = 0.01, x ≡ 1, η = 1.1 gives θ₁ = 0.01(1 + 1.1·0.9999) and
    F(θ₁) = ¼(1 − θ₁²)² > 0.17."""
    th1 = 0.01 * (1 + 1.1 * (1 - 0.01 ** 2))
    res = simulate(Quad1DConfig(points=[1.0], eta=1.1, theta0=0.01, runs=1, steps=1), record=1)
    assert res.traj[0, 1] == pytest.approx(th1, rel=1e-15)
    assert res.loss_max[0] == pytest.approx((1 - th1 ** 2) ** 2 / 4, rel=1e-12) and res.loss_max[0] > 0.17


def test_fixed_point_counterexample_to_bouncing():
    """ρ̂ = δ₁, η = 1.1 (γ ≡ 1.1 ∈ (1, 1.25)) and θ₀ = (−γ + √(γ² + 4γ))/(2γ) ∈ (0, 1): h_γ(θ₀) = 1
    exactly, then θ_t = 1 forever: no bouncing, F = 0 (6.6 lower and 6.7 fail for this θ₀)."""
    g = 1.1
    assert abs(theory.h(g, theory.inverse_h_of_one(g)) - 1) < 1e-15
    assert abs(THETA0_FIXED - theory.inverse_h_of_one(g)) < 1e-15
    res = simulate(Quad1DConfig(points=[1.0], eta=g, theta0=THETA0_FIXED, runs=2, steps=100), record=1)
    assert np.all(res.traj[0, 1:] == 1.0)
    c = _claims(res)
    assert c["6.7 eventual 2-periodic bouncing across theta*"]["holds"] is False
    assert c["6.6 lower level"]["holds"] is False


@pytest.mark.parametrize("scale,eta,which", [(10.0, 0.011, "upper"), (0.1, 110.0, "lower")])
def test_levels_do_not_scale_with_theta_star_squared(scale, eta, which):
    """γ = ηθ*²x² is unchanged when x → sx, η → η/s², but F scales as s²: the printed levels
    (ε_o²θ*², 0.17θ*²) fail even eventually, while the corrected ones (∝ E[x²]θ*⁴) hold."""
    res = simulate(Quad1DConfig(x_min=scale, x_max=1.05 * scale, eta=eta, runs=500, steps=STEPS, seed=SEED))
    c = _claims(res)
    assert c["6.22 bands"]["holds"] is True
    assert c["6.22 corrected levels (eventual)"]["holds"] is True
    assert c["6.22 thesis levels at the final step"]["holds"] is False
    fin = res.loss_final
    assert (fin.max() >= 0.17) if which == "upper" else (fin.min() <= 0.02 ** 2)


def test_regimes_below_and_above():
    below = regime(simulate(Quad1DConfig(eta=0.9, runs=300, steps=STEPS)))
    assert below["converge_fraction"] == 1.0
    above = simulate(Quad1DConfig(eta=3.0, runs=300, steps=STEPS))
    r = regime(above)
    assert r["diverge_fraction"] == 1.0
    cx = r["first_divergence"]
    tr = simulate(Quad1DConfig(eta=3.0, runs=cx["run"] + 1, steps=STEPS), record=cx["run"] + 1).traj[cx["run"]]
    s = cx["step"]
    assert abs(tr[s - 1]) <= 1e3 and not (abs(tr[s]) <= 1e3)
    assert all(c["holds"] is None for c in evaluate(above))


def test_cli_payload_and_cross_field_errors():
    """What the contract test cannot know: the payload's content and errors that involve two flags."""
    r = run_cli("toymodels.quad1d", ["--runs", "200", "--steps", "100", "--json"])
    out = r.json
    assert {"claims", "loss_min", "loss_max", "loss_final_max", "bounce_fraction", "config", "version"} <= set(out)
    names = [c["name"] for c in out["claims"]]
    assert any(n.startswith("6.6") for n in names) and any(n.startswith("6.7") for n in names)
    assert out["config"]["eta"] == 1.1
    for bad, flag in ((["--xmin", "2", "--xmax", "1"], "--xmax"), (["--eta", "1e300"], "--eta"),
                      (["--theta0", "1e200"], "--theta0"), (["--xmin", "1e-200", "--xmax", "1"], "--xmin")):
        r = run_cli("toymodels.quad1d", bad + ["--json"])
        assert r.rc == 2 and len(r.err_lines) == 1 and flag in r.err, (bad, r.err)


def test_library_errors_name_fields():
    from toymodels.errors import ConfigError

    with pytest.raises(ConfigError, match="^backend must be one of"):
        simulate(Quad1DConfig(runs=2, steps=2), backend="nunba")
    with pytest.raises(ConfigError, match="^record must be an integer in \\[0, 2\\]"):
        simulate(Quad1DConfig(runs=2, steps=2), record=3)
    with pytest.raises(ConfigError, match="^runs must be an integer"):
        simulate(Quad1DConfig(runs=10 ** 9))


def test_proofs_check_and_perturbations():
    import proofs_check.quad1d as q
    from proofs_check import run_checks

    rows = [r for r in run_checks() if r["name"].startswith("quad1d.")]
    assert len(rows) >= 12 and all(r["passed"] for r in rows), [r for r in rows if not r["passed"]]
    assert not q.lemma9_max_formula(q.PRINTED_MAX)[0]
    assert not q.lemma9_printed_monotone(q.CORRECT_MAX)[0]
    assert not q.lemma9_bound(bound=1.16)[0]
    assert not q.lemma12_P(-1)[0]
    assert not q.lemma13_lower(0.66)[0]
    assert not q.lemma13_upper(0.97)[0]
    assert not q.lemma14(1.03)[0]
    assert not q.p2(0.66)[0]
    assert not q.lemma10_eps(lambda g: (g - 1) / 1.5)[0]
    assert not q.gd_threshold(lambda lam: 2.1 / lam)[0]


def test_gd_threshold_numeric():
    H = np.array([[2.0, 1.0], [1.0, 3.0]])
    thr = theory.gd_stability_threshold(H)
    for f, conv in ((0.99, True), (1.01, False)):
        M = np.eye(2) - f * thr * H
        b = np.linalg.matrix_power(M, 3000) @ np.ones(2)
        assert (np.linalg.norm(b) < 1e-6) == conv


def test_figure_quick(tmp_path):
    from figures import Context, registry, render

    rec = render(registry()["prop6.3.2"], tmp_path, Context(quick=True))
    assert all(Path(f).exists() for f in rec["files"])
