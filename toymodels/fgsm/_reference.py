"""Plain-numpy reference of :func:`toymodels.fgsm._kernels._sq_norms` (same signature and semantics).

Vectorized over blocks of samples × coordinates (never deliberately slow): it is the test oracle
for the numba kernel and the baseline of ``python -m toymodels.bench``. The random stream is the
one documented in :mod:`toymodels.fgsm._kernels` (SplitMix64 outputs at counters n = j·d + i).
"""
from __future__ import annotations

import numpy as np

from ._kernels import GOLDEN, MODE_FIXED, MODE_RANDOM

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

#: samples × coordinates handled per block (bounds the temporary arrays to ~32 MB each)
BLOCK_ELEMENTS = 1 << 22


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on a uint64 array (arithmetic mod 2⁶⁴)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def stream(key, counters: np.ndarray) -> np.ndarray:
    """The raw uint64 outputs of the stream ``key`` at ``counters``."""
    return mix64(np.uint64(key) + counters * GOLDEN)


def sq_norms_reference(key_eta, key_sign, start, d, eps, alpha, mode, signs, out):
    n = out.shape[0]
    per_block = max(1, BLOCK_ELEMENTS // d)
    coords = np.arange(d, dtype=np.uint64)[:, None]
    for j0 in range(0, n, per_block):
        j1 = min(n, j0 + per_block)
        # counters in (coordinate, sample) layout: row i holds coordinate i of every sample
        c = np.arange(start + j0, start + j1, dtype=np.uint64)[None, :] * np.uint64(d) + coords
        u = (stream(key_eta, c) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        eta = eps * (2.0 * u - 1.0)
        if mode == MODE_FIXED:
            sg = np.asarray(signs, dtype=np.float64)[:, None]
        elif mode == MODE_RANDOM:
            sg = (stream(key_sign, c) >> np.uint64(63)).astype(np.float64) * 2.0 - 1.0
        else:
            sg = np.copysign(1.0, eta)
        x2 = np.clip(eta + alpha * sg, -eps, eps) ** 2
        # sum the coordinates in order i = 0..d-1 (as the kernel does), so results are bit-identical
        s = np.zeros(j1 - j0)
        for row in x2:
            s += row
        out[j0:j1] = s
