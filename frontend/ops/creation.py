"""Tensor creation: ``tensor``, ``zeros``, ``randn``... with PyTorch's dtype inference."""
from __future__ import annotations

import numbers

import numpy as np

from compiler import dtypes as dt
from .. import random as _random
from .. import tracing_hook
from ..tensor import Tensor
from .shape import sizes_arg


def _resolve_dtype(dtype):
    if dtype is None or isinstance(dtype, dt.DType):
        return dtype
    if isinstance(dtype, str):
        return dt.from_name(dtype)
    if dtype in (float,):
        return dt.float64
    if dtype in (int,):
        return dt.int64
    if dtype in (bool,):
        return dt.bool_
    try:
        return dt.from_numpy(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a Kiln dtype such as frontend.float32, got {dtype!r}") from None


def _infer_dtype(data):
    """PyTorch's rule for Python data: Python floats are the default float, ints int64,
    bools bool; NumPy scalars, arrays and tensors bring their own dtype; all promote."""
    found = []

    def walk(x):
        if isinstance(x, Tensor):
            found.append(x.dtype)
        elif isinstance(x, (np.ndarray, np.generic)):
            found.append(dt.from_numpy(x.dtype))
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif isinstance(x, bool):
            found.append(dt.bool_)
        elif isinstance(x, numbers.Integral):
            found.append(dt.int64)
        elif isinstance(x, numbers.Real):
            found.append(dt.default_float)
        else:
            raise TypeError(f"Could not infer dtype of {type(x).__name__}")
    walk(data)
    result = None
    for d in found:
        result = d if result is None else dt.promote(result, d)
    return result or dt.default_float


def _unwrap(data):
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, (list, tuple)):
        return [_unwrap(v) for v in data]
    return data


def tensor(data, dtype=None, requires_grad=False, device=None):
    dtype = _resolve_dtype(dtype)
    if isinstance(data, np.ndarray):
        dtype = dtype or dt.from_numpy(data.dtype)
    elif isinstance(data, Tensor):
        dtype = dtype or data.dtype
    else:
        dtype = dtype or _infer_dtype(data)
    try:
        array = np.array(_unwrap(data), dtype=dtype.np)
    except ValueError as e:
        raise ValueError(f"tensor(): could not build a tensor from the data ({e})") from None
    t = tracing_hook.on_create(Tensor._make(array, dtype))
    if requires_grad:
        t.requires_grad_(True)
    return t


as_tensor = tensor


def from_numpy(array):
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    dtype = dt.from_numpy(array.dtype)
    if array.dtype != dtype.np:
        raise TypeError(f"can't convert np.ndarray of type {array.dtype}; the supported types "
                        "are: float64, float32, int64, int32, and bool")
    return tracing_hook.on_create(Tensor._make(array, dtype))  # shares memory, as torch does


def _filled(fill, sizes, dtype, requires_grad):
    shape = sizes_arg(sizes)
    if any(n < 0 for n in shape):
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(shape)}: "
                           f"{list(shape)}")
    dtype = _resolve_dtype(dtype) or dt.default_float
    t = tracing_hook.on_create(Tensor._make(np.full(shape, fill, dtype.np) if fill is not None
                                            else np.empty(shape, dtype.np), dtype))
    if requires_grad:
        t.requires_grad_(True)
    return t


def zeros(*size, dtype=None, requires_grad=False, device=None):
    return _filled(0, size, dtype, requires_grad)


def ones(*size, dtype=None, requires_grad=False, device=None):
    return _filled(1, size, dtype, requires_grad)


