"""Tests of the proofs_check package: every check passes, perturbed formulas are rejected, a failing
check (or a topic module that fails to import) exits 1. The CLI contract (--help, one JSON object, bad
values such as an unknown name) is tests/test_contract.py's."""
from __future__ import annotations

import pytest
import sympy as sp
from helpers import run_cli

import proofs_check
from proofs_check import dln

R_ = sp.Rational


def test_cli_json_one_object_all_checks_pass():
    r = run_cli("proofs_check", ["--json"])
    assert r.rc == 0, r.out + r.err
    obj = r.json
    assert set(obj) == {"checks", "passed", "failed", "config", "version"}
    assert obj["passed"] is True and obj["failed"] == []
    names = [c["name"] for c in obj["checks"]]
    assert names == list(proofs_check.registry()) == obj["config"]["names"]
    for c in obj["checks"]:
        assert {"name", "ref", "passed", "detail"} <= set(c)
        assert c["passed"] is True, c


def test_cli_list_and_subset():
    r = run_cli("proofs_check", ["--list", "--json"])
    assert r.rc == 0, r.err
    assert [c["name"] for c in r.json["checks"]] == list(proofs_check.registry())
    r = run_cli("proofs_check", ["dln.q_derivative", "dln.l2_limit"])
    assert r.rc == 0, r.err
    assert "dln.q_derivative" in r.out and "PASS" in r.out and "dln.l1_limit" not in r.out
    assert "2/2 passed" in r.out


def test_cli_exit_1_when_a_check_fails(monkeypatch):
    monkeypatch.setitem(proofs_check._REGISTRY, "dln.residual_norm_vs_loss",
                        proofs_check.Check("dln.residual_norm_vs_loss", "test",
                                           lambda: dln.residual_norm_vs_loss(factor=1)))
    r = run_cli("proofs_check", ["--json", "dln.residual_norm_vs_loss", "dln.q_derivative"])
    assert r.rc == 1
    obj = r.json
    assert [c["passed"] for c in obj["checks"]] == [False, True]
    assert obj["passed"] is False and obj["failed"] == ["dln.residual_norm_vs_loss"]
    r = run_cli("proofs_check", ["dln.residual_norm_vs_loss"])
    assert r.rc == 1 and "FAIL" in r.out and "0/1 passed" in r.out


def test_a_topic_that_fails_to_import_is_a_failing_check(monkeypatch):
    monkeypatch.setattr(proofs_check, "_REGISTRY", dict(proofs_check._REGISTRY))
    monkeypatch.setattr(proofs_check, "TOPICS", (*proofs_check.TOPICS, "no_such_topic"))
    r = run_cli("proofs_check", ["--json", "no_such_topic.import"])
    assert r.rc == 1
    (c,) = r.json["checks"]
    assert c["passed"] is False and "no_such_topic" in c["detail"] and "ModuleNotFoundError" in c["detail"]


def test_run_checks_reports_failure_and_unknown_names():
    out = proofs_check.run_checks(["dln.residual_norm_vs_loss"])
    assert [r["passed"] for r in out] == [True]
    with pytest.raises(ValueError, match="unknown check"):
        proofs_check.run_checks(["nope"])


# ------------------------------------------------------------------ perturbed formulas

def _thesis_rsam_nsam(r, Xr, X, wp, wm, rho, n):
    # as printed in the proof of Thm 5.9.2: (w₊ + w₋) at order ρ and (w₊² + w₋²) at order ρ²
    d = len(wp)
    return [r[i] + 2 * rho * R_(1, n) * sum(X[i][k] * Xr[k] * (wp[k] + wm[k]) for k in range(d))
            + rho**2 * R_(1, n**2) * sum(X[i][k] * Xr[k]**2 * (wp[k]**2 + wm[k]**2) for k in range(d))
            for i in range(n)]


def _thesis_rsam_onesam(r, wp, wm, x, rho):
    # as printed in eq. (5.16)'s derivation: ascent factor 4ρ → 8ρ and 16ρ²
    return (r + 8 * rho * r * sum((p**2 + m**2) * xk**2 for p, m, xk in zip(wp, wm, x))
            + 16 * rho**2 * r**2 * sum((p**2 - m**2) * xk**3 for p, m, xk in zip(wp, wm, x)))


