"""Packing helpers of the generated matmul (``llvm_matmul``): how operand panels are
copied into the contiguous layout the micro-kernel reads.

- ``SeparableOperand``: addressing that splits into ``f(panel var) + g(k)`` (an unfold
  window) gets ``f`` tabulated once per panel, so packing adds instead of dividing.
- ``RunCopy``: B panels whose columns are runs of consecutive input elements (a
  convolution's windows) are copied run by run with masked vector loads and stores.
- ``pack_loops``: the plain element-by-element packing loop nest, unit stride innermost.
"""
from __future__ import annotations

from ..dtypes import FLOAT
from ..kernel_ir.index import Index, Var
from .llvm_printer import literal, lltype

class SeparableOperand:
    """Addressing that splits into ``f(panel var) + g(k)`` (an unfold window: the column's
    spatial position plus the row's channel/offset), with div/mod in ``f``: per panel,
    ``f`` is computed once per column into a small stack table, so the packing loop adds
    a table entry to ``g(k)`` instead of dividing for every element."""

    def __init__(self, w, p, var, parts, width):
        self.w, self.p, self.var, self.parts, self.width = w, p, var, parts, width

    @staticmethod
    def analyse(e, var, k, w, p, width):
        from ..kernel_ir.simplify import _indexes_of_expr
        indexes, seen = [], set()
        _indexes_of_expr(e, indexes, seen)
        parts = {}
        for index in indexes:
            if index.has_dyn():
                return None
            own, rest = {}, {}
            for atom, c in index.terms:
                names = set(Index.of(atom).atoms())
                if var in names and (names - {var}):
                    return None                      # a term mixes the panel var with others
                (own if names == {var} else rest)[atom] = c
            needs_division = any(type(a) is not Var for a in own)
            if own and needs_division:
                parts[index] = (Index._build(own, 0), Index._build(rest, index.const))
        if not parts:
            return None
        return SeparableOperand(w, p, var, parts, width)

    def tabulate(self, first):
        """Fill one table per distinct panel-var part for ``var = first + j``, j < width."""
        w, p = self.w, self.p
        tables = {}
        for own, _ in self.parts.values():
            if own in tables:
                continue
            table = w.alloca("i64", self.width)

            def fill(j, _, own=own, table=table):
                p.push()
                p.vars[self.var] = w.op(f"add i64 {first}, {j}", "tv")
                v = p.index(own)
                q = w.op(f"getelementptr i64, ptr {table}, i64 {j}", "tq")
                w.emit(f"store i64 {v}, ptr {q}, align 8")
                p.pop()
                return []
            w.loop("0", str(self.width), fill, hint="tab")
            tables[own] = table
        return tables

    def use(self, tables, j):
        """Make the printer read each split index as ``rest + table[j]`` in this scope."""
        w, p = self.w, self.p
        for index, (own, rest) in self.parts.items():
            def make(own=own, rest=rest):
                q = w.op(f"getelementptr i64, ptr {tables[own]}, i64 {j}", "tq")
                t = w.op(f"load i64, ptr {q}, align 8", "tv")
                r = p.index(rest)
                return w.op(f"add i64 {r}, {t}", "ix")
            p.overrides[index] = make


RUN_COPY = True      # pack unfold-window B panels by runs (see RunCopy)
RUN_MIN_AVERAGE = 5  # ... when the panel's runs are at least this long on average
RUN_ROWS = 32        # rows of a B panel copied run by run (a block stays in L1)


