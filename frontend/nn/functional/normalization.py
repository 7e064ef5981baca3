"""Normalisation: ``batch_norm``, ``layer_norm`` and ``normalize``.

Batch and layer norm are composites recorded as PyTorch's single nodes
(``NativeBatchNormBackward0``, ``NativeLayerNormBackward0``) with PyTorch's inputs
``(input, weight, bias)``; running statistics travel as keyword arguments so they are
constants of the node, not edges of the graph. Training-mode batch norm updates the
running statistics in place, without recording, using the *unbiased* batch variance as
PyTorch does (while normalising with the biased one).
"""
from __future__ import annotations

import numbers

from ...autograd.grad_mode import no_grad
from ...composite import composite_call
from ...dispatch import apply
from ...ops.arith import constant
from ...ops.shape import wrap_dim
from ...tensor import Tensor


def _channel_view(t, ndim):
    """A per-channel vector shaped ``(1, C, 1, ...)`` to broadcast against an ``ndim`` input."""
    return apply("reshape", t, shape=(1, t.shape[0]) + (1,) * (ndim - 2))


def _scale_shift(y, weight, bias, shape_of):
    if weight is not None:
        y = apply("mul", y, shape_of(weight))
    if bias is not None:
        y = apply("add", y, shape_of(bias))
    return y


def _inv_std(var, eps):
    return apply("div", constant(1, var.dtype),
                 apply("sqrt", apply("add", var, constant(eps, var.dtype))))


def _batch_norm_train(x, weight, bias, eps):
    """Normalise with batch statistics; also return them (per channel) for the running update."""
    axes = (0,) + tuple(range(2, x.ndim))
    mean = apply("mean", x, axes=axes, keepdim=True)
    centered = apply("sub", x, mean)
    var = apply("mean", apply("mul", centered, centered), axes=axes, keepdim=True)
    y = apply("mul", centered, _inv_std(var, eps))
    y = _scale_shift(y, weight, bias, lambda t: _channel_view(t, x.ndim))
    channels = (x.shape[1],)
    return y, apply("reshape", mean, shape=channels), apply("reshape", var, shape=channels)


def _batch_norm_eval(x, weight, bias, eps, running_mean, running_var):
    mean, var = _channel_view(running_mean, x.ndim), _channel_view(running_var, x.ndim)
    y = apply("mul", apply("sub", x, mean), _inv_std(var, eps))
    return _scale_shift(y, weight, bias, lambda t: _channel_view(t, x.ndim))


def _check_channel_vector(name, t, channels, dtype):
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"batch_norm(): {name} must be a Tensor or None, not {type(t).__name__}")
    if t.numel() != channels or t.ndim != 1:
        raise RuntimeError(f"batch_norm(): {name} should contain {channels} elements (one per "
                           f"channel of the input), not shape {tuple(t.shape)}")
    if t.dtype != dtype:
        raise RuntimeError(f"batch_norm(): {name} is {t.dtype.name} but the input is {dtype.name}")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalise each channel (dim 1) over the batch and spatial dimensions."""
    if not isinstance(input, Tensor):
        raise TypeError(f"batch_norm(): argument 'input' must be Tensor, not "
                        f"{type(input).__name__}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"batch_norm(): expected a floating-point input, got {input.dtype.name}")
    if input.ndim < 2:
        raise ValueError(f"batch_norm(): expected an input of shape (N, C, ...), got shape "
                         f"{tuple(input.shape)}")
    channels = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_channel_vector(name, t, channels, input.dtype)
    if not training:
        if running_mean is None or running_var is None:
            raise RuntimeError("batch_norm(): running_mean and running_var are required when "
                               "training=False (they are the statistics used in evaluation)")
        return composite_call("NativeBatchNormBackward0", _batch_norm_eval, input, weight, bias,
                              eps, running_mean=running_mean, running_var=running_var)
    if input.numel() // channels <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{input.shape}")
    out, mean, var = composite_call("NativeBatchNormBackward0", _batch_norm_train, input, weight,
                                    bias, eps)
    if running_mean is not None or running_var is not None:
        n = input.numel() // channels
        with no_grad():
            if running_mean is not None:
                running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
            if running_var is not None:
                running_var.mul_(1 - momentum).add_(var.detach() * (momentum * n / (n - 1)))
    return out


def _layer_norm(x, weight, bias, normalized_shape, eps):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mean = apply("mean", x, axes=axes, keepdim=True)
    centered = apply("sub", x, mean)
    var = apply("mean", apply("mul", centered, centered), axes=axes, keepdim=True)
    y = apply("mul", centered, _inv_std(var, eps))
    return _scale_shift(y, weight, bias, lambda t: t)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing ``normalized_shape`` dimensions of each sample."""
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(int(n) for n in normalized_shape)
    k = len(normalized_shape)
    if k == 0 or input.ndim < k or tuple(input.shape[input.ndim - k:]) != normalized_shape:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with "
                           f"shape [*, {', '.join(map(str, normalized_shape))}], but got input of "
                           f"size{list(input.shape)}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"layer_norm(): expected a floating-point input, got {input.dtype.name}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != normalized_shape:
            raise RuntimeError(f"layer_norm(): {name} of shape {tuple(t.shape)} does not match "
                               f"normalized_shape {normalized_shape}")
    return composite_call("NativeLayerNormBackward0", _layer_norm, input, weight, bias,
                          normalized_shape, eps)


def _vector_norm(x, p, dim):
    """The ``p``-norm along ``dim`` (kept), with a zero (not NaN) gradient at a zero vector:
    the root's argument is replaced by 1 where the sum is 0, so its derivative stays finite."""
    zero = constant(0, x.dtype)
    if p == float("inf"):
        return apply("amax", apply("abs", x), axes=(dim,), keepdim=True)
    if p == 1:
        return apply("sum", apply("abs", x), axes=(dim,), keepdim=True)
    powered = apply("mul", x, x) if p == 2 else apply("pow", apply("abs", x), constant(p, x.dtype))
    total = apply("sum", powered, axes=(dim,), keepdim=True)
    positive = apply("gt", total, zero)
    safe = apply("where", positive, total, constant(1, x.dtype))
    root = apply("sqrt", safe) if p == 2 else apply("pow", safe, constant(1.0 / p, x.dtype))
    return apply("where", positive, root, zero)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """``input / max(||input||_p, eps)`` along ``dim``."""
    if out is not None:
        raise TypeError("normalize(): the 'out' argument is not supported")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"normalize(): expected a floating-point input, got {input.dtype.name}")
    if p <= 0:
        raise ValueError(f"normalize(): p must be positive, got {p}")
    d = wrap_dim(dim, input.ndim)
    norm = apply("clamp", _vector_norm(input, p, d), lo=eps, hi=None)
    return apply("div", input, norm)
