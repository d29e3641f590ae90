"""Tests of the proofs_check package: every check passes, perturbed formulas are rejected, CLI contract."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

import proofs_check
from proofs_check import __main__ as pc_main
from proofs_check import dln
from toymodels._cli import run_main

ROOT = Path(__file__).resolve().parents[1]
R_ = sp.Rational


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "proofs_check", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cli_json():
    proc = _cli("--json")
    return proc


def test_cli_json_one_object_all_checks_pass(cli_json):
    assert cli_json.returncode == 0, cli_json.stdout + cli_json.stderr
    lines = cli_json.stdout.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert set(obj) == {"checks", "version"}
    names = [c["name"] for c in obj["checks"]]
    assert names == list(proofs_check.registry())
    for c in obj["checks"]:
        assert {"name", "ref", "passed", "detail"} <= set(c)
        assert c["passed"] is True, c


def _main(capsys, *args):
    # in-process (the full subprocess contract is covered above), to keep the suite fast
    rc = run_main(pc_main.main, list(args), prog=pc_main.PROG)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_unknown_name_exits_2_with_one_line(capsys):
    for args in (["dln.no_such_check"], ["--list", "dln.no_such_check"], ["--bogus-flag"]):
        try:
            rc, out, err = _main(capsys, *args)
        except SystemExit as exc:            # argparse errors exit through Parser.error
            rc, out, err = exc.code, *capsys.readouterr()
        assert rc == 2
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and args[-1] in lines[0]


def test_cli_list_and_subset(capsys):
    rc, out, _ = _main(capsys, "--list", "--json")
    assert rc == 0
    assert {c["name"] for c in json.loads(out)["checks"]} == set(proofs_check.registry())
    rc, out, _ = _main(capsys, "dln.q_derivative", "dln.l2_limit")
    assert rc == 0
    assert "dln.q_derivative" in out and "PASS" in out and "dln.l1_limit" not in out


def test_cli_exit_1_when_a_check_fails(capsys, monkeypatch):
    reg = proofs_check._REGISTRY
    monkeypatch.setitem(reg, "dln.residual_norm_vs_loss",
                        proofs_check.Check("dln.residual_norm_vs_loss", "test",
                                           lambda: dln.residual_norm_vs_loss(factor=1)))
    rc, out, _ = _main(capsys, "--json", "dln.residual_norm_vs_loss")
    assert rc == 1
    assert json.loads(out)["checks"][0]["passed"] is False


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
