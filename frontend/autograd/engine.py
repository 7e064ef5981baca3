"""The backward pass: walk the tape from the roots in dependency order.

Each node runs once every consumer has delivered its gradient (a dependency count per
node, as PyTorch's engine does). ``backward`` accumulates into leaves' ``.grad``;
``grad`` instead captures the gradients reaching the requested inputs and runs only the
part of the tape that leads to them.
"""
from __future__ import annotations

from .. import tensor as _tensor
from .graph import AccumulateGrad, accumulate_into, edge_of
from .grad_mode import set_grad_enabled


def _add(a, b, create_graph):
    if a is None:
        return b
    if b is None:
        return a
    if create_graph:
        return a + b
    total = _tensor.Tensor._make(a._data + b._data, a.dtype)
    total.__dict__["_owned"] = True  # a fresh sum: .grad may take it without a copy
    return total


def run_backward(roots, root_grads, *, retain_graph, create_graph, inputs=None):
    """Run the tape backward. Returns captured gradients (one per input) when ``inputs``
    is given, else accumulates into leaves and returns None."""
    edges = []
    for i, t in enumerate(roots):
        edge = edge_of(t)
        if edge[0] is None:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not "
                               "have a grad_fn")
        edges.append(edge)

    root_nodes = list(dict.fromkeys(e[0] for e in edges))
    deps = {}
    capture, needed = None, None
    if inputs is not None:
        capture = {}
        for i, t in enumerate(inputs):
            capture.setdefault(edge_of(t), []).append(i)
    parents = {} if capture is not None else None   # node -> the nodes that feed it
    seen, stack = set(root_nodes), list(root_nodes)
    while stack:
        node = stack.pop()
        for nxt, _ in node.next_functions:
            if nxt is None:
                continue
            deps[nxt] = deps.get(nxt, 0) + 1
            if parents is not None:
                parents.setdefault(nxt, []).append(node)
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)

    if capture is not None:
        # only nodes from which some input is reachable must run: walk back from them
        stack = [node for node, _ in capture if node in seen]
        needed = set(stack)
        while stack:
            for p in parents.get(stack.pop(), ()):
                if p not in needed:
                    needed.add(p)
                    stack.append(p)
    captured = [None] * (len(inputs) if inputs is not None else 0)

    buffers = {}
    for (node, nr), g in zip(edges, root_grads):
        buf = buffers.setdefault(node, [None] * node.num_outputs)
        buf[nr] = _add(buf[nr], g, create_graph)

    ready = [n for n in root_nodes if deps.get(n, 0) == 0]
    with set_grad_enabled(create_graph):
        while ready:
            node = ready.pop()
            grads = buffers.pop(node, None) or [None] * node.num_outputs
            if node._hooks or node._retained:
                grads = _run_hooks(node, grads)
            if capture is not None:
                for nr, g in enumerate(grads):
                    for i in capture.get((node, nr), ()):
                        captured[i] = g
            run = (needed is None or node in needed) and not (
                capture is not None and isinstance(node, AccumulateGrad))
            if run and any(g is not None for g in grads):
                input_grads = node.apply(grads, create_graph)
                if not retain_graph:
                    node.release()
                if len(input_grads) != len(node.next_functions):
                    raise RuntimeError(f"{node.name()} returned {len(input_grads)} gradients "
                                       f"but has {len(node.next_functions)} inputs")
            else:
                input_grads = (None,) * len(node.next_functions)
            for (nxt, nr), g in zip(node.next_functions, input_grads):
                if nxt is None:
                    continue
                if g is not None:
                    buf = buffers.get(nxt)
                    if buf is None:
                        buffers[nxt] = buf = [None] * nxt.num_outputs
                    buf[nr] = _add(buf[nr], g, create_graph)
                deps[nxt] -= 1
                if deps[nxt] == 0:
                    ready.append(nxt)
    return captured if inputs is not None else None


def _run_hooks(node, grads):
    """Tensor hooks (``register_hook``) may replace a gradient; ``retain_grad`` stores it."""
    for nr, hook in node._hooks:
        if grads[nr] is not None:
            new = hook(grads[nr])
            if new is not None:
                grads[nr] = new
    if node._retained:
        for nr, ref in node._retained.items():
            t = ref()
            if t is not None and grads[nr] is not None:
                accumulate_into(t, grads[nr], create_graph=False)
    return grads
