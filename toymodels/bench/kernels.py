"""Every case of the kernel registry as a workload: ``python -m toymodels.bench kernels``.

For each :class:`~toymodels.kernels.KernelCase` of :func:`toymodels.kernels.registry` (the ``CASES``
of every package listed in :data:`toymodels.kernels.PACKAGES`) this module registers the workload
``kernels.<case name>``: :func:`toymodels.kernels.time_case` on the case's ``"bench"`` arguments
(``"small"`` under ``--quick``), best of ``--repeats``, the kernel as ``numba_s`` and its numpy
reference as ``numpy_s``. ``compile_s`` is the kernel's first call in this process on the
``"small"`` arguments (compilation or numba's cache load), made before any timed call.
``parity_small`` says whether kernel and reference agree within the case's tolerance on the
``"small"`` arguments (the parity test's check, repeated here so that a table of speed-ups is never
a table of wrong answers). No targets: the hand-written workloads of the other modules carry them.

Baselines (issue 17): here ``numpy_s`` is the readable reference itself (``baseline`` = "reference",
``reference_s`` = ``numpy_s``); no lean baseline or physical limit is computed per registry case. The
honest speed-ups and the floors of the kernels behind these cases are those of the hand-written
workloads (quad1d, relu, sde, cnn, fgsm, square, sam_convergence, sharpness), which time the same
kernels against lean baselines.

A package whose ``_reference`` fails to import is reported under ``load_errors`` (its cases are
missing; the other packages' cases still run).
"""
from __future__ import annotations

import importlib

from ..kernels import PACKAGES, KernelCase, call_both, mismatches, registry, time_case
from . import LOAD_ERRORS, BenchContext, first_call, workload

PREFIX = "kernels."


def _cases() -> list[KernelCase]:
    """The registry's cases; if one package's references fail to import, the others' cases (the
    failure is recorded in :data:`toymodels.bench.LOAD_ERRORS`)."""
    try:
        return list(registry().values())
    except Exception:  # noqa: BLE001 - one broken package must not hide the others' kernels
        pass
    out: list[KernelCase] = []
    for pkg in PACKAGES:
        mod = f"toymodels.{pkg}._reference"
        try:
            out += list(getattr(importlib.import_module(mod), "CASES", ()))
        except Exception as exc:  # noqa: BLE001
            LOAD_ERRORS[mod] = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return out


def _bench_case(case: KernelCase, ctx: BenchContext) -> dict:
    size = "small" if ctx.quick else "bench"
    compile_s, cached = first_call(PREFIX + case.name, case.kernel, case.make_args("small"))
    t = time_case(case, size, repeat=ctx.repeats)
    bad = mismatches(case, *call_both(case, "small"))
    return {"numpy_s": t["reference"], "numba_s": t["kernel"], "compile_s": compile_s, "compile_cached": cached,
            "numpy_repeats": ctx.repeats, "numba_repeats": ctx.repeats, "size": size, "case": case.name,
            "rtol": case.rtol, "atol": case.atol, "parity_small": not bad, "baseline": "reference",
            "reference_s": t["reference"],
            **({"notes": [f"kernel and reference disagree on the small arguments: {'; '.join(bad)}"]} if bad else {})}


def _register(case: KernelCase) -> None:
    where = f"{getattr(case.kernel, '__module__', '?')}.{getattr(case.kernel, '__name__', '?')}"
    workload(PREFIX + case.name, target=None,
             description=f"registry case {case.name}: {where} vs its numpy reference")(
        lambda ctx: _bench_case(case, ctx))


for _case in _cases():
    _register(_case)
