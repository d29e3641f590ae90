"""The one runner behind every ``python -m toymodels.<model> [SUB]``, ``proofs_check`` and ``figures``.

A command module declares its commands and hands them to :class:`Cli`::

    CLI = Cli("python -m toymodels.dln", __doc__, [Command(None, "train a DLN", add_arguments, run)])
    if __name__ == "__main__":
        raise SystemExit(CLI.main())

The runner owns, for every command:

* the shared options ``--seed`` (an integer in [0, 2⁶³−1]), ``--json``, ``--out DIR``, ``--quiet``;
* typed option values (:class:`Num` — numbers and fractions such as ``8/255`` —, :class:`Int`,
  :class:`Choice`, :class:`ListOf`, :class:`InFile`, :class:`InDir`, :class:`Text`): a bad value is
  rejected while parsing, before any work, with exit status 2 and one line on stderr naming the flag
  and its valid range;
* ``--out`` is checked (a writable directory, or one that can be created) before any work;
* a :class:`~toymodels.errors.ConfigError` raised by the library becomes exit 2 and one line in which
  the field is replaced by its flag (``lr`` → ``--lr``); a :class:`~toymodels.errors.RunError` or an
  ``OSError`` is exit 1 and one line; Ctrl-C is exit 130; nothing ends in a traceback (set
  ``TOYMODELS_DEBUG=1`` to see one for an unexpected error);
* the output: under ``--json`` exactly one JSON object on stdout — the command's payload plus the
  resolved ``config`` and the package ``version`` — and nothing else on stdout; otherwise the
  command's human-readable printout; with ``--out`` the same object as ``result.json`` plus the
  command's own files, all written atomically;
* progress bars (:meth:`Session.progress`) silent under ``--json`` or ``--quiet``; numpy's floating
  point warnings are silenced (a diverged run is detected and reported with its step by the command).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from ._io import to_jsonable, write_json
from .errors import ConfigError, RunError, interval
from .optional import install_hint, missing_modules
from .rng import SEED_MAX

__all__ = [
    "Cli", "Command", "Result", "Session", "Parser", "ArgType", "Num", "Int", "Choice", "ListOf",
    "InFile", "InDir", "OutDir", "Text", "emit_json", "parse_number", "check_out_dir",
]


# ----------------------------------------------------------------------------------------------------
# typed option values

class ArgType:
    """An argparse ``type=`` that raises one-line range messages; subclasses expose their range as
    attributes so that the contract test can draw bad values for every option."""

    metavar: str = "VALUE"

    def __call__(self, text: str):  # pragma: no cover - abstract
        raise NotImplementedError

    def fail(self, text: str, requirement: str):
        raise argparse.ArgumentTypeError(f"{requirement}, got {text!r}")


_FRACTION = re.compile(r"^\s*([^/]+)/([^/]+)\s*$")


def parse_number(text: str, fraction: bool = True) -> float:
    """A finite float from ``text``; ``a/b`` fractions (``8/255``) when ``fraction``. ValueError otherwise."""
    t = str(text).strip()
    m = _FRACTION.match(t) if fraction else None
    if m:
        a, b = float(m.group(1)), float(m.group(2))
        if b == 0 or not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(text)
        x = a / b
    else:
        x = float(t)
    if not math.isfinite(x):
        raise ValueError(text)
    return x


@dataclass(frozen=True)
class Num(ArgType):
    """A finite real number in a range; fractions ``a/b`` are accepted unless ``fraction=False``."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    fraction: bool = True
    metavar: str = "X"

    def describe(self) -> str:
        rng = interval(self.lo, self.hi, self.lo_open, self.hi_open)
        return "must be a number" + (f" {rng}" if rng else "") + (" (a fraction a/b is allowed)" if self.fraction else "")

    def __call__(self, text: str) -> float:
        try:
            x = parse_number(text, self.fraction)
        except ValueError:
            self.fail(text, self.describe())
        if ((self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo))
                or (self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi))):
            self.fail(text, self.describe())
        return x


@dataclass(frozen=True)
class Int(ArgType):
    """An integer in [lo, hi]; ``1e6`` and ``1_000_000`` are accepted. ``hi`` is where memory or time
    runs out: say why in ``why`` (it is part of the message)."""
    lo: int | None = None
    hi: int | None = None
    why: str = ""
    metavar: str = "N"

    def describe(self) -> str:
        rng = interval(self.lo, self.hi, integer=True)
        return "must be an integer" + (f" {rng}" if rng else "") + (f" ({self.why})" if self.why else "")

    def __call__(self, text: str) -> int:
        t = str(text).strip()
        try:
            v = int(t)
        except ValueError:
            try:
                x = float(t)
            except ValueError:
                self.fail(text, self.describe())
            if not (math.isfinite(x) and x.is_integer() and abs(x) <= 2 ** 53):
                self.fail(text, self.describe())
            v = int(x)
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            self.fail(text, self.describe())
        return v


