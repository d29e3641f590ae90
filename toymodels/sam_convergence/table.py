"""Both sides of every SAM convergence bound on the test problems; one row per (statement, problem).

Every inequality is written LHS ≤ RHS (lower bounds such as Lemma 3 as bound ≤ measured), ratio = LHS/RHS,
slack = RHS − LHS. Monte-Carlo rows (expectations over the batches) report the mean over R runs and its
standard error ``se``; they hold when LHS − 5 se ≤ RHS. Rows marked ``printed`` evaluate a statement that is
wrong as printed (ERRATA.md) and are expected to fail (``expect_hold`` False).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import check_int
from ..rng import stream
from . import bounds as B
from .problems import ConcaveCap, convex_quadratic, least_squares, logistic, quadratic, sine
from .run import draw_batches, sam_full_batch, sam_stochastic_many

__all__ = ["build_rows", "counterexample", "problems_", "verdict", "logistic_rows", "const_step_rows", "MAX_RUNS"]

#: the most Monte-Carlo runs per stochastic row (the table's time grows linearly with them: ~0.1 s a run)
MAX_RUNS = 100_000


def problems_():
    return {"quad": quadratic(), "cvxquad": convex_quadratic(), "sine": sine(d=2),
            "lsq": least_squares()}


def verdict(row) -> str:
    """'holds', 'VIOLATED', or for statements wrong as printed 'violated (printed; erratum)' /
    'holds (printed; expected to fail!)'."""
    if row["expect_hold"]:
        return "holds" if row["holds"] else "VIOLATED"
    return "violated (printed; erratum)" if not row["holds"] else "holds (printed; expected to fail!)"


def _row(thm, ref, prob, lhs, rhs, se=0.0, n=1, expect_hold=True, note="", lower=False):
    """``lower``: the statement is a lower bound on the measured quantity (LHS = bound, RHS = measured);
    otherwise an upper bound (LHS = measured, RHS = bound)."""
    lhs, rhs = float(lhs), float(rhs)
    holds = bool(lhs - 5 * se <= rhs + 1e-12 * max(1.0, abs(rhs)))
    r = {"theorem": thm, "ref": ref, "problem": prob, "lhs": lhs, "rhs": rhs,
         "measured": rhs if lower else lhs, "bound": lhs if lower else rhs, "kind": "lower" if lower else "upper",
         "ratio": lhs / rhs if rhs != 0 else math.inf, "slack": rhs - lhs, "se": float(se), "n": int(n),
         "holds": holds, "expect_hold": expect_hold, "note": note}
    r["verdict"] = verdict(r)
    return r


def _worst(thm, ref, prob, lhs, rhs, note="", lower=False):
    """Deterministic bound over many sampled points: report the sample with the largest ratio."""
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    ok = np.all(lhs <= rhs + 1e-12 * np.maximum(1.0, np.abs(rhs)))
    k = int(np.argmax(lhs - rhs)) if not ok else int(np.argmax(np.where(rhs > 0, lhs / np.where(rhs > 0, rhs, 1), -np.inf)))
    r = _row(thm, ref, prob, lhs[k], rhs[k], n=lhs.size, note=note, lower=lower)
    r["holds"] = bool(ok)
    r["verdict"] = verdict(r)
    return r


def _points(rng, prob, m, scale=3.0):
    d = getattr(prob, "d", None) or (prob.X.shape[1] if hasattr(prob, "X") else 1)
    return scale * rng.standard_normal((m, d))


def _lemma3_row(p, alpha: float, kind: str, rho_max: float, rng, m: int) -> dict:
    """Lemma 3, (1 + αρ)‖g‖² ≤ ⟨∇L(w + ρg), g⟩, at m random points w and radii ρ ∈ [0, rho_max/β]."""
    W = _points(rng, p, m)
    rho = rng.uniform(0, rho_max / p.beta, m)[:, None]
    G = p.grad(W)
    inner = np.sum(p.grad(W + rho * G) * G, -1)
    return _worst(f"Lemma 3 ({kind})", "l.2623", p.name, B.lemma3(np.sum(G * G, -1), rho[:, 0], alpha),
                  inner, lower=True)


def _lemma4_smooth_row(p, rng, m):
    """Lemma 4 (smooth): the decrease of one SAM step with γ, ρ ~ U[0, 1/β] at m random points."""
    W = _points(rng, p, m)
    gam = rng.uniform(0, 1 / p.beta, m)[:, None]
    rho = rng.uniform(0, 1 / p.beta, m)[:, None]
    G = p.grad(W)
    dec = p.loss(W) - p.loss(W - gam * p.grad(W + rho * G))
    return _worst("Lemma 4 (smooth)", "l.2639", p.name,
                  B.lemma4_smooth(np.sum(G * G, -1), gam[:, 0], rho[:, 0], p.beta), dec, lower=True)


def lemma_rows(P, rng, m=2000):
    rows = []
    # Lemma 3: (1 + αρ)‖g‖² ≤ ⟨∇L(w + ρg), g⟩ over random w and ρ.
    cases = [("sine", -P["sine"].beta, "smooth, α=−β", 1.0), ("cvxquad", 0.0, "convex, α=0", 5.0),
             ("lsq", 0.0, "convex, α=0", 5.0), ("quad", P["quad"].mu, "strongly convex, α=μ", 5.0),
             ("lsq", P["lsq"].mu, "strongly convex, α=μ", 5.0)]
    for key, alpha, kind, rho_max in cases:
        rows.append(_lemma3_row(P[key], alpha, kind, rho_max, rng, m))
    # Lemma 4: guaranteed decrease ≤ actual decrease L(w) − L(w⁺) of one SAM step.
    for key in ("sine", "quad", "lsq"):
        rows.append(_lemma4_smooth_row(P[key], rng, m))
    # Second part: the proof needs 1 − γβ − γρβ²/2 ≥ 0, i.e. γβ(2 + ρβ) ≤ 2; printed γβ(2 − ρβ) ≤ 2.
    for key, cond, expect in (("quad", "corrected", True), ("lsq", "corrected", True),
                              ("sine", "corrected", False), ("quad", "printed", False)):
        p = P[key]
        W = _points(rng, p, m)
        rho = rng.uniform(0, 2 / p.beta, m)[:, None]
        sgn = 1 if cond == "corrected" else -1
        gam = rng.uniform(0, 1, m)[:, None] * 2 / (p.beta * (2 + sgn * rho * p.beta))
        G = p.grad(W)
        dec = p.loss(W) - p.loss(W - gam * p.grad(W + rho * G))
        label = {"quad": "strongly convex", "lsq": "strongly convex", "sine": "PL, non-convex"}[key]
        r = _worst(f"Lemma 4 ({label}, {cond} step cond.)", "l.2643", p.name,
                   B.lemma4_convex(np.sum(G * G, -1), gam[:, 0], rho[:, 0], p.beta, p.mu), dec,
                   note="" if expect else ("needs (strong) convexity, not only PL (ERRATA)" if key == "sine"
                                           else "gamma*beta*(2-rho*beta)<=2 must be gamma*beta*(2+rho*beta)<=2 (ERRATA)"),
                   lower=True)
        r["expect_hold"] = expect
        r["verdict"] = verdict(r)
        rows.append(r)
    return rows


def full_batch_rows(P, T=60):
    rows = []
    for key in ("quad", "sine", "lsq"):
        p = P[key]
        gam, rho = 0.9 / p.beta, 0.5 / p.beta
        w0 = np.full(p.d if hasattr(p, "d") else p.X.shape[1], 2.0)
        W, Ls, g2 = sam_full_batch(p, w0, np.full(T, gam), np.full(T, rho))
        gap0 = Ls[0] - p.L_star
        rows.append(_row("Thm 5.10.1 (avg grad)", "l.2603", p.name, g2[:T].mean(), B.thm5101_avg(gap0, gam, rho, p.beta, T)))
        rows.append(_row("Thm 5.10.1 (PL)", "l.2607", p.name, Ls[T] - p.L_star, B.thm5101_pl(gap0, gam, rho, p.beta, p.mu, T)))
        rows.append(_row("Thm 5.10.2 (sum t<T)", "l.2673", p.name, g2[:T].mean(), B.thm5102(Ls[0], Ls[T], gam, rho, p.beta, T)))
        rows.append(_row("Thm 5.10.3 (PL, linear)", "l.2689", p.name, Ls[T] - p.L_star,
                         B.thm5103(gap0, gam, rho, p.beta, p.mu, T)))
    # Thm 5.10.2 as printed, Σ_{t=0}^{T}: fails for T = 1 on the 1-D quadratic β = μ (ρ = 0 is GD).
    p = quadratic(d=1, mu=1.0, beta=1.0)
    W, Ls, g2 = sam_full_batch(p, [1.0], [0.5], [0.0])
    rows.append(_row("Thm 5.10.2 printed (sum t<=T)", "l.2673", p.name + ",T=1", g2.sum() / 1,
                     B.thm5102(Ls[0], Ls[1], 0.5, 0.0, 1.0, 1), expect_hold=False,
                     note="sum must stop at T-1 (ERRATA)"))
    for key in ("cvxquad", "lsq", "quad"):
        p = P[key]
        gam, rho = 0.5 / p.beta, 2.0 / p.beta           # γβ(1+ρβ) = 1.5 < 2; ρ > 1/β allowed when convex
        w0 = np.full(p.d if hasattr(p, "d") else p.X.shape[1], 2.0)
        W, Ls, g2 = sam_full_batch(p, w0, np.full(T, gam), np.full(T, rho))
        ws = p.w_star(w0)
        d0 = float(np.sum((w0 - ws) ** 2))
        rows.append(_row("Thm 5.10.4 (convex, avg iterate)", "l.2705", p.name,
                         p.loss(W[:T].mean(0)) - p.L_star, B.thm5104_avg(d0, gam, rho, p.beta, T)))
        if p.mu > 0:
            rows.append(_row("Thm 5.10.4 (strongly convex)", "l.2709", p.name, np.sum((W[T] - ws) ** 2),
                             B.thm5104_sc(d0, gam, rho, p.beta, p.mu, T)))
    return rows


def _mc(x):
    x = np.asarray(x, float)
    return x.mean(), x.std(ddof=1) / math.sqrt(x.size)


def stochastic_rows(seed=0, runs=100, fast=False):
    """Lemmas 5–6 by Monte Carlo (draws from the stream ``(seed, "lemma5-6")``) and Thm 5.10.5 / 5.6.1 with
    the theorems' step sizes over ``runs`` runs (run r: stream ``(seed, "run", r)``)."""
    rows = []
    R = runs
    rng = stream(seed, "lemma5-6")
    # Lemma 5 / Lemma 6: one step from a fixed w, expectation over the two batches (b = 1).
    for p in (sine(d=2, noise=1.0), quadratic(noise=1.0)):
        w = np.full(p.d, 1.5)
        g = p.grad(w)
        rho, gam = 1 / (4 * p.beta), 1 / (2 * p.beta)
        m = 20 * R
        I = rng.integers(0, p.n, m)
        J = rng.integers(0, p.n, m)
        wh = w + rho * (g - p.C[J])
        inner = (p.grad(wh) - p.C[I]) @ g
        mu_, se = _mc(inner)
        rows.append(_row("Lemma 5 (n-SAM alignment)", "l.2767", p.name, B.lemma5(g @ g, rho, p.beta, p.sigma2),
                         mu_, se=se, n=m, lower=True))
        Lp = p.loss(w - gam * (p.grad(wh) - p.C[I]))
        mu_, se = _mc(Lp)
        rows.append(_row("Lemma 6 (n-SAM descent)", "l.2791", p.name, mu_,
                         B.lemma6(p.loss(w), g @ g, gam, rho, p.beta, p.sigma2), se=se, n=m))
    T = 64 if fast else 256
    for p, b in ((quadratic(mu=0.5, beta=4.0, noise=1.0), 1), (sine(d=2, noise=1.0), 4)):
        w0 = np.full(p.d, 2.0)
        gap0 = float(p.loss(w0))
        gam, rho = B.thm5105_avg_steps(p.beta, T)
        for same, label in ((False, "Thm 5.10.5 n-SAM"), (True, "Thm 5.6.1 m-SAM")):
            Ls, g2 = sam_stochastic_many(p, w0, np.full(T, gam), np.full(T, rho), b, R, seed, same=same)
            mu_, se = _mc(g2[:, :T].mean(1))
            rows.append(_row(f"{label} (avg grad, corrected 4β)", "l.2335/2753", f"{p.name},b={b}", mu_,
                             B.thm5105_avg_corrected(gap0, p.beta, p.sigma2, b, T), se=se, n=R))
            if not same:
                rows.append(_row(f"{label} (avg grad, printed 4/β)", "l.2753", f"{p.name},b={b}", mu_,
                                 B.thm5105_avg(gap0, p.beta, p.sigma2, b, T), se=se, n=R,
                                 expect_hold=False, note="4/(β√T) must be 4β/√T (ERRATA)"))
        gs, rs = B.thm5105_pl_steps(p.beta, p.mu, T)
        for same, label in ((False, "Thm 5.10.5 n-SAM"), (True, "Thm 5.6.1 m-SAM")):
            Ls, _ = sam_stochastic_many(p, w0, gs, rs, b, R, seed, same=same)
            mu_, se = _mc(Ls[:, T])
            rows.append(_row(f"{label} (PL, decreasing steps)", "l.2339/2757", f"{p.name},b={b}", mu_,
                             B.thm5105_pl(gap0, p.beta, p.mu, p.sigma2, b, T), se=se, n=R))
    return rows


