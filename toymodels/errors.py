"""Library errors and the validators that raise them.

The library never speaks of command-line flags: a bad value raises :class:`ConfigError`, which names
the *field* (a config attribute or function argument, e.g. ``lr``) and its valid range. Only the CLI
layer (:mod:`toymodels._cli`) maps a field to its flag (``lr`` → ``--lr``) when it prints the one
line on stderr. A failure that is neither bad input nor a result (an unreadable file discovered
mid-run, a worker that died) is a :class:`RunError` (exit status 1 on the command line).

Validators return the (normalized) value so that they can be used inline::

    lr = check_positive("lr", lr)
    steps = check_int("steps", steps, 1, 10**9)
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

__all__ = [
    "ConfigError", "RunError", "check_finite", "check_positive", "check_nonneg", "check_range",
    "check_int", "check_choice", "check_bool",
]

_NOTHING = object()


class ConfigError(ValueError):
    """Invalid configuration. ``field`` is the name of the offending parameter, ``requirement`` the
    valid range in words (``"must be > 0"``), ``value`` what was given.

    ``str(err)`` reads ``"<field> <requirement>, got <value>"``; the CLI prints the same sentence with
    the field replaced by its flag (:meth:`render`).
    """

    def __init__(self, field: str, requirement: str, value: Any = _NOTHING):
        self.field = str(field)
        self.requirement = str(requirement)
        self.value = value
        super().__init__(self.render(self.field))

    def render(self, name: str) -> str:
        """The message with ``name`` (e.g. a flag) in place of the field."""
        got = "" if self.value is _NOTHING else f", got {_show(self.value)}"
        return f"{name} {self.requirement}{got}"

    def __reduce__(self):  # picklable across processes (Dask / multiprocessing)
        return (type(self), (self.field, self.requirement, self.value))


class RunError(RuntimeError):
    """A run could not complete for a reason that is not bad input and not a scientific result
    (a diverged run is a result, reported in the output with its step)."""


def _show(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_finite(field: str, value: Any) -> float:
    """``value`` as a finite float."""
    if not _is_number(value) or not math.isfinite(float(value)):
        raise ConfigError(field, "must be a finite number", value)
    return float(value)


def check_range(field: str, value: Any, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float in the interval given by ``lo``/``hi`` (``None``: unbounded)."""
    if not _is_number(value) or not math.isfinite(float(value)):
        raise ConfigError(field, "must be a finite number " + interval(lo, hi, lo_open, hi_open), value)
    x = float(value)
    bad = ((lo is not None and (x <= lo if lo_open else x < lo))
           or (hi is not None and (x >= hi if hi_open else x > hi)))
    if bad:
        raise ConfigError(field, "must be " + interval(lo, hi, lo_open, hi_open), value)
    return x


def check_positive(field: str, value: Any, hi: float | None = None) -> float:
    return check_range(field, value, 0.0, hi, lo_open=True)


def check_nonneg(field: str, value: Any, hi: float | None = None) -> float:
    return check_range(field, value, 0.0, hi)


def check_int(field: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi] (floats with an integral value are accepted)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and _is_number(value) and math.isfinite(float(value)) and float(value).is_integer():
        ok, value = True, int(value)
    if not ok:
        raise ConfigError(field, "must be an integer " + interval(lo, hi, integer=True), value)
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(field, "must be an integer " + interval(lo, hi, integer=True), value)
    return value


def check_choice(field: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ConfigError(field, "must be one of {" + ", ".join(map(str, choices)) + "}", value)
    return value


def check_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, "must be True or False", value)
    return value


def _num(x: float, integer: bool) -> str:
    if integer or float(x).is_integer() and abs(x) < 1e16:
        return str(int(x))
    return f"{x:g}"


def interval(lo=None, hi=None, lo_open: bool = False, hi_open: bool = False, integer: bool = False) -> str:
    """Words for a range: ``> 0``, ``>= 1``, ``in (0, 1]``, ``<= 5``; empty when unbounded."""
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f"{'>' if lo_open else '>='} {_num(lo, integer)}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {_num(hi, integer)}"
    return f"in {'(' if lo_open else '['}{_num(lo, integer)}, {_num(hi, integer)}{')' if hi_open else ']'}"
