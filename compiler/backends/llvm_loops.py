"""LLVM IR for the loop-shaped kernel forms: ``LoopKernel`` and ``ScatterKernel``.

A ``LoopKernel`` becomes: claim a chunk of the outer parallel loops (see
``llvm_printer.chunk_loop``), and at each outer point run its phases in order: a
``Reduce`` is a loop nest carrying its accumulator in registers (``reassoc`` lets LLVM
vectorise it), a ``StoreLoop`` a loop nest of stores. Reductions *across* rows laid out
along the innermost parallel variable (bias gradients: a sum over the batch axis) are
printed the other way round, with a block of per-column accumulators, so the inner loop
is contiguous (``print_column_kernel``).
"""
from __future__ import annotations

import math

from ..dtypes import bool_
from ..kernel_ir import expr as ex
from ..kernel_ir.kernels import LoopKernel, Reduce, ScatterKernel
from .llvm_printer import (ExprPrinter, FunctionWriter, better, body_signature, chunk_bounds,
                           chunk_loop, combine, emit_store, identity, local_buffers, lltype,
                           useful_chunks)
from .llvm_streaming import emit_streamed_range, pointwise_streams, stream_fence, streams


def column_reduction(kernel: LoopKernel):
    """The innermost parallel variable if the kernel reduces *across* rows that lie along
    it in memory (``sum(g, axis=0)`` of a ``(batch, features)`` gradient): then each
    pass loops over the reduced variables outside and over a block of columns inside,
    with one accumulator per column, so the inner loop is contiguous and vectorises."""
    if not kernel.outer or kernel.outer[-1].size < 16:
        return None
    col = kernel.outer[-1]
    reduces = [ph for ph in kernel.phases if isinstance(ph, Reduce)]
    if not reduces or any(ph.op not in ("sum", "max", "min", "any", "all") for ph in reduces):
        return None
    dims = reduces[0].dims
    if any(ph.dims and ph.dims != dims for ph in kernel.phases):
        return None
    loads = sorted(ex.loads([reduces[0].value]), key=lambda l: -l.args[1].hi)
    if not loads:
        return None
    main = loads[0].args[1]
    if main.coeff(col) != 1 or any(main.coeff(r) == 1 for r in dims):
        return None
    return col


COLUMN_BLOCK = 256


