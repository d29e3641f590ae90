"""Bad values for every typed option of the runner (:mod:`toymodels._cli`), for the contract and fuzz
tests: each option's type states its valid range, so values outside it can be drawn mechanically."""
from __future__ import annotations

import argparse
import math

from hypothesis import strategies as st

from toymodels._cli import ArgType, Choice, InDir, InFile, Int, ListOf, Num, OutDir, Text

__all__ = ["typed_options", "fixed_bad_values", "bad_value_strategy"]

_JUNK = ["", " ", "abc", "nan", "NaN", "inf", "-inf", "1e999", "--", "1,2", "0x", "½", "1/0", "None"]


def typed_options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """(flag, action) of every option that takes a value (positionals: their metavar/dest)."""
    out = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._StoreTrueAction, argparse._StoreFalseAction,
                          argparse._SubParsersAction, argparse._VersionAction, argparse._StoreConstAction,
                          argparse._CountAction)):
            continue
        flag = max(a.option_strings, key=len) if a.option_strings else None
        out.append((flag, a))
    return out


def _fmt(x: float) -> str:
    return repr(float(x)) if not float(x).is_integer() or abs(x) > 1e15 else str(int(x))


def _num_outside(t) -> list[str]:
    vals = []
    integer = isinstance(t, Int)
    if t.lo is not None:
        lo = float(t.lo)
        vals.append(_fmt(lo - 1) if integer else _fmt(lo - max(1.0, abs(lo))))
        if getattr(t, "lo_open", False):
            vals.append(_fmt(lo))
    if t.hi is not None:
        hi = float(t.hi)
        vals.append(str(int(t.hi) + 1) if integer else _fmt(hi + max(1.0, abs(hi))))
        if getattr(t, "hi_open", False):
            vals.append(_fmt(hi))
    return vals


def fixed_bad_values(t) -> list[str]:
    """A deterministic list of values that ``t`` must reject (empty if none can be named)."""
    if isinstance(t, Num):
        return ["abc", "nan", "inf", "1e999", "", "1/0"] + _num_outside(t)
    if isinstance(t, Int):
        return ["abc", "1.5", "nan", "", "1e999"] + _num_outside(t)
    if isinstance(t, Choice):
        bad = [v for v in ("", "nosuchchoice", "NUMBA", "1") if v not in t.choices]
        return bad + [c.upper() + "x" for c in t.choices[:2]]
    if isinstance(t, ListOf):
        vals = ["", ",", "a,b"]
        inner = fixed_bad_values(t.item)
        vals += [v for v in inner[:3] if "," not in v and v != ""]
        if t.max_len is not None:
            vals.append(",".join(["1"] * (t.max_len + 1)))
        return [v for v in vals if _rejects(t, v)]
    if isinstance(t, InFile):
        return ["/nonexistent/file" + t.suffix, "/", "/proc"]
    if isinstance(t, OutDir):
        return ["", "/etc/hostname", "/etc/hostname/sub"]
    if isinstance(t, InDir):
        return ["/nonexistent/dir", "/etc/hostname"]
    if isinstance(t, Text):
        return [v for v in ("", " ", "\n", "x" * 300, "../..", "a b") if _rejects(t, v)]
    return []


def _rejects(t: ArgType, text: str) -> bool:
    try:
        t(text)
    except argparse.ArgumentTypeError:
        return True
    return False


def bad_value_strategy(t):
    """A hypothesis strategy of strings that ``t`` rejects (filtered by ``t`` itself)."""
    fixed = fixed_bad_values(t)
    s = st.sampled_from(fixed) if fixed else st.nothing()
    if isinstance(t, (Num, Int)):
        numbers = []
        if t.lo is not None:
            numbers.append(st.floats(max_value=float(t.lo), allow_nan=False, allow_infinity=False, width=64)
                           .map(lambda x: _fmt(x) if isinstance(t, Num) else str(int(math.floor(x)) - 1)))
        if t.hi is not None:
            numbers.append(st.floats(min_value=float(t.hi), allow_nan=False, allow_infinity=False, width=64)
                           .map(lambda x: _fmt(x) if isinstance(t, Num) else str(int(math.ceil(x)) + 1)))
        junk = st.text(alphabet="abcxyz!@#% eE.+-/", min_size=0, max_size=6)
        s = st.one_of(s, junk, *numbers)
    elif isinstance(t, Choice):
        s = st.one_of(s, st.text(min_size=0, max_size=12))
    elif isinstance(t, ListOf):
        s = st.one_of(s, st.lists(st.text(alphabet="ab,;x-/ ", max_size=4), max_size=5).map(",".join))
    return s.filter(lambda v: _rejects(t, v))
