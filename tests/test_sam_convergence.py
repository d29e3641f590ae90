"""Tests of toymodels.sam_convergence: SAM convergence bounds (thesis Thm 5.6.1, Thm 5.10.1–5.10.5, Lemmas 3–6).

Monte-Carlo tests use R independent runs (run r draws its batches from the random stream (SEED, "run", r)) or
M draws from default_rng(SEED), with a 5-standard-error tolerance; they pass for every SEED in 0–99 (verified
once by looping SAM_CONVERGENCE_SEED = 0..99 outside the suite, after the switch to named streams).
Kernel = numpy reference: tests/test_kernel_parity.py (registry); the CLI contract: tests/test_contract.py.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from helpers import fd_grad, run_cli

from toymodels.sam_convergence import bounds as Bd
from toymodels.sam_convergence.problems import (ConcaveCap, convex_quadratic, least_squares, quadratic, sine,
                                                sine_pl_constant)
from toymodels.sam_convergence.run import (draw_batches, sam_full_batch, sam_stochastic, sam_stochastic_many,
                                           sam_stochastic_reference)
from toymodels.sam_convergence.table import build_rows

SEED = int(os.environ.get("SAM_CONVERGENCE_SEED", "0"))   # any value in 0–99 must pass


# ---------------------------------------------------------------- problems: constants checked independently
def _loss_and_grad(p, w):
    """L(w) = Σ_k a_k w_k²/2 + 3 s_k sin² w_k written out (independently of problems.py), its gradient by
    torch autograd when torch is installed, else by central finite differences."""
    def f(v):
        return float(np.sum(p.a * v ** 2 / 2 + 3 * p.s * np.sin(v) ** 2))
    try:
        import torch
    except ImportError:
        return f(w), fd_grad(f, w)
    t = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    L = (torch.tensor(p.a) * t ** 2 / 2 + 3 * torch.tensor(p.s) * torch.sin(t) ** 2).sum()
    L.backward()
    return f(w), t.grad.numpy()


@pytest.mark.parametrize("make", [quadratic, convex_quadratic, lambda: sine(d=2)])
def test_separable_gradient_sigma_beta(make):
    p = make()
    rng = np.random.default_rng(1)
    for _ in range(5):
        w = 3 * rng.standard_normal(p.d)
        L, g = _loss_and_grad(p, w)
        assert np.isclose(p.loss(w), L) and np.allclose(p.grad(w), g, atol=1e-7)
        # (A1): per-sample deviation is −c_i, so E‖∇ℓ_i − ∇L‖² = σ² for every w (computed from all n)
        dev = np.array([p.grad_batch(w, [i]) for i in range(p.n)]) - p.grad(w)
        assert np.isclose(np.mean(np.sum(dev ** 2, 1)), p.sigma2)
    # β: largest |L''| on a grid by finite differences of the gradient, coordinatewise (separable)
    x = np.linspace(-6, 6, 120_001)
    for k in range(p.d):
        e = np.zeros(p.d)
        e[k] = 1
        gk = np.array([p.grad(xi * e)[k] for xi in x[::100]])
        curv = np.diff(gk) / np.diff(x[::100])
        assert curv.max() <= p.beta + 1e-9
    assert np.isclose(np.max(np.abs(p.a + 6 * p.s)), p.beta)


def test_sine_pl_constant():
    """½f'² ≥ μ f on a dense grid (f = x² + 3 sin² x), tight to 1e-6, and μ > 1/32 (Karimi et al.)."""
    mu = sine_pl_constant()
    x = np.concatenate([np.linspace(-50, 50, 1_000_003), [2.2017, -2.2017]])
    x = x[np.abs(x) > 1e-9]
    f = x ** 2 + 3 * np.sin(x) ** 2
    fp = 2 * x + 3 * np.sin(2 * x)
    assert np.all(0.5 * fp ** 2 >= mu * f * (1 - 1e-12))
    assert np.min(0.5 * fp ** 2 / f) < mu + 1e-6
    assert 1 / 32 < mu < 0.18


