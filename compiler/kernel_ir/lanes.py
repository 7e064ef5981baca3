"""Which expressions a printer may compute 16 points at a time, as one SIMD vector.

Both backends have an explicit-vector form for float32 work that runs along one loop
variable: OpenCL's ``float16`` values (``backends.opencl_vector``) and LLVM's
``<16 x float>`` values (``backends.llvm_vector``). In both, lane ``j`` holds the value at
``var = first + j``. This module is the one place that decides when that is possible, so
the two backends agree on it.
"""
from __future__ import annotations

from ..dtypes import bool_, float32
from . import expr as ex

LANES = 16                  # float32 points per vector: 64 bytes, one cache line

VECTOR_OPS = frozenset({"add", "sub", "mul", "div", "pow", "max", "min", "neg", "abs", "exp",
                        "log", "log1p", "sqrt", "sin", "cos", "tanh", "erf", "floor", "trunc",
                        "sigmoid", "where", *ex.COMPARE})


def lane_index(index, var) -> bool:
    """Consecutive ``var`` step by one element (a vector load), or ``var`` is absent (a
    broadcast)."""
    if index.has_dyn():
        return False
    uses = index.atoms().count(var)
    return uses == 0 or (uses == 1 and index.coeff(var) == 1)


def vector_stores(buffers, stores, var) -> bool:
    """Every store writes float32 at consecutive elements for consecutive ``var`` (one
    vector store per group of lanes); ``buffers`` is the kernel's list."""
    return all(buffers[s.buffer].dtype is float32 and not s.index.has_dyn()
               and s.index.coeff(var) == 1 and s.index.atoms().count(var) == 1
               for s in stores)


def vector_values(roots, var) -> bool:
    """Every value under ``roots`` is float32 arithmetic with a vector form, or a
    comparison of float32 values that only serves as a ``where`` condition."""
    for e in ex.walk(roots):
        if e.op == "load":
            buffer, index, guards, _ = e.args
            if guards or e.dtype is not float32 or not lane_index(index, var):
                return False
        elif e.op in ("const", "acc"):      # broadcast to every lane
            if e.dtype is not float32:
                return False
        elif e.op not in VECTOR_OPS:
            return False
        elif e.dtype is not (bool_ if e.op in ex.COMPARE else float32):
            return False
        for k, child in enumerate(e.children):
            if child.dtype is bool_ and not (e.op == "where" and k == 0):
                return False
    return True


__all__ = ["LANES", "VECTOR_OPS", "lane_index", "vector_stores", "vector_values"]
