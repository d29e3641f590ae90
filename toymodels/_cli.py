"""Command-line conventions shared by every ``python -m toymodels.<model>``.

* ``--help`` everywhere; ``--seed``; ``--json`` prints exactly one JSON object on stdout with the
  resolved ``config`` and the package ``version``; ``--out DIR`` writes results atomically.
* Bad input never produces a traceback: the command exits 2 with one line on stderr that names the
  parameter and its valid range (:class:`UsageError`, or argparse's own errors reformatted).
* Progress bars (tqdm, on stderr) are silent under ``--json``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Callable, Sequence

from . import __version__
from ._io import to_jsonable

__all__ = [
    "UsageError", "Parser", "add_common", "run_main", "emit_json", "progress",
    "check_positive", "check_nonneg", "check_int_range", "check_finite", "check_choice",
]


class UsageError(ValueError):
    """Invalid user input. The message names the parameter and its valid range."""


def check_finite(name: str, value: float) -> float:
    if not math.isfinite(float(value)):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    return value


def check_positive(name: str, value: float) -> float:
    check_finite(name, value)
    if not value > 0:
        raise UsageError(f"{name} must be > 0, got {value!r}")
    return value


def check_nonneg(name: str, value: float) -> float:
    check_finite(name, value)
    if not value >= 0:
        raise UsageError(f"{name} must be >= 0, got {value!r}")
    return value


def check_int_range(name: str, value: int, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or int(value) != value:
        raise UsageError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else str(lo)
        hi_s = "inf" if hi is None else str(hi)
        raise UsageError(f"{name} must be an integer in [{lo_s}, {hi_s}], got {value}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise UsageError(f"{name} must be one of {{{', '.join(map(str, choices))}}}, got {value!r}")
    return value


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_common(parser: argparse.ArgumentParser, *, seed: bool = True, out: bool = True) -> None:
    if seed:
        parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0); a run is fully "
                            "determined by its config and seed")
    parser.add_argument("--json", action="store_true",
                        help="print exactly one JSON object (results, resolved config, version) on stdout")
    if out:
        parser.add_argument("--out", metavar="DIR", default=None,
                            help="write result files (JSON, arrays, plots) atomically into DIR")


def emit_json(obj: dict, stream=None) -> None:
    """Print one strict-JSON object (NaN/inf become null), always including ``version``."""
    obj = dict(obj)
    obj.setdefault("version", __version__)
    stream = sys.stdout if stream is None else stream
    stream.write(json.dumps(to_jsonable(obj), allow_nan=False) + "\n")
    stream.flush()


def progress(total: int, *, disable: bool, desc: str | None = None, unit: str = "it"):
    """A tqdm bar on stderr (disabled under --json or when asked); a no-op object otherwise."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=disable, desc=desc, unit=unit, leave=False, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
             prog: str = "toymodels") -> int:
    """Run a CLI ``main``; turn :class:`UsageError` into exit 2 + one stderr line, never a traceback.

    Usage: ``raise SystemExit(run_main(main, prog="python -m toymodels.dln"))`` in ``__main__``.
    """
    try:
        rc = main(argv)
    except UsageError as exc:
        msg = str(exc).replace("\n", " ")
        sys.stderr.write(f"{prog}: error: {msg}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    return 0 if rc is None else int(rc)