def test_least_squares_constants():
    p = least_squares()
    ev = np.linalg.eigvalsh(p.X.T @ p.X / p.X.shape[0])
    assert np.isclose(p.beta, ev[-1]) and np.isclose(p.mu, ev[0])
    ws = p.w_star()
    assert np.allclose(p.grad(ws), 0, atol=1e-12)
    eps = 1e-6
    w = np.ones(p.X.shape[1])
    fd = [(p.loss(w + eps * e) - p.loss(w - eps * e)) / (2 * eps) for e in np.eye(w.size)]
    assert np.allclose(fd, p.grad(w), atol=1e-7)


# ---------------------------------------------------------------- the kernel is SAM on the problem
@pytest.mark.parametrize("same", [False, True])
def test_kernel_is_sam_on_the_problem(same):
    """Both backends of ``sam_stochastic`` against the iteration written with the problem's own
    ``grad_batch`` (an oracle independent of the kernel's formulas; kernel = reference: the registry);
    an unknown backend is a ConfigError."""
    from toymodels.errors import ConfigError

    p = sine(d=3)
    T = 200
    I, J = draw_batches(np.random.default_rng(3), p.n, 4, T, same)
    g, r = Bd.thm5105_pl_steps(p.beta, p.mu, T)
    L2, g2 = sam_stochastic_reference(p, np.full(3, 1.7), g, r, I, J)
    for backend in ("numba", "numpy"):
        L1, g1 = sam_stochastic(p, np.full(3, 1.7), g, r, I, J, backend=backend)
        np.testing.assert_allclose(L1, L2, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)
    with pytest.raises(ConfigError, match="backend"):
        sam_stochastic(p, np.full(3, 1.7), g, r, I, J, backend="cuda")


def test_runs_draw_from_named_streams():
    """Run r of ``sam_stochastic_many`` is the run on the batches of stream (seed, "run", r), whatever the
    number of runs; seeds 0 and 1 share no run."""
    from toymodels.rng import stream

    p = sine(d=2)
    g, r = Bd.thm5105_pl_steps(p.beta, p.mu, 50)
    L5, _ = sam_stochastic_many(p, np.full(2, 2.0), g, r, 4, 5, seed=7)
    L2, _ = sam_stochastic_many(p, np.full(2, 2.0), g, r, 4, 2, seed=7)
    np.testing.assert_array_equal(L5[:2], L2)
    I, J = draw_batches(stream(7, "run", 3), p.n, 4, 50, False)
    np.testing.assert_array_equal(L5[3], sam_stochastic(p, np.full(2, 2.0), g, r, I, J)[0])
    L0, _ = sam_stochastic_many(p, np.full(2, 2.0), g, r, 4, 2, seed=0)
    L1, _ = sam_stochastic_many(p, np.full(2, 2.0), g, r, 4, 2, seed=1)
    assert not np.array_equal(L0[1], L1[0])


def test_full_batch_divergence_reported():
    p = quadratic()
    with pytest.raises(FloatingPointError, match="step"), np.errstate(all="ignore"):
        sam_full_batch(p, np.ones(p.d), np.full(2000, 10.0), np.full(2000, 1.0))


# ---------------------------------------------------------------- Lemma 3 (three cases) and Lemma 4
def _sam_dir(p, w, rho):
    # independent of run.py: the SAM direction from the problem's gradient
    return p.grad(w + rho * p.grad(w))


