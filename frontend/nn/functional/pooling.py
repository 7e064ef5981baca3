"""Pooling as composites of ``unfold`` + reductions (max: argmax + gather).

Max pooling takes the argmax over each unfolded window (padded with -inf) and gathers
that element, so the gradient goes to the *first* maximum of the window exactly as in
PyTorch (which matters after a ReLU, where whole windows tie at 0). ``ceil_mode`` is an
extra high padding. 1-d pooling runs as 2-d pooling over a unit height, which is how
PyTorch builds it too (hence its ``SqueezeBackward1`` grad_fn).
"""
from __future__ import annotations

import math

import numpy as np

from compiler import dtypes as dt
from ...composite import composite_call
from ...dispatch import apply
from ...ops.reduction import mean
from ...tensor import Tensor
from .conv import check_input, ntuple


def _pool_geometry(fn, spatial, kernel, stride, padding, dilation, ceil_mode):
    """PyTorch's output-size rule; returns (out_sizes, (low, high) pads per dim).

    In ceil mode the last window may overhang the input but must start inside the
    input or the left padding; the overhang becomes extra high padding."""
    if any(k <= 0 for k in kernel):
        raise RuntimeError(f"{fn}: kernel_size must be greater than zero, got {kernel}")
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"{fn}: stride must be greater than zero, got {stride}")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"{fn}: dilation must be greater than zero, got {dilation}")
    for p, k, d in zip(padding, kernel, dilation):
        if p < 0 or p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(f"{fn}: pad should be at most half of effective kernel size, "
                               f"but got pad={p}, kernel_size={k} and dilation={d}")
    outs, pads = [], []
    for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation):
        span = n + 2 * p - d * (k - 1) - 1
        out = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (out - 1) * s >= n + p:
            out -= 1
        outs.append(out)
        pads.append((p, max(p, (out - 1) * s + d * (k - 1) + 1 - n - p)))
    if any(o <= 0 for o in outs):
        raise RuntimeError(f"{fn}: given input size ({'x'.join(map(str, spatial))}), calculated "
                           f"output size ({'x'.join(map(str, outs))}) is too small (kernel "
                           f"{kernel}, stride {stride}, padding {padding}, dilation {dilation})")
    return tuple(outs), tuple(pads)


def _pool_args(fn, d, kernel_size, stride, padding, dilation):
    kernel = ntuple(kernel_size, d, "kernel_size", fn)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else ntuple(stride, d, "stride", fn)
    return kernel, stride, ntuple(padding, d, "padding", fn), ntuple(dilation, d, "dilation", fn)


def _as_2d(x, kernel, stride, pads, dilation, out):
    """(N, C, L) with 1-d window geometry -> (N, C, 1, L) with a unit-height 2-d one."""
    x = apply("reshape", x, shape=tuple(x.shape[:-1]) + (1, x.shape[-1]),
              grad_name="UnsqueezeBackward0")
    return x, (1,) + kernel, (1,) + stride, ((0, 0),) + pads, (1,) + dilation, (1,) + out


def _squeeze_h(y):
    return apply("reshape", y, shape=tuple(y.shape[:-2]) + (y.shape[-1],),
                 grad_name="SqueezeBackward1")


# -- max pooling -----------------------------------------------------------------------
def _flat_positions(spatial, out, kernel, stride, pads, dilation):
    """(K, L) table: for window offset j and output position l, the flat index of that
    input element within its plane, as PyTorch's ``return_indices`` reports it."""
    d = len(kernel)
    table = np.zeros(kernel + out, np.int64)
    for i, (k, o, s, (lo, _), dl) in enumerate(zip(kernel, out, stride, pads, dilation)):
        coord = np.arange(k)[:, None] * dl + np.arange(o)[None, :] * s - lo
        shape = [1] * (2 * d)
        shape[i], shape[d + i] = k, o
        table = table + coord.reshape(shape) * math.prod(spatial[i + 1:])
    return table.reshape(math.prod(kernel), math.prod(out))


def _max_pool_body(x, kernel, stride, pads, dilation, out, with_indices):
    lead = tuple(x.shape[:-len(kernel)])
    x4 = apply("reshape", x, shape=(math.prod(lead[:-1]), lead[-1]) + tuple(x.shape[len(lead):]))
    n, c = x4.shape[:2]
    win = apply("unfold", x4, kernel=kernel, stride=stride, padding=pads, dilation=dilation,
                pad_value=float("-inf"))
    win = apply("reshape", win, shape=(n, c, math.prod(kernel), math.prod(out)))
    arg = apply("argmax", win, axis=2, keepdim=True)                 # first maximum
    values = apply("reshape", apply("gather", win, arg, axis=2), shape=lead + out)
    if not with_indices:
        return values
    table = _flat_positions(tuple(x.shape[len(lead):]), out, kernel, stride, pads, dilation)
    table = apply("expand", Tensor._make(table[None, None], dt.int64), shape=tuple(win.shape))
    indices = apply("reshape", apply("gather", table, arg, axis=2), shape=lead + out)
    return values, indices


