"""Kernel IR -> LLVM IR text.

Every kernel becomes one module with one exported function of the runtime's kernel
signature, ``i64 @name(ptr table, ptr slots, ptr claim, ptr finish, ptr scratch)``: it
loads its buffer addresses from ``table[slots[i]]`` and calls an internal body whose
buffer parameters are ``noalias`` (so LLVM vectorises without runtime alias checks).
The body cuts the outermost parallel loops into chunks that threads claim one at a
time (see ``runtime.native_runner``) and returns the chunk count.

``FunctionWriter`` is a tiny SSA text builder; ``ExprPrinter`` turns ``Expr``/``Index``
trees into instructions, sharing common subexpressions within a loop body (LLVM's LICM
then hoists what does not depend on the inner loop). The kernel forms are printed by
``llvm_loops`` (loop, column and scatter kernels) and ``llvm_matmul``; the float32 math
helpers live in ``llvm_math``.
"""
from __future__ import annotations

from ..dtypes import FLOAT, bool_, float32, float64
from ..kernel_ir import expr as ex
from ..kernel_ir.index import Dyn, FloorDiv, Index, Var
from .llvm_math import f32, f64

MIN_PARALLEL_WORK = 65536       # element-ops below which a kernel is not split
CHUNK_WORK = 65536              # element-ops per chunk claimed by a thread
MAX_CHUNKS = 64


def lltype(dtype, memory=False):
    if dtype is bool_:
        return "i8" if memory else "i1"
    return {"float32": "float", "float64": "double", "int64": "i64", "int32": "i32"}[dtype.name]


def literal(value, dtype):
    if dtype is bool_:
        return "true" if value else "false"
    if dtype.category == FLOAT:
        return f32(value) if dtype is float32 else f64(value)
    return str(int(value))


class FunctionWriter:
    """Lines of one LLVM function, fresh SSA names and labels, and the current block."""

    def __init__(self):
        self.lines = []
        self.allocas = []                 # stack arrays, placed in the entry block
        self.counter = 0
        self.block = "entry"

    def alloca(self, ty, count):
        name = self.tmp("stack")
        self.allocas.append(f"  {name} = alloca {ty}, i64 {count}, align 64")
        return name

    def tmp(self, hint="t"):
        self.counter += 1
        return f"%{hint}{self.counter}"

    def label(self, hint):
        self.counter += 1
        return f"{hint}{self.counter}"

    def emit(self, text):
        self.lines.append("  " + text)

    def start(self, label):
        self.lines.append(f"{label}:")
        self.block = label

    def op(self, text, hint="t"):
        name = self.tmp(hint)
        self.emit(f"{name} = {text}")
        return name

    def span(self, index, size, total, hint="span"):
        """``(first, count)`` of span ``index`` when ``[0, total)`` is cut into spans
        of ``size``: ``first = index * size``, ``count = min(size, total - first)``."""
        first = self.op(f"mul i64 {index}, {size}", hint)
        left = self.op(f"sub i64 {total}, {first}", hint)
        return first, self.op(f"call i64 @llvm.smin.i64(i64 {left}, i64 {size})", hint)

    def spans(self, total, size, hint="spans"):
        """How many spans of ``size`` cover ``[0, total)``."""
        n = self.op(f"add i64 {total}, {size - 1}", hint)
        return self.op(f"udiv i64 {n}, {size}", hint)

    def loop(self, start, end, body, carried=(), hint="i"):
        """``for iv in [start, end)``: ``body(iv, values) -> values`` for carried
        ``(type, init)`` pairs; returns the carried values after the loop."""
        pre = self.block
        body_l, done_l, join_l = self.label(f"{hint}.body"), self.label(f"{hint}.done"), \
            self.label(f"{hint}.join")
        go = self.op(f"icmp slt i64 {start}, {end}", "go")
        self.emit(f"br i1 {go}, label %{body_l}, label %{join_l}")
        self.start(body_l)
        iv = self.tmp(hint)
        phi_at = len(self.lines)
        self.emit("PLACEHOLDER")
        names = [self.tmp("c") for _ in carried]
        phi_lines = [len(self.lines) + k for k in range(len(carried))]
        for _ in carried:
            self.emit("PLACEHOLDER")
        new = body(iv, names)
        latch = self.block
        nxt = self.op(f"add nuw nsw i64 {iv}, 1", "next")
        more = self.op(f"icmp slt i64 {nxt}, {end}", "more")
        self.emit(f"br i1 {more}, label %{body_l}, label %{done_l}")
        self.lines[phi_at] = f"  {iv} = phi i64 [{start}, %{pre}], [{nxt}, %{latch}]"
        for k, ((ty, init), name, value) in enumerate(zip(carried, names, new or [])):
            self.lines[phi_lines[k]] = f"  {name} = phi {ty} [{init}, %{pre}], [{value}, %{latch}]"
        self.start(done_l)
        self.emit(f"br label %{join_l}")
        self.start(join_l)
        outs = []
        for (ty, init), value in zip(carried, new or []):
            outs.append(self.op(f"phi {ty} [{init}, %{pre}], [{value}, %{done_l}]", "out"))
        return outs


