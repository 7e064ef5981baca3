"""Graph passes: an ordered list of named functions ``graph -> graph`` (in place is fine).

``optimize(graph)`` runs ``PIPELINE`` in order, verifying the IR after each pass when
``verify_each`` is set (always at KILN_DEBUG >= 1 and in the tests). Naming every pass
makes logs, dumps and bisection (``pipeline=PIPELINE[:k]``) easy.

A pass that takes a ``log`` keyword gets the pipeline's ``log`` and reports what it did
(which simplification rules fired, how many nodes CSE merged...). An entry can also be an
``UntilStable`` group: passes that feed each other (folding makes the constant 1 that
simplification removes; simplification makes the twins CSE merges) repeat until a whole
round leaves the graph unchanged.
"""
from __future__ import annotations

import inspect

from ..ir import verify

PIPELINE: list = []   # (name, function or UntilStable) pairs, registered at the bottom


def register(name):
    def wrap(fn):
        PIPELINE.append((name, fn))
        return fn
    return wrap


class UntilStable:
    """A pipeline entry: ``passes`` ((name, fn) pairs) repeated until nothing changes."""

    MAX_ROUNDS = 10   # a safety net: every rule shrinks or cheapens the graph

    def __init__(self, *passes):
        self.passes = list(passes)


def _fingerprint(graph):
    """Changes whenever a pass adds, removes or rewires a node (node ids are never reused)."""
    return (tuple((n, d["args"]) for n, d in graph.g.nodes(data=True)), tuple(graph.outputs))


def _takes_log(fn):
    try:
        return "log" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def optimize(graph, pipeline=None, verify_each=False, log=None):
    for name, fn in (PIPELINE if pipeline is None else pipeline):
        if isinstance(fn, UntilStable):
            for round_ in range(1, fn.MAX_ROUNDS + 1):
                if log is not None:
                    log(f"pass {name}: round {round_}")
                before = _fingerprint(graph)
                graph = optimize(graph, fn.passes, verify_each, log)
                if _fingerprint(graph) == before:
                    break
            else:
                if log is not None:
                    log(f"pass {name}: still changing after {fn.MAX_ROUNDS} rounds; moving on")
            continue
        before = len(graph)
        graph = (fn(graph, log=log) if _takes_log(fn) else fn(graph)) or graph
        if verify_each:
            verify(graph, after=name)
        if log is not None:
            log(f"pass {name}: {before} -> {len(graph)} nodes")
    return graph


# -- the graph-level pipeline, registered in one place so its order reads top to bottom.
# Later stages (fusion, memory planning) go after these.
from .cse import eliminate_common_subexpressions  # noqa: E402
from .dce import eliminate_dead_code  # noqa: E402
from .fold import fold_constants  # noqa: E402
from .simplify import simplify  # noqa: E402

register("dce")(eliminate_dead_code)            # first: no work is spent on dead nodes
register("canonicalize")(UntilStable(("fold", fold_constants),
                                     ("simplify", simplify),
                                     ("cse", eliminate_common_subexpressions)))
register("dce")(eliminate_dead_code)            # last: sweep what the rewrites orphaned
