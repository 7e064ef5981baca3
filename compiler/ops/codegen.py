"""Each primitive's code-generation rule, keyed by its registry name (``OpDef.expr``).

A rule says which kernel *form* the op takes and how to compute it:

- ``pointwise``: ``fn(ctx, **attrs) -> Expr``, the value of one output element. ``ctx``
  (supplied by ``compiler.lowering``) exposes the output index ``ctx.idx``,
  ``ctx.arg(i)`` (input i at the broadcast index) and ``ctx.read(i, idx, guards, fill)``
  (input i anywhere, with out-of-range positions reading ``fill``). Movement ops are
  pointwise too: they only transform the index, so they fold into addressing.
- ``reduce``: the combining operation; the lowering builds the loops.
- ``matmul``: the blocked matmul template.
- ``scatter``: a sequential accumulate/assign pass (data-dependent writes).

``install()`` stores each rule in its ``OpDef.expr`` and checks that every registered op
has one; ops with no rule would run their NumPy reference kernel as an "opaque" kernel.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Optional

from ..dtypes import FLOAT, bool_, int64
from ..kernel_ir import expr as ex
from ..kernel_ir.index import Dyn, Idx, Index
from .indexing import build_index  # noqa: F401  (documents the spec format used below)
from .movement import cat_skips
from .registry import REGISTRY


@dataclass(frozen=True)
class Codegen:
    form: str                              # pointwise | reduce | matmul | scatter
    fn: Optional[Callable] = None          # pointwise: (ctx, **attrs) -> Expr
    combine: Optional[str] = None          # reduce: sum, max, min, argmax, argmin, mean
    cost: object = 1                       # rough flops per output element, or a function
                                           # (arg_shapes, attrs) -> that number
    choose: Optional[Callable] = None      # (arg_shapes, out_shape, attrs) -> form, if it varies
    scatter: Optional[Callable] = None     # scatter: (ctx, **attrs) -> ScatterSpec

    def form_for(self, arg_shapes, out_shape, attrs) -> str:
        return self.choose(arg_shapes, out_shape, attrs) if self.choose else self.form

    def cost_for(self, arg_shapes, attrs) -> int:
        return self.cost(arg_shapes, attrs) if callable(self.cost) else self.cost


@dataclass
class ScatterSpec:
    """What a scatter kernel does: out = init; for each source point: out[pos] (+)= value."""

    init: Callable        # (ctx) -> Expr at ctx.idx (output index)
    source_shape: tuple
    position: Callable    # (ctx, src_idx) -> output dims tuple (Indexes)
    value: Callable       # (ctx, src_idx) -> Expr
    accumulate: bool


RULES: dict[str, Codegen] = {}


def rule(name, form="pointwise", cost=1, **kw):
    def wrap(fn=None):
        RULES[name] = Codegen(form, fn=fn, cost=cost, **kw)
        return fn
    return wrap


# -- elementwise ---------------------------------------------------------------------------
for _op in ("neg", "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "sigmoid", "erf",
            "abs", "sign", "floor", "trunc"):
    rule(_op, cost=ex.COST[_op])((lambda op: lambda ctx: ex.unary(op, ctx.arg(0)))(_op))

for _name, _op in (("add", "add"), ("sub", "sub"), ("mul", "mul"), ("div", "div"),
                   ("maximum", "max"), ("minimum", "min")):
    rule(_name, cost=ex.COST[_op])((lambda op: lambda ctx: ex.binary(op, ctx.arg(0), ctx.arg(1)))(_op))

for _op in ex.COMPARE:
    rule(_op)((lambda op: lambda ctx: ex.compare(op, ctx.arg(0), ctx.arg(1)))(_op))

rule("logical_and")(lambda ctx: ex.binary("and", ex.truthy(ctx.arg(0)), ex.truthy(ctx.arg(1))))
rule("logical_or")(lambda ctx: ex.binary("or", ex.truthy(ctx.arg(0)), ex.truthy(ctx.arg(1))))
rule("logical_not")(lambda ctx: ex.unary("not", ex.truthy(ctx.arg(0))))
rule("where")(lambda ctx: ex.where(ctx.arg(0), ctx.arg(1), ctx.arg(2)))
rule("copy", cost=0)(lambda ctx, order="C": ctx.arg(0))
rule("stop_gradient", cost=0)(lambda ctx: ctx.arg(0))
rule("cast")(lambda ctx, dtype: ex.cast(ctx.arg(0), dtype))


@rule("relu")
def _relu(ctx):
    x = ctx.arg(0)
    return ex.binary("max", x, ex.const(0, x.dtype)) if x.dtype is not bool_ else x


@rule("clamp")
def _clamp(ctx, lo, hi):
    x = ctx.arg(0)
    if lo is not None:
        x = ex.binary("max", x, ex.const(lo, x.dtype))
    if hi is not None:
        x = ex.binary("min", x, ex.const(hi, x.dtype))
    return x


@rule("pow", cost=ex.COST["pow"])
def _pow(ctx):
    """Small constant float exponents become multiplies (NumPy's own fast paths)."""
    a, b = ctx.arg(0), ctx.arg(1)
    if b.op == "const" and a.dtype.category == FLOAT:
        e = b.args[0]
        one = ex.const(1, a.dtype)
        if e == 1:
            return a
        if e == 2:
            return ex.binary("mul", a, a)
        if e == 3:
            return ex.binary("mul", ex.binary("mul", a, a), a)
        if e == 0.5:
            return ex.unary("sqrt", a)
        if e == 0:
            return one
        if e == -1:
            return ex.binary("div", one, a)
        if e == -2:
            return ex.binary("div", one, ex.binary("mul", a, a))
    return ex.binary("pow", a, b)


# -- movement ------------------------------------------------------------------------------
rule("reshape", cost=0)(lambda ctx, shape: ctx.read(0, ctx.idx.reshape(ctx.shapes[0])))


@rule("permute", cost=0)
def _permute(ctx, perm):
    out = ctx.idx.dims
    dims = [None] * len(perm)
    for i, p in enumerate(perm):
        dims[p] = out[i]
    return ctx.read(0, Idx(ctx.shapes[0], dims=dims))


@rule("expand", cost=0)
def _expand(ctx, shape):
    return ctx.arg(0)   # broadcasting a read is exactly expand


@rule("cat", cost=0)
def _cat(ctx, axis):
    out = ctx.idx.dims
    i = out[axis]
    start, value = 0, None
    parts = []
    for k, shape in enumerate(ctx.shapes):
        if cat_skips(shape):
            continue  # PyTorch's legacy rule, as in the op's shape rule
        n = shape[axis]
        if n:
            dims = list(out)
            dims[axis] = i - start
            parts.append((start, start + n, ctx.read(k, Idx(shape, dims=dims), [(i, start, start + n)])))
        start += n
    value = parts[-1][2]
    for lo, hi, part in reversed(parts[:-1]):
        value = ex.where(ex.inrange(i, lo, hi), part, value)
    return value


@rule("pad", cost=0)
def _pad(ctx, pads, value):
    out = ctx.idx.dims
    dims, guards = [], []
    for d, (n, (lo, hi)) in enumerate(zip(ctx.shapes[0], pads)):
        j = out[d] - lo
        dims.append(j)
        if lo or hi:
            guards.append((j, 0, n))
    return ctx.read(0, Idx(ctx.shapes[0], dims=dims), guards, fill=value)


def _wrap_clamp(ctx, i: ex.Expr, n: int) -> Index:
    """A data-dependent index into a dimension of size ``n``: negative values count from
    the end; out-of-range values are reported through the graph's error record (the
    compiled call then raises IndexError, as eager mode does) and read element 0."""
    checked = ex.checked_index(ex.cast(i, int64), n, ctx.low.error_record())
    return Index.of(Dyn(checked, 0, max(n - 1, 0)))


def _basic_index_map(spec, x_shape, out_dims, tensor_dims=None):
    """Map output dims of ``x[spec]`` to x's dims (+ guards for None). ``tensor_dims``
    supplies x's dim for each ("tensor",) entry."""
    dims, k, t = [], 0, 0
    for item in spec:
        tag = item[0]
        if tag == "int":
            n = x_shape[len(dims)]
            dims.append(Index.of(item[1] % n if n else 0))
        elif tag == "slice":
            n = x_shape[len(dims)]
            start, stop, step = slice(item[1], item[2], item[3]).indices(n)
            dims.append(out_dims[k] * step + start)
            k += 1
        elif tag == "none":
            k += 1
        elif tag == "tensor":
            dims.append(tensor_dims[t])
            t += 1
    while len(dims) < len(x_shape):        # trailing dims not named by the spec
        dims.append(out_dims[k])
        k += 1
    return dims


def _advanced_layout(spec, n_out):
    """For specs with index tensors: (positions in the output of the broadcast index dims,
    output dim for each basic entry). NumPy puts the broadcast dims where the first index
    tensor is if all index tensors are adjacent, else in front."""
    tpos = [i for i, item in enumerate(spec) if item[0] == "tensor"]
    adjacent = tpos == list(range(tpos[0], tpos[0] + len(tpos)))
    return adjacent, tpos


@rule("index", cost=0, choose=lambda shapes, out, attrs: "pointwise")
def _index(ctx, spec):
    x_shape = ctx.shapes[0]
    out = ctx.idx.dims
    if ctx.nargs == 1:
        return ctx.read(0, Idx(x_shape, dims=_basic_index_map(spec, x_shape, out)))
    # advanced indexing: where in x each output position reads (shared with the scatters)
    position = _advanced_position(spec, x_shape, ctx.shapes[1:], ctx.idx.shape)
    return ctx.read(0, Idx(x_shape, dims=position(ctx, ctx.idx, 1)))


def _broadcast(shapes):
    n = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-n, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i} - {1}
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _has_tensor(attrs):
    return any(item[0] == "tensor" for item in attrs["spec"])


