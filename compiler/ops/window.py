"""Sliding windows: ``unfold`` (im2col) and its adjoint ``fold`` (col2im).

Convolution, transposed convolution and pooling are composites of these two plus
matmul and reductions, so every one of them is differentiable to any order through
just two gradient rules: the gradient of unfold is fold, and of fold, unfold.

Layout: an input ``(N, C, *spatial)`` unfolds to ``(N, C, *kernel, *out)``.
``padding`` is one ``(low, high)`` pair per spatial dimension (high may exceed low,
which is how pooling's ``ceil_mode`` is expressed).
"""
from __future__ import annotations

import itertools


import numpy as np

from .registry import OpError, Spec, defop


def out_size(size, k, stride, pad, dilation):
    return (size + pad[0] + pad[1] - dilation * (k - 1) - 1) // stride + 1


def _out_shape(op, spatial, kernel, stride, padding, dilation):
    d = len(kernel)
    if not (len(stride) == len(padding) == len(dilation) == len(spatial) == d):
        raise OpError(f"{op}: kernel {kernel}, stride {stride}, padding {padding} and dilation "
                      f"{dilation} must each give one value per spatial dimension of {spatial}")
    out = tuple(out_size(n, k, s, p, dl) for n, k, s, p, dl in
                zip(spatial, kernel, stride, padding, dilation))
    if any(o <= 0 for o in out) or any(s <= 0 for s in stride) or any(k <= 0 for k in kernel):
        raise OpError(f"{op}: input spatial size {spatial} (padding {padding}) is too small for "
                      f"kernel {kernel} with dilation {dilation} and stride {stride}; "
                      f"output would be {out}")
    return out


def _unfold_infer(x, kernel, stride, padding, dilation, pad_value):
    if len(x.shape) != 2 + len(kernel):
        raise OpError(f"unfold: expected a {2 + len(kernel)}-d input (N, C, spatial...), "
                      f"got shape {tuple(x.shape)}")
    out = _out_shape("unfold", tuple(x.shape[2:]), kernel, stride, padding, dilation)
    return Spec(tuple(x.shape[:2]) + tuple(kernel) + out, x.dtype)


def _unfold_ref(x, kernel, stride, padding, dilation, pad_value):
    if any(p != (0, 0) for p in padding):
        x = np.pad(x, ((0, 0), (0, 0)) + tuple(padding), constant_values=pad_value)
    out = _out_shape("unfold", x.shape[2:], kernel, stride, ((0, 0),) * len(kernel), dilation)
    s = x.strides
    strides = s[:2] + tuple(si * d for si, d in zip(s[2:], dilation)) + \
        tuple(si * st for si, st in zip(s[2:], stride))
    return np.lib.stride_tricks.as_strided(x, x.shape[:2] + tuple(kernel) + out, strides,
                                           writeable=False)


def _unfold_grad(E, g, out, x, kernel, stride, padding, dilation, pad_value):
    return (E.fold(g, shape=tuple(x.shape), kernel=kernel, stride=stride, padding=padding,
                   dilation=dilation),)


defop("unfold", "window", infer=_unfold_infer, ref=_unfold_ref, grad=_unfold_grad,
      grad_name="Im2ColBackward0")


def _fold_infer(cols, shape, kernel, stride, padding, dilation):
    out = _out_shape("fold", tuple(shape[2:]), kernel, stride, padding, dilation)
    expect = tuple(shape[:2]) + tuple(kernel) + out
    if tuple(cols.shape) != expect:
        raise OpError(f"fold: expected columns of shape {expect} for output {tuple(shape)}, "
                      f"got {tuple(cols.shape)}")
    return Spec(tuple(shape), cols.dtype)


def _fold_ref(cols, shape, kernel, stride, padding, dilation):
    """Scatter-add each kernel offset's plane back: prod(kernel) strided adds, no np.add.at."""
    d = len(kernel)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(shape[2:], padding))
    # lay the output's axes out in memory in the order of the matching axes of ``cols``
    # (N, C, *out), so that every offset's add runs along the same long contiguous
    # stretches in both (a convolution's input gradient arrives batch-innermost)
    axes = (0, 1) + tuple(range(2 + d, 2 + 2 * d))
    order = sorted(range(2 + d), key=lambda i: -cols.strides[axes[i]])
    full = tuple(shape[:2]) + padded
    outs = cols.shape[2 + d:]
    # windows that never overlap (LeNet's 2x2 pooling) are copied rather than added; when
    # they also tile the whole output, nothing is left to zero
    disjoint = all(st >= dl * (k - 1) + 1 for k, st, dl in zip(kernel, stride, dilation))
    tiled = disjoint and all(dl == 1 and st == k and n * st == p for k, st, dl, n, p in
                             zip(kernel, stride, dilation, outs, padded))
    alloc = np.empty if tiled else np.zeros
    out = alloc(tuple(full[i] for i in order), cols.dtype).transpose(np.argsort(order))
    for offset in itertools.product(*(range(k) for k in kernel)):
        window = tuple(slice(o * dl, o * dl + st * (n - 1) + 1, st)
                       for o, dl, st, n in zip(offset, dilation, stride, outs))
        if disjoint:
            out[(slice(None), slice(None)) + window] = cols[(slice(None), slice(None)) + offset]
        else:
            out[(slice(None), slice(None)) + window] += cols[(slice(None), slice(None)) + offset]
    if disjoint:   # 0 + v, as the adds give: -0.0 becomes +0.0 (and PyTorch's too)
        flat = out.transpose(order)                       # C-contiguous: one pass
        np.add(flat, flat.dtype.type(0), out=flat)
    crop = tuple(slice(lo, lo + n) for n, (lo, hi) in zip(shape[2:], padding))
    # handed back C-contiguous: a batch-innermost result would make every later op of
    # the backward (max-pool, ReLU, the previous convolution) transpose its own, larger
    # arrays; fold's output is prod(kernel) / stride**d times smaller than its columns
    return np.ascontiguousarray(out[(slice(None), slice(None)) + crop])


def _fold_grad(E, g, out, cols, shape, kernel, stride, padding, dilation):
    return (E.unfold(g, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                     pad_value=0.0),)


defop("fold", "window", infer=_fold_infer, ref=_fold_ref, grad=_fold_grad,
      grad_name="Col2ImBackward0")