class ExprPrinter:
    """Instructions for expressions and indexes, memoised per loop scope."""

    def __init__(self, w: FunctionWriter, buffers, buffer_names):
        self.w = w
        self.buffers = buffers
        self.bufs = buffer_names          # buffer number -> SSA pointer name
        self.scopes = [{}]
        self.vars = {}                    # Var -> SSA
        self.accs = {}                    # acc name -> SSA
        self.helpers = set()              # llvm_math helpers used
        self.declares = set()             # intrinsic / libm declarations used
        self.threads = 1                  # how many threads the kernel can use
        self.overrides = {}               # Index -> SSA value computed another way
        self.acc_arrays = {}              # acc name -> (array, column Var, first column)
        self.scratch = 0                  # per-thread scratch bytes the kernel needs
        self.nontemporal = False          # the kernel streams some stores (stream_copy)

    # -- scopes ----------------------------------------------------------------------
    def push(self):
        self.scopes.append({})

    def pop(self):
        self.scopes.pop()

    def _get(self, key):
        for scope in reversed(self.scopes):
            if key in scope:
                return scope[key]
        return None

    def _put(self, key, value):
        self.scopes[-1][key] = value
        return value

    def declare(self, text):
        self.declares.add(text)

    # -- indexes ---------------------------------------------------------------------
    def index(self, index: Index) -> str:
        if index.is_const:
            return str(index.const)
        got = self._get(index)
        if got is not None:
            return got
        make = self.overrides.get(index)
        if make is not None:
            return self._put(index, make())
        w = self.w
        acc = None
        for atom, c in index.terms:
            v = self._atom(atom)
            if c != 1:
                v = w.op(f"mul nsw i64 {v}, {c}", "ix")
            acc = v if acc is None else w.op(f"add nsw i64 {acc}, {v}", "ix")
        if index.const:
            acc = w.op(f"add nsw i64 {acc}, {index.const}", "ix")
        return self._put(index, acc)

    def _atom(self, atom):
        if type(atom) is Var:
            return self.vars[atom]
        if type(atom) is Dyn:
            return self.value(atom.expr)
        got = self._get(atom)
        if got is not None:
            return got
        arg = self.index(atom.arg)
        w, d = self.w, atom.d
        if atom.arg.lo >= 0:
            v = w.op(f"{'udiv' if type(atom) is FloorDiv else 'urem'} i64 {arg}, {d}", "dm")
        elif type(atom) is FloorDiv:      # floor division of a possibly negative index
            q = w.op(f"sdiv i64 {arg}, {d}", "dm")
            r = w.op(f"srem i64 {arg}, {d}", "dm")
            neg = w.op(f"icmp slt i64 {r}, 0", "dm")
            q1 = w.op(f"sub i64 {q}, 1", "dm")
            v = w.op(f"select i1 {neg}, i64 {q1}, i64 {q}", "dm")
        else:
            r = w.op(f"srem i64 {arg}, {d}", "dm")
            neg = w.op(f"icmp slt i64 {r}, 0", "dm")
            r1 = w.op(f"add i64 {r}, {d}", "dm")
            v = w.op(f"select i1 {neg}, i64 {r1}, i64 {r}", "dm")
        return self._put(atom, v)

    def in_range(self, index, lo, hi) -> str:
        i = self.index(index)
        conds = []
        if index.lo < lo:
            conds.append(self.w.op(f"icmp sge i64 {i}, {lo}", "g"))
        if index.hi >= hi:
            conds.append(self.w.op(f"icmp slt i64 {i}, {hi}", "g"))
        if not conds:
            return "true"
        out = conds[0]
        for c in conds[1:]:
            out = self.w.op(f"and i1 {out}, {c}", "g")
        return out

    def address(self, buffer, index):
        i = self.index(index)
        ty = lltype(self.buffers[buffer].dtype, memory=True)
        return self.w.op(f"getelementptr inbounds {ty}, ptr {self.bufs[buffer]}, i64 {i}", "p")

    # -- values ----------------------------------------------------------------------
    # Types, constants and intrinsic names of values go through these three methods, so
    # that ``llvm_vector.VectorPrinter`` prints the same operations on whole vectors.
    def lltype(self, dtype) -> str:
        return lltype(dtype)

    def literal(self, value, dtype) -> str:
        return literal(value, dtype)

    def suffix(self, dtype) -> str:
        """The type suffix of intrinsic and helper names: ``llvm.exp.f32``."""
        return {"float": "f32", "double": "f64", "i64": "i64", "i32": "i32"}[lltype(dtype)]

    def value(self, e: ex.Expr) -> str:
        if e.op == "const":
            return literal(e.args[0], e.dtype)
        if e.op == "acc":
            name = e.args[0]
            if name not in self.acc_arrays:
                return self.accs[name]
            got = self._get(e)          # a column kernel's accumulator: one per column
            if got is None:
                array, var, first = self.acc_arrays[name]
                at = self.w.op(f"sub i64 {self.vars[var]}, {first}", "col")
                q = self.w.op(f"getelementptr {lltype(e.dtype)}, ptr {array}, i64 {at}", "aq")
                got = self._put(e, self.w.op(f"load {lltype(e.dtype)}, ptr {q}", "acc"))
            return got
        got = self._get(e)
        if got is not None:
            return got
        return self._put(e, self._value(e))

    def load(self, buffer, index, dtype):
        w = self.w
        p = self.address(buffer, index)
        mty = lltype(dtype, memory=True)
        v = w.op(f"load {mty}, ptr {p}, align {dtype.itemsize}", "ld")
        if dtype is bool_:
            v = w.op(f"icmp ne i8 {v}, 0", "b")
        return v

    def _value(self, e):
        w, op, t = self.w, e.op, e.dtype
        ty = self.lltype(t)
        if op == "load":
            buffer, index, guards, fill = e.args
            if not guards:
                return self.load(buffer, index, t)
            # address and condition first, so only the load itself is conditional
            cond = None
            for gi, lo, hi in guards:
                c = self.in_range(gi, lo, hi)
                cond = c if cond is None else w.op(f"and i1 {cond}, {c}", "g")
            p = self.address(buffer, index)
            pre = w.block
            ld, join = w.label("ld"), w.label("ldj")
            w.emit(f"br i1 {cond}, label %{ld}, label %{join}")
            w.start(ld)
            mty = lltype(t, memory=True)
            v = w.op(f"load {mty}, ptr {p}, align {t.itemsize}", "ld")
            if t is bool_:
                v = w.op(f"icmp ne i8 {v}, 0", "b")
            w.emit(f"br label %{join}")
            w.start(join)
            return w.op(f"phi {ty} [{v}, %{ld}], [{literal(fill, t)}, %{pre}]", "gl")
        if op == "index":
            return self.index(e.args[0])
        if op == "check_index":
            i, size, record = e.args
            self.helpers.add("kiln_check_index")
            return w.op(f"call i64 @kiln_check_index(i64 {self.value(i)}, i64 {size}, "
                        f"ptr {self.bufs[record]})", "ci")
        if op == "inrange":
            return self.in_range(*e.args)
        if op == "where":
            c, a, b = (self.value(x) for x in e.args)
            return w.op(f"select {self.lltype(bool_)} {c}, {ty} {a}, {ty} {b}", "w")
        if op == "cast":
            return self._cast(self.value(e.args[0]), e.args[0].dtype, t)
        if op in ex.COMPARE:
            return self._compare(op, e.args[0], e.args[1])
        if op in ex.UNARY:
            return self._unary(op, self.value(e.args[0]), e.args[0].dtype, t)
        if op in ex.BINARY:
            return self._binary(op, self.value(e.args[0]), self.value(e.args[1]), t)
        raise NotImplementedError(f"LLVM printer: no rule for expression op {op!r}")

    def _intrinsic(self, name, t, *args):
        ty = self.lltype(t)
        fn = f"llvm.{name}.{self.suffix(t)}"
        self.declare(f"declare {ty} @{fn}({', '.join([ty] * len(args))})")
        return self.w.op(f"call {ty} @{fn}({', '.join(f'{ty} {a}' for a in args)})", name[:4])

    def _libm(self, name, t, *args):
        ty = lltype(t)
        self.declare(f"declare {ty} @{name}({', '.join([ty] * len(args))}) nounwind memory(none)")
        return self.w.op(f"call {ty} @{name}({', '.join(f'{ty} {a}' for a in args)})", "m")

    def _helper(self, name, ty, x):
        self.helpers.add(name)
        return self.w.op(f"call {ty} @{name}({ty} {x})", "h")

    def _cast(self, v, src, dst):
        w = self.w
        s, d = lltype(src), lltype(dst)
        if dst is bool_:
            if src.category == FLOAT:
                return w.op(f"fcmp une {s} {v}, 0.0", "cv")
            return w.op(f"icmp ne {s} {v}, 0", "cv")
        if src is bool_:
            return w.op(f"{'uitofp' if dst.category == FLOAT else 'zext'} i1 {v} to {d}", "cv")
        if src.category == FLOAT and dst.category == FLOAT:
            return w.op(f"{'fpext' if dst.itemsize > src.itemsize else 'fptrunc'} {s} {v} to {d}", "cv")
        if src.category == FLOAT:
            return w.op(f"fptosi {s} {v} to {d}", "cv")
        if dst.category == FLOAT:
            return w.op(f"sitofp {s} {v} to {d}", "cv")
        if dst.itemsize > src.itemsize:
            return w.op(f"sext {s} {v} to {d}", "cv")
        return w.op(f"trunc {s} {v} to {d}", "cv")

    def _compare(self, op, a, b):
        t = a.dtype
        x, y = self.value(a), self.value(b)
        ty = self.lltype(t)
        if t.category == FLOAT:
            pred = {"eq": "oeq", "ne": "une", "lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge"}[op]
            return self.w.op(f"fcmp {pred} {ty} {x}, {y}", "cmp")
        sign = "u" if t is bool_ else "s"
        pred = {"eq": "eq", "ne": "ne", "lt": f"{sign}lt", "le": f"{sign}le", "gt": f"{sign}gt",
                "ge": f"{sign}ge"}[op]
        return self.w.op(f"icmp {pred} {ty} {x}, {y}", "cmp")

    def _unary(self, op, x, src, t):
        w = self.w
        ty = self.lltype(t)
        if op == "not":
            return w.op(f"xor i1 {x}, true", "not")
        if t is bool_ and op in ("neg", "abs", "sign", "floor", "trunc"):
            return x
        if t.category != FLOAT:
            if op == "neg":
                return w.op(f"sub {ty} 0, {x}", "neg")
            if op == "abs":
                n = w.op(f"sub {ty} 0, {x}", "neg")
                c = w.op(f"icmp slt {ty} {x}, 0", "c")
                return w.op(f"select i1 {c}, {ty} {n}, {ty} {x}", "abs")
            if op == "sign":
                p = w.op(f"icmp sgt {ty} {x}, 0", "c")
                n = w.op(f"icmp slt {ty} {x}, 0", "c")
                pz = w.op(f"zext i1 {p} to {ty}", "c")
                nz = w.op(f"zext i1 {n} to {ty}", "c")
                return w.op(f"sub {ty} {pz}, {nz}", "sign")
            if op in ("floor", "trunc"):
                return x
            raise NotImplementedError(f"{op} on {t.name}")
        if op == "neg":
            return w.op(f"fneg {ty} {x}", "neg")
        if op == "abs":
            return self._intrinsic("fabs", t, x)
        if op == "sqrt":
            return self._intrinsic("sqrt", t, x)
        if op in ("floor", "trunc"):
            return self._intrinsic(op, t, x)
        if op == "sign":
            one, mone = literal(1, t), literal(-1, t)
            p = w.op(f"fcmp ogt {ty} {x}, 0.0", "c")
            n = w.op(f"fcmp olt {ty} {x}, 0.0", "c")
            s = w.op(f"select i1 {n}, {ty} {mone}, {ty} {x}", "c")
            return w.op(f"select i1 {p}, {ty} {one}, {ty} {s}", "sign")
        if t is float32 and op in ("exp", "log", "tanh", "sigmoid", "log1p", "erf"):
            return self._helper(f"kiln_{op}_{self.suffix(t)}", ty, x)
        if op in ("exp", "log", "sin", "cos"):
            return self._intrinsic(op, t, x)
        if op == "sigmoid":
            n = w.op(f"fneg {ty} {x}", "neg")
            e = self._intrinsic("exp", t, n)
            d = w.op(f"fadd {ty} {e}, {literal(1, t)}", "t")
            return w.op(f"fdiv {ty} {literal(1, t)}, {d}", "sig")
        if op in ("tanh", "log1p", "erf"):
            return self._libm(op if t is float64 else op + "f", t, x)
        raise NotImplementedError(f"{op} on {t.name}")

    def _binary(self, op, a, b, t):
        w = self.w
        ty = self.lltype(t)
        if t is bool_:
            llop = {"add": "or", "mul": "and", "sub": "xor", "and": "and", "or": "or",
                    "max": "or", "min": "and"}.get(op)
            if llop is None:
                raise NotImplementedError(f"{op} on bool")
            return w.op(f"{llop} i1 {a}, {b}", op)
        if op in ("and", "or"):
            return w.op(f"{op} {ty} {a}, {b}", op)
        if t.category == FLOAT:
            if op == "div":   # arcp: a loop-invariant divisor becomes one reciprocal (<= 1 ulp)
                return w.op(f"fdiv arcp {ty} {a}, {b}", op)
            if op in ("add", "sub", "mul"):
                return w.op(f"f{op} {ty} {a}, {b}", op)
            if op in ("max", "min"):
                return self._intrinsic("maximum" if op == "max" else "minimum", t, a, b)
            if op == "pow":
                return self._intrinsic("pow", t, a, b)
        else:
            if op in ("add", "sub", "mul"):
                return w.op(f"{op} {ty} {a}, {b}", op)
            if op in ("max", "min"):
                return self._intrinsic("smax" if op == "max" else "smin", t, a, b)
            if op == "div":    # NumPy: true division, then the cast back truncates
                fa = w.op(f"sitofp {ty} {a} to double", "fd")
                fb = w.op(f"sitofp {ty} {b} to double", "fd")
                q = w.op(f"fdiv double {fa}, {fb}", "fd")
                return w.op(f"fptosi double {q} to {ty}", "div")
            if op == "pow":
                name = f"kiln_ipow_{ty}"
                self.helpers.add(name)
                return w.op(f"call {ty} @{name}({ty} {a}, {ty} {b})", "pow")
        raise NotImplementedError(f"{op} on {t.name}")


