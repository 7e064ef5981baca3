"""Composite ops: built from primitives, recorded on the tape as *one* node.

``F.mse_loss`` is a handful of primitives, yet PyTorch users see a single
``MseLossBackward0`` whose ``next_functions`` are the loss's inputs. ``composite_call``
gives exactly that: the body runs on stand-ins for its inputs, building a private inner
tape, and the outer tape gets one ``CompositeNode`` that backpropagates through it.
The compiler's tracer simply inlines the primitives.
"""
from __future__ import annotations

import functools

from .autograd.engine import run_backward
from .autograd.grad_mode import is_grad_enabled, no_grad
from .autograd.graph import FREED_MESSAGE, Node, SavedTensor, edge_of
from . import tracing_hook
from .tensor import Tensor


def _differentiable(a):
    return isinstance(a, Tensor) and a.dtype.is_floating_point


class CompositeNode(Node):
    def __init__(self, name, fn, args, kwargs, inner_inputs, inner_outputs):
        super().__init__()
        self._name = name
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._inner_inputs = inner_inputs        # stand-ins, aligned with next_functions
        self._inner_outputs = inner_outputs
        self.num_outputs = len(inner_outputs)
        self.next_functions = tuple(edge_of(a) for a in args if _differentiable(a))
        # create_graph recomputes the body from the inputs: they must still hold these values
        self._input_versions = [SavedTensor(a) for a in args if _differentiable(a)]

    def name(self):
        return self._name

    def apply(self, grads, create_graph):
        if self._inner_outputs is None:
            raise RuntimeError(FREED_MESSAGE)
        if create_graph:
            # Rebuild the body on the real inputs so that the gradient's own graph
            # reaches them (the stand-ins are cut off from the outer tape); an input
            # overwritten in place since the forward would silently give wrong values
            for saved in self._input_versions:
                saved.unpack(self, self._name, create_graph)  # raises if modified in place
            outputs = self._fn(*self._args, **self._kwargs)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            inputs = [a for a in self._args if _differentiable(a)]
        else:
            outputs, inputs = self._inner_outputs, self._inner_inputs
        roots, root_grads = [], []
        for out, g in zip(outputs, grads):
            if g is not None and isinstance(out, Tensor) and out._requires_grad:
                roots.append(out)
                root_grads.append(g)
        wanted = [i for i, t in enumerate(inputs) if t._requires_grad]
        result = [None] * len(inputs)
        if roots and wanted:
            got = run_backward(roots, root_grads, retain_graph=True, create_graph=create_graph,
                               inputs=[inputs[i] for i in wanted])
            for i, g in zip(wanted, got):
                result[i] = g
        return tuple(result)

    def release(self):
        self._inner_outputs = self._inner_inputs = None
        self._args = self._kwargs = self._input_versions = None


def composite_call(name, fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)``; when autograd records, record it as one node ``name``."""
    if not (is_grad_enabled() and any(isinstance(a, Tensor) and a._requires_grad for a in args)):
        with no_grad():
            return fn(*args, **kwargs)
    stand_ins, inner_args = [], []
    for a in args:
        if _differentiable(a):
            s = Tensor._make(a._data, a.dtype)
            s._version = a._version           # in-place edits of the input stay visible
            s._requires_grad = a._requires_grad
            tracing_hook.on_alias(s, a)
            stand_ins.append(s)
            inner_args.append(s)
        else:
            inner_args.append(a)
    out = fn(*inner_args, **kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    node = CompositeNode(name, fn, args, kwargs, stand_ins, outs)
    results = []
    for i, o in enumerate(outs):
        if isinstance(o, Tensor) and o._requires_grad:
            r = Tensor._make(o._data, o.dtype)
            r._version = o._version
            r._requires_grad, r.grad_fn, r._output_nr = True, node, i
            tracing_hook.on_alias(r, o)
            results.append(r)
        else:
            results.append(o)
    return tuple(results) if isinstance(out, tuple) else results[0]


def composite(name):
    """Decorator form of ``composite_call`` for ops whose node name is fixed."""
    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            return composite_call(name, fn, *args, **kwargs)
        call.body = fn
        return call
    return wrap
