"""Custom autograd Functions, in PyTorch's modern and legacy styles.

Modern: ``class F(Function)`` with ``@staticmethod forward(ctx, ...)``/``backward(ctx, ...)``,
called as ``F.apply(...)``. Legacy (the seed tutorial's ``ReLUF()(x)``): ``forward(self, ...)``
and ``backward(self, ...)`` on an instance, which is its own context.
"""
from __future__ import annotations

import numpy as np

from .. import tracing_hook
from .grad_mode import is_grad_enabled, no_grad
from .graph import FREED_MESSAGE, Node, SavedTensor, edge_of


class FunctionCtx:
    """What ``forward`` and ``backward`` share: saved tensors and flags."""

    def save_for_backward(self, *tensors):
        self._to_save = tensors

    @property
    def saved_tensors(self):
        node = getattr(self, "_node", None)
        saved = getattr(self, "_saved", None)
        if saved is None:
            if node is not None and node._released:
                raise RuntimeError(FREED_MESSAGE)
            return tuple(getattr(self, "_to_save", ()))
        return tuple(None if s is None else s.unpack(node, node.name(), is_grad_enabled())
                     for s in saved)

    @property
    def to_save(self):  # the legacy alias
        return self.saved_tensors

    def mark_non_differentiable(self, *tensors):
        self._non_differentiable = {id(t) for t in tensors}

    def mark_dirty(self, *tensors):
        self._dirty = {id(t) for t in tensors}

    def set_materialize_grads(self, value):
        self.materialize_grads = bool(value)


class BackwardCFunction(Node):
    """The grad_fn of a custom Function's outputs; calls the user's ``backward``."""

    def __init__(self, fn_cls, ctx, inputs, outputs, legacy):
        super().__init__()
        self._fn_cls, self._ctx, self._legacy = fn_cls, ctx, legacy
        self._released = False
        self.num_outputs = len(outputs)
        self._input_is_tensor = [hasattr(a, "_data") for a in inputs]
        self.next_functions = tuple(edge_of(a) for a in inputs if hasattr(a, "_data"))
        self._output_meta = [(tuple(o.shape), o.dtype) if o is not None else None for o in outputs]
        ctx._node = self
        to_save = getattr(ctx, "_to_save", None)
        if to_save is not None:
            outs = {id(o) for o in outputs if o is not None}
            ctx._saved = tuple(None if t is None else SavedTensor(t, is_output=id(t) in outs)
                               for t in to_save)
            ctx._to_save = None

    def name(self):
        return f"{self._fn_cls.__name__}Backward"

    def apply(self, grads, create_graph):
        if self._released:
            raise RuntimeError(FREED_MESSAGE)
        from ..tensor import Tensor
        if getattr(self._ctx, "materialize_grads", True):
            grads = [g if g is not None else
                     Tensor._make(np.zeros(shape, dtype.np), dtype)
                     for g, (shape, dtype) in zip(grads, self._output_meta)]
        if self._legacy:
            result = self._ctx.backward(*grads)
        else:
            result = self._fn_cls.backward(self._ctx, *grads)
        if not isinstance(result, tuple):
            result = (result,)
        n_inputs = len(self._input_is_tensor)
        if len(result) < n_inputs:
            raise RuntimeError(f"function {self.name()} returned an incorrect number of gradients "
                               f"(expected {n_inputs}, got {len(result)})")
        extra = result[n_inputs:]
        if any(g is not None for g in extra):
            raise RuntimeError(f"function {self.name()} returned an incorrect number of gradients "
                               f"(expected {n_inputs}, got {len(result)})")
        out = [g for is_tensor, g in zip(self._input_is_tensor, result) if is_tensor]
        self._check_shapes(out)
        return tuple(out)

    def _check_shapes(self, grads):
        for i, ((node, _), g) in enumerate(zip(self.next_functions, grads)):
            if g is not None and node is not None and hasattr(node, "variable"):
                if tuple(g.shape) != tuple(node.variable.shape):
                    raise RuntimeError(f"Function {self.name()} returned an invalid gradient at "
                                       f"index {i} - got {list(g.shape)} but expected shape "
                                       f"compatible with {list(node.variable.shape)}")

    def release(self):
        self._released = True
        self._ctx._saved = None
        self._ctx._to_save = None


def _run(fn_cls, ctx, forward, args, legacy):
    from ..tensor import Tensor
    tensor_args = [a for a in args if isinstance(a, Tensor)]
    ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._requires_grad for a in args)
    tracing_hook.begin_region()
    with no_grad():
        raw = forward(*args)
    single = not isinstance(raw, tuple)
    outputs = (raw,) if single else raw
    records = is_grad_enabled() and any(t._requires_grad for t in tensor_args)
    if not records:
        tracing_hook.end_region(tensor_args, [], None)
        return raw
    non_diff = getattr(ctx, "_non_differentiable", set())
    results = []
    for o in outputs:
        if isinstance(o, Tensor) and any(o is a for a in tensor_args) and id(o) not in getattr(ctx, "_dirty", set()):
            o = o.detach()  # an input returned as-is becomes a new output, as in PyTorch
        results.append(o)
    tensors = [o if isinstance(o, Tensor) else None for o in results]
    saved = getattr(ctx, "_to_save", None)
    node = BackwardCFunction(fn_cls, ctx, args, tensors, legacy)
    diff_outputs = []
    for i, o in enumerate(results):
        if isinstance(o, Tensor) and id(o) not in non_diff and o.dtype.is_floating_point:
            o.grad_fn, o._output_nr, o._requires_grad = node, i, True
            diff_outputs.append(o)
    if tracing_hook.active():
        tracing_hook.end_region(tensor_args, diff_outputs, _traced_backward(
            fn_cls, ctx, saved, legacy, args, diff_outputs))
    return results[0] if single else tuple(results)


def _traced_backward(fn_cls, ctx, saved, legacy, args, outputs):
    """For the compiler: run the user's ``backward`` on given gradient tensors, reading the
    forward's saved tensors as the tracer knows them (not the eager tape's copies)."""
    from ..tensor import Tensor

    def run(grads):
        ctx._saved, ctx._to_save, ctx._node = None, saved, None
        with no_grad():
            result = ctx.backward(*grads) if legacy else fn_cls.backward(ctx, *grads)
        result = result if isinstance(result, tuple) else (result,)
        return [g for a, g in zip(args, result) if isinstance(a, Tensor)]
    return run


class Function(FunctionCtx):
    """Subclass and define ``forward``/``backward`` (see the module docstring)."""

    @classmethod
    def apply(cls, *args):
        ctx = FunctionCtx()
        return _run(cls, ctx, lambda *a: cls.forward(ctx, *a), args, legacy=False)

    def __call__(self, *args):
        """Legacy style: the instance is the context; ``forward`` is a bound method."""
        if any(isinstance(c.__dict__.get("forward"), staticmethod)
               for c in type(self).__mro__ if c is not Function):
            return type(self).apply(*args)
        return _run(type(self), self, self.forward, args, legacy=True)

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("You must implement either the backward or vjp method for your "
                                  "custom autograd.Function to use it with backward mode AD.")


def once_differentiable(fn):
    return fn
