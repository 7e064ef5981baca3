"""Dead-code elimination: drop every node the graph's outputs do not depend on.

Other passes leave dead nodes behind on purpose (a rewrite points the users of a node
elsewhere and moves on), so this pass runs after them and they stay simple. Graph
inputs are never removed, used or not: they are the calling convention, and a caller
passes one value per input whatever the graph does with it.
"""
from __future__ import annotations


def live_nodes(graph):
    """The outputs, everything they read transitively, and the inputs."""
    live = set(graph.inputs)
    stack = list(graph.outputs)
    while stack:
        n = stack.pop()
        if n in live:   # already visited (inputs start live and read nothing)
            continue
        live.add(n)
        stack.extend(a for a in graph.nodes[n]["args"] if a not in live)
    return live


def eliminate_dead_code(graph, log=None):
    live = live_nodes(graph)
    dead = [n for n in graph.g.nodes if n not in live]
    for n in dead:
        graph.remove(n)
    if log is not None and dead:
        log(f"  dce: removed {len(dead)} dead nodes")
    return graph
