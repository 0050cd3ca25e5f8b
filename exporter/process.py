"""The process's one piece of tuning: keep the C allocator from hoarding finished polls.

Every poll allocates and frees megabyte-sized buffers (the answer, the rendered text of each
family before it is compressed). glibc's malloc raises its mmap threshold each time such a
buffer is freed, so later buffers land in per-thread heaps that are rarely given back, and
resident memory creeps up poll after poll. Pinned at 4 MiB, the answers of 7,500-row queries
stay in mmap, which returns them to the system when freed, while a family's text stays on
the heap: a lower pin would put it in fresh pages every poll, and page faults cost time.
(benchmarks/README.md has the figures.) ``MALLOC_MMAP_THRESHOLD_=4194304`` in the
environment has the same effect; this call makes it hold however the exporter is started.
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
