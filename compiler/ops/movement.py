"""Movement ops: they rearrange or repeat elements without arithmetic.

In eager mode most of them return NumPy views, so ``view``/``transpose``/``expand``
share storage with their input exactly as PyTorch's do.
"""
from __future__ import annotations

import math

import numpy as np

from . import rules
from .registry import OpError, Spec, defop


def _reshape_infer(x, shape):
    if math.prod(shape) != math.prod(x.shape) or any(n < 0 for n in shape):
        raise OpError(f"reshape: shape {list(shape)} is invalid for input of size "
                      f"{math.prod(x.shape)} (shape {tuple(x.shape)})")
    return Spec(tuple(shape), x.dtype)


defop("reshape", "movement", infer=_reshape_infer, ref=lambda x, shape: np.reshape(x, shape),
      grad=lambda E, g, out, x, shape: (E.reshape(g, shape=tuple(x.shape)),),
      grad_name="ViewBackward0")


def _permute_infer(x, perm):
    if sorted(perm) != list(range(len(x.shape))):
        raise OpError(f"permute: {list(perm)} is not a permutation of the {len(x.shape)} "
                      f"dimensions of shape {tuple(x.shape)}")
    return Spec(tuple(x.shape[p] for p in perm), x.dtype)


def _permute_grad(E, g, out, x, perm):
    inverse = tuple(sorted(range(len(perm)), key=lambda i: perm[i]))
    return (E.permute(g, perm=inverse),)


defop("permute", "movement", infer=_permute_infer, grad=_permute_grad,
      ref=lambda x, perm: np.transpose(x, perm))


def _expand_infer(x, shape):
    lead = len(shape) - len(x.shape)
    ok = lead >= 0 and all(n == m or n == 1 for n, m in zip(x.shape, shape[lead:]))
    if not ok:
        raise OpError(f"expand: the shape {tuple(x.shape)} cannot be expanded to {tuple(shape)} "
                      "(only size-1 dimensions can grow, new dimensions go in front)")
    return Spec(tuple(shape), x.dtype)


defop("expand", "movement", infer=_expand_infer,
      ref=lambda x, shape: np.broadcast_to(x, shape),
      grad=lambda E, g, out, x, shape: (E.sum_to(g, x.shape),))


def cat_skips(shape):
    """PyTorch's cat ignores 1-d empty inputs (a legacy rule) -- unless all are such."""
    return len(shape) == 1 and shape[0] == 0


def _joined(xs):
    return [x for x in xs if not cat_skips(tuple(x.shape))] or list(xs[:1])


def _cat_infer(*xs, axis):
    for x in xs:
        if x.dtype != xs[0].dtype:
            raise OpError(f"cat: all inputs must share a dtype, got {[str(t.dtype) for t in xs]}")
    kept = _joined(xs)
    first = kept[0]
    for x in kept:
        if len(x.shape) != len(first.shape) or any(
                a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != axis):
            raise OpError(f"cat: sizes must match except in dimension {axis}; got "
                          f"{[tuple(t.shape) for t in xs]}")
    rules.check_axes("cat", (axis,), len(first.shape))
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in kept)
    return Spec(tuple(shape), first.dtype)


def _cat_grad(E, g, out, *xs, axis):
    grads, start = [], 0
    kept = _joined(xs)
    for x in xs:
        if not any(x is k for k in kept):
            grads.append(E.zeros_like(x))
            continue
        stop = start + x.shape[axis]
        spec = tuple(("slice", start, stop, 1) if i == axis else ("slice", None, None, 1)
                     for i in range(len(x.shape)))
        grads.append(E.index(g, spec=spec))
        start = stop
    return tuple(grads)


defop("cat", "movement", infer=_cat_infer, grad=_cat_grad, variadic=True,
      ref=lambda *xs, axis: np.concatenate(_joined(xs), axis=axis))


def _pad_infer(x, pads, value):
    if len(pads) != len(x.shape) or any(lo < 0 or hi < 0 for lo, hi in pads):
        raise OpError(f"pad: need one non-negative (low, high) pair per dimension of "
                      f"{tuple(x.shape)}, got {pads}")
    return Spec(tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, pads)), x.dtype)


def _pad_grad(E, g, out, x, pads, value):
    spec = tuple(("slice", lo, lo + n, 1) for n, (lo, hi) in zip(x.shape, pads))
    return (E.index(g, spec=spec),)


defop("pad", "movement", infer=_pad_infer, grad=_pad_grad, grad_name="ConstantPadNdBackward0",
      ref=lambda x, pads, value: np.pad(x, pads, constant_values=value))
