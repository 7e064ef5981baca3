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

# ops whose kernels only move, copy or select elements: they can raise no floating-point
# warning, so they skip the error-state switch every computing op pays for
_QUIET = frozenset(("reshape", "permute", "expand", "unfold", "copy", "gather", "index",
                    "stop_gradient", "cat", "pad"))

try:   # NumPy 2's error state is a context variable: set it directly, as np.errstate does
    from numpy._core.umath import _extobj_contextvar, _make_extobj
    _IGNORE_ALL = _make_extobj(all="ignore")

    def _quietly(ref, arrays, attrs):
        token = _extobj_contextvar.set(_IGNORE_ALL)
        try:
            return ref(*arrays, **attrs)
        finally:
            _extobj_contextvar.reset(token)
except ImportError:            # pragma: no cover - other NumPy versions
    def _quietly(ref, arrays, attrs):
        with np.errstate(all="ignore"):
            return ref(*arrays, **attrs)


def apply(op_name, *inputs, grad_name=None, scalar_inputs=(), **attrs):
    """Run op ``op_name``. ``grad_name`` overrides the node's PyTorch name; ``scalar_inputs``
    lists inputs that stand for a Python scalar of a PyTorch Scalar overload (no edge)."""
    op = REGISTRY[op_name]
    try:
        spec = op.infer(*inputs, **attrs)
        arrays = [t._data for t in inputs]
        if op_name in _QUIET:
            out = op.ref(*arrays, **attrs)
        else:   # inf/nan follow IEEE silently, as in PyTorch
            out = _quietly(op.ref, arrays, attrs)
    except OpError as e:   # an index out of range is an IndexError, as in PyTorch
        raise (IndexError if isinstance(e, IndexError) else RuntimeError)(str(e)) from None
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    dtype = spec.dtype
    if out.dtype != dtype.np:
        out = out.astype(dtype.np)
    result = Tensor._make(out, dtype)
    if inputs and op.kind in _VIEW_KINDS and out.base is not None \
            and np.may_share_memory(out, arrays[0]):
        first = inputs[0]
        result._version = first._version
        result._base = base = first._base if first._base is not None else first
        # how to re-derive this view from its base (in-place ops on views replay it), and
        # the base's list of views, whose histories follow the base's in-place updates
        result._view_ops = first._view_ops + ((op_name, attrs, inputs[1:], grad_name),)
        if base._views is None:
            base._views = weakref.WeakSet()
        base._views.add(result)
    if op.grad is not None:
        for t in inputs:
            if t._requires_grad:
                if is_grad_enabled():
                    result._requires_grad = True
                    result.grad_fn = OpNode(op, inputs, attrs, result, grad_name, scalar_inputs)
                break
    if TRACER is not None:
        TRACER.record(op_name, inputs, attrs, result)
    return result


class EagerEmitter(Emitter):
    """Gradient rules run through this in eager autograd: each call is a tensor op
    (recorded on the tape when ``create_graph`` turned grad mode on)."""

    def __getattr__(self, name):
        # ``E.mul(...)``: bind each op name once as a method of the class, instead of a
        # new closure from ``Emitter.__getattr__`` at every call
        if name in REGISTRY and not name.startswith("_"):
            def method(self, *inputs, **attrs):
                return self.apply(name, *inputs, **attrs)
            method.__name__ = name
            setattr(EagerEmitter, name, method)
            return getattr(self, name)
        return super().__getattr__(name)

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
