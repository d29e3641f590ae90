"""``python -m proofs_check [--json] [--list] [NAME ...]``: run the symbolic checks, print a table.

Exit status: 0 if every selected check passes, 1 if any fails, 2 on bad usage (unknown name).
"""
from __future__ import annotations

from typing import Sequence

from toymodels._cli import Parser, emit_json, run_main

from . import registry, run_checks

PROG = "python -m proofs_check"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(prog=PROG, description="Run the sympy checks of the thesis' derivations.")
    p.add_argument("names", nargs="*", metavar="NAME", help="checks to run (default: all)")
    p.add_argument("--list", action="store_true", help="list the registered checks and exit")
    p.add_argument("--json", action="store_true",
                   help="print exactly one JSON object {checks: [...], version} on stdout")
    args = p.parse_args(argv)

    if args.list:
        reg = registry()
        names = args.names or list(reg)
        unknown = [n for n in names if n not in reg]
        if unknown:
            p.error(f"unknown check name(s) {', '.join(unknown)}; valid names: {', '.join(reg)}")
        if args.json:
            emit_json({"checks": [{"name": n, "ref": reg[n].ref} for n in names]})
        else:
            print(_table([[n, reg[n].ref] for n in names], ["name", "ref"]))
        return 0

    results = run_checks(args.names or None)
    if args.json:
        emit_json({"checks": results})
    else:
        rows = []
        for r in results:
            rows.append([r["name"], r["ref"], "PASS" if r["passed"] else "FAIL", r["detail"]])
        print(_table(rows, ["name", "ref", "result", "detail"]))
        n_fail = sum(not r["passed"] for r in results)
        print(f"\n{len(results) - n_fail}/{len(results)} passed")
    return 1 if any(not r["passed"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, prog=PROG))
