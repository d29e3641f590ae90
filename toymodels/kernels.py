"""The registry of numba kernels and their numpy references.

The pattern, in every package: the hot loops are numba kernels in ``<package>/_kernels.py`` (a
``_kernels/`` folder when large); each has a readable numpy reference of the **same name and
signature** in ``<package>/_reference.py``, vectorized per step, which is the test oracle and the
benchmark baseline. Kernels take arrays, a seed key or pre-drawn noise, and preallocated outputs
that they fill in place.

Each ``_reference.py`` ends with ``CASES``, a list of :class:`KernelCase`: the kernel, its reference,
a factory of arguments at two sizes (``"small"`` for the parity test, ``"bench"`` for
``python -m toymodels.bench kernels``) and the tolerance of their agreement. :func:`registry` collects
them all; ``tests/test_kernel_parity.py`` runs every case, the benchmark times every case.
"""
from __future__ import annotations

import copy
import importlib
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["KernelCase", "PACKAGES", "registry", "call_both", "mismatches", "time_case"]

#: the packages whose ``_reference.CASES`` make up the registry (every package with numba kernels)
PACKAGES = ("cnn", "dln", "fgsm", "quad1d", "relu", "sam_convergence", "sde", "sharpness", "square", "torch")

SIZES = ("small", "bench")


@dataclass(frozen=True)
class KernelCase:
    """One kernel, its reference and how to compare them.

    name : ``"<package>.<function>"`` (plus ``".<variant>"`` when one kernel has several cases)
    kernel, reference : callables with the same signature
    make_args : ``make_args(size) -> tuple`` of fresh positional arguments (outputs preallocated),
        ``size`` in ``("small", "bench")``; called once per backend, so both get equal copies
    rtol, atol : tolerance of the agreement of every output; 0, 0 means bit-identical
    why : why the tolerance is not zero (the sum order of a parallel reduction, fastmath, ...)
    """
    name: str
    kernel: Callable
    reference: Callable
    make_args: Callable[[str], tuple]
    rtol: float = 0.0
    atol: float = 0.0
    why: str = ""

    def __post_init__(self):
        if (self.rtol or self.atol) and not self.why:
            raise ValueError(f"kernel case {self.name}: a nonzero tolerance needs a reason (why=...)")


def registry() -> dict[str, KernelCase]:
    """Every registered kernel case, by name."""
    out: dict[str, KernelCase] = {}
    for pkg in PACKAGES:
        mod = importlib.import_module(f"toymodels.{pkg}._reference")
        for case in getattr(mod, "CASES", ()):
            if case.name in out:
                raise ValueError(f"duplicate kernel case {case.name}")
            out[case.name] = case
    return out


def _outputs(ret: Any, args: tuple) -> list:
    """What a call produced: its return value and every array argument (outputs are filled in place)."""
    return [ret] + [a for a in args if isinstance(a, np.ndarray)]


def call_both(case: KernelCase, size: str = "small") -> tuple[list, list]:
    """Run kernel and reference on equal fresh arguments; return their outputs (see :func:`_outputs`)."""
    args = case.make_args(size)
    args_ref = copy.deepcopy(args)
    ret_k = case.kernel(*args)
    ret_r = case.reference(*args_ref)
    return _outputs(ret_k, args), _outputs(ret_r, args_ref)


def _flat(x: Any) -> list:
    if isinstance(x, (tuple, list)):
        return [y for v in x for y in _flat(v)]
    return [x]


def mismatches(case: KernelCase, out_k: list, out_r: list) -> list[str]:
    """Descriptions of the outputs on which kernel and reference disagree beyond the tolerance."""
    bad = []
    fk, fr = _flat(out_k), _flat(out_r)
    if len(fk) != len(fr):
        return [f"{len(fk)} outputs vs {len(fr)}"]
    for i, (a, b) in enumerate(zip(fk, fr)):
        if a is None and b is None:
            continue
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            bad.append(f"output {i}: shape {a.shape} vs {b.shape}")
            continue
        if case.rtol == 0 and case.atol == 0:
            ok = np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        else:
            ok = np.allclose(a, b, rtol=case.rtol, atol=case.atol, equal_nan=True)
        if not ok:
            if a.dtype.kind in "fc" and a.size:
                err = float(np.nanmax(np.abs(a.astype(float) - b.astype(float))))
                bad.append(f"output {i}: max abs difference {err:.3g}")
            else:
                bad.append(f"output {i}: differs")
    return bad


def time_case(case: KernelCase, size: str = "bench", repeat: int = 3) -> dict:
    """Best-of-``repeat`` wall times of kernel and reference on ``size`` arguments (after one
    untimed kernel call, so that compilation is not timed)."""
    case.kernel(*case.make_args("small"))
    best = {"kernel": float("inf"), "reference": float("inf")}
    for _ in range(repeat):
        for label, fn in (("kernel", case.kernel), ("reference", case.reference)):
            args = case.make_args(size)
            t0 = time.perf_counter()
            fn(*args)
            best[label] = min(best[label], time.perf_counter() - t0)
    best["speedup"] = best["reference"] / best["kernel"] if best["kernel"] > 0 else float("inf")
    return best
