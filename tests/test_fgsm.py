"""FGSM-RS perturbation norm (thesis Ch. 2, Lemma 1, eq. 2.4): Monte Carlo vs the closed forms, the
public backend switch and the counter-based streams (the kernel's parity with its reference is
tests/test_kernel_parity.py), the printed formula vs the exact piecewise one, the dependent-sign
counterexample, the CLI payload and cross-field errors (the CLI contract is tests/test_contract.py),
figure 2.2, the proofs_check checks, the bench workload.

Monte-Carlo tolerances: 5 standard errors, where the standard error is the *exact* one,
√(Var/n), from the closed-form moments (E[δᵢ⁴] and E|δᵢ| are verified against sympy integrals by
``fgsm.closed_forms_numeric``), never the code's own estimate. Every MC test uses ``SEED`` and
passes for every SEED in 0..99 (verified once outside the suite by looping over the seeds:
``for s in range(100): test_fgsm._mc_cases(s)``; re-verified with the named streams
(seed, "fgsm/eta") and (seed, "fgsm/sign") of toymodels.rng).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import run_cli

from toymodels.errors import ConfigError
from toymodels.fgsm import (FGSMConfig, bound_norm, coord_abs_moment, coord_sq_moment, fgsm_equivalent_eps,
                            lemma1_formula, sample_sq_norms, simulate, sq_norm_exact, sq_norm_outward,
                            sq_norm_variance)
from toymodels.fgsm.mc import CHUNK, stream_keys
from toymodels.rng import key64, mix64_np

SEED = 0
K_SE = 5.0
EPS = 8 / 255
MC_N = 20_000          # samples per MC comparison
MC_D = 50              # dimension of the MC comparisons (d = 1 for E‖δ‖)
SIGNS_INDEP = ("random", "plus", "minus", "alternating")
RATIOS = (0.0, 0.4, 1.0, 1.25, 1.7, 2.0, 3.0)          # α/ε, including beyond Lemma 1's 2ε


def _close(mc: float, exact: float, se: float) -> bool:
    # a degenerate law (α ≥ 2ε: ‖δ‖² = dε² exactly) has se = 0; allow rounding there
    return abs(mc - exact) <= K_SE * se + 1e-12 * abs(exact)


def _mc_cases(seed: int) -> list[str]:
    """All MC comparisons for one seed; returns the failures (empty = pass)."""
    fails = []
    for sign in SIGNS_INDEP:
        for r in RATIOS:
            a = r * EPS
            sq = sample_sq_norms(MC_D, EPS, a, MC_N, sign=sign, seed=seed)
            se = math.sqrt(sq_norm_variance(MC_D, EPS, a) / MC_N)
            if not _close(sq.mean(), sq_norm_exact(MC_D, EPS, a), se):
                fails.append(f"E‖δ‖² sign={sign} α={r}ε: {sq.mean()} vs {sq_norm_exact(MC_D, EPS, a)} ± {se}")
    for r in RATIOS:                      # E‖δ‖ at d = 1 is E|δ₁|, Var = E δ² − (E|δ|)²
        a = r * EPS
        nrm = np.sqrt(sample_sq_norms(1, EPS, a, MC_N, sign="random", seed=seed))
        m1 = coord_abs_moment(EPS, a)
        se = math.sqrt(max(coord_sq_moment(EPS, a) - m1 * m1, 0.0) / MC_N)
        if not _close(nrm.mean(), m1, se):
            fails.append(f"E|δ| α={r}ε: {nrm.mean()} vs {m1} ± {se}")
    for r in (0.3, 0.8):                  # the η-dependent sign sᵢ = sign(ηᵢ): its own closed form
        a = r * EPS
        sq = sample_sq_norms(MC_D, EPS, a, MC_N, sign="outward", seed=seed)
        m2 = sq_norm_outward(1, EPS, a)
        # E δᵢ⁴ for s = sign(η), |η| = u ~ U[0, ε]: (1/ε)[∫₀^{ε−α} (u+α)⁴ du + αε⁴] (α ≤ ε)
        t = r
        m4 = EPS**4 * ((1 - t**5) / 5 + t)
        se = math.sqrt(MC_D * (m4 - m2 * m2) / MC_N)
        if not _close(sq.mean(), MC_D * m2, se):
            fails.append(f"outward α={r}ε: {sq.mean()} vs {MC_D * m2} ± {se}")
    return fails


def test_monte_carlo_matches_closed_forms():
    """MC_N = 2·10⁴ samples per point, d = 50 (d = 1 for E‖δ‖), tolerance 5 exact s.e.; signs
    random/plus/minus/alternating give the same law (Lemma 1 needs only independence from η)."""
    assert _mc_cases(SEED) == []


def test_dependent_sign_breaks_lemma1():
    """sᵢ = sign(ηᵢ) (the gradient sign of ½‖x'−x‖² at x+η) is outside the lemma's hypothesis and
    its E‖δ‖² is far above eq. 2.4; at α = 1.25ε every coordinate is clipped, so ‖δ‖ = ε√d > bound."""
    d, a = MC_D, 0.5 * EPS
    sq = sample_sq_norms(d, EPS, a, MC_N, sign="outward", seed=SEED)
    se_bound = math.sqrt(d * EPS**4 / MC_N)       # Var‖δ‖² ≤ d·E δᵢ⁴ ≤ dε⁴
    assert sq.mean() - lemma1_formula(d, EPS, a) > 50 * se_bound
    sq = sample_sq_norms(d, EPS, 1.25 * EPS, 100, sign="outward", seed=SEED)
    np.testing.assert_allclose(np.sqrt(sq), EPS * math.sqrt(d), rtol=1e-14)
    assert EPS * math.sqrt(d) > 1.1 * bound_norm(d, EPS, 1.25 * EPS)


def test_simulate_summary_and_chunked_moments():
    """simulate() over more than one chunk: its running moments equal numpy's on all the samples."""
    cfg = FGSMConfig(d=3, eps=0.5, alpha=0.6, samples=CHUNK + 1234, sign="random", seed=SEED)
    res = simulate(cfg, keep_samples=True)
    sq = sample_sq_norms(3, 0.5, 0.6, CHUNK + 1234, sign="random", seed=SEED)
    np.testing.assert_array_equal(res.sq_norms, sq)
    assert res.mc_sq_norm == pytest.approx(sq.mean(), rel=1e-13)
    assert res.mc_sq_norm_se == pytest.approx(sq.std(ddof=1) / math.sqrt(sq.size), rel=1e-9)
    nrm = np.sqrt(sq)
    assert res.mc_norm == pytest.approx(nrm.mean(), rel=1e-13)
    assert res.mc_norm_se == pytest.approx(nrm.std(ddof=1) / math.sqrt(sq.size), rel=1e-9)
    assert res.closed_form_sq_norm == sq_norm_exact(3, 0.5, 0.6)
    assert res.bound_norm == pytest.approx(math.sqrt(sq_norm_exact(3, 0.5, 0.6)), rel=1e-15)
    assert res.fgsm_equivalent_eps_mc == pytest.approx(nrm.mean() / math.sqrt(3), rel=1e-13)
    assert res.samples_per_s > 0 and res.summary()["config"]["samples"] == CHUNK + 1234
    one = simulate(FGSMConfig(d=4, samples=1))
    assert one.mc_sq_norm_se is None and one.config["alpha"] == pytest.approx(1.25 * 8 / 255)


CASES = [(37, 0.3, 0.4), (1, 1.0, 0.0), (5, 2.0, 7.0), (3072, 8 / 255, 10 / 255), (2, 1e-3, 2e-3)]


@pytest.mark.parametrize("sign", ["random", "alternating", "outward"])
def test_backends_and_splits_agree_through_sample_sq_norms(sign):
    """The public ``backend=`` switch and the counter-based stream: numba = numpy bit for bit, and any
    split of a run into calls gives the same samples (the kernel parity test covers the kernel itself)."""
    for d, eps, a in CASES:
        n = 300 if d < 1000 else 20
        x = sample_sq_norms(d, eps, a, n, sign=sign, seed=7, backend="numba")
        np.testing.assert_array_equal(x, sample_sq_norms(d, eps, a, n, sign=sign, seed=7, backend="numpy"))
        z = np.concatenate([sample_sq_norms(d, eps, a, k, sign=sign, seed=7, start=s)
                            for s, k in ((0, 1), (1, n // 2 - 1), (n // 2, n - n // 2))])
        np.testing.assert_array_equal(x, z)
    assert not np.array_equal(sample_sq_norms(5, 1.0, 0.5, 50, seed=1), sample_sq_norms(5, 1.0, 0.5, 50, seed=2))


def test_stream_is_splitmix64_and_matches_a_literal_implementation():
    """The mixer is SplitMix64 (Vigna's reference, seed 1234567 → 6457827717110365317, …), the keys are
    the named streams (seed, "fgsm/eta") and (seed, "fgsm/sign") of toymodels.rng, and a literal
    pure-Python δ for a few samples equals the kernel's."""
    mask, g = (1 << 64) - 1, 0x9E3779B97F4A7C15
    out = mix64_np(np.uint64(1234567) + np.arange(1, 4, dtype=np.uint64) * np.uint64(g))
    assert out.tolist() == [6457827717110365317, 3203168211198807973, 9817491932198370423]

    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    d, eps, a, seed = 6, 0.7, 0.9, 11
    ke, ks = (int(k) for k in stream_keys(seed))
    assert (ke, ks) == (int(key64(seed, "fgsm/eta")), int(key64(seed, "fgsm/sign")))
    got = sample_sq_norms(d, eps, a, 4, sign="random", seed=seed)
    for j in range(4):
        tot = 0.0
        for i in range(d):
            c = j * d + i
            eta = eps * (2.0 * (mix((ke + c * g) & mask) >> 11) * 2.0**-53 - 1.0)
            s = 1.0 if mix((ks + c * g) & mask) >> 63 else -1.0
            x = min(max(eta + a * s, -eps), eps)
            tot += x * x
        assert got[j] == tot
        assert 0 <= tot <= d * eps * eps


def test_exact_piecewise_vs_printed_formula():
    d = 3072
    inside = np.linspace(0, 2, 81) * EPS
    np.testing.assert_allclose(sq_norm_exact(d, EPS, inside), lemma1_formula(d, EPS, inside), rtol=1e-14)
    # the hand-checkable points: α = 0 (η uniform: E δᵢ² = ε²/3), α = 2ε (all clipped: ε²)
    assert sq_norm_exact(d, EPS, 0.0) == pytest.approx(d * EPS**2 / 3, rel=1e-15)
    assert sq_norm_exact(d, EPS, 2 * EPS) == pytest.approx(d * EPS**2, rel=1e-15)
    beyond = np.array([2.01, 2.5, 3.0, 5.0, 10.0]) * EPS
    np.testing.assert_allclose(sq_norm_exact(d, EPS, beyond), d * EPS**2, rtol=1e-15)
    printed = lemma1_formula(d, EPS, beyond)
    assert np.all(printed < d * EPS**2 * (1 - 1e-6))
    np.testing.assert_allclose(d * EPS**2 - printed,
                               d * (beyond - 2 * EPS) ** 2 * (beyond + EPS) / (6 * EPS), rtol=1e-9)
    assert lemma1_formula(d, EPS, 5 * EPS) < 0                   # a negative "squared norm"
    # and the samples side with the piecewise form: every coordinate is ±ε for α ≥ 2ε
    sq = sample_sq_norms(d, EPS, 3 * EPS, 20, seed=SEED)
    np.testing.assert_allclose(sq, d * EPS**2, rtol=1e-12)
    # monotone on [0, 2ε], from ε√(d/3) to ε√d
    b = bound_norm(d, EPS, inside)
    assert np.all(np.diff(b) > 0)
    assert b[0] == pytest.approx(EPS * math.sqrt(d / 3)) and b[-1] == pytest.approx(EPS * math.sqrt(d))
    with pytest.raises(ValueError):
        sq_norm_exact(d, EPS, -0.1)
    with pytest.raises(ValueError):
        sq_norm_exact(0, EPS, 0.1)


def test_fgsm_equivalent_eps_is_about_7_over_255():
    """α = 1.25ε: E δᵢ² = ε²(−125/384 + 25/32 + 1/3) = (101/128)ε², so ε' = 8√(101/128)/255."""
    val = fgsm_equivalent_eps(EPS, 1.25 * EPS) * 255
    assert val == pytest.approx(8 * math.sqrt(101 / 128), rel=1e-14)
    assert round(val) == 7 and 7.1 < val < 7.11
    assert fgsm_equivalent_eps(EPS, 0.0) == pytest.approx(EPS / math.sqrt(3))


# --- CLI (the contract itself is tests/test_contract.py) -----------------------------------------------
def test_cli_payload_defaults():
    out = run_cli("toymodels.fgsm", ["--samples", "2000", "--json"]).json
    c = out["config"]
    assert c["d"] == 3072 and c["eps"] == pytest.approx(8 / 255) and c["alpha"] == pytest.approx(10 / 255)
    assert c["alpha_over_eps"] == pytest.approx(1.25) and c["samples"] == 2000 and c["sign"] == "random"
    assert out["closed_form_sq_norm"] == pytest.approx(3072 * (8 / 255) ** 2 * 101 / 128, rel=1e-14)
    assert out["bound_norm"] == pytest.approx(math.sqrt(out["closed_form_sq_norm"]), rel=1e-15)
    u = out["fgsm_equivalent_eps_units"]
    assert u["unit"] == "1/255" and u["closed_form"] == pytest.approx(8 * math.sqrt(101 / 128), rel=1e-12)
    se = math.sqrt(sq_norm_variance(3072, 8 / 255, 10 / 255) / 2000)
    assert abs(out["mc_sq_norm"] - out["closed_form_sq_norm"]) <= K_SE * se
    assert out["mc_norm"] <= out["bound_norm"] + K_SE * se and out["samples_per_s"] > 0


def test_cli_alpha_forms_and_histogram(tmp_path):
    base = ["--d", "10", "--eps", "0.125", "--samples", "1e3", "--sign", "plus", "--seed", "3", "--json"]
    r = run_cli("toymodels.fgsm", base + ["--alpha", "0.1875", "--out", tmp_path])
    assert r.rc == 0, r.err
    obj = r.json
    assert obj["config"]["alpha"] == 0.1875 and obj["config"]["samples"] == 1000
    assert (tmp_path / "norm_hist.png").stat().st_size > 1000
    for alpha in ("3/16", "1.5eps", "1.5*eps", "3/2 eps"):       # the same α (exact in binary), four more ways
        assert run_cli("toymodels.fgsm", base + ["--alpha", alpha]).json["mc_sq_norm"] == obj["mc_sq_norm"], alpha
    r = run_cli("toymodels.fgsm", ["--eps", "4/255", "--alpha", "2eps", "--d", "5", "--samples", "10"])
    assert r.rc == 0 and "(4/255)" in r.out and "E‖δ‖₂²" in r.out and "samples/s" in r.out


@pytest.mark.parametrize("args", [["--alpha", "2.5eps"], ["--eps", "8/255", "--alpha", "17/255"],
                                  ["--alpha", "3eps", "--samples", "1e9"]])
def test_cli_alpha_beyond_lemma1_range_exits_2(args):
    """α ≤ 2ε involves two flags, so the contract test cannot know it; checked before any work."""
    r = run_cli("toymodels.fgsm", args)
    assert r.rc == 2 and r.out == "" and len(r.err_lines) == 1
    assert "--alpha" in r.err and "[0, 2*eps]" in r.err


def test_library_errors_name_fields():
    with pytest.raises(ConfigError, match="^d must be an integer in \\[1, 1000000000\\]"):
        simulate(FGSMConfig(d=10 ** 12))
    with pytest.raises(ConfigError, match="^eps must be"):
        sample_sq_norms(3, 1e300, 0.0, 2)
    with pytest.raises(ConfigError, match="^backend must be one of"):
        sample_sq_norms(3, 0.1, 0.1, 2, backend="nunba")
    with pytest.raises(ConfigError, match="^samples must be < 2\\^62 / d"):
        sample_sq_norms(10 ** 9, 0.1, 0.1, 2 ** 40)


# --- figure, proofs_check, bench -----------------------------------------------------------------
def test_figure_2_2_renders_quick(tmp_path):
    figures = pytest.importorskip("figures")
    reg = figures.registry()
    assert reg["2.2"].thesis_figure == "2.2"
    rec = figures.render(reg["2.2"], tmp_path, figures.Context(quick=True))
    assert (tmp_path / "fig_2.2.png").stat().st_size > 5000
    s = rec["summary"]
    assert s["bound_over_fgsm_at_1.25eps"] == pytest.approx(math.sqrt(101 / 128), rel=1e-12)
    assert s["bound_range_over_fgsm"] == pytest.approx([1 / math.sqrt(3), 1.0], rel=1e-12)
    # Jensen gap shrinks with d (the bound "becomes increasingly tight")
    gaps = [s["max_rel_jensen_gap"][str(d)] for d in s["dims"]]
    assert all(g1 > g2 for g1, g2 in zip(gaps, gaps[1:]))


FGSM_CHECKS = ["fgsm.lemma1_integral_sign_plus", "fgsm.lemma1_integral_sign_minus", "fgsm.lemma1_bound_range",
               "fgsm.sq_norm_beyond_2eps", "fgsm.lemma1_dependent_sign", "fgsm.closed_forms_numeric",
               "fgsm.equivalent_step_7_255"]


def test_proofs_check_fgsm_pass():
    import proofs_check

    res = proofs_check.run_checks(FGSM_CHECKS)
    assert [r["name"] for r in res] == FGSM_CHECKS
    assert all(r["passed"] for r in res), [r for r in res if not r["passed"]]


def test_proofs_check_fgsm_reject_perturbed_formulas():
    import sympy as sp

    from proofs_check import fgsm as F

    wrong_const = lambda e, a: -a**3 / (6 * e) + a**2 / 2 + e**2 / 4          # noqa: E731
    wrong_cubic = lambda e, a: -a**3 / (3 * e) + a**2 / 2 + e**2 / 3          # noqa: E731
    for fn in (F.lemma1_integral_plus, F.lemma1_integral_minus, F.lemma1_bound_range, F.equivalent_step):
        assert fn(wrong_const)[0] is False and fn(wrong_cubic)[0] is False
    # the printed cubic is not the value beyond 2ε
    assert F.sq_norm_beyond_2eps(F.lemma1_coord_formula)[0] is False
    # a dependent-sign formula with the wrong cubic coefficient, or the lemma's own cubic
    bad_out = lambda e, a: sp.Piecewise((e**2 / 3 + a * e - a**3 / (6 * e), a <= e), (e**2, True))  # noqa: E731
    assert F.lemma1_dependent_sign(bad_out)[0] is False
    assert F.lemma1_dependent_sign(F.lemma1_coord_formula)[0] is False
    # the package's numeric function replaced by the printed cubic (wrong beyond 2ε)
    assert F.closed_forms_numeric({"coord_sq_moment": F.lemma1_coord_formula})[0] is False


def test_bench_workload_registered_and_consistent():
    from toymodels.bench import BenchContext, load_builtin, run_workload

    wl = load_builtin()["fgsm_mc_1e6"]
    row = run_workload(wl, BenchContext(repeats=1, quick=True, numpy_budget_s=0.1))
    assert row["samples"] == 100_000 and row["d"] == 100
    assert row["max_rel_diff"] == 0.0 and row["meets_target"] is None
