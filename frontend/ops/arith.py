"""Elementwise ops with PyTorch's calling conventions: Python scalars on either side,
type promotion, ``alpha=`` and PyTorch's grad_fn names."""
from __future__ import annotations

import numbers

import numpy as np

from compiler import dtypes as dt
from .. import tracing_hook
from ..dispatch import apply
from ..tensor import Tensor


def constant(value, dtype):
    return tracing_hook.on_create(Tensor._make(np.asarray(value, dtype.np), dtype))


def is_scalar(x):
    return isinstance(x, (numbers.Number, np.bool_)) and not isinstance(x, Tensor)


def check_operand(op, x):
    if not (isinstance(x, Tensor) or is_scalar(x)):
        raise TypeError(f"{op}(): expected a Tensor or a number, got {type(x).__name__}")


def result_dtype(*xs):
    dims, zeros, scalars = [], [], []
    for x in xs:
        if isinstance(x, Tensor):
            (dims if x._data.ndim else zeros).append(x.dtype)
        else:
            scalars.append(dt.scalar_dtype(x))
    return dt.result_type(dims, zeros, scalars)


def cast(x, dtype):
    """Cast a tensor or make a constant; never records anything for a no-op."""
    if isinstance(x, Tensor):
        return x if x.dtype == dtype else apply("cast", x, dtype=dtype)
    return constant(x, dtype)


def promote(op, *xs, floating=False):
    for x in xs:
        check_operand(op, x)
    dtype = result_dtype(*xs)
    if floating and not dtype.is_floating_point:
        dtype = dt.default_float
    return [cast(x, dtype) for x in xs]


def binary(op, a, b, grad_name=None, floating=False, scalar_inputs=()):
    a, b = promote(op, a, b, floating=floating)
    return apply(op, a, b, grad_name=grad_name, scalar_inputs=scalar_inputs)


def add(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    return binary("add", a, b)


def sub(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    if is_scalar(a) and isinstance(b, Tensor):
        return binary("sub", a, b, grad_name="RsubBackward1", scalar_inputs=(0,))
    return binary("sub", a, b)


def mul(a, b):
    return binary("mul", a, b)


def div(a, b, rounding_mode=None):
    if rounding_mode is None:
        name = "MulBackward0" if is_scalar(a) else None
        return binary("div", a, b, grad_name=name, floating=True)
    if rounding_mode not in ("floor", "trunc"):
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' "
                         f"but found '{rounding_mode}'")
    a, b = promote("div", a, b)
    q = apply("div", cast(a, dt.float64), cast(b, dt.float64))
    return cast(apply(rounding_mode if rounding_mode == "trunc" else "floor", q), a.dtype)


def floor_divide(a, b):
    return div(a, b, rounding_mode="floor")


def remainder(a, b):
    a, b = promote("remainder", a, b)
    return sub(a, mul(floor_divide(a, b), b))


def pow(a, b):
    if is_scalar(a):
        return binary("pow", a, b, grad_name="PowBackward2", scalar_inputs=(0,))
    if is_scalar(b):
        return binary("pow", a, b, grad_name="PowBackward0", scalar_inputs=(1,))
    return binary("pow", a, b, grad_name="PowBackward1")


def maximum(a, b):
    return binary("maximum", a, b)


def minimum(a, b):
    return binary("minimum", a, b)


def compare(op, a, b):
    return binary(op, a, b)


def neg(x):
    if x.dtype == dt.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or "
                           "`logical_not()` operator instead.")
    return apply("neg", x)


def unary_float(op, x):
    """Math functions promote integer inputs to the default float dtype, as PyTorch does."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument 'input' must be Tensor, not {type(x).__name__}")
    if not x.dtype.is_floating_point:
        x = cast(x, dt.default_float)
    return apply(op, x)


def unary(op, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument 'input' must be Tensor, not {type(x).__name__}")
    return apply(op, x)


def where(condition, a, b):
    if not isinstance(condition, Tensor) or condition.dtype != dt.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {getattr(condition, 'dtype', type(condition).__name__)}")
    a, b = promote("where", a, b)
    return apply("where", condition, a, b)


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = x
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    if not x.dtype.is_floating_point and any(isinstance(v, float) for v in (min, max)):
        x = cast(x, dt.default_float)
    return apply("clamp", x, lo=min, hi=max)


def logical_not(x):
    return apply("logical_not", cast(x, dt.bool_))


def logical_and(a, b):
    return apply("logical_and", cast(a, dt.bool_), cast(b, dt.bool_))


def logical_or(a, b):
    return apply("logical_or", cast(a, dt.bool_), cast(b, dt.bool_))


def logical_xor(a, b):
    return apply("ne", cast(a, dt.bool_), cast(b, dt.bool_))
