"""Affine maps: ``linear`` and ``bilinear``, with PyTorch's autograd structure.

PyTorch computes a 2-D ``linear`` with bias as ``addmm(bias, x, weight.t())``: one
``AddmmBackward0`` node whose inputs are the bias, the input and a ``TBackward0`` of the
weight. We record exactly that, so graphs print and traverse as PyTorch's do; other
ranks are flattened to 2-D and viewed back, as PyTorch does.
"""
from __future__ import annotations

from ...composite import composite_call
from ...dispatch import apply
from ...ops import shape as S
from ...tensor import Tensor


def _check_tensor(fn, name, x, optional=False):
    if x is None and optional:
        return
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' must be Tensor, not {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"{fn}(): expected a floating-point '{name}', got {x.dtype.name}")


def _check_dtypes(fn, *named):
    dtypes = {x.dtype for _, x in named if x is not None}
    if len(dtypes) > 1:
        listed = ", ".join(f"{n} is {x.dtype.name}" for n, x in named if x is not None)
        raise RuntimeError(f"{fn}(): all tensors must share a dtype, but {listed}")


def _addmm(bias, x, weight_t):
    return apply("add", apply("matmul", x, weight_t), bias)


def linear(input, weight, bias=None):
    """``y = x @ weight.T + bias`` over the last dimension of ``x``."""
    for name, t, opt in (("input", input, False), ("weight", weight, False), ("bias", bias, True)):
        _check_tensor("linear", name, t, opt)
    _check_dtypes("linear", ("input", input), ("weight", weight), ("bias", bias))
    if weight.ndim != 2:
        raise RuntimeError(f"linear(): weight must be 2-D (out_features, in_features), got shape "
                           f"{tuple(weight.shape)}")
    out_features, in_features = weight.shape
    if input.ndim == 0 or input.shape[-1] != in_features:
        got = input.shape[-1] if input.ndim else "no"
        raise RuntimeError(
            f"linear(): input of shape {tuple(input.shape)} has {got} features in its last "
            f"dimension, but the weight of shape {tuple(weight.shape)} expects {in_features} "
            f"(input shape (*, {in_features}) expected)")
    if bias is not None and tuple(bias.shape) not in ((out_features,), ()):
        raise RuntimeError(f"linear(): bias of shape {tuple(bias.shape)} does not match "
                           f"out_features={out_features} of the weight {tuple(weight.shape)}")
    weight_t = S.t(weight)
    if input.ndim == 2:
        if bias is None:
            return apply("matmul", input, weight_t, grad_name="MmBackward0")
        return composite_call("AddmmBackward0", _addmm, bias, input, weight_t)
    out_shape = tuple(input.shape[:-1]) + (out_features,)
    flat = S.reshape(input, (-1, in_features))
    out = linear(flat, weight, bias)
    if bias is not None:
        name = "ViewBackward0"
    else:
        name = "SqueezeBackward4" if input.ndim == 1 else "UnsafeViewBackward0"
    return S.reshape(out, out_shape, grad_name=name)


def _trilinear(x1, x2, weight):
    """``y[n, o] = sum_ij x1[n, i] W[o, i, j] x2[n, j]`` as one matmul and a reduction."""
    out_f, in1, in2 = weight.shape
    w = apply("reshape", apply("permute", weight, perm=(1, 0, 2)), shape=(in1, out_f * in2))
    t = apply("reshape", apply("matmul", x1, w), shape=(x1.shape[0], out_f, in2))
    x2 = apply("reshape", x2, shape=(x2.shape[0], 1, in2))
    return apply("sum", apply("mul", t, x2), axes=(2,), keepdim=False)


def bilinear(input1, input2, weight, bias=None):
    """``y = x1^T A x2 + b`` over the last dimensions of ``x1`` and ``x2``."""
    for name, t, opt in (("input1", input1, False), ("input2", input2, False),
                         ("weight", weight, False), ("bias", bias, True)):
        _check_tensor("bilinear", name, t, opt)
    _check_dtypes("bilinear", ("input1", input1), ("input2", input2), ("weight", weight),
                  ("bias", bias))
    if weight.ndim != 3:
        raise RuntimeError(f"bilinear(): weight must be 3-D (out, in1, in2), got shape "
                           f"{tuple(weight.shape)}")
    out_f, in1, in2 = weight.shape
    if input1.ndim == 0 or input2.ndim == 0 or input1.shape[:-1] != input2.shape[:-1]:
        raise RuntimeError(f"bilinear(): input1 {tuple(input1.shape)} and input2 "
                           f"{tuple(input2.shape)} must have the same batch dimensions")
    if input1.shape[-1] != in1 or input2.shape[-1] != in2:
        raise RuntimeError(f"bilinear(): weight of shape {tuple(weight.shape)} expects inputs of "
                           f"shapes (*, {in1}) and (*, {in2}), got {tuple(input1.shape)} and "
                           f"{tuple(input2.shape)}")
    if bias is not None and tuple(bias.shape) != (out_f,):
        raise RuntimeError(f"bilinear(): bias of shape {tuple(bias.shape)} does not match "
                           f"out_features={out_f}")
    x1 = S.reshape(input1, (-1, in1))
    x2 = S.reshape(input2, (-1, in2))
    out = composite_call("TrilinearBackward0", _trilinear, x1, x2, weight)
    out = S.reshape(out, tuple(input1.shape[:-1]) + (out_f,))
    return out if bias is None else out + bias
