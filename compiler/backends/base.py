"""What every backend gives the runtime: an ``Executable`` for one optimised graph.

``compile_graph(graph, backend=..., fuse=...)`` returns an object with
- ``run(inputs, capture=False) -> outputs``: NumPy arrays in, NumPy arrays out, aligned
  with ``graph.inputs`` / ``graph.outputs``; with ``capture=True`` it returns
  ``(outputs, produced)`` where ``produced`` maps every kernel output node id to its
  value (``check=True`` compares each kernel with the reference, see compiler/check.py);
- ``kernels``: one ``KernelInfo`` per launched kernel, in launch order. ``nodes`` lists
  the graph node ids the kernel computes (so ``check=True`` can interpret exactly those
  nodes with the reference kernels and compare), ``source`` the generated code.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class KernelInfo:
    name: str
    nodes: list                    # graph node ids computed by this kernel (outputs last)
    outputs: list                  # the node ids it writes that others read
    source: str = ""               # generated code (LLVM IR / OpenCL C); "" for the interpreter
    flops: int = 0
    bytes: int = 0
    extra: dict = field(default_factory=dict)


class Executable:
    graph = None
    kernels: list

    @property
    def num_kernels(self) -> int:
        return len(self.kernels)

    @property
    def fresh_outputs(self):
        """Per graph output: True if ``run`` returns it in a buffer of its own that nothing
        else refers to (not an input, a constant, or a buffer shared by two outputs), so
        the caller may keep it without copying (as ``.grad`` does). Default: none."""
        return [False] * len(self.graph.outputs)

    def run(self, inputs, capture=False):
        raise NotImplementedError