#: (γβ, ρβ) of the constant-step rows: the largest steps each theorem allows, and a small γ (noise-dominated)
STEPS_5106 = ((0.5, 0.5), (0.125, 0.5))
STEPS_5107 = ((1.0, 0.25), (0.125, 0.25))


def _const_step_rows(p, w0, b, beta, seed, runs, T, same, L_star=0.0, where=""):
    """Thm 5.10.6 (n-SAM, ``same`` False) or Thm 5.10.7 (m-SAM, printed and proved) with constant steps
    γ = x/β, ρ = y/β from STEPS_5106 / STEPS_5107. The bound contains −c·E L(w_T)/(Tγ); Monte Carlo over the
    runs of Z_r = (1/T) Σ_{t<T} ‖∇L(w_t)‖² + c·L(w_T^{(r)})/(Tγ), whose mean must be ≤ the deterministic rest
    of the bound, so ``se`` is the standard error of Z (LHS − RHS = mean Z − rest)."""
    rows = []
    L0 = float(p.loss(w0))
    if same:
        versions = [("Thm 5.10.7 m-SAM", "printed ρ²β", B.thm5107, "l.2899"),
                    ("Thm 5.10.7 m-SAM", "proved 2ρ²β", B.thm5107_proved, "l.2899/2871")]
        steps = STEPS_5107
    else:
        versions = [("Thm 5.10.6 n-SAM", "no factor T", B.thm5106, "l.2833")]
        steps = STEPS_5106
    for x, y in steps:
        gam, rho = x / beta, y / beta
        Ls, g2 = sam_stochastic_many(p, w0, np.full(T, gam), np.full(T, rho), b, runs, seed, same=same)
        avg, LT = g2[:, :T].mean(1), Ls[:, T]
        for label, what, f, ref in versions:
            args = (gam, rho, beta, p.sigma2, b, T)
            c = f(L0, 0.0, *args) - f(L0, 1.0, *args)          # coefficient of −E L(w_T)
            mu_, se = _mc(avg + c * (LT - L_star))
            rhs = f(L0 - L_star, float(np.mean(LT)) - L_star, *args)
            rows.append(_row(f"{label} (γβ={x:g}, ρβ={y:g}; {what})", ref, f"{p.name},b={b}{where}",
                             float(np.mean(avg)), rhs, se=se, n=runs))
    return rows


