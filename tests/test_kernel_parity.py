"""Every numba kernel agrees with its numpy reference (same name, same signature) on the small
arguments of its registry entry, to the tolerance stated there (bit for bit where it is 0).

The registry is :func:`toymodels.kernels.registry` (the ``CASES`` of every ``_reference.py``); the
benchmark times the same cases. A kernel without a case fails :func:`test_every_kernel_is_registered`.
"""
import ast
import importlib
from pathlib import Path

import pytest

from toymodels.kernels import PACKAGES, call_both, mismatches, registry

ROOT = Path(__file__).resolve().parents[1] / "toymodels"
CASES = registry()


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_matches_reference(name):
    case = CASES[name]
    out_k, out_r = call_both(case, "small")
    assert not mismatches(case, out_k, out_r), (name, mismatches(case, out_k, out_r))


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_has_kernel_name_and_signature(name):
    import inspect

    case = CASES[name]
    k = getattr(case.kernel, "py_func", case.kernel)
    assert k.__name__ == case.reference.__name__, name
    assert list(inspect.signature(k).parameters) == list(inspect.signature(case.reference).parameters), name
    assert ".".join(k.__module__.split(".")[:2]) == ".".join(case.reference.__module__.split(".")[:2]), name


def _njit_functions(path: Path) -> list[str]:
    """Top-level functions decorated with numba's njit/jit in ``path``."""
    tree = ast.parse(path.read_text())
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                src = ast.unparse(dec)
                if "njit" in src or "jit(" in src:
                    out.append(node.name)
    return out


def test_numba_kernels_live_in_kernels_modules():
    """No @njit outside ``_kernels.py`` / ``_kernels/`` (and the shared counter RNG in toymodels/rng.py)."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.name == "_kernels.py" or "_kernels" in rel.parts or rel.as_posix() == "rng.py":
            continue
        if _njit_functions(path):
            offenders.append(rel.as_posix())
    assert not offenders, offenders


def test_every_kernel_is_registered():
    """Every public (no leading underscore) njit function of a ``_kernels`` module has a registry case
    named ``<package>.<function>`` or ``<package>.<function>.<variant>``; private ones are helpers
    inlined into them."""
    registered = {".".join(n.split(".")[:2]) for n in CASES}
    missing = []
    for pkg in PACKAGES:
        base = ROOT / pkg
        paths = [base / "_kernels.py"] if (base / "_kernels.py").exists() else sorted((base / "_kernels").glob("*.py"))
        for path in paths:
            for fn in _njit_functions(path):
                if not fn.startswith("_") and f"{pkg}.{fn}" not in registered:
                    missing.append(f"{pkg}.{fn}")
    assert not missing, missing


def test_unknown_backend_is_a_config_error():
    """Backends are named "numba" or "numpy" everywhere; anything else is a ConfigError."""
    from toymodels.errors import ConfigError
    from toymodels.backends import check_backend

    for b in ("numba", "numpy"):
        assert check_backend(b) == b
    for bad in ("nunba", "NumPy", "", None, "torch"):
        with pytest.raises(ConfigError, match="backend must be one of"):
            check_backend(bad)
