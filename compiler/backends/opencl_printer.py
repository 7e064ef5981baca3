"""Kernel IR scalar expressions and indexes -> OpenCL C.

The OpenCL counterpart of ``llvm_printer.ExprPrinter``: the same ``Expr``/``Index``
trees, printed as C statements. Every computed node becomes one ``const T tN = ...;``
line in the innermost scope that needs it and is reused from there (identical subtrees
compare equal, so common subexpressions are printed once per scope); the driver's
compiler hoists what does not depend on an inner loop.

Semantics follow the LLVM printer (and so NumPy): ``max``/``min`` propagate NaN,
``x != 0`` is the truth value (NaN is true), bools are ``uchar`` in memory, integer
division truncates, guarded loads never touch memory outside their guard.

Buffers are kernel parameters ``(__global T* restrict pI, long oI)``: a base pointer and
an element offset, bound by the runtime. The offset lets one arena buffer hold every
intermediate without sub-buffers (whose origins must meet the device's base-address
alignment) and lets a host array that is not so aligned be wrapped zero-copy on CPU
devices.

Index arithmetic is ``long`` by default; ``int`` where every partial sum provably fits
(cheaper on GPUs). On CPU devices it stays ``long`` so that addresses derived from
``get_global_id`` remain visibly consecutive to Intel's vectoriser.
"""
from __future__ import annotations

import math

from ..dtypes import FLOAT, bool_, float32, float64, int32, int64
from ..kernel_ir import expr as ex
from ..kernel_ir.index import Dyn, FloorDiv, Index, Mod, Var

INT32_LIMIT = 2 ** 31 - 1
_ITYPE = {"int": int32, "long": int64}     # C index type -> the dtype its literals take


class OpenCLUnsupported(Exception):
    """A kernel this device cannot run (e.g. float64 without cl_khr_fp64)."""


def ctype(dtype, memory=False):
    if dtype is bool_:
        return "uchar" if memory else "bool"
    return {"float32": "float", "float64": "double", "int64": "long", "int32": "int"}[dtype.name]


def literal(value, dtype):
    if dtype is bool_:
        return "true" if value else "false"
    if dtype.category == FLOAT:
        v = float(value)
        if dtype is float32:
            import numpy as np
            v = float(np.float32(v))
        if math.isnan(v):
            return "NAN" if dtype is float32 else "((double)NAN)"
        if math.isinf(v):
            s = "INFINITY" if dtype is float32 else "((double)INFINITY)"
            return s if v > 0 else f"(-{s})"
        text = v.hex()
        return text + "f" if dtype is float32 else text
    v = int(value)
    if dtype.itemsize == 8:
        return "(-9223372036854775807L-1L)" if v == -2 ** 63 else f"{v}L"
    return "(-2147483647-1)" if v == -2 ** 31 else str(v)


def index_bound(index: Index) -> int:
    """An upper bound on |value| of every partial sum while evaluating ``index``."""
    total = abs(index.const)
    for a, c in index.terms:
        if type(a) in (FloorDiv, Mod):
            inner = index_bound(a.arg)
            total += abs(c) * max(inner, abs(a.lo), abs(a.hi))
        else:
            total += abs(c) * max(abs(a.lo), abs(a.hi))
    return total


class Lines:
    """Indented C lines; ``block()`` opens ``{ ... }``."""

    def __init__(self):
        self.lines = []
        self.depth = 1

    def emit(self, text):
        self.lines.append("    " * self.depth + text)

    def open(self, head):
        self.emit(head + " {")
        self.depth += 1

    def close(self, tail=""):
        self.depth -= 1
        self.emit("}" + tail)

    def text(self):
        return "\n".join(self.lines)


