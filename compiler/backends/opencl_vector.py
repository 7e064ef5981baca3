"""Explicit ``float16`` vectors in OpenCL C: the expression printer and what it can print.

Used where a work-item computes 16 consecutive points of one loop variable as one vector
(``opencl_streaming``'s elementwise form, ``opencl_matmul_vec``, ``opencl_rows_vec``):
every value is a ``float16`` whose lane ``j`` is the value at ``first + j``.
"""
from __future__ import annotations

from ..dtypes import bool_
from ..kernel_ir.lanes import LANES
from .opencl_printer import ExprPrinter, literal

VTYPE = f"float{LANES}"
MASK = f"int{LANES}"        # what a vector comparison yields: -1 where true, 0 where false
# (which expressions have a vector form: ``kernel_ir.lanes``; their helpers,
# ``kiln_fmax_f16`` and the like, are in ``opencl_printer.HELPERS``)


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


__all__ = ["VTYPE", "MASK", "VectorPrinter"]
