"""Plain-numpy reference of :func:`toymodels.fgsm._kernels.sq_norms` (same name, signature and
semantics), vectorized over blocks of samples × coordinates (never deliberately slow): the test
oracle of the numba kernel and the baseline of ``python -m toymodels.bench``. It draws the streams
documented in :mod:`toymodels.fgsm._kernels` with :func:`toymodels.rng.uniform_np` /
:func:`toymodels.rng.mix64_np` and sums the coordinates in the kernel's order, so the samples are
bit-identical.
"""
from __future__ import annotations

import numpy as np

from ..kernels import KernelCase
from ..rng import GOLDEN, key64, mix64_np, uniform_np
from . import _kernels
from ._kernels import MODE_FIXED, MODE_OUTWARD, MODE_RANDOM

#: samples × coordinates handled per block (bounds the temporary arrays to ~32 MB each)
BLOCK_ELEMENTS = 1 << 22


def sq_norms(key_eta, key_sign, start, d, eps, alpha, mode, signs, out):
    """The kernel's computation, one block of samples at a time (module docstring)."""
    n = out.shape[0]
    per_block = max(1, BLOCK_ELEMENTS // d)
    coords = np.arange(d, dtype=np.uint64)[:, None]
    for j0 in range(0, n, per_block):
        j1 = min(n, j0 + per_block)
        # counters in (coordinate, sample) layout: row i holds coordinate i of every sample
        c = np.arange(start + j0, start + j1, dtype=np.uint64)[None, :] * np.uint64(d) + coords
        eta = eps * (2.0 * uniform_np(key_eta, c) - 1.0)
        if mode == MODE_FIXED:
            sg = np.asarray(signs, dtype=np.float64)[:, None]
        elif mode == MODE_RANDOM:
            with np.errstate(over="ignore"):
                bits = mix64_np(np.uint64(key_sign) + c * GOLDEN) >> np.uint64(63)
            sg = bits.astype(np.float64) * 2.0 - 1.0
        else:
            sg = np.copysign(1.0, eta)
        x2 = np.clip(eta + alpha * sg, -eps, eps) ** 2
        # sum the coordinates in order i = 0..d-1 (as the kernel does), so results are bit-identical
        s = np.zeros(j1 - j0)
        for row in x2:
            s += row
        out[j0:j1] = s


def _sq_norms_args(mode: int, size: str):
    """ε = 8/255, α = 1.25ε, seed 0's keys. small: 300 samples in d = 37 (fixed signs: alternating);
    bench: 10⁶ samples in d = 100 (the ``fgsm_mc_1e6`` workload, 10⁸ coordinate draws)."""
    n, d = (300, 37) if size == "small" else (1_000_000, 100)
    eps = 8 / 255
    signs = np.where(np.arange(d) % 2 == 0, 1.0, -1.0) if mode == MODE_FIXED else np.ones(1)
    return (key64(0, "fgsm/eta"), key64(0, "fgsm/sign"), 5, d, eps, 1.25 * eps, mode, signs, np.empty(n))


CASES = [
    KernelCase(f"fgsm.sq_norms.{name}", _kernels.sq_norms, sq_norms,
               lambda size, mode=mode: _sq_norms_args(mode, size))
    for name, mode in (("random", MODE_RANDOM), ("fixed", MODE_FIXED), ("outward", MODE_OUTWARD))
]