# -- reductions --------------------------------------------------------------------------
def identity(op, dtype):
    if op in ("sum", "any"):
        return literal(0, dtype)
    if op == "all":
        return "true"
    big = {"float32": "0x7FF0000000000000", "float64": "0x7FF0000000000000",
           "int64": str(2 ** 63 - 1), "int32": str(2 ** 31 - 1)}
    small = {"float32": "0xFFF0000000000000", "float64": "0xFFF0000000000000",
             "int64": str(-2 ** 63), "int32": str(-2 ** 31)}
    if op in ("max", "argmax"):
        return small[dtype.name] if dtype is not bool_ else "false"
    if op in ("min", "argmin"):
        return big[dtype.name] if dtype is not bool_ else "true"
    raise NotImplementedError(op)


def combine(p: ExprPrinter, op, acc, v, dtype):
    w, ty = p.w, lltype(dtype)
    if op == "sum":
        if dtype.category == FLOAT:   # reassoc lets the vectoriser keep partial sums per lane
            return w.op(f"fadd reassoc nsz {ty} {acc}, {v}", "acc")
        return w.op(f"add {ty} {acc}, {v}", "acc")
    if op == "any":
        return w.op(f"or i1 {acc}, {v}", "acc")
    if op == "all":
        return w.op(f"and i1 {acc}, {v}", "acc")
    if op in ("max", "min"):
        if dtype is bool_:
            return w.op(f"{'or' if op == 'max' else 'and'} i1 {acc}, {v}", "acc")
        if dtype.category == FLOAT:
            return p._intrinsic("maximum" if op == "max" else "minimum", dtype, acc, v)
        return p._intrinsic("smax" if op == "max" else "smin", dtype, acc, v)
    raise NotImplementedError(op)