def const_step_rows(seed=0, runs=100, fast=False):
    """Thm 5.10.6 (n-SAM) and Thm 5.10.7 (m-SAM) with general constant γ, ρ (the largest allowed and a small
    γ) on the noisy quadratic (b = 1), x² + 3 sin² x (b = 4), and the 1-D quadratic L = βw²/2 started at its
    minimum (L(w_0) − E L(w_T) < 0: the tightest case, the stationary noise floor); ``runs`` runs of
    T = 64 (fast) or 256 steps, run r from the stream ``(seed, "run", r)``."""
    T = 64 if fast else 256
    rows = []
    for p, w0, b, where in ((quadratic(mu=0.5, beta=4.0, noise=1.0), np.full(5, 2.0), 1, ""),
                            (sine(d=2, noise=1.0), np.full(2, 2.0), 4, ""),
                            (quadratic(d=1, mu=4.0, beta=4.0, noise=1.0), np.zeros(1), 1, ",w0=0")):
        for same in (False, True):
            rows += _const_step_rows(p, w0, b, p.beta, seed, runs, T, same, where=where)
    return rows


def counterexample(beta=2.0, x0=0.4, T=100, gamma=None):
    """ρ = 1/β on :class:`ConcaveCap`: x0 ∈ (−1, 1) \\ {0} is a fixed point of SAM (5.20) with L'(x0) = −βx0 ≠ 0;
    with ρ = 0.5/β the same start escapes the cap and converges to a minimizer ±2."""
    p = ConcaveCap(beta)
    gamma = 0.5 / beta if gamma is None else gamma
    W, L, g2 = sam_full_batch(p, [x0], np.full(T, gamma), np.full(T, 1 / beta))
    W2, L2, g22 = sam_full_batch(p, [x0], np.full(T, gamma), np.full(T, 0.5 / beta))
    return {"problem": p.name, "beta": beta, "x0": x0, "T": T, "gamma": gamma,
            "rho=1/beta": {"max_abs_move": float(np.max(np.abs(W[:, 0] - x0))), "grad_norm_T": float(math.sqrt(g2[-1]))},
            "rho=0.5/beta": {"x_T": float(W2[-1, 0]), "grad_norm_T": float(math.sqrt(g22[-1]))}}


