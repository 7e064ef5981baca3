"""Kiln's frontend: what users import in place of ``torch``.

``import frontend as torch`` gives PyTorch's tensor API with a dynamic autograd tape;
``frontend.nn``, ``frontend.optim`` and ``frontend.utils.data`` follow PyTorch's modules.
"""
from __future__ import annotations

from compiler.dtypes import DType as dtype  # noqa: F401  (isinstance(x, frontend.dtype))
from compiler.dtypes import bool_ as bool  # noqa: A001  (frontend.bool, as torch.bool)
from compiler.dtypes import float32, float64, int32, int64

from .tensor import Size, Tensor
from .ops import methods as _methods

_methods.install()

from . import autograd  # noqa: E402
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: E402
from .ops.arith import (add, clamp, div, logical_and, logical_not, logical_or,  # noqa: E402
                        maximum, minimum, mul, pow, remainder, sub, where, floor_divide)
from .ops.creation import (arange, as_tensor, empty, empty_like, eye, from_numpy,  # noqa: E402
                           full, full_like, linspace, ones, ones_like, rand, rand_like, randint,
                           randn, randn_like, randperm, tensor, zeros, zeros_like)
from .ops.reduction import (all, amax, amin, any, argmax, argmin, logsumexp, max,  # noqa: E402
                            mean, min, prod, std, sum, var)
from .ops.shape import (cat, chunk, flatten, flip, movedim, narrow, permute,  # noqa: E402
                        reshape, split, squeeze, stack, transpose, unbind, unsqueeze)
from .random import Generator, default_generator, initial_seed, manual_seed, seed  # noqa: E402
from runtime.threads import get_num_threads, set_num_threads  # noqa: E402

float = float32  # noqa: A001
double = float64
long = int64
int = int32  # noqa: A001
concat = cat
clip = clamp


def _method(name):
    def fn(x, *args, **kwargs):
        return getattr(x, name)(*args, **kwargs)
    fn.__name__ = name
    return fn


exp, log, log1p, sqrt, sin, cos, tanh, sigmoid, abs, neg, relu, sign = (  # noqa: A001
    _method(n) for n in ("exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "sigmoid", "abs",
                         "neg", "relu", "sign"))
eq, ne, lt, le, gt, ge = (_method(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))
matmul, mm, bmm, t, clone, square, rsqrt = (
    _method(n) for n in ("matmul", "mm", "bmm", "t", "clone", "square", "rsqrt"))
softmax, log_softmax, isnan, isinf, masked_fill = (
    _method(n) for n in ("softmax", "log_softmax", "isnan", "isinf", "masked_fill"))


def numel(x):
    return x.numel()


def is_tensor(x):
    return isinstance(x, Tensor)


def is_floating_point(x):
    return x.is_floating_point()


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    import builtins
    import numpy as np
    return builtins.bool(np.allclose(a._data, b._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(a, b):
    import numpy as np
    return tuple(a.shape) == tuple(b.shape) and np.array_equal(a._data, b._data)


def get_default_dtype():
    import compiler.dtypes as _d
    return _d.default_float


def set_default_dtype(d):
    import compiler.dtypes as _d
    if d not in (float32, float64):
        raise TypeError("only floating-point types are supported as the default type")
    _d.default_float = d


def _lazy(name):
    import importlib
    return importlib.import_module(f".{name}", __name__)


def __getattr__(name):
    if name in ("nn", "optim", "utils"):
        return _lazy(name)
    if name in ("save", "load"):
        return getattr(_lazy("serialization"), name)
    if name == "compile":
        return getattr(_lazy("compile_api"), "compile")
    raise AttributeError(f"module 'frontend' has no attribute {name!r}")