def better(p: ExprPrinter, op, v, best, dtype):
    """argmax/argmin: does ``v`` replace ``best``? The first NaN wins, as in NumPy."""
    w, ty = p.w, lltype(dtype)
    if dtype.category == FLOAT:
        pred = "ogt" if op == "argmax" else "olt"
        strict = w.op(f"fcmp {pred} {ty} {v}, {best}", "cmp")
        vnan = w.op(f"fcmp uno {ty} {v}, 0.0", "cmp")
        bnum = w.op(f"fcmp ord {ty} {best}, 0.0", "cmp")
        nan = w.op(f"and i1 {vnan}, {bnum}", "cmp")
        return w.op(f"or i1 {strict}, {nan}", "cmp")
    pred = ("u" if dtype is bool_ else "s") + ("gt" if op == "argmax" else "lt")
    return w.op(f"icmp {pred} {ty} {v}, {best}", "cmp")


# -- whole kernels -------------------------------------------------------------------------
def kernel_header(kernel, kind):
    lines = [f"; kernel {kernel.name} ({kind})"]
    for loc in kernel.locs:
        lines.append(f";   from {loc}")
    for i, b in enumerate(kernel.buffers):
        what = "row buffer" if b.local else f"%{b.node}"
        lines.append(f";   b{i} = {what} {b.dtype.name}{list(b.shape)}{' (out)' if b.written else ''}")
    return "\n".join(lines)


