"""The tracer: records the primitives a Python forward pass executes into an IR graph.

Kiln traces *by running*: the first call for a signature executes eagerly as usual while
``dispatch.apply`` reports every op here. Every tensor is then a concrete value *and* a
graph node, so any Python code that works eagerly traces, and the call's eager results
are returned as they are. What cannot be followed (a branch on a tensor's value) is
reported through ``tracing_hook`` and either stops the trace (``fullgraph=True``) or
marks the signature as eager-only.

Tensors meet the tracer in four ways: as *inputs* (arguments, parameters, buffers, and
tensors captured from outside, read again at every call), as *constants* created during
the trace (Python scalars, ``torch.zeros(...)``), as *random* inputs (dropout masks,
``randn`` inside forward: redrawn at every call), or as *results* of recorded ops.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np

from compiler.ir import Graph
from . import dispatch, tracing_hook

_PACKAGE_DIRS = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep for m in (
    sys.modules["frontend"], sys.modules["compiler"]))


def user_location():
    """The first stack frame outside Kiln: where the user's code made this op."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith(_PACKAGE_DIRS) and "importlib" not in path:
            return f"{path}:{frame.f_lineno}"
        frame = frame.f_back
    return None


class TraceBreak(Exception):
    """Tracing hit something a graph cannot express (a branch on a tensor's value)."""

    def __init__(self, what, loc):
        self.what, self.loc = what, loc
        where = f" at {loc}" if loc else ""
        super().__init__(
            f"data-dependent Python control flow: {what} was called on a traced tensor{where}. "
            "A compiled graph cannot branch on tensor values. Use frontend.where(condition, a, "
            "b) to select values without a Python branch, or move this code out of the "
            "compiled function.")


class TraceError(RuntimeError):
    """The tracer met a tensor it cannot account for (a Kiln bug, reported loudly)."""


@dataclass
class RandomInput:
    node: int
    sample: object        # () -> np.ndarray, a fresh draw with the trace's distribution


@dataclass
class CustomRegion:
    """A custom autograd.Function: its forward is traced, its user ``backward`` is traced
    into the backward graph (see ``compile_api``)."""

    inputs: list          # node ids of the Function's tensor inputs
    outputs: list         # node ids of its differentiable outputs
    internal: set         # node ids recorded inside its forward
    backward: object      # (grad_tensors) -> grads, runs the user's backward


@dataclass
class Trace:
    graph: Graph
    arg_nodes: list                       # graph inputs fed by the call's tensor arguments
    state_nodes: list = field(default_factory=list)    # (node, tensor) params and buffers
    captured: list = field(default_factory=list)       # (node, tensor) read at each call
    randoms: list = field(default_factory=list)        # RandomInput
    mutations: list = field(default_factory=list)      # (tensor, node): write back after a call
    regions: list = field(default_factory=list)


class Tracer:
    def __init__(self, name="forward"):
        self.graph = Graph(name)
        self.nodes = {}          # id(tensor) -> node id
        self.keep = []           # tensors whose ids are in ``nodes`` (ids must not be reused)
        self.created = set()     # ids of constants created during the trace
        self.trace = Trace(self.graph, [])
        self.broken = None       # a TraceBreak, if tracing hit data-dependent control flow
        self.fullgraph = False
        self._regions = []       # stack of node-id sets for nested custom Functions

    # -- entry and exit -----------------------------------------------------------------
    def __enter__(self):
        if dispatch.TRACER is not None:
            raise RuntimeError("nested frontend.compile tracing is not supported")
        dispatch.TRACER = self
        self._prev = tracing_hook.set_handler(self)
        return self

    def __exit__(self, *exc):
        dispatch.TRACER = None
        tracing_hook.set_handler(self._prev)
        return False

    # -- what the tracer knows about tensors ----------------------------------------------
    def bind(self, tensor, node):
        self.nodes[id(tensor)] = node
        self.keep.append(tensor)

    def add_input(self, tensor, name, kind):
        node = self.graph.add_input(name, tuple(tensor.shape), tensor.dtype, kind=kind)
        self.bind(tensor, node)
        return node

    def node_of(self, t):
        node = self.nodes.get(id(t))
        if node is not None:
            return node
        if id(t) in self.created or t._data.size <= 1 and getattr(t, "_serial", 0) > self.start:
            node = self.graph.add_const(np.array(t._data, copy=True), loc=user_location())
        elif getattr(t, "_serial", 0) <= self.start:
            node = self.add_input(t, f"captured{len(self.trace.captured)}", "captured")
            self.trace.captured.append((node, t))
            return node
        else:
            raise TraceError(f"Kiln's tracer cannot tell how a tensor of shape {tuple(t.shape)} "
                             f"was made (at {user_location()}); this is a Kiln bug")
        self.bind(t, node)
        return node

    # -- hooks called by dispatch and tracing_hook ----------------------------------------
    def record(self, op_name, inputs, attrs, result):
        args = [self.node_of(t) for t in inputs]
        node = self.graph.add_op(op_name, args, attrs, loc=user_location())
        self.bind(result, node)
        for region in self._regions:
            region.add(node)
        return node

    def on_concrete_access(self, tensor, what):
        if id(tensor) not in self.nodes and getattr(tensor, "_serial", 0) <= self.start:
            return  # a tensor from outside the trace: its value is not a graph value
        brk = TraceBreak(what, user_location())
        if self.fullgraph:
            raise brk
        if self.broken is None:
            self.broken = brk

    def on_create(self, tensor):
        self.created.add(id(tensor))
        self.keep.append(tensor)

    def on_alias(self, new, old):
        """``new`` is the same value as ``old`` (stand-ins, composite results, detach)."""
        self.bind(new, self.node_of(old))

    def on_detach(self, new, old):
        node = self.graph.add_op("stop_gradient", [self.node_of(old)], loc=user_location())
        self.bind(new, node)

    def on_random(self, tensor, sample):
        node = self.add_input(tensor, f"random{len(self.trace.randoms)}", "random")
        self.trace.randoms.append(RandomInput(node, sample))

    def on_inplace(self, tensor, result):
        """Functionalise ``tensor.op_(...)``: from now on ``tensor`` is ``result``'s node;
        a mutated input (a BatchNorm buffer) becomes an output written back per call."""
        if tensor._base is not None and id(tensor._base) in self.nodes:
            raise TraceBreak("an in-place update of a view", user_location())
        was_input = self.graph.nodes[self.node_of(tensor)]["op"] == "input"
        self.bind(tensor, self.nodes[id(result)])
        if was_input or any(t is tensor for t, _ in self.trace.mutations):
            self.trace.mutations = [(t, n) for t, n in self.trace.mutations if t is not tensor]
            self.trace.mutations.append((tensor, self.nodes[id(result)]))

    def begin_region(self):
        self._regions.append(set())

    def end_region(self, inputs, outputs, backward):
        internal = self._regions.pop()
        for region in self._regions:
            region |= internal
        region = CustomRegion([self.node_of(t) for t in inputs],
                              [self.nodes[id(o)] for o in outputs], internal, backward)
        self.trace.regions.append(region)
