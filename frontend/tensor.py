"""The Tensor: a NumPy array plus the autograd bookkeeping PyTorch exposes.

Storage is an ``np.ndarray`` (views share it, as PyTorch views share storage). The
methods below only translate PyTorch's calling conventions; the work happens in
``frontend.ops`` and, below that, in the compiler's op registry via ``dispatch.apply``.
"""
from __future__ import annotations

import itertools
import weakref

import numpy as np

from compiler import dtypes as _dt
from . import tracing_hook
from .autograd.grad_mode import is_grad_enabled


class VersionCounter:
    """Shared by a tensor and its views; bumped by every in-place write."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0

    def bump(self):
        self.value += 1


class Size(tuple):
    """``tensor.shape``: a tuple that prints like ``torch.Size``."""

    def __repr__(self):
        return f"kiln.Size({list(self)})"

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n


_serials = itertools.count(1)


class Tensor:
    __slots__ = ("_data", "dtype", "_requires_grad", "_grad", "grad_fn", "_output_nr",
                 "_version", "_base", "_view_ops", "_views", "_accumulator", "_serial",
                 "__weakref__", "__dict__")

    def __init__(self, *args, dtype=None):
        """The legacy constructor: ``Tensor(5, 3)`` is uninitialised, ``Tensor([1, 2])`` copies."""
        if len(args) == 1 and not isinstance(args[0], (int, np.integer, Size)):
            data = args[0]._data if isinstance(args[0], Tensor) else args[0]
            array = np.array(data, dtype=np.float32)
        else:
            shape = tuple(args[0]) if len(args) == 1 and not isinstance(args[0], int) else args
            array = np.empty(tuple(int(n) for n in shape), np.float32)
        self._init(array, _dt.float32)

    def _init(self, array, dtype):
        self._data = array
        self.dtype = dtype
        self._requires_grad = False
        self._grad = None
        self.grad_fn = None
        self._output_nr = 0
        self._version = VersionCounter()
        self._base = None
        self._view_ops = ()  # for a view: the (op, attrs, extra inputs, name) chain from _base
        self._views = None   # for a base: a WeakSet of its live views (see ops/inplace.py)
        self._accumulator = None
        self._serial = next(_serials)  # creation order: the tracer tells old from new by it

    @staticmethod
    def _serial_now():
        """The serial the next tensor will get minus one: tensors at or below it predate now."""
        return next(_serials) - 1

    @classmethod
    def _make(cls, array, dtype=None):
        """Fast internal constructor around an array (no copy)."""
        t = object.__new__(cls)
        t._init(array, dtype or _dt.from_numpy(array.dtype))
        return t

    # -- autograd attributes -----------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        flag = bool(flag)
        if self.grad_fn is not None and not flag:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you "
                               "want to use a computed variable in a subgraph that doesn't require "
                               "differentiation use var_no_grad = var.detach().")
        if flag and not self.dtype.is_floating_point:
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients "
                               f"(got {self.dtype})")
        self._requires_grad = flag

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad must be a Tensor or None, got {type(value).__name__}")
            if tuple(value.shape) != tuple(self.shape):
                raise RuntimeError(f"assigned grad has data of a different size: "
                                   f"{tuple(value.shape)} vs {tuple(self.shape)}")
            if value.dtype != self.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: "
                                   f"{value.dtype} vs {self.dtype}")
        self._grad = value

    def _grad_accumulator(self):
        from .autograd.graph import AccumulateGrad
        node = self._accumulator() if self._accumulator is not None else None
        if node is None:
            node = AccumulateGrad(self)
            self._accumulator = weakref.ref(node)
        return node

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        from .autograd import backward
        backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def retain_grad(self):
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            from .autograd.graph import retain
            retain(self.grad_fn, self._output_nr, self)

    @property
    def retains_grad(self):
        n = self.grad_fn
        return bool(n is not None and n._retained and self._output_nr in n._retained)

    def register_hook(self, hook):
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        node = self.grad_fn or self._grad_accumulator()
        entry = (self._output_nr if self.grad_fn else 0, hook)
        node._hooks.append(entry)
        if self.grad_fn is None:  # keep the accumulator (and the hook) alive with the tensor
            self.__dict__["_hooked_accumulator"] = node
        return _HookHandle(node._hooks, entry)

    def detach(self):
        t = Tensor._make(self._data, self.dtype)
        t._version = self._version  # shares storage, so it shares the version counter too
        tracing_hook.on_detach(t, self)
        return t

    def detach_(self):
        if self._base is not None and self.grad_fn is not None:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self.grad_fn, self._requires_grad = None, False
        return self

    @property
    def data(self):
        t = Tensor._make(self._data, self.dtype)  # untracked: a fresh version counter
        tracing_hook.on_detach(t, self)
        return t

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
        self._data, self.dtype = value._data, value.dtype

    # -- shape and metadata ------------------------------------------------------------
    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._data.shape)
        from .ops.shape import wrap_dim
        return self._data.shape[wrap_dim(dim, self._data.ndim)]

    def dim(self):
        return self._data.ndim

    ndimension = dim

    @property
    def ndim(self):
        return self._data.ndim

    def numel(self):
        return int(self._data.size)

    nelement = numel

    def element_size(self):
        return self.dtype.itemsize

    @property
    def device(self):
        return "cpu"

    is_cuda = False

    def is_floating_point(self):
        return self.dtype.is_floating_point

    def is_contiguous(self):
        return bool(self._data.flags.c_contiguous)

    def stride(self, dim=None):
        st = tuple(s // self.dtype.itemsize for s in self._data.strides)
        return st if dim is None else st[dim]

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self):
        return id(self)

    # -- conversion out of the tensor world ---------------------------------------------
    def _check_concrete(self, what):
        tracing_hook.on_concrete_access(self, what)

    def numpy(self):
        self._check_concrete("numpy()")
        if self._requires_grad and is_grad_enabled() or self.grad_fn is not None:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return self._data

    def item(self):
        self._check_concrete("item()")
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                               "to Scalar")
        return self._data.reshape(()).item()

    def tolist(self):
        self._check_concrete("tolist()")
        return self._data.tolist()

    def __bool__(self):
        self._check_concrete("bool()")
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self._data.size} values is "
                               "ambiguous")
        return bool(self._data.reshape(()))

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.is_floating_point or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype)

    def __repr__(self):
        from .printing import format_tensor
        suffixes = []
        if self.grad_fn is not None:
            suffixes.append(f"grad_fn=<{self.grad_fn.name()}>")
        elif self._requires_grad:
            suffixes.append("requires_grad=True")
        return format_tensor(self._data, self.dtype.name, suffixes=suffixes)

    __str__ = __repr__

    def __format__(self, spec):
        if self._data.ndim == 0 and spec:
            return format(self.item(), spec)
        return repr(self)

    def __reduce_ex__(self, protocol):
        raise TypeError("Kiln tensors are not picklable; use frontend.save, whose format is safe")

    def __deepcopy__(self, memo):
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment")
        t = type(self).__new__(type(self))
        t._init(self._data.copy(), self.dtype)
        t._requires_grad = self._requires_grad
        if self._grad is not None:
            t._grad = self._grad.__deepcopy__(memo)
        memo[id(self)] = t
        return t


class _HookHandle:
    def __init__(self, hooks, entry):
        self._hooks, self._entry = hooks, entry

    def remove(self):
        if self._entry in self._hooks:
            self._hooks.remove(self._entry)
