"""Constant folding: evaluate, at compile time, every op whose arguments are all constants.

The op's own reference kernel computes the value, so a folded constant is bit-for-bit
what the interpreter would have computed at run time. Gradient rules make plenty of
these (``sub(2, 1)`` in the gradient of ``x ** 2``, scalars cast to another dtype), and
folding them exposes the constants that algebraic simplification looks for.

What is not folded:
- results larger than ``FOLD_LIMIT`` elements: baking them in costs memory and compile
  time for little gain (a runtime kernel recomputes them cheaply);
- broadcasting ``expand``: it would only materialise copies of values that any consumer
  can broadcast for free;
- ops whose kernel raises on these constants (an out-of-range index...): the error
  belongs to run time, and the node may turn out to be dead anyway.
Ops reading a graph input are never folded: only ``const`` arguments count.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..ops import REGISTRY

FOLD_LIMIT = 2 ** 16   # elements


def _is_const(graph, n):
    return graph.nodes[n]["op"] == "const"


def _worth_folding(graph, n):
    d = graph.nodes[n]
    if d["op"] in ("input", "const") or not d["args"]:
        return False
    if not all(_is_const(graph, a) for a in d["args"]):
        return False
    size = math.prod(d["shape"])
    if size > FOLD_LIMIT:
        return False
    if d["op"] == "expand" and size > math.prod(graph.nodes[d["args"][0]]["shape"]):
        return False
    return True


def evaluate(graph, n):
    """The value of op node ``n`` from its constant arguments, or None if the kernel refuses."""
    d = graph.nodes[n]
    arrays = [graph.nodes[a]["attrs"]["value"] for a in d["args"]]
    try:
        with np.errstate(all="ignore"):   # as the interpreter: IEEE results, no warnings
            out = REGISTRY[d["op"]].ref(*arrays, **d["attrs"])
    except (ArithmeticError, IndexError, TypeError, ValueError):
        return None
    # a fresh contiguous array of the node's dtype: never a view of an argument's constant
    out = np.array(out, dtype=d["dtype"].np, copy=True, order="C")
    if out.shape != tuple(d["shape"]):
        raise AssertionError(f"folding %{n} ({d['op']}): the kernel gave shape {out.shape}, "
                             f"the shape rule {d['shape']}")
    return out


def fold_constants(graph, log=None):
    folded = Counter()
    for n in graph.topological_order():   # in order, so chains of constants fold in one sweep
        if not _worth_folding(graph, n):
            continue
        value = evaluate(graph, n)
        if value is None:
            continue
        d = graph.nodes[n]
        c = graph.add_const(value, loc=d["loc"])
        graph.replace_uses(n, c)
        graph.remove(n)
        folded[d["op"]] += 1
    if log is not None and folded:
        log("  fold: folded " + ", ".join(f"{op} x{k}" for op, k in sorted(folded.items())))
    return graph
