"""Streaming stores in the OpenCL printer: large graph outputs written around the cache.

The OpenCL counterpart of ``llvm_streaming``. On CPU runtimes, an elementwise kernel
that writes a graph output of at least ``STREAM_BYTES`` is printed in a *vector form*:
each work-item owns ``LANES`` consecutive points of the innermost variable and computes
them as one ``float16``, loads are ``vload16`` (or a broadcast, for values that do not
depend on that variable), and the store to the output is one non-temporal store of the
whole 64-byte vector (``__builtin_nontemporal_store``; an ordinary ``vstore16`` where the
device compiler lacks the builtin or the address is not 64-byte aligned). Ordinary
stores first read every line they write (write-allocate), a third more memory traffic
for a streaming kernel such as ``x * sigmoid(x) * a + b``.

Why explicit vectors: Intel's CPU runtime packs work-items into SIMD lanes itself, but it
does not turn a scalar non-temporal store per work-item into a vector one (measured: no
gain), and without the non-temporal store the vector form gains little. Measured on W1's
fused kernel: 1.5 ms (one point per work-item) -> 1.1 ms (this form, groups of 16
work-items: the same 256 points per group as the scalar form).

Only kernels whose every value is float32 arithmetic the vector types support are
eligible (``stream_lanes``); anything else keeps the one-point-per-work-item form.
Comparisons only feed ``where`` (as ``select`` masks), never memory.
"""
from __future__ import annotations

from ..dtypes import bool_, float32
from ..kernel_ir import expr as ex
from ..kernel_ir.kernels import LoopKernel, Reduce, streamable
from .opencl_loops import item_entries, merged_printers, printed_kernel
from .opencl_printer import ExprPrinter, literal

STREAM_BYTES = 8 << 20      # graph outputs at least this large are written around the cache
LANES = 16                  # float32 points per work-item: one 64-byte vector
VTYPE = f"float{LANES}"
MASK = f"int{LANES}"        # what a vector comparison yields: -1 where true, 0 where false

VECTOR_OPS = frozenset({"add", "sub", "mul", "div", "pow", "max", "min", "neg", "abs", "exp",
                        "log", "log1p", "sqrt", "sin", "cos", "tanh", "erf", "floor", "trunc",
                        "sigmoid", "where", *ex.COMPARE})
# (their helpers, ``kiln_fmax_f16``, ``kiln_fmin_f16`` and ``kiln_stream_f16``, are with
# the others in ``opencl_printer.HELPERS``)


def _lane_index(index, var) -> bool:
    """Consecutive ``var`` step by one element (a vector load), or ``var`` is absent (a
    broadcast)."""
    if index.has_dyn():
        return False
    uses = index.atoms().count(var)
    return uses == 0 or (uses == 1 and index.coeff(var) == 1)


def vector_values(roots, var) -> bool:
    """Every value under ``roots`` is float32 arithmetic with a vector form, or a
    comparison of float32 values that only serves as a ``where`` condition."""
    for e in ex.walk(roots):
        if e.op == "load":
            buffer, index, guards, _ = e.args
            if guards or e.dtype is not float32 or not _lane_index(index, var):
                return False
        elif e.op == "const":
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


def stream_lanes(kernel, target) -> int:
    """``LANES`` when ``kernel`` is printed in the vector form with streaming stores, else 0:
    a CPU device, an elementwise kernel (no reductions, no inner loops, no row scratch)
    whose innermost variable's size is a multiple of ``LANES``, every store contiguous
    along it, at least one of them to a large graph output, and only vector arithmetic."""
    if not (target.is_cpu and isinstance(kernel, LoopKernel) and kernel.outer):
        return 0
    if any(b.local for b in kernel.buffers):
        return 0
    if any(isinstance(ph, Reduce) or ph.dims for ph in kernel.phases):
        return 0
    var = kernel.outer[-1]
    stores = [s for ph in kernel.phases for s in ph.stores]
    if var.size % LANES or not stores:
        return 0
    for s in stores:
        b = kernel.buffers[s.buffer]
        if b.dtype is not float32 or s.index.has_dyn() or s.index.coeff(var) != 1 \
                or s.index.atoms().count(var) != 1:
            return 0
    if not any(streamable(kernel.buffers[s.buffer], s.index, var, STREAM_BYTES) for s in stores):
        return 0
    return LANES if vector_values([s.value for s in stores], var) else 0


class VectorPrinter(ExprPrinter):
    """Values as ``float16``: lane ``j`` holds the value at innermost point ``first + j``
    (the loop Var is bound to ``first``). Constants and loads that do not move with that
    Var are broadcast; comparisons are ``int16`` masks for ``select``."""

    var = None                  # the innermost outer Var, set by ``print_streamed``

    def value(self, e):
        if e.op == "const":
            return f"(({VTYPE}){literal(e.args[0], e.dtype)})"
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


def print_streamed(kernel, target, fp64):
    """The vector form of ``kernel`` (``stream_lanes`` said yes)."""
    var = kernel.outer[-1]

    def body(out, p):
        p.var = var
        for ph in kernel.phases:
            for s in ph.stores:
                value = p.value(s.value)
                address = p.address(s.buffer, s.index)
                if streamable(kernel.buffers[s.buffer], s.index, var, STREAM_BYTES):
                    p.helpers.add("kiln_stream_f16")
                    out.emit(f"kiln_stream_f16({value}, &{address});")
                else:
                    out.emit(f"vstore{LANES}({value}, 0, &{address});")
    text, launches, printers = item_entries(kernel, target, fp64, kernel.name, body,
                                            lanes=LANES, printer=VectorPrinter)
    p = merged_printers(printers)
    split = ", split off the last work-group" if len(launches) > 1 else ""
    return printed_kernel(kernel, f"{LANES} points per work-item as {VTYPE}, streaming stores, "
                                  f"work-groups of {launches[0].local_size}{split}",
                          p, text, launches)


__all__ = ["stream_lanes", "print_streamed", "vector_values", "VectorPrinter", "STREAM_BYTES",
           "LANES"]
