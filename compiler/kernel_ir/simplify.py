"""Kernel IR clean-ups shared by every backend.

``collapse_loops`` merges adjacent loop variables that every index uses only as
``c*(size*outer + inner)`` (NumPy's "contiguous dimensions can be merged"): an elementwise
kernel over a contiguous ``(128, 512)`` tensor becomes one loop of 65536, which
vectorises without a remainder per row; a broadcast add of a ``(512,)`` bias keeps its
two loops because the bias index breaks the pattern.
"""
from __future__ import annotations

from dataclasses import replace

from . import expr as ex
from .index import Dyn, FloorDiv, Index, Mod, Var
from .kernels import LoopKernel, Reduce, Store


# -- walking every Index of an expression ----------------------------------------------
def _indexes_of_expr(e, out, seen):
    for node in ex.walk([e]):
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.op == "load":
            _indexes_of_index(node.args[1], out, seen)
            for g in node.args[2]:
                _indexes_of_index(g[0], out, seen)
        elif node.op in ("index", "inrange"):
            _indexes_of_index(node.args[0], out, seen)


def _indexes_of_index(index, out, seen):
    out.append(index)
    for a, _ in index.terms:
        if type(a) in (FloorDiv, Mod):
            _indexes_of_index(a.arg, out, seen)
        elif type(a) is Dyn:
            _indexes_of_expr(a.expr, out, seen)


def map_expr(e, fn, memo):
    """Rebuild ``e`` with every Index replaced by ``fn(index)``."""
    got = memo.get(e)
    if got is not None:
        return got
    args = []
    for a in e.args:
        if type(a) is ex.Expr:
            args.append(map_expr(a, fn, memo))
        elif isinstance(a, Index):
            args.append(map_index(a, fn, memo))
        elif e.op == "load" and type(a) is tuple:
            args.append(tuple((map_index(i, fn, memo), lo, hi) for i, lo, hi in a))
        else:
            args.append(a)
    out = ex.Expr(e.op, e.dtype, tuple(args))
    memo[e] = out
    return out


def map_index(index, fn, memo):
    """Apply ``fn`` inside out: to nested div/mod arguments and Dyn expressions first."""
    terms = []
    changed = False
    for a, c in index.terms:
        if type(a) is FloorDiv:
            inner = map_index(a.arg, fn, memo)
            terms.append((inner.floordiv(a.d), c))
            changed = True
        elif type(a) is Mod:
            inner = map_index(a.arg, fn, memo)
            terms.append((inner.mod(a.d), c))
            changed = True
        elif type(a) is Dyn:
            terms.append((Index.of(Dyn(map_expr(a.expr, fn, memo), a.lo, a.hi)), c))
            changed = True
        else:
            terms.append((Index.of(a), c))
    if changed:
        index = Index((), index.const)
        for t, c in terms:
            index = index + t * c
    return fn(index)


# -- merging loop variables ------------------------------------------------------------
def _mergeable(indexes, outer: Var, inner: Var):
    for index in indexes:
        c1, c2 = index.coeff(outer), index.coeff(inner)
        if c1 == 0 and c2 == 0:
            continue
        if c2 == 0 or c1 != c2 * inner.size:
            return False
    return True


def _merge_fn(outer: Var, inner: Var, merged: Var):
    def fn(index):
        c2 = index.coeff(inner)
        if not c2:
            return index
        coeffs = {a: c for a, c in index.terms if a != outer and a != inner}
        coeffs[merged] = c2
        return Index._build(coeffs, index.const)
    return fn


def _phase_exprs(ph):
    return ([ph.value] if isinstance(ph, Reduce) else []) + [s.value for s in ph.stores]


def _phase_indexes(ph):
    out, seen = [], set()
    for e in _phase_exprs(ph):
        _indexes_of_expr(e, out, seen)
    if isinstance(ph, Reduce) and ph.position is not None:
        _indexes_of_index(ph.position, out, seen)
    for s in ph.stores:
        _indexes_of_index(s.index, out, seen)
    return out


def _rewrite_phase(ph, fn):
    memo = {}
    stores = [Store(s.buffer, map_index(s.index, fn, memo), map_expr(s.value, fn, memo))
              for s in ph.stores]
    if isinstance(ph, Reduce):
        pos = map_index(ph.position, fn, memo) if ph.position is not None else None
        return replace(ph, value=map_expr(ph.value, fn, memo), position=pos, stores=stores)
    return replace(ph, stores=stores)