@pytest.mark.parametrize("case", ["smooth", "convex", "strongly_convex"])
def test_lemma3_alignment(case):
    p = {"smooth": sine(d=2), "convex": convex_quadratic(), "strongly_convex": quadratic()}[case]
    alpha = {"smooth": -p.beta, "convex": 0.0, "strongly_convex": p.mu}[case]
    rng = np.random.default_rng(4)
    for _ in range(500):
        w = 3 * rng.standard_normal(p.d)
        rho = rng.uniform(0, 3 / p.beta)
        g = p.grad(w)
        assert _sam_dir(p, w, rho) @ g >= (1 + alpha * rho) * (g @ g) - 1e-10
    # tightness (the constant cannot be improved): 1-D quadratic with curvature exactly α gives equality
    if case == "strongly_convex":
        q = quadratic(d=1, mu=p.mu, beta=p.mu)
        g = q.grad(np.array([1.3]))
        assert np.isclose(_sam_dir(q, np.array([1.3]), 0.7) @ g, (1 + p.mu * 0.7) * (g @ g))
    elif case == "smooth":
        c = ConcaveCap(beta=2.0)
        x = np.array([0.3])
        g = c.grad(x)
        assert np.isclose(c.grad(x + 0.2 * g) @ g, (1 - 2.0 * 0.2) * (g @ g))


def test_lemma4_second_part_printed_condition_and_pl_fail():
    """Printed γβ(2 − ρβ) ≤ 2 admits γ = 19/β at ρβ = 1.9, where SAM on L = βx²/2 increases the loss; under
    the corrected γβ(2 + ρβ) ≤ 2 the bound holds; on x² + 3sin²x (PL, not convex) it fails even then."""
    q = quadratic(d=1, mu=1.0, beta=1.0)
    x = np.array([1.0])
    gam, rho = 19.0, 1.9
    assert gam * (2 - rho) <= 2
    dec = q.loss(x) - q.loss(x - gam * _sam_dir(q, x, rho))
    assert dec < Bd.lemma4_convex(1.0, gam, rho, 1.0, 1.0)
    rng = np.random.default_rng(5)
    for _ in range(300):
        w = 3 * rng.standard_normal(1)
        rho = rng.uniform(0, 2)
        gam = rng.uniform(0, 1) * 2 / (2 + rho)
        g = q.grad(w)
        assert q.loss(w) - q.loss(w - gam * _sam_dir(q, w, rho)) >= Bd.lemma4_convex(g @ g, gam, rho, 1, 1) - 1e-12
    s = sine(d=1)
    rho = np.linspace(0, 2 / s.beta, 41)[:, None, None]
    gam = np.linspace(0, 1, 41)[None, :, None] * 2 / (s.beta * (2 + rho * s.beta))
    w = np.linspace(-4, 4, 161)[None, None, :]
    g = 2 * w + 3 * np.sin(2 * w)                   # f'(w), written out (independent of problems.py)
    f = lambda x: x ** 2 + 3 * np.sin(x) ** 2
    wh = w + rho * g
    dec = f(w) - f(w - gam * (2 * wh + 3 * np.sin(2 * wh)))
    worst = np.max(Bd.lemma4_convex(g * g, gam, rho, s.beta, s.mu) - dec)
    assert worst > 1e-3


# ---------------------------------------------------------------- counterexample ρ = 1/β
def test_rho_one_over_beta_fixed_point_not_stationary():
    beta = 3.0
    c = ConcaveCap(beta)
    x = np.linspace(-5, 5, 100_001)
    slopes = np.abs(np.diff(c.grad(x)) / np.diff(x))
    assert slopes.max() <= beta * (1 + 1e-9)          # β-smooth
    assert c.loss(x).min() >= -beta - 1e-12            # bounded below
    for x0 in (-0.9, -0.2, 0.05, 0.5):
        W, L, g2 = sam_full_batch(c, [x0], np.full(50, 0.3 / beta), np.full(50, 1 / beta))
        assert np.all(W[:, 0] == x0)                   # fixed point of (5.20)
        assert math.isclose(math.sqrt(g2[-1]), beta * abs(x0))   # but |L'(x0)| = β|x0| ≠ 0
        W2, _, g22 = sam_full_batch(c, [x0], np.full(400, 0.3 / beta), np.full(400, 0.5 / beta))
        assert abs(abs(W2[-1, 0]) - 2) < 1e-8 and g22[-1] < 1e-12   # ρ < 1/β escapes to a minimizer


