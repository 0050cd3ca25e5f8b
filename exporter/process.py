"""Keep the C allocator from hoarding the memory of finished polls.

Every poll allocates and frees megabyte-sized buffers (the answer, the rendered text of each
family before it is compressed). glibc's malloc raises its mmap threshold each time such a
buffer is freed, so later buffers land in per-thread heaps that are rarely given back:
measured with ten 7,500-row queries, resident memory kept growing (~155 MB after 5 polls,
~195 MB after 15). Pinned at 4 MiB, the answers (5 MB each) stay in mmap, which returns them
to the system when freed, and memory stayed at ~180 MB. A lower pin (256 KiB) kept ~155 MB
but put every family's text (~1 MB) in fresh pages: the page faults made polls ~15% slower.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3  # mallopt parameter number (glibc malloc.h)
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def pin_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold; False (and no change) on a C library without mallopt."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False  # musl and others: no mallopt, nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
