"""OpenCL C for a float32 ``MatmulKernel`` with explicit vectors, for CPU runtimes that do
not pack work-items into SIMD lanes (PoCL).

``opencl_matmul`` relies on the driver to turn a row of work-items into one SIMD
register (Intel's CPU runtime does: 240 GFLOP/s for W5). PoCL 3.1 runs that kernel at
9 GFLOP/s. Here each work-item computes a register tile of C itself with ``float16``
accumulators - the inner kernel of BLIS, which PoCL's LLVM compiles to AVX-512 FMAs
(W5 145 GFLOP/s; W3's step 25 -> 5 ms, its Linear forwards went from 11 to ~125 GFLOP/s).
Operands are still expressions (``opencl_streaming.VectorPrinter`` prints one as a
vector when it moves by one element per lane). One of three forms, by the operands:

- ``rows`` (B contiguous along n, N a multiple of 16: ``a @ b``, ``g @ W``, ``g.T @ x``):
  a work-item owns ``RM`` rows and ``16*RV`` consecutive columns; per k, ``RV`` vector
  loads of B, ``RM`` scalar loads of A broadcast, ``RM*RV`` FMAs. Operands are read
  straight from global memory (no local memory, no barriers);
- ``dots`` (A and B both contiguous along k: ``x @ W.T``, a Linear's forward): a
  work-item owns ``RM x RN`` outputs, each a ``float16`` of partial dot products over
  16 consecutive k, summed across lanes at the end (a scalar loop takes K's remainder);
- ``staged`` (anything else, e.g. an implicit-GEMM convolution's unfold windows): the
  work-group stages blocks of A and B into local memory with ``opencl_matmul``'s
  ``stage_block``, then the ``rows`` inner loop runs over the staged block.

Rows and columns past the matrix edges are computed from clamped (valid) positions and
not stored. The epilogue (bias, activation) runs per element from a private copy of
the accumulators. The staged form splits a long K over work-groups when the output
tiles are few (a convolution's weight gradient), with ``opencl_matmul``'s deterministic
reduce launch (LeNet's step on PoCL: 20 -> 13 ms).
"""
from __future__ import annotations

import math

from ..dtypes import float32
from ..kernel_ir.kernels import MatmulKernel
from .opencl_loops import Launch, _function, cv, next_pow2, printed_kernel
from .opencl_matmul import (at_output, bind_batch, open_k_steps, print_split_reduce, split_k,
                            stage_block, store_epilogue, walks_along_k)
from .opencl_printer import ExprPrinter, Lines, buffer_params
from ..kernel_ir.lanes import LANES, vector_values
from .opencl_vector import VectorPrinter

ROWS_RM, ROWS_RV = 8, 2        # rows form: 8 rows x 2 vectors of 16 columns (16 zmm)
DOTS_RM, DOTS_RN = 4, 4        # dots form: 4 x 4 outputs, one float16 of partial sums each
GROUP = 4                      # work-items per group along n (measured best on PoCL 3.1)
STAGED_WX, STAGED_WY, STAGED_TK = 4, 8, 64


def vector_matmul_applies(kernel: MatmulKernel) -> bool:
    """float32 only (float64 keeps ``opencl_matmul``'s kernel)."""
    return kernel.dtype is float32


def matmul_form(kernel: MatmulKernel) -> str:
    """``rows``, ``dots`` or ``staged``: the first form the operands allow (module doc)."""
    if kernel.n.size % LANES == 0 and vector_values([kernel.b], kernel.n):
        return "rows"
    if kernel.k.size >= LANES and vector_values([kernel.a], kernel.k) \
            and vector_values([kernel.b], kernel.k):
        return "dots"
    return "staged"


class _Printers:
    """A scalar and a vector printer writing into one ``Lines`` (distinct temporaries)."""

    def __init__(self, kernel, target):
        self.out = Lines()
        self.p = ExprPrinter(self.out, kernel.buffers, fp64=target.fp64, narrow_index=False)
        self.q = VectorPrinter(self.out, kernel.buffers, fp64=target.fp64, narrow_index=False)
        self.q.counter = 100000
        self.q.vars = self.p.vars            # one set of bindings for both printers

    def bind(self, var, text):
        self.p.vars[var] = text

    def scalar(self, expr, binds):
        return self._value(self.p, expr, binds)

    def vector(self, expr, lane_var, binds):
        self.q.var = lane_var
        return self._value(self.q, expr, binds)

    @staticmethod
    def _value(printer, expr, binds):
        printer.push()
        saved = {v: printer.vars.get(v) for v in binds}
        printer.vars.update(binds)
        text = printer.value(expr)
        for v, old in saved.items():
            if old is None:
                printer.vars.pop(v, None)
            else:
                printer.vars[v] = old
        printer.pop()
        return text


