"""OpenCL C for row kernels (softmax, LayerNorm, row sums) with explicit ``float16``
vectors, for CPU runtimes.

``opencl_loops``' group form has the 16 work-items of a group stride over a row one
element at a time and relies on the driver to run them as SIMD lanes. PoCL 3.1 runs
the fused softmax + LayerNorm of W2 that way at 20 ms, slower than the 16 unfused
kernels together (11 ms): its exp stays scalar. Here each work-item takes 16
consecutive elements at a time as one vector (positions ``16*lid, 16*(lid + WG), ...``),
keeps a vector accumulator per reduction, folds its lanes at the end
(``kiln_hsum_f16``/``kiln_hmax_f16``/``kiln_hmin_f16``) and then combines with the group
exactly as the scalar form does (``combine_group``). Stores in a reduction's pass and in
store loops are vector stores.

With enough rows to keep every core busy (``ONE_ITEM_ROWS``), a row is one work-item's
alone: no local memory, no barrier, nothing to combine. A CPU runtime runs a barrier by
splitting the kernel into loops over the group, which cost more than the row's
arithmetic: W2 went 4.3 -> 1.9 ms on PoCL and 4.4 -> 1.7 ms on Intel's runtime, whose
own packing of work-items into lanes had given 4.3 ms.

Eligible (``rows_apply``): every phase loops over at most one Var, of a length that is a
multiple of 16; reductions are float32 ``sum``/``max``/``min``; every value has a
vector form along that Var (``kernel_ir.lanes``). Anything else keeps the scalar form.
"""
from __future__ import annotations

import math

from ..dtypes import float32
from ..kernel_ir.kernels import LoopKernel, Reduce
from ..kernel_ir.lanes import LANES, vector_stores, vector_values
from .opencl_loops import (Launch, _function, choose_strategy, combine_group, cv, group_phase,
                           group_prologue, group_size, printed_kernel)
from .opencl_printer import ExprPrinter, Lines
from .opencl_vector import VTYPE, VectorPrinter

IDENTITY = {"sum": "0.0f", "max": "(-INFINITY)", "min": "INFINITY"}


ONE_ITEM_ROWS = 8        # rows per thread's share of the groups above which a row is one
                         # work-item's (see the module docstring)


def rows_apply(kernel, target) -> bool:
    if not (target.is_cpu and isinstance(kernel, LoopKernel)):
        return False
    if choose_strategy(kernel, target) != "group":
        return False
    for ph in kernel.phases:
        if not ph.dims:
            continue
        if len(ph.dims) != 1 or ph.dims[0].size % LANES:
            return False
        var = ph.dims[0]
        values = [s.value for s in ph.stores]
        if isinstance(ph, Reduce):
            if ph.op not in IDENTITY or ph.dtype is not float32:
                return False
            values.append(ph.value)
        if not vector_stores(kernel.buffers, ph.stores, var) or not vector_values(values, var):
            return False
    return True


def _vector_loop(out, q, ph, wg, body):
    """``body(position)`` at each vector of the phase's row this work-item owns."""
    (var,) = ph.dims
    j = f"{cv(var)}_w"
    out.open(f"for (long {j} = lid * {LANES}L; {j} < {var.size}L; {j} += {wg * LANES}L)")
    q.push()
    q.var = var
    q.vars[var] = j
    body()
    q.pop()
    out.close()


def _vector_stores(out, q, stores):
    for s in stores:
        out.emit(f"vstore{LANES}({q.value(s.value)}, 0, &{q.address(s.buffer, s.index)});")


def print_rows(kernel: LoopKernel, target):
    rows = math.prod(v.size for v in kernel.outer)
    wg = 1 if rows >= ONE_ITEM_ROWS * target.min_groups else group_size(kernel, target)
    out = Lines()
    p = ExprPrinter(out, kernel.buffers, fp64=target.fp64, narrow_index=False)
    q = VectorPrinter(out, kernel.buffers, fp64=target.fp64, narrow_index=False)
    q.counter = 100000
    q.vars, q.accs = p.vars, p.accs          # one set of bindings for both printers
    params, points = group_prologue(out, p, kernel, target, wg)
    for number, ph in enumerate(kernel.phases):
        if not ph.dims:                      # nothing to vectorise: the scalar form's
            group_phase(out, p, ph, wg, number)
            continue
        if not isinstance(ph, Reduce):
            _vector_loop(out, q, ph, wg, lambda ph=ph: _vector_stores(out, q, ph.stores))
            continue
        acc = f"{ph.acc}_w"
        out.emit(f"{VTYPE} {acc} = ({VTYPE})({IDENTITY[ph.op]});")

        def reduce_body(ph=ph, acc=acc):
            v = q.value(ph.value)
            _vector_stores(out, q, ph.stores)
            if ph.op == "sum":
                out.emit(f"{acc} = {acc} + {v};")
            else:
                q.helpers.add(f"kiln_f{ph.op}_f16")
                out.emit(f"{acc} = kiln_f{ph.op}_f16({acc}, {v});")
        _vector_loop(out, q, ph, wg, reduce_body)
        fold = {"sum": "kiln_hsum_f16", "max": "kiln_hmax_f16", "min": "kiln_hmin_f16"}[ph.op]
        p.helpers.add(fold)
        if ph.op != "sum":
            p.helpers.add(f"kiln_f{ph.op}_f")
        out.emit(f"float {ph.acc}_v = {fold}({acc});")
        if wg > 1:
            combine_group(out, p, ph, wg, f"{ph.acc}_v", None)
        p.accs[ph.acc] = f"{ph.acc}_v"
    p.helpers |= q.helpers
    text = _function(kernel.name, params, out, (wg, 1))
    who = "one work-item" if wg == 1 else f"one work-group of {wg}"
    return printed_kernel(kernel, f"{who} per row, {LANES} elements per work-item as {VTYPE}",
                          p, text,
                          [Launch(kernel.name, (wg, points), (wg, 1))])


__all__ = ["rows_apply", "print_rows"]
