"""OpenCL C for the loop-shaped kernel forms: ``LoopKernel`` and ``ScatterKernel``.

A ``LoopKernel`` is printed one of two ways:

- **one work-item per outer point** (``item``): the NDRange is the outer index space,
  innermost variable in dimension 0 so that neighbouring work-items touch neighbouring
  addresses (coalesced on GPUs, one vector load for Intel's CPU vectoriser, which packs
  work-items of dimension 0 into SIMD lanes), the next in dimension 1, the rest
  flattened into dimension 2. Each work-item runs the kernel's phases as plain loops.
  Used for elementwise kernels, tiny reductions, and reductions *across* rows that lie
  along the innermost outer variable (a bias gradient: work-items own columns, every
  load of a row is contiguous across them).
- **one work-group per outer point** (``group``): for reductions along rows (softmax,
  LayerNorm, sums over the contiguous axis). The work-items of a group stride over the
  row together (work-item ``l`` takes positions ``l, l+WG, ...``: contiguous across the
  group), combine private partial results in a local-memory tree, and every work-item
  reads the row's result after the barrier. Per-row scratch buffers of the kernel IR
  (``Buffer.local``) become ``__local`` arrays when they fit; a work-item only reads back
  the positions it wrote itself, so they need no extra barrier.

Sizes are compile-time constants; the NDRange is rounded up to whole work-groups and
work-items past the end return at once (``item``; on CPU runtimes the last, partial
work-group is a separate launch so that the others run without the check, see
``item_entries``) or skip their positions (``group``).

A ``ScatterKernel`` is a parallel initialisation (launched like an item kernel) and one
work-item that applies the data-dependent writes in order (writes may collide, and
``index_put`` must let the last write win).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..kernel_ir import expr as ex
from ..kernel_ir.kernels import LoopKernel, Reduce, ScatterKernel
from .opencl_printer import (ExprPrinter, Lines, better, buffer_params, check_fp64, combine,
                             ctype, header, identity, preamble, uses_fp64)


@dataclass
class Launch:
    entry: str
    global_size: tuple
    local_size: tuple
    offset: tuple | None = None      # global work offset (the tail launch of a split)


@dataclass
class Printed:
    """One kernel's OpenCL C: ``body`` (comment header and entry points), the helper
    functions it calls and whether it needs fp64; ``source`` is all of it, compilable
    on its own (a program of several kernels shares one preamble instead)."""

    body: str
    launches: list
    kind: str
    helpers: set
    fp64: bool

    @property
    def source(self):
        pre = preamble(self.helpers, self.fp64)
        return (pre + "\n\n" if pre else "") + self.body


def printed_kernel(kernel, kind, p, text, launches):
    return Printed(header(kernel, kind) + "\n" + text, launches, kind, set(p.helpers),
                   uses_fp64(kernel, p))


def cv(v):
    """The C name of a loop Var (prefixed: IR names such as ``b0`` would clash)."""
    return f"v_{v.name}"


def round_up(n, m):
    return -(-n // m) * m


def pow2_at_most(n):
    p = 1
    while p * 2 <= n:
        p *= 2
    return p


def next_pow2(n):
    p = 1
    while p < n:
        p *= 2
    return p


# -- choosing the shape ------------------------------------------------------------------
def column_owned(kernel: LoopKernel):
    """True when the reduction runs down columns laid out along the innermost outer
    variable: work-items that each own a column then read contiguous rows together."""
    if not kernel.outer or kernel.outer[-1].size < 16:
        return False
    col = kernel.outer[-1]
    reduces = [ph for ph in kernel.phases if isinstance(ph, Reduce)]
    if not reduces:
        return False
    loads = sorted(ex.loads([reduces[0].value]), key=lambda l: -l.args[1].hi)
    if not loads:
        return False
    main = loads[0].args[1]
    return main.coeff(col) == 1 and not any(main.coeff(r) == 1 for r in reduces[0].dims)


def row_size(ph):
    return math.prod(v.size for v in ph.dims)


def choose_strategy(kernel: LoopKernel, device) -> str:
    rows = [row_size(ph) for ph in kernel.phases if isinstance(ph, Reduce) and ph.dims]
    if not rows:
        return "item"
    points = math.prod(v.size for v in kernel.outer)
    if max(rows) < 32 or (column_owned(kernel) and points >= 64):
        return "item"
    return "group"


def item_launch(sizes, device, lanes=1):
    """(global, local) of an NDRange over ``sizes`` (innermost first, at most 3 dims),
    with work-groups of up to ``device.item_group`` points (``lanes`` per work-item),
    most along dimension 0."""
    want = max(device.item_group // lanes, 1)
    simd = max(device.simd // lanes, 1)
    local = []
    left = want
    for i, n in enumerate(sizes):
        if i == 0:
            l0 = min(want, round_up(n, simd))
            l0 = pow2_at_most(l0) if l0 > simd else l0
            local.append(max(l0, 1))
            left = max(want // local[0], 1)
        else:
            li = pow2_at_most(max(min(left, n), 1))
            local.append(li)
            left = max(left // li, 1)
    glob = tuple(round_up(n, l) for n, l in zip(sizes, local))
    return glob, tuple(local)


# -- the item strategy ------------------------------------------------------------------
def item_plan(outer, target, lanes=1):
    """NDRange sizes (innermost first), global and work-group sizes of an item kernel.

    One point per work-item, no coarsening loop: on Intel's CPU runtime a work-item that
    walked 8 points (``first + u*local``) made every work-group touch 8 separate places
    of each buffer at once, and the streaming kernels ran at 55-65% of the speed of one
    point per work-item (W1: 1.9 vs 1.5 ms), which already reaches memory bandwidth;
    scheduling 256-wide work-groups costs nothing measurable even at 64K points."""
    if not outer:
        return [1], (1,), (1,)
    rev = list(reversed(outer))
    sizes = [v.size for v in rev[:2]]
    sizes[0] //= lanes
    if len(rev) > 2:
        sizes.append(math.prod(v.size for v in rev[2:]))
    glob, local = item_launch(sizes, target, lanes)
    return sizes, glob, local


def _declare_outer_item(out, p, outer, guard0, body, lanes=1):
    """Bind the outer Vars to NDRange ids and print ``body()`` at each point, behind the
    out-of-range guards (dimension 0's only when ``guard0``). With ``lanes`` > 1 a
    work-item owns that many consecutive points of the innermost Var, which is bound to
    the first of them."""
    if not outer:
        body()
        return
    rev = list(reversed(outer))
    dims, rest = rev[:2], rev[2:]
    conds = []
    for k, v in enumerate(dims[1:], start=1):
        out.emit(f"const long {cv(v)} = get_global_id({k});")
        p.vars[v] = cv(v)
        conds.append(f"{cv(v)} >= {v.size}L")
    if rest:
        total = math.prod(v.size for v in rest)
        out.emit("const long rest = get_global_id(2);")
        conds.append(f"rest >= {total}L")
        stride = 1
        for v in rest:            # innermost of the rest first
            q = "rest" if stride == 1 else f"rest / {stride}L"
            out.emit(f"const long {cv(v)} = ({q}) % {v.size}L;" if stride * v.size < total
                     else f"const long {cv(v)} = {q};")
            p.vars[v] = cv(v)
            stride *= v.size
    if conds:
        out.emit(f"if ({' || '.join(conds)}) return;")
    v0 = dims[0]
    out.emit(f"const long {cv(v0)} = get_global_id(0){f' * {lanes}L' if lanes > 1 else ''};")
    if guard0:
        out.emit(f"if ({cv(v0)} >= {v0.size}L) return;")
    p.vars[v0] = cv(v0)
    body()


def item_entries(kernel, target, fp64, name, emit_body, lanes=1, printer=ExprPrinter):
    """The entry points and launches of an item kernel whose per-point work
    ``emit_body(out, p)`` prints: ``(text, launches, printers)``. ``lanes`` points per
    work-item for the vector form of ``opencl_streaming`` (its ``printer`` class).

    Dimension 0's bounds check is only printed where the NDRange overshoots. On CPU
    runtimes an overshooting size is split in two launches of two entry points: the
    whole work-groups without the check, then the last partial group (started at a
    global offset) with it. Intel's vectoriser packs work-items of dimension 0 into SIMD
    lanes, so a check on ``get_global_id(0)`` is divergent and turns the whole body into
    masked code at half the speed (W1 took 4.9 instead of 2.2 ms with the check). The
    checks of dimensions 1 and 2 are uniform across those lanes and cost nothing. GPUs
    keep one launch: there the check only diverges in the last work-group."""
    sizes, glob, local = item_plan(kernel.outer, target, lanes)
    n0, l0 = sizes[0], local[0]
    whole = n0 // l0 * l0
    if whole == glob[0]:
        parts = [(name, False, glob, None)]
    elif target.is_cpu and whole > 0:
        parts = [(name, False, (whole,) + glob[1:], None),
                 (f"{name}_tail", True, (l0,) + glob[1:], (whole,) + (0,) * (len(glob) - 1))]
    else:
        parts = [(name, True, glob, None)]
    texts, launches, printers = [], [], []
    params, setup = buffer_params(kernel)
    for entry, guard0, g, offset in parts:
        out = Lines()
        p = printer(out, kernel.buffers, fp64=fp64, narrow_index=not target.is_cpu)
        for line in setup:
            out.emit(line)
        _declare_outer_item(out, p, kernel.outer, guard0, lambda: emit_body(out, p), lanes)
        texts.append(_function(entry, params, out, local))
        launches.append(Launch(entry, g, local, offset))
        printers.append(p)
    return "\n".join(texts), launches, printers


def _loops(out, p, dims, body):
    """Nested sequential loops over ``dims`` (outermost first) around ``body()``."""
    if not dims:
        body()
        return
    v = dims[0]
    out.open(f"for (long {cv(v)} = 0; {cv(v)} < {v.size}L; {cv(v)}++)")
    p.push()
    p.vars[v] = cv(v)
    _loops(out, p, dims[1:], body)
    p.pop()
    out.close()


def emit_store(p: ExprPrinter, s):
    dtype = p.buffers[s.buffer].dtype
    v = p.value(s.value)
    if dtype.name == "bool":
        v = f"(uchar)({v})"
    p.out.emit(f"{p.address(s.buffer, s.index)} = {v};")


def _item_reduce(out, p, ph):
    vt = ph.value.dtype
    ty = ctype(vt)
    acc = f"{ph.acc}_v"
    out.emit(f"{ty} {acc} = {identity(ph.op, vt)};")
    arg = ph.op in ("argmax", "argmin")
    if arg:
        out.emit(f"long {ph.acc}_i = 0;")

    def body():
        v = p.value(ph.value)
        for st in ph.stores:
            emit_store(p, st)
        if arg:
            pos = p.index(ph.position, "long")
            out.open(f"if {better(ph.op, v, acc, vt)}")
            out.emit(f"{acc} = {v}; {ph.acc}_i = {pos};")
            out.close()
        else:
            out.emit(f"{acc} = {combine(p, ph.op, acc, v, vt)};")
    _loops(out, p, list(ph.dims), body)
    p.accs[ph.acc] = f"{ph.acc}_i" if arg else acc


def _private_rows(out, kernel):
    for i, b in enumerate(kernel.buffers):
        if b.local:
            out.emit(f"{ctype(b.dtype, memory=True)} b{i}[{b.numel}];")


def print_item(kernel: LoopKernel, target, fp64):
    def body(out, p):
        _private_rows(out, kernel)
        for ph in kernel.phases:
            if isinstance(ph, Reduce):
                _item_reduce(out, p, ph)
            else:
                _loops(out, p, list(ph.dims), lambda ph=ph: [emit_store(p, s) for s in ph.stores])
    text, launches, printers = item_entries(kernel, target, fp64, kernel.name, body)
    p = merged_printers(printers)
    split = ", split off the last work-group" if len(launches) > 1 else ""
    return printed_kernel(kernel, f"one work-item per point, work-groups of "
                                  f"{launches[0].local_size}{split}", p, text, launches)


def merged_printers(printers):
    """The first printer, carrying the helpers and fp64 use of all of them."""
    p = printers[0]
    for q in printers[1:]:
        p.helpers |= q.helpers
        p.uses_fp64 |= q.uses_fp64
    return p


def _function(name, params, out, local=None):
    attr = (f"__attribute__((reqd_work_group_size({', '.join(map(str, local))}"
            f"{', 1' * (3 - len(local))})))\n" if local else "")
    return (f"{attr}__kernel void {name}({', '.join(params)})\n{{\n" + out.text() + "\n}\n")


# -- the group strategy ------------------------------------------------------------------
def _unflatten(out, p, dims, j):
    """Bind ``dims`` (outermost first) to the row-major position ``j``."""
    if len(dims) == 1:
        p.vars[dims[0]] = j
        return
    stride = 1
    for v in reversed(dims):
        q = j if stride == 1 else f"({j} / {stride}L)"
        name = f"{cv(v)}_{j}"
        last = v is dims[0]
        out.emit(f"const long {name} = {q}{'' if last else f' % {v.size}L'};")
        p.vars[v] = name
        stride *= v.size


FLAT_COMBINE = 32     # groups up to this size combine partials in one pass, not a tree


def combine_group(out, p, ph, wg, acc, idx):
    """Combine the group's private partials through local memory; every work-item ends
    with the row's result in ``acc`` (and ``idx`` for argmax/argmin).

    Small groups (CPU runtimes use 16 work-items: one SIMD register) write their
    partials, meet at one barrier, and every work-item folds all of them in order: one
    barrier instead of one per tree level, each of which a CPU runtime implements as a
    separate loop over the group. Larger groups use the classic halving tree. Each
    reduction has its own local array, so no barrier is needed before the next one."""
    vt = ph.value.dtype
    ty = ctype(vt, memory=True)
    red = f"red_{ph.acc}"
    out.emit(f"__local {ty} {red}[{wg}];")
    if idx:
        out.emit(f"__local long {red}_i[{wg}];")
    store = acc if vt.name != "bool" else f"(uchar){acc}"
    out.emit(f"{red}[lid] = {store};" + (f" {red}_i[lid] = {idx};" if idx else ""))
    out.emit("barrier(CLK_LOCAL_MEM_FENCE);")

    def read(at):
        v = f"{red}[{at}]"
        return f"({v} != 0)" if vt.name == "bool" else v
    if wg <= FLAT_COMBINE:
        out.emit(f"{acc} = {read(0)};" + (f" {idx} = {red}_i[0];" if idx else ""))
        out.open(f"for (int s = 1; s < {wg}; s++)")
        if idx:
            b, bi = read("s"), f"{red}_i[s]"
            out.open(f"if ({better(ph.op, b, acc, vt)} || (!{better(ph.op, acc, b, vt)} "
                     f"&& {bi} < {idx}))")
            out.emit(f"{acc} = {b}; {idx} = {bi};")
            out.close()
        else:
            out.emit(f"{acc} = {combine(p, ph.op, acc, read('s'), vt)};")
        out.close()
        return
    out.open(f"for (int s = {wg // 2}; s > 0; s >>= 1)")
    out.open("if (lid < s)")
    a, b = read("lid"), read("lid + s")
    if idx:
        ai, bi = f"{red}_i[lid]", f"{red}_i[lid + s]"
        out.emit(f"const bool take = {better(ph.op, b, a, vt)} || (!{better(ph.op, a, b, vt)} "
                 f"&& {bi} < {ai});")
        out.open("if (take)")
        out.emit(f"{red}[lid] = {red}[lid + s]; {ai} = {bi};")
        out.close()
    else:
        value = combine(p, ph.op, a, b, vt)
        out.emit(f"{red}[lid] = {value if vt.name != 'bool' else f'(uchar)({value})'};")
    out.close()
    out.emit("barrier(CLK_LOCAL_MEM_FENCE);")
    out.close()
    out.emit(f"{acc} = {read(0)};" + (f" {idx} = {red}_i[0];" if idx else ""))


def _group_reduce(out, p, ph, wg):
    vt = ph.value.dtype
    ty = ctype(vt)
    acc = f"{ph.acc}_v"
    arg = ph.op in ("argmax", "argmin")
    idx = f"{ph.acc}_i" if arg else None
    out.emit(f"{ty} {acc} = {identity(ph.op, vt)};")
    if arg:
        out.emit(f"long {idx} = 0;")
    n = row_size(ph)
    j = f"j_{ph.acc}"
    out.open(f"for (long {j} = lid; {j} < {n}L; {j} += {wg}L)")
    p.push()
    _unflatten(out, p, list(ph.dims), j)
    v = p.value(ph.value)
    for st in ph.stores:
        emit_store(p, st)
    if arg:
        pos = p.index(ph.position, "long")
        out.open(f"if {better(ph.op, v, acc, vt)}")
        out.emit(f"{acc} = {v}; {idx} = {pos};")
        out.close()
    else:
        out.emit(f"{acc} = {combine(p, ph.op, acc, v, vt)};")
    p.pop()
    out.close()
    combine_group(out, p, ph, wg, acc, idx)
    p.accs[ph.acc] = idx if arg else acc


def _group_store_loop(out, p, ph, wg, number):
    if not ph.dims:
        out.open("if (lid == 0)")
        p.push()
        for s in ph.stores:
            emit_store(p, s)
        p.pop()
        out.close()
        return
    j = f"j_s{number}"
    out.open(f"for (long {j} = lid; {j} < {row_size(ph)}L; {j} += {wg}L)")
    p.push()
    _unflatten(out, p, list(ph.dims), j)
    for s in ph.stores:
        emit_store(p, s)
    p.pop()
    out.close()


LOCAL_BUDGET = 0.5        # share of the device's local memory a group kernel may take


def group_size(kernel, device):
    rows = max(row_size(ph) for ph in kernel.phases if isinstance(ph, Reduce))
    wg = min(device.group_size, pow2_at_most(device.max_work_group_size), next_pow2(rows))
    return max(wg, 1)


def group_phase(out, p, ph, wg, number):
    """Phase ``number`` of a group kernel: a reduction or a store loop over the row."""
    if isinstance(ph, Reduce):
        _group_reduce(out, p, ph, wg)
    else:
        _group_store_loop(out, p, ph, wg, number)


def group_prologue(out, p, kernel, device, wg):
    """The opening of a group kernel: buffer pointers, ``lid``, the row's outer Vars from
    the group id, and the per-row scratch buffers. Returns the parameters and the number
    of rows."""
    params, setup = buffer_params(kernel)
    for line in setup:
        out.emit(line)
    out.emit("const long lid = get_local_id(0);")
    outer = list(kernel.outer)
    points = math.prod(v.size for v in outer)
    if outer:
        out.emit("const long row = get_group_id(1);")
        stride = 1
        for v in reversed(outer):
            q = "row" if stride == 1 else f"(row / {stride}L)"
            out.emit(f"const long {cv(v)} = {q}{'' if v is outer[0] else f' % {v.size}L'};")
            p.vars[v] = cv(v)
            stride *= v.size
    # per-row scratch: local memory when it fits, else private arrays (each work-item only
    # reads back what it wrote, so both are correct)
    scratch = sum(b.nbytes for b in kernel.buffers if b.local)
    reds = sum(wg * 16 for ph in kernel.phases if isinstance(ph, Reduce))
    local_rows = scratch + reds <= LOCAL_BUDGET * device.local_mem_size
    for i, b in enumerate(kernel.buffers):
        if b.local:
            space = "__local " if local_rows else ""
            out.emit(f"{space}{ctype(b.dtype, memory=True)} b{i}[{b.numel}];")
    return params, points


def print_group(kernel: LoopKernel, device, fp64, wg=None):
    wg = wg or group_size(kernel, device)
    out = Lines()
    p = ExprPrinter(out, kernel.buffers, fp64=fp64, narrow_index=not device.is_cpu)
    params, points = group_prologue(out, p, kernel, device, wg)
    for number, ph in enumerate(kernel.phases):
        group_phase(out, p, ph, wg, number)
    text = _function(kernel.name, params, out, (wg, 1))
    return printed_kernel(kernel, f"one work-group of {wg} per row", p, text,
                          [Launch(kernel.name, (wg, points), (wg, 1))])


def print_loop_kernel(kernel: LoopKernel, device, fp64, wg=None):
    check_fp64(kernel, fp64)
    if choose_strategy(kernel, device) == "item":
        return print_item(kernel, device, fp64)
    return print_group(kernel, device, fp64, wg)


# -- scatter -----------------------------------------------------------------------------
def print_scatter_kernel(kernel: ScatterKernel, device, fp64):
    check_fp64(kernel, fp64)
    params, setup = buffer_params(kernel)
    # 1. initialise the target, one work-item per element
    init, init_launches, printers = item_entries(
        kernel, device, fp64, f"{kernel.name}_init",
        lambda out, p: [emit_store(p, st) for st in kernel.init.stores])
    p = merged_printers(printers)
    # 2. the writes, in order, by one work-item
    out2 = Lines()
    q = ExprPrinter(out2, kernel.buffers, fp64=fp64, narrow_index=False)
    q.counter = 100000
    for line in setup:
        out2.emit(line)
    target = kernel.target
    dtype = kernel.buffers[target].dtype

    def one():
        v = q.value(kernel.value)
        addr = q.address(target, kernel.position)
        if kernel.accumulate:
            old = f"({addr} != 0)" if dtype.name == "bool" else addr
            v = q._binary("add", old, v, dtype)
        if dtype.name == "bool":
            v = f"(uchar)({v})"
        out2.emit(f"{addr} = {v};")
    _loops(out2, q, list(kernel.source), one)
    scatter = _function(f"{kernel.name}_scatter", params, out2, (1,))
    p.helpers |= q.helpers
    p.uses_fp64 |= q.uses_fp64
    return printed_kernel(kernel, "parallel init, sequential scatter", p, init + "\n" + scatter,
                          init_launches + [Launch(f"{kernel.name}_scatter", (1,), (1,))])


__all__ = ["Launch", "Printed", "print_loop_kernel", "print_scatter_kernel", "item_launch",
           "item_entries", "group_prologue", "group_phase", "group_size", "combine_group",
           "choose_strategy", "round_up", "pow2_at_most", "next_pow2"]
