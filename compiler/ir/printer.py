"""Readable text and Graphviz DOT views of a graph (``KILN_DEBUG=5`` prints them)."""
from __future__ import annotations


def _fmt_attr(v):
    if hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, tuple):
        return f"array{tuple(v.shape)}" if v.size > 4 else repr(v.tolist())
    return repr(v)


def _shape(data):
    return f"{data['dtype'].name}{list(data['shape'])}"


def node_line(graph, nid):
    d = graph.nodes[nid]
    if d["op"] == "input":
        body = f"input {d['attrs']['kind']} {d['attrs']['name']!r}"
    elif d["op"] == "const":
        body = f"const {_fmt_attr(d['attrs']['value'])}"
    else:
        args = ", ".join(f"%{a}" for a in d["args"])
        attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in d["attrs"].items())
        body = f"{d['op']}({args}{', ' if args and attrs else ''}{attrs})"
    loc = f"  # {d['loc']}" if d.get("loc") else ""
    return f"%{nid}: {_shape(d)} = {body}{loc}"


def to_text(graph):
    lines = [f"graph {graph.name}("
             + ", ".join(f"%{i}" for i in graph.inputs) + "):"]
    lines += ["  " + node_line(graph, n) for n in graph.topological_order()]
    lines.append("  return " + ", ".join(f"%{o}" for o in graph.outputs))
    return "\n".join(lines)


def to_dot(graph):
    lines = [f'digraph "{graph.name}" {{', "  node [shape=box, fontname=monospace];"]
    for nid, d in graph.nodes(data=True):
        label = d["op"] if d["op"] not in ("input", "const") else \
            (d["attrs"]["name"] if d["op"] == "input" else "const")
        style = ', style=filled, fillcolor="#e8f0ff"' if d["op"] == "input" else ""
        if nid in graph.outputs:
            style = ', style=filled, fillcolor="#e8ffe8"'
        lines.append(f'  n{nid} [label="%{nid} {label}\\n{_shape(d)}"{style}];')
    for a, b in graph.g.edges:
        lines.append(f"  n{a} -> n{b};")
    lines.append("}")
    return "\n".join(lines)
