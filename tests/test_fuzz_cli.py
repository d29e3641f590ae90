"""Property-based fuzzing of every flag of every command in the contract list (:mod:`test_contract`).

For each command, hypothesis draws an option and a value outside the range its type declares (plus
arbitrary junk: empty strings, NaN, inf, 1e999, words, fractions by zero, lists with bad members) and
runs the command with it: the run must exit 2 with exactly one stderr line that names the flag, print
nothing on stdout and show no traceback. Validation happens before any work, so each example costs
milliseconds. Seeds are fixed (derandomize=True); ``test_bad_input_count`` states how many inputs a
full run tries (≥ 300 is the issue's goal).
"""
from __future__ import annotations

import pytest
from badvalues import bad_value_strategy, typed_options
from helpers import cli_of, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_contract import COMMANDS

EXAMPLES = 12


def _options(mod, sub):
    return [(flag, a) for flag, a in typed_options(cli_of(mod).subparser(sub))]


@pytest.mark.parametrize("mod,sub", COMMANDS)
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_bad_values(mod, sub, data):
    opts = _options(mod, sub)
    if not opts:
        return
    flag, action = data.draw(st.sampled_from(opts), label="option")
    bad = data.draw(bad_value_strategy(action.type), label="value")
    c = next(c for c in cli_of(mod).commands if c.name == sub)
    base = ([sub] if sub else []) + list(c.smoke)
    if flag is None:   # a positional: replace the smoke run's value by appending a bad one
        argv = ([sub] if sub else []) + ["--", bad]
        name = action.metavar if isinstance(action.metavar, str) else action.dest
    else:
        argv = base + [f"{flag}={bad}"]
        name = flag
    r = run_cli(mod, argv)
    assert "Traceback" not in r.err, r.err
    assert r.rc == 2, (argv, r.rc, r.err[-500:])
    assert len(r.err_lines) == 1, (argv, r.err)
    assert r.out == "", (argv, r.out[:200])
    if flag is not None:
        assert name in r.err, (argv, r.err)


def test_bad_input_count():
    """The fuzz run tries at least 300 bad inputs over the whole contract list."""
    n = sum(EXAMPLES for p in COMMANDS if _options(*p.values))
    assert n >= 300, n
