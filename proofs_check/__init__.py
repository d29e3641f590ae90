"""Symbolic (sympy) checks of the thesis' derivations, one module per topic.

Each check is a function registered with :func:`check`; it takes the formula under test as a
defaulted parameter (so a test can pass a perturbed formula and see it rejected) and returns
``(passed, detail)``.  ``python -m proofs_check`` runs them all and prints a table (exit status 1
when one fails).

Adding a topic: write ``proofs_check/<topic>.py`` using ``@check(name, ref)`` and append the module
name to :data:`TOPICS`.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from toymodels.errors import ConfigError

__all__ = ["TOPICS", "Check", "check", "registry", "run_checks"]

#: Topic modules imported (in this order) to populate the registry.
TOPICS: tuple[str, ...] = ("dln", "fgsm", "cnn_lemma2", "sde", "quad1d", "sharpness", "square", "sam_convergence")


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


def _import_failed(topic: str, exc: Exception) -> None:
    """A topic module that fails to import is one failing check ``<topic>.import`` (so that
    ``python -m proofs_check`` reports it and exits 1, while the other topics still run)."""
    detail = f"error: proofs_check.{topic} failed to import: {type(exc).__name__}: {exc}".replace("\n", " ")
    _REGISTRY.setdefault(f"{topic}.import", Check(f"{topic}.import", "-", lambda: (False, detail)))


def registry() -> dict[str, Check]:
    """All registered checks, by name, after importing every topic module."""
    for topic in TOPICS:
        try:
            importlib.import_module(f"{__name__}.{topic}")
        except Exception as exc:  # noqa: BLE001 - reported as a failing check, not a traceback
            _import_failed(topic, exc)
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
    ConfigError
        If a name is not registered (field ``names``).
    """
    reg = registry()
    if names is None:
        selected = list(reg)
    else:
        selected = list(dict.fromkeys(names))
        unknown = [n for n in selected if n not in reg]
        if unknown:
            raise ConfigError("names", f"must be check names from --list (unknown check: {unknown[0]})",
                              unknown[0])
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
