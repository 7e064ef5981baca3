"""Streaming (non-temporal) stores in the LLVM printer: large graph outputs bypass the cache.

A kernel's store to a graph output of at least ``STREAM_BYTES`` (the kernel IR marks such
buffers ``returned``: no later kernel of the graph reads them, and they could not stay
cached anyway) is written with aligned 64-byte non-temporal vector stores, along the
kernel's one parallel loop (an elementwise kernel) or along a row (a row kernel's store
loop). Ordinary stores would first read every line they write (write-allocate): a third
more memory traffic for a streaming kernel such as ``x * sigmoid(x) * a + b``.
Intermediates that a later kernel reads keep ordinary, cached stores.

Two forms, after a scalar head up to the output's first 64-byte boundary
(``aligned_start``): float32 values with a vector form are computed 16 at a time in
registers and each vector is streamed from its register (``emit_vector_range``,
``llvm_vector``); anything else is computed ``STREAM_TILE`` elements at a time into a
tile on the stack by a loop LLVM vectorises, which ``stream_copy`` then streams out. A
kernel that streams fences (``stream_fence``) before it reports a chunk finished, since
non-temporal stores are weakly ordered.
"""
from __future__ import annotations

import platform

from ..dtypes import bool_
from ..kernel_ir.kernels import Reduce, streamable
from ..kernel_ir.lanes import LANES, vector_stores, vector_values
from .llvm_printer import ExprPrinter, emit_store, lltype
from .llvm_vector import VTYPE, VectorPrinter


STREAM_BYTES = 8 << 20   # graph outputs at least this large are written around the cache
STREAM_TILE = 256        # elements computed into an L1 tile before it is streamed out (128-512
                         # measured best; 4096 loses the gain)
STREAMING = platform.machine().lower() in ("x86_64", "amd64")   # the fence below is x86's


def streams(buffer, index, var) -> bool:
    """Whether a store of ``buffer[index]`` bypasses the cache: ``buffer`` is a large
    graph output and consecutive ``var`` write consecutive elements of it."""
    return (STREAMING and buffer.dtype is not bool_ and buffer.dtype.itemsize in (4, 8)
            and streamable(buffer, index, var, STREAM_BYTES))


def to_line(w, address, size, count):
    """How many ``size``-byte elements from ``address`` come before its first 64-byte
    boundary, at most ``count``."""
    addr = w.op(f"ptrtoint ptr {address} to i64", "al")
    gap = w.op(f"sub i64 0, {addr}", "al")
    gap = w.op(f"and i64 {gap}, 63", "al")
    head = w.op(f"udiv i64 {gap}, {size}", "al")
    return w.op(f"call i64 @llvm.smin.i64(i64 {head}, i64 {count})", "head")


def stream_copy(p: ExprPrinter, tile, dst, count, dtype):
    """Copy ``count`` elements from the stack ``tile`` to ``dst`` with non-temporal vector
    stores: scalar stores up to the first 64-byte boundary of ``dst``, then aligned
    64-byte vectors, then the scalar tail. The caller fences (``stream_fence``) before
    it reports its chunk finished, since streaming stores are weakly ordered."""
    w, ty, size = p.w, lltype(dtype), dtype.itemsize
    lanes = 64 // size
    vty = f"<{lanes} x {ty}>"
    p.nontemporal = True

    def scalar(first, last):
        def one(k, _):
            src = w.op(f"getelementptr {ty}, ptr {tile}, i64 {k}", "ts")
            v = w.op(f"load {ty}, ptr {src}, align {size}", "tv")
            out = w.op(f"getelementptr {ty}, ptr {dst}, i64 {k}", "td")
            w.emit(f"store {ty} {v}, ptr {out}, align {size}")
            return []
        w.loop(first, last, one, hint="sc")
    head = to_line(w, dst, size, count)
    scalar("0", head)
    rest = w.op(f"sub i64 {count}, {head}", "sa")
    nvec = w.op(f"udiv i64 {rest}, {lanes}", "nvec")

    def vector(v, _):
        k = w.op(f"mul i64 {v}, {lanes}", "sv")
        k = w.op(f"add i64 {k}, {head}", "sv")
        src = w.op(f"getelementptr {ty}, ptr {tile}, i64 {k}", "ts")
        x = w.op(f"load {vty}, ptr {src}, align {size}", "tv")
        out = w.op(f"getelementptr {ty}, ptr {dst}, i64 {k}", "td")
        w.emit(f"store {vty} {x}, ptr {out}, align 64, !nontemporal !0")
        return []
    w.loop("0", nvec, vector, hint="sv")
    done = w.op(f"mul i64 {nvec}, {lanes}", "sa")
    done = w.op(f"add i64 {done}, {head}", "sa")
    scalar(done, count)


def stream_fence(p: ExprPrinter):
    if p.nontemporal:
        p.declare("declare void @llvm.x86.sse.sfence()")
        p.w.emit("call void @llvm.x86.sse.sfence()")


def pointwise_streams(kernel, par, rest):
    """A one-loop elementwise kernel with a streamed store (see ``streams``)?"""
    if len(par) != 1 or rest or len(kernel.phases) != 1:
        return False
    ph = kernel.phases[0]
    return (not isinstance(ph, Reduce) and not ph.dims
            and any(streams(kernel.buffers[s.buffer], s.index, par[0]) for s in ph.stores))


