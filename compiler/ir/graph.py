"""The IR: a ``networkx.DiGraph`` of op nodes.

Each node is one value: a graph input, a constant, or the result of a registry op.
Node data holds ``op`` (a registry name, ``"input"`` or ``"const"``), ``args`` (the
ordered argument node ids; edges mirror them for networkx's algorithms), ``attrs``,
``shape``, ``dtype`` and ``loc`` (the user's file and line that created it).
Shapes and dtypes come from the registry's own rules, so a graph built here is checked
exactly as eager execution is.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from .. import dtypes
from ..ops import REGISTRY, OpError


@dataclass(frozen=True)
class Value:
    """A handle on a node, with the ``.shape``/``.dtype`` that shape rules read."""

    graph: "Graph"
    id: int

    @property
    def shape(self):
        return self.graph.nodes[self.id]["shape"]

    @property
    def dtype(self):
        return self.graph.nodes[self.id]["dtype"]


class Graph:
    def __init__(self, name="graph"):
        self.name = name
        self.g = nx.DiGraph()
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self._next_id = 0

    @property
    def nodes(self):
        return self.g.nodes

    def value(self, node_id) -> Value:
        return Value(self, node_id)

    def _add(self, op, args, attrs, shape, dtype, loc):
        nid = self._next_id
        self._next_id += 1
        self.g.add_node(nid, op=op, args=tuple(args), attrs=dict(attrs), shape=tuple(shape),
                        dtype=dtype, loc=loc)
        for a in args:
            self.g.add_edge(a, nid)
        return nid

    def add_input(self, name, shape, dtype, kind="arg", loc=None) -> int:
        nid = self._add("input", (), {"name": name, "kind": kind}, shape, dtype, loc)
        self.inputs.append(nid)
        return nid

    def add_const(self, value: np.ndarray, loc=None) -> int:
        value = np.asarray(value)
        return self._add("const", (), {"value": value}, value.shape,
                         dtypes.from_numpy(value.dtype), loc)

    def add_op(self, op_name, args, attrs=None, loc=None) -> int:
        """Add a registry op; its shape rule checks the arguments."""
        attrs = attrs or {}
        op = REGISTRY[op_name]
        try:
            spec = op.infer(*(self.value(a) for a in args), **attrs)
        except OpError as e:
            where = f" (at {loc})" if loc else ""
            raise OpError(f"{e}{where}") from None
        return self._add(op_name, args, attrs, spec.shape, spec.dtype, loc)

    def set_outputs(self, outputs):
        self.outputs = list(outputs)

    def topological_order(self):
        return list(nx.lexicographical_topological_sort(self.g))

    def op_nodes(self):
        return [n for n in self.topological_order() if self.nodes[n]["op"] not in ("input", "const")]

    def users(self, node_id):
        return list(self.g.successors(node_id))

    def replace_uses(self, old, new):
        """Point every user of ``old`` (and the graph outputs) at ``new``."""
        for user in list(self.g.successors(old)):
            data = self.nodes[user]
            data["args"] = tuple(new if a == old else a for a in data["args"])
            self.g.remove_edge(old, user)
            self.g.add_edge(new, user)
        self.outputs = [new if o == old else o for o in self.outputs]

    def remove(self, node_id):
        self.g.remove_node(node_id)

    def __len__(self):
        return self.g.number_of_nodes()

    def __str__(self):
        from .printer import to_text
        return to_text(self)
