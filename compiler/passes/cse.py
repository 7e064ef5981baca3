"""Common-subexpression elimination: compute each distinct value once.

Two nodes are the same value when they apply the same op to the same argument nodes with
equal attributes (constants: same dtype, shape and bytes). Autodiff makes many such
twins (every gradient rule emits its own ``scalar(0)``, ``permute`` of a weight, ...),
and constant folding makes more. Nodes are visited in topological order, so by the time
a node is keyed its arguments have already been merged, and one sweep reaches the end.

Graph inputs are never merged: two inputs are two values even when they look alike.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..dtypes import DType

# Ops whose two arguments can be swapped without changing a single bit of the result.
# Not maximum/minimum: with signed zeros NumPy (and IEEE maxNum) return whichever
# argument comes second, so maximum(-0.0, 0.0) and maximum(0.0, -0.0) differ.
COMMUTATIVE = frozenset({"add", "mul", "eq", "ne", "logical_and", "logical_or"})


def attr_key(value):
    """A hashable key equal for equal attributes, tagged by type so 1, 1.0 and True differ."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value.hex())          # keeps -0.0 apart from 0.0, NaN equal to NaN
    if isinstance(value, (tuple, list)):
        return (type(value).__name__,) + tuple(attr_key(v) for v in value)
    if isinstance(value, dict):
        return ("dict",) + tuple(sorted((k, attr_key(v)) for k, v in value.items()))
    if isinstance(value, DType):
        return ("dtype", value.name)
    if isinstance(value, (np.ndarray, np.generic)):
        value = np.asarray(value)
        return ("array", value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
    return ("object", id(value))               # unknown kinds: equal only to themselves


def node_key(graph, n):
    d = graph.nodes[n]
    args = d["args"]
    if d["op"] in COMMUTATIVE:
        args = tuple(sorted(args))
    return (d["op"], args, attr_key(d["attrs"]))


def eliminate_common_subexpressions(graph, log=None):
    first_of: dict = {}
    merged = Counter()
    for n in graph.topological_order():
        if graph.nodes[n]["op"] == "input":
            continue
        key = node_key(graph, n)
        kept = first_of.setdefault(key, n)
        if kept != n:
            graph.replace_uses(n, kept)
            graph.remove(n)
            merged[graph.nodes[kept]["op"]] += 1
    if log is not None and merged:
        log("  cse: merged " + ", ".join(f"{op} x{k}" for op, k in sorted(merged.items())))
    return graph