# ---------------------------------------------------------------- deterministic theorems, own loop
@pytest.mark.parametrize("make", [quadratic, lambda: sine(d=2), least_squares])
def test_thm5101_5102_5103(make):
    p = make()
    d = p.X.shape[1] if hasattr(p, "X") else p.d
    for gb, rb in ((0.9, 0.5), (0.3, 0.95), (0.99, 0.0)):
        gam, rho = gb / p.beta, rb / p.beta
        w = np.full(d, 2.0)
        Ls, g2 = [p.loss(w)], [p.grad(w) @ p.grad(w)]
        for _ in range(40):
            w = w - gam * _sam_dir(p, w, rho)
            Ls.append(p.loss(w))
            g2.append(p.grad(w) @ p.grad(w))
        gap0 = Ls[0] - p.L_star
        for T in (1, 5, 40):
            avg = np.mean(g2[:T])
            assert avg <= Bd.thm5101_avg(gap0, gam, rho, p.beta, T) * (1 + 1e-12)
            assert avg <= Bd.thm5102(Ls[0], Ls[T], gam, rho, p.beta, T) * (1 + 1e-12) + 1e-15
            assert Ls[T] - p.L_star <= Bd.thm5101_pl(gap0, gam, rho, p.beta, p.mu, T) * (1 + 1e-12) + 1e-15
            assert Ls[T] - p.L_star <= Bd.thm5103(gap0, gam, rho, p.beta, p.mu, T) * (1 + 1e-12) + 1e-15


def test_thm5102_printed_sum_fails():
    q = quadratic(d=1, mu=1.0, beta=1.0)
    x0, x1 = 1.0, 1.0 - 0.5 * 1.0                     # GD (ρ = 0), γ = 1/(2β)
    lhs_printed = (x0 ** 2 + x1 ** 2) / 1             # Σ_{t=0}^{T} with T = 1
    assert lhs_printed > Bd.thm5102(q.loss(np.array([x0])), q.loss(np.array([x1])), 0.5, 0.0, 1.0, 1)
    assert x0 ** 2 <= Bd.thm5102(q.loss(np.array([x0])), q.loss(np.array([x1])), 0.5, 0.0, 1.0, 1)


@pytest.mark.parametrize("make", [convex_quadratic, quadratic, least_squares])
def test_thm5104(make):
    p = make()
    d = p.X.shape[1] if hasattr(p, "X") else p.d
    for gb, rb in ((0.5, 2.0), (0.9, 0.5), (0.1, 8.0)):
        gam, rho = gb / p.beta, rb / p.beta
        assert gam * p.beta * (1 + rho * p.beta) < 2
        w0 = np.linspace(-2, 3, d)
        ws = p.w_star(w0)
        d0 = np.sum((w0 - ws) ** 2)
        W = [w0]
        for _ in range(60):
            W.append(W[-1] - gam * _sam_dir(p, W[-1], rho))
        for T in (1, 10, 60):
            assert p.loss(np.mean(W[:T], 0)) - p.L_star <= Bd.thm5104_avg(d0, gam, rho, p.beta, T) + 1e-15
            if p.mu > 0:
                assert np.sum((W[T] - ws) ** 2) <= Bd.thm5104_sc(d0, gam, rho, p.beta, p.mu, T) + 1e-15


