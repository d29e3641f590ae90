"""The experiment contract, checked on every command (in the spirit of scikit-learn's ``check_estimator``).

For every ``python -m`` module in :data:`MODULES` and each of its commands:

* ``--help`` exits 0 and prints the usage;
* every option that takes a value declares a checked type (its valid range), and a value outside it
  exits 2 with one stderr line naming the flag, before any work (no traceback);
* the command's smoke run with ``--json`` prints exactly one JSON object with ``config`` and
  ``version``; with ``--out`` it writes ``result.json`` (the same object) atomically (no temporary
  files left, mode 0644 under umask 022); an ``--out`` that is a file exits 2 before any work;
* the same seed gives identical JSON (timings aside); a different seed gives a different one where the
  command is random.

A ``__main__.py`` that :data:`MODULES` does not name fails :func:`test_every_main_is_listed`; CLI code
outside ``__main__.py`` / ``*_cli.py`` fails :func:`test_cli_code_only_in_cli_modules`.
"""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
from badvalues import fixed_bad_values, typed_options
from helpers import cli_of, run_cli, strip_timings

from toymodels._cli import ArgType
from toymodels.optional import missing_modules

ROOT = Path(__file__).resolve().parents[1]

#: every ``python -m`` entry point of the project
MODULES = (
    "toymodels.dln", "toymodels.cnn", "toymodels.fgsm", "toymodels.quad1d", "toymodels.sde", "toymodels.relu",
    "toymodels.sharpness", "toymodels.square", "toymodels.sam_convergence", "toymodels.bench", "toymodels.torch",
    "figures", "proofs_check",
)


def _commands():
    out = []
    for mod in MODULES:
        try:
            commands = cli_of(mod).commands
        except Exception as exc:  # noqa: BLE001 - a module without a runner CLI: its tests fail, others run
            out.append(pytest.param(mod, f"<no CLI: {type(exc).__name__}>", id=f"{mod}:<no CLI>"))
            continue
        for c in commands:
            out.append(pytest.param(mod, c.name, id=f"{mod}:{c.name or '-'}"))
    return out


COMMANDS = _commands()


def _argv(sub, *args):
    return ([sub] if sub else []) + [str(a) for a in args]


def _command(mod, sub):
    return next(c for c in cli_of(mod).commands if c.name == sub)


def _runnable(mod, sub):
    c = _command(mod, sub)
    missing = missing_modules(c.needs)
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    return c


