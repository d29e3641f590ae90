"""Keep freed CPU memory in the process (glibc malloc), so that large tensors do not page-fault anew.

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and returns
it with ``munmap`` when freed, so each new tensor of that size is zero-filled page by page by the kernel.
A batch-128 activation of PreAct ResNet-18 is 128·64·32·32·4 B = 33.5 MB: allocating and filling one took
19.8 ms against 1.4 ms for filling it again (this machine). A GradAlign step allocates many more such
temporaries than an FGSM step (its double backward), which alone made the GradAlign/FGSM epoch ratio
2.55× instead of 2.22× at batch 128 (issue 14; CPU time, 1 thread). :func:`keep_freed_memory` switches
mmap off (``M_MMAP_MAX = 0``) and never trims the heap (``M_TRIM_THRESHOLD``), the behaviour of a caching
allocator (as PyTorch's CUDA one): freed blocks are reused, at the price of a resident size that stays at
its peak. It is process-wide; :func:`toymodels.torch.train.run` applies it to CPU runs, the torch
benchmarks to their CPU timings. Not glibc (macOS, musl, Windows): nothing is done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_DONE: list[bool] = []


def keep_freed_memory() -> bool:
    """Set glibc's ``M_MMAP_MAX = 0`` and ``M_TRIM_THRESHOLD = 2⁶²`` once per process; True when both were
    applied (glibc), False where there is no glibc ``mallopt``."""
    if _DONE:
        return _DONE[0]
    ok = False
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            ok = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2 ** 31 - 1)))
        except (OSError, AttributeError):
            ok = False
    _DONE.append(ok)
    return ok
