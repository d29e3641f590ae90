"""Symbolic (sympy) checks of the thesis' derivations, one module per topic.

Each check is a function registered with :func:`check`; it takes the formula under test as a
defaulted parameter (so a test can pass a perturbed formula and see it rejected) and returns
``(passed, detail)``.  ``python -m proofs_check`` runs them all and prints a table.

Adding a topic: write ``proofs_check/<topic>.py`` using ``@check(name, ref)`` and append the module
name to :data:`TOPICS`.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from toymodels._cli import UsageError

__all__ = ["TOPICS", "Check", "check", "registry", "run_checks"]

#: Topic modules imported (in this order) to populate the registry.
TOPICS: tuple[str, ...] = ("dln", "fgsm", "cnn_lemma2", "sde", "quad1d", "sharpness", "square", "samconv")


@dataclass(frozen=True)
class Check:
    name: str
    ref: str
    func: Callable[..., tuple[bool, str]]


_REGISTRY: dict[str, Check] = {}


def check(name: str, ref: str):
    """Register ``func`` as the check ``name`` (thesis reference ``ref``); returns ``func`` unchanged.

    ``func()`` must return ``(passed: bool, detail: str)``.
    """
    def deco(func):
        if name in _REGISTRY and _REGISTRY[name].func is not func:
            raise ValueError(f"duplicate proofs_check name {name!r}")
        _REGISTRY[name] = Check(name, ref, func)
        return func
    return deco


def registry() -> dict[str, Check]:
    """All registered checks, by name, after importing every topic module."""
    for topic in TOPICS:
        importlib.import_module(f"{__name__}.{topic}")
    # order by topic (TOPICS order), then definition order: independent of which topic module a
    # caller happened to import first
    rank = {t: i for i, t in enumerate(TOPICS)}
    topic_of = {n: c.func.__module__.rsplit(".", 1)[-1] for n, c in _REGISTRY.items()}
    return dict(sorted(_REGISTRY.items(), key=lambda kv: rank.get(topic_of[kv[0]], len(rank))))


def run_checks(names: Iterable[str] | None = None) -> list[dict]:
    """Run the named checks (all if ``names`` is None), in registration order.

    Returns
    -------
    list of dict
        ``{"name", "ref", "passed", "detail", "seconds"}`` per check.  A check that raises counts as
        failed, with the exception in ``detail``.

    Raises
    ------
    UsageError
        If a name is not registered.
    """
    reg = registry()
    if names is None:
        selected = list(reg)
    else:
        selected = list(dict.fromkeys(names))
        unknown = [n for n in selected if n not in reg]
        if unknown:
            raise UsageError(f"unknown check name(s) {', '.join(unknown)}; "
                             f"valid names: {', '.join(reg)}")
    out = []
    for name in selected:
        c = reg[name]
        t0 = time.perf_counter()
        try:
            passed, detail = c.func()
        except Exception as exc:  # a crashing check is a failing check, reported not raised
            passed, detail = False, f"error: {type(exc).__name__}: {exc}"
        out.append({"name": name, "ref": c.ref, "passed": bool(passed), "detail": str(detail),
                    "seconds": round(time.perf_counter() - t0, 3)})
    return out