def print_column_kernel(kernel: LoopKernel, symbol: str, col):
    w = FunctionWriter()
    p = ExprPrinter(w, kernel.buffers, {i: f"%buf{i}" for i in range(len(kernel.buffers))})
    prefix = list(kernel.outer[:-1])
    block = min(COLUMN_BLOCK, col.size)
    nblocks = -(-col.size // block)
    extent = math.prod(v.size for v in prefix) * nblocks
    work = max(kernel.flops, math.prod(v.size for v in kernel.outer))
    chunks = useful_chunks(extent, work)
    p.scratch = local_buffers(w, kernel.buffers)
    arrays = {ph.acc: w.alloca(lltype(ph.dtype), block) for ph in kernel.phases
              if isinstance(ph, Reduce)}

    def columns(first, last, body):
        def one(c, _):
            p.push()
            p.vars[col] = c
            body()
            p.pop()
            return []
        w.loop(first, last, one, hint="col")

    def nest(dims, inner):
        if not dims:
            inner()
            return

        def body(iv, _):
            p.push()
            p.vars[dims[0]] = iv
            nest(dims[1:], inner)
            p.pop()
            return []
        w.loop("0", str(dims[0].size), body, hint=dims[0].name)

    def point(f, _):
        p.push()
        ob = w.op(f"urem i64 {f}, {nblocks}", "ob")
        rest = w.op(f"udiv i64 {f}, {nblocks}", "rest")
        stride = 1
        for v in reversed(prefix):
            q = w.op(f"udiv i64 {rest}, {stride}", "o") if stride != 1 else rest
            p.vars[v] = w.op(f"urem i64 {q}, {v.size}", "o")
            stride *= v.size
        first = w.op(f"mul i64 {ob}, {block}", "c0")
        end = w.op(f"add i64 {first}, {block}", "c1")
        last = w.op(f"call i64 @llvm.smin.i64(i64 {end}, i64 {col.size})", "c1")
        for ph in kernel.phases:
            if isinstance(ph, Reduce):
                array, ty = arrays[ph.acc], lltype(ph.dtype)

                def slot():
                    at = w.op(f"sub i64 {p.vars[col]}, {first}", "col")
                    return w.op(f"getelementptr {ty}, ptr {array}, i64 {at}", "aq")

                def init(ph=ph, slot=slot, ty=ty):
                    w.emit(f"store {ty} {identity(ph.op, ph.dtype)}, ptr {slot()}")

                def step(ph=ph, slot=slot, ty=ty):
                    q = slot()
                    old = w.op(f"load {ty}, ptr {q}", "acc")
                    w.emit(f"store {ty} {combine(p, ph.op, old, p.value(ph.value), ph.dtype)}, "
                           f"ptr {q}")
                    for st in ph.stores:
                        emit_store(p, st)
                columns(first, last, init)
                nest(list(ph.dims), lambda step=step: columns(first, last, step))
                p.acc_arrays[ph.acc] = (array, col, first)
            else:
                nest(list(ph.dims), lambda ph=ph: columns(
                    first, last, lambda: [emit_store(p, st) for st in ph.stores]))
        p.pop()
        return []

    def work_(c):
        start, end = chunk_bounds(w, c, extent, chunks)
        w.loop(start, end, point, hint="f")
    chunk_loop(w, chunks, work_)
    p.threads = chunks
    fn = [body_signature(symbol, kernel.buffers), "entry:"] + w.allocas + w.lines + ["}"]
    return "\n".join(fn), p


def print_loop_kernel(kernel: LoopKernel, symbol: str):
    """A LoopKernel: parallel outer loops, then its phases at each outer point."""
    col = column_reduction(kernel)
    if col is not None:
        return print_column_kernel(kernel, symbol, col)
    w = FunctionWriter()
    nbuf = len(kernel.buffers)
    bufs = {i: f"%buf{i}" for i in range(nbuf)}
    p = ExprPrinter(w, kernel.buffers, bufs)
    outer = list(kernel.outer)
    # parallelise over a prefix of the outer loops long enough to share among threads
    d = 0
    while d < len(outer) and math.prod(v.size for v in outer[:d]) < 64:
        d += 1
    par, rest = outer[:d], outer[d:]
    extent = math.prod(v.size for v in par)
    inner_work = math.prod(v.size for v in rest) * max(
        [math.prod(v.size for v in ph.dims) for ph in kernel.phases] + [1])
    cost = max(1, kernel.flops // max(extent * inner_work, 1))
    chunks = useful_chunks(extent, extent * inner_work * cost)
    p.scratch = local_buffers(w, kernel.buffers)

    def run_rest(k):
        if k == len(rest):
            phases()
            return
        v = rest[k]

        def body(iv, _):
            p.push()
            p.vars[v] = iv
            run_rest(k + 1)
            p.pop()
            return []
        w.loop("0", str(v.size), body, hint=v.name)

    def phases():
        for ph in kernel.phases:
            if isinstance(ph, Reduce):
                emit_reduce(p, ph)
            else:
                emit_store_loop(p, ph)

    def outer_body(f, _):
        p.push()
        if len(par) == 1:
            p.vars[par[0]] = f
        else:
            stride = 1
            for v in reversed(par):
                q = w.op(f"udiv i64 {f}, {stride}", "o") if stride != 1 else f
                p.vars[v] = w.op(f"urem i64 {q}, {v.size}", "o")
                stride *= v.size
        run_rest(0)
        p.pop()
        return []

    flat_streamed = pointwise_streams(kernel, par, rest)

    def work(c):
        if par:
            start, end = chunk_bounds(w, c, extent, chunks)
            if flat_streamed:
                emit_streamed_range(p, start, end, par[0], kernel.phases[0].stores)
            else:
                w.loop(start, end, outer_body, hint="f")
        else:
            run_rest(0)
        stream_fence(p)
    chunk_loop(w, chunks, work)
    fn = [body_signature(symbol, kernel.buffers), "entry:"] + w.allocas + w.lines + ["}"]
    p.threads = chunks
    return "\n".join(fn), p


def emit_reduce(p: ExprPrinter, ph: Reduce):
    w = p.w
    vt = ph.value.dtype
    ty = lltype(vt)
    arg = ph.op in ("argmax", "argmin")
    carried = [(ty, identity(ph.op, vt))] + ([("i64", "0")] if arg else [])
    dims = list(ph.dims)

    def nest(k, values):
        if k == len(dims):
            v = p.value(ph.value)
            for st in ph.stores:         # values stored in the same pass over the row
                emit_store(p, st)
            if arg:
                pos = p.index(ph.position)
                take = better(p, ph.op, v, values[0], vt)
                best = w.op(f"select i1 {take}, {ty} {v}, {ty} {values[0]}", "best")
                where = w.op(f"select i1 {take}, i64 {pos}, i64 {values[1]}", "bidx")
                return [best, where]
            return [combine(p, ph.op, values[0], v, vt)]
        var = dims[k]

        def body(iv, vals):
            p.push()
            p.vars[var] = iv
            out = nest(k + 1, vals)
            p.pop()
            return out
        return w.loop("0", str(var.size), body, carried=list(zip([c[0] for c in carried], values)),
                      hint=var.name)
    final = nest(0, [c[1] for c in carried])
    p.accs[ph.acc] = final[1] if arg else final[0]


def emit_store_loop(p: ExprPrinter, ph):
    w = p.w
    dims = list(ph.dims)
    if len(dims) == 1 and any(streams(p.buffers[s.buffer], s.index, dims[0])
                              for s in ph.stores):     # a row of a large output
        emit_streamed_range(p, "0", str(dims[0].size), dims[0], ph.stores)
        return

    def nest(k):
        if k == len(dims):
            for s in ph.stores:
                emit_store(p, s)
            return
        var = dims[k]

        def body(iv, _):
            p.push()
            p.vars[var] = iv
            nest(k + 1)
            p.pop()
            return []
        w.loop("0", str(var.size), body, hint=var.name)
    nest(0)


def print_scatter_kernel(kernel: ScatterKernel, symbol: str):
    """Initialise the target, then one sequential pass: a single chunk, since writes to
    data-dependent positions may collide."""
    w = FunctionWriter()
    nbuf = len(kernel.buffers)
    p = ExprPrinter(w, kernel.buffers, {i: f"%buf{i}" for i in range(nbuf)})

    def loops(vars_, inner):
        def nest(k):
            if k == len(vars_):
                inner()
                return

            def body(iv, _):
                p.push()
                p.vars[vars_[k]] = iv
                nest(k + 1)
                p.pop()
                return []
            w.loop("0", str(vars_[k].size), body, hint=vars_[k].name)
        nest(0)
    target = kernel.target
    dtype = kernel.buffers[target].dtype

    def scatter_one():
        v = p.value(kernel.value)
        addr = p.address(target, kernel.position)
        mty = lltype(dtype, memory=True)
        if kernel.accumulate:
            old = w.op(f"load {mty}, ptr {addr}, align {dtype.itemsize}", "old")
            if dtype is bool_:
                old = w.op(f"icmp ne i8 {old}, 0", "b")
            v = p._binary("add", old, v, dtype)
        if dtype is bool_:
            v = w.op(f"zext i1 {v} to i8", "z")
        w.emit(f"store {mty} {v}, ptr {addr}, align {dtype.itemsize}")

    def work(c):
        loops(list(kernel.outer), lambda: [emit_store(p, s) for s in kernel.init.stores])
        loops(list(kernel.source), scatter_one)
    chunk_loop(w, 1, work)
    fn = [body_signature(symbol, kernel.buffers), "entry:"] + w.allocas + w.lines + ["}"]
    return "\n".join(fn), p
