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

from ..kernel_ir.kernels import LoopKernel, Reduce, streamable
from ..kernel_ir.lanes import LANES, vector_stores, vector_values
from .opencl_loops import item_entries, merged_printers, printed_kernel
from .opencl_vector import VTYPE, VectorPrinter

STREAM_BYTES = 8 << 20      # graph outputs at least this large are written around the cache


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
    if not vector_stores(kernel.buffers, stores, var):
        return 0
    if not any(streamable(kernel.buffers[s.buffer], s.index, var, STREAM_BYTES) for s in stores):
        return 0
    return LANES if vector_values([s.value for s in stores], var) else 0


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


__all__ = ["stream_lanes", "print_streamed", "STREAM_BYTES"]