HELPERS = {
    # NaN-propagating max/min; ``a != a`` rather than ``isnan(a)``, which PoCL 3.1 calls
    # out of line (a row max ran 2-4x slower than with the comparison)
    "kiln_fmax_f": ("inline float kiln_fmax_f(float a, float b) "
                    "{ return (a > b || a != a) ? a : b; }"),
    "kiln_fmin_f": ("inline float kiln_fmin_f(float a, float b) "
                    "{ return (a < b || a != a) ? a : b; }"),
    "kiln_fmax_d": ("inline double kiln_fmax_d(double a, double b) "
                    "{ return (a > b || a != a) ? a : b; }"),
    "kiln_fmin_d": ("inline double kiln_fmin_d(double a, double b) "
                    "{ return (a < b || a != a) ? a : b; }"),
    "kiln_ipow_l": ("inline long kiln_ipow_l(long b, long e) { if (e < 0) return 0; long r = 1; "
                    "while (e > 0) { if (e & 1) r *= b; b *= b; e >>= 1; } return r; }"),
    "kiln_ipow_i": ("inline int kiln_ipow_i(int b, int e) { if (e < 0) return 0; int r = 1; "
                    "while (e > 0) { if (e & 1) r *= b; b *= b; e >>= 1; } return r; }"),
    "kiln_floordiv_l": ("inline long kiln_floordiv_l(long a, long d) { long q = a / d; "
                        "return (a % d != 0 && a < 0) ? q - 1 : q; }"),
    "kiln_mod_l": "inline long kiln_mod_l(long a, long d) { long r = a % d; return r < 0 ? r + d : r; }",
    "kiln_floordiv_i": ("inline int kiln_floordiv_i(int a, int d) { int q = a / d; "
                        "return (a % d != 0 && a < 0) ? q - 1 : q; }"),
    "kiln_mod_i": "inline int kiln_mod_i(int a, int d) { int r = a % d; return r < 0 ? r + d : r; }",
    # the float16 forms (opencl_vector): NaN-propagating max/min, and a non-temporal
    # store of a whole 64-byte vector (it needs that alignment; elsewhere, or where the
    # compiler lacks the builtin, an ordinary vector store)
    "kiln_fmax_f16": ("inline float16 kiln_fmax_f16(float16 a, float16 b) "
                      "{ return select(b, a, (a > b) | (a != a)); }"),
    "kiln_fmin_f16": ("inline float16 kiln_fmin_f16(float16 a, float16 b) "
                      "{ return select(b, a, (a < b) | (a != a)); }"),
    "kiln_stream_f16": "\n".join([
        "inline void kiln_stream_f16(float16 v, __global float* p) {",
        "#ifdef __has_builtin",
        "#if __has_builtin(__builtin_nontemporal_store)",
        "    if (((ulong)p & 63) == 0) {",
        "        __builtin_nontemporal_store(v, (__global float16*)p);",
        "        return;",
        "    }",
        "#endif",
        "#endif",
        "    vstore16(v, 0, p);",
        "}"]),
    "kiln_hsum_f16": ("inline float kiln_hsum_f16(float16 v) { const float8 a = v.lo + v.hi; "
                      "const float4 b = a.lo + a.hi; const float2 c = b.lo + b.hi; "
                      "return c.x + c.y; }"),
    # (and kiln_fmax_f/kiln_fmin_f, which they call, sort before them in the preamble)
    "kiln_hmax_f16": ("inline float kiln_hmax_f16(float16 v) { float r = v.s0; "
                      + " ".join(f"r = kiln_fmax_f(r, v.s{c});" for c in "123456789abcdef")
                      + " return r; }"),
    "kiln_hmin_f16": ("inline float kiln_hmin_f16(float16 v) { float r = v.s0; "
                      + " ".join(f"r = kiln_fmin_f(r, v.s{c});" for c in "123456789abcdef")
                      + " return r; }"),
    # expr.checked_index: wrap a negative index; report one out of range, read element 0
    "kiln_check_index": ("inline long kiln_check_index(long i, long n, __global long* rec) { "
                         "long w = i < 0 ? i + n : i; if (w < 0 || w >= n) { rec[0] = 1; "
                         "rec[1] = i; rec[2] = n; return 0; } return w; }"),
}


