"""Lowering: one fusion group of graph nodes -> one kernel in the kernel IR.

The heart is ``Lowerer.value(node, idx)``: the scalar expression of ``node`` at index
``idx``. Inside the group (and for inlined nodes) it applies the op's codegen rule,
which asks for its inputs at derived indexes; movement ops only transform the index, so
a chain of reshapes, permutes, slices and unfold windows ends in one load with an
affine address. Outside the group it is a load from that node's buffer. A reduction in
the group becomes a ``Reduce`` phase and reads of it become its accumulator; a matmul
becomes the ``acc`` of the matmul template.

Anything unexpected raises ``LoweringError`` naming the stored node that could not be
placed; the backend then moves that node to a kernel of its own (``fusion.evict``) or,
failing that, splits the group into one kernel per node, which always lowers.

Two more things happen here because only here is it known what each pass needs: a stored
value that reads no accumulator is written during a reduction's first pass, and an
expensive row value needed by several passes is kept in a per-thread row buffer.
"""
from __future__ import annotations

import math

import numpy as np

from .dtypes import FLOAT, bool_, float64, int64
from .kernel_ir import expr as ex
from .kernel_ir.index import Idx, Index, Var, flatten
from .kernel_ir.kernels import (ERRORS, Buffer, LoopKernel, MatmulKernel, OpaqueKernel, Reduce,
                                ScatterKernel, Store, StoreLoop)
from .ops import REGISTRY
from .passes.fusion import reduce_domain


class LoweringError(Exception):
    """A group that cannot be one kernel; ``node`` is the stored node that failed."""

    def __init__(self, msg, node=None):
        super().__init__(msg)
        self.node = node


class Ctx:
    """What a codegen rule sees: the node's output index and its inputs."""

    __slots__ = ("low", "node", "idx", "guards", "args", "shapes", "dtypes", "out_shape",
                 "out_dtype")

    def __init__(self, low, node, idx, guards):
        d = low.nodes[node]
        self.low, self.node, self.idx, self.guards = low, node, idx, guards
        self.args = d["args"]
        self.shapes = [tuple(low.nodes[a]["shape"]) for a in self.args]
        self.dtypes = [low.nodes[a]["dtype"] for a in self.args]
        self.out_shape, self.out_dtype = tuple(d["shape"]), d["dtype"]

    @property
    def nargs(self):
        return len(self.args)

    def arg(self, i):
        """Input ``i`` at the output index, broadcast NumPy-style."""
        shape = self.shapes[i]
        if shape == self.out_shape:
            return self.low.value(self.args[i], self.idx, self.guards)
        out = self.idx.dims
        lead = len(out) - len(shape)
        dims = [Index() if n == 1 else out[lead + j] for j, n in enumerate(shape)]
        return self.low.value(self.args[i], Idx(shape, dims=dims), self.guards)

    def read(self, i, idx, guards=(), fill=None):
        """Input ``i`` at ``idx``; where a guard ``(index, lo, hi)`` fails, ``fill``."""
        if not isinstance(idx, Idx):
            idx = Idx(self.shapes[i], dims=idx)
        kept = []
        for g in guards:
            index, lo, hi = g
            if index.lo >= lo and index.hi < hi:
                continue                      # always true
            if index.hi < lo or index.lo >= hi:
                return ex.const(fill or 0, self.dtypes[i])   # never true
            kept.append((index, lo, hi))
        if not kept:
            return self.low.value(self.args[i], idx, self.guards)
        inner = self.low.value(self.args[i], idx, self.guards + tuple(kept), fill or 0)
        fillv = ex.const(fill or 0, self.dtypes[i])
        if inner.op == "load" and inner.args[3] == fillv.args[0] and set(kept) <= set(inner.args[2]):
            return inner
        cond = None
        for index, lo, hi in kept:
            c = ex.inrange(index, lo, hi)
            cond = c if cond is None else ex.binary("and", cond, c)
        return ex.where(cond, inner, fillv)


def _vars(prefix, shape):
    return tuple(Var(f"{prefix}{i}", n) for i, n in enumerate(shape))


