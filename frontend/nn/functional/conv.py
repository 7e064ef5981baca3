"""Convolution and transposed convolution as composites of ``unfold``/``fold`` + matmul.

A convolution is im2col (``unfold``) followed by one batched matmul per group; its
transpose is the adjoint: a matmul followed by col2im (``fold``). Because the gradient
of unfold is fold and vice versa, both are differentiable to any order, and each call
is recorded as one ``ConvolutionBackward0`` node, as in PyTorch.

Groups are handled by viewing channels as ``(G, C/G)`` so the matmul batches over them.
"""
from __future__ import annotations

import math
import numbers

from ... import tracing_hook
from ...composite import composite_call
from ...dispatch import apply
from ...tensor import Tensor


# -- argument normalisation (shared with pooling and the conv/pool modules) -------------
def ntuple(value, d, name, fn):
    """``3`` -> ``(3, 3)`` for d=2; a sequence must give exactly ``d`` ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),) * d
    if isinstance(value, (tuple, list)) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        if len(value) == 1 and d > 1:
            return (int(value[0]),) * d
        if len(value) == d:
            return tuple(int(v) for v in value)
    raise ValueError(f"{fn}: {name} must be an int or a tuple of {d} ints, got {value!r}")


def check_input(fn, x, d):
    """Reject wrong ranks and dtypes clearly; return whether ``x`` is unbatched."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument 'input' must be Tensor, not {type(x).__name__}")
    if x.ndim not in (d + 1, d + 2):
        raise RuntimeError(f"{fn}: expected {d + 1}-D (unbatched) or {d + 2}-D (batched) input, "
                           f"but got input of size: {list(x.shape)}")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"{fn}: expected a floating-point input, got {x.dtype}")
    if any(n == 0 for n in x.shape[-d - 1:]):
        raise RuntimeError(f"{fn}: expected non-empty channel and spatial dimensions, got input "
                           f"of size {list(x.shape)}")
    return x.ndim == d + 1


def _check_params(fn, x, weight, bias):
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None and name == "bias":
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}(): argument '{name}' must be Tensor, not {type(t).__name__}")
        if t.dtype != x.dtype:
            raise RuntimeError(f"{fn}: input type ({x.dtype}) and {name} type ({t.dtype}) should "
                               f"be the same")


def _unsqueeze0(x):
    return apply("reshape", x, shape=(1,) + tuple(x.shape), grad_name="UnsqueezeBackward0")


def _squeeze0(y):
    return apply("reshape", y, shape=tuple(y.shape[1:]), grad_name="SqueezeBackward1")


