"""A readable text form of kernels (for debugging, tests and documentation)."""
from __future__ import annotations

from . import expr as ex
from .kernels import LoopKernel, MatmulKernel, OpaqueKernel, Reduce, ScatterKernel


def _let_bound(roots):
    """Print shared subexpressions once, as numbered lets."""
    uses = {}
    for node in ex.walk(roots):
        for c in node.children:
            uses[c] = uses.get(c, 0) + 1
    names, lines = {}, []

    def show(e):
        if e in names:
            return names[e]
        if e.op in ("const", "load", "acc", "index", "inrange"):
            return e.text
        inner = ", ".join(show(a) if type(a) is ex.Expr else repr(a) for a in e.args)
        return f"{e.op}({inner})"
    for node in ex.walk(roots):
        if uses.get(node, 0) > 1 and node.op not in ("const", "acc"):
            text = show(node)
            names[node] = f"t{len(names)}"
            lines.append(f"{names[node]} = {text}")
    return show, lines


def to_text(kernel) -> str:
    head = f"kernel {kernel.name}"
    if kernel.locs:
        head += "  # " + "; ".join(kernel.locs)
    out = [head]
    for i, b in enumerate(kernel.buffers):
        out.append(f"  b{i} {b.name}: {b.dtype.name}{list(b.shape)}{' (written)' if b.written else ''}")
    if isinstance(kernel, OpaqueKernel):
        out.append(f"  opaque {kernel.op}: {kernel.reason}")
        return "\n".join(out)
    if isinstance(kernel, MatmulKernel):
        loops = ", ".join(f"{v.name}<{v.size}" for v in kernel.batch + (kernel.m, kernel.n))
        show, lets = _let_bound([kernel.a, kernel.b] + [s.value for s in kernel.epilogue])
        out += ["  " + line for line in lets]
        out.append(f"  parallel for {loops}:")
        out.append(f"    acc = sum over k<{kernel.k.size} of {show(kernel.a)} * {show(kernel.b)}")
        for s in kernel.epilogue:
            out.append(f"    b{s.buffer}[{s.index.text}] = {show(s.value)}")
        return "\n".join(out)
    if isinstance(kernel, ScatterKernel):
        out.append("  for " + ", ".join(f"{v.name}<{v.size}" for v in kernel.outer) + ":")
        for s in kernel.init.stores:
            out.append(f"    b{s.buffer}[{s.index.text}] = {s.value.text}")
        op = "+=" if kernel.accumulate else "="
        out.append("  sequential for " + ", ".join(f"{v.name}<{v.size}" for v in kernel.source) + ":")
        out.append(f"    b{kernel.target}[{kernel.position.text}] {op} {kernel.value.text}")
        return "\n".join(out)
    assert isinstance(kernel, LoopKernel)
    roots = [e for ph in kernel.phases for e in
             ([ph.value] if isinstance(ph, Reduce) else []) + [s.value for s in ph.stores]]
    show, lets = _let_bound(roots)
    out += ["  " + line for line in lets]
    out.append("  parallel for " + (", ".join(f"{v.name}<{v.size}" for v in kernel.outer) or "()") + ":")
    for ph in kernel.phases:
        loops = ", ".join(f"{v.name}<{v.size}" for v in ph.dims)
        if isinstance(ph, Reduce):
            pos = f" at {ph.position.text}" if ph.position is not None else ""
            out.append(f"    {ph.acc} = {ph.op}{pos} over {loops or '()'} of {show(ph.value)}")
            for st in ph.stores:
                out.append(f"      and store b{st.buffer}[{st.index.text}] = {show(st.value)}")
        else:
            ind = "    "
            if ph.dims:
                out.append(f"    for {loops}:")
                ind = "      "
            for s in ph.stores:
                out.append(f"{ind}b{s.buffer}[{s.index.text}] = {show(s.value)}")
    return "\n".join(out)
