"""The one door every tensor operation goes through.

``apply`` looks the op up in the compiler's registry, checks shapes and dtypes with the
op's rule (so errors read the same in eager and compiled code), runs the reference
kernel, and records an ``OpNode`` on the tape when autograd needs one. A tracer for the
compiler hooks in here too: this is the only place that knows how ops execute.
"""
from __future__ import annotations

import weakref

import numpy as np

from compiler.ops import REGISTRY, Emitter, OpError
from runtime import host_memory
from .autograd.grad_mode import is_grad_enabled
from .tensor import Tensor
from .tracing_hook import on_create
from .autograd.graph import OpNode, stale_message, stale_tensor

# ops whose NumPy kernels may return a view of input 0; the result then shares its
# version counter, so in-place edits through either are seen by autograd
_VIEW_KINDS = ("movement", "index", "window")

TRACER = None  # the active frontend.tracer.Tracer while frontend.compile traces


host_memory.keep_freed_blocks()   # eager steps reuse the same few array sizes


def apply(op_name, *inputs, grad_name=None, scalar_inputs=(), **attrs):
    """Run op ``op_name``. ``grad_name`` overrides the node's PyTorch name; ``scalar_inputs``
    lists inputs that stand for a Python scalar of a PyTorch Scalar overload (no edge)."""
    op = REGISTRY[op_name]
    try:
        spec = op.infer(*inputs, **attrs)
        with np.errstate(all="ignore"):  # inf/nan follow IEEE silently, as in PyTorch
            out = op.ref(*[t._data for t in inputs], **attrs)
    except OpError as e:
        raise RuntimeError(str(e)) from None
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    if out.dtype != spec.dtype.np:
        out = out.astype(spec.dtype.np)
    result = Tensor._make(out, spec.dtype)
    if op.kind in _VIEW_KINDS and inputs and out.base is not None \
            and np.may_share_memory(out, inputs[0]._data):
        result._version = inputs[0]._version
        result._base = inputs[0]._base if inputs[0]._base is not None else inputs[0]
        # how to re-derive this view from its base (in-place ops on views replay it), and
        # the base's list of views, whose histories follow the base's in-place updates
        result._view_ops = inputs[0]._view_ops + ((op_name, attrs, inputs[1:], grad_name),)
        if result._base._views is None:
            result._base._views = weakref.WeakSet()
        result._base._views.add(result)
    if op.grad is not None and is_grad_enabled():
        for t in inputs:
            if t._requires_grad:
                result._requires_grad = True
                result.grad_fn = OpNode(op, inputs, attrs, result, grad_name, scalar_inputs)
                break
    if TRACER is not None:
        TRACER.record(op_name, inputs, attrs, result)
    return result


class EagerEmitter(Emitter):
    """Gradient rules run through this in eager autograd: each call is a tensor op
    (recorded on the tape when ``create_graph`` turned grad mode on)."""

    def apply(self, op_name, *inputs, **attrs):
        for t in inputs:
            message = stale_message(t)
            if message is not None:  # a saved value overwritten in place: propagate, lazily
                spec = REGISTRY[op_name].infer(*inputs, **attrs)
                return stale_tensor(spec.shape, spec.dtype, message)
        return apply(op_name, *inputs, **attrs)

    def constant(self, value, dtype):
        return on_create(Tensor._make(np.asarray(value, dtype.np), dtype))


EAGER = EagerEmitter()


def emitter_for(needs):
    """An eager emitter that tells gradient rules which inputs want a gradient."""
    return EAGER if all(needs) else EagerEmitter(needs)
