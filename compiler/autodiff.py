"""Autodiff over the IR: the backward graph from the registry's gradient rules.

The same rules that eager autograd runs on tensors are run here through a
``GraphEmitter``, which adds nodes instead of computing. The result is a *joint* graph
(forward and backward together), which ``partition`` splits into a forward graph that
also returns the values the backward needs ("saved") and a backward graph that takes
those plus the output gradients.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from .ir import Graph, Value
from .ops import REGISTRY, Emitter


class GraphEmitter(Emitter):
    def __init__(self, graph: Graph, needs=None, loc=None):
        super().__init__(needs)
        self.graph, self.loc = graph, loc

    def apply(self, op_name, *inputs, **attrs):
        return self.graph.value(self.graph.add_op(op_name, [v.id for v in inputs], attrs,
                                                  loc=self.loc))

    def constant(self, value, dtype):
        import numpy as np
        return self.graph.value(self.graph.add_const(np.asarray(value, dtype.np), loc=self.loc))


def differentiable_nodes(graph: Graph, wrt, regions=()):
    """Nodes whose value depends on some ``wrt`` input through differentiable ops.

    Inside a custom region (a user's autograd.Function) only the region's outputs count,
    and they depend on its inputs as a whole: the user's backward decides the rest."""
    live = set(wrt)
    inside = {n: r for r in regions for n in r.internal}
    for n in graph.topological_order():
        d = graph.nodes[n]
        if d["op"] in ("input", "const") or n in live:
            continue
        if n in inside:
            r = inside[n]
            if n in r.outputs and any(a in live for a in r.inputs):
                live.add(n)
            continue
        op = REGISTRY[d["op"]]
        if op.differentiable and d["dtype"].is_floating_point and any(a in live for a in d["args"]):
            live.add(n)
    return live


def add_backward(graph: Graph, outputs, wrt, regions=()):
    """Add gradient nodes for ``outputs`` w.r.t. the ``wrt`` inputs, in place.

    Returns ``(grad_inputs, grads)``: the new ``input`` nodes receiving the outputs'
    gradients (one per output, None for outputs that do not depend on ``wrt``) and the
    gradient node of each ``wrt`` input (None where unused).

    ``regions`` are custom Functions: objects with ``inputs``, ``outputs``, ``internal``
    (node ids) and ``backward(grads) -> grads``, which maps a list of gradient node ids
    (None where no gradient flows) for the outputs to node ids for the inputs.
    """
    live = differentiable_nodes(graph, wrt, regions)
    inside = {n: r for r in regions for n in r.internal}
    done = set()
    forward_order = [n for n in graph.topological_order() if n in live]
    grads: dict[int, Value] = {}
    grad_inputs = []
    for k, o in enumerate(outputs):
        if o not in live:
            grad_inputs.append(None)
            continue
        d = graph.nodes[o]
        gi = graph.add_input(f"grad_out{k}", d["shape"], d["dtype"], kind="grad")
        grad_inputs.append(gi)
        _accumulate(graph, grads, o, graph.value(gi))
    for n in reversed(forward_order):
        if n in inside:
            r = inside[n]
            if id(r) not in done:  # all users of the region's outputs are behind us
                done.add(id(r))
                in_grads = r.backward([grads[o].id if o in grads else None for o in r.outputs])
                for a, gid in zip(r.inputs, in_grads):
                    if gid is not None and a in live:
                        _accumulate(graph, grads, a, graph.value(gid))
            continue
        if n not in grads or graph.nodes[n]["op"] == "input":
            continue
        d = graph.nodes[n]
        op = REGISTRY[d["op"]]
        needs = [a in live for a in d["args"]]
        E = GraphEmitter(graph, needs, loc=d["loc"])
        results = op.grad(E, grads[n], graph.value(n), *(graph.value(a) for a in d["args"]),
                          **d["attrs"])
        for a, r in zip(d["args"], results):
            if r is not None and a in live:
                _accumulate(graph, grads, a, r)
    return grad_inputs, [grads[w].id if w in grads else None for w in wrt]


def _accumulate(graph, grads, node, g):
    if g.dtype != graph.nodes[node]["dtype"]:
        g = GraphEmitter(graph).cast(g, dtype=graph.nodes[node]["dtype"])
    grads[node] = g if node not in grads else GraphEmitter(graph).add(grads[node], g)


@dataclass
class Partition:
    forward: Graph      # inputs: the original inputs; outputs: user outputs + saved
    backward: Graph     # inputs: saved + output grads; outputs: input grads
    num_user_outputs: int
    saved: list         # joint-graph ids of the saved values, in forward-output order
    grad_inputs: list   # joint-graph ids of the output-gradient inputs (None allowed)
    wrt_grads: list     # joint-graph ids of each wrt input's gradient (None allowed)


def partition(joint: Graph, user_outputs, grad_inputs, wrt_grads) -> Partition:
    """Split the joint graph: nodes that depend on an output gradient are backward.

    Everything the backward reads from the forward side is saved. (A min-cut that
    recomputes cheap elementwise values instead of saving them is a later refinement.)
    """
    tangents = {g for g in grad_inputs if g is not None}
    backward_nodes = set(tangents)
    for t in tangents:
        backward_nodes |= nx.descendants(joint.g, t)
    tangent_side = set(backward_nodes)  # never forward, even if no gradient needs it
    needed = set()
    for g in wrt_grads:
        if g is not None:
            needed |= nx.ancestors(joint.g, g) | {g}
    backward_nodes &= needed | tangents
    saved = _saved_values(joint, backward_nodes)
    # a saved reshape/permute/expand/unfold costs a copy kernel in the forward and is free
    # to recompute (it is only addressing): save its input and recompute it backward
    moved = [s for s in saved if joint.nodes[s]["op"] in RECOMPUTED and s not in tangent_side]
    while moved:
        backward_nodes |= set(moved)
        saved = _saved_values(joint, backward_nodes)
        moved = [s for s in saved if joint.nodes[s]["op"] in RECOMPUTED and s not in tangent_side]
    # a gradient that does not depend on any output gradient (folded to a constant, or a
    # forward value) is still a backward output: constants are copied, the rest saved
    detached = [g for g in wrt_grads if g is not None and g not in backward_nodes]
    saved = sorted(set(saved) | {g for g in detached if joint.nodes[g]["op"] != "const"})
    copied = {g for g in detached if joint.nodes[g]["op"] == "const"}
    # constants used only by the backward are copied into it rather than saved
    forward_inputs = [i for i in joint.inputs if i not in tangents]
    forward = _subgraph(joint, [n for n in joint.topological_order() if n not in tangent_side],
                        forward_inputs,
                        list(user_outputs) + saved, f"{joint.name}_forward")
    bw_inputs = saved + [g for g in grad_inputs if g is not None]
    backward = _subgraph(joint, [n for n in joint.topological_order()
                                 if n in backward_nodes or n in saved or n in copied or
                                 (joint.nodes[n]["op"] == "const" and
                                  any(u in backward_nodes for u in joint.users(n)))],
                         bw_inputs, [g for g in wrt_grads if g is not None],
                         f"{joint.name}_backward")
    return Partition(forward, backward, len(user_outputs), saved, list(grad_inputs),
                     list(wrt_grads))


RECOMPUTED = ("reshape", "permute", "expand", "unfold")


def _saved_values(joint, backward_nodes):
    return sorted({a for n in backward_nodes for a in joint.nodes[n]["args"]
                   if a not in backward_nodes and joint.nodes[a]["op"] != "const"})


def _subgraph(joint, nodes, inputs, outputs, name):
    """Copy ``nodes`` into a new graph; ``inputs`` become its input nodes (ids are kept)."""
    sub = Graph(name)
    keep = set(nodes)
    for n in joint.topological_order():
        if n not in keep:
            continue
        d = joint.nodes[n]
        if n in inputs and d["op"] != "input":
            sub.g.add_node(n, op="input", args=(), attrs={"name": f"saved%{n}", "kind": "saved"},
                           shape=d["shape"], dtype=d["dtype"], loc=d["loc"])
        else:
            sub.g.add_node(n, **{k: (dict(v) if k == "attrs" else v) for k, v in d.items()})
            for a in d["args"]:
                sub.g.add_edge(a, n)
    for i in inputs:  # an input no kept node reads is still part of the calling convention
        if i not in sub.g:
            d = joint.nodes[i]
            attrs = dict(d["attrs"]) if d["op"] == "input" else {"name": f"saved%{i}",
                                                                   "kind": "saved"}
            sub.g.add_node(i, op="input", args=(), attrs=attrs, shape=d["shape"],
                           dtype=d["dtype"], loc=d["loc"])
    sub.inputs = list(inputs)
    sub.outputs = list(outputs)
    sub._next_id = joint._next_id
    return sub
