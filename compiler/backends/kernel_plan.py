"""Graph -> the kernel IR of every kernel: the part of compilation all printers share.

``lower_all(graph, plan)`` lowers each fusion group of ``plan`` (see
``passes.fusion``) to one kernel-IR kernel (``lowering.lower_group``), splitting a group
that cannot be one kernel (the reason goes to ``plan.refusals`` and ``KILN_DEBUG=3``),
then applies the backend-neutral loop clean-ups and names the kernel. The LLVM and the
OpenCL backends print the very same list, which is what makes them comparable kernel
by kernel.
"""
from __future__ import annotations

from runtime import debug as kiln_debug

from ..kernel_ir.simplify import collapse_loops, split_loops
from ..lowering import LoweringError, kernel_name, lower_group
from ..passes.fusion import evict, split


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