PERTURBED = {
    "dln.q_derivative": [dict(q_prime=lambda z: sp.asinh(z)),
                         dict(q=lambda z: 2 + sp.sqrt(4 + z**2) + z * sp.asinh(z / 2))],
    "dln.l1_limit": [dict(scale=lambda a: sp.log(1 / a))],
    "dln.l2_limit": [dict(scale=lambda a: a**2), dict(scale=lambda a: 2 * a**2)],
    "dln.kkt_inverse": [dict(b=lambda a, s: 2 * a * sp.sinh(s)), dict(b=lambda a, s: a**2 * sp.sinh(s))],
    "dln.alpha_eff_identity": [dict(alpha_eff=lambda p, m: p * m)],
    "dln.uv_correspondence": [dict(gd_factor=1), dict(ascent_factor=1),
                              dict(normalized_ascent_factor=R_(1, 2))],
    "dln.sam_ascent_points": [dict(onesam_factor=4), dict(nsam_factor=2)],
    "dln.nsam_rsam_identity": [dict(formula=_thesis_rsam_nsam)],
    "dln.nsam_alpha_exponent": [dict(coef=lambda n: R_(2, n**2))],                 # thesis eq. 5.14
    "dln.onesam_rsam_identity": [dict(formula=_thesis_rsam_onesam)],
    "dln.onesam_alpha_exponent": [dict(coef=lambda n: R_(8, n)),                   # thesis Thm 5.9.3
                                  dict(coef=lambda n: R_(2, n**2))],               # = 1/n at n = 2 only
    "dln.onesam_rho_bound": [dict(rho_max=lambda R, B, bs: 1 / (4 * R**2 * sp.sqrt(B * (B + bs)))),
                             dict(rho_max=lambda R, B, bs: 2 / (R**2 * sp.sqrt(B * (B + bs))))],
    "dln.gd_discrete_shrink": [dict(factor=lambda g_, g: 1 - g_**2 * g**2 / 2)],
    "dln.onesam_discrete_step": [dict(factor=lambda g_, a, c: (1 - g_ * c)**2 + g_**2 * a**2)],
    "dln.residual_norm_vs_loss": [dict(factor=1)],                                 # thesis line 2434
    "dln.I_comparison": [dict(nsam_prefactor=lambda n: R_(2, n**2))],
}


def test_every_dln_check_has_a_perturbation():
    assert {n for n in proofs_check.registry() if n.startswith("dln.")} == set(PERTURBED)


@pytest.mark.parametrize("name,kwargs", [(n, kw) for n, kws in PERTURBED.items() for kw in kws],
                         ids=lambda v: v if isinstance(v, str) else ",".join(v))
def test_perturbed_formula_is_rejected(name, kwargs):
    func = proofs_check.registry()[name].func
    passed, detail = func(**kwargs)
    assert passed is False, detail
    assert func()[0] is True       # and the unperturbed formula still passes (same cached problem)


def test_thesis_constants_reported_in_detail():
    _, detail = dln.onesam_alpha_exponent(coef=lambda n: R_(8, n))
    assert "{2: '1/2', 3: '1/3'}" in detail
    _, detail = dln.onesam_rho_bound(rho_max=lambda R, B, bs: 1 / (4 * R**2 * sp.sqrt(B * (B + bs))))
    assert "1/16" in detail and "conservative" in detail


# ------------------------------------------------------------------ Prop. 7.8.1 (issue 17)

def _prop781_with(first=None, second=None):
    """Prop. 7.8.1's formula with one of its two leading terms replaced."""
    from proofs_check import sharpness as ps

    def formula(g, H, p, rho):
        if any(x != 0 for x in g):
            return first(g, p, rho) if first else ps._prop781(g, H, p, rho)
        return second(H, p, rho) if second and not all(float(e) < 0 for e in H.eigenvals()) \
            else ps._prop781(g, H, p, rho)
    return formula


PROP781_PERTURBED = {
    "primal_norm": _prop781_with(first=lambda g, p, rho: rho * (sum(abs(x) ** p for x in g) ** (sp.Integer(1) / p)
                                                                if p != sp.oo else max(abs(x) for x in g))),
    "first_order_rho_squared": _prop781_with(first=lambda g, p, rho: rho ** 2 * sp.sqrt(sum(x ** 2 for x in g))),
    "no_one_half": _prop781_with(second=lambda H, p, rho: rho ** 2 * max(H.eigenvals(), key=float)),
    "average_case_trace": _prop781_with(second=lambda H, p, rho: rho ** 2 / 2 * H.trace()),
    "lambda_max_for_every_p": _prop781_with(second=lambda H, p, rho: rho ** 2 / 2 * max(H.eigenvals(), key=float)),
}


def test_prop_7_8_1_worst_case_small_rho_expansion():
    from proofs_check import sharpness as ps

    passed, detail = ps.max_local_limit()
    assert passed is True, detail
    assert "critical_neg_def p=2: |S-F|/rho^3 = 0, 0, 0" in detail      # S = 0 exactly there
    assert proofs_check.registry()["sharpness7.max_local_limit"].func is ps.max_local_limit


@pytest.mark.parametrize("name", sorted(PROP781_PERTURBED))
def test_prop_7_8_1_perturbed_formula_is_rejected(name):
    from proofs_check import sharpness as ps

    passed, detail = ps.max_local_limit(formula=PROP781_PERTURBED[name])
    assert passed is False, detail
    assert "(grows)" in detail
