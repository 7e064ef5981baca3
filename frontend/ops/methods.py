"""Binds PyTorch's Tensor methods and operators to the functions in ``frontend.ops``.

Kept apart from ``tensor.py`` so that the class shows the data model and this file shows
the (long, flat) surface; each entry is a one-line translation.
"""
from __future__ import annotations

import re

import numpy as np

from compiler import dtypes as dt
from ..dispatch import apply
from ..tensor import Tensor
from . import arith, creation, indexing, reduction, shape
from .inplace import fast_binary, inplace


def _reflect(fn):
    return lambda self, other: fn(other, self)


def _inplace_binary(fn, ufunc=None):
    def method(self, other, *args, **kwargs):
        arith.check_operand(fn.__name__, other)
        if ufunc is not None and not args and set(kwargs) <= {"alpha"} and \
                fast_binary(self, ufunc, other, kwargs.get("alpha", 1)):
            return self
        return inplace(self, lambda base: fn(base, other, *args, **kwargs), operands=(other,))
    return method


def _inplace_unary(fn):
    def method(self, *args, **kwargs):
        return inplace(self, lambda base: fn(base, *args, **kwargs))
    return method


def _to(self, *args, **kwargs):
    dtype = kwargs.get("dtype")
    for a in args:
        if isinstance(a, dt.DType):
            dtype = a
        elif isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, str):
            if not re.fullmatch(r"(cpu|cuda|mps)(:\d+)?", a):  # devices are accepted, as no-ops
                raise RuntimeError(f"Invalid device string: {a!r}")
        elif a is not None:
            raise TypeError(f"to() received an invalid argument {a!r}")
    if dtype is None or dtype == self.dtype:
        return self
    return apply("cast", self, dtype=creation._resolve_dtype(dtype))


def _type(self, dtype=None):
    if dtype is None:
        return {"float32": "kiln.FloatTensor", "float64": "kiln.DoubleTensor",
                "int64": "kiln.LongTensor", "int32": "kiln.IntTensor",
                "bool": "kiln.BoolTensor"}[self.dtype.name]
    return _to(self, creation._resolve_dtype(dtype))


def _setitem(self, key, value):
    indexing.setitem(self, key, value)


def _fill(self, value):
    v = value.item() if isinstance(value, Tensor) else value
    return inplace(self, lambda base: apply(
        "expand", arith.constant(v, self.dtype), shape=tuple(self.shape)))


def _copy(self, src):
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'src' must be Tensor, not {type(src).__name__}")

    def compute(base):
        s = src if src.dtype == self.dtype else apply("cast", src, dtype=self.dtype)
        return apply("add", apply("mul", base, arith.constant(0, self.dtype)),
                     apply("expand", s, shape=tuple(self.shape)))
    return inplace(self, compute, operands=(src,))


def _fill_random(self, draw):
    from .. import tracing_hook
    sample = tracing_hook.on_random(Tensor._make(draw(), self.dtype), draw)
    return inplace(self, lambda base: apply("copy", sample))


def _uniform(self, a=0.0, b=1.0, generator=None):
    from .. import random as r
    shape, dtype = tuple(self.shape), self.dtype.np
    return _fill_random(self, lambda: r.rng(generator).uniform(a, b, shape).astype(dtype))


def _normal(self, mean=0.0, std=1.0, generator=None):
    from .. import random as r
    shape, dtype = tuple(self.shape), self.dtype.np
    return _fill_random(self, lambda: r.rng(generator).normal(mean, std, shape).astype(dtype))


def _addcmul(self, t1, t2, value=1):
    return arith.add(self, arith.mul(arith.mul(t1, t2), value))


def _addcdiv(self, t1, t2, value=1):
    return arith.add(self, arith.mul(arith.div(t1, t2), value))


def _lerp(self, end, weight):
    return arith.add(self, arith.mul(arith.sub(end, self), weight))


def _clone(self, memory_format=None):
    """A copy with the same memory order (PyTorch's default ``preserve_format``: a
    transposed tensor's clone is transposed too); an expanded, overlapping tensor's clone
    is contiguous, as in PyTorch."""
    data = self._data
    overlapping = any(st == 0 and n > 1 for st, n in zip(data.strides, data.shape))
    return apply("copy", self, order="C" if overlapping else "K")


def _masked_fill(self, mask, value):
    if not isinstance(mask, Tensor) or mask.dtype != dt.bool_:
        raise RuntimeError(f"masked_fill only supports boolean masks, but got mask with dtype "
                           f"{getattr(mask, 'dtype', type(mask).__name__)}")
    v = value if isinstance(value, Tensor) else arith.constant(value, self.dtype)
    return apply("where", mask, arith.cast(v, self.dtype), self, grad_name="MaskedFillBackward0",
                 scalar_inputs=() if isinstance(value, Tensor) else (1,))


def _softmax(self, dim):
    from ..nn import functional as F
    return F.softmax(self, dim)


