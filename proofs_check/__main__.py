"""``python -m proofs_check [--json] [--list] [NAME ...]``: run the symbolic checks, print a table.

Exit status: 0 if every selected check passes, 1 if any fails (the output still lists every
check), 2 on bad usage (an unknown name).
"""
from __future__ import annotations

import argparse

from toymodels._cli import Choice, Cli, Command, Result

PROG = "python -m proofs_check"


def add_arguments(p) -> None:
    from . import registry

    p.add_argument("names", nargs="*", default=[], metavar="NAME", type=Choice(*registry(), metavar="NAME"),
                   help="checks to run (default: all; see --list)")
    p.add_argument("--list", action="store_true", help="list the registered checks (honours --json) and exit")


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _human(results: list[dict]) -> None:
    rows = [[r["name"], r["ref"], "PASS" if r["passed"] else "FAIL", r["detail"]] for r in results]
    print(_table(rows, ["name", "ref", "result", "detail"]))
    n_fail = sum(not r["passed"] for r in results)
    print(f"\n{len(results) - n_fail}/{len(results)} passed")


def run(a: argparse.Namespace, session) -> Result:
    from . import registry, run_checks

    reg = registry()
    names = list(dict.fromkeys(a.names)) or list(reg)
    config = {"names": names}
    if a.list:
        listing = [{"name": n, "ref": reg[n].ref} for n in names]
        return Result({"checks": listing}, config,
                      human=lambda: print(_table([[c["name"], c["ref"]] for c in listing], ["name", "ref"])))
    results = run_checks(names)
    failed = [r["name"] for r in results if not r["passed"]]
    return Result({"checks": results, "passed": not failed, "failed": failed}, config,
                  human=lambda: _human(results), exit_code=1 if failed else 0)


CLI = Cli(PROG, __doc__, [Command(
    None, "run the sympy checks of the thesis' derivations", add_arguments, run, seed=False, random=False,
    description="Run the sympy checks of the thesis' derivations; exit status 1 if any fails.",
    epilog="Example: python -m proofs_check dln.q_derivative dln.l2_limit",
    smoke=("dln.q_derivative", "dln.l2_limit"))])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
