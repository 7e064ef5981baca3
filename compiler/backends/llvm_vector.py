"""Explicit ``<16 x float>`` vectors in LLVM IR: the expression printer.

Most kernels leave vectorisation to LLVM's loop vectoriser. One form cannot: a large
elementwise output written with non-temporal stores (``llvm_streaming``). The vectoriser
refuses a loop whose scalar stores are non-temporal (it cannot prove the vector stores
aligned), so the scalar form computes a tile into the stack and streams it out in a
second loop, one extra pass through L1. This printer writes the vectors itself: lane
``j`` of every value is the value at ``var = first + j`` (the Var is bound to ``first``),
so the result goes from registers to memory in one aligned streaming store. Which
expressions qualify is ``kernel_ir.lanes``'s decision, shared with OpenCL's ``float16``
form; every operation prints as in the scalar ``ExprPrinter``, on vector types.
"""
from __future__ import annotations

from ..dtypes import float32
from ..kernel_ir.lanes import LANES
from .llvm_printer import ExprPrinter, literal, lltype

VTYPE = f"<{LANES} x float>"


class VectorPrinter(ExprPrinter):
    """Values as ``<16 x float>`` (comparisons as ``<16 x i1>``). Constants, reduction
    results and loads that do not move with ``var`` are broadcast to every lane."""

    def __init__(self, scalar: ExprPrinter, var):
        super().__init__(scalar.w, scalar.buffers, scalar.bufs)
        self.var = var
        self.vars = scalar.vars          # the same loop variables (indexes stay scalar)
        self.accs = scalar.accs
        self.helpers = scalar.helpers    # what the module must define and declare
        self.declares = scalar.declares

    def lltype(self, dtype) -> str:
        return f"<{LANES} x {lltype(dtype)}>"

    def literal(self, value, dtype) -> str:
        return f"splat ({lltype(dtype)} {literal(value, dtype)})"

    def suffix(self, dtype) -> str:
        return f"v{LANES}{super().suffix(dtype)}"

    def value(self, e):
        if e.op == "const":
            return self.literal(e.args[0], e.dtype)
        if e.op == "acc":
            return self.broadcast(self.accs[e.args[0]])
        return super().value(e)

    def load(self, buffer, index, dtype):
        assert dtype is float32, dtype          # (kernel_ir.lanes.vector_values)
        address = self.address(buffer, index)
        if index.coeff(self.var):
            return self.w.op(f"load {VTYPE}, ptr {address}, align 4", "vl")
        return self.broadcast(self.w.op(f"load float, ptr {address}, align 4", "ld"))

    def broadcast(self, scalar):
        one = self.w.op(f"insertelement {VTYPE} poison, float {scalar}, i64 0", "bc")
        return self.w.op(f"shufflevector {VTYPE} {one}, {VTYPE} poison, "
                         f"<{LANES} x i32> zeroinitializer", "bc")


__all__ = ["VTYPE", "VectorPrinter"]
