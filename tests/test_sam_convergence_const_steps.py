"""Thm 5.10.6 (n-SAM) and Thm 5.10.7 (m-SAM) with general constant γ, ρ (thesis l.2833, l.2897).

Oracle: on the 1-D noisy quadratic ℓ_i(w) = βw²/2 − c_i w (Σ c_i = 0, σ² = mean c_i²) both SAM variants are
linear recursions, so E‖∇L(w_t)‖² and E L(w_T) have closed forms (below, independent of the kernels):

    m-SAM: w⁺ = q w + γ(1+ρβ) c̄_I,         n-SAM: w⁺ = q w + γ(c̄_I + ρβ c̄_J),     q = 1 − γβ(1+ρβ),

with Var c̄ = σ²/b. The Monte-Carlo test compares the simulated mean with the closed form (R = 400 runs,
5 standard errors; passes for every SEED in 0–99, checked by looping SAM_CONVERGENCE_SEED = 0..99 outside the
suite); the bound tests use the closed forms only: the corrected / printed constants hold, deliberately smaller
constants are violated (this is what makes the measurement able to fail).
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from toymodels.sam_convergence import bounds as Bd
from toymodels.sam_convergence.problems import quadratic, sine
from toymodels.sam_convergence.run import sam_stochastic_many
from toymodels.sam_convergence.table import STEPS_5106, STEPS_5107, build_rows, const_step_rows

SEED = int(os.environ.get("SAM_CONVERGENCE_SEED", "0"))   # any value in 0–99 must pass
BETA = 4.0


def _closed_form(w0, gam, rho, beta, sigma2, b, T, same):
    """(mean_{t<T} E‖∇L(w_t)‖², E L(w_T)) on L = βw²/2 with additive batch noise of variance σ²/b."""
    q = 1 - gam * beta * (1 + rho * beta)
    v = (gam * (1 + rho * beta)) ** 2 if same else gam ** 2 * (1 + (rho * beta) ** 2)
    m = w0 ** 2
    g2 = []
    for _ in range(T):
        g2.append(beta ** 2 * m)
        m = q * q * m + v * sigma2 / b
    return float(np.mean(g2)), beta * m / 2


def _p(noise=1.0):
    return quadratic(d=1, mu=BETA, beta=BETA, noise=noise)


def test_problem_is_the_closed_form_model():
    p = _p()
    assert p.a.tolist() == [BETA] and p.beta == BETA and np.isclose(p.C.sum(), 0)
    assert np.isclose(p.sigma2, np.mean(p.C[:, 0] ** 2))


@pytest.mark.parametrize("same,steps", [(False, STEPS_5106[0]), (True, STEPS_5107[0]), (True, STEPS_5107[1])])
def test_simulation_matches_closed_form(same, steps):
    """R = 400 runs, T = 64, w0 = 1: mean over runs of (1/T)Σ‖∇L(w_t)‖² and of L(w_T) within 5 s.e."""
    p, T, R, w0 = _p(), 64, 400, 1.0
    gam, rho = steps[0] / BETA, steps[1] / BETA
    Ls, g2 = sam_stochastic_many(p, [w0], np.full(T, gam), np.full(T, rho), 1, R, SEED, same=same)
    avg_cf, LT_cf = _closed_form(w0, gam, rho, BETA, p.sigma2, 1, T, same)
    for x, ref in ((g2[:, :T].mean(1), avg_cf), (Ls[:, T], LT_cf)):
        assert abs(x.mean() - ref) <= 5 * x.std(ddof=1) / math.sqrt(R)


@pytest.mark.parametrize("w0", [0.0, 1.0, 3.0])
@pytest.mark.parametrize("T", [1, 16, 256, 4096])
def test_bounds_hold_on_closed_form(w0, T):
    """Every (γβ, ρβ) on a grid of the allowed box, b ∈ {1, 4}: corrected Thm 5.10.6 (and hence its weaker
    print), Thm 5.10.7 printed and proved."""
    p = _p()
    for b in (1, 4):
        for x in (1 / 64, 1 / 8, 1 / 4, 1 / 2):
            for y in (0.0, 1 / 8, 1 / 4, 1 / 2):
                gam, rho = x / BETA, y / BETA
                lhs, ELT = _closed_form(w0, gam, rho, BETA, p.sigma2, b, T, same=False)
                L0 = BETA * w0 ** 2 / 2
                args = (L0, ELT, gam, rho, BETA, p.sigma2, b, T)
                assert lhs <= Bd.thm5106(*args) * (1 + 1e-12) + 1e-15
                assert Bd.thm5106(*args) <= Bd.thm5106_printed(*args) + 1e-12
        for x in (1 / 64, 1 / 8, 1 / 2, 1.0):
            for y in (0.0, 1 / 16, 1 / 4):
                gam, rho = x / BETA, y / BETA
                lhs, ELT = _closed_form(w0, gam, rho, BETA, p.sigma2, b, T, same=True)
                args = (BETA * w0 ** 2 / 2, ELT, gam, rho, BETA, p.sigma2, b, T)
                assert lhs <= Bd.thm5107(*args) * (1 + 1e-12) + 1e-15
                assert Bd.thm5107(*args) <= Bd.thm5107_proved(*args)


def test_wrong_constants_rejected():
    """Deterministic part (σ = 0, w0 = 1, T = 1): one SAM step on βw²/2 decreases L by
    γ(1+ρβ)(2 − γβ(1+ρβ))/2 · ‖∇L‖² (= 15/16 γ‖∇L‖² at γβ = ρβ = 1/2, 15/32 γ‖∇L‖² at γβ = 1, ρβ = 1/4), so
    Thm 5.10.6's 4 cannot be lowered to 1 and Thm 5.10.7's 8/3 not to 2. Noise part (w0 = 0 = w*, T = 4096,
    stationary): m-SAM at γβ = 1, ρβ = 1/4 has E‖∇L‖² → (5/3)σ², so a noise constant 1 instead of 8/3 fails;
    n-SAM at γβ = 1/2, ρ = 0 has (1/3)σ², so 1/2 instead of 4 fails."""
    q0 = _p(noise=0.0)
    assert q0.sigma2 == 0
    for x, y, f, good, bad in ((0.5, 0.5, Bd.thm5106, 4.0, 1.0), (1.0, 0.25, Bd.thm5107, 8 / 3, 2.0)):
        gam, rho = x / BETA, y / BETA
        same = f is Bd.thm5107
        lhs, ELT = _closed_form(1.0, gam, rho, BETA, 0.0, 1, 1, same)
        dec = (BETA / 2 - ELT) / (gam * lhs)
        assert np.isclose(dec, (1 + y) * (2 - x * (1 + y)) / 2)
        args = (BETA / 2, ELT, gam, rho, BETA, 0.0, 1, 1)
        assert lhs <= f(*args, c_det=good) and lhs > f(*args, c_det=bad)
    p = _p()
    T = 4096
    for x, y, f, good, bad, stat in ((1.0, 0.25, Bd.thm5107, 8 / 3, 1.0, 5 / 3), (0.5, 0.0, Bd.thm5106, 4.0, 0.5, 1 / 3)):
        gam, rho = x / BETA, y / BETA
        same = f is Bd.thm5107
        lhs, ELT = _closed_form(0.0, gam, rho, BETA, p.sigma2, 1, T, same)
        assert abs(lhs / p.sigma2 - stat) < 2e-3        # stationary value (T large, w0 = w*)
        args = (0.0, ELT, gam, rho, BETA, p.sigma2, 1, T)
        assert lhs <= f(*args, c_noise=good) and lhs > f(*args, c_noise=bad)


def test_table_const_step_rows_hold():
    """Table rows of Thm 5.10.6 / 5.10.7 (fast, R = 30 runs): all hold (5 s.e.) with ratio < 1 on the 1-D
    quadratic started at w*, the tightest problem (expected ratio ≈ 0.59, m-SAM printed, γβ = 1)."""
    rows = const_step_rows(seed=SEED, runs=30, fast=True)
    assert len(rows) == 3 * (len(STEPS_5106) + 2 * len(STEPS_5107))
    for r in rows:
        assert r["holds"] and r["expect_hold"], r
    names = {r["theorem"] for r in build_rows(seed=SEED, runs=3, fast=True)}
    assert any(n.startswith("Thm 5.10.6") for n in names) and any(n.startswith("Thm 5.10.7") for n in names)


def test_table_rows_mc_se_is_that_of_z():
    """The row's se is the standard error of Z_r = avg‖∇L‖² + c·L(w_T) (c = 4/(Tγ) for Thm 5.10.6), recomputed."""
    p, T, R = sine(d=2, noise=1.0), 64, 30
    rows = [r for r in const_step_rows(seed=SEED, runs=R, fast=True)
            if r["problem"].startswith("x2+3sin2x") and r["theorem"].startswith("Thm 5.10.6 n-SAM (γβ=0.5,")]
    gam = rho = 0.5 / p.beta
    Ls, g2 = sam_stochastic_many(p, np.full(2, 2.0), np.full(T, gam), np.full(T, rho), 4, R, SEED, same=False)
    z = g2[:, :T].mean(1) + 4 / (T * gam) * Ls[:, T]
    assert len(rows) == 1 and np.isclose(rows[0]["se"], z.std(ddof=1) / math.sqrt(R))
    assert np.isclose(rows[0]["lhs"], g2[:, :T].mean())


def test_proofs_check_thm5106_5107():
    import sympy as sp
    from proofs_check import sam_convergence as pc
    assert pc.thm5106_from_lemma6()[0] and not pc.thm5106_from_lemma6(pc.T)[0]          # printed ×T
    assert pc.thm5107_from_lemma8()[0] and not pc.thm5107_from_lemma8(sp.Integer(1))[0]   # printed ρ²β
    assert pc.lemma8_proof_coefficient()[0] and not pc.lemma8_proof_coefficient(sp.Rational(3, 8))[0]
    assert pc.lemma6_proof_coefficient()[0] and not pc.lemma6_proof_coefficient(sp.Rational(1, 4))[0]