def _clamped(out, name, base, i, size, exact):
    """``name = base + i``, clamped to the last valid position unless every one is valid."""
    if exact:
        out.emit(f"const long {name} = {base} + {i}L;")
    else:
        out.emit(f"const long {name} = min({base} + {i}L, {size - 1}L);")
    return name


def _epilogue(pr, kernel, rows, cols, m_first, n_first, guard_m, guard_n, body=None):
    """The kernel's stores (or ``body()``) for each of the work-item's ``rows x cols``
    outputs, reading the sum from ``cb[r][j]`` (output ``(m_first + r, n_first + j)``)."""
    out, p = pr.out, pr.p
    out.open(f"for (int r = 0; r < {rows}; r++)")
    out.open(f"for (int j = 0; j < {cols}; j++)")
    p.push()
    at_output(out, p, kernel, f"{m_first} + r", f"{n_first} + j", guard_m, guard_n,
              body or (lambda: store_epilogue(p, kernel, "cb[r][j]")))
    p.pop()
    out.close()
    out.close()


def _begin(pr, kernel, batch_id):
    params, setup = buffer_params(kernel)
    for line in setup:
        pr.out.emit(line)
    if kernel.batch:
        pr.out.emit(f"const long bt = {batch_id};")
        bind_batch(pr.out, pr.p, list(kernel.batch), "bt")
    return params


def _group(items):
    return GROUP if items % GROUP == 0 else (2 if items % 2 == 0 else 1)


def _print_rows(kernel, target, nbatch):
    mv, nv, kv = kernel.m, kernel.n, kernel.k
    M, N, K = mv.size, nv.size, kv.size
    rv = ROWS_RV if N % (LANES * ROWS_RV) == 0 else 1
    rm = max(min(ROWS_RM, M), 1)
    cols = LANES * rv
    items_n, items_m = N // cols, -(-M // rm)
    pr = _Printers(kernel, target)
    out = pr.out
    params = _begin(pr, kernel, "get_global_id(2)")
    out.emit(f"const long n0 = get_global_id(0) * {cols}L, m0 = get_global_id(1) * {rm}L;")
    rows = [_clamped(out, f"ar{i}", "m0", i, M, M % rm == 0) for i in range(rm)]
    for i in range(rm):
        out.emit(" ".join(f"float16 c{i}_{v} = (float16)(0.0f);" for v in range(rv)))
    out.open(f"for (long {cv(kv)} = 0; {cv(kv)} < {K}L; {cv(kv)}++)")
    pr.bind(kv, cv(kv))
    bs = [pr.vector(kernel.b, nv, {nv: f"(n0 + {LANES * v}L)"}) for v in range(rv)]
    for i in range(rm):
        a = pr.scalar(kernel.a, {mv: rows[i]})
        out.emit(" ".join(f"c{i}_{v} = fma((float16)({a}), {bs[v]}, c{i}_{v});"
                          for v in range(rv)))
    out.close()
    out.emit(f"float cb[{rm}][{cols}];")
    for i in range(rm):
        for v in range(rv):
            out.emit(f"vstore16(c{i}_{v}, 0, &cb[{i}][{LANES * v}]);")
    _epilogue(pr, kernel, rm, cols, "m0", "n0", M % rm != 0, False)
    wx = _group(items_n)
    launch = Launch(kernel.name, (items_n, items_m, nbatch), (wx, 1, 1))
    kind = f"matmul rows: {rm}x{cols} per work-item as float16, groups of {wx}"
    return pr, params, [launch], kind, (wx, 1), "", 0