def _logistic_lemma34_rows(R, C, rng, m):
    """Lemma 3 in all three cases (ρ < 1/β in the smooth case, so that the bound is positive) and Lemma 4
    (smooth; convex / strongly convex with the corrected step condition) at m random points."""
    rows = []
    for p, alpha, kind, rho_max in ((R, -R.beta, "smooth, α=−β", 1.0), (C, 0.0, "convex, α=0", 5.0),
                                    (R, 0.0, "convex, α=0", 5.0), (R, R.mu, "strongly convex, α=μ", 5.0)):
        rows.append(_lemma3_row(p, alpha, kind, rho_max, rng, m))
    for p in (C, R):
        rows.append(_lemma4_smooth_row(p, rng, m))
        W = _points(rng, p, m)
        rho = rng.uniform(0, 2 / p.beta, m)[:, None]
        gam = rng.uniform(0, 1, m)[:, None] * 2 / (p.beta * (2 + rho * p.beta))
        G = p.grad(W)
        dec = p.loss(W) - p.loss(W - gam * p.grad(W + rho * G))
        rows.append(_worst(f"Lemma 4 ({'strongly convex' if p.mu > 0 else 'convex'}, corrected step cond.)",
                           "l.2643", p.name, B.lemma4_convex(np.sum(G * G, -1), gam[:, 0], rho[:, 0], p.beta, p.mu),
                           dec, lower=True))
    return rows