def wrapper(symbol, buffers):
    """The exported entry: fetch buffer addresses from the table, call the noalias body,
    return the chunk count (the runner waits until that many chunks are finished)."""
    lines = [f"define i64 @{symbol}(ptr %table, ptr %slots, ptr %claim, ptr %finish, "
             f"ptr %scratch) {{", "entry:"]
    args = []
    for i, _ in enumerate(b for b in buffers if not b.local):
        lines += [f"  %sp{i} = getelementptr i64, ptr %slots, i64 {i}",
                  f"  %s{i} = load i64, ptr %sp{i}, align 8",
                  f"  %pp{i} = getelementptr ptr, ptr %table, i64 %s{i}",
                  f"  %b{i} = load ptr, ptr %pp{i}, align 8"]
        args.append(f"ptr %b{i}")
    args += ["ptr %claim", "ptr %finish", "ptr %scratch"]
    lines += [f"  %n = call i64 @{symbol}.body({', '.join(args)})", "  ret i64 %n", "}"]
    return "\n".join(lines)


def body_signature(symbol, buffers):
    params = [f"ptr noalias %buf{i}" for i, b in enumerate(buffers) if not b.local]
    params += ["ptr %claim", "ptr %finish", "ptr %scratch"]
    return f"define internal i64 @{symbol}.body({', '.join(params)}) noinline nounwind {{"


