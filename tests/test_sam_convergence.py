"""Tests of toymodels.samconv: SAM convergence bounds (thesis Thm 5.6.1, Thm 5.10.1–5.10.5, Lemmas 3–6).

Monte-Carlo tests use R independent runs with seeds SEED0..SEED0+R−1 and a 5-standard-error tolerance;
they pass for every SEED0 in 0–99 (verified once by looping SEED0 outside the suite).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from toymodels.samconv import bounds as Bd
from toymodels.samconv.problems import (ConcaveCap, convex_quadratic, least_squares, quadratic, sine,
                                        sine_pl_constant)
from toymodels.samconv.run import (draw_batches, sam_full_batch, sam_stochastic, sam_stochastic_many,
                                   sam_stochastic_reference)
from toymodels.samconv.table import build_rows

ROOT = Path(__file__).resolve().parents[1]
SEED0 = int(os.environ.get("SAMCONV_SEED0", "0"))   # any value in 0–99 must pass


# ---------------------------------------------------------------- problems: constants checked independently
def _torch_loss(p, w):
    w = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    L = (torch.tensor(p.a) * w ** 2 / 2 + 3 * torch.tensor(p.s) * torch.sin(w) ** 2).sum()
    L.backward()
    return float(L.detach()), w.grad.numpy()


@pytest.mark.parametrize("make", [quadratic, convex_quadratic, lambda: sine(d=2)])
def test_separable_gradient_sigma_beta(make):
    p = make()
    rng = np.random.default_rng(1)
    for _ in range(5):
        w = 3 * rng.standard_normal(p.d)
        L, g = _torch_loss(p, w)
        assert np.isclose(p.loss(w), L) and np.allclose(p.grad(w), g)
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


# ---------------------------------------------------------------- kernels vs numpy reference
@pytest.mark.parametrize("same", [False, True])
def test_kernel_matches_reference(same):
    p = sine(d=3)
    T = 200
    I, J = draw_batches(np.random.default_rng(3), p.n, 4, T, same)
    g, r = Bd.thm5105_pl_steps(p.beta, p.mu, T)
    L1, g1 = sam_stochastic(p, np.full(3, 1.7), g, r, I, J)
    L2, g2 = sam_stochastic_reference(p, np.full(3, 1.7), g, r, I, J)
    np.testing.assert_allclose(L1, L2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)


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
    rng = np.random.default_rng(SEED0)
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
    """R = 100 runs (seeds SEED0..SEED0+99), T = 64, γ = 1/(√Tβ), ρ = 1/(T^{1/4}β)."""
    p = quadratic(mu=0.5, beta=4.0, noise=1.0)
    T, b, R = 64, 1, 100
    gam, rho = Bd.thm5105_avg_steps(p.beta, T)
    w0 = np.full(p.d, 2.0)
    _, g2 = sam_stochastic_many(p, w0, np.full(T, gam), np.full(T, rho), b, range(SEED0, SEED0 + R), same)
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
        Ls, _ = sam_stochastic_many(p, w0, gs, rs, b, range(SEED0, SEED0 + R), same)
        m, se = Ls[:, T].mean(), Ls[:, T].std(ddof=1) / math.sqrt(R)
        assert m - 5 * se <= Bd.thm5105_pl(p.loss(w0), p.beta, p.mu, p.sigma2, b, T)


# ---------------------------------------------------------------- table + CLI
def test_table_rows_as_expected():
    rows = build_rows(seeds=range(SEED0, SEED0 + 30), fast=True)
    for r in rows:
        assert r["holds"] == r["expect_hold"], r
        if r["expect_hold"]:
            assert r["lhs"] - 5 * r["se"] <= r["rhs"] + 1e-12 * max(1, abs(r["rhs"]))
    names = {r["theorem"].split(" (")[0] for r in rows}
    assert {"Lemma 3", "Lemma 4", "Lemma 5", "Lemma 6", "Thm 5.10.1", "Thm 5.10.2", "Thm 5.10.3",
            "Thm 5.10.4", "Thm 5.10.5 n-SAM", "Thm 5.6.1 m-SAM"} <= names


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "toymodels.samconv", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_json_and_bad_input(tmp_path, capsys):
    proc = _cli("--json", "--fast", "--seeds", "20", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert {"rows", "counterexample", "all_as_expected", "config", "version"} <= set(obj)
    assert obj["config"] == {"seeds": 20, "seed": 0, "fast": True} and obj["all_as_expected"] is True
    assert obj["counterexample"]["rho=1/beta"]["max_abs_move"] == 0.0
    assert (tmp_path / "samconv.json").exists()
    from toymodels._cli import run_main
    from toymodels.samconv.__main__ import PROG, main

    capsys.readouterr()
    assert run_main(main, ["--seeds", "1"], prog=PROG) == 2     # in-process: same code path as the CLI
    bad = capsys.readouterr()
    assert bad.out == ""
    assert len(bad.err.strip().splitlines()) == 1 and "--seeds" in bad.err


def test_proofs_check_samconv_rejects_printed_formulas():
    import sympy as sp
    from proofs_check import samconv as pc
    G, R, B, D0, T, S2, BS = pc.G, pc.R, pc.B, pc.D0, pc.T, pc.S2, pc.BS
    assert pc.lemma4_smooth_coefficient()[0] and not pc.lemma4_smooth_coefficient(G * (1 - R * B))[0]
    assert pc.lemma4_convex_step_condition()[0] and not pc.lemma4_convex_step_condition(2 - G * B * (2 - R * B))[0]
    assert pc.thm5102_sum_upper_limit()[0] and not pc.thm5102_sum_upper_limit(extra_terms=1)[0]
    printed = 4 * D0 / (B * sp.sqrt(T)) + 8 * S2 / (BS * sp.sqrt(T))
    assert pc.thm5105_constants()[0] and not pc.thm5105_constants(printed)[0]
    assert pc.rho_fixed_point()[0] and not pc.rho_fixed_point(1 / (2 * B))[0]


def test_sam_convergence_alias_same_table(capsys):
    """``python -m toymodels.sam_convergence`` (issue 5's name) runs the samconv command: same JSON rows,
    its own program name in errors, and a text table with theorem / measured / bound / ratio / verdict."""
    from toymodels._cli import run_main
    from toymodels.samconv.__main__ import main as samconv_main
    from toymodels.sam_convergence.__main__ import PROG, main as alias_main

    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    h = subprocess.run([sys.executable, "-m", "toymodels.sam_convergence", "--help"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert h.returncode == 0 and h.stdout.startswith("usage: python -m toymodels.sam_convergence"), h.stderr
    assert "--json" in h.stdout and "--seeds" in h.stdout
    capsys.readouterr()
    assert alias_main(["--json", "--fast", "--seeds", "5"]) == 0
    oa = json.loads(capsys.readouterr().out)
    assert samconv_main(["--json", "--fast", "--seeds", "5"]) == 0
    ob = json.loads(capsys.readouterr().out)
    assert oa["rows"] == ob["rows"] and oa["config"] == ob["config"]
    for r in oa["rows"]:
        assert {"theorem", "measured", "bound", "ratio", "verdict"} <= set(r)
        assert (r["measured"], r["bound"]) == ((r["rhs"], r["lhs"]) if r["kind"] == "lower" else (r["lhs"], r["rhs"]))
        if r["expect_hold"]:
            assert r["verdict"] == ("holds" if r["holds"] else "VIOLATED")
        else:
            assert r["verdict"].startswith("violated")
    assert alias_main(["--fast", "--seeds", "5"]) == 0
    out = capsys.readouterr().out
    header = [ln for ln in out.splitlines() if ln.startswith("theorem")][0].split()
    assert header[:1] == ["theorem"] and {"measured", "bound", "ratio", "verdict"} <= set(header)
    assert run_main(alias_main, ["--seeds", "0"], prog=PROG) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.startswith("python -m toymodels.sam_convergence") and "--seeds" in err.err


def test_proofs_check_lemma3_quadratic_and_logistic_constants():
    import sympy as sp
    from proofs_check import samconv as pc
    assert pc.lemma3_quadratic()[0]
    assert not pc.lemma3_quadratic(alpha_smooth=-pc.B / 2)[0]          # a better constant than −β is false
    assert not pc.lemma3_quadratic(alpha_convex=sp.Rational(1, 10))[0]
    assert not pc.lemma3_quadratic(alpha_strong=2 * pc.MU)[0]
    assert pc.logistic_smoothness()[0] and not pc.logistic_smoothness(sp.Rational(1, 2))[0]