class Lowerer:
    def __init__(self, graph, plan, group):
        self.graph, self.plan, self.group = graph, plan, group
        self.nodes = graph.nodes
        self.members = set(group.nodes)
        self.buffers: list[Buffer] = []
        self.buffer_of: dict[int, int] = {}
        self.memo = {}
        self.accs = {}          # reduce node -> (expected flat index, expr reading the acc)
        self.matmul_acc = None  # (node, expected flat index)
        self.computed = set()   # nodes whose values this kernel computes (members + inlined)

    # -- buffers and values ----------------------------------------------------------
    def buffer(self, node, written=False) -> int:
        if node not in self.buffer_of:
            d = self.nodes[node]
            self.buffer_of[node] = len(self.buffers)
            self.buffers.append(Buffer(f"x{node}", d["dtype"], tuple(d["shape"]), node, written,
                                       returned=node in self.graph.outputs))
        b = self.buffer_of[node]
        self.buffers[b].written |= written
        return b

    def error_record(self) -> int:
        """The buffer number of the graph's error record (``expr.checked_index``)."""
        if ERRORS not in self.buffer_of:
            self.buffer_of[ERRORS] = len(self.buffers)
            self.buffers.append(Buffer("errors", int64, (4,), ERRORS, written=True))
        return self.buffer_of[ERRORS]

    def value(self, n, idx: Idx, guards=(), fill=0) -> ex.Expr:
        key = (n, idx.key(), guards, fill)
        got = self.memo.get(key)
        if got is None:
            got = self._value(n, idx, guards, fill)
            self.memo[key] = got
        return got

    def _value(self, n, idx, guards, fill):
        d = self.nodes[n]
        op = d["op"]
        if op == "const":
            v = np.asarray(d["attrs"]["value"])
            if v.size and (v.ndim == 0 or np.all(v == v.flat[0]) and not np.isnan(v.flat[0])):
                return ex.const(v.flat[0].item(), d["dtype"])
            return ex.load(self.buffer(n), idx.flat, d["dtype"], guards, fill)
        if op == "input" or (n not in self.members and n not in self.plan.inline):
            return ex.load(self.buffer(n), idx.flat, d["dtype"], guards, fill)
        if n in self.accs:
            expected, read = self.accs[n]
            if idx.flat != expected:
                raise LoweringError(f"reduction %{n} is read at {idx.flat.text}, not at its own "
                                    f"row {expected.text}")
            return read
        if self.matmul_acc is not None and n == self.matmul_acc[0]:
            if idx.flat != self.matmul_acc[1]:
                raise LoweringError(f"matmul %{n} is read at {idx.flat.text} in its epilogue, not "
                                    f"at the element being computed")
            return ex.acc("acc", d["dtype"])
        form = self.plan.forms[n]
        if form == "reduce" and n in self.members:
            raise LoweringError(f"reduction %{n} read before its phase")
        self.computed.add(n)
        if REGISTRY[op].expr.form == "reduce":    # demoted to pointwise: only size-1 axes
            return self._trivial_reduce(n, idx, guards)
        if form != "pointwise":
            raise LoweringError(f"%{n} ({op}) of form {form} cannot be computed inline")
        rule = REGISTRY[op].expr
        try:
            return rule.fn(Ctx(self, n, idx, guards), **d["attrs"])
        except (AssertionError, IndexError, KeyError, TypeError) as e:
            raise LoweringError(f"codegen rule of {op} failed: {type(e).__name__}: {e}") from None

    def _trivial_reduce(self, n, idx, guards):
        d = self.nodes[n]
        if d["op"] in ("argmax", "argmin"):
            return ex.const(0, int64)
        a = d["args"][0]
        return self.value(a, Idx(self.nodes[a]["shape"], flat=idx.flat), guards)

    # -- kernels ---------------------------------------------------------------------
    def lower(self):
        kind = self.group.kind
        if kind == "matmul":
            kernel = self._matmul()
        elif kind == "scatter":
            kernel = self._scatter()
        elif kind == "opaque":
            kernel = self._opaque("no kernel form for this op")
        else:
            kernel = self._loops()
        kernel.nodes = sorted(self.computed | set(self.group.nodes),
                              key=self.plan_position)
        kernel.outputs = list(self.group.stores)
        kernel.locs = sorted({str(self.nodes[n]["loc"]) for n in kernel.nodes
                              if self.nodes[n].get("loc")})
        kernel.bytes = sum(b.nbytes for b in kernel.buffers if not b.local)
        return kernel

    def plan_position(self, n):
        return self.graph_position[n]

    @property
    def graph_position(self):
        if not hasattr(self, "_pos"):
            self._pos = {n: i for i, n in enumerate(self.graph.topological_order())}
        return self._pos

    def _store(self, n, idx):
        d = self.nodes[n]
        try:
            value = self.value(n, idx)
        except LoweringError as e:
            if e.node is None:
                e.node = n               # the stored value that could not be placed here
            raise
        if value.dtype is not d["dtype"]:
            raise LoweringError(f"%{n}: rule gave {value.dtype}, node is {d['dtype']}")
        return Store(self.buffer(n, written=True), idx.flat, value)

    def _loops(self):
        g = self.group
        if g.kind == "pointwise":
            outer = _vars("i", g.full)
            flat = flatten(outer, g.full)
            stores = [self._store(n, Idx(self.nodes[n]["shape"], flat=flat)) for n in g.stores]
            phases = [StoreLoop((), stores)]
            work = math.prod(g.full)
            kernel = LoopKernel("", self.buffers, outer=outer, phases=phases)
            kernel.flops = work * ex.flops([s.value for s in stores])
            return kernel
        full, axes = g.full, g.axes
        kept = g.kept_shape
        outer = _vars("i", kept)
        outer_flat = flatten(outer, kept)

        def full_dims(prefix):
            inner = _vars(prefix, [full[a] for a in axes])
            it_o, it_r = iter(outer), iter(inner)
            return inner, [next(it_r) if i in axes else next(it_o) for i in range(len(full))]

        phases, flops = [], 0
        for n in g.nodes:
            if self.plan.forms[n] != "reduce":
                continue
            if reduce_domain(self.graph, n) != (full, axes):
                raise LoweringError(f"reduction %{n} has another domain than its group")
            phases.append(self._reduce_phase(n, full_dims("r"), outer_flat))
            flops += math.prod(full) * (ex.flops([phases[-1].value]) + 1)
        full_stores, row_stores = [], []
        inner, dims = full_dims("r")
        flat_full = flatten(dims, full)
        for n in g.stores:
            size = math.prod(self.nodes[n]["shape"])
            shape = self.nodes[n]["shape"]
            if n in self.accs or size == math.prod(kept):
                row_stores.append(self._store(n, Idx(shape, flat=outer_flat)))
            elif size == math.prod(full):
                full_stores.append(self._store(n, Idx(shape, flat=flat_full)))
            else:
                raise LoweringError(f"%{n} has no place in the loops of its group")
        # full-size values that read no accumulator are stored during the first pass
        first = next((ph for ph in phases if isinstance(ph, Reduce)), None)
        if first is not None:
            rvars, rdims = full_dims("r")
            early = []
            for st in list(full_stores):
                if not any(e.op == "acc" for e in ex.walk([st.value])):
                    full_stores.remove(st)
                    n = self.buffers[st.buffer].node
                    idx = Idx(self.nodes[n]["shape"], flat=flatten(rdims, full))
                    early.append(self._store(n, idx))
            first.stores = early
        if row_stores:
            phases.append(StoreLoop((), row_stores))
        if full_stores:
            phases.append(StoreLoop(inner, full_stores))
            flops += math.prod(full) * ex.flops([s.value for s in full_stores])
        self._share_rows(phases, inner)
        kernel = LoopKernel("", self.buffers, outer=outer, phases=phases)
        kernel.flops = flops
        return kernel

    def _share_rows(self, phases, row_vars):
        """Keep expensive row values that several passes need (softmax's ``exp(x - max)``
        read again by LayerNorm's mean and variance) in a per-thread row buffer: the first
        pass that computes them stores them, later passes read them back from L1 instead
        of recomputing the exponentials."""
        if not row_vars:
            return
        row_flat = flatten(row_vars, [v.size for v in row_vars])
        rows = set(row_vars)
        first, cached = {}, {}

        def depends_on_rows(e):
            from .kernel_ir.simplify import _indexes_of_expr
            found = []
            _indexes_of_expr(e, found, set())
            return any(set(i.atoms()) & rows for i in found)

        def worth_keeping(e):
            return (e.dtype.category == FLOAT and e.op not in ("load", "const", "acc")
                    and ex.flops([e]) >= 8 and depends_on_rows(e))

        def rewrite(e, i, memo):
            got = memo.get(e)
            if got is not None:
                return got
            if e in cached:
                out = cached[e]
            elif first.get(e, i) < i and worth_keeping(e):
                b = len(self.buffers)
                self.buffers.append(Buffer(f"row{b}", e.dtype, (row_flat.hi + 1,), -1, True, True))
                phases[first[e]].stores.append(Store(b, row_flat, e))
                out = cached[e] = ex.load(b, row_flat, e.dtype)
            else:
                kids = [rewrite(a, i, memo) if type(a) is ex.Expr else a for a in e.args]
                out = e if all(k is a for k, a in zip(kids, e.args)) else ex.Expr(e.op, e.dtype, tuple(kids))
            memo[e] = out
            return out
        for i, ph in enumerate(phases):
            if not ph.dims:
                continue
            memo = {}
            if isinstance(ph, Reduce):
                ph.value = rewrite(ph.value, i, memo)
            ph.stores[:] = [Store(st.buffer, st.index, rewrite(st.value, i, memo))
                            for st in ph.stores]
            roots = ([ph.value] if isinstance(ph, Reduce) else []) + [st.value for st in ph.stores]
            for e in ex.walk(roots):
                first.setdefault(e, i)

    def _reduce_phase(self, n, full_vars, outer_flat):
        inner, dims = full_vars
        d = self.nodes[n]
        a = d["args"][0]
        in_shape = tuple(self.nodes[a]["shape"])
        combine = REGISTRY[d["op"]].expr.combine
        value = self.value(a, Idx(in_shape, dims=dims))
        name = f"acc{len(self.accs)}"
        dtype = value.dtype
        position = None
        if combine in ("argmax", "argmin"):
            # NumPy reports the position within the reduced axes, row-major
            position = flatten(inner, [v.size for v in inner])
            acc_dtype, read = int64, ex.acc(name, int64)
        elif combine == "mean":
            count = math.prod(v.size for v in inner)
            acc_dtype = dtype
            total = ex.acc(name, dtype)
            if dtype.category == FLOAT:
                read = ex.binary("div", total, ex.const(count, dtype))
            else:
                read = ex.cast(ex.binary("div", ex.cast(total, float64), ex.const(count, float64)),
                               dtype)
        else:
            acc_dtype, read = dtype, ex.acc(name, dtype)
        op = {"mean": "sum"}.get(combine, combine)
        if dtype is bool_:
            op = {"sum": "any", "max": "any", "min": "all"}.get(op, op)
        self.accs[n] = (outer_flat, read)
        self.computed.add(n)
        return Reduce(name, op, inner, value, acc_dtype, position)

    def _transposed_output(self, mm):
        """The permute of the last two dims that every stored value of the group comes
        through, if any: then the kernel computes C^T = B^T A^T directly (the weight
        gradient of ``x @ W.T`` is such a transposed product)."""
        g = self.group
        if mm in g.stores:
            return None
        ndim = len(self.nodes[mm]["shape"])
        swap = tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)
        for u in self.graph.users(mm):
            d = self.nodes[u]
            if u in self.members and d["op"] == "permute" and tuple(d["attrs"]["perm"]) == swap \
                    and len(self.graph.users(mm)) == 1:
                below = {u}
                for n in g.nodes:
                    if any(a in below for a in self.nodes[n]["args"]):
                        below.add(n)
                if all(s in below for s in g.stores):
                    return u
        return None

    def _matmul(self):
        g = self.group
        mm = g.anchor
        d = self.nodes[mm]
        a, b = d["args"]
        ashape, bshape, out = (tuple(self.nodes[x]["shape"]) for x in (a, b, mm))
        batch = _vars("b", out[:-2])
        transposed = self._transposed_output(mm)
        k = Var("k", ashape[-1])
        if transposed is None:
            m, n = Var("m", out[-2]), Var("n", out[-1])
        else:                               # rows of the kernel are columns of the product
            m, n = Var("m", out[-1]), Var("n", out[-2])

        def operand(shape, last2):
            lead = len(batch) - (len(shape) - 2)
            dims = [Index() if s == 1 else batch[lead + j] for j, s in enumerate(shape[:-2])]
            return Idx(shape, dims=dims + list(last2))
        if transposed is None:
            self.matmul_acc = (mm, flatten(batch + (m, n), out))
            a_expr = self.value(a, operand(ashape, (m, k)))
            b_expr = self.value(b, operand(bshape, (k, n)))
            flat = flatten(batch + (m, n), out)
        else:
            self.matmul_acc = (mm, flatten(batch + (n, m), out))
            a_expr = self.value(b, operand(bshape, (k, m)))
            b_expr = self.value(a, operand(ashape, (n, k)))
            flat = flatten(batch + (m, n), out[:-2] + (out[-1], out[-2]))
        self.computed.add(mm)
        if a_expr.dtype is not b_expr.dtype:
            raise LoweringError("matmul operands differ in dtype")
        if a_expr.dtype.category != FLOAT:
            return self._matmul_as_loops(batch, m, n, k, a_expr, b_expr,
                                         out if transposed is None else out[:-2] + (out[-1], out[-2]))
        epilogue = [self._store(s, Idx(self.nodes[s]["shape"], flat=flat)) for s in g.stores]
        kernel = MatmulKernel("", self.buffers, batch=batch, m=m, n=n, k=k, a=a_expr, b=b_expr,
                              epilogue=epilogue, dtype=d["dtype"])
        kernel.flops = 2 * math.prod(out) * ashape[-1] + math.prod(out) * ex.flops(
            [s.value for s in epilogue])
        return kernel

    def _matmul_as_loops(self, batch, m, n, k, a_expr, b_expr, out):
        """Integer and bool matmuls (rare): a plain reduction over k, no blocking."""
        g = self.group
        outer = batch + (m, n)
        phase = Reduce("acc", "any" if a_expr.dtype is bool_ else "sum", (k,),
                       ex.binary("mul", a_expr, b_expr), a_expr.dtype)
        flat = flatten(outer, out)
        stores = [self._store(s, Idx(self.nodes[s]["shape"], flat=flat)) for s in g.stores]
        kernel = LoopKernel("", self.buffers, outer=outer, phases=[phase, StoreLoop((), stores)])
        kernel.flops = 2 * math.prod(out) * k.size
        return kernel

    def _scatter(self):
        n = self.group.anchor
        d = self.nodes[n]
        rule = REGISTRY[d["op"]].expr
        out_shape = tuple(d["shape"])
        outer = _vars("i", out_shape)
        out_idx = Idx(out_shape, dims=outer)
        ctx = Ctx(self, n, out_idx, ())
        try:
            spec = rule.scatter(ctx, **d["attrs"])
        except (AssertionError, IndexError, KeyError, TypeError) as e:
            raise LoweringError(f"scatter rule of {d['op']} failed: {e}") from None
        init = spec.init(ctx)
        target = self.buffer(n, written=True)
        source = _vars("s", spec.source_shape)
        src_idx = Idx(spec.source_shape, dims=source)
        position = flatten(spec.position(ctx, src_idx), out_shape)
        value = spec.value(ctx, src_idx)
        self.computed.add(n)
        kernel = ScatterKernel("", self.buffers, init=StoreLoop((), [Store(target, out_idx.flat, init)]),
                               outer=outer, source=source, target=target, position=position,
                               value=value, accumulate=spec.accumulate)
        kernel.flops = math.prod(spec.source_shape)
        return kernel

    def _opaque(self, reason):
        n = self.group.anchor if self.group.anchor is not None else self.group.nodes[-1]
        d = self.nodes[n]
        for a in d["args"]:
            if self.nodes[a]["op"] != "const":
                self.buffer(a)
        self.buffer(n, written=True)
        self.computed.add(n)
        return OpaqueKernel("", self.buffers, op=d["op"], reason=reason)


