"""The claims of Prop. 6.3.2 / 6.7.1 and Lemma 9 (thesis eqs. 6.6, 6.7, 6.22), each tested exactly
as stated on a simulated ensemble, plus the corrected statements (see ERRATA.md, Ch. 6 quad1d).

A finite run "bounces from some step on" when θ_t alternates around θ* for every t in its last
``tail(steps) = max(1, steps // 4)`` steps (the thesis' "∃T ∀k > T" on a finite horizon).
"""
from __future__ import annotations

import numpy as np

from . import theory as T
from .sim import Quad1DResult

__all__ = ["tail", "evaluate", "summary", "regime"]


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