class RunCopy:
    """Packing a B panel whose element is one plain load at ``rest(k) + table[j]`` (an
    unfold window: stride-1 columns of one output row are consecutive input elements) as
    runs of consecutive columns: per panel, the runs (first column, source offset, length)
    are found once from the table; per k, each run is copied with masked vector loads and
    stores. LLVM would otherwise gather every element (``vgatherqps``), which dominated
    small convolutions. Used when the panel's runs average ``RUN_MIN_AVERAGE`` columns
    (shorter runs: the gathers are cheaper)."""

    def __init__(self, kernel, split, own, rest, w, p, bl):
        self.kernel, self.split, self.own, self.rest = kernel, split, own, rest
        self.w, self.p, self.bl = w, p, bl
        self.buffer = kernel.b.args[0]

    @staticmethod
    def analyse(kernel, split, w, p, bl):
        b = kernel.b
        if not RUN_COPY or split is None or b.op != "load" or b.args[2] or b.dtype.category != FLOAT:
            return None
        index = b.args[1]
        if index not in split.parts:
            return None
        own, rest = split.parts[index]
        return RunCopy(kernel, split, own, rest, w, p, bl)

    def build(self, tables, jmax):
        """(run count, starts, sources, lengths) for columns j < jmax of this panel."""
        w, width = self.w, self.bl.nr
        table = tables[self.own]
        starts, sources, lengths = (w.alloca("i64", width) for _ in range(3))

        def column(j, carried):
            count, prev = carried
            q = w.op(f"getelementptr i64, ptr {table}, i64 {j}", "rq")
            t = w.op(f"load i64, ptr {q}, align 8", "rt")
            expect = w.op(f"add i64 {prev}, 1", "re")
            cont = w.op(f"icmp eq i64 {t}, {expect}", "rc")
            first = w.op(f"icmp eq i64 {j}, 0", "rf")
            notcont = w.op(f"xor i1 {cont}, true", "rn")
            fresh = w.op(f"or i1 {first}, {notcont}", "rn")
            new_l, ext_l, join_l = w.label("rnew"), w.label("rext"), w.label("rjoin")
            w.emit(f"br i1 {fresh}, label %{new_l}, label %{ext_l}")
            w.start(new_l)
            for arr, v in ((starts, j), (sources, t), (lengths, "1")):
                q = w.op(f"getelementptr i64, ptr {arr}, i64 {count}", "rq")
                w.emit(f"store i64 {v}, ptr {q}, align 8")
            more = w.op(f"add i64 {count}, 1", "rk")
            w.emit(f"br label %{join_l}")
            w.start(ext_l)
            last = w.op(f"sub i64 {count}, 1", "rk")
            q = w.op(f"getelementptr i64, ptr {lengths}, i64 {last}", "rq")
            n = w.op(f"load i64, ptr {q}, align 8", "rl")
            n = w.op(f"add i64 {n}, 1", "rl")
            w.emit(f"store i64 {n}, ptr {q}, align 8")
            w.emit(f"br label %{join_l}")
            w.start(join_l)
            count = w.op(f"phi i64 [{more}, %{new_l}], [{count}, %{ext_l}]", "rk")
            return [count, t]
        count, _ = w.loop("0", jmax, column, carried=[("i64", "0"), ("i64", "0")], hint="rj")
        return count, starts, sources, lengths

    def _vector_types(self):
        t, lanes = self.kernel.b.dtype, self.bl.lanes
        ty = lltype(t)
        suffix = f"v{lanes}{'f32' if ty == 'float' else 'f64'}"
        vt = f"<{lanes} x {ty}>"
        self.p.declare(f"declare {vt} @llvm.masked.load.{suffix}.p0(ptr, i32 immarg, "
                       f"<{lanes} x i1>, {vt})")
        self.p.declare(f"declare void @llvm.masked.store.{suffix}.p0({vt}, ptr, i32 immarg, "
                       f"<{lanes} x i1>)")
        return ty, vt, suffix

    def copy(self, runs, pc, kcur, dst):
        """Per block of ``RUN_ROWS`` rows: the rows' source offsets into a table, then per
        run (and per vector of a long run) the block's rows, so the inner loop is one table
        load, one masked load and one masked store with the run's mask kept in a register."""
        w, p, bl, kernel = self.w, self.p, self.bl, self.kernel
        count, starts, sources, lengths = runs
        ty, vt, suffix = self._vector_types()
        lanes, align = bl.lanes, kernel.b.dtype.itemsize
        iota = "<" + ", ".join(f"i64 {i}" for i in range(lanes)) + ">"
        src_base = p.bufs[self.buffer]
        bases = w.alloca("i64", RUN_ROWS)
        blocks = w.spans(kcur, RUN_ROWS, "rb")

        def block(kb, _):
            p.push()
            k0, rows = w.span(kb, RUN_ROWS, kcur, "rk0")

            def base_of(k, _):
                p.push()
                kk = w.op(f"add i64 {k0}, {k}", "rkk")
                p.vars[kernel.k] = w.op(f"add i64 {pc}, {kk}", "kk")
                q = w.op(f"getelementptr i64, ptr {bases}, i64 {k}", "rq")
                w.emit(f"store i64 {p.index(self.rest)}, ptr {q}, align 8")
                p.pop()
                return []
            w.loop("0", rows, base_of, hint="rbk")
            block_off = w.op(f"mul i64 {k0}, {bl.nr}", "o")
            block_dst = w.op(f"getelementptr {ty}, ptr {dst}, i64 {block_off}", "rd")

            def run(r, _):
                vals = []
                for arr in (starts, sources, lengths):
                    q = w.op(f"getelementptr i64, ptr {arr}, i64 {r}", "rq")
                    vals.append(w.op(f"load i64, ptr {q}, align 8", "rv"))
                start, source, length = vals
                sp = w.op(f"getelementptr {ty}, ptr {src_base}, i64 {source}", "rs")
                dp = w.op(f"getelementptr {ty}, ptr {block_dst}, i64 {start}", "rd")
                pieces = w.op(f"add i64 {length}, {lanes - 1}", "rp")
                pieces = w.op(f"udiv i64 {pieces}, {lanes}", "rp")

                def piece(c, _):
                    first = w.op(f"mul i64 {c}, {lanes}", "rc")
                    left = w.op(f"sub i64 {length}, {first}", "rc")
                    one = w.op(f"insertelement <{lanes} x i64> poison, i64 {left}, i64 0", "rm")
                    splat = w.op(f"shufflevector <{lanes} x i64> {one}, <{lanes} x i64> poison, "
                                 f"<{lanes} x i32> zeroinitializer", "rm")
                    mask = w.op(f"icmp slt <{lanes} x i64> {iota}, {splat}", "rm")
                    s0 = w.op(f"getelementptr {ty}, ptr {sp}, i64 {first}", "rs")
                    d0 = w.op(f"getelementptr {ty}, ptr {dp}, i64 {first}", "rd")

                    def row(k, _):
                        q = w.op(f"getelementptr i64, ptr {bases}, i64 {k}", "rq")
                        at = w.op(f"load i64, ptr {q}, align 8", "ra")
                        s = w.op(f"getelementptr {ty}, ptr {s0}, i64 {at}", "rs")
                        off = w.op(f"mul i64 {k}, {bl.nr}", "o")
                        d = w.op(f"getelementptr {ty}, ptr {d0}, i64 {off}", "rd")
                        v = w.op(f"call {vt} @llvm.masked.load.{suffix}.p0(ptr {s}, i32 {align}, "
                                 f"<{lanes} x i1> {mask}, {vt} zeroinitializer)", "rv")
                        w.emit(f"call void @llvm.masked.store.{suffix}.p0({vt} {v}, ptr {d}, "
                               f"i32 {align}, <{lanes} x i1> {mask})")
                        return []
                    w.loop("0", rows, row, hint="rrow")
                    return []
                w.loop("0", pieces, piece, hint="rpc")
                return []
            w.loop("0", count, run, hint="rr")
            p.pop()
            return []
        w.loop("0", blocks, block, hint="rblk")

    def zero_fill(self, kcur, jmax, dst):
        """Columns jmax..NR of every row of the panel are zero (the edge of B)."""
        w, bl = self.w, self.bl
        ty = lltype(self.kernel.b.dtype)

        def row(k, _):
            def col(j, _):
                at = w.op(f"mul i64 {k}, {bl.nr}", "o")
                at = w.op(f"add i64 {at}, {j}", "o")
                q = w.op(f"getelementptr {ty}, ptr {dst}, i64 {at}", "q")
                w.emit(f"store {ty} {literal(0, self.kernel.b.dtype)}, ptr {q}, "
                       f"align {self.kernel.b.dtype.itemsize}")
                return []
            w.loop(jmax, str(bl.nr), col, hint="zj")
            return []
        w.loop("0", kcur, row, hint="zk")


def pack_loops(w, p, kcur, live, full, inner_is_panel_dim, element):
    """Loops over (k < kcur) x (i < live) calling ``element(k, i)``, then zero-fill
    i in [live, full). The operand's unit-stride dimension goes innermost."""
    def nest(i_start, i_end, fill, k_innermost):
        """Two loops over k in [0, kcur) and i in [i_start, i_end), in the given order."""
        k_loop, i_loop = ("0", kcur, "pk"), (i_start, i_end, "pi")
        (o_start, o_end, o_hint), (n_start, n_end, n_hint) = \
            (i_loop, k_loop) if k_innermost else (k_loop, i_loop)

        def outer(a, _):
            p.push()

            def inner(b, _):
                p.push()
                element(*((b, a) if k_innermost else (a, b)), fill)
                p.pop()
                return []
            w.loop(n_start, n_end, inner, hint=n_hint)
            p.pop()
            return []
        w.loop(o_start, o_end, outer, hint=o_hint)
    nest("0", live, False, k_innermost=not inner_is_panel_dim)
    nest(live, str(full), True, k_innermost=False)
