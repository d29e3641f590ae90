"""Numba Monte-Carlo kernel for ‖δ_FGSM-RS‖₂² (private; see :mod:`toymodels.fgsm.mc`).

Random numbers come from a counter-based stream so that sample j's draws do not depend on how the
samples are split into calls or across threads: the n-th output of the stream with key k is the
SplitMix64 output

    z = mix64(k + n·G)   (uint64 arithmetic mod 2⁶⁴, G = 0x9E3779B97F4A7C15),
    u = (z >> 11) · 2⁻⁵³ ∈ [0, 1),

and coordinate i of sample j (j counted from the start of the run) uses n = j·d + i. The noise is
ηᵢ = ε(2u − 1) from the key ``key_eta``; with random signs, sᵢ = +1 if the top bit of the output
of the key ``key_sign`` at the same n is set, else −1. :mod:`toymodels.fgsm._reference` computes
the same stream with numpy, so both backends give bit-identical samples.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S11, _S63 = np.uint64(11), np.uint64(63)
_INV53 = 2.0 ** -53

#: sign modes of the kernel: a fixed ±1 vector, i.i.d. random signs (both independent of η), or
#: sᵢ = sign(ηᵢ) (depends on η: the counterexample to Lemma 1's equality)
MODE_FIXED, MODE_RANDOM, MODE_OUTWARD = 0, 1, 2


@nb.njit(cache=True, inline="always")
def _mix64(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@nb.njit(cache=True, parallel=True, fastmath=False)
def _sq_norms(key_eta, key_sign, start, d, eps, alpha, mode, signs, out):
    """out[j] = ‖clip(η⁽ʲ⁾ + α s⁽ʲ⁾, −ε, ε)‖₂² for the samples start ≤ start + j < start + len(out).

    ``key_eta``, ``key_sign`` are uint64 stream keys, ``signs`` the fixed ±1 vector (mode 0; any
    length-d float array otherwise). The coordinate sum runs in order i = 0..d−1 (no fastmath), the
    order the numpy reference uses, so the two agree bit for bit."""
    n = out.shape[0]
    ud = np.uint64(d)
    for j in nb.prange(n):
        base = np.uint64(start + j) * ud
        s = 0.0
        for i in range(d):
            c = base + np.uint64(i)
            # (z >> 11) < 2^53 converts to float64 exactly; via int64 it is a single instruction
            u = np.float64(np.int64(_mix64(key_eta + c * GOLDEN) >> _S11)) * _INV53
            eta = eps * (2.0 * u - 1.0)
            # everything below is branch-free (min/max, copysign, arithmetic on the sign bit): the
            # clipping is taken with probability ~α/(2ε), and mispredicted branches cost ~5x
            if mode == MODE_FIXED:
                sg = signs[i]
            elif mode == MODE_RANDOM:
                sg = np.float64(np.int64(_mix64(key_sign + c * GOLDEN) >> _S63)) * 2.0 - 1.0
            else:
                sg = math.copysign(1.0, eta)   # eta is never -0.0, so this is sign(eta), sign(0) = +1
            x = min(max(eta + alpha * sg, -eps), eps)
            s += x * x
        out[j] = s
