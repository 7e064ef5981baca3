"""Reductions. ``axes`` are non-negative and sorted (the frontend normalises them)."""
from __future__ import annotations

import math

import numpy as np

from ..dtypes import int64
from . import kernels, rules
from .registry import OpError, Spec, defop


def _reduce_infer(name):
    def infer(x, axes, keepdim):
        rules.check_axes(name, axes, len(x.shape))
        if name in ("amax", "amin") and any(x.shape[a] == 0 for a in axes):
            raise OpError(f"{name}: cannot reduce over a zero-size dimension of shape {tuple(x.shape)}")
        return Spec(rules.reduced_shape(tuple(x.shape), axes, keepdim), x.dtype)
    return infer


def _sum_grad(E, g, out, x, axes, keepdim):
    return (E.unreduce(g, x.shape, axes, keepdim),)


def _mean_grad(E, g, out, x, axes, keepdim):
    count = math.prod(x.shape[a] for a in axes)
    return (E.div(E.unreduce(g, x.shape, axes, keepdim), E.scalar(count, g)),)


def _extreme_grad(E, g, out, x, axes, keepdim):
    """Ties share the gradient evenly, as PyTorch's amax/amin and full max() do."""
    hit = E.cast(E.eq(x, E.unreduce(out, x.shape, axes, keepdim)), dtype=g.dtype)
    count = E.sum(hit, axes=axes, keepdim=True)
    return (E.div(E.mul(E.unreduce(g, x.shape, axes, keepdim), hit), count),)


defop("sum", "reduce", infer=_reduce_infer("sum"), grad=_sum_grad,
      ref=lambda x, axes, keepdim: np.sum(x, axis=axes, keepdims=keepdim, dtype=x.dtype))
def _mean_ref(x, axes, keepdim):
    count = math.prod(x.shape[a] for a in axes)  # 0 gives NaN, silently (as PyTorch)
    return np.sum(x, axis=axes, keepdims=keepdim, dtype=x.dtype) / x.dtype.type(count)


defop("mean", "reduce", infer=_reduce_infer("mean"), grad=_mean_grad, ref=_mean_ref)
defop("amax", "reduce", infer=_reduce_infer("amax"), grad=_extreme_grad,
      ref=lambda x, axes, keepdim: np.amax(x, axis=axes, keepdims=keepdim))
defop("amin", "reduce", infer=_reduce_infer("amin"), grad=_extreme_grad,
      ref=lambda x, axes, keepdim: np.amin(x, axis=axes, keepdims=keepdim))


def _arg_infer(name):
    def infer(x, axis, keepdim):
        if axis is None:
            if math.prod(x.shape) == 0:
                raise OpError(f"{name}: empty input of shape {tuple(x.shape)}")
            return Spec((1,) * len(x.shape) if keepdim else (), int64)
        rules.check_axes(name, (axis,), len(x.shape))
        if len(x.shape) and x.shape[axis] == 0:
            raise OpError(f"{name}: cannot reduce over a zero-size dimension of shape {tuple(x.shape)}")
        return Spec(rules.reduced_shape(tuple(x.shape), (axis,), keepdim), int64)
    return infer


def _arg_ref(fn):
    def ref(x, axis, keepdim):
        if x.ndim == 0:
            return np.zeros((), np.int64)
        if axis is not None:
            r = kernels.scan_arg(x, axis, keepdim, largest=fn is np.argmax)
            if r is not None:
                return r
        r = fn(x, axis=axis, keepdims=keepdim).astype(np.int64)
        return r.reshape((1,) * x.ndim) if axis is None and keepdim else r
    return ref


defop("argmax", "reduce", infer=_arg_infer("argmax"), ref=_arg_ref(np.argmax))
defop("argmin", "reduce", infer=_arg_infer("argmin"), ref=_arg_ref(np.argmin))
