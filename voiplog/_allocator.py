"""Have the C allocator give large freed buffers back to the system.

glibc raises its mmap threshold each time a large block is freed, up to
32 MiB; from then on, buffers of that size come from the heap, and the heap
keeps what it is given back. Loading a million leases grows and frees arrays
of tens of megabytes (the merge sorts and rebuilds them), which left the
process holding about twice the index's size for good. With the threshold
pinned, every buffer over 128 KiB is a mapping of its own, returned when freed.
"""

from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_THRESHOLD = 128 * 1024


def pin_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold; False where the C library has no `mallopt`."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl has no mallopt, macOS none either)
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, _THRESHOLD) == 1
