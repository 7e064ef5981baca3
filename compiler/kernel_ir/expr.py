"""Scalar expressions: what a kernel computes for one element.

An ``Expr`` is an immutable node ``(op, dtype, args)``. Leaves are constants, loads
(a buffer, an ``Index`` into it, optional guards with a fill value), references to a
reduction's result (``acc``) and index values; inner nodes are the neutral scalar ops
below. Printers (LLVM today, OpenCL later) map each op to their own instructions, so
nothing here is specific to a backend. Identical subtrees compare equal, which is how
printers share common subexpressions.
"""
from __future__ import annotations

from ..dtypes import DType, bool_, int64

UNARY = ("neg", "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "sigmoid", "erf",
         "abs", "sign", "not", "floor", "trunc")
BINARY = ("add", "sub", "mul", "div", "pow", "max", "min", "and", "or")
COMPARE = ("eq", "ne", "lt", "le", "gt", "ge")
TRANSCENDENTAL = ("exp", "log", "log1p", "sin", "cos", "tanh", "sigmoid", "erf", "pow")

# rough cost in flops, used for fusion decisions and the GFLOP/s estimate
COST = {**{op: 1 for op in UNARY + BINARY + COMPARE}, "div": 4, "sqrt": 4, "where": 1,
        "cast": 1, **{op: 20 for op in TRANSCENDENTAL}}


class Expr:
    __slots__ = ("op", "dtype", "args", "_hash", "_text")

    def __init__(self, op: str, dtype: DType, args: tuple):
        self.op, self.dtype, self.args = op, dtype, args
        self._hash = hash((op, dtype.name, args))
        self._text = None

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return self is other or (type(other) is Expr and self._hash == other._hash
                                 and self.op == other.op and self.dtype is other.dtype
                                 and self.args == other.args)

    @property
    def children(self):
        return [a for a in self.args if type(a) is Expr]

    @property
    def text(self):
        """A canonical, process-independent rendering (used for ordering and debugging)."""
        if self._text is None:
            if self.op == "const":
                self._text = f"{self.args[0]!r}:{self.dtype.name}"
            elif self.op == "load":
                buf, index, guards, fill = self.args
                g = "".join(f" if {lo}<={i.text}<{hi}" for i, lo, hi in guards)
                self._text = f"b{buf}[{index.text}]{g}" + (f" else {fill!r}" if guards else "")
            elif self.op == "acc":
                self._text = self.args[0]
            elif self.op == "index":
                self._text = f"index({self.args[0].text})"
            elif self.op == "inrange":
                i, lo, hi = self.args
                self._text = f"({lo} <= {i.text} < {hi})"
            else:
                inner = ", ".join(a.text if type(a) is Expr else repr(a) for a in self.args)
                self._text = f"{self.op}:{self.dtype.name}({inner})"
        return self._text

    def __repr__(self):
        return self.text


# -- constructors ------------------------------------------------------------------------
def const(value, dtype: DType) -> Expr:
    if dtype.category == 0:
        value = bool(value)
    elif dtype.category == 1:
        value = int(value)
    else:
        value = float(value)
    return Expr("const", dtype, (value,))


def load(buffer: int, index, dtype: DType, guards=(), fill=0) -> Expr:
    return Expr("load", dtype, (buffer, index, tuple(guards), fill if guards else 0))


def acc(name: str, dtype: DType) -> Expr:
    return Expr("acc", dtype, (name,))


def index_value(index) -> Expr:
    return Expr("index", int64, (index,))


def inrange(index, lo, hi) -> Expr:
    return Expr("inrange", bool_, (index, int(lo), int(hi)))


def checked_index(i: Expr, size: int, record: int) -> Expr:
    """A data-dependent index into a dimension of ``size``: negative values count from
    the end; a value outside ``[-size, size)`` is written to the error record (buffer
    ``record``: flag, value, size), which makes the compiled call raise IndexError as
    eager mode does, and reads element 0 meanwhile (memory safety: kernels cannot stop)."""
    return Expr("check_index", int64, (i, int(size), int(record)))


def cast(x: Expr, dtype: DType) -> Expr:
    if x.dtype is dtype:
        return x
    if x.op == "const":
        import numpy as np
        return const(np.asarray(x.args[0], x.dtype.np).astype(dtype.np).item(), dtype)
    return Expr("cast", dtype, (x,))


def unary(op: str, x: Expr) -> Expr:
    assert op in UNARY, op
    return Expr(op, bool_ if op == "not" else x.dtype, (x,))


def binary(op: str, a: Expr, b: Expr) -> Expr:
    assert op in BINARY, op
    assert a.dtype is b.dtype, (op, a.dtype, b.dtype)
    return Expr(op, a.dtype, (a, b))


def compare(op: str, a: Expr, b: Expr) -> Expr:
    assert op in COMPARE, op
    assert a.dtype is b.dtype, (op, a.dtype, b.dtype)
    return Expr(op, bool_, (a, b))


def where(c: Expr, a: Expr, b: Expr) -> Expr:
    assert c.dtype is bool_ and a.dtype is b.dtype, (c.dtype, a.dtype, b.dtype)
    if c.op == "const":
        return a if c.args[0] else b
    if a == b:
        return a
    return Expr("where", a.dtype, (c, a, b))


def truthy(x: Expr) -> Expr:
    """``x != 0`` as a bool (NumPy's truth value; NaN counts as true)."""
    if x.dtype is bool_:
        return x
    return compare("ne", x, const(0, x.dtype))


# -- walking ---------------------------------------------------------------------------
def walk(roots):
    """Every distinct node reachable from ``roots``, children before parents."""
    seen, order = set(), []
    stack = [(r, False) for r in reversed(list(roots))]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for c in reversed(node.children):
            if c not in seen:
                stack.append((c, False))
        for a in node.args:   # expressions inside data-dependent indexes
            if type(a).__name__ == "Index":
                for sub in dyn_exprs(a):
                    if sub not in seen:
                        stack.append((sub, False))
            elif type(a) is tuple and node.op == "load":
                for g in a:
                    for sub in dyn_exprs(g[0]):
                        if sub not in seen:
                            stack.append((sub, False))
    return order


def dyn_exprs(index):
    """Scalar expressions used inside ``index`` (by ``Dyn`` atoms)."""
    from .index import Dyn, FloorDiv, Mod
    out = []
    for a, _ in index.terms:
        if type(a) is Dyn:
            out.append(a.expr)
        elif type(a) in (FloorDiv, Mod):
            out.extend(dyn_exprs(a.arg))
    return out


def flops(roots) -> int:
    return sum(COST.get(n.op, 0) for n in walk(roots))


def loads(roots):
    return [n for n in walk(roots) if n.op == "load"]