# -- convolution -----------------------------------------------------------------------
def _conv_body(x, w, b, stride, pads, dilation, groups):
    """im2col, then one matmul per group over the whole batch: ``(O/G, K) @ (K, N*L)``.

    Folding the batch into the matmul's columns gives BLAS one wide product instead of
    N small ones, and makes the weight gradient one product with a long inner dimension.
    In eager mode, when the input needs a gradient, the columns are laid out
    batch-innermost (gathered from a batch-innermost copy of the input), so NumPy's
    col2im (``fold``) of the input gradient adds long contiguous runs; otherwise the batch goes outside the spatial positions, which makes
    the im2col copy cheaper. A traced graph always keeps the batch outside: a compiled
    fold walks its output in memory order, and batch-innermost columns would make every
    one of its reads a strided gather (LeNet's compiled step: 3.4 ms against 2.7 ms)."""
    n, c = x.shape[:2]
    out_ch, kernel = w.shape[0], tuple(w.shape[2:])
    d = len(kernel)
    batch_last = x.requires_grad and not tracing_hook.active()
    if batch_last:
        # copy the (small) input batch-innermost first, so that the im2col copy below
        # reads runs of (out width x batch) contiguous elements instead of gathering
        # single elements a whole image apart (LeNet's conv2: 0.45 -> 0.2 ms)
        x = apply("permute", apply("copy", apply("permute", x, perm=tuple(range(1, d + 2)) + (0,))),
                  perm=(d + 1,) + tuple(range(d + 1)))
    cols = apply("unfold", x, kernel=kernel, stride=stride, padding=pads, dilation=dilation,
                 pad_value=0.0)                                      # (N, C, *k, *out)
    out_sp = tuple(cols.shape[2 + d:])
    k = (c // groups) * math.prod(kernel)
    sp_axes, k_axes = tuple(range(2 + d, 2 + 2 * d)), tuple(range(2, 2 + d))
    perm = (1,) + k_axes + (sp_axes + (0,) if batch_last else (0,) + sp_axes)
    cols = apply("permute", cols, perm=perm)                         # (C, *k, [N], *out, [N])
    cols = apply("reshape", cols, shape=(groups, k, n * math.prod(out_sp)))
    wm = apply("reshape", w, shape=(groups, out_ch // groups, k))
    y = apply("matmul", wm, cols)                                    # (G, O/G, N*L)
    if batch_last:
        y = apply("reshape", y, shape=(out_ch,) + out_sp + (n,))
        y = apply("permute", y, perm=(d + 1, 0) + tuple(range(1, d + 1)))
    else:
        y = apply("reshape", y, shape=(out_ch, n) + out_sp)
        y = apply("permute", y, perm=(1, 0) + tuple(range(2, d + 2)))
    if b is not None:
        y = apply("add", apply("copy", y), apply("reshape", b, shape=(out_ch,) + (1,) * d))
    else:
        y = apply("copy", y)                                         # contiguous (N, O, *out)
    return y


def _conv_padding(fn, padding, kernel, stride, dilation, d):
    """One ``(low, high)`` pair per dim; ``'same'`` puts the odd extra pad high, as PyTorch."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * d
        if padding != "same":
            raise ValueError(f"Invalid padding string '{padding}', should be one of "
                             "{'valid', 'same'}")
        if any(s != 1 for s in stride):
            raise ValueError("padding='same' is not supported for strided convolutions")
        total = [dl * (k - 1) for k, dl in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)
    pad = ntuple(padding, d, "padding", fn)
    if any(p < 0 for p in pad):
        raise RuntimeError(f"{fn}: negative padding is not supported, got {pad}")
    return tuple((p, p) for p in pad)


def _conv_args(fn, d, x, weight, bias, stride, padding, dilation, groups):
    _check_params(fn, x, weight, bias)
    if weight.ndim != d + 2:
        raise RuntimeError(f"{fn}: expected a {d + 2}-D weight (out_channels, in_channels/groups, "
                           f"*kernel), got weight of size {list(weight.shape)}")
    if not isinstance(groups, numbers.Integral) or groups <= 0:
        raise RuntimeError(f"{fn}: non-positive groups is not supported, got groups={groups}")
    stride = ntuple(stride, d, "stride", fn)
    dilation = ntuple(dilation, d, "dilation", fn)
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"{fn}: non-positive stride is not supported, got {stride}")
    if any(dl <= 0 for dl in dilation):
        raise RuntimeError(f"{fn}: dilation should be greater than zero, got {dilation}")
    out_ch, in_per_group = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    if out_ch % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size {list(weight.shape)} instead")
    if x.shape[1] != in_per_group * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, expected "
                           f"input{list(x.shape)} to have {in_per_group * groups} channels, but "
                           f"got {x.shape[1]} channels instead")
    if bias is not None and tuple(bias.shape) != (out_ch,):
        raise RuntimeError(f"{fn}: expected bias of size [{out_ch}] (one per output channel), "
                           f"got {list(bias.shape)}")
    pads = _conv_padding(fn, padding, kernel, stride, dilation, d)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads))
    span = tuple(dl * (k - 1) + 1 for k, dl in zip(kernel, dilation))
    if any(p < s for p, s in zip(padded, span)):
        raise RuntimeError(f"{fn}: calculated padded input size per channel: "
                           f"({' x '.join(map(str, padded))}). Kernel size: "
                           f"({' x '.join(map(str, span))}). Kernel size can't be greater than "
                           f"actual input size")
    return stride, pads, dilation, int(groups)


def _conv(fn, d, input, weight, bias, stride, padding, dilation, groups):
    unbatched = check_input(fn, input, d)
    x = _unsqueeze0(input) if unbatched else input
    args = _conv_args(fn, d, x, weight, bias, stride, padding, dilation, groups)
    y = composite_call("ConvolutionBackward0", _conv_body, x, weight, bias, *args)
    return _squeeze0(y) if unbatched else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


# -- transposed convolution ------------------------------------------------------------
def _conv_transpose_body(x, w, b, stride, pads, dilation, groups, folded, tail):
    """cols = W^T x per group, then fold (col2im) them into the output.

    ``folded`` is the spatial size fold produces; ``tail`` zero columns are appended
    where ``output_padding`` exceeds ``padding`` (positions no window reaches)."""
    n, c_in = x.shape[:2]
    in_sp, kernel = tuple(x.shape[2:]), tuple(w.shape[2:])
    out_ch = w.shape[1] * groups
    k = (out_ch // groups) * math.prod(kernel)
    xm = apply("reshape", x, shape=(n, groups, c_in // groups, math.prod(in_sp)))
    wm = apply("reshape", w, shape=(groups, c_in // groups, k))
    cols = apply("matmul", apply("permute", wm, perm=(0, 2, 1)), xm)   # (N, G, O/G*K, L)
    cols = apply("reshape", cols, shape=(n, out_ch) + kernel + in_sp)
    y = apply("fold", cols, shape=(n, out_ch) + folded, kernel=kernel, stride=stride,
              padding=pads, dilation=dilation)
    if any(tail):
        y = apply("pad", y, pads=((0, 0), (0, 0)) + tuple((0, t) for t in tail), value=0.0)
    if b is not None:
        y = apply("add", y, apply("reshape", b, shape=(out_ch,) + (1,) * len(kernel)))
    return y


def _conv_transpose_args(fn, d, x, weight, bias, stride, padding, output_padding, groups,
                         dilation):
    _check_params(fn, x, weight, bias)
    if weight.ndim != d + 2:
        raise RuntimeError(f"{fn}: expected a {d + 2}-D weight (in_channels, "
                           f"out_channels/groups, *kernel), got weight of size "
                           f"{list(weight.shape)}")
    if not isinstance(groups, numbers.Integral) or groups <= 0:
        raise RuntimeError(f"{fn}: non-positive groups is not supported, got groups={groups}")
    if isinstance(padding, str):
        raise ValueError(f"{fn}: padding must be an int or a tuple of ints (PyTorch does not "
                         f"support padding='{padding}' for transposed convolution)")
    stride = ntuple(stride, d, "stride", fn)
    pad = ntuple(padding, d, "padding", fn)
    out_pad = ntuple(output_padding, d, "output_padding", fn)
    dilation = ntuple(dilation, d, "dilation", fn)
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"{fn}: non-positive stride is not supported, got {stride}")
    if any(dl <= 0 for dl in dilation):
        raise RuntimeError(f"{fn}: dilation should be greater than zero, got {dilation}")
    if any(p < 0 for p in pad) or any(p < 0 for p in out_pad):
        raise RuntimeError(f"{fn}: negative padding is not supported, got padding={pad}, "
                           f"output_padding={out_pad}")
    if any(op >= s and op >= dl for op, s, dl in zip(out_pad, stride, dilation)):
        raise RuntimeError(f"{fn}: output padding must be smaller than either stride or "
                           f"dilation, but got output_padding={out_pad}, stride={stride}, "
                           f"dilation={dilation}")
    in_ch = weight.shape[0]
    if in_ch % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size {list(weight.shape)} instead")
    if x.shape[1] != in_ch:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected "
                           f"input{list(x.shape)} to have {in_ch} channels, but got "
                           f"{x.shape[1]} channels instead")
    out_ch = weight.shape[1] * groups
    if bias is not None and tuple(bias.shape) != (out_ch,):
        raise RuntimeError(f"{fn}: expected bias of size [{out_ch}] (one per output channel), "
                           f"got {list(bias.shape)}")
    kernel = tuple(weight.shape[2:])
    in_sp = tuple(x.shape[2:])
    out_sp = tuple((n - 1) * s - 2 * p + dl * (k - 1) + op + 1 for n, s, p, dl, k, op in
                   zip(in_sp, stride, pad, dilation, kernel, out_pad))
    if any(o <= 0 for o in out_sp):
        raise RuntimeError(f"{fn}: given input size per channel: ({' x '.join(map(str, in_sp))})."
                           f" Calculated output size per channel: "
                           f"({' x '.join(map(str, out_sp))}). Output size is too small")
    # fold crops `padding` low and `padding - output_padding` high; when that is negative
    # the extra high positions get no window, so they are appended as zeros instead
    pads = tuple((p, max(p - op, 0)) for p, op in zip(pad, out_pad))
    tail = tuple(max(op - p, 0) for p, op in zip(pad, out_pad))
    folded = tuple(o - t for o, t in zip(out_sp, tail))
    return stride, pads, dilation, int(groups), folded, tail


def _conv_transpose(fn, d, input, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    unbatched = check_input(fn, input, d)
    x = _unsqueeze0(input) if unbatched else input
    args = _conv_transpose_args(fn, d, x, weight, bias, stride, padding, output_padding, groups,
                                dilation)
    y = composite_call("ConvolutionBackward0", _conv_transpose_body, x, weight, bias, *args)
    return _squeeze0(y) if unbatched else y


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)
