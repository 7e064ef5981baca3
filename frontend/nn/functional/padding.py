"""``pad``: PyTorch's ``F.pad`` with the pad tuple read last dimension first.

``constant`` mode crops negative pads with a slice and pads the rest with the ``pad``
primitive. ``reflect``, ``replicate`` and ``circular`` are a gather along each padded
dimension with a precomputed index vector, so their gradient (``index_backward``)
accumulates the contributions of every copy of an edge element, as PyTorch's does.
"""
from __future__ import annotations

import numbers

import numpy as np

from ...composite import composite_call
from ...dispatch import apply
from ...ops.creation import tensor
from ...tensor import Tensor

_MODES = ("constant", "reflect", "replicate", "circular")
_NODE_NAMES = {"reflect": "ReflectionPad{}DBackward0", "replicate": "ReplicationPad{}DBackward0",
               "circular": "CopySlices"}


def _pairs(pad, ndim):
    """``(lo, hi)`` per dimension, first dimension first (PyTorch's tuple is reversed)."""
    if not isinstance(pad, (tuple, list)) or not all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad(): argument 'pad' must be a tuple of ints, got {pad!r}")
    if len(pad) % 2:
        raise RuntimeError(f"Padding length must be divisible by 2, got {len(pad)} values {tuple(pad)}")
    if len(pad) // 2 > ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input "
                           f"dimension but got padding length {len(pad)} and input of dimension "
                           f"{ndim}")
    pairs = [(0, 0)] * ndim
    for i in range(len(pad) // 2):
        pairs[ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return tuple(pairs)


def _constant_pad(x, pairs, value):
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        spec = tuple(("slice", max(-lo, 0), n - max(-hi, 0), 1)
                     for n, (lo, hi) in zip(x.shape, pairs))
        x = apply("index", x, spec=spec)
    return apply("pad", x, pads=tuple((max(lo, 0), max(hi, 0)) for lo, hi in pairs), value=value)


def _source_positions(mode, n, lo, hi):
    """For each output position along a dimension, the input position it copies."""
    j = np.arange(-lo, n + hi)
    if mode == "reflect":
        j = np.abs(j)
        return np.where(j > n - 1, 2 * (n - 1) - j, j)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    return j % n


def _check_edge_pad(mode, x, d, lo, hi):
    n = x.shape[d]
    if mode == "reflect" and (lo >= n or hi >= n):
        raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding "
                           f"input dimension, but got: padding ({lo}, {hi}) at dimension {d} of "
                           f"input {list(x.shape)}")
    if mode == "circular" and (lo > n or hi > n):
        raise RuntimeError(f"Padding value causes wrapping around more than once: padding "
                           f"({lo}, {hi}) at dimension {d} of input {list(x.shape)}")
    if n == 0 or n + lo + hi <= 0:
        raise RuntimeError(f"{mode} padding: input size {n} at dimension {d} of input "
                           f"{list(x.shape)} is too small for padding ({lo}, {hi}); the output "
                           f"size would be {n + lo + hi}")


def _edge_pad(x, pairs, mode):
    for d, (lo, hi) in enumerate(pairs):
        if lo == hi == 0:
            continue
        idx = _source_positions(mode, x.shape[d], lo, hi)
        spec = (("slice", None, None, 1),) * d + (("tensor",),)
        x = apply("index", x, tensor(idx.astype(np.int64)), spec=spec)
    return x


def pad(input, pad, mode="constant", value=None):
    """Pad (or, with negative amounts, crop) the last ``len(pad) // 2`` dimensions."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pad(): argument 'input' must be Tensor, not {type(input).__name__}")
    if mode not in _MODES:
        raise NotImplementedError(f"Unrecognised padding mode {mode!r}; valid modes are "
                                  f"{', '.join(map(repr, _MODES))}")
    pairs = _pairs(pad, input.ndim)
    if mode == "constant":
        for d, ((lo, hi), n) in enumerate(zip(pairs, input.shape)):
            if n + lo + hi < 0:
                raise RuntimeError(f"The input size {n}, plus negative padding {lo} and {hi} "
                                   f"resulted in a negative output size, which is invalid. Check "
                                   f"dimension {d} of your input.")
        return composite_call("ConstantPadNdBackward0", _constant_pad, input, pairs,
                              0 if value is None else value)
    if value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    k = len(pad) // 2
    if k not in (1, 2, 3) or input.ndim not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {input.ndim}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
    for d, (lo, hi) in enumerate(pairs):
        if lo or hi:
            _check_edge_pad(mode, input, d, lo, hi)
    return composite_call(_NODE_NAMES[mode].format(k), _edge_pad, input, pairs, mode)