def _logistic_full_batch_rows(R, C, w0, T=60):
    """Thm 5.10.1–5.10.4 with constant steps and the smoothness β of L."""
    rows = []
    for p in (R, C):
        gam, rho = 0.9 / p.beta, 0.5 / p.beta
        W, Ls, g2 = sam_full_batch(p, w0, np.full(T, gam), np.full(T, rho))
        gap0 = Ls[0] - p.L_star
        rows.append(_row("Thm 5.10.1 (avg grad)", "l.2603", p.name, g2[:T].mean(), B.thm5101_avg(gap0, gam, rho, p.beta, T)))
        rows.append(_row("Thm 5.10.2 (sum t<T)", "l.2673", p.name, g2[:T].mean(), B.thm5102(Ls[0], Ls[T], gam, rho, p.beta, T)))
        if p.mu > 0:   # the linear rates are measured at T' = 15 (by T = 60 the gap is at rounding level)
            Tp = 15
            rows.append(_row("Thm 5.10.1 (PL)", "l.2607", f"{p.name},T={Tp}", Ls[Tp] - p.L_star,
                             B.thm5101_pl(gap0, gam, rho, p.beta, p.mu, Tp)))
            rows.append(_row("Thm 5.10.3 (PL, linear)", "l.2689", f"{p.name},T={Tp}", Ls[Tp] - p.L_star,
                             B.thm5103(gap0, gam, rho, p.beta, p.mu, Tp)))
        gam, rho = 0.5 / p.beta, 2.0 / p.beta
        W, Ls, g2 = sam_full_batch(p, w0, np.full(T, gam), np.full(T, rho))
        ws = p.w_star()
        d0 = float(np.sum((w0 - ws) ** 2))
        rows.append(_row("Thm 5.10.4 (convex, avg iterate)", "l.2705", p.name, p.loss(W[:T].mean(0)) - p.L_star,
                         B.thm5104_avg(d0, gam, rho, p.beta, T)))
        if p.mu > 0:
            rows.append(_row("Thm 5.10.4 (strongly convex)", "l.2709", p.name, np.sum((W[T] - ws) ** 2),
                             B.thm5104_sc(d0, gam, rho, p.beta, p.mu, T)))
    return rows


