"""``python -m figures``: the listing, quick renders (PNG + JSON per figure, the key numbers of the
summaries) without torch, a broken topic module reported. The CLI contract (--help, one JSON object,
bad values, --out checked before work) is tests/test_contract.py's."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from helpers import run_cli

DLN_IDS = ["5.5", "5.6", "5.13", "5.14", "5.15"]
OPTIONAL = ("torch", "dask", "distributed")


def test_list_json_structure():
    r = run_cli("figures", ["--list", "--json"])
    assert r.rc == 0, r.err
    obj = r.json
    assert set(obj) == {"figures", "load_errors", "config", "version"} and obj["version"]
    assert obj["load_errors"] == {}
    ids = [f["id"] for f in obj["figures"]]
    assert len(ids) == len(set(ids)) and obj["config"]["ids"] == ids
    for f in obj["figures"]:
        assert set(f) == {"id", "thesis_figure", "title"}
        assert (f["thesis_figure"] is None or re.fullmatch(r"\d+\.\d+", f["thesis_figure"])) and f["title"]
    by_id = {f["id"]: f for f in obj["figures"]}
    for i in DLN_IDS:
        assert by_id[i]["thesis_figure"] == i


def test_list_text():
    r = run_cli("figures", ["--list"])
    assert r.rc == 0, r.err
    out = r.out.splitlines()
    assert out[0].split()[0] == "id"
    for i in DLN_IDS:
        assert any(ln.split()[:3] == [i, "Fig.", i] for ln in out[1:])


def test_duplicate_id_is_refused():
    import figures

    figures.registry()

    def other(ctx):  # pragma: no cover - never called
        raise AssertionError

    with pytest.raises(ValueError, match="registered twice"):
        figures.figure("5.6", "5.6", "clash")(other)
    assert figures.registry()["5.6"].func.__name__ == "fig_5_6"


@pytest.fixture(scope="module")
def quick_render(tmp_path_factory):
    """Every figure, --quick, as without torch/dask/distributed installed (importing them fails)."""
    out = tmp_path_factory.mktemp("figs")
    with pytest.MonkeyPatch.context() as mp:
        for mod in OPTIONAL:
            mp.setitem(sys.modules, mod, None)
        r = run_cli("figures", ["--quick", "--json", "--out", out])
    assert r.rc == 0, r.err[-3000:]
    assert r.err == ""  # progress bars and warnings are silent under --json
    return out, r.json


def test_quick_render_json_contract(quick_render):
    out, obj = quick_render
    assert set(obj) == {"figures", "errors", "load_errors", "config", "version"}
    assert obj["errors"] == {} and obj["load_errors"] == {}
    assert obj["config"]["quick"] is True and obj["config"]["out"] == str(out)
    assert set(DLN_IDS) <= {f["id"] for f in obj["figures"]}
    for f in obj["figures"]:
        assert set(f) == {"id", "thesis_figure", "title", "files", "runtime_s", "summary"}
        assert f["runtime_s"] >= 0 and isinstance(f["summary"], dict) and f["summary"]


@pytest.mark.parametrize("fid", DLN_IDS)
def test_quick_render_writes_png_and_json(quick_render, fid):
    out, obj = quick_render
    rec = {f["id"]: f for f in obj["figures"]}[fid]
    files = [Path(x) for x in rec["files"]]
    png = [x for x in files if x.suffix == ".png"]
    js = [x for x in files if x.suffix == ".json"]
    assert len(png) == 1 and len(js) == 1
    assert png[0].parent == out and png[0].stat().st_size > 10_000
    assert png[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(js[0].read_text())
    assert data["id"] == fid and data["thesis_figure"] == fid and data["quick"] is True
    assert data["summary"] == rec["summary"] and "data" in data and data["version"]
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_quick_summaries_carry_the_key_numbers(quick_render):
    _, obj = quick_render
    s = {f["id"]: f["summary"] for f in obj["figures"]}
    assert set(s["5.6"]["final_test_loss"]) == {"ERM", "n-SAM", "1-SAM"}
    assert all(v is not None and v > 0 for v in s["5.6"]["final_test_loss"].values())
    assert s["5.13"]["stochastic_batch"] >= 2 and len(s["5.13"]["methods"]) >= 6
    assert set(s["5.14"]["best_rho"]) == {"n-SAM", "1-SAM"}
    assert len(s["5.14"]["methods"]["1-SAM"]["test_loss"]) == len(s["5.14"]["rho_grid"])
    assert s["5.15"]["switch_at"] > 0 and s["5.15"]["stability_check_erm_to_1sam"]
    assert s["5.15"]["rho_erm_to_sam"] == 10.0 and s["5.15"]["rho_sam_to_erm"] == 0.175
    r = s["5.5"]["diagonal_radius"]
    radii = [r[k] for k in sorted(r, key=float)]
    assert all(a < b for a, b in zip(radii, radii[1:]))  # ℓ₁-like → ℓ₂-like as α grows
    assert 1 / 2**0.5 < radii[0] and radii[-1] <= 1.0 + 1e-9


def test_a_broken_topic_module_is_reported(monkeypatch, tmp_path):
    """A topic module that fails to import does not take the other figures down: --list and a run of
    named figures report it (exit 0: what was asked was done), a run of all figures exits 1."""
    import figures

    figures.registry()
    quad = {k: v for k, v in figures._REGISTRY.items() if v.module == "figures.quad1d"}
    monkeypatch.setattr(figures, "_REGISTRY", dict(quad))
    monkeypatch.setattr(figures, "TOPIC_MODULES", ("quad1d", "no_such_topic"))
    monkeypatch.setattr(figures, "LOAD_ERRORS", {})
    r = run_cli("figures", ["--list", "--json"])
    assert r.rc == 0 and list(r.json["load_errors"]) == ["figures.no_such_topic"]
    assert "ModuleNotFoundError" in r.json["load_errors"]["figures.no_such_topic"]
    assert [f["id"] for f in r.json["figures"]] == list(quad)
    r = run_cli("figures", ["--list", "--quiet"])
    assert r.rc == 0 and "WARNING figure module figures.no_such_topic failed to import" in r.out
    r = run_cli("figures", ["--quick", "--json", "--out", tmp_path, *quad])
    assert r.rc == 0 and r.json["load_errors"]
    r = run_cli("figures", ["--quick", "--json", "--out", tmp_path])
    assert r.rc == 1 and r.json["load_errors"] and len(r.json["figures"]) == len(quad)
    assert (tmp_path / f"fig_{next(iter(quad))}.png").is_file()


def test_a_failing_figure_is_reported_and_the_others_render(monkeypatch, tmp_path):
    import figures

    figures.registry()

    def boom(ctx):
        raise RuntimeError("figure exploded")

    monkeypatch.setitem(figures._REGISTRY, "boom", figures.FigureSpec("boom", None, "a broken figure", boom,
                                                                      "tests"))
    r = run_cli("figures", ["--quick", "--json", "--out", tmp_path, "boom", "prop6.3.2"])
    assert r.rc == 1
    assert r.json["errors"] == {"boom": "RuntimeError: figure exploded"}
    assert [f["id"] for f in r.json["figures"]] == ["prop6.3.2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig_prop6.3.2.json", "fig_prop6.3.2.png"]