def _inverse_basic_index(ctx, spec, x_shape):
    """(guards, region dims): output position ``ctx.idx`` (of x's shape) lies in the region
    ``x[spec]`` when the guards hold, at these dims of the region (the adjoint of basic
    indexing; basic indices never repeat, so there is at most one such position)."""
    out = ctx.idx.dims
    rdims, guards, d = [], [], 0
    for item in spec:
        tag = item[0]
        if tag == "int":
            n = x_shape[d]
            guards.append((out[d], item[1] % n, item[1] % n + 1))
            d += 1
        elif tag == "slice":
            n = x_shape[d]
            start, stop, step = slice(item[1], item[2], item[3]).indices(n)
            count = len(range(start, stop, step))
            rel = out[d] - start if step > 0 else Index.of(start) - out[d]
            step = abs(step)
            j = rel.floordiv(step)
            if step > 1:
                guards.append((rel.mod(step), 0, 1))
            guards.append((j, 0, count))
            rdims.append(j)
            d += 1
        elif tag == "none":
            rdims.append(Index())
    while d < len(x_shape):
        rdims.append(out[d])
        d += 1
    return guards, rdims


@rule("index_backward", cost=1,
      choose=lambda shapes, out, attrs: "scatter" if _has_tensor(attrs) else "pointwise")