def _logistic_exact_lemma_rows(p, w0):
    """Lemmas 5–6 (n-SAM) as exact expectations over all (I, J) ∈ [n]², and Lemmas 7–8 (m-SAM: the same
    example for ascent and descent) over i ∈ [n], b = 1, at w0 and −w0, with the individual β_ind; Lemma 8 at
    the largest step sizes it allows (γ = 1/β, ρ = 1/(4β)) and at γ = 1/(2β)."""
    rows, bi = [], p.beta_ind
    rho, gam = 1 / (4 * bi), 1 / (2 * bi)
    I, J = np.meshgrid(np.arange(p.n), np.arange(p.n), indexing="ij")
    I, J = I.ravel(), J.ravel()
    for w, where in ((w0, "w0"), (-w0, "-w0")):
        g = p.grad(w)
        Gi = p.per_example_grads(w)
        Gh = np.array([p.grad_batch(w + rho * Gi[J[k]], [I[k]]) for k in range(I.size)])
        note = f"sigma2 at this w: {p.sigma2_at(w):.3g} (sup used: {p.sigma2:.3g}), exact expectation"
        rows.append(_row("Lemma 5 (n-SAM alignment)", "l.2767", f"{p.name} at {where}",
                         B.lemma5(g @ g, rho, bi, p.sigma2), float(np.mean(Gh @ g)), n=I.size, lower=True, note=note))
        rows.append(_row("Lemma 6 (n-SAM descent)", "l.2791", f"{p.name} at {where}", float(np.mean(p.loss(w - gam * Gh))),
                         B.lemma6(p.loss(w), g @ g, gam, rho, bi, p.sigma2), n=I.size, note=note))
    for w, where in ((w0, "w0"), (-w0, "-w0")):
        g = p.grad(w)
        Gi = p.per_example_grads(w)
        Gh = np.array([p.grad_batch(w + rho * Gi[i], [i]) for i in range(p.n)])
        rows.append(_row("Lemma 7 (m-SAM alignment)", "l.2843", f"{p.name} at {where}",
                         B.lemma7(g @ g, rho, bi, p.sigma2), float(np.mean(Gh @ g)), n=p.n, lower=True,
                         note="exact expectation"))
        for gm in (1 / bi, 1 / (2 * bi)):
            rows.append(_row("Lemma 8 (m-SAM descent)", "l.2871", f"{p.name}@{where},γβ={gm * bi:g}",
                             float(np.mean(p.loss(w - gm * Gh))),
                             B.lemma8(p.loss(w), g @ g, gm, rho, bi, p.sigma2), n=p.n, note="exact expectation"))
    return rows