def local_buffers(w, buffers, start=0):
    """Pointers to the per-thread row buffers, carved out of scratch; returns the bytes used."""
    offset = start
    for i, b in enumerate(buffers):
        if b.local:
            w.emit(f"%buf{i} = getelementptr i8, ptr %scratch, i64 {offset}")
            offset += (b.nbytes + 63) // 64 * 64
    return offset


def chunk_loop(w, chunks, work):
    """Claim chunks ``0 .. chunks-1`` one at a time (shared with other threads), run
    ``work(c)`` for each, count it finished; return ``chunks`` when none are left."""
    w.emit("br label %next_chunk")
    w.start("next_chunk")
    c = w.op("atomicrmw add ptr %claim, i64 1 monotonic", "chunk")
    more = w.op(f"icmp slt i64 {c}, {chunks}", "more")
    w.emit(f"br i1 {more}, label %run_chunk, label %all_done")
    w.start("run_chunk")
    work(c)
    w.emit("%fin = atomicrmw add ptr %finish, i64 1 release")
    w.emit("br label %next_chunk")
    w.start("all_done")
    w.emit(f"ret i64 {chunks}")


def chunk_bounds(w, c, extent, chunks):
    """``[start, end)`` of chunk ``c`` when ``extent`` is cut into ``chunks`` near-equal parts."""
    if chunks == 1:
        return "0", str(extent)
    a = w.op(f"mul i64 {c}, {extent}", "cs")
    start = w.op(f"udiv i64 {a}, {chunks}", "start")
    c1 = w.op(f"add i64 {c}, 1", "cs")
    b = w.op(f"mul i64 {c1}, {extent}", "cs")
    end = w.op(f"udiv i64 {b}, {chunks}", "end")
    return start, end


