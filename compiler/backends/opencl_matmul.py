"""OpenCL C for ``MatmulKernel``: a local-memory tiled, register-tiled matmul.

``C[b, m, n] = sum_k A[b, m, k] * B[b, k, n]``, then the epilogue stores (bias,
activation) reading the sum as ``acc("acc")``. A work-group of ``16 x 16`` work-items
computes a ``TM x TN`` tile of C (``TM = 16*RM``, ``TN = 16*RN``); each work-item holds
an ``RM x RN`` register tile: rows ``ty + 16*i``, columns ``tx + 16*j``, so stores of
neighbouring work-items are neighbouring addresses. Per ``TK``-deep step of k the group:

1. stages A's ``TM x TK`` and B's ``TK x TN`` blocks into local memory, each element
   evaluated from the operand *expression* once (a transposed operand, an unfold window
   of an implicit-GEMM convolution or a fused producer costs its index arithmetic once
   per block, not once per use); work-items walk each block along the operand's
   unit-stride dimension, so the global reads are coalesced; positions past the edges
   read 0;
2. after a barrier, runs ``TK`` steps of ``RM`` + ``RN`` local reads feeding ``RM*RN``
   multiply-adds (contracted to FMAs by the driver).

On GPUs local memory is the on-chip scratchpad; on CPU runtimes it is cache-resident
memory and the staging is BLIS-style packing, while the driver's vectoriser packs the
16 work-items of a row into SIMD lanes (B reads become vector loads, A reads
broadcasts). Tile sizes shrink for small matrices so that padding stays small and the
device still gets enough work-groups.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..kernel_ir import expr as ex
from ..kernel_ir.kernels import MatmulKernel
from .opencl_loops import Launch, _function, _printed, cv, emit_store
from .opencl_printer import ExprPrinter, Lines, buffer_params, check_fp64, ctype, literal

WX = WY = 16


@dataclass(frozen=True)
class Tiles:
    rm: int
    rn: int
    tk: int

    @property
    def tm(self):
        return WY * self.rm

    @property
    def tn(self):
        return WX * self.rn


def choose_tiles(kernel: MatmulKernel, target) -> Tiles:
    m, n, k = kernel.m.size, kernel.n.size, kernel.k.size
    batch = math.prod(v.size for v in kernel.batch)
    rm = rn = 4
    tk = target.matmul_tk

    def groups(rm, rn):
        return batch * -(-m // (WY * rm)) * -(-n // (WX * rn))
    # no more padding than needed: a 10-column product does not get 64-wide tiles
    while rn > 1 and n <= WX * rn // 2:
        rn //= 2
    while rm > 1 and m <= WY * rm // 2:
        rm //= 2
    # enough work-groups to occupy the device
    while groups(rm, rn) < target.min_groups and (rm > 1 or rn > 1):
        if rn >= rm and rn > 1:
            rn //= 2
        else:
            rm //= 2
    tk = max(4, min(tk, 1 << max(k - 1, 1).bit_length()))
    return Tiles(rm, rn, tk)


def _unit_stride(e: ex.Expr, var):
    """Does the largest load of ``e`` move by one element along ``var``?"""
    loads = sorted(ex.loads([e]), key=lambda l: -l.args[1].hi)
    return bool(loads) and loads[0].args[1].coeff(var) == 1


def _stage(out, p, operand, rows, cols, rows_total, cols_total, r0, c0, array, fast_cols, wg,
           tile_rows, tile_cols, dtype):
    """Copy the ``tile_rows x tile_cols`` block of ``operand`` (a function of the Vars
    ``rows``/``cols``) at ``(r0, c0)`` into ``array[col][row]`` (k-major for both operands)."""
    count = tile_rows * tile_cols
    out.open(f"for (int e = (int)lid; e < {count}; e += {wg})")
    if fast_cols:
        out.emit(f"const int rr = e / {tile_cols}, cc = e % {tile_cols};")
    else:
        out.emit(f"const int rr = e % {tile_rows}, cc = e / {tile_rows};")
    p.push()
    out.emit(f"const long {cv(rows)} = {r0} + rr;")
    out.emit(f"const long {cv(cols)} = {c0} + cc;")
    p.vars[rows], p.vars[cols] = cv(rows), cv(cols)
    conds = []
    if rows_total % tile_rows:
        conds.append(f"{cv(rows)} < {rows_total}L")
    if cols_total % tile_cols:
        conds.append(f"{cv(cols)} < {cols_total}L")
    ty = ctype(dtype)
    if conds:
        out.emit(f"{ty} val = {literal(0, dtype)};")
        out.open(f"if ({' && '.join(conds)})")
        p.push()
        out.emit(f"val = {p.value(operand)};")
        p.pop()
        out.close()
        value = "val"
    else:
        value = p.value(operand)
    p.pop()
    out.emit(f"{array}[cc][rr] = {value};")
    out.close()


def print_matmul_kernel(kernel: MatmulKernel, target, fp64):
    check_fp64(kernel, fp64)
    tiles = choose_tiles(kernel, target)
    rm, rn, tk, tm, tn = tiles.rm, tiles.rn, tiles.tk, tiles.tm, tiles.tn
    mv, nv, kv = kernel.m, kernel.n, kernel.k
    M, N, K = mv.size, nv.size, kv.size
    dtype = kernel.dtype
    ty = ctype(dtype)
    out = Lines()
    p = ExprPrinter(out, kernel.buffers, fp64=fp64, narrow_index=not target.is_cpu)
    params, setup = buffer_params(kernel)
    for line in setup:
        out.emit(line)
    wg = WX * WY
    out.emit("const int tx = get_local_id(0), ty = get_local_id(1);")
    out.emit(f"const int lid = ty * {WX} + tx;")
    out.emit(f"const long n0 = get_group_id(0) * {tn}L, m0 = get_group_id(1) * {tm}L;")
    batch = list(kernel.batch)
    nbatch = math.prod(v.size for v in batch)
    if batch:
        out.emit("const long bt = get_group_id(2);")
        stride = 1
        for v in reversed(batch):
            q = "bt" if stride == 1 else f"(bt / {stride}L)"
            out.emit(f"const long {cv(v)} = {q}{'' if v is batch[0] else f' % {v.size}L'};")
            p.vars[v] = cv(v)
            stride *= v.size
    pad = 0 if target.is_cpu else 1
    out.emit(f"__local {ty} As[{tk}][{tm + pad}];")
    out.emit(f"__local {ty} Bs[{tk}][{tn + pad}];")
    for i in range(rm):
        out.emit(" ".join(f"{ty} c{i}_{j} = {literal(0, dtype)};" for j in range(rn)))
    out.open(f"for (long k0 = 0; k0 < {K}L; k0 += {tk}L)")
    # A[m, k] staged as As[k][m]; B[k, n] as Bs[k][n]
    _stage(out, p, kernel.a, mv, kv, M, K, "m0", "k0", "As", _unit_stride(kernel.a, kv), wg,
           tm, tk, dtype)
    _stage(out, p, kernel.b, nv, kv, N, K, "n0", "k0", "Bs", _unit_stride(kernel.b, kv), wg,
           tn, tk, dtype)
    out.emit("barrier(CLK_LOCAL_MEM_FENCE);")
    out.open(f"for (int kk = 0; kk < {tk}; kk++)")
    for i in range(rm):
        out.emit(f"const {ty} ra{i} = As[kk][ty + {WY * i}];")
    for j in range(rn):
        out.emit(f"const {ty} rb{j} = Bs[kk][tx + {WX * j}];")
    for i in range(rm):
        out.emit(" ".join(f"c{i}_{j} = ra{i} * rb{j} + c{i}_{j};" for j in range(rn)))
    out.close()
    out.emit("barrier(CLK_LOCAL_MEM_FENCE);")
    out.close()
    # epilogue: each of the work-item's outputs through the kernel's stores
    for i in range(rm):
        for j in range(rn):
            out.open("")
            p.push()
            out.emit(f"const long {cv(mv)} = m0 + ty + {WY * i};")
            out.emit(f"const long {cv(nv)} = n0 + tx + {WX * j};")
            p.vars[mv], p.vars[nv] = cv(mv), cv(nv)
            conds = ([f"{cv(mv)} < {M}L"] if M % tm else []) + ([f"{cv(nv)} < {N}L"] if N % tn else [])
            if conds:
                out.open(f"if ({' && '.join(conds)})")
            p.accs["acc"] = f"c{i}_{j}"
            for s in kernel.epilogue:
                emit_store(p, s)
            if conds:
                out.close()
            p.pop()
            out.close()
    text = _function(kernel.name, params, out, (WX, WY))
    glob = (-(-N // tn) * WX, -(-M // tm) * WY, max(nbatch, 1))
    kind = f"matmul tile {tm}x{tn}x{tk}, {rm}x{rn} per work-item"
    return _printed(kernel, kind, p, text, [Launch(kernel.name, glob, (WX, WY, 1))])


__all__ = ["print_matmul_kernel", "choose_tiles", "Tiles"]