# ---------------------------------------------------------------- stochastic: Lemmas 5, 6 (MC vs closed form)
def test_lemma5_lemma6_mc_closed_form():
    """Shared-Hessian quadratic A = diag(a): E⟨∇L_I(w + ρ∇L_J(w)), g⟩ = gᵀA(I + ρA)w exactly and
    E L(w⁺) = L(E w⁺) + (γ²ρ² tr(A³Σ) + γ² tr(AΣ))/(2b), Σ = CᵀC/n. M = 20 000 draws, 5 s.e."""
    p = quadratic(noise=1.0)
    A = p.a
    Sig = p.C.T @ p.C / p.n
    w = np.full(p.d, 1.5)
    g = p.grad(w)
    rho, gam, b = 1 / (4 * p.beta), 1 / (2 * p.beta), 1
    rng = np.random.default_rng(SEED)
    M = 20_000
    I, J = rng.integers(0, p.n, M), rng.integers(0, p.n, M)
    wh = w + rho * (g - p.C[J])
    inner = (A * wh - p.C[I]) @ g
    exact_inner = g @ (A * (w + rho * A * w))
    assert abs(inner.mean() - exact_inner) <= 5 * inner.std(ddof=1) / math.sqrt(M)
    assert exact_inner >= Bd.lemma5(g @ g, rho, p.beta, p.sigma2)
    Lp = p.loss(w - gam * (A * wh - p.C[I]))
    mean_w = w - gam * A * (w + rho * A * w)
    exact_L = p.loss(mean_w) + (gam ** 2 * rho ** 2 * np.trace(np.diag(A ** 3) @ Sig)
                                + gam ** 2 * np.trace(np.diag(A) @ Sig)) / (2 * b)
    assert abs(Lp.mean() - exact_L) <= 5 * Lp.std(ddof=1) / math.sqrt(M)
    assert exact_L <= Bd.lemma6(p.loss(w), g @ g, gam, rho, p.beta, p.sigma2)


# ---------------------------------------------------------------- Thm 5.10.5 / 5.6.1 (MC over runs)
@pytest.mark.parametrize("same", [False, True])
def test_thm5105_avg_grad_corrected_holds_printed_fails(same):
    """R = 100 runs (streams (SEED, "run", r)), T = 64, γ = 1/(√Tβ), ρ = 1/(T^{1/4}β)."""
    p = quadratic(mu=0.5, beta=4.0, noise=1.0)
    T, b, R = 64, 1, 100
    gam, rho = Bd.thm5105_avg_steps(p.beta, T)
    w0 = np.full(p.d, 2.0)
    _, g2 = sam_stochastic_many(p, w0, np.full(T, gam), np.full(T, rho), b, R, SEED, same)
    x = g2[:, :T].mean(1)
    m, se = x.mean(), x.std(ddof=1) / math.sqrt(R)
    gap0 = p.loss(w0)
    assert m - 5 * se <= 4 * p.beta * gap0 / math.sqrt(T) + 8 * p.sigma2 / (b * math.sqrt(T))
    assert np.isclose(Bd.thm5105_avg_corrected(gap0, p.beta, p.sigma2, b, T),
                      4 * p.beta * gap0 / 8 + p.sigma2)
    if not same:
        assert m - 5 * se > Bd.thm5105_avg(gap0, p.beta, p.sigma2, b, T)   # printed 4/(β√T): violated


@pytest.mark.parametrize("make,b", [(lambda: quadratic(noise=1.0), 1), (lambda: sine(d=2), 4)])
def test_thm5105_pl_schedule(make, b):
    p = make()
    T, R = 128, 100
    gs, rs = Bd.thm5105_pl_steps(p.beta, p.mu, T)
    assert np.all(gs <= 1 / (2 * p.beta) + 1e-15) and np.allclose(rs, np.sqrt(gs / p.beta))
    w0 = np.full(p.d, 2.0)
    for same in (False, True):
        Ls, _ = sam_stochastic_many(p, w0, gs, rs, b, R, SEED, same)
        m, se = Ls[:, T].mean(), Ls[:, T].std(ddof=1) / math.sqrt(R)
        assert m - 5 * se <= Bd.thm5105_pl(p.loss(w0), p.beta, p.mu, p.sigma2, b, T)


