"""Graph -> the kernel IR of every kernel: the part of compilation all printers share.

``lower_all(graph, plan)`` lowers each fusion group of ``plan`` (see
``passes.fusion``) to one kernel-IR kernel (``lowering.lower_group``), splitting a group
that cannot be one kernel (the reason goes to ``plan.refusals`` and ``KILN_DEBUG=3``),
then applies the backend-neutral loop clean-ups and names the kernel. The LLVM and the
OpenCL backends print the very same list, which is what makes them comparable kernel
by kernel.
"""
from __future__ import annotations

import math

import numpy as np

from runtime import debug as kiln_debug

from ..kernel_ir.kernels import ERRORS, OpaqueKernel
from ..kernel_ir.simplify import collapse_loops, split_loops
from ..lowering import LoweringError, kernel_name, lower_group
from ..ops import REGISTRY
from ..passes.fusion import evict, split
from ..passes.memory import plan_memory
from .base import Executable


def lower_all(graph, plan):
    """Kernel IR for every group of ``plan`` (splitting groups that fail to lower)."""
    kernels = []
    i = 0
    while i < len(plan.groups):
        grp = plan.groups[i]
        try:
            kernel = lower_group(graph, plan, grp)
        except LoweringError as e:
            if len(grp.nodes) > 1:
                members = [f"%{n}" for n in grp.nodes]
                if evict(plan, grp, e.node):
                    what = f"%{e.node} moved to its own kernel"
                else:
                    split(plan, grp)
                    what = "split into one kernel per node"
                plan.refusals.append(f"group {members}: {what}: {e}")
                kiln_debug.log(3, f"fusion: {what}: {e}")
                continue
            grp.kind = "opaque"
            kernel = lower_group(graph, plan, grp)
            kernel.reason = str(e)
        kernel = collapse_loops(split_loops(kernel))
        kernel.name = kernel_name(graph, grp, kernel, len(kernels))
        kernels.append(kernel)
        i += 1
    return kernels


__all__ = ["lower_all"]


def plan_buffers(graph, kernels):
    """Number every value a kernel touches (a *slot*) and place the intermediates in one
    arena, reused as values die. Returns ``(slot_of, buffers, constants, memory, arena)``:
    node -> slot, slot -> (shape, NumPy dtype), slot -> constant array, the memory plan,
    and slot -> byte offset in the arena. Every backend's executor is fed these."""
    nodes = graph.nodes
    slot_of, buffers, constants = {}, {}, {}

    def slot(n):
        if n == ERRORS and n not in slot_of:   # the error record: zeros, written on error
            slot_of[n] = len(slot_of)
            buffers[slot_of[n]] = ((4,), np.int64)
            constants[slot_of[n]] = np.zeros(4, np.int64)
        if n not in slot_of:
            slot_of[n] = len(slot_of)
            d = nodes[n]
            buffers[slot_of[n]] = (tuple(d["shape"]), d["dtype"].np)
            if d["op"] == "const":
                constants[slot_of[n]] = np.asarray(d["attrs"]["value"], d["dtype"].np)
    for n in graph.inputs:
        slot(n)
    for k in kernels:
        for b in k.buffers:
            if not b.local:
                slot(b.node)
    outputs = set(graph.outputs)
    intermediates = {n for n in slot_of if n != ERRORS
                     and nodes[n]["op"] not in ("input", "const") and n not in outputs}
    steps_rw = [([b.node for b in k.buffers if not b.written and not b.local],
                 [b.node for b in k.buffers if b.written and not b.local]) for k in kernels]
    memory = plan_memory(steps_rw, intermediates,
                         lambda n: math.prod(nodes[n]["shape"]) * nodes[n]["dtype"].itemsize)
    arena = {slot_of[n]: off for n, off in memory.offsets.items()}
    return slot_of, buffers, constants, memory, arena


def opaque_step(graph, kernel, slot_of):
    """An opaque kernel: the op's NumPy reference on the host, as ``(run(arrays), the
    slots it reads, the slots it writes)`` for every backend's executor."""
    n = kernel.nodes[-1]
    d = graph.nodes[n]
    ref, attrs, dtype = REGISTRY[d["op"]].ref, d["attrs"], d["dtype"].np
    args = []
    for a in d["args"]:
        if graph.nodes[a]["op"] == "const":
            args.append(("const", graph.nodes[a]["attrs"]["value"]))
        else:
            args.append(("slot", slot_of[a]))
    out = slot_of[n]

    def run(arrays):
        with np.errstate(all="ignore"):
            value = ref(*(arrays[v] if k == "slot" else v for k, v in args), **attrs)
        np.copyto(arrays[out], np.asarray(value).astype(dtype, copy=False))
    reads = tuple(sorted({v for k, v in args if k == "slot"}))
    return run, reads, (out,)


class KernelExecutable(Executable):
    """What a printing backend returns: its kernels (IR and ``KernelInfo``), the fusion and
    memory plans that produced them, and the runtime executor that launches them."""

    def __init__(self, graph, kernels, infos, executor, plan, memory, compile_s, error_slot=None):
        self.graph = graph
        self.kernel_ir = kernels
        self.kernels = infos
        self.executor = executor
        self.fusion = plan
        self.memory = memory
        self.compile_seconds = compile_s
        self.error_slot = error_slot     # the error record's slot, if a kernel checks indexes

    @property
    def opaque_kernels(self):
        """Names of the kernels that run NumPy reference code instead of generated code."""
        return [k.name for k in self.kernel_ir if isinstance(k, OpaqueKernel)]

    def run(self, inputs, capture=False):
        result = self.executor.run(inputs, capture=capture)
        if self.error_slot is not None:
            record = self.executor.read(self.error_slot)
            if record[0]:
                self.executor.write(self.error_slot, np.zeros(4, np.int64))
                raise IndexError(self._index_error(int(record[1]), int(record[2])))
        return result

    def _index_error(self, value, size):
        """Eager mode's message, and where: the kernels that check indexes, with the
        user's source lines (a compiled kernel cannot stop at the faulty element)."""
        where = [k for k in self.kernel_ir if any(b.node == ERRORS for b in k.buffers)]
        names = ", ".join(k.name for k in where)
        locs = sorted({loc for k in where for loc in k.locs})
        return (f"index {value} is out of bounds for dimension with size {size} (in compiled "
                f"kernel {names}{'; from ' + ', '.join(locs) if locs else ''})")

    @property
    def fresh_outputs(self):
        outputs = self.executor.program.outputs   # output slots get a new array per call
        slots = [value for kind, value in outputs if kind == "slot"]
        return [kind == "slot" and slots.count(value) == 1 for kind, value in outputs]