class ExprPrinter:
    """C expressions for ``Expr``/``Index`` trees, memoised per scope."""

    def __init__(self, out: Lines, buffers, *, fp64=True, narrow_index=False):
        self.out = out
        self.buffers = buffers
        self.fp64 = fp64
        self.narrow_index = narrow_index     # int arithmetic where it provably fits
        self.scopes = [{}]
        self.vars = {}                       # Var -> C expression
        self.accs = {}                       # acc name -> C expression
        self.local_arrays = {}               # buffer number -> C name of a __local array
        self.helpers = set()
        self.counter = 0
        self.uses_fp64 = False

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

    def tmp(self, ty, text, hint="t"):
        self.counter += 1
        name = f"{hint}{self.counter}"
        self.out.emit(f"const {ty} {name} = {text};")
        return name

    def _put(self, key, ty, text, hint="t"):
        name = self.tmp(ty, text, hint)
        self.scopes[-1][key] = name
        return name

    def need(self, dtype, what=""):
        if dtype is float64:
            if not self.fp64:
                raise OpenCLUnsupported(f"float64{(' in ' + what) if what else ''}")
            self.uses_fp64 = True

    # -- indexes ---------------------------------------------------------------------
    def itype(self, index: Index) -> str:
        return "int" if self.narrow_index and index_bound(index) <= INT32_LIMIT else "long"

    def index(self, index: Index, ty=None) -> str:
        """``index`` as a C expression of type ``ty`` (default: the narrowest that fits)."""
        ty = ty or self.itype(index)
        if index.is_const:
            return literal(index.const, _ITYPE[ty])
        key = ("index", index, ty)
        got = self._get(key)
        if got is not None:
            return got
        parts = []
        for atom, c in index.terms:
            v = self._atom(atom, ty)
            parts.append(v if c == 1 else f"{v} * {literal(c, _ITYPE[ty])}")
        text = " + ".join(parts)
        if index.const:
            text += f" + {literal(index.const, _ITYPE[ty])}"
        if len(index.terms) == 1 and index.terms[0][1] == 1 and not index.const:
            return parts[0]
        return self._put(key, ty, text, "i")

    def _atom(self, atom, ty):
        if type(atom) is Var:
            v = self.vars[atom]
            return v if ty == "long" else f"(int){v}"
        if type(atom) is Dyn:
            return f"(({ty}){self.value(atom.expr)})"
        key = ("atom", atom, ty)
        got = self._get(key)
        if got is not None:
            return got
        arg = self.index(atom.arg, ty)
        d = literal(atom.d, _ITYPE[ty])
        if atom.arg.lo >= 0:
            text = f"{arg} {'/' if type(atom) is FloorDiv else '%'} {d}"
        else:
            suffix = "l" if ty == "long" else "i"
            fn = f"kiln_{'floordiv' if type(atom) is FloorDiv else 'mod'}_{suffix}"
            self.helpers.add(fn)
            text = f"{fn}({arg}, {d})"
        return self._put(key, ty, text, "d")

    def in_range(self, index, lo, hi) -> str:
        conds = []
        if index.lo < lo or index.hi >= hi:
            i = self.index(index)
            if index.lo < lo:
                conds.append(f"{i} >= {lo}")
            if index.hi >= hi:
                conds.append(f"{i} < {hi}")
        return "(" + " && ".join(conds) + ")" if conds else "true"

    def address(self, buffer, index) -> str:
        return f"{self.buffer_name(buffer)}[{self.index(index)}]"

    def buffer_name(self, buffer):
        return self.local_arrays.get(buffer, f"b{buffer}")

    # -- values ----------------------------------------------------------------------
    def value(self, e: ex.Expr) -> str:
        if e.op == "const":
            self.need(e.dtype)
            return literal(e.args[0], e.dtype)
        if e.op == "acc":
            return self.accs[e.args[0]]
        got = self._get(e)
        if got is not None:
            return got
        self.need(e.dtype, f"a {e.op} expression")
        return self._put(e, ctype(e.dtype), self._value(e))

    def load_text(self, buffer, index, dtype):
        text = self.address(buffer, index)
        return f"({text} != 0)" if dtype is bool_ else text

    def _value(self, e):
        op, t = e.op, e.dtype
        if op == "load":
            buffer, index, guards, fill = e.args
            if not guards:
                return self.load_text(buffer, index, t)
            conds = [self.in_range(gi, lo, hi) for gi, lo, hi in guards]
            conds = [c for c in conds if c != "true"]
            load = self.load_text(buffer, index, t)
            if not conds:
                return load
            return f"({' && '.join(conds)}) ? {load} : {literal(fill, t)}"
        if op == "index":
            return f"(long)({self.index(e.args[0])})"
        if op == "check_index":
            i, size, record = e.args
            self.helpers.add("kiln_check_index")
            return f"kiln_check_index({self.value(i)}, {size}L, {self.buffer_name(record)})"
        if op == "inrange":
            return self.in_range(*e.args)
        if op == "where":
            c, a, b = (self.value(x) for x in e.args)
            return f"{c} ? {a} : {b}"
        if op == "cast":
            return self._cast(self.value(e.args[0]), e.args[0].dtype, t)
        if op in ex.COMPARE:
            a, b = self.value(e.args[0]), self.value(e.args[1])
            sym = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
            return f"{a} {sym} {b}"
        if op in ex.UNARY:
            return self._unary(op, self.value(e.args[0]), t)
        if op in ex.BINARY:
            return self._binary(op, self.value(e.args[0]), self.value(e.args[1]), t)
        raise NotImplementedError(f"OpenCL printer: no rule for expression op {op!r}")

    def _cast(self, v, src, dst):
        self.need(src, "a cast")
        if dst is bool_:
            return f"{v} != {literal(0, src)}" if src is not bool_ else v
        return f"({ctype(dst)}){v}"

    def _unary(self, op, x, t):
        if op == "not":
            return f"!{x}"
        if t is bool_ and op in ("neg", "abs", "sign", "floor", "trunc"):
            return x
        if t.category != FLOAT:
            ty = ctype(t)
            if op == "neg":
                return f"-{x}"
            if op == "abs":
                return f"{x} < 0 ? -{x} : {x}"
            if op == "sign":
                return f"({ty})(({x} > 0) - ({x} < 0))"
            if op in ("floor", "trunc"):
                return x
            raise NotImplementedError(f"{op} on {t.name}")
        one = literal(1, t)
        if op == "neg":
            return f"-{x}"
        if op == "abs":
            return f"fabs({x})"
        if op == "sign":
            return f"{x} > 0 ? {one} : ({x} < 0 ? {literal(-1, t)} : {x})"
        if op == "sigmoid":
            # full-precision exp and division on purpose: native_exp/native_recip and
            # -cl-fast-relaxed-math gave W1 no measurable speed (it is memory-bound on
            # Intel's CPU runtime, whose exp is a vector SVML call) for 100x the error
            return f"{one} / ({one} + exp(-{x}))"
        if op in ("exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "erf", "floor", "trunc"):
            return f"{op}({x})"
        raise NotImplementedError(f"{op} on {t.name}")

    def _binary(self, op, a, b, t):
        if t is bool_:
            sym = {"add": "||", "mul": "&&", "sub": "!=", "and": "&&", "or": "||",
                   "max": "||", "min": "&&"}.get(op)
            if sym is None:
                raise NotImplementedError(f"{op} on bool")
            return f"{a} {sym} {b}"
        if op in ("and", "or"):
            return f"{a} {'&' if op == 'and' else '|'} {b}"
        if t.category == FLOAT:
            if op in ("add", "sub", "mul", "div"):
                return f"{a} {dict(add='+', sub='-', mul='*', div='/')[op]} {b}"
            if op in ("max", "min"):
                fn = f"kiln_f{op}_{'f' if t is float32 else 'd'}"
                self.helpers.add(fn)
                return f"{fn}({a}, {b})"
            if op == "pow":
                return f"pow({a}, {b})"
        else:
            if op in ("add", "sub", "mul"):
                return f"{a} {dict(add='+', sub='-', mul='*')[op]} {b}"
            if op in ("max", "min"):
                return f"{op}({a}, {b})"
            if op == "div":      # NumPy: true division, truncated by the cast back
                return f"{b} == 0 ? 0 : {a} / {b}"
            if op == "pow":
                fn = f"kiln_ipow_{'l' if t.itemsize == 8 else 'i'}"
                self.helpers.add(fn)
                return f"{fn}({a}, {b})"
        raise NotImplementedError(f"{op} on {t.name}")




# -- reductions --------------------------------------------------------------------------
def identity(op, dtype):
    if op in ("sum", "any"):
        return literal(0, dtype)
    if op == "all":
        return "true"
    if dtype is bool_:
        return "false" if op in ("max", "argmax") else "true"
    if dtype.category == FLOAT:
        return literal(-math.inf if op in ("max", "argmax") else math.inf, dtype)
    bits = dtype.itemsize * 8
    return literal(-2 ** (bits - 1) if op in ("max", "argmax") else 2 ** (bits - 1) - 1, dtype)


def combine(p: ExprPrinter, op, acc, v, dtype):
    """The C expression of ``acc (op) v``."""
    if op == "sum":
        return f"{acc} || {v}" if dtype is bool_ else f"{acc} + {v}"
    if op == "any":
        return f"{acc} || {v}"
    if op == "all":
        return f"{acc} && {v}"
    if op in ("max", "min"):
        return p._binary(op, acc, v, dtype)
    raise NotImplementedError(op)


def better(op, v, best, dtype):
    """argmax/argmin: does ``v`` beat ``best``? NaN beats numbers (NumPy's first NaN)."""
    sym = ">" if op == "argmax" else "<"
    if dtype.category == FLOAT:
        return f"({v} {sym} {best} || (isnan({v}) && !isnan({best})))"
    return f"({v} {sym} {best})"


# -- whole programs ------------------------------------------------------------------------
def buffer_params(kernel, skip_local=True):
    """Kernel parameters and the lines that form each buffer's pointer ``bI = pI + oI``."""
    params, setup = [], []
    for i, b in enumerate(kernel.buffers):
        if b.local and skip_local:
            continue
        ty = ctype(b.dtype, memory=True)
        const = "" if b.written else "const "
        params.append(f"__global {const}{ty}* restrict p{i}")
        params.append(f"const long o{i}")
        setup.append(f"__global {const}{ty}* restrict b{i} = p{i} + o{i};")
    return params, setup


def header(kernel, kind):
    """The comment block that opens a kernel's text: what it computes and from where."""
    lines = [f"// kernel {kernel.name} ({kind})"]
    for loc in kernel.locs:
        lines.append(f"//   from {loc}")
    for i, b in enumerate(kernel.buffers):
        what = "row buffer" if b.local else f"%{b.node}"
        lines.append(f"//   b{i} = {what} {b.dtype.name}{list(b.shape)}{' (out)' if b.written else ''}")
    return "\n".join(lines)


def preamble(helpers, fp64):
    """What a program needs before its kernels: the fp64 pragma and helper functions."""
    lines = ["#pragma OPENCL EXTENSION cl_khr_fp64 : enable"] if fp64 else []
    lines += [HELPERS[name] for name in sorted(helpers)]
    return "\n".join(lines)


def uses_fp64(kernel, printer: ExprPrinter):
    return printer.uses_fp64 or any(b.dtype is float64 for b in kernel.buffers)


def check_fp64(kernel, fp64):
    if fp64:
        return
    for b in kernel.buffers:
        if b.dtype is float64:
            raise OpenCLUnsupported(f"a float64 buffer ({b.name})")


__all__ = ["ExprPrinter", "Lines", "OpenCLUnsupported", "ctype", "literal", "identity",
           "combine", "better", "buffer_params", "header", "preamble", "uses_fp64", "check_fp64"]
