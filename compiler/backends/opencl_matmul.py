"""OpenCL C for ``MatmulKernel``: a local-memory tiled, register-tiled matmul.

``C[b, m, n] = sum_k A[b, m, k] * B[b, k, n]``, then the epilogue stores (bias,
activation) reading the sum as ``acc("acc")``. A work-group of ``WX x WY`` work-items
computes a ``TM x TN`` tile of C (``TM = WY*RM``, ``TN = WX*RN``); each work-item holds
an ``RM x RN`` register tile: rows ``ty + WY*i``, columns ``tx + WX*j``, so stores of
neighbouring work-items are neighbouring addresses. Per ``TK``-deep step of k the group:

1. stages A's ``TM x TK`` and B's ``TK x TN`` blocks into local memory, each element
   evaluated from the operand *expression* once (a transposed operand, an unfold window
   of an implicit-GEMM convolution or a fused producer costs its index arithmetic once
   per block, not once per use); work-items walk each block along the operand's
   unit-stride dimension, so the global reads are coalesced; positions past the edges
   read 0;
2. after a barrier, runs ``TK`` steps of ``RM`` + ``RN`` local reads feeding ``RM*RN``
   multiply-adds (contracted to FMAs by the driver).

Shapes (``choose_tiles``, a function of the shape and the device's ``Target`` only):

- general products: ``16 x 16`` work-items, register tiles up to ``4 x 4``, shrunk for
  small matrices so that padding stays small and the device gets enough work-groups;
- few rows (``M <= 16``: a convolution's output channels, with the batch folded into
  N): one row of ``WX`` work-items (``WY = 1``), each holding *all* ``M`` rows of its
  columns (``RM = M``, so nothing is padded in M), ``WX`` and ``RN`` chosen for the
  least padding in N; the A reads of the inner loop are then the same address for the
  whole group (a broadcast), the B reads consecutive;
- ``TK`` is K itself for short products and otherwise an even cut of K where one exists,
  so the k loop needs no edge test;
- split-K: when the output tiles are too few for the device (a convolution's weight
  gradient: a few rows and columns, K = batch x positions) and the product is big, a
  first launch (``<name>``) gives each work-group one of ``P`` consecutive K pieces
  of one tile and writes its partial sums to a workspace (``CLLaunch.scratch``), and a
  second launch (``<name>_reduce``, one work-item per output) adds the ``P`` partials in
  piece order and runs the epilogue. The pieces depend on the shape and the device
  only, so results do not depend on timing or scheduling.

On GPUs local memory is the on-chip scratchpad; on CPU runtimes it is cache-resident
memory and the staging is BLIS-style packing, while the driver's vectoriser packs the
work-items of a row into SIMD lanes (B reads become vector loads, A reads broadcasts;
since the A reads are the same for all lanes, a CPU keeps A k-contiguous in local memory
when it is so in global memory, and stages it without a transposing store). The staging
loops give each work-item fixed positions along the operand's contiguous dimension, so
the index arithmetic of an unfold window is loop-invariant (a flat ``e / cols, e % cols``
walk kept Intel's vectoriser from seeing consecutive lanes: 10x slower staging), and
index arithmetic stays 64-bit on CPUs (measured faster there than ``int``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..kernel_ir import expr as ex
from ..kernel_ir.kernels import MatmulKernel
from .opencl_loops import Launch, _function, cv, emit_store, next_pow2, printed_kernel
from .opencl_printer import ExprPrinter, Lines, buffer_params, check_fp64, ctype, literal

WX = WY = 16
A_MK = True                  # CPUs: A staged k-contiguous (see print_matmul_kernel)
SMALL_M = 16                 # up to this many rows, one work-item holds a whole column
MAX_ACC = 16                 # register-tile accumulators per work-item on the few-rows path
SPLIT_K = True
SPLIT_K_MIN_FLOPS = 4_000_000     # below this a product is not worth a second launch
SPLIT_K_PIECE_FLOPS = 1_000_000   # at least this much work per K piece


@dataclass(frozen=True)
class Tiles:
    rm: int
    rn: int
    tk: int
    wx: int = WX
    wy: int = WY
    pieces: int = 1          # split-K: K pieces per output tile
    kpiece: int = 0          # split-K: K length of a piece (a multiple of tk)

    @property
    def tm(self):
        return self.wy * self.rm

    @property
    def tn(self):
        return self.wx * self.rn


def _local_bytes(t, tk, tm, tn, itemsize):
    pad = 0 if t.is_cpu else 1
    return tk * (tm + pad + tn + pad) * itemsize


def _few_rows(m, n, k, batch, target, tk, itemsize):
    """``(wx, rn)`` for a product of ``m <= SMALL_M`` rows: least padding in N, then
    enough work-groups (counting split-K's), then the widest register tile and group."""
    lo = min(target.simd, target.max_work_group_size)
    hi = min(128 if target.is_cpu else 256, target.max_work_group_size)
    best = None
    rn = 1
    while m * rn <= MAX_ACC and rn <= 4:
        wx = lo
        while wx <= hi:
            tn = wx * rn
            if _local_bytes(target, tk, m, tn, itemsize) <= target.local_mem_size // 2 or \
                    (wx == lo and rn == 1):
                groups = batch * -(-n // tn)
                # too few work-groups only counts if split-K will not make more
                groups *= split_k(groups, k, tk, 2 * groups * m * tn * k, target)[0]
                key = (-(-n // tn) * tn, groups < target.min_groups and tn > lo, -rn, -wx)
                if best is None or key < best[0]:
                    best = (key, wx, rn)
            wx *= 2
        rn *= 2
    return best[1], best[2]


def choose_tiles(kernel: MatmulKernel, target) -> Tiles:
    m, n, k = kernel.m.size, kernel.n.size, kernel.k.size
    batch = math.prod(v.size for v in kernel.batch)
    itemsize = kernel.dtype.itemsize
    tk0 = target.matmul_tk
    # k step: all of a short K; else an even cut of K if there is one
    steps = max(-(-k // tk0), 1)
    tk = max(k, 1) if k <= tk0 else (-(-k // steps) if k % -(-k // steps) == 0 else tk0)
    if m <= SMALL_M:
        wx, rn = _few_rows(m, n, k, batch, target, tk, itemsize)
        wy, rm = 1, max(m, 1)
    else:
        wx = wy = WX
        rm = rn = 4

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
    tiles = batch * -(-m // (wy * rm)) * -(-n // (wx * rn))
    # a small tile takes deeper k steps, so that each barrier pair covers as much work
    # as a full 64 x 64 x tk0 step (fewer, longer steps: weight gradients)
    tm, tn = wy * rm, wx * rn
    grow = tk == tk0
    while (grow and 2 * tk * (tm + tn) <= 128 * tk0 and 2 * tk <= k
           and _local_bytes(target, 2 * tk, tm, tn, itemsize) <= target.local_mem_size // 2):
        tk *= 2
    pieces, kpiece = split_k(tiles, k, tk, 2 * batch * m * n * k, target)
    return Tiles(rm, rn, tk, wx, wy, pieces, kpiece)


def split_k(tiles, k, tk, flops, target):
    """``(pieces, piece length)``: 1 piece unless the output tiles are too few to keep
    the device busy (fewer than ``4 * min_groups``, about 8 work-groups per compute
    unit) and the product is big. Depends on the shape and the device only."""
    steps = -(-k // tk) if k else 0
    want = 4 * target.min_groups
    if not SPLIT_K or tiles >= want or steps < 2 or flops < SPLIT_K_MIN_FLOPS:
        return 1, 0
    pieces = max(1, min(steps, -(-want // tiles), flops // (tiles * SPLIT_K_PIECE_FLOPS)))
    per = -(-steps // pieces)                # k steps per piece
    pieces = -(-steps // per)                # no empty piece
    if pieces < 2:
        return 1, 0
    return pieces, per * tk


def _eval_index(index, env):
    """The value of an index at the point ``env`` (Var -> int, others 0); None if it
    depends on data."""
    from ..kernel_ir.index import FloorDiv, Mod, Var
    total = index.const
    for atom, c in index.terms:
        if type(atom) is Var:
            v = env.get(atom, 0)
        elif type(atom) in (FloorDiv, Mod):
            inner = _eval_index(atom.arg, env)
            if inner is None:
                return None
            v = inner // atom.d if type(atom) is FloorDiv else inner % atom.d
        else:
            return None
        total += c * v
    return total


def _run(index, var, limit=64):
    """How many steps along ``var`` from the origin move the address by exactly one
    element (an unfold window's ``k % 5`` gives 4, a row-major row its length)."""
    if index.coeff(var) == 1 and not any(var in a.arg.atoms() for a, _ in index.terms
                                         if hasattr(a, "arg")):
        return min(var.size - 1, limit)
    prev = _eval_index(index, {})
    run = 0
    while prev is not None and run < min(var.size - 1, limit):
        nxt = _eval_index(index, {var: run + 1})
        if nxt is None or nxt - prev != 1:
            break
        prev, run = nxt, run + 1
    return run


def walks_along_k(e: ex.Expr, rows, cols):
    """Walk the staged block along ``cols`` (k) rather than ``rows``? Along whichever
    dimension the operand's largest load is contiguous for longer."""
    loads = sorted(ex.loads([e]), key=lambda l: -l.args[1].hi)
    if not loads:
        return False
    index = loads[0].args[1]
    return _run(index, cols) > _run(index, rows)


def stage_block(out, p, operand, rows, cols, rows_total, cols_total, r0, c0, array, fast_cols, wx,
                wy, tile_rows, tile_cols, dtype, row_major=False):
    """Copy the ``tile_rows x tile_cols`` block of ``operand`` (a function of the Vars
    ``rows``/``cols``) at ``(r0, c0)`` into ``array[col][row]`` (k-major for both operands).

    Work-item ``(tx, ty)`` copies the positions ``tx + wx*i`` along the operand's
    unit-stride dimension (``fast_cols``: k) and ``ty + wy*j`` along the other: lanes of a
    row of work-items read consecutive addresses (coalesced on GPUs, vector loads on
    CPUs), and the index arithmetic of the outer position is loop-invariant in the inner
    loop (an unfold window's divisions are done once per position, not per element)."""
    if fast_cols:
        fast, fast_n, slow, slow_n = "cc", tile_cols, "rr", tile_rows
    else:
        fast, fast_n, slow, slow_n = "rr", tile_rows, "cc", tile_cols
    out.open(f"for (int {fast} = tx; {fast} < {fast_n}; {fast} += {wx})")
    out.open(f"for (int {slow} = {'ty' if wy > 1 else 0}; {slow} < {slow_n}; {slow} += {wy})")
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
    out.emit(f"{array}[{'rr][cc' if row_major else 'cc][rr'}] = {value};")
    out.close()
    out.close()


def bind_batch(out, p, batch, bt):
    stride = 1
    for v in reversed(batch):
        q = bt if stride == 1 else f"({bt} / {stride}L)"
        out.emit(f"const long {cv(v)} = {q}{'' if v is batch[0] else f' % {v.size}L'};")
        p.vars[v] = cv(v)
        stride *= v.size


def open_k_steps(out, pieces, K, tk):
    """Open the loop over the ``tk``-deep steps of k: all of K, or (split-K) this group's
    piece ``[kbeg, kend)``."""
    if pieces > 1:
        out.open(f"for (long k0 = kbeg; k0 < kend; k0 += {tk}L)")
    else:
        out.open(f"for (long k0 = 0; k0 < {K}L; k0 += {tk}L)")


def store_epilogue(p, kernel, acc):
    """The kernel's epilogue stores for the output whose sum is the C value ``acc``."""
    p.accs["acc"] = acc
    for s in kernel.epilogue:
        emit_store(p, s)


def at_output(out, p, kernel, m, n, guard_m, guard_n, body):
    """Bind the output position ``(m, n)`` (C expressions) and print ``body()`` there,
    behind the edge checks ``guard_m``/``guard_n`` ask for."""
    mv, nv = kernel.m, kernel.n
    out.emit(f"const long {cv(mv)} = {m};")
    out.emit(f"const long {cv(nv)} = {n};")
    p.vars[mv], p.vars[nv] = cv(mv), cv(nv)
    conds = ([f"{cv(mv)} < {mv.size}L"] if guard_m else []) + \
        ([f"{cv(nv)} < {nv.size}L"] if guard_n else [])
    if conds:
        out.open(f"if ({' && '.join(conds)})")
    body()
    if conds:
        out.close()


def print_matmul_kernel(kernel: MatmulKernel, target, fp64):
    check_fp64(kernel, fp64)
    tiles = choose_tiles(kernel, target)
    rm, rn, tk, tm, tn = tiles.rm, tiles.rn, tiles.tk, tiles.tm, tiles.tn
    wx, wy, pieces = tiles.wx, tiles.wy, tiles.pieces
    mv, nv, kv = kernel.m, kernel.n, kernel.k
    M, N, K = mv.size, nv.size, kv.size
    dtype = kernel.dtype
    ty = ctype(dtype)
    out = Lines()
    p = ExprPrinter(out, kernel.buffers, fp64=fp64, narrow_index=not target.is_cpu)
    params, setup = buffer_params(kernel)
    if pieces > 1:
        params = params + [f"__global {ty}* restrict ws"]
    for line in setup:
        out.emit(line)
    if wy > 1:
        out.emit("const int tx = get_local_id(0), ty = get_local_id(1);")
        out.emit(f"const int lid = ty * {wx} + tx;")
    else:
        out.emit("const int tx = get_local_id(0), ty = 0;")
        out.emit("const int lid = tx;")
    out.emit(f"const long n0 = get_group_id(0) * {tn}L, m0 = get_group_id(1) * {tm}L;")
    batch = list(kernel.batch)
    nbatch = math.prod(v.size for v in batch)
    if pieces > 1:
        out.emit(f"const long kp = get_group_id(2) % {pieces}L;")
        out.emit(f"const long bt = get_group_id(2) / {pieces}L;")
        out.emit(f"const long kbeg = kp * {tiles.kpiece}L;")
        out.emit(f"const long kend = min(kbeg + {tiles.kpiece}L, {K}L);")
    elif batch:
        out.emit("const long bt = get_group_id(2);")
    if batch:
        bind_batch(out, p, batch, "bt")
    pad = 0 if target.is_cpu else 1
    fast_a = walks_along_k(kernel.a, mv, kv)
    # CPUs: the A reads of the inner loop are the same for the lanes of a row of
    # work-items (a broadcast), so A can keep its own k-contiguous layout in local memory
    # and be staged without a transposing store
    a_mk = A_MK and target.is_cpu and fast_a
    if a_mk:
        out.emit(f"__local {ty} As[{tm}][{tk}];")
    else:
        out.emit(f"__local {ty} As[{tk}][{tm + pad}];")
    out.emit(f"__local {ty} Bs[{tk}][{tn + pad}];")
    for i in range(rm):
        out.emit(" ".join(f"{ty} c{i}_{j} = {literal(0, dtype)};" for j in range(rn)))
    open_k_steps(out, pieces, K, tk)
    # A[m, k] staged as As[k][m]; B[k, n] as Bs[k][n]
    stage_block(out, p, kernel.a, mv, kv, M, K, "m0", "k0", "As", fast_a, wx, wy, tm, tk, dtype,
                row_major=a_mk)
    stage_block(out, p, kernel.b, nv, kv, N, K, "n0", "k0", "Bs", walks_along_k(kernel.b, nv, kv),
                wx, wy, tn, tk, dtype)
    out.emit("barrier(CLK_LOCAL_MEM_FENCE);")
    out.open(f"for (int kk = 0; kk < {tk}; kk++)")
    for i in range(rm):
        row = f"ty + {wy * i}" if wy > 1 else f"{i}"
        out.emit(f"const {ty} ra{i} = {f'As[{row}][kk]' if a_mk else f'As[kk][{row}]'};")
    for j in range(rn):
        out.emit(f"const {ty} rb{j} = Bs[kk][tx + {wx * j}];")
    for i in range(rm):
        out.emit(" ".join(f"c{i}_{j} = ra{i} * rb{j} + c{i}_{j};" for j in range(rn)))
    out.close()
    out.emit("barrier(CLK_LOCAL_MEM_FENCE);")
    out.close()
    # epilogue: each of the work-item's outputs through the kernel's stores, or (split-K)
    # into this piece's plane of the workspace
    for i in range(rm):
        for j in range(rn):
            out.open("")
            p.push()
            if pieces > 1:
                def body(i=i, j=j):
                    out.emit(f"ws[(kp * {max(nbatch, 1)}L + bt) * {M * N}L + {cv(mv)} * {N}L + "
                             f"{cv(nv)}] = c{i}_{j};")
            else:
                def body(i=i, j=j):
                    store_epilogue(p, kernel, f"c{i}_{j}")
            at_output(out, p, kernel, f"m0 + {f'ty + {wy * i}' if wy > 1 else i}",
                      f"n0 + tx + {wx * j}", M % tm != 0, N % tn != 0, body)
            p.pop()
            out.close()
    text = _function(kernel.name, params, out, (wx, wy))
    glob = (-(-N // tn) * wx, -(-M // tm) * wy, max(nbatch, 1) * pieces)
    kind = f"matmul tile {tm}x{tn}x{tk}, {rm}x{rn} per work-item, {wx}x{wy} work-items"
    launches = [Launch(kernel.name, glob, (wx, wy, 1))]
    scratch = 0
    if pieces > 1:
        kind += f", K in {pieces} pieces of {tiles.kpiece}"
        text += "\n" + print_split_reduce(kernel, target, p, params, setup, pieces, launches)
        scratch = pieces * max(nbatch, 1) * M * N * dtype.itemsize
    printed = printed_kernel(kernel, kind, p, text, launches)
    printed.scratch = scratch        # bytes of split-K workspace (CLLaunch.scratch)
    return printed


def print_split_reduce(kernel, target, p, params, setup, pieces, launches):
    """The second launch of a split-K product: one work-item per output adds the
    ``pieces`` partial sums in piece order, then runs the epilogue."""
    mv, nv = kernel.m, kernel.n
    M, N = mv.size, nv.size
    batch = list(kernel.batch)
    nbatch = max(math.prod(v.size for v in batch), 1)
    ty = ctype(kernel.dtype)
    out = Lines()
    saved = p.out, p.scopes, p.vars, p.accs
    p.out, p.scopes, p.vars, p.accs = out, [{}], {}, {}
    for line in setup:
        out.emit(line)
    rx = min(64, max(16, next_pow2(N)), target.max_work_group_size)
    out.emit(f"const long {cv(nv)} = get_global_id(0);")
    if N % rx:
        out.emit(f"if ({cv(nv)} >= {N}L) return;")
    out.emit(f"const long {cv(mv)} = get_global_id(1);")
    out.emit("const long bt = get_global_id(2);")
    if batch:
        bind_batch(out, p, batch, "bt")
    p.vars[mv], p.vars[nv] = cv(mv), cv(nv)
    out.emit(f"const long at = bt * {M * N}L + {cv(mv)} * {N}L + {cv(nv)};")
    out.emit(f"{ty} s = ws[at];")
    out.open(f"for (long kp = 1; kp < {pieces}L; kp++)")
    out.emit(f"s += ws[kp * {nbatch * M * N}L + at];")
    out.close()
    p.accs["acc"] = "s"
    for s in kernel.epilogue:
        emit_store(p, s)
    p.out, p.scopes, p.vars, p.accs = saved
    name = f"{kernel.name}_reduce"
    launches.append(Launch(name, (-(-N // rx) * rx, M, nbatch), (rx, 1, 1)))
    return _function(name, params, out, (rx,))


__all__ = ["print_matmul_kernel", "choose_tiles", "split_k", "Tiles", "stage_block", "bind_batch",
           "walks_along_k", "at_output", "store_epilogue", "print_split_reduce", "open_k_steps"]