def empty(*size, dtype=None, requires_grad=False, device=None):
    return _filled(None, size, dtype, requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    if dtype is None:
        dtype = dt.scalar_dtype(fill_value.item() if isinstance(fill_value, Tensor) else fill_value)
    return _filled(fill_value, (size,) if isinstance(size, int) else (tuple(size),), dtype,
                   requires_grad)


def _like(fn, x, dtype, requires_grad, *args):
    return fn(*args, tuple(x.shape), dtype=dtype or x.dtype, requires_grad=requires_grad)


def zeros_like(x, dtype=None, requires_grad=False, device=None):
    return zeros(tuple(x.shape), dtype=dtype or x.dtype, requires_grad=requires_grad)


def ones_like(x, dtype=None, requires_grad=False, device=None):
    return ones(tuple(x.shape), dtype=dtype or x.dtype, requires_grad=requires_grad)


def empty_like(x, dtype=None, requires_grad=False, device=None):
    return empty(tuple(x.shape), dtype=dtype or x.dtype, requires_grad=requires_grad)


def full_like(x, fill_value, dtype=None, requires_grad=False, device=None):
    return full(tuple(x.shape), fill_value, dtype=dtype or x.dtype, requires_grad=requires_grad)


def _random_float(sample, size, dtype, requires_grad, generator):
    shape = sizes_arg(size)
    dtype = _resolve_dtype(dtype) or dt.default_float
    if not dtype.is_floating_point:
        raise RuntimeError(f"expected a floating-point dtype for random floats, got {dtype}")
    draw = lambda: sample(_random.rng(generator), shape, dtype.np)  # noqa: E731
    t = tracing_hook.on_random(Tensor._make(draw(), dtype), draw)
    if requires_grad:
        t.requires_grad_(True)
    return t


def randn(*size, dtype=None, requires_grad=False, generator=None, device=None):
    return _random_float(lambda r, s, d: r.standard_normal(s, dtype=d), size, dtype,
                         requires_grad, generator)


def rand(*size, dtype=None, requires_grad=False, generator=None, device=None):
    return _random_float(lambda r, s, d: r.random(s, dtype=d), size, dtype, requires_grad,
                         generator)


def randn_like(x, dtype=None, requires_grad=False):
    return randn(tuple(x.shape), dtype=dtype or x.dtype, requires_grad=requires_grad)


def rand_like(x, dtype=None, requires_grad=False):
    return rand(tuple(x.shape), dtype=dtype or x.dtype, requires_grad=requires_grad)


def randint(low, high=None, size=None, dtype=None, generator=None, device=None):
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} "
                           f">= to={high}")
    dtype = _resolve_dtype(dtype) or dt.int64
    draw = lambda: _random.rng(generator).integers(low, high, size=tuple(size)).astype(dtype.np)  # noqa: E731,E501
    return tracing_hook.on_random(Tensor._make(draw(), dtype), draw)


def randperm(n, dtype=None, generator=None, device=None):
    dtype = _resolve_dtype(dtype) or dt.int64
    draw = lambda: _random.rng(generator).permutation(n).astype(dtype.np)  # noqa: E731
    return tracing_hook.on_random(Tensor._make(draw(), dtype), draw)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"upper bound and larger bound inconsistent with step sign "
                           f"(start={start}, end={end}, step={step})")
    if dtype is None:
        is_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = dt.int64 if is_int else dt.default_float
    dtype = _resolve_dtype(dtype)
    n = int(np.ceil((end - start) / step))
    data = (start + np.arange(n, dtype=np.float64) * step) if not dtype.category == dt.INT \
        else np.arange(start, end, step)
    t = tracing_hook.on_create(Tensor._make(np.asarray(data).astype(dtype.np), dtype))
    if requires_grad:
        t.requires_grad_(True)
    return t


def linspace(start, end, steps, dtype=None, requires_grad=False, device=None):
    dtype = _resolve_dtype(dtype) or dt.default_float
    t = tracing_hook.on_create(Tensor._make(np.linspace(start, end, steps).astype(dtype.np), dtype))
    if requires_grad:
        t.requires_grad_(True)
    return t


def eye(n, m=None, dtype=None, requires_grad=False, device=None):
    dtype = _resolve_dtype(dtype) or dt.default_float
    t = tracing_hook.on_create(Tensor._make(np.eye(n, m, dtype=dtype.np), dtype))
    if requires_grad:
        t.requires_grad_(True)
    return t


def bernoulli_mask(shape, keep_prob, dtype, generator=None):
    """A 0/1 mask with P(1) = keep_prob (dropout's randomness, drawn here in one place)."""
    def draw():
        r = _random.rng(generator).random(tuple(shape), dtype=np.float64)
        return (r < keep_prob).astype(dtype.np)
    return tracing_hook.on_random(Tensor._make(draw(), dtype), draw)
