"""``nn.Parameter``: a Tensor that a Module registers when it is assigned as an attribute."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor


class Parameter(Tensor):
    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = Tensor._make(np.empty(0, np.float32))
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter expects a Tensor, got {type(data).__name__}")
        p = object.__new__(cls)
        p._init(data._data, data.dtype)  # shares storage with ``data``, as in PyTorch
        p._version = data._version
        p.requires_grad = requires_grad
        return p

    def __init__(self, data=None, requires_grad=True):
        pass

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        p = Parameter(Tensor._make(self._data.copy(), self.dtype), self.requires_grad)
        if self._grad is not None:
            p._grad = self._grad.__deepcopy__(memo)
        memo[id(self)] = p
        return p


class Buffer(Tensor):
    """Marker type accepted by ``register_buffer`` callers who write ``nn.Buffer(t)``."""

    def __new__(cls, data, persistent=True):
        b = object.__new__(cls)
        b._init(data._data, data.dtype)
        b.persistent = persistent
        return b

    def __init__(self, data, persistent=True):
        pass
