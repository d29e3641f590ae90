"""toymodels.torch.cpu_memory.keep_freed_memory: applied once on glibc, a no-op elsewhere; after it a
freed large block is reused instead of being unmapped (the point of it: no page faults per new tensor)."""
import platform

import pytest

from toymodels.torch import cpu_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc only (mallopt, mallinfo2)")
def test_large_blocks_come_from_the_heap_not_mmap_on_glibc():
    """glibc's mallinfo2().hblkhd counts the bytes held in mmapped chunks: a 40 MB block (above the
    largest mmap threshold, 32 MB) adds 40 MB there unless keep_freed_memory switched mmap off."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc < 2.33: no mallinfo2")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    assert cpu_memory.keep_freed_memory() is True
    before = libc.mallinfo2().hblkhd
    a = libc.malloc(40 * 2 ** 20)
    during = libc.mallinfo2().hblkhd
    libc.free(a)
    assert a and during == before


def test_no_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(cpu_memory, "_DONE", [])
    monkeypatch.setattr(cpu_memory.platform, "system", lambda: "Darwin")
    assert cpu_memory.keep_freed_memory() is False
    assert cpu_memory.keep_freed_memory() is False      # remembered