def _index_backward(ctx, spec, shape):
    guards, rdims = _inverse_basic_index(ctx, spec, shape)
    return ctx.read(0, Idx(ctx.shapes[0], dims=rdims), guards, fill=0)


@rule("index_put", cost=1,
      choose=lambda shapes, out, attrs: "scatter" if _has_tensor(attrs) else "pointwise")
def _index_put(ctx, spec):
    x = ctx.arg(0)
    guards, rdims = _inverse_basic_index(ctx, spec, ctx.shapes[0])
    vshape = ctx.shapes[1]                      # v broadcasts against the region
    lead = len(rdims) - len(vshape)
    vdims = [Index() if n == 1 else rdims[lead + j] for j, n in enumerate(vshape)]
    v = ctx.read(1, Idx(vshape, dims=vdims), guards, fill=0)
    return ex.where(_all(guards), v, x) if guards else v


def _all(guards):
    c = ex.const(True, bool_)
    for i, lo, hi in guards:
        g = ex.inrange(i, lo, hi)
        c = g if c.op == "const" else ex.binary("and", c, g)
    return c


@rule("gather", cost=0)
def _gather(ctx, axis):
    out = ctx.idx.dims
    j = _wrap_clamp(ctx, ctx.read(1, ctx.idx), ctx.shapes[0][axis])
    dims = list(out)
    dims[axis] = j
    return ctx.read(0, Idx(ctx.shapes[0], dims=dims))


SMALL_SCATTER = 16