def _max_pool(fn, d, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    check_input(fn, input, d)
    kernel, stride, padding, dilation = _pool_args(fn, d, kernel_size, stride, padding, dilation)
    out, pads = _pool_geometry(fn, tuple(input.shape[-d:]), kernel, stride, padding, dilation,
                               ceil_mode)
    x = input
    if d == 1:
        x, kernel, stride, pads, dilation, out = _as_2d(x, kernel, stride, pads, dilation, out)
    result = composite_call("MaxPool2DWithIndicesBackward0", _max_pool_body, x, kernel, stride,
                            pads, dilation, out, bool(return_indices))
    if d == 1:
        result = tuple(map(_squeeze_h, result)) if return_indices else _squeeze_h(result)
    return result


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


# -- average pooling -------------------------------------------------------------------
def _avg_divisor(spatial, out, kernel, stride, padding, count_include_pad):
    """PyTorch's divisor per output position: the window clipped to the padded input
    (count_include_pad) or to the input itself; an outer product over dims."""
    div = np.ones((), np.float64)
    for n, o, k, s, p in zip(spatial, out, kernel, stride, padding):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        size = end - start if count_include_pad else \
            np.minimum(end, n) - np.maximum(start, 0)
        div = np.multiply.outer(div, size)
    return div


def _avg_pool_body(x, kernel, stride, pads, divisor):
    lead = tuple(x.shape[:-len(kernel)])
    x4 = apply("reshape", x, shape=(math.prod(lead[:-1]), lead[-1]) + tuple(x.shape[len(lead):]))
    win = apply("unfold", x4, kernel=kernel, stride=stride, padding=pads,
                dilation=(1,) * len(kernel), pad_value=0.0)
    total = apply("sum", win, axes=tuple(range(2, 2 + len(kernel))), keepdim=False)
    out = apply("div", total, Tensor._make(divisor.astype(x.dtype.np), x.dtype))
    return apply("reshape", out, shape=lead + tuple(divisor.shape))


def _avg_pool(fn, d, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    check_input(fn, input, d)
    kernel, stride, padding, _ = _pool_args(fn, d, kernel_size, stride, padding, 1)
    for p, k in zip(padding, kernel):
        if p < 0 or p > k // 2:
            raise RuntimeError(f"{fn}: pad should be at most half of kernel size, but got "
                               f"pad={p} and kernel_size={k}")
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError(f"{fn}: divisor must be not zero")
    spatial = tuple(input.shape[-d:])
    out, pads = _pool_geometry(fn, spatial, kernel, stride, padding, (1,) * d, ceil_mode)
    if divisor_override is not None:
        divisor = np.full(out, float(divisor_override))
    else:
        divisor = _avg_divisor(spatial, out, kernel, stride, padding, count_include_pad)
    x = input
    if d == 1:
        x, kernel, stride, pads, _, out = _as_2d(x, kernel, stride, pads, (1,), out)
        divisor = divisor[None]
    y = composite_call("AvgPool2DBackward0", _avg_pool_body, x, kernel, stride, pads, divisor)
    return _squeeze_h(y) if d == 1 else y


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


# -- adaptive average pooling ----------------------------------------------------------
def _averaging_matrix(n, o, dtype):
    """Row i averages input [floor(i*n/o), ceil((i+1)*n/o)): PyTorch's adaptive bins."""
    m = np.zeros((o, n), np.float64)
    for i in range(o):
        start, end = (i * n) // o, -(-((i + 1) * n) // o)
        m[i, start:end] = 1.0 / (end - start)
    return Tensor._make(m.astype(dtype.np), dtype)


def _adaptive_avg_body(x, out):
    (h, w), (oh, ow) = x.shape[-2:], out
    rows = _averaging_matrix(h, oh, x.dtype)
    cols_t = apply("permute", _averaging_matrix(w, ow, x.dtype), perm=(1, 0))
    return apply("matmul", rows, apply("matmul", x, cols_t))


def adaptive_avg_pool2d(input, output_size):
    check_input("adaptive_avg_pool2d", input, 2)
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) \
        else tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got "
                         f"{output_size!r}")
    out = tuple(int(n) if s is None else s for s, n in zip(size, input.shape[-2:]))
    if any(not isinstance(o, int) or o <= 0 for o in out):
        raise RuntimeError(f"adaptive_avg_pool2d: output_size must be positive, got {size}")
    if out == (1, 1):
        return mean(input, dim=(-2, -1), keepdim=True)   # PyTorch does this too (MeanBackward1)
    return composite_call("AdaptiveAvgPool2DBackward0", _adaptive_avg_body, input, out)
