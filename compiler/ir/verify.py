"""The IR verifier: run between passes (always in debug mode) so that a pass that breaks
the graph is caught at the pass, not three kernels later."""
from __future__ import annotations

import networkx as nx

from ..ops import REGISTRY


class VerificationError(AssertionError):
    pass


def verify(graph, after=None):
    where = f" after pass {after!r}" if after else ""
    g = graph.g
    if not nx.is_directed_acyclic_graph(g):
        raise VerificationError(f"graph {graph.name}{where} has a cycle")
    for nid, data in g.nodes(data=True):
        if "op" not in data:
            raise VerificationError(f"node %{nid}{where} has no data: an edge points at a node "
                                    "that was never added (a pass copied a dangling argument)")
        op, args = data["op"], data["args"]
        if set(g.predecessors(nid)) != set(args):
            raise VerificationError(f"node %{nid} ({op}){where}: edges {sorted(g.predecessors(nid))} "
                                    f"disagree with args {list(args)}")
        if op == "input":
            if nid not in graph.inputs:
                raise VerificationError(f"input node %{nid}{where} is not listed in graph.inputs")
            continue
        if op == "const":
            value = data["attrs"]["value"]
            if tuple(value.shape) != tuple(data["shape"]) or value.dtype != data["dtype"].np:
                raise VerificationError(f"const %{nid}{where}: value is {value.dtype}"
                                        f"{list(value.shape)} but the node says "
                                        f"{data['dtype'].name}{list(data['shape'])}")
            continue
        if op not in REGISTRY:
            raise VerificationError(f"node %{nid}{where}: unknown op {op!r}")
        spec = REGISTRY[op].infer(*(graph.value(a) for a in args), **data["attrs"])
        if tuple(spec.shape) != tuple(data["shape"]) or spec.dtype != data["dtype"]:
            raise VerificationError(
                f"node %{nid} ({op}){where}: recorded {data['shape']} {data['dtype']} but the "
                f"shape rule gives {spec.shape} {spec.dtype}")
    for o in graph.outputs:
        if o not in g:
            raise VerificationError(f"graph output %{o}{where} is not a node")
    for i in graph.inputs:
        if i not in g:
            raise VerificationError(f"graph input %{i}{where} was removed")
