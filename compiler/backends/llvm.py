"""The ``"llvm"`` backend: graph -> fused kernels -> LLVM IR -> machine code -> Executable.

``compile_graph(graph, fuse=True)``:

1. ``passes.fusion.plan_fusion`` groups op nodes into kernels (``fuse=False``: one per op);
2. ``lowering.lower_group`` turns each group into a kernel-IR kernel (a group that
   cannot be lowered as one sheds the offending node or is split, with the reason logged
   at ``KILN_DEBUG=3``); ``kernel_ir.simplify`` splits loops whose indexes divide (so
   addresses need no division) and merges contiguous ones;
3. ``llvm_loops`` / ``llvm_matmul`` print each kernel as its own LLVM module, named
   ``<ops>_<hash>``; ``runtime.llvm_jit`` compiles it for the host CPU or fetches it
   from the in-memory / on-disk kernel cache;
4. ``passes.memory.plan_memory`` places intermediates in one reusable arena;
5. ``runtime.executor.Executor`` runs the launch list.

Ops without a kernel form run their NumPy reference kernel as an "opaque" step; the
Executable counts them (``opaque_kernels``) so they stay visible.
"""
from __future__ import annotations

import time

import numpy as np

from runtime import debug as kiln_debug
from runtime import llvm_jit
from runtime.executor import Executor, KernelLaunch, Program, PythonCall

from ..kernel_ir.kernels import ERRORS, LoopKernel, MatmulKernel, OpaqueKernel, ScatterKernel
from ..kernel_ir.printer import to_text
from ..passes.fusion import plan_fusion
from .base import KernelInfo
from .kernel_plan import KernelExecutable, lower_all, opaque_step, plan_buffers
from .llvm_matmul import print_matmul_kernel
from .llvm_loops import print_loop_kernel, print_scatter_kernel
from .llvm_printer import module_text

PLACEHOLDER = "KILNKERNEL"


def print_kernel(kernel, vector_bits):
    """(module text, exported symbol, cache key, per-thread scratch bytes, threads, shared
    workspace bytes) for a non-opaque kernel."""
    scratch = 0
    if isinstance(kernel, LoopKernel):
        body, printer = print_loop_kernel(kernel, PLACEHOLDER)
        scratch = printer.scratch
        kind = "column loops" if printer.acc_arrays else "loops"
    elif isinstance(kernel, MatmulKernel):
        body, printer, scratch, blocking = print_matmul_kernel(kernel, PLACEHOLDER, vector_bits)
        kind = f"matmul {blocking.mr}x{blocking.nr} tile, kc={blocking.kc}"
        if blocking.pieces > 1:
            kind += f", K split in {blocking.pieces}"
    elif isinstance(kernel, ScatterKernel):
        body, printer = print_scatter_kernel(kernel, PLACEHOLDER)
        kind = "scatter"
    else:
        raise TypeError(kernel)
    text = module_text(kernel, PLACEHOLDER, body, printer, kind)
    code = "\n".join(l for l in text.splitlines() if not l.startswith(";"))
    base = kernel.name.rsplit("_", 1)[0]
    symbol = f"{base}_{llvm_jit.source_key(code)[:12]}"
    code = code.replace(f"@{PLACEHOLDER}", f"@{symbol}")
    text = text.replace(f"@{PLACEHOLDER}", f"@{symbol}")
    return (text, symbol, llvm_jit.source_key(code), scratch, printer.threads,
            getattr(printer, "workspace", 0))


class LLVMExecutable(KernelExecutable):
    """A graph compiled to native code for this CPU."""


def compile_graph(graph, fuse=True, debug=0):
    """Compile ``graph`` for this CPU; see the module docstring for the stages.

    ``debug`` is accepted for the backend interface; output follows ``KILN_DEBUG``."""
    start = time.perf_counter()
    plan = plan_fusion(graph, fuse=fuse)
    kernels = lower_all(graph, plan)
    target = llvm_jit.host()
    nodes = graph.nodes

    slot_of, buffers, constants, memory, arena = plan_buffers(graph, kernels)

    # -- code ------------------------------------------------------------------------------
    steps, infos, scratch, workspace = [], [], 0, 0
    for k in kernels:
        outs = tuple((slot_of[b.node], b.node) for b in k.buffers if b.written and b.node >= 0)
        if isinstance(k, OpaqueKernel):
            steps.append(PythonCall(k.name, opaque_step(graph, k, slot_of)[0], k.flops, k.bytes, outs))
            infos.append(KernelInfo(k.name, list(k.nodes), list(k.outputs), "", k.flops, k.bytes,
                                    {"opaque": k.op, "reason": k.reason}))
            continue
        text, symbol, key, need, threads, shared = print_kernel(k, target.vector_bits)
        scratch = max(scratch, need)
        workspace = max(workspace, shared)     # kernels run one after another: one is enough
        if kiln_debug.level() >= 4:
            kiln_debug.log(4, f"kernel IR and LLVM IR of {k.name}:\n{to_text(k)}\n{text}")
        address = llvm_jit.load(text, [symbol], key=key)[symbol]
        steps.append(KernelLaunch(k.name, address,
                                  tuple(slot_of[b.node] for b in k.buffers if not b.local),
                                  k.flops, k.bytes, outs, threads))
        infos.append(KernelInfo(k.name, list(k.nodes), list(k.outputs), text, k.flops, k.bytes,
                                {"symbol": symbol, "kind": type(k).__name__}))

    inputs = [(slot_of[n], tuple(nodes[n]["shape"]), nodes[n]["dtype"].np,
               nodes[n]["attrs"].get("name", f"%{n}")) for n in graph.inputs]
    out_specs = []
    for o in graph.outputs:
        op = nodes[o]["op"]
        if op == "input":
            out_specs.append(("input", graph.inputs.index(o)))
        elif op == "const":
            out_specs.append(("const", np.asarray(nodes[o]["attrs"]["value"], nodes[o]["dtype"].np)))
        else:
            out_specs.append(("slot", slot_of[o]))
    program = Program(num_slots=len(slot_of), inputs=inputs, outputs=out_specs, buffers=buffers,
                      arena=arena, constants=constants, steps=steps,
                      arena_bytes=memory.arena_bytes, scratch_bytes=scratch,
                      workspace_bytes=workspace)
    executor = Executor(program)
    seconds = time.perf_counter() - start
    opaque = [k.name for k in kernels if isinstance(k, OpaqueKernel)]
    kiln_debug.log(1, f"llvm: {graph.name}: {len(kernels)} kernels ({'fused' if fuse else 'unfused'}"
                 f"{', opaque: ' + ', '.join(opaque) if opaque else ''}), {memory.describe()}, "
                 f"{seconds:.3f} s")
    return LLVMExecutable(graph, kernels, infos, executor, plan, memory, seconds,
                          slot_of.get(ERRORS))
