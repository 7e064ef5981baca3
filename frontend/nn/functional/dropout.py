"""Inverted dropout: zero elements (or whole channels) with probability ``p`` and scale the
survivors by ``1 / (1 - p)``, so that evaluation needs no rescaling.

As on PyTorch's CPU path, the output is ``input * noise`` with ``noise`` a scaled Bernoulli
mask: a plain ``MulBackward0`` node. The mask comes from ``bernoulli_mask``, the one place
dropout's randomness is drawn, so every call draws a fresh one from the frontend RNG.
"""
from __future__ import annotations

import warnings

from ...ops.arith import constant
from ...ops.creation import bernoulli_mask
from ...tensor import Tensor


def _check(fn, input, p):
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}(): argument 'input' must be Tensor, not {type(input).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _apply_noise(input, p, noise_shape, inplace):
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"dropout(): expected a floating-point input, got {input.dtype.name}")
    if p == 1.0:
        noise = constant(0, input.dtype)
    else:
        noise = bernoulli_mask(noise_shape, 1.0 - p, input.dtype) / (1.0 - p)
    return input.mul_(noise) if inplace else input * noise


def dropout(input, p=0.5, training=True, inplace=False):
    """Elementwise dropout; the identity (the input itself) when not training or ``p == 0``."""
    _check("dropout", input, p)
    if not training or p == 0 or input.numel() == 0:
        return input
    return _apply_noise(input, p, tuple(input.shape), inplace)


def _feature_dropout(input, p, training, inplace, batched):
    """Zero whole channels: one draw per (sample, channel), broadcast over the spatial dims."""
    if not training or p == 0 or input.numel() == 0:
        return input
    lead = 2 if batched else 1
    noise_shape = tuple(input.shape[:lead]) + (1,) * (input.ndim - lead)
    return _apply_noise(input, p, noise_shape, inplace)


def _deprecated_rank(fn, ndim, spatial):
    warnings.warn(f"{fn}: Received a {ndim}-D input to {fn}, which is deprecated and will result "
                  "in an error in a future release. To retain the behavior and silence this "
                  f"warning, please use dropout instead. Note that {fn} exists to provide "
                  f"channel-wise dropout on inputs with {spatial} spatial dimensions, a channel "
                  f"dimension, and an optional batch dimension (i.e. {spatial + 1}D or "
                  f"{spatial + 2}D inputs).", stacklevel=3)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Channel dropout for ``(N, C, L)`` or unbatched ``(C, L)`` inputs."""
    _check("dropout1d", input, p)
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D "
                           "input. Note that dropout1d exists to provide channel-wise dropout on "
                           "inputs with 1 spatial dimension, a channel dimension, and an optional "
                           "batch dimension (i.e. 2D or 3D inputs).")
    return _feature_dropout(input, p, training, inplace, batched=input.ndim == 3)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Channel dropout for ``(N, C, H, W)``; a 3-D input is read as ``(N, C, L)``, as
    PyTorch does (with the same warning)."""
    _check("dropout2d", input, p)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
                      "1D dropout behavior is desired - input is interpreted as shape (N, C, L), "
                      "where C is the channel dim. This behavior will change in a future release "
                      "to interpret the input as one without a batch dimension, i.e. shape "
                      "(C, H, W). To maintain the 1D channel-wise dropout behavior, please switch "
                      "to using dropout1d instead.", stacklevel=2)
    elif input.ndim != 4:
        _deprecated_rank("dropout2d", input.ndim, 2)
    return _feature_dropout(input, p, training, inplace, batched=input.ndim >= 2)


def dropout3d(input, p=0.5, training=True, inplace=False):
    """Channel dropout for ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)`` inputs."""
    _check("dropout3d", input, p)
    if input.ndim not in (4, 5):
        _deprecated_rank("dropout3d", input.ndim, 3)
    return _feature_dropout(input, p, training, inplace, batched=input.ndim == 5)