def tiles_for(p: ExprPrinter, stores, var, count):
    """A stack tile of ``count`` elements for each store of ``stores`` that streams along
    ``var``; stores that don't stream are absent."""
    return {k: p.w.alloca(lltype(p.buffers[s.buffer].dtype), count)
            for k, s in enumerate(stores) if streams(p.buffers[s.buffer], s.index, var)}


def store_or_tile(p: ExprPrinter, stores, tiles, j):
    """The stores of one element: streamed ones into their tile at ``j``, others in place."""
    for k, s in enumerate(stores):
        if k not in tiles:
            emit_store(p, s)
            continue
        ty = lltype(p.buffers[s.buffer].dtype)
        q = p.w.op(f"getelementptr {ty}, ptr {tiles[k]}, i64 {j}", "tq")
        p.w.emit(f"store {ty} {p.value(s.value)}, ptr {q}")


def flush_tiles(p: ExprPrinter, stores, tiles, var, first, count):
    """Stream each tile out to where its store puts element ``var = first``."""
    p.push()
    p.vars[var] = first
    for k, tile in tiles.items():
        s = stores[k]
        stream_copy(p, tile, p.address(s.buffer, s.index), count, p.buffers[s.buffer].dtype)
    p.pop()


def aligned_start(p: ExprPrinter, stores, k, var, start, end):
    """Store the elements before store ``k``'s first 64-byte boundary in place, and return
    where the streaming begins: from there every tile or vector (a multiple of 64 bytes)
    starts on a boundary, so each chunk has at most two partly written lines. (Letting
    every tile find its own boundary leaves a line written half by ordinary and half by
    streaming stores at each tile edge: 12% slower on W1 when NumPy's 16-byte aligned
    output is not 64-byte aligned.)"""
    w = p.w
    s = stores[k]
    p.push()
    p.vars[var] = start
    address = p.address(s.buffer, s.index)
    p.pop()
    n = w.op(f"sub i64 {end}, {start}", "al")
    head = to_line(w, address, p.buffers[s.buffer].dtype.itemsize, n)
    first = w.op(f"add i64 {start}, {head}", "al")
    store_elements(p, stores, var, start, first, "hd")
    return first


def store_elements(p: ExprPrinter, stores, var, first, last, hint):
    """``stores`` one element at a time, with ordinary stores, for ``var`` in
    ``[first, last)`` (a head or a tail)."""
    def element(i, _):
        p.push()
        p.vars[var] = i
        for s in stores:
            emit_store(p, s)
        p.pop()
        return []
    p.w.loop(first, last, element, hint=hint)


def emit_streamed_range(p: ExprPrinter, start, end, var, stores):
    """``stores`` at ``var`` in ``[start, end)``, where some store streams: in explicit
    vectors if one store streams and every value has a vector form, else ``STREAM_TILE``
    at a time through stack tiles."""
    streamed = [k for k, s in enumerate(stores) if streams(p.buffers[s.buffer], s.index, var)]
    if len(streamed) == 1 and vector_stores(p.buffers, stores, var) \
            and vector_values([s.value for s in stores], var):
        emit_vector_range(p, start, end, var, stores, streamed[0])
        return
    w = p.w
    tiles = tiles_for(p, stores, var, STREAM_TILE)
    start = aligned_start(p, stores, min(tiles), var, start, end)
    n = w.op(f"sub i64 {end}, {start}", "sn")
    ntiles = w.spans(n, STREAM_TILE, "ntiles")

    def tile(t, _):
        offset, count = w.span(t, STREAM_TILE, n, "t0")
        first = w.op(f"add i64 {offset}, {start}", "t0")

        def element(j, _):
            p.push()
            p.vars[var] = w.op(f"add i64 {first}, {j}", "f")
            store_or_tile(p, stores, tiles, j)
            p.pop()
            return []
        w.loop("0", count, element, hint="f")
        flush_tiles(p, stores, tiles, var, first, count)
        return []
    w.loop("0", ntiles, tile, hint="tile")


def emit_vector_range(p: ExprPrinter, start, end, var, stores, k):
    """Elements ``[start, end)``, 16 at a time in ``<16 x float>`` registers
    (``llvm_vector``): store ``k`` goes straight from the register to memory in one
    aligned non-temporal store, the others in ordinary vector stores. The elements
    before store ``k``'s first 64-byte boundary and after the last whole vector are
    printed one at a time."""
    w = p.w
    first = aligned_start(p, stores, k, var, start, end)
    n = w.op(f"sub i64 {end}, {first}", "vn")
    nvec = w.op(f"udiv i64 {n}, {LANES}", "vn")
    vp = VectorPrinter(p, var)
    p.nontemporal = True

    def vector(v, _):
        vp.push()
        at = w.op(f"mul i64 {v}, {LANES}", "vi")
        vp.vars[var] = w.op(f"add i64 {first}, {at}", "vi")
        for j, s in enumerate(stores):
            value, address = vp.value(s.value), vp.address(s.buffer, s.index)
            how = "align 64, !nontemporal !0" if j == k else "align 4"
            w.emit(f"store {VTYPE} {value}, ptr {address}, {how}")
        vp.pop()
        return []
    w.loop("0", nvec, vector, hint="vec")
    done = w.op(f"mul i64 {nvec}, {LANES}", "vn")
    done = w.op(f"add i64 {first}, {done}", "vn")
    store_elements(p, stores, var, done, end, "tl")
