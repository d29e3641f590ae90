"""The shape of the code: small units. A function longer than :data:`MAX_LINES` lines states why in
its docstring (a paragraph starting ``Long because``): a numba kernel whose loop cannot be split
without a measurable cost, a table of cases, ..."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80


def _long_functions():
    out = []
    for base in ("toymodels", "figures", "proofs_check"):
        for p in sorted((ROOT / base).rglob("*.py")):
            tree = ast.parse(p.read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    doc = ast.get_docstring(node) or ""
                    if n > MAX_LINES and "Long because" not in doc:
                        out.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_long_function_without_a_reason():
    long = _long_functions()
    assert not long, "\n".join(long)
