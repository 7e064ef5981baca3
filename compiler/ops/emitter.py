"""The emitter: the one interface gradient rules are written against.

Eager autograd subclasses it to run ops on tensors; the compiler subclasses it to add
nodes to a graph. Besides one method per registered op (``E.mul(a, b)``), it offers
the few composite helpers gradient rules keep needing (``sum_to``, ``zeros_like``...),
written once here in terms of primitives so that both worlds share them.
"""
from __future__ import annotations

from .registry import REGISTRY


class Emitter:
    """``needs`` marks which inputs of the op being differentiated want a gradient, so a
    rule can skip expensive work nobody asked for (PyTorch's ``needs_input_grad``)."""

    def __init__(self, needs=None):
        self.needs = needs

    def wants(self, i):
        return self.needs is None or self.needs[i]

    def apply(self, op_name, *inputs, **attrs):
        raise NotImplementedError

    def constant(self, value, dtype):
        """A 0-d value of ``dtype``; broadcasting makes it any shape."""
        raise NotImplementedError

    def __getattr__(self, name):
        if name in REGISTRY:
            return lambda *inputs, **attrs: self.apply(name, *inputs, **attrs)
        raise AttributeError(name)

    # -- helpers shared by gradient rules -------------------------------------------
    def scalar(self, value, like):
        return self.constant(value, like.dtype)

    def zeros_like(self, x):
        return self.expand(self.constant(0, x.dtype), shape=tuple(x.shape))

    def sum_to(self, g, shape):
        """Undo broadcasting: sum ``g`` down to ``shape`` (the adjoint of broadcasting)."""
        shape = tuple(shape)
        if tuple(g.shape) == shape:
            return g
        lead = len(g.shape) - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
        if axes:
            g = self.sum(g, axes=axes, keepdim=True)
        return self.reshape(g, shape=shape)

    def unreduce(self, g, shape, axes, keepdim):
        """Broadcast a reduction's gradient back over the reduced axes."""
        if not keepdim:
            kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
            g = self.reshape(g, shape=kept)
        return self.expand(g, shape=tuple(shape))

    def cast_like(self, g, x):
        return g if g.dtype == x.dtype else self.cast(g, dtype=x.dtype)
