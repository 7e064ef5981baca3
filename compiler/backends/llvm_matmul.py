"""The generated matmul: packed, blocked, register-tiled and vectorised (BLIS-style).

``C[b, m, n] = sum_k A[b, m, k] * B[b, k, n]`` is cut into tasks (batch x column block x
row block) shared among threads. Per task and per ``KC``-deep slice of k:

- *pack* B's ``KC x NC`` block into ``NR``-wide column panels and A's ``MC x KC`` block
  into ``MR``-tall row panels. Packing evaluates the operand *expressions*, so a
  transposed operand, an unfold window (implicit-GEMM convolution) or a cheap
  elementwise producer is read in place; the loop order follows the operand's unit
  stride. Edges are zero-padded to full panels.
- the *micro-kernel* multiplies one A panel by one B panel into ``MR x NR``
  accumulators held in vector registers (``MR`` broadcasts and ``NR/VW`` vector loads
  feed ``MR*NR/VW`` FMAs per k step), written with explicit vector types so the
  register tile does not depend on the vectoriser's mood.
- the *epilogue* reads the accumulator tile and evaluates the kernel's stores (bias,
  activation) element by element, vectorised by LLVM over the tile's columns.

With K deeper than ``KC`` the partial sums live in a per-thread tile buffer until the
last slice. Consecutive tasks of one thread share the B block, which is then packed
once.

*Split-K.* A product with fewer tasks than threads and a long K (a convolution's weight
gradient: ``M x N`` = channels x taps, K = batch x positions) would run on one thread.
Its K slices are then cut into ``pieces`` (``split_k_pieces``) and the kernel runs in two
phases within one launch: chunks ``[0, tasks*pieces)`` each compute one (task, piece)
partial product, accumulated directly in a workspace shared by all threads (its address
is in the header before each thread's scratch, ``runtime.executor``); the remaining
``tasks`` chunks each wait until the first phase's chunks are all finished (the
runner's ``finish`` counter), add the task's partials in piece order and run the
epilogue. One launch rather than two kernels needs no new graph buffer and no extra
launch; it cannot deadlock because chunks are claimed in order, so every partial is
held by a thread that never waits. Pieces are per-piece (not per-thread) and their
count depends only on the shape, so the sum is the same on any number of threads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..dtypes import FLOAT
from ..kernel_ir import expr as ex
from ..kernel_ir.kernels import MatmulKernel
from .llvm_packing import RUN_MIN_AVERAGE, RunCopy, SeparableOperand, pack_loops
from .llvm_printer import (ExprPrinter, FunctionWriter, body_signature, chunk_bounds, chunk_loop,
                           emit_store, lltype, literal)


@dataclass(frozen=True)
class Blocking:
    lanes: int     # vector width in elements
    mr: int        # rows of the register tile
    nr: int        # columns of the register tile (a multiple of lanes)
    kc: int        # depth of a packed slice
    mc: int        # rows per task
    nc: int        # columns per task
    pieces: int = 1  # split-K: K slices cut into this many pieces (1: no split)

    def scratch(self, itemsize, slices):
        """Per-thread scratch layout in bytes: (tile, A panel, B block, C partials, total)."""
        def up(n):
            return (n * itemsize + 63) // 64 * 64
        tile = 0
        a = tile + up(self.mr * self.nr)
        b = a + up(self.mc * self.kc)
        c = b + up(self.kc * self.nc)
        total = c + (up(self.mc * self.nc) if slices > 1 and self.pieces == 1 else 0)
        return tile, a, b, c, total

    def partial_elems(self, itemsize):
        """Elements of one split-K partial product (a task's ``MC x NC`` tile, rounded up
        to whole cache lines so no two partials share one)."""
        per_line = 64 // itemsize
        return -(-self.mc * self.nc // per_line) * per_line


def choose_blocking(kernel: MatmulKernel, vector_bits: int, max_threads=4) -> Blocking:
    itemsize = kernel.dtype.itemsize
    lanes = max(vector_bits // (8 * itemsize), 1)
    if vector_bits >= 512:
        mr, nrv = 8, 3
    elif vector_bits >= 256:
        mr, nrv = 6, 2
    else:
        mr, nrv = 4, 2
    m, n, k = kernel.m.size, kernel.n.size, kernel.k.size
    if n <= (nrv - 1) * lanes:
        # few columns (a weight gradient's kernel taps): narrower register tiles waste
        # fewer FMAs and packed zeros on the padding
        nrv = max(1, -(-n // lanes))
    nr = nrv * lanes
    batch = math.prod(v.size for v in kernel.batch)
    kc = -(-k // max(-(-k // 512), 1)) if k else 1    # balanced slices of at most 512
    kc = -(-kc // 8) * 8
    mc = max(mr, min(128 // mr * mr, -(-m // mr) * mr))
    nc = max(nr, min(nr * 10, -(-n // nr) * nr))

    def tasks(mc, nc):
        return batch * -(-m // mc) * -(-n // nc)

    def repacking(mc, nc):
        """Elements packed in total: B once per row block, A once per column block."""
        return batch * (-(-m // mc) * k * n + -(-n // nc) * m * k)
    # enough tasks to share among threads, cutting rows or columns, whichever repacks less
    want = max_threads
    while tasks(mc, nc) < want and (nc > 4 * nr or mc > 4 * mr):
        by_n = (mc, max(nr, (nc // 2) // nr * nr)) if nc > 4 * nr else None
        by_m = (max(mr, (mc // 2) // mr * mr), nc) if mc > 4 * mr else None
        options = [o for o in (by_n, by_m) if o is not None]
        mc, nc = min(options, key=lambda o: repacking(*o))
    pieces = split_k_pieces(tasks(mc, nc), max(-(-k // kc), 1), 2 * batch * m * n * k,
                            max_threads)
    return Blocking(lanes, mr, nr, kc, mc, nc, pieces)


SPLIT_K = True               # cut K among threads when there are too few output tiles
SPLIT_K_MIN_FLOPS = 6_000_000      # below this a kernel is not worth splitting
SPLIT_K_PIECE_FLOPS = 1_000_000    # ... nor cut into pieces smaller than this


def split_k_pieces(tasks, slices, flops, max_threads):
    """How many pieces to cut the ``slices`` K slices of every task into: 1 (no split)
    unless the tasks are fewer than ``max_threads`` (a weight gradient: a few rows and
    columns, a long K) and the kernel is big. About two pieces per thread per task keeps
    a descheduled thread from holding up the others (pieces are claimed dynamically)
    while the partials to reduce stay few. A function of the kernel's shape and the
    constant ``max_threads`` only, never of the thread count at run time: the reduction
    order, hence the result, is the same on any number of threads."""
    if not SPLIT_K or tasks >= max_threads or slices < 2 or flops < SPLIT_K_MIN_FLOPS:
        return 1
    want = -(-2 * max_threads // tasks)
    return max(1, min(slices, want, flops // (tasks * SPLIT_K_PIECE_FLOPS)))


def _microkernel(symbol, ty, lanes, mr, nrv):
    """``out[mr][nr] (+)= sum_k ap[k][mr] * bp[k][nr]`` with accumulators in registers."""
    nr = nrv * lanes
    vt = f"<{lanes} x {ty}>"
    fma = f"@llvm.fma.v{lanes}{'f32' if ty == 'float' else 'f64'}"
    acc = [(i, j) for i in range(mr) for j in range(nrv)]
    L = [f"define internal void @{symbol}.mk(ptr noalias %ap, ptr noalias %bp, i64 %kc, "
         f"ptr noalias %out, i1 %accumulate) alwaysinline nounwind {{",
         "entry:",
         "  br i1 %accumulate, label %load, label %start",
         "load:"]
    for i, j in acc:
        L += [f"  %lp{i}_{j} = getelementptr {ty}, ptr %out, i64 {i * nr + j * lanes}",
              f"  %l{i}_{j} = load {vt}, ptr %lp{i}_{j}, align 4"]
    L += ["  br label %start", "start:"]
    for i, j in acc:
        L.append(f"  %init{i}_{j} = phi {vt} [%l{i}_{j}, %load], [zeroinitializer, %entry]")
    L += ["  %any = icmp sgt i64 %kc, 0", "  br i1 %any, label %loop, label %done", "loop:",
          "  %k = phi i64 [0, %start], [%kn, %loop]"]
    for i, j in acc:
        L.append(f"  %a{i}_{j} = phi {vt} [%init{i}_{j}, %start], [%n{i}_{j}, %loop]")
    L.append(f"  %bo = mul i64 %k, {nr}")
    for j in range(nrv):
        L += [f"  %bo{j} = add i64 %bo, {j * lanes}",
              f"  %bq{j} = getelementptr {ty}, ptr %bp, i64 %bo{j}",
              f"  %b{j} = load {vt}, ptr %bq{j}, align 4"]
    L.append(f"  %ao = mul i64 %k, {mr}")
    for i in range(mr):
        L += [f"  %ao{i} = add i64 %ao, {i}",
              f"  %aq{i} = getelementptr {ty}, ptr %ap, i64 %ao{i}",
              f"  %x{i} = load {ty}, ptr %aq{i}",
              f"  %xi{i} = insertelement {vt} poison, {ty} %x{i}, i64 0",
              f"  %xs{i} = shufflevector {vt} %xi{i}, {vt} poison, <{lanes} x i32> zeroinitializer"]
        for j in range(nrv):
            L.append(f"  %n{i}_{j} = call {vt} {fma}({vt} %xs{i}, {vt} %b{j}, {vt} %a{i}_{j})")
    L += ["  %kn = add i64 %k, 1", "  %more = icmp slt i64 %kn, %kc",
          "  br i1 %more, label %loop, label %done", "done:"]
    for i, j in acc:
        L.append(f"  %r{i}_{j} = phi {vt} [%init{i}_{j}, %start], [%n{i}_{j}, %loop]")
    for i, j in acc:
        L += [f"  %rp{i}_{j} = getelementptr {ty}, ptr %out, i64 {i * nr + j * lanes}",
              f"  store {vt} %r{i}_{j}, ptr %rp{i}_{j}, align 4"]
    L += ["  ret void", "}", f"declare {vt} {fma}({vt}, {vt}, {vt})"]
    return "\n".join(L)


def _unit_stride_var(e: ex.Expr, candidates):
    """Which of ``candidates`` (Vars) walks the biggest operand load contiguously."""
    loads = sorted(ex.loads([e]), key=lambda l: -len(l.args[1].terms))
    for load in loads:
        for v in candidates:
            if load.args[1].coeff(v) == 1:
                return v
    return None


def print_matmul_kernel(kernel: MatmulKernel, symbol: str, vector_bits: int, max_threads=4):
    """The body function text, the printer (for helpers/declarations) and scratch bytes."""
    if kernel.dtype.category != FLOAT:
        raise NotImplementedError("the blocked matmul template is for floating point")
    bl = choose_blocking(kernel, vector_bits, max_threads)
    t = kernel.dtype
    ty = lltype(t)
    M, N, K = kernel.m.size, kernel.n.size, kernel.k.size
    batch = list(kernel.batch)
    nbatch = math.prod(v.size for v in batch)
    mb, nb = -(-M // bl.mc), -(-N // bl.nc)
    slices = max(-(-K // bl.kc), 1)
    tile_off, a_off, b_off, c_off, scratch = bl.scratch(t.itemsize, slices)
    total_tasks = nbatch * mb * nb
    flops = 2 * nbatch * M * N * K
    chunks = 1 if flops < 2_000_000 else max(1, min(total_tasks, flops // 1_000_000))

    w = FunctionWriter()
    nbuf = len(kernel.buffers)
    p = ExprPrinter(w, kernel.buffers, {i: f"%buf{i}" for i in range(nbuf)})
    zero = literal(0, t)
    tile = w.op(f"getelementptr i8, ptr %scratch, i64 {tile_off}", "tile")
    ap = w.op(f"getelementptr i8, ptr %scratch, i64 {a_off}", "ap")
    bp = w.op(f"getelementptr i8, ptr %scratch, i64 {b_off}", "bp")
    cacc = w.op(f"getelementptr i8, ptr %scratch, i64 {c_off}", "cacc")

    a_inner = _unit_stride_var(kernel.a, [kernel.m, kernel.k]) or kernel.m
    b_split = SeparableOperand.analyse(kernel.b, kernel.n, kernel.k, w, p, bl.nr)
    a_split = SeparableOperand.analyse(kernel.a, kernel.m, kernel.k, w, p, bl.mr)
    b_runs = RunCopy.analyse(kernel, b_split, w, p, bl)

    def store_elem(ptr, index_val, value):
        q = w.op(f"getelementptr {ty}, ptr {ptr}, i64 {index_val}", "q")
        w.emit(f"store {ty} {value}, ptr {q}, align {t.itemsize}")

    def panel_element(dst, operand, var, first, hint, split, tables, width, pc):
        """``element(k, i)`` of a packed panel: ``dst[k*width + i]`` = the operand at
        ``k = pc + k`` and ``var = first + i`` (0 for the zero-filled padding)."""
        def element(k, i, fill=False):
            if fill:
                v = zero
            else:
                p.vars[kernel.k] = w.op(f"add i64 {pc}, {k}", "kk")
                p.vars[var] = w.op(f"add i64 {first}, {i}", hint)
                if tables:
                    split.use(tables, i)
                v = p.value(operand)
            at = w.op(f"mul i64 {k}, {width}", "o")
            at = w.op(f"add i64 {at}, {i}", "o")
            store_elem(dst, at, v)
        return element

    def pack_b(n0, ncur, pc, kcur):
        """bp[jr*kcur + k*NR + j] = B[b, pc+k, n0+jr+j] (0 past the edge)."""
        panels = w.spans(ncur, bl.nr, "pn")

        def panel(jrb, _):
            p.push()
            jr, jmax = w.span(jrb, bl.nr, ncur, "jr")
            base = w.op(f"mul i64 {jr}, {kcur}", "pb")
            dst = w.op(f"getelementptr {ty}, ptr {bp}, i64 {base}", "pd")
            col0 = w.op(f"add i64 {n0}, {jr}", "nn")
            tables = b_split.tabulate(col0) if b_split else None
            element = panel_element(dst, kernel.b, kernel.n, col0, "nn", b_split, tables,
                                    bl.nr, pc)
            runs = b_runs.build(tables, jmax) if b_runs else None
            if runs is not None:
                # mostly contiguous columns (an unfold window's rows): copy whole runs
                # with masked vector loads instead of gathering element by element
                few = w.op(f"mul i64 {runs[0]}, {RUN_MIN_AVERAGE}", "few")
                few = w.op(f"icmp sle i64 {few}, {jmax}", "few")
                by_runs, by_elem, packed = w.label("runs"), w.label("elems"), w.label("pdone")
                w.emit(f"br i1 {few}, label %{by_runs}, label %{by_elem}")
                w.start(by_runs)
                p.push()
                b_runs.copy(runs, pc, kcur, dst)
                p.pop()
                w.emit(f"br label %{packed}")
                w.start(by_elem)
                p.push()
                pack_loops(w, p, kcur, jmax, bl.nr, True, element)
                p.pop()
                w.emit(f"br label %{packed}")
                w.start(packed)
                p.push()
                b_runs.zero_fill(kcur, jmax, dst)
                p.pop()
            else:
                # B: destination order (rows of a transposed B stay in L1 across 16 k steps)
                pack_loops(w, p, kcur, jmax, bl.nr, True, element)
            p.pop()
            return []
        w.loop("0", panels, panel, hint="jp")

    def pack_a(m0, mcur, pc, kcur):
        """ap[ir*kcur + k*MR + i] = A[b, m0+ir+i, pc+k] (0 past the edge)."""
        panels = w.spans(mcur, bl.mr, "pn")

        def panel(irb, _):
            p.push()
            ir, imax = w.span(irb, bl.mr, mcur, "ir")
            base = w.op(f"mul i64 {ir}, {kcur}", "pa")
            dst = w.op(f"getelementptr {ty}, ptr {ap}, i64 {base}", "pd")
            row0 = w.op(f"add i64 {m0}, {ir}", "mm")
            tables = a_split.tabulate(row0) if a_split else None
            element = panel_element(dst, kernel.a, kernel.m, row0, "mm", a_split, tables,
                                    bl.mr, pc)
            pack_loops(w, p, kcur, imax, bl.mr, a_inner is kernel.m, element)
            p.pop()
            return []
        w.loop("0", panels, panel, hint="ip")

    def epilogue(tile_ptr, mrow, ncol, imax, jmax):
        def row(i, _):
            p.push()
            p.vars[kernel.m] = w.op(f"add i64 {mrow}, {i}", "em")

            def col(j, _):
                p.push()
                p.vars[kernel.n] = w.op(f"add i64 {ncol}, {j}", "en")
                at = w.op(f"mul i64 {i}, {bl.nr}", "o")
                at = w.op(f"add i64 {at}, {j}", "o")
                q = w.op(f"getelementptr {ty}, ptr {tile_ptr}, i64 {at}", "q")
                p.accs["acc"] = w.op(f"load {ty}, ptr {q}, align {t.itemsize}", "acc")
                for s in kernel.epilogue:
                    emit_store(p, s)
                p.pop()
                return []
            w.loop("0", jmax, col, hint="ej")
            p.pop()
            return []
        w.loop("0", imax, row, hint="ei")

    pieces = bl.pieces
    part_elems = bl.partial_elems(t.itemsize)
    workspace = total_tasks * pieces * part_elems * t.itemsize if pieces > 1 else 0
    if pieces > 1:
        # the shared workspace's address sits in the 64 bytes before this thread's scratch
        # (runtime.executor); partial (task, piece) is at element (task*pieces+piece)*part
        wsp = w.op("getelementptr i8, ptr %scratch, i64 -64", "wsp")
        ws = w.op(f"load ptr, ptr {wsp}, align 8", "ws")

    def decode(tk):
        """Batch indexes, first row/column and extents of task ``tk``."""
        mblk = w.op(f"urem i64 {tk}, {mb}", "mblk")
        rest = w.op(f"udiv i64 {tk}, {mb}", "rest")
        nblk = w.op(f"urem i64 {rest}, {nb}", "nblk")
        bidx = w.op(f"udiv i64 {rest}, {nb}", "bidx")
        stride = 1
        for v in reversed(batch):
            q = w.op(f"udiv i64 {bidx}, {stride}", "bq") if stride != 1 else bidx
            p.vars[v] = w.op(f"urem i64 {q}, {v.size}", "bv")
            stride *= v.size
        n0, ncur = w.span(nblk, bl.nc, N, "n0")
        m0, mcur = w.span(mblk, bl.mc, M, "m0")
        return rest, n0, ncur, m0, mcur

    def panels(ncur, mcur, n0, m0, inner):
        """For every ``MR x NR`` register tile of the task: ``inner(jrb, irb, mrow, ncol,
        imax, jmax)`` (column panels outer, as the packed B block is laid out)."""
        npanels = w.spans(ncur, bl.nr, "np")
        mpanels = w.spans(mcur, bl.mr, "mp")

        def jpanel(jrb, _):
            p.push()
            jr, jmax = w.span(jrb, bl.nr, ncur, "jr")
            ncol = w.op(f"add i64 {n0}, {jr}", "ncol")

            def ipanel(irb, _):
                p.push()
                ir, imax = w.span(irb, bl.mr, mcur, "ir")
                mrow = w.op(f"add i64 {m0}, {ir}", "mrow")
                inner(jrb, irb, jr, ir, mrow, ncol, imax, jmax)
                p.pop()
                return []
            w.loop("0", mpanels, ipanel, hint="irb")
            p.pop()
            return []
        w.loop("0", npanels, jpanel, hint="jrb")

    def tile_slot(jrb, irb):
        """Element offset of register tile (jrb, irb) in a task's C partials."""
        per = bl.mc // bl.mr
        slot = w.op(f"mul i64 {jrb}, {per}", "cs")
        slot = w.op(f"add i64 {slot}, {irb}", "cs")
        return w.op(f"mul i64 {slot}, {bl.mr * bl.nr}", "cs")

    def task(tk, carried, piece=None):
        """Task ``tk`` over all of K (then the epilogue), or with ``piece``, over that
        piece of the K slices into its partial in the workspace (no epilogue)."""
        p.push()
        rest, n0, ncur, m0, mcur = decode(tk)
        if piece is None:
            kb0, kb1 = "0", str(slices)
        else:
            kb0, kb1 = chunk_bounds(w, piece, slices, pieces)
            unit = w.op(f"mul i64 {tk}, {pieces}", "unit")
            unit = w.op(f"add i64 {unit}, {piece}", "unit")
            unit = w.op(f"mul i64 {unit}, {part_elems}", "unit")
            part = w.op(f"getelementptr {ty}, ptr {ws}, i64 {unit}", "part")

        def slice_(kb, _):
            p.push()
            pc, kcur = w.span(kb, bl.kc, K, "pc")
            if slices == 1:   # the same B block as this thread's previous task: keep it
                fresh = w.op(f"icmp ne i64 {rest}, {carried[0]}", "fresh")
                pk, done = w.label("packb"), w.label("packed")
                w.emit(f"br i1 {fresh}, label %{pk}, label %{done}")
                w.start(pk)
                p.push()
                pack_b(n0, ncur, pc, kcur)
                p.pop()
                w.emit(f"br label %{done}")
                w.start(done)
            else:
                pack_b(n0, ncur, pc, kcur)
            pack_a(m0, mcur, pc, kcur)

            def inner(jrb, irb, jr, ir, mrow, ncol, imax, jmax):
                boff = w.op(f"mul i64 {jr}, {kcur}", "bo")
                bptr = w.op(f"getelementptr {ty}, ptr {bp}, i64 {boff}", "bptr")
                aoff = w.op(f"mul i64 {ir}, {kcur}", "ao")
                aptr = w.op(f"getelementptr {ty}, ptr {ap}, i64 {aoff}", "aptr")
                if slices == 1:
                    w.emit(f"call void @{symbol}.mk(ptr {aptr}, ptr {bptr}, i64 {kcur}, "
                           f"ptr {tile}, i1 false)")
                    epilogue(tile, mrow, ncol, imax, jmax)
                    return
                slot = tile_slot(jrb, irb)
                ct = w.op(f"getelementptr {ty}, ptr {cacc if piece is None else part}, "
                          f"i64 {slot}", "ct")
                again = w.op(f"icmp ne i64 {kb}, {kb0}", "again")
                w.emit(f"call void @{symbol}.mk(ptr {aptr}, ptr {bptr}, i64 {kcur}, "
                       f"ptr {ct}, i1 {again})")
                if piece is not None:
                    return    # the reduction runs the epilogue
                last = w.op(f"icmp eq i64 {kb}, {slices - 1}", "last")
                ep, skip = w.label("ep"), w.label("noep")
                w.emit(f"br i1 {last}, label %{ep}, label %{skip}")
                w.start(ep)
                p.push()
                epilogue(ct, mrow, ncol, imax, jmax)
                p.pop()
                w.emit(f"br label %{skip}")
                w.start(skip)
            panels(ncur, mcur, n0, m0, inner)
            p.pop()
            return []
        w.loop(kb0, kb1, slice_, hint="kb")
        p.pop()
        return [rest]

    def reduce_task(tk):
        """Sum task ``tk``'s partials in piece order into the tile, then the epilogue:
        always the same additions in the same order, whichever threads made them."""
        p.push()
        rest, n0, ncur, m0, mcur = decode(tk)
        base = w.op(f"mul i64 {tk}, {pieces * part_elems}", "rb")
        first = w.op(f"getelementptr {ty}, ptr {ws}, i64 {base}", "rb")

        def inner(jrb, irb, jr, ir, mrow, ncol, imax, jmax):
            slot = tile_slot(jrb, irb)
            src = w.op(f"getelementptr {ty}, ptr {first}, i64 {slot}", "rs")
            w.emit(f"call void @llvm.memcpy.p0.p0.i64(ptr align 64 {tile}, ptr align 64 {src}, "
                   f"i64 {bl.mr * bl.nr * t.itemsize}, i1 false)")

            def add_piece(q, _):
                off = w.op(f"mul i64 {q}, {part_elems}", "ro")
                src_q = w.op(f"getelementptr {ty}, ptr {src}, i64 {off}", "rq")

                def elem(e, _):
                    a = w.op(f"getelementptr {ty}, ptr {tile}, i64 {e}", "ra")
                    b = w.op(f"getelementptr {ty}, ptr {src_q}, i64 {e}", "rb")
                    x = w.op(f"load {ty}, ptr {a}, align {t.itemsize}", "rx")
                    y = w.op(f"load {ty}, ptr {b}, align {t.itemsize}", "ry")
                    s = w.op(f"fadd {ty} {x}, {y}", "rs")
                    w.emit(f"store {ty} {s}, ptr {a}, align {t.itemsize}")
                    return []
                w.loop("0", str(bl.mr * bl.nr), elem, hint="re")
                return []
            w.loop("1", str(pieces), add_piece, hint="rq")
            epilogue(tile, mrow, ncol, imax, jmax)
        panels(ncur, mcur, n0, m0, inner)
        p.pop()

    if pieces == 1:
        def work(c):
            t0, t1 = chunk_bounds(w, c, total_tasks, chunks)
            w.loop(t0, t1, task, carried=[("i64", "-1")], hint="task")
    else:
        # split-K, one kernel in two phases: chunks [0, units) are (task, piece) partial
        # products; chunks [units, units + tasks) each wait until every partial is
        # finished (chunks are claimed in order, so all partials have been claimed by
        # threads that never wait: no deadlock), then reduce one task and run its epilogue
        units = total_tasks * pieces
        chunks = units + total_tasks
        p.declare("declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1 immarg)")

        def work(c):
            partial = w.op(f"icmp slt i64 {c}, {units}", "partial")
            ph1, ph2, joined = w.label("partial"), w.label("reduce"), w.label("phases")
            w.emit(f"br i1 {partial}, label %{ph1}, label %{ph2}")
            w.start(ph1)
            tk = w.op(f"udiv i64 {c}, {pieces}", "tk")
            piece = w.op(f"urem i64 {c}, {pieces}", "piece")
            task(tk, ["-1"], piece)
            w.emit(f"br label %{joined}")
            w.start(ph2)
            wait_at_least(w, p, "%finish", units)
            tk = w.op(f"sub i64 {c}, {units}", "tk")
            reduce_task(tk)
            w.emit(f"br label %{joined}")
            w.start(joined)
    chunk_loop(w, chunks, work)
    body = [body_signature(symbol, kernel.buffers), "entry:"] + w.allocas + w.lines + ["}"]
    p.threads = chunks
    p.workspace = workspace
    text = "\n".join(body) + "\n\n" + _microkernel(symbol, ty, bl.lanes, bl.mr, bl.nr // bl.lanes)
    return text, p, scratch, bl


SPINS_BEFORE_YIELD = 2000


def wait_at_least(w, p, counter, target):
    """Spin (pausing, then yielding the CPU) until the atomic ``counter`` reaches
    ``target``; the acquire load makes the writes of the chunks it counts visible."""
    p.declare("declare i32 @sched_yield()")
    p.declare("declare void @llvm.x86.sse2.pause()")
    pre = w.block
    spin, pause, yld, go = (w.label(h) for h in ("spin", "pause", "yield", "waited"))
    n, n1 = w.tmp("spins"), w.tmp("spins")
    w.emit(f"br label %{spin}")
    w.start(spin)
    w.emit(f"{n} = phi i64 [0, %{pre}], [{n1}, %{pause}], [0, %{yld}]")
    now = w.op(f"load atomic i64, ptr {counter} acquire, align 8", "now")
    ok = w.op(f"icmp sge i64 {now}, {target}", "ok")
    w.emit(f"br i1 {ok}, label %{go}, label %{pause}")
    w.start(pause)
    w.emit("call void @llvm.x86.sse2.pause()")
    w.emit(f"{n1} = add i64 {n}, 1")
    tired = w.op(f"icmp ugt i64 {n1}, {SPINS_BEFORE_YIELD}", "tired")
    w.emit(f"br i1 {tired}, label %{yld}, label %{spin}")
    w.start(yld)
    w.op("call i32 @sched_yield()", "y")
    w.emit(f"br label %{spin}")
    w.start(go)
