"""The claims of Prop. 6.3.2 / 6.7.1 and Lemma 9 (thesis eqs. 6.6, 6.7, 6.22), each tested exactly
as stated on a simulated ensemble, plus the corrected statements (see ERRATA.md, Ch. 6 quad1d).

A finite run "bounces from some step on" when θ_t alternates around θ* for every t in its last
``tail(steps) = max(1, steps // 4)`` steps (the thesis' "∃T ∀k > T" on a finite horizon).
"""
from __future__ import annotations

import math

import numpy as np

from . import theory as T
from .sim import Quad1DResult

__all__ = ["tail", "evaluate", "summary", "regime", "lemma_checks", "step_gammas", "gamma_support"]


def tail(steps: int) -> int:
    return max(1, steps // 4)


def _cx(res: Quad1DResult, run: int, step: int, **extra) -> dict:
    return {"seed": res.config.seed, "run": int(run), "step": int(step), "theta0": float(res.theta0[run])} | extra


def regime(res: Quad1DResult, tol: float = 1e-6) -> dict:
    """Fractions of runs that converge (|θ_T − θ*| ≤ tol·θ*), diverge (with the first divergence
    step), bounce (around θ*, see :func:`tail`), and the rest."""
    c = res.config
    div = res.div_step >= 0
    conv = ~div & (np.abs(res.theta_final - c.theta_star) <= tol * c.theta_star)
    bounce = ~div & (res.bounce_start <= c.steps - tail(c.steps))
    # runs that end at the other (repelling) critical point θ = 0 (F = m₂θ*⁴/4); kept separate from "other"
    zero = ~div & ~bounce & (np.abs(res.theta_final) <= tol * c.theta_star)
    out = {"converge_fraction": float(conv.mean()), "diverge_fraction": float(div.mean()),
           "bounce_fraction": float(bounce.mean()), "collapse_to_zero_fraction": float(zero.mean()),
           "other_fraction": float((~div & ~conv & ~bounce & ~zero).mean())}
    if div.any():
        j = int(np.flatnonzero(div)[np.argmin(res.div_step[div])])
        out["first_divergence"] = _cx(res, j, res.div_step[j], bound=res.derived["div_bound"])
    return out


def evaluate(res: Quad1DResult) -> list[dict]:
    """``[{name, statement, holds, evidence}]``; ``holds`` is None when the claim's premises
    (η in the interval, θ₀ ∈ (0, θ*)) are not met by the config."""
    c, dv = res.config, res.derived
    ts = c.theta_star
    premise = dv["eta_in_interval"] and dv["theta0_in_premise"]
    why_not = None if premise else (
        "premise not met: " + ("eta outside " + str(dv["eta_interval"]) if not dv["eta_in_interval"]
                               else "theta0 outside (0, theta*)"))
    claims = []

    def add(name, statement, holds, evidence):
        claims.append({"name": name, "statement": statement,
                       "holds": None if not premise else bool(holds), "evidence": evidence if premise
                       else {"note": why_not} | evidence})

    for part in (_level_claims, _bouncing_claims, _lemma9_claims):
        part(res, add)
    return claims


def _level_claims(res: Quad1DResult, add) -> None:
    """Eq. 6.6's two level sets as printed, and the corrected all-time upper level."""
    c, dv = res.config, res.derived
    ok = res.div_step < 0
    d1, d2 = dv["delta1"], dv["delta2"]
    lmin = np.where(ok, res.loss_min, np.inf)
    j = int(np.argmin(lmin))
    ev = {"delta1": d1, "loss_min": float(lmin[j]), "runs": c.runs, "steps": c.steps}
    if lmin[j] <= d1:
        ev["counterexample"] = _cx(res, j, res.argmin[j], loss=float(lmin[j]))
        ev["violating_runs"] = int((lmin <= d1).sum())
    add("6.6 lower level: F(theta_t) > delta1 = eps_o^2 theta*^2 for all t > 0",
        "Prop. 6.3.2 eq. 6.6 / 6.7.1 eq. 6.22: for all t > 0, F(theta_t) > eps_o^2 theta*^2 a.s.",
        lmin[j] > d1, ev)

    lmax = np.where(ok, res.loss_max, -np.inf)
    j = int(np.argmax(lmax))
    ev = {"delta2": d2, "loss_max": float(lmax[j])}
    if lmax[j] >= d2:
        ev["counterexample"] = _cx(res, j, res.argmax[j], loss=float(lmax[j]))
        ev["violating_runs"] = int((lmax >= d2).sum())
    add("6.6 upper level: F(theta_t) < delta2 = 0.17 theta*^2 for all t > 0",
        "Prop. 6.3.2 eq. 6.6 / 6.7.1 eq. 6.22: for all t > 0, F(theta_t) < 0.17 theta*^2 a.s.",
        lmax[j] < d2, ev)

    up = dv["all_time_upper"]
    add("6.6 corrected upper (all t > 0): F(theta_t) < m2 theta*^4 / 4",
        "corrected: for all t > 0, F(theta_t) < E[x^2] theta*^4 / 4 (sharp as theta_0 -> 0)",
        lmax[j] < up, {"bound": up, "loss_max": float(lmax[j])})



def _bouncing_claims(res: Quad1DResult, add) -> None:
    """Eq. 6.7's eventual bouncing, eq. 6.22's bands and levels (printed and corrected)."""
    c, dv = res.config, res.derived
    ok = res.div_step < 0
    d1, d2 = dv["delta1"], dv["delta2"]
    b = ok & (res.bounce_start <= c.steps - tail(c.steps))
    ev = {"bounce_fraction": float(b.mean()), "tail_steps": tail(c.steps),
          "max_bounce_start": int(res.bounce_start[b].max()) if b.any() else None}
    if not b.all():
        k = int(np.flatnonzero(~b)[0])
        ev["counterexample"] = _cx(res, k, c.steps, bounce_start=int(res.bounce_start[k]),
                                   theta_final=float(res.theta_final[k]))
    add("6.7 eventual 2-periodic bouncing across theta*",
        "Prop. 6.3.2 eq. 6.7: exists T, for all k > T, theta_{t+2k} < theta* < theta_{t+2k+1} a.s.",
        b.all(), ev)

    bb = ok & (res.band_start <= c.steps - tail(c.steps))
    ev = {"band_fraction": float(bb.mean()), "bands": dv["bands"],
          "max_band_start": int(res.band_start[bb].max()) if bb.any() else None}
    if not bb.all():
        k = int(np.flatnonzero(~bb)[0])
        ev["counterexample"] = _cx(res, k, c.steps, band_start=int(res.band_start[k]),
                                   theta_final=float(res.theta_final[k]))
    add("6.22 bands: eventually theta alternates between (0.65, 1-eps_o)theta* and (1+eps_o, 1.162)theta*",
        "Prop. 6.7.1 / Lemma 10: a.s. exists t, for all k, theta_{t+2k} in (0.65, 1-eps_o)theta*, "
        "theta_{t+2k+1} in (1+eps_o, 1.162)theta*", bb.all(), ev)

    c1, c2 = dv["corrected_levels"]
    fin = res.loss_final[bb]
    add("6.22 corrected levels (eventual): F in (m2 theta*^4 (2eps_o-eps_o^2)^2/4, m2 theta*^4 (1-0.65^2)^2/4)",
        "corrected: once bouncing in the bands, F(theta_t) lies strictly between these levels "
        "(checked at the final step of every band-bouncing run)",
        bool(fin.size) and bool(np.all((fin > c1) & (fin < c2))),
        {"levels": [c1, c2], "final_loss_range": [float(fin.min()), float(fin.max())] if fin.size else None})

    fin_all = res.loss_final[ok]
    th_ok = bool(fin_all.size) and bool(np.all((fin_all > d1) & (fin_all < d2)))
    ev = {"final_loss_range": [float(fin_all.min()), float(fin_all.max())] if fin_all.size else None,
          "levels": [d1, d2]}
    add("6.22 thesis levels at the final step: delta1 < F(theta_T) < delta2",
        "the printed levels (eps_o^2 theta*^2, 0.17 theta*^2) hold at least after the transient",
        th_ok, ev)



def _lemma9_claims(res: Quad1DResult, add) -> None:
    """Lemma 9's bounded region, with the printed and the sharp constant."""
    c, dv = res.config, res.derived
    ts = c.theta_star
    ok = res.div_step < 0
    tmin = float(np.min(np.where(ok, res.theta_min, np.inf)))
    tmax = float(np.max(np.where(ok, res.theta_max, -np.inf)))
    add("Lemma 9 bounded region: theta_t in (0, 1.162 theta*) for all t > 0",
        "Lemma 9: for Gamma in (1, 1.25) and 0 < theta_0 < theta*, theta_t in (0, 1.162 theta*)",
        tmin > 0 and tmax < T.C_UPPER * ts, {"theta_min": tmin, "theta_max": tmax})
    g1 = dv["gamma_range"][1]
    sharp = 2 * (1 + g1) ** 1.5 / (3 * np.sqrt(3 * g1)) * ts
    add("Lemma 9 sharp: theta_t < 2(1+g)^{3/2}/(3 sqrt(3g)) theta*, g = gamma_max",
        "corrected Lemma 9 constant (the maximum of h_g on (0,1]; 3 sqrt(15)/10 = 1.16190 at g = 1.25)",
        tmax < sharp, {"bound": float(sharp), "theta_max": tmax})


def summary(res: Quad1DResult) -> dict:
    ok = res.div_step < 0
    r = regime(res)
    return {"loss_min": float(np.min(res.loss_min[ok])) if ok.any() else None,
            "loss_max": float(np.max(res.loss_max[ok])) if ok.any() else None,
            "loss_final_max": float(np.max(res.loss_final[ok])) if ok.any() else None,
            "bounce_fraction": r["bounce_fraction"], "regime": r}


# ---------------------------------------------------------------- Lemmas 11–14 (thesis l.3389–3503) on trajectories
#: fractions of ε_o at which the lemmas (stated "for any ε < ε_o") are checked by default
EPS_FRACS = (0.01, 0.5, 0.99)
#: comparisons that hold with equality in real arithmetic (eq. 6.36 when a = b = γ_min or γ_max) get this
#: relative slack for the rounding of the kernel (θ in absolute units) vs h_γ (rescaled units)
ROUND = 1e-12


def step_gammas(res: Quad1DResult) -> np.ndarray:
    """γ_t = ηθ*²x_t² (the rescaled step of eq. 6.26 applied between θ_t and θ_{t+1}) of the recorded runs,
    shape (record, steps), regenerated from the kernel's stream (run r, step t: counter r·2³² + t)."""
    from ._reference import uniforms
    from .sim import stream_keys

    c = res.config
    k, steps = res.traj.shape[0], c.steps
    key, _ = stream_keys(c.seed)
    runs = np.arange(k, dtype=np.uint64)
    u = np.stack([uniforms(key, runs, t) for t in range(steps)], axis=1) if k else np.empty((0, steps))
    if c.points:
        pts = np.asarray(c.points)
        x = pts[np.minimum((u * pts.size).astype(np.int64), pts.size - 1)]
    else:
        x = c.x_min + (c.x_max - c.x_min) * u
    return c.eta * c.theta_star ** 2 * x * x


def gamma_support(res: Quad1DResult) -> tuple[float, float]:
    """(γ_min, γ_max) = (inf Γ, sup Γ) of the support Γ of γ = ηθ*²x², x ~ ρ̂."""
    c = res.config
    return T.gamma_range(c.eta, c.x_min, c.x_max, c.theta_star)


def _first_bad(mask) -> tuple[int, int] | None:
    idx = np.argwhere(mask)
    return (int(idx[0, 0]), int(idx[0, 1])) if idx.size else None


def lemma_checks(res: Quad1DResult, eps_fracs=EPS_FRACS, *, eps_values=None, low: float = T.C_LOW,
                 upper: float = T.C_UPPER, require_hypotheses: bool = True) -> list[dict]:
    """Lemmas 11–14 of Ch. 6 AS STATED, checked at every step of every recorded trajectory that meets the
    hypotheses, for ε = f·ε_o, f ∈ ``eps_fracs`` (the lemmas are stated for every ε ∈ (0, ε_o)).

    With u_t = θ_t/θ*, Γ ⊆ (1, 1.25) the support of γ, I₁ = (0.65, 1−ε), I₂ = [1−ε, 1), and
    u_{t+2} = h_a(h_b(u_t)) with b = γ_t, a = γ_{t+1} (:func:`step_gammas`):

    * Lemma 11 (l.3389): u_t ∈ I₁∪I₂ ⇒ u_{t+2} ∈ I₁∪I₂ and eq. 6.36
      g_{γmax}(u_t) ≤ u_{t+2} ≤ g_{γmin}(u_t) (g_γ = h_γ∘h_γ; up to ``ROUND``); also eq. 6.39 of its proof,
      g_{1.25}(u_t) < u_{t+2} < g_1(u_t).
    * Lemma 13 (l.3461): the membership claim alone (the repeated print).
    * Lemma 12 (l.3421): u_t ∈ I₂ ⇒ ∃k > 0, u_{t+2k} ∈ I₁ (and, P3, u_{t+2k'} ∈ I₂ for 0 < k' < k). Checked
      quantitatively: the distance to 1 grows at least by r = (γmin(1−ε)(2−ε) − 1)(2γmin − 1) > 1 every two
      steps while in I₂ (eq. 6.37), so k ≤ k_max = ⌈log(ε/(1−u_t))/log r⌉; visits whose k_max passes the
      horizon are "censored" (counted, not judged). Also the proof's u_{t+2} < u_t on I₂.
    * Lemma 14 (l.3483): u_t ∈ I₁ ⇒ u_{t+2} ∈ I₁ and u_{t+1} ∈ (1+ε, 1.162).

    Returns ``[{name, statement, holds, evidence}]``; ``holds`` is None when the config violates the
    hypotheses (Γ ⊄ (1, 1.25), i.e. η outside the interval, or nothing recorded). Evidence: the number of
    (run, t) checked, the worst margins, and the first counterexample (run, step, θ_t, γ's) if any.
    ``eps_values``: absolute ε's instead of fractions of ε_o; ``low``, ``upper``: the constants 0.65 (edge of
    I₁) and 1.162, exposed so that a test can pass wrong ones; ``require_hypotheses=False`` judges the
    conclusions even when Γ ⊄ (1, 1.25) (to show that the hypotheses matter).

    Long because each lemma's hypothesis/conclusion pair is spelled out next to the others (they share
    the trajectory arrays)."""
    c = res.config
    g0, g1 = gamma_support(res)
    rec = res.traj is not None and res.traj.shape[0] > 0
    ok_hyp = rec and ((1 < g0 and g1 < T.C_GAMMA_MAX) or not require_hypotheses)
    out = []

    def add(name, statement, holds, ev):
        out.append({"name": name, "statement": statement, "holds": bool(holds) if ok_hyp else None,
                    "evidence": ev if ok_hyp else ev | {"note": "hypotheses not met: Gamma must lie in (1, 1.25) "
                                                                "and trajectories must be recorded"}})

    if not ok_hyp:
        for n in ("Lemma 11", "Lemma 12", "Lemma 13", "Lemma 14"):
            add(n, "", False, {"gamma_support": [g0, g1]})
        return out
    U = res.traj / c.theta_star
    G = step_gammas(res)
    eo = T.eps_o(g0)
    u0, u1, u2 = U[:, :-2], U[:, 1:-1], U[:, 2:]
    fin = np.isfinite(u0) & np.isfinite(u2)
    g = T.h                                                     # h_γ(u)
    for f, eps in ([(e / eo if eo > 0 else math.nan, e) for e in eps_values] if eps_values is not None
                   else [(f, f * eo) for f in eps_fracs]):
        in12 = fin & (u0 > low) & (u0 < 1)
        in1 = in12 & (u0 < 1 - eps)
        in2 = in12 & (u0 >= 1 - eps)
        tag = f"eps={eps:.4g}={f:.3g} eps_o"
        memb = in12 & ~((u2 > low) & (u2 < 1))
        lo36, hi36 = g(g1, g(g1, u0)), g(g0, g(g0, u0))
        b36 = in12 & ((u2 < lo36 - ROUND) | (u2 > hi36 + ROUND))
        b39 = in12 & ~((u2 > g(1.25, g(1.25, u0))) & (u2 < g(1.0, g(1.0, u0))))
        ev = {"checked": int(in12.sum()), "u_t2_range": _rng(u2[in12]), "gamma_support": [g0, g1], "eps": eps}
        add(f"Lemma 11 ({tag}): h_a(h_b(theta)) in I1 u I2 and eq. 6.36 (and 6.39)",
            "Lemma 11 (l.3389): theta in I1 u I2, a, b in Gamma => h_a(h_b(theta)) in I1 u I2 and "
            "g_gmax(theta) <= h_a(h_b(theta)) <= g_gmin(theta)", not (memb.any() or b36.any() or b39.any()),
            ev | _cx_lemma(res, U, G, memb | b36 | b39))
        add(f"Lemma 13 ({tag}): h_a(h_b(theta)) in I1 u I2",
            "Lemma 13 (l.3461): theta in I1 u I2, a, b in Gamma => h_a(h_b(theta)) in I1 u I2",
            not memb.any(), ev | _cx_lemma(res, U, G, memb))
        b14 = in1 & ~((u2 > low) & (u2 < 1 - eps) & (u1 > 1 + eps) & (u1 < upper))
        add(f"Lemma 14 ({tag}): theta in I1 => h_a(h_b(theta)) in I1, h_a(theta) in (1+eps, 1.162)",
            "Lemma 14 (l.3483): theta in I1, a, b in Gamma => h_a(h_b(theta)) in I1 and h_a(theta) in (1+eps, 1.162)",
            not b14.any(), {"checked": int(in1.sum()), "u_t1_range": _rng(u1[in1]), "u_t2_range": _rng(u2[in1]),
                            "eps": eps} | _cx_lemma(res, U, G, b14))
        out.append(_lemma12(res, U, G, in2, eps, g0, tag, low))
    return out


def _rng(x) -> list | None:
    return [float(x.min()), float(x.max())] if x.size else None


def _cx_lemma(res, U, G, bad) -> dict:
    k = _first_bad(bad)
    if k is None:
        return {}
    r, t = k
    return {"counterexample": _cx(res, r, t, u_t=float(U[r, t]), u_t1=float(U[r, t + 1]), u_t2=float(U[r, t + 2]),
                                  b=float(G[r, t]), a=float(G[r, t + 1]))}


def _lemma12(res, U, G, in2, eps, g0, tag, low) -> dict:
    """Lemma 12 on the I₂ visits (see :func:`lemma_checks`)."""
    steps = U.shape[1] - 1
    rate = (g0 * (1 - eps) * (2 - eps) - 1) * (2 * g0 - 1)
    resolved = censored = max_k = over = 0
    bad = None
    not_decr = in2 & ~(U[:, 2:] < U[:, :-2])
    for r, t in np.argwhere(in2):
        kmax = math.ceil(math.log(eps / (1 - U[r, t])) / math.log(rate)) if rate > 1 else steps
        seq = U[r, t + 2::2]                                    # u_{t+2}, u_{t+4}, ...
        out2 = ~((seq >= 1 - eps) & (seq < 1))
        k = int(np.argmax(out2)) + 1 if out2.any() else None
        if k is not None and low < seq[k - 1] < 1 - eps:
            resolved += 1
            max_k = max(max_k, k)
            over += k > kmax                                    # would contradict the rate (not the lemma)
        elif k is None and t + 2 * kmax > steps:
            censored += 1
        elif bad is None:
            bad = (int(r), int(t), k)
    ok = bad is None and not not_decr.any()
    ev = {"visits": int(in2.sum()), "resolved": resolved, "censored": censored, "max_k": max_k,
          "k_above_k_max": int(over), "two_step_rate": rate, "eps": eps}
    if bad is not None:
        ev["counterexample"] = _cx(res, bad[0], bad[1], u_t=float(U[bad[0], bad[1]]), first_exit_k=bad[2])
    elif not_decr.any():
        ev |= _cx_lemma(res, U, G, not_decr)
    return {"name": f"Lemma 12 ({tag}): theta_t in I2 => theta_(t+2k) in I1 for some k > 0",
            "statement": "Lemma 12 (l.3421) / P3: theta_t in I2 => exists k > 0 with theta_(t+2k) in I1 "
                         "(through I2 only); checked with k <= k_max from the two-step rate",
            "holds": bool(ok), "evidence": ev}
