"""Host memory: let the C allocator keep freed large blocks for reuse.

Eager ops and compiled graphs' fresh outputs allocate NumPy arrays of the same few sizes
at every training step. By default glibc hands blocks above a dynamic threshold straight
back to the kernel, so each step pays thousands of page faults when it touches them
again (half the time of a small convnet's eager step here). A fixed mmap threshold of
32 MiB (glibc's maximum) and a high trim threshold keep those blocks in the heap, much as
PyTorch's caching allocator keeps its own. ``KILN_MALLOC_TUNING=0`` opts out.
"""
from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_tuned = False


def keep_freed_blocks():
    """Tune glibc's malloc once per process (no-op elsewhere, or when opted out)."""
    global _tuned
    if _tuned or os.environ.get("KILN_MALLOC_TUNING", "1") == "0" \
            or not sys.platform.startswith("linux"):
        return
    _tuned = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(ctypes.c_int(_M_MMAP_THRESHOLD), ctypes.c_int(32 << 20))
    mallopt(ctypes.c_int(_M_TRIM_THRESHOLD), ctypes.c_int(256 << 20))