@rule("scatter_add", cost=2,
      choose=lambda shapes, out, attrs: "pointwise" if shapes[1][attrs["axis"]] <= SMALL_SCATTER
      else "scatter")
def _scatter_add(ctx, axis, shape):
    """out[..i..] = sum_j [idx[..j..] == i] g[..j..]: unrolled over the (small) index axis."""
    out = ctx.idx.dims
    ishape = ctx.shapes[1]
    inside = [(out[d], 0, n) for d, n in enumerate(ishape) if d != axis and n < shape[d]]
    total = ex.const(0, ctx.out_dtype)
    for j in range(ishape[axis]):
        dims = list(out)
        dims[axis] = Index.of(j)
        src = Idx(ishape, dims=dims)
        target = _wrap_clamp(ctx, ctx.read(1, src, inside, fill=0), shape[axis])
        hit = ex.compare("eq", ex.index_value(target), ex.index_value(out[axis]))
        if inside:
            hit = ex.binary("and", hit, _all(inside))
        total = ex.binary("add", total, ex.where(hit, ctx.read(0, src, inside, fill=0),
                                                 ex.const(0, ctx.out_dtype)))
    return total


# -- windows -------------------------------------------------------------------------------
@rule("unfold", cost=0)
def _unfold(ctx, kernel, stride, padding, dilation, pad_value):
    d = len(kernel)
    out = ctx.idx.dims
    spatial = ctx.shapes[0][2:]
    dims, guards = list(out[:2]), []
    for j in range(d):
        pos = out[2 + d + j] * stride[j] + out[2 + j] * dilation[j] - padding[j][0]
        dims.append(pos)
        if padding[j] != (0, 0):
            guards.append((pos, 0, spatial[j]))
    return ctx.read(0, Idx(ctx.shapes[0], dims=dims), guards, fill=pad_value)


MAX_FOLD_TERMS = 256


@rule("fold", cost=lambda shapes, attrs: 3 * math.prod(attrs["kernel"]),
      choose=lambda shapes, out, attrs: "pointwise" if math.prod(attrs["kernel"]) <= MAX_FOLD_TERMS
      else "opaque")
def _fold(ctx, shape, kernel, stride, padding, dilation):
    """out[y] = sum over window offsets k with y = o*stride + k*dilation - pad of cols[k, o].

    Windows that tile without overlap (pooling: kernel == stride, no dilation) give each
    output position exactly one term, at offset (y + pad) % stride: one read, no sum."""
    d = len(kernel)
    out = ctx.idx.dims
    outs = ctx.shapes[0][2 + d:]
    if all(k == s and dl == 1 for k, s, dl in zip(kernel, stride, dilation)):
        dims, guards = list(out[:2]), []
        offsets, positions = [], []
        for j in range(d):
            t = out[2 + j] + padding[j][0]
            offsets.append(t.mod(stride[j]))
            o = t.floordiv(stride[j])
            positions.append(o)
            guards.append((o, 0, outs[j]))
        return ctx.read(0, Idx(ctx.shapes[0], dims=dims + offsets + positions), guards, fill=0)
    total = ex.const(0, ctx.out_dtype)
    for offset in itertools.product(*(range(k) for k in kernel)):
        dims, guards = list(out[:2]) + [Index.of(k) for k in offset], []
        ok = True
        for j in range(d):
            t = out[2 + j] + padding[j][0] - offset[j] * dilation[j]
            o = t.floordiv(stride[j])
            if stride[j] > 1:
                guards.append((t.mod(stride[j]), 0, 1))
            guards.append((o, 0, outs[j]))
            if o.hi < 0 or o.lo >= outs[j]:
                ok = False
            dims.append(o)
        if ok:
            total = ex.binary("add", total,
                              ctx.read(0, Idx(ctx.shapes[0], dims=dims), guards, fill=0))
    return total


# -- reductions, matmul --------------------------------------------------------------------
for _name, _combine in (("sum", "sum"), ("mean", "mean"), ("amax", "max"), ("amin", "min"),
                        ("argmax", "argmax"), ("argmin", "argmin")):
    RULES[_name] = Codegen("reduce", combine=_combine, cost=1)

RULES["matmul"] = Codegen("matmul", cost=2)


