"""``python -m figures``: the listing contract, quick renders (PNG + JSON per figure), bad ids."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DLN_IDS = ["5.5", "5.6", "5.13", "5.14", "5.15"]


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "figures", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_list_json_structure(capsys):
    from figures.__main__ import main

    assert main(["--list", "--json"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert set(obj) == {"figures", "version"} and obj["version"]
    ids = [f["id"] for f in obj["figures"]]
    assert len(ids) == len(set(ids))
    for f in obj["figures"]:
        assert set(f) == {"id", "thesis_figure", "title"}
        assert (f["thesis_figure"] is None or re.fullmatch(r"\d+\.\d+", f["thesis_figure"])) and f["title"]
    by_id = {f["id"]: f for f in obj["figures"]}
    for i in DLN_IDS:
        assert by_id[i]["thesis_figure"] == i


def test_list_text(capsys):
    from figures.__main__ import main

    assert main(["--list"]) == 0
    out = capsys.readouterr().out.splitlines()
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


def test_unknown_id_exits_2_with_one_stderr_line(tmp_path):
    p = run("5.6", "no-such-figure", "--out", str(tmp_path))
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "no-such-figure" in err[0]
    for i in DLN_IDS:
        assert i in err[0]
    assert p.stdout == "" and not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def quick_render(tmp_path_factory):
    out = tmp_path_factory.mktemp("figs")
    p = run("--quick", "--json", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # progress bars and warnings are silent under --json
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    return out, json.loads(lines[0])


def test_quick_render_json_contract(quick_render):
    out, obj = quick_render
    assert set(obj) == {"figures", "version"}
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
