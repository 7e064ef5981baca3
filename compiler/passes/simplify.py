"""Algebraic simplification: a table of small, named rewrite rules.

A rule looks at one node and returns the node that can stand in for it (an existing
one, or a cheaper one it adds), or None. ``simplify`` points the node's users (and the
graph outputs) at the replacement and removes the original; arguments only the original
read are left for DCE. Rules are plain functions named after what they do, so the log
says which fired (``simplify: mul_by_one x2, permute_of_permute x1``).

Every rule is *exact*: the rewritten graph computes, bit for bit, what the reference
kernels compute, IEEE-754 corner cases included. That is why some familiar identities
are missing or narrowed:
- ``x * 0 -> 0`` only for integers and bools: for floats ``nan * 0`` and ``inf * 0`` are
  NaN, and ``-1.0 * 0`` is ``-0.0``;
- ``x + 0 -> x`` for floats only when the constant is ``-0.0``: ``-0.0 + 0.0`` is
  ``+0.0``. Dually ``x - 0 -> x`` only for ``+0.0``. (Integers: any zero.)
- ``sum`` over no axes is ``0 + x`` in NumPy and PyTorch alike, so it is dropped only
  for integers and bools; ``amax``/``amin`` over no axes always;
- ``x / 1`` only for floats: the integer kernel divides in float64, which rounds int64
  values beyond 2**53.
Arithmetic rules skip bool tensors, whose ``neg``/``sub`` kernels raise: a rewrite must
not turn a failing graph into a working one.

A rule that removes a broadcasting op keeps the broadcast (``x * ones(4, 3)`` with ``x``
of shape ``(3,)`` becomes ``expand(x, (4, 3))``) and would keep a dtype change as a
``cast``: the replacement always has the replaced node's shape and dtype.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..dtypes import BOOL, FLOAT

RULES: dict = {}   # op name -> [rule, ...], tried in order
MAX_SWEEPS = 10


def rule(*ops):
    """Register the decorated function as a rule for nodes of ``ops``."""
    def wrap(fn):
        for op in ops:
            RULES.setdefault(op, []).append(fn)
        return fn
    return wrap


# -- helpers rules share ----------------------------------------------------------------------
def splat(graph, n):
    """The one value every element of node ``n`` holds (bit-identically) if ``n`` is a
    constant, or a broadcast of one (as ``zeros_like`` makes); else None."""
    d = graph.nodes[n]
    if d["op"] == "expand":
        return splat(graph, d["args"][0])
    if d["op"] != "const":
        return None
    flat = np.ascontiguousarray(d["attrs"]["value"]).reshape(-1)
    if flat.size == 0:
        return None
    bits = flat.view(f"u{flat.dtype.itemsize}")
    return flat[0] if np.all(bits == bits[0]) else None


def _is_one(graph, n):
    v = splat(graph, n)
    return v is not None and v == 1


def _is_zero(graph, n, *, negative=None):
    """A constant zero; for floats ``negative`` picks -0.0 (True) or +0.0 (False)."""
    v = splat(graph, n)
    if v is None or v != 0:
        return False
    if graph.nodes[n]["dtype"].category == FLOAT and negative is not None:
        return bool(np.signbit(v)) == negative
    return True


def _category(graph, n):
    return graph.nodes[n]["dtype"].category


def _arg(graph, n, i=0):
    return graph.nodes[n]["args"][i]


def _op(graph, n):
    return graph.nodes[n]["op"]


def stand_in(graph, n, x):
    """``x`` made to look exactly like node ``n``: cast and/or broadcast if it has to be."""
    d = graph.nodes[n]
    if graph.nodes[x]["dtype"] != d["dtype"]:
        x = graph.add_op("cast", [x], {"dtype": d["dtype"]}, loc=d["loc"])
    if tuple(graph.nodes[x]["shape"]) != tuple(d["shape"]):
        x = graph.add_op("expand", [x], {"shape": tuple(d["shape"])}, loc=d["loc"])
    return x


def _other_if(graph, n, test):
    """For a binary node: the argument whose partner passes ``test``, else None."""
    a, b = graph.nodes[n]["args"]
    if test(graph, b):
        return a
    if test(graph, a):
        return b
    return None


# -- arithmetic identities --------------------------------------------------------------------
@rule("mul")
def mul_by_one(graph, n):
    x = _other_if(graph, n, _is_one)
    return None if x is None else stand_in(graph, n, x)


@rule("mul")
def int_mul_by_zero(graph, n):
    if _category(graph, n) == FLOAT:
        return None           # nan * 0, inf * 0 and -1.0 * 0 are not +0.0
    a, b = graph.nodes[n]["args"]
    zero = b if _is_zero(graph, b) else a if _is_zero(graph, a) else None
    return None if zero is None else stand_in(graph, n, zero)


@rule("add")
def add_zero(graph, n):
    x = _other_if(graph, n, lambda g, c: _is_zero(g, c, negative=True))
    return None if x is None else stand_in(graph, n, x)


@rule("sub")
def sub_zero(graph, n):
    x, c = graph.nodes[n]["args"]
    if _category(graph, n) == BOOL or not _is_zero(graph, c, negative=False):
        return None
    return stand_in(graph, n, x)


@rule("div")
def div_by_one(graph, n):
    x, c = graph.nodes[n]["args"]
    if _category(graph, n) != FLOAT or not _is_one(graph, c):
        return None
    return stand_in(graph, n, x)


@rule("pow")
def pow_one(graph, n):
    x, c = graph.nodes[n]["args"]
    if _category(graph, n) == BOOL or not _is_one(graph, c):
        return None
    return stand_in(graph, n, x)


@rule("neg")
def neg_neg(graph, n):
    inner = _arg(graph, n)
    if _category(graph, n) == BOOL or _op(graph, inner) != "neg":
        return None
    return _arg(graph, inner)


@rule("abs", "relu", "sign")
def idempotent_twice(graph, n):
    """f(f(x)) = f(x) for abs, relu and sign."""
    inner = _arg(graph, n)
    return inner if _op(graph, inner) == _op(graph, n) else None


@rule("logical_not")
def not_not(graph, n):
    inner = _arg(graph, n)
    if _op(graph, inner) != "logical_not" or _category(graph, _arg(graph, inner)) != BOOL:
        return None           # not(not(x)) of a number is x != 0, not x
    return _arg(graph, inner)


@rule("where")
def where_same_branches(graph, n):
    _, a, b = graph.nodes[n]["args"]
    return stand_in(graph, n, a) if a == b else None


@rule("where")
def where_known_condition(graph, n):
    c, a, b = graph.nodes[n]["args"]
    v = splat(graph, c)
    return None if v is None else stand_in(graph, n, a if v else b)


@rule("sum", "amax", "amin")
def reduce_over_no_axes(graph, n):
    d = graph.nodes[n]
    if tuple(d["attrs"]["axes"]) or (d["op"] == "sum" and d["dtype"].category == FLOAT):
        return None           # a float sum is 0 + x, which turns -0.0 into +0.0
    return _arg(graph, n)


# -- movement ---------------------------------------------------------------------------------
def _reshaped(graph, x, shape, loc):
    if tuple(graph.nodes[x]["shape"]) == tuple(shape):
        return x
    return graph.add_op("reshape", [x], {"shape": tuple(shape)}, loc=loc)


@rule("reshape")
def reshape_to_same_shape(graph, n):
    x = _arg(graph, n)
    return x if tuple(graph.nodes[x]["shape"]) == tuple(graph.nodes[n]["shape"]) else None


@rule("reshape")
def reshape_of_reshape(graph, n):
    inner = _arg(graph, n)
    if _op(graph, inner) != "reshape":
        return None
    d = graph.nodes[n]
    return _reshaped(graph, _arg(graph, inner), d["attrs"]["shape"], d["loc"])


@rule("permute")
def identity_permute(graph, n):
    perm = graph.nodes[n]["attrs"]["perm"]
    return _arg(graph, n) if tuple(perm) == tuple(range(len(perm))) else None


@rule("permute")
def permute_of_permute(graph, n):
    """permute(permute(x, p), q) = permute(x, p[q[i]] for i): dimension i of the outer
    result is dimension q[i] of the inner one, which is dimension p[q[i]] of x."""
    inner = _arg(graph, n)
    if _op(graph, inner) != "permute":
        return None
    p, q = graph.nodes[inner]["attrs"]["perm"], graph.nodes[n]["attrs"]["perm"]
    composed = tuple(p[i] for i in q)
    x = _arg(graph, inner)
    if composed == tuple(range(len(composed))):
        return x
    return graph.add_op("permute", [x], {"perm": composed}, loc=graph.nodes[n]["loc"])


@rule("expand")
def expand_to_same_shape(graph, n):
    x = _arg(graph, n)
    return x if tuple(graph.nodes[x]["shape"]) == tuple(graph.nodes[n]["shape"]) else None


@rule("expand")
def expand_of_expand(graph, n):
    inner = _arg(graph, n)
    if _op(graph, inner) != "expand":
        return None
    return stand_in(graph, n, _arg(graph, inner))


@rule("index")
def index_everything(graph, n):
    """x[:, :, ...] with one full, step-1 slice per dimension and no index tensors."""
    d = graph.nodes[n]
    x, spec = d["args"][0], d["attrs"]["spec"]
    shape = graph.nodes[x]["shape"]
    if len(d["args"]) != 1 or len(spec) != len(shape):
        return None
    for item, size in zip(spec, shape):
        if item[0] != "slice" or slice(*item[1:]).indices(size) != (0, size, 1):
            return None
    return x


@rule("pad")
def pad_nothing(graph, n):
    pads = graph.nodes[n]["attrs"]["pads"]
    return _arg(graph, n) if all(lo == 0 and hi == 0 for lo, hi in pads) else None


@rule("cat")
def cat_of_one(graph, n):
    args = graph.nodes[n]["args"]
    return args[0] if len(args) == 1 else None


# -- casts ------------------------------------------------------------------------------------
# (from, to) pairs that keep every value exactly, so a later cast sees the original value
_LOSSLESS = {("bool", t) for t in ("int32", "int64", "float32", "float64")} | {
    ("int32", "int64"), ("int32", "float64"), ("float32", "float64")}


@rule("cast")
def cast_to_same_dtype(graph, n):
    x = _arg(graph, n)
    return x if graph.nodes[x]["dtype"] == graph.nodes[n]["dtype"] else None


@rule("cast")
def cast_of_lossless_cast(graph, n):
    inner = _arg(graph, n)
    if _op(graph, inner) != "cast":
        return None
    x = _arg(graph, inner)
    if (graph.nodes[x]["dtype"].name, graph.nodes[inner]["dtype"].name) not in _LOSSLESS:
        return None
    return stand_in(graph, n, x)


# -- the pass ---------------------------------------------------------------------------------
def _rewrite_once(graph, fired):
    changed = False
    for n in graph.topological_order():
        if n not in graph.g:
            continue
        for fn in RULES.get(graph.nodes[n]["op"], ()):
            replacement = fn(graph, n)
            if replacement is None or replacement == n:
                continue
            graph.replace_uses(n, replacement)
            graph.remove(n)
            fired[fn.__name__] += 1
            changed = True
            break
    return changed


def simplify(graph, log=None):
    fired = Counter()
    for _ in range(MAX_SWEEPS):
        if not _rewrite_once(graph, fired):
            break
    if log is not None and fired:
        log("  simplify: " + ", ".join(f"{name} x{k}" for name, k in sorted(fired.items())))
    return graph
