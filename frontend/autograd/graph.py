"""The nodes of the autograd tape.

A non-leaf tensor's ``grad_fn`` is a ``Node``. ``next_functions`` holds one
``(node, output_nr)`` edge per differentiable input, with ``AccumulateGrad`` nodes
for leaves, exactly the structure PyTorch exposes. ``apply`` maps the gradients of a
node's outputs to the gradients of its inputs.
"""
from __future__ import annotations

import weakref

import numpy as np

from .. import tensor as _tensor  # a module reference survives the tensor <-> autograd cycle
from .grad_mode import is_grad_enabled

_emitter_for = None

FREED_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed). Saved intermediate values of the graph are freed "
    "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
    "backward through the graph a second time or if you need to access saved tensors after "
    "calling backward.")


class Node:
    """Base of every grad_fn. Subclasses set ``next_functions`` and implement ``apply``."""

    num_outputs = 1

    def __init__(self):
        self.next_functions = ()
        self._retained = None  # output_nr -> weakref of tensors that called retain_grad()
        self._hooks = []       # (output_nr, fn) pairs from Tensor.register_hook

    def name(self) -> str:
        return type(self).__name__

    def apply(self, grads, create_graph):
        raise NotImplementedError

    def release(self):
        """Free saved values after a backward without ``retain_graph``."""

    def __call__(self, *grads):
        """Calling a node maps output gradients to input gradients: a tuple, or the one
        gradient itself for a single input, as PyTorch's nodes do."""
        result = self.apply(grads, create_graph=is_grad_enabled())
        return result[0] if len(result) == 1 else result

    def __repr__(self):
        return f"<{self.name()} object at {hex(id(self))}>"


class AccumulateGrad(Node):
    """The sink for a leaf: adds incoming gradients into ``variable.grad``."""

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def name(self):
        return "AccumulateGrad"

    def apply(self, grads, create_graph):
        accumulate_into(self.variable, grads[0], create_graph)
        return ()


def accumulate_into(var, grad, create_graph):
    """``var.grad += grad``, with PyTorch's rules: a fresh buffer the first time, so that
    later in-place updates of ``.grad`` never alias another tensor's memory."""
    Tensor = _tensor.Tensor
    if tuple(grad.shape) != tuple(var.shape):
        raise RuntimeError(f"gradient of shape {tuple(grad.shape)} does not match the shape "
                           f"{tuple(var.shape)} of the tensor it accumulates into")
    if var.grad is None:
        if create_graph:
            var.grad = grad if grad.dtype == var.dtype else grad.to(var.dtype)
        elif grad.__dict__.get("_owned") and grad.dtype == var.dtype and \
                grad._data.flags.c_contiguous:
            var.grad = Tensor._make(grad._data, var.dtype)  # nobody else holds it: no copy
        else:
            var.grad = Tensor._make(np.array(grad._data, dtype=var.dtype.np, copy=True), var.dtype)
    elif create_graph or var.grad.requires_grad:
        var.grad = var.grad + grad
    else:
        var.grad._data += grad._data
        var.grad._version.bump()


class SavedTensor:
    """A tensor saved for backward plus the version it had, to detect in-place edits.

    Outputs are saved as their data (not the Tensor object) and rebuilt on unpack with
    ``grad_fn`` set back to the saving node, as PyTorch does: a node that held its own
    output would form a reference cycle and keep activations alive.
    """

    __slots__ = ("tensor", "data", "counter", "version", "is_output", "dtype")

    def __init__(self, tensor, is_output=False):
        self.is_output = is_output
        self.counter = tensor._version
        self.version = tensor._version.value
        if is_output:
            self.tensor = None
            self.data, self.dtype = tensor._data, tensor.dtype
        else:
            self.tensor = tensor

    def unpack(self, node, op_name, create_graph, lazy=False):
        """The saved value. If it was modified in place since, raise -- or, with ``lazy``,
        return a *stale* placeholder that raises only if a gradient actually uses it."""
        Tensor = _tensor.Tensor
        if self.counter.value != self.version:
            shape = "x".join(map(str, self.data.shape if self.is_output else self.tensor.shape))
            message = (
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [tensor of shape [{shape}]], which is "
                f"{'output 0 of ' + op_name if self.is_output else 'an input of ' + op_name}, "
                f"is at version {self.counter.value}; expected version {self.version} instead.")
            if not lazy:
                raise RuntimeError(message)
            like = self.data if self.is_output else self.tensor._data
            return stale_tensor(like.shape, self.dtype if self.is_output else self.tensor.dtype,
                                message)
        if not self.is_output:
            return self.tensor
        t = Tensor._make(self.data, self.dtype)
        t._version = self.counter
        if create_graph:
            t._requires_grad, t.grad_fn = True, node
        return t


def stale_tensor(shape, dtype, message):
    """A placeholder for a saved value that was overwritten in place. Gradient rules may
    read its shape and dtype; any op on it yields another stale tensor (see
    ``EagerEmitter``), and a stale gradient reaching an input that needs one raises
    ``message``. So, as in PyTorch, only values a gradient really needs are checked."""
    Tensor = _tensor.Tensor
    t = Tensor._make(np.broadcast_to(np.zeros((), dtype.np), tuple(shape)), dtype)
    t.__dict__["_stale"] = message
    return t


def stale_message(t):
    return t.__dict__.get("_stale") if t is not None else None


class OpNode(Node):
    """The grad_fn of one registry op: its gradient rule *is* the registry's rule."""

    def __init__(self, op, inputs, attrs, output, name=None, scalar_inputs=()):
        super().__init__()
        self.op, self.attrs = op, attrs
        self._name = name or op.grad_name
        # As in PyTorch, an edge per differentiable input: none for bool conditions or
        # integer indices, nor for the Python scalar of a Scalar overload (x ** 2, 2 - x)
        self._edge_inputs = tuple(i for i, t in enumerate(inputs)
                                  if t.dtype.is_floating_point and i not in scalar_inputs)
        self.next_functions = tuple(edge_of(inputs[i]) for i in self._edge_inputs)
        self._saved = tuple(SavedTensor(t) for t in inputs) + (SavedTensor(output, True),)

    def name(self):
        return self._name

    def apply(self, grads, create_graph):
        if self._saved is None:
            raise RuntimeError(FREED_MESSAGE)
        global _emitter_for
        if _emitter_for is None:  # dispatch imports this module: resolve it once, late
            from ..dispatch import emitter_for as _emitter_for
        values = [s.unpack(self, self._name, create_graph, lazy=True) for s in self._saved]
        out = values.pop()
        needs = [False] * len(values)
        for i, (node, _) in zip(self._edge_inputs, self.next_functions):
            needs[i] = node is not None
        result = self.op.grad(_emitter_for(needs), grads[0], out, *values, **self.attrs)
        checked = []
        for i, (node, _) in zip(self._edge_inputs, self.next_functions):
            g = result[i]
            message = stale_message(g)
            if message is not None and node is not None:
                raise RuntimeError(message)  # the gradient needed an overwritten value
            checked.append(None if message is not None else g)
        return tuple(checked)

    def release(self):
        self._saved = None


def edge_of(t):
    """The ``(node, output_nr)`` edge through which gradient reaches tensor ``t``."""
    if t.grad_fn is not None:
        return (t.grad_fn, t._output_nr)
    if t._requires_grad:
        return (t._grad_accumulator(), 0)
    return (None, 0)


def retain(node, output_nr, tensor):
    if node._retained is None:
        node._retained = {}
    node._retained[output_nr] = weakref.ref(tensor)