# ---------------------------------------------------------------- table + CLI
def test_table_rows_as_expected():
    rows = build_rows(seed=SEED, runs=30, fast=True)
    for r in rows:
        assert r["holds"] == r["expect_hold"], r
        if r["expect_hold"]:
            assert r["lhs"] - 5 * r["se"] <= r["rhs"] + 1e-12 * max(1, abs(r["rhs"]))
    names = {r["theorem"].split(" (")[0] for r in rows}
    assert {"Lemma 3", "Lemma 4", "Lemma 5", "Lemma 6", "Thm 5.10.1", "Thm 5.10.2", "Thm 5.10.3",
            "Thm 5.10.4", "Thm 5.10.5 n-SAM", "Thm 5.6.1 m-SAM"} <= names


def test_cli_payload_table_and_cross_checks():
    """The payload's content and the text table (the contract test covers the format and bad values)."""
    r = run_cli("toymodels.sam_convergence", ["--json", "--fast", "--seeds", "20"])
    assert r.rc == 0, r.err
    obj = r.json
    assert {"rows", "counterexample", "all_as_expected", "config", "version"} <= set(obj)
    assert obj["config"] == {"seeds": 20, "seed": 0, "fast": True} and obj["all_as_expected"] is True
    assert obj["counterexample"]["rho=1/beta"]["max_abs_move"] == 0.0
    for q in obj["rows"]:
        assert {"theorem", "measured", "bound", "ratio", "verdict"} <= set(q)
        assert (q["measured"], q["bound"]) == ((q["rhs"], q["lhs"]) if q["kind"] == "lower" else (q["lhs"], q["rhs"]))
        if q["expect_hold"]:
            assert q["verdict"] == ("holds" if q["holds"] else "VIOLATED")
        else:
            assert q["verdict"].startswith("violated")
        if q["theorem"].startswith(("Thm 5.10.5", "Thm 5.6.1")):
            assert q["n"] == 20 and q["se"] > 0
    text = run_cli("toymodels.sam_convergence", ["--fast", "--seeds", "5"])
    assert text.rc == 0, text.err
    header = [ln for ln in text.out.splitlines() if ln.startswith("theorem")][0].split()
    assert header[:1] == ["theorem"] and {"measured", "bound", "ratio", "verdict"} <= set(header)
    assert "all rows as expected" in text.out


def test_proofs_check_rejects_printed_formulas():
    import sympy as sp
    from proofs_check import sam_convergence as pc
    G, R, B, D0, T, S2, BS = pc.G, pc.R, pc.B, pc.D0, pc.T, pc.S2, pc.BS
    assert pc.lemma4_smooth_coefficient()[0] and not pc.lemma4_smooth_coefficient(G * (1 - R * B))[0]
    assert pc.lemma4_convex_step_condition()[0] and not pc.lemma4_convex_step_condition(2 - G * B * (2 - R * B))[0]
    assert pc.thm5102_sum_upper_limit()[0] and not pc.thm5102_sum_upper_limit(extra_terms=1)[0]
    printed = 4 * D0 / (B * sp.sqrt(T)) + 8 * S2 / (BS * sp.sqrt(T))
    assert pc.thm5105_constants()[0] and not pc.thm5105_constants(printed)[0]
    assert pc.rho_fixed_point()[0] and not pc.rho_fixed_point(1 / (2 * B))[0]


def test_proofs_check_lemma3_quadratic_and_logistic_constants():
    import sympy as sp
    from proofs_check import sam_convergence as pc
    assert pc.lemma3_quadratic()[0]
    assert not pc.lemma3_quadratic(alpha_smooth=-pc.B / 2)[0]          # a better constant than −β is false
    assert not pc.lemma3_quadratic(alpha_convex=sp.Rational(1, 10))[0]
    assert not pc.lemma3_quadratic(alpha_strong=2 * pc.MU)[0]
    assert pc.logistic_smoothness()[0] and not pc.logistic_smoothness(sp.Rational(1, 2))[0]
