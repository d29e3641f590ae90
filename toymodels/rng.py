"""Random numbers: one seed range, named streams, and one counter-based SplitMix64.

Seeds
    Every seed is an integer in ``[0, SEED_MAX]`` (``SEED_MAX = 2**63 - 1``: it fits an int64 in
    numba, torch and JSON), validated once by :func:`check_seed`.

Named streams
    A run draws from streams named by ``(seed, name, index...)``, never from seeds combined by
    arithmetic (``seed + b`` would give run ``seed=1, b=0`` the stream of ``seed=0, b=1``). The
    stream is ``numpy.random.SeedSequence(seed, spawn_key=(key(name), *index))``: SeedSequence hashes
    its whole key, so different (seed, name, index) give statistically independent streams. The
    unnamed stream ``stream(seed)`` is ``SeedSequence(seed)`` itself, i.e. the stream of
    ``numpy.random.default_rng(seed)``. Name keys are ``crc32(name) | 2**31``, so they never equal
    the small integers that ``SeedSequence.spawn`` uses for its children.

Counter-based draws (numba kernels)
    Kernels that must not depend on how work is split across threads draw the n-th number of a
    stream with key ``k`` (a uint64 from :func:`key64`) as the SplitMix64 output

        z = mix64(k + n·G)   (uint64 arithmetic mod 2⁶⁴, G = 0x9E3779B97F4A7C15)
        u = (z >> 11) · 2⁻⁵³ ∈ [0, 1)

    :func:`mix64` / :func:`uniform` are the numba versions (inline), :func:`mix64_np` /
    :func:`uniform_np` the numpy ones; both give bit-identical numbers.
"""
from __future__ import annotations

import zlib

import numba as nb
import numpy as np

from .errors import check_int

__all__ = [
    "mix64_inplace",
    "SEED_MAX", "check_seed", "name_key", "seed_sequence", "stream", "child_seed", "key64",
    "GOLDEN", "mix64", "uniform", "mix64_np", "uniform_np",
]

#: the largest seed accepted anywhere in the project
SEED_MAX = 2 ** 63 - 1


def check_seed(seed, field: str = "seed") -> int:
    """``seed`` as an int in [0, SEED_MAX] (:class:`~toymodels.errors.ConfigError` otherwise)."""
    return check_int(field, seed, 0, SEED_MAX)


def name_key(name: str) -> int:
    """The spawn-key word of a stream name: ``crc32(name) | 2**31`` (stable across runs/platforms)."""
    return zlib.crc32(str(name).encode()) | 0x8000_0000


def seed_sequence(seed: int, name: str | None = None, *index: int) -> np.random.SeedSequence:
    """The SeedSequence of stream ``(seed, name, *index)``; ``seed_sequence(seed)`` is
    ``SeedSequence(seed)``. ``index`` entries are non-negative integers (a run, batch or restart)."""
    seed = check_seed(seed)
    if name is None:
        if index:
            raise TypeError("a stream index needs a stream name")
        return np.random.SeedSequence(seed)
    key = (name_key(name),) + tuple(check_int("stream index", i, 0) for i in index)
    return np.random.SeedSequence(seed, spawn_key=key)


def stream(seed: int, name: str | None = None, *index: int) -> np.random.Generator:
    """A numpy Generator (PCG64) on stream ``(seed, name, *index)``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, name, *index)))


def child_seed(seed: int, name: str, *index: int) -> int:
    """An integer seed in [0, SEED_MAX] derived from stream ``(seed, name, *index)``, for APIs that take
    an int seed (a config's ``seed`` field, ``torch.manual_seed``): member r of an ensemble gets
    ``child_seed(seed, "member", r)``, never ``seed + r``."""
    return int(seed_sequence(seed, name, *index).generate_state(1, np.uint64)[0] >> np.uint64(1))


def key64(seed: int, name: str, *index: int) -> np.uint64:
    """A uint64 key of stream ``(seed, name, *index)`` for the counter-based draws below."""
    return np.uint64(seed_sequence(seed, name, *index).generate_state(1, np.uint64)[0])


GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 2.0 ** -53


@nb.njit(cache=True, inline="always")
def mix64(z):
    """SplitMix64's output function (a bijection of uint64)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@nb.njit(cache=True, inline="always")
def uniform(key, n):
    """The n-th uniform [0, 1) number of the stream with uint64 key ``key`` (n a uint64 counter)."""
    # (z >> 11) < 2^53 converts to float64 exactly; via int64 it is a single instruction
    return np.float64(np.int64(mix64(key + n * GOLDEN) >> _S11)) * _INV53


def mix64_np(z: np.ndarray) -> np.ndarray:
    """:func:`mix64` on a uint64 array (numpy; wraps mod 2⁶⁴ like the kernel)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def mix64_inplace(z: np.ndarray, tmp: np.ndarray) -> None:
    """:func:`mix64_np` in place on the uint64 array ``z`` with the buffer ``tmp`` (same shape): no
    temporaries, for the lean benchmark baselines that stream counters through cache-sized blocks."""
    np.right_shift(z, _S30, out=tmp)
    z ^= tmp
    z *= _M1
    np.right_shift(z, _S27, out=tmp)
    z ^= tmp
    z *= _M2
    np.right_shift(z, _S31, out=tmp)
    z ^= tmp


def uniform_np(key, n: np.ndarray) -> np.ndarray:
    """:func:`uniform` on a uint64 array of counters (numpy; bit-identical to the kernel)."""
    n = np.asarray(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = mix64_np(np.uint64(key) + n * GOLDEN)
    return (z >> _S11).astype(np.int64).astype(np.float64) * _INV53
