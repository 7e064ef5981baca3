"""The ``"eager"`` backend: interpret a graph node by node with the reference kernels.

This is the debugging baseline every compiled kernel is checked against.
"""
from __future__ import annotations

import numpy as np

from ..ops import REGISTRY
from .base import Executable


def run(graph, inputs, order=None, capture=False):
    """Evaluate ``graph`` on NumPy ``inputs`` (aligned with ``graph.inputs``). With
    ``capture``, also return every node's value (what ``check=True`` compares)."""
    if len(inputs) != len(graph.inputs):
        raise ValueError(f"graph {graph.name} takes {len(graph.inputs)} inputs, got {len(inputs)}")
    env = dict(zip(graph.inputs, inputs))
    nodes = graph.nodes
    with np.errstate(all="ignore"):
        for n in order or graph.topological_order():
            if n in env:
                continue
            d = nodes[n]
            if d["op"] == "const":
                env[n] = d["attrs"]["value"]
                continue
            out = REGISTRY[d["op"]].ref(*(env[a] for a in d["args"]), **d["attrs"])
            if type(out) is not np.ndarray or out.dtype != d["dtype"].np:
                out = np.asarray(out).astype(d["dtype"].np, copy=False)
            env[n] = out
    outputs = [env[o] for o in graph.outputs]
    return (outputs, env) if capture else outputs


class InterpretedGraph(Executable):
    """The ``"eager"`` backend's Executable: one reference "kernel" per op node."""

    def __init__(self, graph):
        from .base import KernelInfo
        self.graph = graph
        self.order = graph.topological_order()
        self.kernels = [KernelInfo(graph.nodes[n]["op"], [n], [n]) for n in self.order
                        if graph.nodes[n]["op"] not in ("input", "const")]

    def run(self, inputs, capture=False):
        return run(self.graph, inputs, self.order, capture)
