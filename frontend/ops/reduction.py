"""Reductions with PyTorch's conventions: ``dim``/``keepdim``, integer sums in int64,
``max(dim)`` returning ``(values, indices)``."""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

from compiler import dtypes as dt
from ..dispatch import apply
from ..tensor import Tensor
from .arith import cast
from .shape import wrap_dim, wrap_dims

values_indices = namedtuple("values_indices", ["values", "indices"])


def _axes(x, dim):
    if isinstance(dim, (tuple, list)) and len(dim) == 0:
        dim = None  # PyTorch reduces over every dimension for dim=() / dim=[]
    return wrap_dims(dim, x.ndim)


def sum(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = cast(x, dtype)
    elif not x.dtype.is_floating_point:
        x = cast(x, dt.int64)
    name = "SumBackward0" if dim is None else "SumBackward1"
    return apply("sum", x, axes=_axes(x, dim), keepdim=keepdim, grad_name=name)


def mean(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = cast(x, dtype)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {x.dtype}")
    name = "MeanBackward0" if dim is None else "MeanBackward1"
    return apply("mean", x, axes=_axes(x, dim), keepdim=keepdim, grad_name=name)


def _var_args(name, x, unbiased, correction):
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"{name}(): input dtype should be floating point, got {x.dtype}")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return correction


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    correction = _var_args("var", x, unbiased, correction)
    from ..composite import composite_call
    return composite_call("VarBackward0", _var, x, dim, correction, keepdim)


def _var(x, dim, correction, keepdim):
    axes = _axes(x, dim)
    n = math.prod(x.shape[a] for a in axes)
    centered = x - apply("mean", x, axes=axes, keepdim=True)
    total = apply("sum", centered * centered, axes=axes, keepdim=keepdim)
    return total / builtins.max(n - correction, 0)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """One StdBackward0 node over the input (not a node over VarBackward0), as PyTorch."""
    correction = _var_args("std", x, unbiased, correction)
    from ..composite import composite_call
    return composite_call("StdBackward0", _std, x, dim, correction, keepdim)


def _std(x, dim, correction, keepdim):
    return _var(x, dim, correction, keepdim).sqrt()


def _extreme(kind, x, dim, keepdim):
    """``max()``/``min()``: full reduction (ties share the gradient) or (values, indices)."""
    name = "MaxBackward" if kind == "amax" else "MinBackward"
    if dim is None:
        if x.numel() == 0:
            raise RuntimeError(f"{kind[1:]}(): Expected reduction dim to be specified for "
                               "input.numel() == 0. Specify the reduction dim with the 'dim' "
                               "argument.")
        return apply(kind, x, axes=_axes(x, None), keepdim=False, grad_name=name + "1")
    from ..composite import composite_call
    from .shape import reshape
    source = x if x.ndim else reshape(x, 1)
    d = wrap_dim(dim, x.ndim)
    idx = apply("arg" + kind[1:], source, axis=d, keepdim=True)
    values = composite_call(name + "0", _take, source, idx, d, keepdim and x.ndim > 0)
    if not keepdim or not x.ndim:
        idx = reshape(idx, tuple(values.shape))
    return values_indices(values, idx)


def _take(x, idx, d, keepdim):
    values = apply("gather", x, idx, axis=d)
    if not keepdim:
        values = apply("reshape", values, shape=values.shape[:d] + values.shape[d + 1:])
    return values


def max(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        from .arith import maximum
        return maximum(x, dim)
    return _extreme("amax", x, dim, keepdim)


def min(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        from .arith import minimum
        return minimum(x, dim)
    return _extreme("amin", x, dim, keepdim)


def amax(x, dim=(), keepdim=False):
    return apply("amax", x, axes=_axes(x, dim if dim != () else None), keepdim=keepdim)


def amin(x, dim=(), keepdim=False):
    return apply("amin", x, axes=_axes(x, dim if dim != () else None), keepdim=keepdim)


def argmax(x, dim=None, keepdim=False):
    axis = None if dim is None else (wrap_dim(dim, x.ndim) if x.ndim else None)
    return apply("argmax", x, axis=axis, keepdim=keepdim)


def argmin(x, dim=None, keepdim=False):
    axis = None if dim is None else (wrap_dim(dim, x.ndim) if x.ndim else None)
    return apply("argmin", x, axis=axis, keepdim=keepdim)


def logsumexp(x, dim, keepdim=False):
    from ..composite import composite_call
    return composite_call("LogsumexpBackward0", _logsumexp, x, dim, keepdim)


def _logsumexp(x, dim, keepdim):
    axes = _axes(x, dim)
    m = apply("amax", x.detach(), axes=axes, keepdim=True)
    m = apply("where", m.isinf(), cast(0, x.dtype), m)  # all -inf rows: shift by 0
    s = apply("sum", (x - m).exp(), axes=axes, keepdim=True).log() + m
    if not keepdim:
        s = apply("reshape", s, shape=tuple(n for i, n in enumerate(s.shape) if i not in axes))
    return s


def all(x, dim=None, keepdim=False):
    return apply("amin", cast(x, dt.bool_), axes=_axes(x, dim), keepdim=keepdim)


def any(x, dim=None, keepdim=False):
    return apply("amax", cast(x, dt.bool_), axes=_axes(x, dim), keepdim=keepdim)


def prod(x, dim=None, keepdim=False):
    if not x.dtype.is_floating_point:
        x = cast(x, dt.int64)
    from ..composite import composite_call
    name = "ProdBackward0" if dim is None else "ProdBackward1"
    return composite_call(name, _prod, x, dim, keepdim)


def _prod(x, dim, keepdim):
    # exp(sum(log|x|)) with the sign tracked would lose zeros; multiply slices instead
    axes = _axes(x, dim)
    out = x
    for a in reversed(axes):
        from .shape import unbind
        parts = unbind(out, a)
        acc = parts[0]
        for p in parts[1:]:
            acc = acc * p
        out = acc
    if keepdim:
        out = apply("reshape", out, shape=tuple(1 if i in axes else n for i, n in enumerate(x.shape)))
    return out