def lower_group(graph, plan, group):
    """The kernel for ``group`` (raises ``LoweringError`` if it cannot be fused so)."""
    return Lowerer(graph, plan, group).lower()


BOOKKEEPING = ("eq", "ne", "where", "cast", "copy", "stop_gradient")


def kernel_name(graph, group, kernel, index):
    """Readable names from the ops a kernel computes, in order: ``fused_mul_sigmoid_add_3``.
    Movement ops (only addressing) and bookkeeping ops (compares, selects, casts) are left
    out when there is anything else."""
    ops, minor = [], []
    for n in kernel.nodes:
        op = graph.nodes[n]["op"]
        bucket = minor if REGISTRY[op].kind == "movement" or op in BOOKKEEPING else ops
        if op not in bucket:
            bucket.append(op)
    ops = ops or minor
    if isinstance(kernel, OpaqueKernel):
        return f"opaque_{kernel.op}_{index}"
    if isinstance(kernel, MatmulKernel):
        rest = [o for o in ops if o != "matmul"][:3]
        return "_".join(["matmul"] + rest) + f"_{index}"
    if len(kernel.nodes) == 1:
        return f"{ops[0]}_{index}"
    return "fused_" + "_".join(ops[:4]) + f"_{index}"


__all__ = ["LoweringError", "lower_group", "kernel_name"]