def _log_softmax(self, dim):
    from ..nn import functional as F
    return F.log_softmax(self, dim)


def _relu(self):
    return apply("relu", self)


METHODS = {
    # arithmetic and comparison operators
    "__add__": arith.add, "__radd__": _reflect(arith.add),
    "__sub__": arith.sub, "__rsub__": _reflect(arith.sub),
    "__mul__": arith.mul, "__rmul__": _reflect(arith.mul),
    "__truediv__": arith.div, "__rtruediv__": _reflect(arith.div),
    "__floordiv__": arith.floor_divide, "__rfloordiv__": _reflect(arith.floor_divide),
    "__mod__": arith.remainder,
    "__pow__": arith.pow, "__rpow__": _reflect(arith.pow),
    "__matmul__": lambda a, b: _matmul(a, b), "__rmatmul__": lambda a, b: _matmul(b, a),
    "__neg__": arith.neg, "__pos__": lambda x: x, "__abs__": lambda x: arith.unary("abs", x),
    "__eq__": lambda a, b: arith.compare("eq", a, b), "__ne__": lambda a, b: arith.compare("ne", a, b),
    "__lt__": lambda a, b: arith.compare("lt", a, b), "__le__": lambda a, b: arith.compare("le", a, b),
    "__gt__": lambda a, b: arith.compare("gt", a, b), "__ge__": lambda a, b: arith.compare("ge", a, b),
    "__invert__": arith.logical_not, "__and__": arith.logical_and, "__or__": arith.logical_or,
    "__xor__": arith.logical_xor,
    "__getitem__": indexing.getitem, "__setitem__": _setitem,
    # math
    "add": arith.add, "sub": arith.sub, "mul": arith.mul, "div": arith.div, "pow": arith.pow,
    "subtract": arith.sub, "multiply": arith.mul, "divide": arith.div, "true_divide": arith.div,
    "neg": arith.neg, "negative": arith.neg, "maximum": arith.maximum, "minimum": arith.minimum,
    "eq": lambda a, b: arith.compare("eq", a, b), "ne": lambda a, b: arith.compare("ne", a, b),
    "lt": lambda a, b: arith.compare("lt", a, b), "le": lambda a, b: arith.compare("le", a, b),
    "gt": lambda a, b: arith.compare("gt", a, b), "ge": lambda a, b: arith.compare("ge", a, b),
    "exp": lambda x: arith.unary_float("exp", x), "log": lambda x: arith.unary_float("log", x),
    "log1p": lambda x: arith.unary_float("log1p", x),
    "sqrt": lambda x: arith.unary_float("sqrt", x), "rsqrt": lambda x: 1 / arith.unary_float("sqrt", x),
    "sin": lambda x: arith.unary_float("sin", x), "cos": lambda x: arith.unary_float("cos", x),
    "tanh": lambda x: arith.unary_float("tanh", x),
    "sigmoid": lambda x: arith.unary_float("sigmoid", x),
    "abs": lambda x: arith.unary("abs", x), "sign": lambda x: arith.unary("sign", x),
    "relu": _relu, "square": lambda x: arith.pow(x, 2), "reciprocal": lambda x: arith.div(1, x),
    "clamp": arith.clamp, "clip": arith.clamp,
    "where": lambda self, cond, other: arith.where(cond, self, other),
    "masked_fill": _masked_fill, "isnan": lambda x: arith.compare("ne", x, x),
    "isinf": lambda x: arith.compare("eq", arith.unary("abs", x), float("inf")),
    "logical_not": arith.logical_not, "logical_and": arith.logical_and,
    "logical_or": arith.logical_or,
    "softmax": _softmax, "log_softmax": _log_softmax,
    "mm": lambda a, b: _mm(a, b), "matmul": lambda a, b: _matmul(a, b),
    "bmm": lambda a, b: _bmm(a, b),
    # reductions
    "sum": reduction.sum, "mean": reduction.mean, "max": reduction.max, "min": reduction.min,
    "amax": reduction.amax, "amin": reduction.amin, "argmax": reduction.argmax,
    "argmin": reduction.argmin, "var": reduction.var, "std": reduction.std,
    "logsumexp": reduction.logsumexp, "all": reduction.all, "any": reduction.any,
    "prod": reduction.prod,
    # shape
    "view": shape.view, "reshape": shape.reshape, "flatten": shape.flatten,
    "unflatten": shape.unflatten, "squeeze": shape.squeeze, "unsqueeze": shape.unsqueeze,
    "permute": shape.permute, "transpose": shape.transpose, "t": shape.t,
    "expand": shape.expand, "expand_as": lambda x, o: shape.expand(x, tuple(o.shape)),
    "view_as": lambda x, o: shape.view(x, tuple(o.shape)),
    "reshape_as": lambda x, o: shape.reshape(x, tuple(o.shape)),
    "contiguous": lambda x, memory_format=None: shape.contiguous(x),
    "split": shape.split, "chunk": shape.chunk, "unbind": shape.unbind, "select": shape.select,
    "narrow": shape.narrow, "repeat": shape.repeat, "flip": shape.flip, "movedim": shape.movedim,
    "swapaxes": shape.transpose,
    # copies and dtypes
    "clone": _clone, "to": _to, "type": _type, "type_as": lambda x, o: _to(x, o.dtype),
    "float": lambda x: _to(x, dt.float32), "double": lambda x: _to(x, dt.float64),
    "long": lambda x: _to(x, dt.int64), "int": lambda x: _to(x, dt.int32),
    "bool": lambda x: _to(x, dt.bool_), "cpu": lambda x: x, "cuda": None,
    # in-place
    "add_": _inplace_binary(arith.add, np.add), "sub_": _inplace_binary(arith.sub, np.subtract),
    "mul_": _inplace_binary(arith.mul, np.multiply),
    "div_": _inplace_binary(arith.div, np.true_divide),
    "pow_": _inplace_binary(arith.pow),
    "__iadd__": _inplace_binary(arith.add, np.add),
    "__isub__": _inplace_binary(arith.sub, np.subtract),
    "__imul__": _inplace_binary(arith.mul), "__itruediv__": _inplace_binary(arith.div),
    "clamp_": _inplace_unary(arith.clamp), "zero_": lambda x: _fill(x, 0), "fill_": _fill,
    "copy_": _copy, "uniform_": _uniform, "normal_": _normal,
    "sqrt_": _inplace_unary(lambda x: arith.unary_float("sqrt", x)),
    "exp_": _inplace_unary(lambda x: arith.unary_float("exp", x)),
    "relu_": _inplace_unary(_relu), "neg_": _inplace_unary(arith.neg),
    "addcmul_": lambda s, a, b, value=1: inplace(s, lambda base: _addcmul(base, a, b, value), (a, b)),
    "addcdiv_": lambda s, a, b, value=1: inplace(s, lambda base: _addcdiv(base, a, b, value), (a, b)),
    "lerp_": lambda s, e, w: inplace(s, lambda base: _lerp(base, e, w), (e, w)),
    "masked_fill_": lambda s, m, v: inplace(s, lambda base: _masked_fill(base, m, v)),
    "addcmul": _addcmul, "addcdiv": _addcdiv, "lerp": _lerp,
}