def _logistic_stochastic_rows(p, w0, seed, runs, T):
    """Thm 5.10.5 / 5.6.1 (n-SAM, m-SAM) with the theorems' step sizes (β_ind), b = 1 and 4, ``runs`` runs."""
    rows, bi = [], p.beta_ind
    gap0 = float(p.loss(w0) - p.L_star)
    for b in (1, 4):
        gam, rho = B.thm5105_avg_steps(bi, T)
        gs, rs = B.thm5105_pl_steps(bi, p.mu, T)
        for same, label in ((False, "Thm 5.10.5 n-SAM"), (True, "Thm 5.6.1 m-SAM")):
            _, g2 = sam_stochastic_many(p, w0, np.full(T, gam), np.full(T, rho), b, runs, seed, same=same)
            mu_, se = _mc(g2[:, :T].mean(1))
            rows.append(_row(f"{label} (avg grad, corrected 4β)", "l.2335/2753", f"{p.name},b={b}", mu_,
                             B.thm5105_avg_corrected(gap0, bi, p.sigma2, b, T), se=se, n=runs))
            Ls, _ = sam_stochastic_many(p, w0, gs, rs, b, runs, seed, same=same)
            mu_, se = _mc(Ls[:, T] - p.L_star)
            rows.append(_row(f"{label} (PL, decreasing steps)", "l.2339/2757", f"{p.name},b={b}", mu_,
                             B.thm5105_pl(gap0, bi, p.mu, p.sigma2, b, T), se=se, n=runs))
    # Thm 5.10.6 needs only (A2') (Lemmas 5–6 use the smoothness of L): n-SAM with the β of L; m-SAM with β_ind
    rows += _const_step_rows(p, w0, 1, p.beta, seed, runs, T, False, L_star=p.L_star, where=",β of L")
    rows += _const_step_rows(p, w0, 1, bi, seed, runs, T, True, L_star=p.L_star, where=",β_ind")
    return rows


def logistic_rows(seed=0, runs=100, fast=False):
    """Every bound on logistic regression (:func:`~.problems.logistic`: n = 16, d = 3): λ = 0.1 ("ridge",
    λ-strongly convex) and λ = 0 (convex). Full-batch statements use the smoothness β of L (A2');
    stochastic ones the individual β_ind ≥ β (A2) in both the step sizes and the bounds, the exact (A1)
    constant σ² (sup over all w, :func:`~.problems.logistic_sigma2_sup`) and μ = λ. Lemmas 5–8 (b = 1) are
    exact expectations (all n² pairs (I, J)), so se = 0. Random points of Lemmas 3–4 come from the stream
    ``(seed, "logistic-points")``, the batches of run r from ``(seed, "run", r)``."""
    runs = check_int("runs", runs, 2, MAX_RUNS)
    R, C = logistic(lam=0.1), logistic(lam=0.0)
    w0 = np.array([2.0, -2.0, 2.0])
    return (_logistic_lemma34_rows(R, C, stream(seed, "logistic-points"), 500 if fast else 2000)
            + _logistic_full_batch_rows(R, C, w0) + _logistic_exact_lemma_rows(R, w0)
            + _logistic_stochastic_rows(R, w0, seed, runs, 64 if fast else 256))


def build_rows(seed=0, runs=100, fast=False):
    """Every row of the table. All randomness comes from ``seed``: random points of Lemmas 3–4 from the
    stream ``(seed, "lemma-points")``, the Lemma 5–6 draws from ``(seed, "lemma5-6")``, and the batches of
    Monte-Carlo run r (r < ``runs``, the same runs for every stochastic row) from ``(seed, "run", r)``;
    ``fast``: fewer points and T = 64 instead of 256. Constant-step rows of Thm 5.10.6 / 5.10.7:
    :func:`const_step_rows` (and the end of :func:`logistic_rows`)."""
    runs = check_int("runs", runs, 2, MAX_RUNS)
    P = problems_()
    return (lemma_rows(P, stream(seed, "lemma-points"), m=500 if fast else 2000) + full_batch_rows(P)
            + stochastic_rows(seed, runs, fast=fast) + const_step_rows(seed, runs, fast=fast)
            + logistic_rows(seed, runs, fast=fast))
