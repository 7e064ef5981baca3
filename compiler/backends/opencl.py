"""The ``"opencl"`` backend: graph -> fused kernels -> OpenCL C -> device program -> Executable.

``compile_graph(graph, fuse=True)`` shares everything up to the kernel IR with the LLVM
backend (``kernel_plan.lower_all``: the same fusion plan, the same kernels, the same
names), then:

1. ``opencl_loops`` / ``opencl_matmul`` print each kernel as OpenCL C, shaped for the
   device ``runtime.opencl_device`` chose (``Target``: work-group sizes, tile depth);
2. all kernels of the graph go into one program, built by ``runtime.opencl_build``
   (in-memory and on-disk binary cache; one driver invocation per graph rather than per
   kernel, which is most of the cold compile time);
3. ``passes.memory.plan_memory`` places intermediates in one device arena;
4. ``runtime.opencl_executor.CLExecutor`` runs the launches, with host transfers only at
   graph inputs and outputs.

Ops without a kernel form run their NumPy reference kernel on the host (``HostCall``),
counted in ``opaque_kernels``. A kernel the device cannot run (float64 without
``cl_khr_fp64``) is a ``OpenCLUnsupportedError`` naming the kernel, its ops and dtype.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from runtime import debug as kiln_debug
from runtime import opencl_build
from runtime.opencl_device import device as get_device
from runtime.opencl_executor import CLExecutor, CLLaunch, CLProgram, HostCall

from ..kernel_ir.kernels import ERRORS, LoopKernel, MatmulKernel, OpaqueKernel, ScatterKernel
from ..kernel_ir.printer import to_text
from ..passes.fusion import plan_fusion
from .base import KernelInfo
from .kernel_plan import KernelExecutable, lower_all, opaque_step, plan_buffers
from .opencl_loops import print_loop_kernel, print_scatter_kernel
from .opencl_matmul import print_matmul_kernel
from .opencl_matmul_vec import print_vector_matmul, vector_matmul_applies
from .opencl_printer import OpenCLUnsupported, preamble
from .opencl_rows_vec import print_rows, rows_apply
from .opencl_streaming import print_streamed, stream_lanes


class OpenCLUnsupportedError(RuntimeError):
    """A kernel needs something the chosen OpenCL device lacks."""


@dataclass(frozen=True)
class Target:
    """The device facts and the sizing policy the printers use.

    GPUs: 256 work-items per group (a multiple of every vendor's SIMD width), tile depth
    16 for the matmul (8 KiB of local memory per operand pair), index arithmetic in
    ``int`` where it fits. CPU runtimes: Intel's vectoriser packs 16 work-items of
    dimension 0 into one AVX-512 register, so groups are multiples of 16; a row
    reduction uses one such group (measured fastest for W2's rows of 1024, and its
    partials combine after a single barrier); a deeper matmul step (32) halves the
    barriers per flop. Elementwise kernels take one point per work-item (see
    ``opencl_loops.item_plan``), except on CPU runtimes where they write a large graph
    output (``opencl_streaming``: 16 points as one vector). On CPU runtimes float32 row
    kernels whose rows are multiples of 16 take 16 elements per work-item as ``float16``
    and, given enough rows, a whole row per work-item (``opencl_rows_vec``: W2 20 -> 1.9
    ms on PoCL, 4.3 -> 1.7 ms on Intel's runtime).

    ``explicit_vectors``: CPU runtimes other than Intel's (PoCL) do not pack work-items
    into SIMD lanes nearly as well, so there float32 matmuls are written with explicit
    ``float16`` vectors per work-item too (``opencl_matmul_vec``: W5 9 -> 145 GFLOP/s on
    PoCL 3.1)."""

    device: object
    is_cpu: bool
    fp64: bool
    simd: int
    item_group: int
    group_size: int
    matmul_tk: int
    min_groups: int
    max_work_group_size: int
    local_mem_size: int
    explicit_vectors: bool = False


def target_for(dev) -> Target:
    """The sizing policy for ``dev``. ``KILN_OPENCL_STYLE`` prints for another kind of
    device: ``gpu``, ``cpu`` (Intel's CPU runtime) or ``vector`` (other CPU runtimes) -
    how every kernel shape is tested on one machine."""
    style = os.environ.get("KILN_OPENCL_STYLE", "").strip().lower()
    if style in ("cpu", "gpu", "vector"):
        cpu, explicit = style != "gpu", style == "vector"
    else:
        cpu = dev.is_cpu
        explicit = cpu and "intel" not in dev.platform.lower()
    cap = dev.max_work_group_size
    return Target(device=dev, is_cpu=cpu, fp64=dev.fp64, simd=16 if cpu else 32,
                  item_group=min(256, cap), group_size=min(16 if cpu else 256, cap),
                  matmul_tk=32 if cpu else 16, min_groups=2 * dev.compute_units,
                  max_work_group_size=cap, local_mem_size=dev.local_mem_size,
                  explicit_vectors=explicit)


def print_kernel(kernel, target):
    if isinstance(kernel, LoopKernel):
        if stream_lanes(kernel, target):
            return print_streamed(kernel, target, target.fp64)
        if rows_apply(kernel, target):
            return print_rows(kernel, target)
        return print_loop_kernel(kernel, target, target.fp64)
    if isinstance(kernel, MatmulKernel):
        if target.explicit_vectors and vector_matmul_applies(kernel):
            return print_vector_matmul(kernel, target)
        return print_matmul_kernel(kernel, target, target.fp64)
    if isinstance(kernel, ScatterKernel):
        return print_scatter_kernel(kernel, target, target.fp64)
    raise TypeError(kernel)


def _ops_of(graph, kernel):
    return ", ".join(f"%{n} {graph.nodes[n]['op']}" for n in kernel.nodes
                     if graph.nodes[n]["op"] not in ("input", "const"))


class OpenCLExecutable(KernelExecutable):
    """A graph compiled to one OpenCL program for ``device``."""

    def __init__(self, graph, kernels, infos, executor, plan, memory, compile_s, device,
                 program_source, error_slot=None):
        super().__init__(graph, kernels, infos, executor, plan, memory, compile_s, error_slot)
        self.device = device
        self.program_source = program_source

def compile_graph(graph, fuse=True, debug=0, device=None):
    """Compile ``graph`` for the OpenCL device (``device``: a selector as for
    ``KILN_OPENCL_DEVICE``; default: that variable, else the first usable device)."""
    start = time.perf_counter()
    dev = get_device(device)
    target = target_for(dev)
    plan = plan_fusion(graph, fuse=fuse)
    kernels = lower_all(graph, plan)
    nodes = graph.nodes

    slot_of, buffers, constants, memory, arena = plan_buffers(graph, kernels)

    # -- code: every kernel printed, then one program for the graph -------------------
    printed, infos = [], []
    for k in kernels:
        if isinstance(k, OpaqueKernel):
            printed.append(None)
            continue
        try:
            pk = print_kernel(k, target)
        except OpenCLUnsupported as e:
            raise OpenCLUnsupportedError(
                f"the OpenCL device {dev.describe()} cannot run kernel {k.name!r} (ops: "
                f"{_ops_of(graph, k)}): it needs {e}, and the device lacks cl_khr_fp64. "
                f"Use float32 tensors, backend='llvm', or a device with fp64 "
                f"(KILN_OPENCL_DEVICE).") from None
        printed.append(pk)
        if kiln_debug.level() >= 4:
            kiln_debug.log(4, f"kernel IR and OpenCL C of {k.name}:\n{to_text(k)}\n{pk.source}")
    bodies = [pk for pk in printed if pk is not None]
    source = ""
    program = None
    if bodies:
        helpers = set().union(*(pk.helpers for pk in bodies))
        pre = preamble(helpers, any(pk.fp64 for pk in bodies))
        source = (pre + "\n\n" if pre else "") + "\n".join(pk.body for pk in bodies)
        program = opencl_build.build(source, dev, name=f"{graph.name or 'graph'} "
                                     f"({len(bodies)} kernels)")

    steps = []
    for k, pk in zip(kernels, printed):
        outs = tuple((slot_of[b.node], b.node) for b in k.buffers if b.written and b.node >= 0)
        if pk is None:
            fn, reads, writes = opaque_step(graph, k, slot_of)
            steps.append(HostCall(k.name, fn, reads, writes, k.flops, k.bytes, outs))
            infos.append(KernelInfo(k.name, list(k.nodes), list(k.outputs), "", k.flops, k.bytes,
                                    {"opaque": k.op, "reason": k.reason}))
            continue
        launches = [(ln.entry, ln.global_size, ln.local_size, ln.offset) for ln in pk.launches
                    if math.prod(ln.global_size) > 0]
        steps.append(CLLaunch(k.name, launches,
                              tuple(slot_of[b.node] for b in k.buffers if not b.local),
                              k.flops, k.bytes, outs, getattr(pk, "scratch", 0)))
        infos.append(KernelInfo(k.name, list(k.nodes), list(k.outputs), pk.source, k.flops,
                                k.bytes, {"kind": pk.kind, "launches": [
                                    (ln.entry, ln.global_size, ln.local_size) for ln in pk.launches]}))

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
    cl_program = CLProgram(num_slots=len(slot_of), inputs=inputs, outputs=out_specs,
                           buffers=buffers, arena=arena, constants=constants, steps=steps,
                           arena_bytes=memory.arena_bytes, program=program)
    executor = CLExecutor(cl_program, dev)
    seconds = time.perf_counter() - start
    opaque = [k.name for k in kernels if isinstance(k, OpaqueKernel)]
    kiln_debug.log(1, f"opencl: {graph.name}: {len(kernels)} kernels on {dev.name} "
                      f"({'fused' if fuse else 'unfused'}"
                      f"{', opaque: ' + ', '.join(opaque) if opaque else ''}), "
                      f"{memory.describe()}, {seconds:.3f} s")
    exe = OpenCLExecutable(graph, kernels, infos, executor, plan, memory, seconds, dev, source,
                           slot_of.get(ERRORS))
    exe.fuse = fuse
    return exe


__all__ = ["compile_graph", "OpenCLExecutable", "OpenCLUnsupportedError", "Target", "target_for"]