@dataclass(frozen=True)
class Choice(ArgType):
    """One of a fixed set of words."""
    choices: tuple = ()
    metavar: str = ""

    def __init__(self, *choices: str, metavar: str = ""):
        object.__setattr__(self, "choices", tuple(choices))
        object.__setattr__(self, "metavar", metavar or "{" + ",".join(choices) + "}")

    def describe(self) -> str:
        return "must be one of {" + ", ".join(self.choices) + "}"

    def __call__(self, text: str) -> str:
        t = str(text).strip()
        if t not in self.choices:
            self.fail(text, self.describe())
        return t


@dataclass(frozen=True)
class ListOf(ArgType):
    """A comma-separated list of ``item`` values with ``min_len`` ≤ length ≤ ``max_len``; returns a tuple."""
    item: ArgType = Num()
    min_len: int = 1
    max_len: int | None = None
    unique: bool = False
    increasing: bool = False
    metavar: str = "A,B,..."

    def describe(self) -> str:
        words = self.item.describe().replace("must be ", "", 1)
        n = (f"at least {self.min_len}" if self.max_len is None else
             f"{self.min_len}" if self.max_len == self.min_len else f"{self.min_len} to {self.max_len}")
        extra = ", increasing" if self.increasing else (", distinct" if self.unique else "")
        return f"must be a comma-separated list of {n} values{extra}, each {words}"

    def __call__(self, text: str) -> tuple:
        parts = [p for p in str(text).split(",")]
        if str(text).strip() == "":
            parts = []
        if len(parts) < self.min_len or (self.max_len is not None and len(parts) > self.max_len):
            self.fail(text, self.describe())
        try:
            vals = tuple(self.item(p) for p in parts)
        except argparse.ArgumentTypeError:
            self.fail(text, self.describe())
        if self.unique and len(set(vals)) != len(vals):
            self.fail(text, self.describe())
        if self.increasing and any(b <= a for a, b in zip(vals, vals[1:])):
            self.fail(text, self.describe())
        return vals


@dataclass(frozen=True)
class InFile(ArgType):
    """An existing, readable file (``suffix``: its required ending, e.g. ``.npz``)."""
    suffix: str = ""
    metavar: str = "FILE"

    def describe(self) -> str:
        return "must be an existing readable file" + (f" ending in {self.suffix}" if self.suffix else "")

    def __call__(self, text: str) -> str:
        p = Path(os.path.expanduser(str(text)))
        if not p.is_file() or not os.access(p, os.R_OK) or (self.suffix and not p.name.endswith(self.suffix)):
            self.fail(text, self.describe())
        return str(p)


@dataclass(frozen=True)
class InDir(ArgType):
    """An existing directory."""
    metavar: str = "DIR"

    def describe(self) -> str:
        return "must be an existing directory"

    def __call__(self, text: str) -> str:
        p = Path(os.path.expanduser(str(text)))
        if not p.is_dir():
            self.fail(text, self.describe())
        return str(p)


@dataclass(frozen=True)
class OutDir(ArgType):
    """A directory for results: existing and writable, or creatable (checked without creating it)."""
    metavar: str = "DIR"

    def describe(self) -> str:
        return "must be a writable directory or one that can be created"

    def __call__(self, text: str) -> str:
        why = check_out_dir(text)
        if why:
            raise argparse.ArgumentTypeError(why)
        return str(text)


@dataclass(frozen=True)
class Text(ArgType):
    """Free text matching ``pattern`` (a regular expression, full match); ``words`` describes it."""
    pattern: str = r".+"
    words: str = "non-empty text"
    metavar: str = "TEXT"

    def describe(self) -> str:
        return f"must be {self.words}"

    def __call__(self, text: str) -> str:
        if not re.fullmatch(self.pattern, str(text)):
            self.fail(text, self.describe())
        return str(text)


# ----------------------------------------------------------------------------------------------------
# parser