def _mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {a.ndim}-D and {b.ndim}-D "
                           f"(shapes {tuple(a.shape)} and {tuple(b.shape)})")
    return _matmul(a, b)


def _bmm(a, b):
    if a.ndim != 3 or b.ndim != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, got shapes {tuple(a.shape)} and "
                           f"{tuple(b.shape)}")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {a.shape[0]} vs {b.shape[0]}")
    return _matmul(a, b, "BmmBackward0")


def _matmul(a, b, name=None):
    """NumPy matmul semantics: 1-D operands get a temporary dimension, as in PyTorch."""
    for x in (a, b):
        if not isinstance(x, Tensor):
            raise TypeError(f"matmul(): argument must be a Tensor, not {type(x).__name__}")
        if x.ndim == 0:
            raise RuntimeError("both arguments to matmul need to be at least 1D, but they are "
                               f"{a.ndim}D and {b.ndim}D")
    if a.dtype != b.dtype:   # PyTorch does not promote in matrix products
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{a.dtype.name} != {b.dtype.name} (matmul of shapes "
                           f"{tuple(a.shape)} and {tuple(b.shape)}; convert one with .to())")
    if a.ndim == 1 and b.ndim == 1:
        if a.shape[0] != b.shape[0]:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src "
                               f"[{b.shape[0]}] to have the same number of elements, but got "
                               f"{a.shape[0]} and {b.shape[0]} elements respectively")
        return reduction.sum(arith.mul(a, b))  # PyTorch: DotBackward0
    a2 = shape.unsqueeze(a, 0) if a.ndim == 1 else a
    b2 = shape.unsqueeze(b, -1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a2.shape[-2]}x"
                           f"{a2.shape[-1]} and {b2.shape[-2]}x{b2.shape[-1]})")
    if name is None:
        name = "MmBackward0" if a2.ndim == 2 and b2.ndim == 2 else "BmmBackward0"
    out = apply("matmul", a2, b2, grad_name=name)
    if a.ndim == 1:
        out = shape.squeeze(out, -2)
    if b.ndim == 1:
        out = shape.squeeze(out, -1)
    return out


def install():
    for name, fn in METHODS.items():
        if fn is not None:
            setattr(Tensor, name, fn)
    Tensor.T = property(lambda x: shape.permute(x, tuple(reversed(range(x.ndim)))))
    Tensor.mT = property(lambda x: shape.transpose(x, -2, -1))
    Tensor.is_nonzero = lambda x: bool(x)
