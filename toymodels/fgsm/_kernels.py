"""Numba Monte-Carlo kernel for ‖δ_FGSM-RS‖₂² (see :mod:`toymodels.fgsm.mc`); its numpy reference of
the same name and signature is :mod:`toymodels.fgsm._reference`.

Random numbers come from the counter-based SplitMix64 streams of :mod:`toymodels.rng`, so that sample
j's draws do not depend on how the samples are split into calls or across threads: coordinate i of
sample j (j counted from the start of the run) uses the counter n = j·d + i. The noise is
ηᵢ = ε(2u − 1) with u = ``rng.uniform(key_eta, n)``; with random signs, sᵢ = +1 if the top bit of
``rng.mix64(key_sign + n·G)`` is set, else −1. The keys are ``rng.key64(seed, "fgsm/eta")`` and
``rng.key64(seed, "fgsm/sign")`` (:func:`toymodels.fgsm.mc.stream_keys`). The reference computes the
same streams with numpy, so both backends give bit-identical samples.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from ..rng import GOLDEN, mix64, uniform

_S63 = np.uint64(63)

#: sign modes of the kernel: a fixed ±1 vector, i.i.d. random signs (both independent of η), or
#: sᵢ = sign(ηᵢ) (depends on η: the counterexample to Lemma 1's equality)
MODE_FIXED, MODE_RANDOM, MODE_OUTWARD = 0, 1, 2


@nb.njit(cache=True, parallel=True, fastmath=False)
def sq_norms(key_eta, key_sign, start, d, eps, alpha, mode, signs, out):
    """out[j] = ‖clip(η⁽ʲ⁾ + α s⁽ʲ⁾, −ε, ε)‖₂² for the samples start ≤ start + j < start + len(out).

    ``key_eta``, ``key_sign`` are uint64 stream keys, ``signs`` the fixed ±1 vector (mode
    ``MODE_FIXED``; unused otherwise, any float array). The coordinate sum runs in order i = 0..d−1 (no
    fastmath), the order the numpy reference uses, so the two agree bit for bit."""
    n = out.shape[0]
    ud = np.uint64(d)
    for j in nb.prange(n):
        base = np.uint64(start + j) * ud
        s = 0.0
        for i in range(d):
            c = base + np.uint64(i)
            eta = eps * (2.0 * uniform(key_eta, c) - 1.0)
            # everything below is branch-free (min/max, copysign, arithmetic on the sign bit): the
            # clipping is taken with probability ~α/(2ε), and mispredicted branches cost ~5x
            if mode == MODE_FIXED:
                sg = signs[i]
            elif mode == MODE_RANDOM:
                sg = np.float64(np.int64(mix64(key_sign + c * GOLDEN) >> _S63)) * 2.0 - 1.0
            else:
                sg = math.copysign(1.0, eta)   # eta is never -0.0, so this is sign(eta), sign(0) = +1
            x = min(max(eta + alpha * sg, -eps), eps)
            s += x * x
        out[j] = s
