"""Matrix multiplication: a primitive so that codegen can emit a blocked kernel for it."""
from __future__ import annotations

import ctypes
import glob
import os
import threading

import numpy as np

from . import rules
from .registry import OpError, Spec, defop


def _matmul_infer(a, b):
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise OpError(f"matmul: both inputs need at least 2 dims, got {tuple(a.shape)} and "
                      f"{tuple(b.shape)}")
    if a.shape[-1] != b.shape[-2]:
        raise OpError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                      f"({a.shape[-1]} != {b.shape[-2]})")
    batch = rules.broadcast_shapes("matmul", tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    return Spec(batch + (a.shape[-2], b.shape[-1]), rules.same_dtype("matmul", a, b))


def _mT(E, x):
    n = len(x.shape)
    return E.permute(x, perm=tuple(range(n - 2)) + (n - 1, n - 2))


def _matmul_grad(E, g, out, a, b):
    ga = E.sum_to(E.matmul(g, _mT(E, b)), a.shape) if E.wants(0) else None
    gb = E.sum_to(E.matmul(_mT(E, a), g), b.shape) if E.wants(1) else None
    return ga, gb


# Below this many multiply-adds per matrix product, BLAS runs on the calling thread: on
# such sizes a second thread gains little and, when the cores are shared, waking it can
# cost milliseconds (OpenBLAS's own cut-off, 2**18, is lower). Measured on an idle
# 2-core machine, eager LeNet step: 2**24 9.9 ms, 2**21 8.9 ms, 2**18 8.9 ms.
SMALL_MATMUL = 1 << 21
_blas_threads = None     # (get, set) of the OpenBLAS NumPy bundles, once found
_blas_lock = threading.Lock()


def _find_blas_threads():
    global _blas_threads
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    found = ()
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("scipy_openblas_%s_num_threads64_", "openblas_%s_num_threads64_",
                       "openblas_%s_num_threads"):
            get, set_ = (getattr(lib, suffix % w, None) for w in ("get", "set"))
            if get is not None and set_ is not None:
                found = (get, set_)
                break
        if found:
            break
    _blas_threads = found
    return found


def _matmul_ref(a, b):
    if a.shape[-2] * a.shape[-1] * b.shape[-1] >= SMALL_MATMUL:
        return np.matmul(a, b)
    blas = _blas_threads if _blas_threads is not None else _find_blas_threads()
    if not blas:
        return np.matmul(a, b)
    get, set_ = blas
    with _blas_lock:
        threads = get()
        if threads <= 1:
            return np.matmul(a, b)
        set_(1)
        try:
            return np.matmul(a, b)
        finally:
            set_(threads)


defop("matmul", "matmul", infer=_matmul_infer, ref=_matmul_ref, grad=_matmul_grad,
      grad_name="MmBackward0")