def useful_chunks(extent, work):
    """How many pieces to cut a kernel into: none below MIN_PARALLEL_WORK, else pieces of
    about CHUNK_WORK, at most MAX_CHUNKS (dynamic claiming balances the rest)."""
    if work < MIN_PARALLEL_WORK or extent <= 1:
        return 1
    return max(1, min(extent, work // CHUNK_WORK, MAX_CHUNKS))


def emit_store(p: ExprPrinter, s):
    w = p.w
    dtype = p.buffers[s.buffer].dtype
    v = p.value(s.value)
    if dtype is bool_:
        v = w.op(f"zext i1 {v} to i8", "z")
    addr = p.address(s.buffer, s.index)
    w.emit(f"store {lltype(dtype, memory=True)} {v}, ptr {addr}, align {dtype.itemsize}")


def module_text(kernel, symbol, body_text, printer, kind):
    """Header comment, wrapper, body, helper functions and declarations."""
    from .llvm_math import helper_source, intrinsic_declarations
    decls = set(printer.declares)
    decls.add("declare i64 @llvm.smin.i64(i64, i64)")
    parts = [kernel_header(kernel, kind), wrapper(symbol, kernel.buffers), body_text]
    if printer.helpers:
        parts.append(helper_source(printer.helpers))
        decls.update(intrinsic_declarations(printer.helpers).splitlines())
    parts.append("\n".join(sorted(decls)))
    if printer.nontemporal:
        parts.append("!0 = !{i32 1}")
    return "\n\n".join(parts) + "\n"


__all__ = ["ExprPrinter", "FunctionWriter", "lltype", "literal", "module_text", "chunk_loop",
           "chunk_bounds", "useful_chunks", "body_signature", "local_buffers", "emit_store"]