# -- scatter forms -------------------------------------------------------------------------
def _advanced_position(spec, x_shape, idx_shapes, src_shape):
    """Position in x (dims) of each element of x[spec], for a spec with index tensors: what
    ``index`` reads and ``index_backward`` / ``index_put`` write. The index tensors are
    the op's arguments from ``first_tensor_arg`` on."""
    bshape = _broadcast(idx_shapes)
    adjacent, tpos = _advanced_layout(spec, len(src_shape))
    before = sum(1 for item in spec[:tpos[0]] if item[0] in ("slice", "none")) if adjacent else 0

    def position(ctx, src_idx, first_tensor_arg):
        out = src_idx.dims
        bdims = out[before:before + len(bshape)]
        rest = out[:before] + out[before + len(bshape):]
        xdim_of, d = {}, 0
        for i, item in enumerate(spec):
            if item[0] == "tensor":
                xdim_of[i] = d
            if item[0] in ("int", "slice", "tensor"):
                d += 1
        tensor_dims = []
        for t, i in enumerate(tpos):
            shape = idx_shapes[t]
            lead = len(bshape) - len(shape)
            tdims = [Index() if s == 1 else bdims[lead + j] for j, s in enumerate(shape)]
            value = ctx.read(first_tensor_arg + t, Idx(shape, dims=tdims))
            tensor_dims.append(_wrap_clamp(ctx, value, x_shape[xdim_of[i]]))
        return _basic_index_map(spec, x_shape, rest, tensor_dims)
    return position


def _scatter_index_backward(ctx, spec, shape):
    src_shape = ctx.shapes[0]
    pos = _advanced_position(spec, shape, ctx.shapes[1:], src_shape)
    return ScatterSpec(init=lambda c: ex.const(0, ctx.out_dtype), source_shape=src_shape,
                       position=lambda c, s: pos(c, s, 1),
                       value=lambda c, s: c.read(0, s), accumulate=True)


def _scatter_index_put(ctx, spec):
    x_shape = ctx.shapes[0]
    src_shape = _index_infer_shape_adv(x_shape, spec, ctx.shapes[2:])
    pos = _advanced_position(spec, x_shape, ctx.shapes[2:], src_shape)
    vshape = ctx.shapes[1]

    def value(c, s):
        lead = len(src_shape) - len(vshape)
        dims = [Index() if n == 1 else s.dims[lead + j] for j, n in enumerate(vshape)]
        return c.read(1, Idx(vshape, dims=dims))
    return ScatterSpec(init=lambda c: c.arg(0), source_shape=src_shape,
                       position=lambda c, s: pos(c, s, 2), value=value, accumulate=False)


def _scatter_scatter_add(ctx, axis, shape):
    ishape = ctx.shapes[1]

    def position(c, s):
        dims = list(s.dims)
        dims[axis] = _wrap_clamp(c, c.read(1, s), shape[axis])
        return dims
    return ScatterSpec(init=lambda c: ex.const(0, ctx.out_dtype), source_shape=ishape,
                       position=position, value=lambda c, s: c.read(0, s), accumulate=True)


def _index_infer_shape_adv(x_shape, spec, idx_shapes):
    import numpy as np
    probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), shape=x_shape,
                                            strides=(0,) * len(x_shape))
    return probe[build_index(spec, [np.zeros(s, np.int64) for s in idx_shapes])].shape


RULES["index_backward"] = Codegen("pointwise", fn=_index_backward, cost=1,
                                  choose=RULES["index_backward"].choose,
                                  scatter=_scatter_index_backward)
RULES["index_put"] = Codegen("pointwise", fn=_index_put, cost=1, choose=RULES["index_put"].choose,
                             scatter=_scatter_index_put)
RULES["scatter_add"] = Codegen("pointwise", fn=_scatter_add,
                               cost=lambda shapes, attrs: 4 * shapes[1][attrs["axis"]],
                               choose=RULES["scatter_add"].choose, scatter=_scatter_scatter_add)


def install():
    """Put each rule in its op's ``expr`` slot; report ops without one."""
    missing = []
    for name, op in REGISTRY.items():
        r = RULES.get(name)
        if r is None:
            missing.append(name)
            continue
        object.__setattr__(op, "expr", r)    # OpDef is frozen: the slot is filled once, here
    return missing


MISSING = install()
