"""How many threads kernels use: all cores by default, or ``KILN_NUM_THREADS``.

Eager mode runs on NumPy, whose BLAS has its own pool; ``set_num_threads`` resizes that
pool too (through the BLAS library NumPy bundles), so the setting means the same thing
in eager and compiled code.
"""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

_num_threads = None


def _default():
    env = os.environ.get("KILN_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"KILN_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n < 1:
            raise ValueError(f"KILN_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _blas_setter():
    """The bundled OpenBLAS's ``*_set_num_threads`` symbol, or None if not found."""
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                    "openblas_set_num_threads"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                return fn
    return None


def get_num_threads() -> int:
    global _num_threads
    if _num_threads is None:
        _num_threads = _default()
    return _num_threads


def set_num_threads(n: int) -> None:
    global _num_threads
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads expects a positive integer, got {n!r}")
    _num_threads = n
    setter = _blas_setter()
    if setter is not None:
        setter(ctypes.c_int(n))