def _print_dots(kernel, target, nbatch):
    mv, nv, kv = kernel.m, kernel.n, kernel.k
    M, N, K = mv.size, nv.size, kv.size
    rm, rn = max(min(DOTS_RM, M), 1), max(min(DOTS_RN, N), 1)
    items_m = -(-M // rm)
    wx = GROUP
    items_n = -(-(-(-N // rn)) // wx) * wx
    pr = _Printers(kernel, target)
    out = pr.out
    params = _begin(pr, kernel, "get_global_id(2)")
    out.emit(f"const long n0 = get_global_id(0) * {rn}L, m0 = get_global_id(1) * {rm}L;")
    rows = [_clamped(out, f"ar{i}", "m0", i, M, M % rm == 0) for i in range(rm)]
    cols = [_clamped(out, f"bn{j}", "n0", j, N, items_n * rn == N) for j in range(rn)]
    for i in range(rm):
        out.emit(" ".join(f"float16 c{i}_{j} = (float16)(0.0f);" for j in range(rn)))
    whole = K - K % LANES
    kb = cv(kv)
    out.open(f"for (long {kb} = 0; {kb} < {whole}L; {kb} += {LANES}L)")
    pr.bind(kv, kb)
    a_vec = [pr.vector(kernel.a, kv, {mv: rows[i]}) for i in range(rm)]
    b_vec = [pr.vector(kernel.b, kv, {nv: cols[j]}) for j in range(rn)]
    for i in range(rm):
        out.emit(" ".join(f"c{i}_{j} = fma({a_vec[i]}, {b_vec[j]}, c{i}_{j});" for j in range(rn)))
    out.close()
    pr.p.helpers.add("kiln_hsum_f16")
    out.emit(f"float cb[{rm}][{rn}];")
    for i in range(rm):
        out.emit(" ".join(f"cb[{i}][{j}] = kiln_hsum_f16(c{i}_{j});" for j in range(rn)))
    if K % LANES:
        out.open(f"for (long {kb} = {whole}L; {kb} < {K}L; {kb}++)")
        pr.bind(kv, kb)
        a = [pr.scalar(kernel.a, {mv: rows[i]}) for i in range(rm)]
        b = [pr.scalar(kernel.b, {nv: cols[j]}) for j in range(rn)]
        for i in range(rm):
            out.emit(" ".join(f"cb[{i}][{j}] = fma({a[i]}, {b[j]}, cb[{i}][{j}]);"
                              for j in range(rn)))
        out.close()
    _epilogue(pr, kernel, rm, rn, "m0", "n0", M % rm != 0, items_n * rn != N)
    launch = Launch(kernel.name, (items_n, items_m, nbatch), (wx, 1, 1))
    kind = f"matmul dots: {rm}x{rn} per work-item, float16 partial sums over k, groups of {wx}"
    return pr, params, [launch], kind, (wx, 1), "", 0


def staged_tiles(m, n, k, batch, target):
    """``(rm, rv, wx, wy, tk)`` of the staged form: the widest register tile the matrix
    fills, groups shrunk until the device has ``min_groups`` of them, and an even cut of
    K into steps of at most ``STAGED_TK``."""
    rv = ROWS_RV if n > LANES else 1
    wx = min(STAGED_WX, next_pow2(-(-n // (LANES * rv))))
    rm = max(min(ROWS_RM, m), 1)
    wy = min(STAGED_WY, next_pow2(-(-m // rm)))

    def groups():
        return batch * -(-m // (wy * rm)) * -(-n // (wx * LANES * rv))
    while groups() < target.min_groups and (wy > 1 or wx > 1):
        if wy >= wx and wy > 1:
            wy //= 2
        else:
            wx //= 2
    steps = max(-(-k // STAGED_TK), 1)
    tk = max(-(-k // steps), 1)
    tm, tn = wy * rm, wx * LANES * rv
    while tk > 1 and (tm + tn) * tk * 4 > target.local_mem_size // 2:
        tk = -(-tk // 2)
    return rm, rv, wx, wy, tk


def _print_staged(kernel, target, nbatch):
    mv, nv, kv = kernel.m, kernel.n, kernel.k
    M, N, K = mv.size, nv.size, kv.size
    rm, rv, wx, wy, tk = staged_tiles(M, N, K, nbatch, target)
    cols = LANES * rv
    tm, tn = wy * rm, wx * cols
    # split-K as in opencl_matmul: too few output tiles (a convolution's weight gradient:
    # 6 x 25 outputs over K = 50176) would leave all of K to one work-group
    tiles = nbatch * -(-M // tm) * -(-N // tn)
    pieces, kpiece = split_k(tiles, K, tk, 2 * nbatch * M * N * K, target)
    pr = _Printers(kernel, target)
    out, p = pr.out, pr.p
    params = _begin(pr, kernel, f"get_group_id(2) / {pieces}L" if pieces > 1 else "get_group_id(2)")
    if pieces > 1:
        params = params + ["__global float* restrict ws"]
        if not kernel.batch:
            out.emit("const long bt = 0;")
        out.emit(f"const long kp = get_group_id(2) % {pieces}L;")
        out.emit(f"const long kbeg = kp * {kpiece}L, kend = min(kbeg + {kpiece}L, {K}L);")
    out.emit(f"const int tx = get_local_id(0), ty = {'get_local_id(1)' if wy > 1 else '0'};")
    out.emit(f"const long n0 = get_group_id(0) * {tn}L, m0 = get_group_id(1) * {tm}L;")
    out.emit(f"__local float As[{tm}][{tk}];")
    out.emit(f"__local float Bs[{tk}][{tn}];")
    for i in range(rm):
        out.emit(" ".join(f"float16 c{i}_{v} = (float16)(0.0f);" for v in range(rv)))
    open_k_steps(out, pieces, K, tk)
    # A[m, k] staged row-major as As[m][k] (a row's k values are what a work-item
    # broadcasts), B[k, n] as Bs[k][n] (a work-item's columns are one vector load)
    stage_block(out, p, kernel.a, mv, kv, M, K, "m0", "k0", "As", walks_along_k(kernel.a, mv, kv),
                wx, wy, tm, tk, float32, row_major=True)
    stage_block(out, p, kernel.b, nv, kv, N, K, "n0", "k0", "Bs", walks_along_k(kernel.b, nv, kv),
                wx, wy, tn, tk, float32)
    out.emit("barrier(CLK_LOCAL_MEM_FENCE);")
    out.open(f"for (int kk = 0; kk < {tk}; kk++)")
    for v in range(rv):
        out.emit(f"const float16 b{v} = vload16(0, &Bs[kk][tx * {cols} + {LANES * v}]);")
    for i in range(rm):
        out.emit(f"const float16 a{i} = (float16)(As[ty * {rm} + {i}][kk]);")
        out.emit(" ".join(f"c{i}_{v} = fma(a{i}, b{v}, c{i}_{v});" for v in range(rv)))
    out.close()
    out.emit("barrier(CLK_LOCAL_MEM_FENCE);")
    out.close()
    out.emit(f"float cb[{rm}][{cols}];")
    for i in range(rm):
        for v in range(rv):
            out.emit(f"vstore16(c{i}_{v}, 0, &cb[{i}][{LANES * v}]);")
    partial = None
    if pieces > 1:        # this piece's partial sums go to its plane of the workspace
        def partial():
            out.emit(f"ws[(kp * {nbatch}L + bt) * {M * N}L + {cv(mv)} * {N}L + {cv(nv)}] "
                     f"= cb[r][j];")
    _epilogue(pr, kernel, rm, cols, f"m0 + ty * {rm}", f"n0 + tx * {cols}", M % tm != 0,
              N % tn != 0, partial)
    launches = [Launch(kernel.name, (-(-N // tn) * wx, -(-M // tm) * wy, nbatch * pieces),
                       (wx, wy, 1))]
    kind = (f"matmul staged: tile {tm}x{tn}x{tk}, {rm}x{cols} per work-item as float16, "
            f"{wx}x{wy} work-items")
    extra, scratch = "", 0
    if pieces > 1:
        kind += f", K in {pieces} pieces of {kpiece}"
        _, setup = buffer_params(kernel)
        extra = print_split_reduce(kernel, target, p, params, setup, pieces, launches)
        scratch = pieces * nbatch * M * N * 4
    return pr, params, launches, kind, (wx, wy), extra, scratch


def print_vector_matmul(kernel: MatmulKernel, target):
    nbatch = max(math.prod(v.size for v in kernel.batch), 1)
    form = matmul_form(kernel)
    printer = {"rows": _print_rows, "dots": _print_dots, "staged": _print_staged}[form]
    pr, params, launches, kind, local, extra, scratch = printer(kernel, target, nbatch)
    text = _function(kernel.name, params, pr.out, local) + (f"\n{extra}" if extra else "")
    pr.p.helpers |= pr.q.helpers
    printed = printed_kernel(kernel, kind, pr.p, text, launches)
    printed.scratch = scratch      # bytes of split-K workspace (CLLaunch.scratch)
    return printed


__all__ = ["print_vector_matmul", "vector_matmul_applies", "matmul_form", "staged_tiles"]