@pytest.mark.parametrize("mod", MODULES)
def test_python_dash_m_help(mod):
    """The module really runs as ``python -m`` (a fresh interpreter, not the in-process runner)."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", mod, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "usage:" in p.stdout and "Traceback" not in p.stderr, p.stderr[-500:]


def test_every_main_is_listed():
    mains = set()
    for base in ("toymodels", "figures", "proofs_check"):
        for p in (ROOT / base).rglob("__main__.py"):
            mains.add(".".join(p.parent.relative_to(ROOT).parts))
    assert mains == set(MODULES), (sorted(mains - set(MODULES)), sorted(set(MODULES) - mains))


def test_cli_code_only_in_cli_modules():
    """argparse, the runner's command classes and ``if __name__ == "__main__"`` only in ``__main__.py``,
    ``*_cli.py`` (and the runner itself)."""
    offenders = []
    for base in ("toymodels", "figures", "proofs_check"):
        for p in (ROOT / base).rglob("*.py"):
            if p.name == "__main__.py" or p.name.endswith("_cli.py"):
                continue
            src = p.read_text()
            tree = ast.parse(src)
            names = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    names |= {f"{node.module}.{a.name}" for a in node.names}
            bad = [n for n in names if n == "argparse" or n.endswith("_cli.Cli") or n.endswith("_cli.Command")]
            if bad or '__name__ == "__main__"' in src or "__name__ == '__main__'" in src:
                offenders.append(f"{p.relative_to(ROOT)}: {bad or '__main__ guard'}")
    assert not offenders, offenders


def test_no_cli_exception_below_the_cli_layer():
    offenders = [str(p.relative_to(ROOT)) for base in ("toymodels", "figures", "proofs_check")
                 for p in (ROOT / base).rglob("*.py") if "UsageError" in p.read_text()]
    assert not offenders, offenders


@pytest.mark.parametrize("mod,sub", COMMANDS)
def test_help(mod, sub):
    r = run_cli(mod, _argv(sub, "--help"))
    assert r.rc == 0 and "usage:" in r.out and not r.err, (r.rc, r.err)


@pytest.mark.parametrize("mod,sub", COMMANDS)
def test_every_option_declares_its_range(mod, sub):
    parser = cli_of(mod).subparser(sub)
    untyped = [f or a.dest for f, a in typed_options(parser) if not isinstance(a.type, ArgType)]
    assert not untyped, f"options without a checked type: {untyped}"


@pytest.mark.parametrize("mod,sub", COMMANDS)
def test_bad_values_exit_2_naming_the_flag(mod, sub):
    """One line, exit 2, the flag named, for the fixed bad values of every option (the fuzz test draws more)."""
    c = _command(mod, sub)
    parser = cli_of(mod).subparser(sub)
    n = 0
    for flag, action in typed_options(parser):
        for bad in fixed_bad_values(action.type)[:4]:
            if flag is None:
                continue          # positionals: covered by the fuzz test
            r = run_cli(mod, _argv(sub, *c.smoke, f"{flag}={bad}"))
            assert r.rc == 2, (flag, bad, r.rc, r.err[-300:])
            assert len(r.err_lines) == 1 and flag in r.err and "Traceback" not in r.err, (flag, bad, r.err)
            assert r.out == "", (flag, bad)
            n += 1
    assert n > 0 or not typed_options(parser)


@pytest.mark.parametrize("mod,sub", COMMANDS)
def test_out_that_is_a_file_is_refused_before_work(mod, sub, tmp_path):
    c = _command(mod, sub)
    if not c.out:
        pytest.skip("no --out")
    f = tmp_path / "a_file"
    f.write_text("x")
    r = run_cli(mod, _argv(sub, *c.smoke, "--out", f))
    assert r.rc == 2 and len(r.err_lines) == 1 and "--out" in r.err, (r.rc, r.err)
    assert f.read_text() == "x"


@pytest.mark.parametrize("mod,sub", COMMANDS)
def test_json_out_and_seeds(mod, sub, tmp_path, monkeypatch):
    c = _runnable(mod, sub)
    monkeypatch.chdir(tmp_path)           # a command's default output folder lands here, not in the repo
    old = os.umask(0o022)
    try:
        r1 = run_cli(mod, _argv(sub, *c.smoke, *(["--seed", "1"] if c.seed else []), "--json",
                                *(["--out", tmp_path / "o"] if c.out else [])))
    finally:
        os.umask(old)
    assert r1.rc == 0, r1.err[-2000:]
    j1 = r1.json
    assert isinstance(j1.get("config"), dict) and isinstance(j1.get("version"), str), sorted(j1)
    if c.out:
        files = list((tmp_path / "o").iterdir())
        assert not [p for p in files if p.name.startswith(".") and p.name.endswith(".tmp")], files
        saved = json.loads((tmp_path / "o" / "result.json").read_text())
        assert strip_timings(saved) == strip_timings(j1)
        assert ((tmp_path / "o" / "result.json").stat().st_mode & 0o777) == 0o644
    if not c.seed:
        return
    r2 = run_cli(mod, _argv(sub, *c.smoke, "--seed", "1", "--json"))
    assert r2.rc == 0 and strip_timings(r2.json) == strip_timings(j1)
    if c.random:
        r3 = run_cli(mod, _argv(sub, *c.smoke, "--seed", "2", "--json"))
        assert r3.rc == 0
        a, b = strip_timings(r3.json), strip_timings(j1)
        a.pop("config"), b.pop("config")
        assert a != b, "different seeds gave identical results: declare the command random=False if it is"
