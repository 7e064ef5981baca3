"""Explicit ``float16`` vectors in OpenCL C: the expression printer and what it can print.

Used where a work-item computes 16 consecutive points of one loop variable as one vector
(``opencl_streaming``'s elementwise form, ``opencl_matmul_vec``, ``opencl_rows_vec``):
every value is a ``float16`` whose lane ``j`` is the value at ``first + j``.
"""
from __future__ import annotations

from ..dtypes import bool_, float32
from ..kernel_ir import expr as ex
from .opencl_printer import ExprPrinter, literal

LANES = 16                  # float32 points per vector: 64 bytes
VTYPE = f"float{LANES}"
MASK = f"int{LANES}"        # what a vector comparison yields: -1 where true, 0 where false

VECTOR_OPS = frozenset({"add", "sub", "mul", "div", "pow", "max", "min", "neg", "abs", "exp",
                        "log", "log1p", "sqrt", "sin", "cos", "tanh", "erf", "floor", "trunc",
                        "sigmoid", "where", *ex.COMPARE})
# (their helpers, ``kiln_fmax_f16`` and the like, are in ``opencl_printer.HELPERS``)


def _lane_index(index, var) -> bool:
    """Consecutive ``var`` step by one element (a vector load), or ``var`` is absent (a
    broadcast)."""
    if index.has_dyn():
        return False
    uses = index.atoms().count(var)
    return uses == 0 or (uses == 1 and index.coeff(var) == 1)


def vector_stores(kernel, stores, var) -> bool:
    """Every store writes float32 at consecutive elements for consecutive ``var`` (one
    vector store per work-item)."""
    return all(kernel.buffers[s.buffer].dtype is float32 and not s.index.has_dyn()
               and s.index.coeff(var) == 1 and s.index.atoms().count(var) == 1
               for s in stores)


def vector_values(roots, var) -> bool:
    """Every value under ``roots`` is float32 arithmetic with a vector form, or a
    comparison of float32 values that only serves as a ``where`` condition."""
    for e in ex.walk(roots):
        if e.op == "load":
            buffer, index, guards, _ = e.args
            if guards or e.dtype is not float32 or not _lane_index(index, var):
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


class VectorPrinter(ExprPrinter):
    """Values as ``float16``: lane ``j`` holds the value at innermost point ``first + j``
    (the loop Var is bound to ``first``). Constants and loads that do not move with that
    Var are broadcast; comparisons are ``int16`` masks for ``select``."""

    var = None                  # the Var that moves along the lanes, set by the caller

    def value(self, e):
        if e.op == "const":
            return f"(({VTYPE}){literal(e.args[0], e.dtype)})"
        if e.op == "acc":           # a reduction's (scalar) result
            return f"(({VTYPE}){self.accs[e.args[0]]})"
        got = self._get(e)
        if got is not None:
            return got
        return self._put(e, MASK if e.dtype is bool_ else VTYPE, self._vector(e))

    def _vector(self, e):
        op = e.op
        if op == "load":
            buffer, index, _, _ = e.args
            address = self.address(buffer, index)
            if index.coeff(self.var):
                return f"vload{LANES}(0, &{address})"
            return f"(({VTYPE}){address})"
        if op == "where":
            c, a, b = (self.value(x) for x in e.args)
            return f"select({b}, {a}, {c})"
        if op in ("max", "min"):
            self.helpers.add(f"kiln_f{op}_f16")
            return f"kiln_f{op}_f16({self.value(e.args[0])}, {self.value(e.args[1])})"
        return self._value(e)   # operators and built-ins are overloaded for vectors


__all__ = ["LANES", "VTYPE", "MASK", "VECTOR_OPS", "vector_stores", "vector_values",
           "VectorPrinter"]
