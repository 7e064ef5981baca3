"""Shape/dtype rule helpers shared by op definitions. Every error names the op."""
from __future__ import annotations

from ..dtypes import bool_, FLOAT
from .registry import OpError, Spec


def broadcast_shapes(op, *shapes):
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(-ndim, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i} - {1}
        if len(sizes) > 1:
            listed = " and ".join(str(tuple(s)) for s in shapes)
            raise OpError(f"{op}: shapes {listed} are not broadcastable "
                          f"(dimension {i}: sizes {sorted(sizes)})")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def same_dtype(op, *inputs):
    dtypes = {x.dtype for x in inputs}
    if len(dtypes) > 1:
        listed = ", ".join(str(x.dtype) for x in inputs)
        raise OpError(f"{op}: inputs must share a dtype, got {listed}")
    return inputs[0].dtype


def elementwise(op, *inputs, out_dtype=None):
    shape = broadcast_shapes(op, *(tuple(x.shape) for x in inputs))
    dtype = same_dtype(op, *inputs)
    return Spec(shape, out_dtype or dtype)


def floating(op, x):
    if x.dtype.category != FLOAT:
        raise OpError(f"{op}: expected a floating-point input, got {x.dtype}")
    return Spec(tuple(x.shape), x.dtype)


def comparison(op, a, b):
    return elementwise(op, a, b, out_dtype=bool_)


def check_axes(op, axes, ndim):
    for a in axes:
        if not 0 <= a < max(ndim, 1):
            raise OpError(f"{op}: axis {a} out of range for a {ndim}-d input")
    if len(set(axes)) != len(axes):
        raise OpError(f"{op}: repeated axis in {axes}")
    return axes


def reduced_shape(shape, axes, keepdim):
    if keepdim:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)
