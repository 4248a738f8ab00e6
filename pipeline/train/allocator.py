"""The C allocator, set for training: freed large buffers are kept for the next step.

A training step allocates and frees buffers of tens of MB (a PTB window's logits alone are
700 x 10,000 floats, 28 MB). With its defaults, glibc's malloc serves such blocks with fresh memory
maps or returns freed heap to the system, so every step faults in and zeroes those pages again.
Serving blocks up to glibc's largest mmap threshold from the heap and never trimming it removes
that cost; the values computed are unchanged. ``python -m benchmarks.train_step --glibc-defaults``
measures the steps without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes: in practice, never


def keep_freed_memory() -> bool:
    """Set glibc's malloc so; False (and nothing changed) where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
