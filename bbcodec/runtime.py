"""Process settings the command line applies before coding.

Coding allocates and frees large arrays layer after layer (a batch's activations are
tens to hundreds of MB). glibc hands each allocation above its mmap threshold fresh
pages from the kernel and returns them on free, so every layer pays first-touch page
faults again; on virtual machines these are expensive. Keeping freed memory in the
heap for reuse removed that cost (`bench.exact_speed` runs its coders with it). The
price is that the process keeps its peak memory until it exits, fine for a command
that exits after coding, not something a library should impose on its host process:
library users call :func:`reuse_freed_memory` themselves if they want it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
NEVER_TRIM = 1 << 30  # bytes of free heap top kept before glibc returns it (the int parameter's range)


def reuse_freed_memory() -> bool:
    """Serve every allocation from glibc's heap and keep freed memory for reuse; False
    where the C library is not glibc (nothing is changed there)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
