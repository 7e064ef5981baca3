"""Graph passes: an ordered list of named functions ``graph -> graph`` (in place is fine).

``optimize(graph)`` runs ``PIPELINE`` in order, verifying the IR after each pass when
``verify_each`` is set (always at KILN_DEBUG >= 1 and in the tests). Naming every pass
makes logs, dumps and bisection (``pipeline=PIPELINE[:k]``) easy.
"""
from __future__ import annotations

from ..ir import verify

PIPELINE: list = []   # (name, function) pairs, filled in by the pass modules below


def register(name):
    def wrap(fn):
        PIPELINE.append((name, fn))
        return fn
    return wrap


def optimize(graph, pipeline=None, verify_each=False, log=None):
    for name, fn in (PIPELINE if pipeline is None else pipeline):
        before = len(graph)
        graph = fn(graph) or graph
        if verify_each:
            verify(graph, after=name)
        if log is not None:
            log(f"pass {name}: {before} -> {len(graph)} nodes")
    return graph