def _collapse(vars_, indexes, rewrite):
    """Merge adjacent pairs of ``vars_`` (outermost first) while legal."""
    vars_ = list(vars_)
    i = 0
    while i + 1 < len(vars_):
        a, b = vars_[i], vars_[i + 1]
        if _mergeable(indexes(), a, b):
            merged = Var(a.name, a.size * b.size)
            rewrite(_merge_fn(a, b, merged))
            vars_[i:i + 2] = [merged]
        else:
            i += 1
    return tuple(vars_)


def collapse_loops(kernel: LoopKernel) -> LoopKernel:
    if not isinstance(kernel, LoopKernel):
        return kernel
    # drop size-1 loop variables: they are always 0
    phases = kernel.phases
    ones = {v: Index() for v in kernel.outer if v.size == 1}
    for ph in phases:
        ones.update({v: Index() for v in ph.dims if v.size == 1})
    if ones:
        def zero(index):
            return index.subs(ones) if any(a in ones for a in index.atoms()) else index
        phases = [_rewrite_phase(ph, zero) for ph in phases]
        phases = [replace(ph, dims=tuple(v for v in ph.dims if v.size != 1)) for ph in phases]
    outer = tuple(v for v in kernel.outer if v.size != 1)
    state = {"phases": phases}

    def all_indexes():
        return [i for ph in state["phases"] for i in _phase_indexes(ph)]

    def rewrite_all(fn):
        state["phases"] = [_rewrite_phase(ph, fn) for ph in state["phases"]]
    outer = _collapse(outer, all_indexes, rewrite_all)
    for k in range(len(state["phases"])):
        def phase_indexes(k=k):
            return _phase_indexes(state["phases"][k])

        def rewrite_phase(fn, k=k):
            state["phases"][k] = _rewrite_phase(state["phases"][k], fn)
        dims = _collapse(state["phases"][k].dims, phase_indexes, rewrite_phase)
        state["phases"][k] = replace(state["phases"][k], dims=dims)
    return replace(kernel, outer=outer, phases=state["phases"])


# -- splitting loop variables ----------------------------------------------------------
def _divisors_used(indexes, var):
    """Constants d with ``var // d`` or ``var % d`` among the atoms of ``indexes``."""
    out = set()
    for index in indexes:
        for a, _ in index.terms:
            if type(a) in (FloorDiv, Mod) and a.arg == Index.of(var):
                out.add(a.d)
    return out


def _split_one(vars_, indexes, rewrite, suffix):
    """Split the first variable ``v`` used as ``v // d`` and ``v % d`` (``d`` not a power of
    two) into ``(v_hi, v_lo)`` with ``v = d*v_hi + v_lo``: the div/mod then simplify away."""
    for i, v in enumerate(vars_):
        # powers of two stay as shifts and masks: cheap, and the loop stays long
        ds = sorted(d for d in _divisors_used(indexes(), v)
                    if 1 < d < v.size and v.size % d == 0 and d & (d - 1))
        if not ds:
            continue
        d = ds[0]
        hi, lo = Var(f"{v.name}{suffix}h", v.size // d), Var(f"{v.name}{suffix}l", d)
        mapping = {v: Index.of(hi) * d + lo}
        rewrite(lambda index: index.subs(mapping) if v in index.atoms() else index)
        return vars_[:i] + (hi, lo) + vars_[i + 1:]
    return None


def split_loops(kernel: LoopKernel, max_splits=8) -> LoopKernel:
    """Loops over merged dimensions (``l`` of an unfold window ``(oy, ox)``) become nested
    loops, so addresses need no division inside the loop body."""
    if not isinstance(kernel, LoopKernel):
        return kernel
    state = {"phases": list(kernel.phases), "outer": tuple(kernel.outer)}

    def all_indexes():
        return [i for ph in state["phases"] for i in _phase_indexes(ph)]

    def rewrite_all(fn):
        state["phases"] = [_rewrite_phase(ph, fn) for ph in state["phases"]]
    for n in range(max_splits):
        got = _split_one(state["outer"], all_indexes, rewrite_all, f"s{n}")
        if got is None:
            break
        state["outer"] = got
    for k in range(len(state["phases"])):
        for n in range(max_splits):
            def phase_indexes(k=k):
                return _phase_indexes(state["phases"][k])

            def rewrite_phase(fn, k=k):
                state["phases"][k] = _rewrite_phase(state["phases"][k], fn)
            got = _split_one(state["phases"][k].dims, phase_indexes, rewrite_phase, f"s{n}")
            if got is None:
                break
            state["phases"][k] = replace(state["phases"][k], dims=got)
    return replace(kernel, outer=state["outer"], phases=state["phases"])