class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr (naming the flag) and exit status 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # negative numbers in exponent or fraction notation (-1e-3, -8/255) are values, not options
        self._negative_number_matcher = re.compile(
            r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?(/(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)?$")

    def error(self, message: str):  # noqa: D401 - argparse API
        m = re.match(r"^argument ([^:]+): (.*)$", message, re.S)
        if m:
            flag = m.group(1).split("/")[-1]
            message = f"{flag} {m.group(2)}"
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message}\n")


def _flag_of(parser: argparse.ArgumentParser, field: str) -> str | None:
    for a in parser._actions:
        if a.dest == field:
            if a.option_strings:
                return max(a.option_strings, key=len)
            return a.metavar if isinstance(a.metavar, str) else a.dest.upper()
    return None


# ----------------------------------------------------------------------------------------------------
# commands

@dataclass
class Result:
    """What a command's ``run`` returns.

    payload : the JSON fields (``config`` and ``version`` are added by the runner)
    config : the resolved configuration (everything that determines the run, seed included)
    human : prints the human-readable output on stdout (not called under ``--json``)
    files : ``{file name: writer(path)}`` written under ``--out`` (besides ``result.json``); each
        writer must write atomically (:mod:`toymodels._io`)
    exit_code : 0 for a result (a diverged run is a result); 1 when the run reports a failure
    """
    payload: dict
    config: dict
    human: Callable[[], None] | None = None
    files: dict = field(default_factory=dict)
    exit_code: int = 0


@dataclass
class Command:
    """One command: ``name`` (the subcommand; None for a module with a single command), a one-line
    ``help``, ``add_arguments(parser)`` and ``run(args, session) -> Result``.

    seed, out : whether the runner adds ``--seed`` / ``--out``
    random : whether different seeds give different results (checked by the contract test)
    flags : field → flag overrides for ConfigError messages (default: the option whose ``dest`` is the field)
    description, epilog : the ``--help`` text (default: ``help``)
    smoke : the arguments of a run that takes about a second (the contract test runs it with
        ``--json``, ``--out`` and two seeds)
    needs : optional modules the run needs (``("torch",)``); without them the run exits 1 with one
        line saying what to install, while ``--help`` and bad-value errors still work
    """
    name: str | None
    help: str
    add_arguments: Callable[[Parser], None]
    run: Callable[[argparse.Namespace, "Session"], Result]
    seed: bool = True
    out: bool = True
    random: bool = True
    flags: dict = field(default_factory=dict)
    description: str | None = None
    epilog: str | None = None
    smoke: tuple = ()
    needs: tuple = ()


class Session:
    """What a running command may use besides its arguments: the shared flags, progress bars, notes."""

    def __init__(self, prog: str, args: argparse.Namespace):
        self.prog = prog
        self.args = args
        self.json = bool(getattr(args, "json", False))
        self.quiet = bool(getattr(args, "quiet", False))
        out = getattr(args, "out", None)
        self.out = None if out is None else Path(out)

    @property
    def show_progress(self) -> bool:
        return not (self.json or self.quiet)

    def progress(self, total: int | None, desc: str | None = None, unit: str = "it"):
        """A tqdm bar on stderr, silent under --json / --quiet."""
        from .progress import progress

        return progress(total, disable=not self.show_progress, desc=desc, unit=unit)

    def note(self, message: str) -> None:
        """One line on stderr (e.g. "diverged at step 12"), silent under --quiet."""
        if not self.quiet:
            sys.stderr.write(f"{self.prog}: {message}\n")


def emit_json(obj: dict, stream=None) -> None:
    """Print one strict-JSON object (NaN/inf become null) on one line, always including ``version``."""
    obj = dict(obj)
    obj.setdefault("version", __version__)
    stream = sys.stdout if stream is None else stream
    stream.write(json.dumps(to_jsonable(obj), allow_nan=False) + "\n")
    stream.flush()


def add_common(parser: argparse.ArgumentParser, *, seed: bool = True, out: bool = True) -> None:
    """The shared options; :class:`Cli` adds them to every command."""
    if seed:
        parser.add_argument("--seed", type=Int(0, SEED_MAX), default=0,
                            help="random seed in [0, 2^63-1] (default: 0); a run is fully determined by "
                                 "its config and seed")
    parser.add_argument("--json", action="store_true",
                        help="print exactly one JSON object (results, resolved config, version) on stdout")
    if out:
        parser.add_argument("--out", metavar="DIR", type=OutDir(), default=None,
                            help="also write result.json and the command's files atomically into DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or notes on stderr")


def check_out_dir(path: str) -> str | None:
    """None if ``path`` is (or can be created as) a writable directory, else the reason."""
    p = Path(os.path.expanduser(path))
    if str(path).strip() == "":
        return "must be a directory path, got ''"
    if p.exists():
        if not p.is_dir():
            return f"must be a directory, but {str(path)!r} is a file"
        if not os.access(p, os.W_OK | os.X_OK):
            return f"must be a writable directory, {str(path)!r} is not writable"
        return None
    anc = p.absolute().parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        return f"must be a directory that can be created, but {str(anc)!r} is a file"
    if not os.access(anc, os.W_OK | os.X_OK):
        return f"must be a directory that can be created, but {str(anc)!r} is not writable"
    return None


class Cli:
    """The entry point of one ``python -m`` module: one command, or several as subcommands."""

    def __init__(self, prog: str, description: str, commands: Sequence[Command], epilog: str | None = None):
        self.prog = prog
        self.description = (description or "").strip().split("\n\n")[0]
        self.epilog = epilog
        self.commands = list(commands)
        if len(self.commands) > 1 and any(c.name is None for c in self.commands):
            raise TypeError("with several commands every command needs a name")

    # the parser is built on demand (cheap: add_arguments must not import heavy modules)
    def parser(self) -> Parser:
        if len(self.commands) == 1 and self.commands[0].name is None:
            c = self.commands[0]
            p = Parser(prog=self.prog, description=c.description or self.description, epilog=c.epilog or self.epilog)
            self._fill(p, c)
            return p
        p = Parser(prog=self.prog, description=self.description, epilog=self.epilog)
        sub = p.add_subparsers(dest="command", metavar="{" + ",".join(c.name for c in self.commands) + "}",
                               parser_class=Parser)
        sub.required = True
        for c in self.commands:
            sp = sub.add_parser(c.name, help=c.help.replace("%", "%%"), description=c.description or c.help, epilog=c.epilog,
                                allow_abbrev=False)
            sp.prog = f"{self.prog} {c.name}"
            self._fill(sp, c)
        return p

    def subparser(self, name: str | None, parser: Parser | None = None) -> Parser:
        """The parser of command ``name`` (``parser``: the already built top-level parser)."""
        p = self.parser() if parser is None else parser
        if name is None:
            return p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                return a.choices[name]
        raise KeyError(name)

    @staticmethod
    def _fill(p: Parser, c: Command) -> None:
        c.add_arguments(p)
        add_common(p, seed=c.seed, out=c.out)
        for a in p._actions:          # --help shows the type's metavar (X, N, DIR, {a,b}) unless one was given
            if a.metavar is None and a.option_strings and isinstance(a.type, ArgType) and a.type.metavar:
                a.metavar = a.type.metavar
        p.set_defaults(_command=c)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Run with ``argv`` (default ``sys.argv[1:]``); returns the exit status, never raises."""
        argv = list(sys.argv[1:] if argv is None else argv)
        try:
            parser = self.parser()
            args = parser.parse_args(argv)
        except SystemExit as exc:        # --help (0) or a usage error (2, already printed)
            return int(exc.code or 0)
        except Exception as exc:  # noqa: BLE001 - a broken add_arguments: still one line, never a traceback
            if os.environ.get("TOYMODELS_DEBUG"):
                raise
            return _fail(self.prog, 1, f"internal error while building the options ({type(exc).__name__}: {exc}); "
                                       "please report it (TOYMODELS_DEBUG=1 shows the traceback)")
        cmd: Command = args._command
        prog = self.prog if cmd.name is None else f"{self.prog} {cmd.name}"
        sp = self.subparser(cmd.name, parser)
        session = Session(prog, args)
        missing = missing_modules(cmd.needs)
        if missing:
            return _fail(prog, 1, f"this command {install_hint(missing)}")
        try:
            with _quiet_numerics(), (contextlib.redirect_stdout(sys.stderr) if session.json else contextlib.nullcontext()):
                result = cmd.run(args, session)
            if isinstance(result, int):
                return result
            obj = {**result.payload, "config": result.config, "version": __version__}
            with _quiet_numerics():
                if session.out is not None:
                    session.out.mkdir(parents=True, exist_ok=True)
                    write_json(session.out / "result.json", obj)
                    for name, writer in result.files.items():
                        writer(session.out / name)
                if session.json:
                    emit_json(obj)
                elif result.human is not None:
                    result.human()
                    if session.out is not None and not session.quiet:
                        names = ", ".join(["result.json", *result.files])
                        print(f"wrote {names} into {session.out}")
            return int(result.exit_code)
        except ConfigError as exc:
            flag = cmd.flags.get(exc.field) or _flag_of(sp, exc.field) or exc.field
            return _fail(prog, 2, exc.render(flag))
        except RunError as exc:
            return _fail(prog, 1, str(exc))
        except KeyboardInterrupt:
            return _fail(prog, 130, "interrupted")
        except (OSError, MemoryError) as exc:
            if os.environ.get("TOYMODELS_DEBUG"):
                raise
            return _fail(prog, 1, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the contract: never a traceback
            if os.environ.get("TOYMODELS_DEBUG"):
                raise
            return _fail(prog, 1, f"internal error ({type(exc).__name__}: {exc}); please report it "
                                  "(TOYMODELS_DEBUG=1 shows the traceback)")


def _fail(prog: str, code: int, message: str) -> int:
    sys.stderr.write(f"{prog}: error: {' '.join(str(message).split())}\n")
    sys.stderr.flush()
    return code


@contextlib.contextmanager
def _quiet_numerics():
    """Diverging runs are detected and reported by the commands; numpy's own warnings would only
    repeat that on stderr, unasked."""
    import numpy as np

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield

