"""``t[key]`` and ``t[key] = value``: translate Python index keys into an index spec."""
from __future__ import annotations

import numbers

import numpy as np

from compiler import dtypes as dt
from .. import tracing_hook
from ..dispatch import apply
from ..tensor import Tensor


def _as_index_tensor(obj):
    if isinstance(obj, Tensor):
        if obj.dtype.is_floating_point:
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        return obj
    array = np.asarray(obj)
    if array.dtype == np.bool_:
        return tracing_hook.on_create(Tensor._make(array, dt.bool_))
    if array.dtype.kind not in "iu" and array.size:
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    return tracing_hook.on_create(Tensor._make(array.astype(np.int64), dt.int64))


def _index_int(v):
    if isinstance(v, Tensor):
        return int(v.item())
    return int(v)


def parse_key(x, key):
    """Return ``(spec, index_tensors)`` for ``x[key]`` (see compiler/ops/indexing.py)."""
    if not isinstance(key, tuple):
        key = (key,)
    items = []
    for k in key:
        if k is None or k is Ellipsis or isinstance(k, slice):
            items.append(k)
        elif isinstance(k, (bool, np.bool_)):
            raise IndexError("indexing with a Python bool is not supported; use a bool tensor")
        elif isinstance(k, numbers.Integral):
            items.append(int(k))
        elif isinstance(k, Tensor) and k.ndim == 0 and k.dtype.category == dt.INT:
            items.append(_as_index_tensor(k))
        elif isinstance(k, (Tensor, list, np.ndarray, tuple)):
            items.append(_as_index_tensor(k))
        else:
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long or "
                             f"byte Variables are valid indices (got {type(k).__name__})")
    consumed = sum(k.ndim if isinstance(k, Tensor) and k.dtype == dt.bool_ else
                   (0 if k is None or k is Ellipsis else 1) for k in items)
    if consumed > x.ndim:
        raise IndexError(f"too many indices for tensor of dimension {x.ndim}")
    if sum(k is Ellipsis for k in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    spec, tensors, dim = [], [], 0
    for k in items:
        if k is Ellipsis:
            for _ in range(x.ndim - consumed):
                spec.append(("slice", None, None, 1))
                dim += 1
        elif k is None:
            spec.append(("none",))
        elif isinstance(k, slice):
            step = 1 if k.step is None else _index_int(k.step)
            if step <= 0:
                raise ValueError("step must be greater than zero")
            start = None if k.start is None else _index_int(k.start)
            stop = None if k.stop is None else _index_int(k.stop)
            spec.append(("slice", start, stop, step))
            dim += 1
        elif isinstance(k, int):
            n = x.shape[dim]
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for dimension {dim} with size {n}")
            spec.append(("int", k))
            dim += 1
        elif k.dtype == dt.bool_:
            tracing_hook.on_concrete_access(k, "indexing with a boolean mask")
            mask_shape = tuple(x.shape[dim:dim + k.ndim])
            if tuple(k.shape) != mask_shape:
                raise IndexError(f"The shape of the mask {list(k.shape)} at index {dim} does not "
                                 f"match the shape of the indexed tensor {list(mask_shape)}")
            for coords in np.nonzero(k._data) if k.ndim else [np.nonzero(k._data.reshape(1))[0]]:
                spec.append(("tensor",))
                tensors.append(tracing_hook.on_create(
                    Tensor._make(coords.astype(np.int64), dt.int64)))
            if k.ndim == 0:
                spec[-1:] = [("none",), ("tensor",)]
            dim += k.ndim
        else:
            spec.append(("tensor",))
            tensors.append(k)
            dim += 1
    return tuple(spec), tensors


def _grad_name(x, key, spec, tensors):
    """PyTorch's grad_fn name for ``x[key]``: IndexBackward0 for advanced indexing, else the
    view op it applies last (it skips full ``:`` slices; a 0-d integer tensor selects)."""
    if any(t.ndim for t in tensors):
        return "IndexBackward0"
    name, dim = None, 0
    for item in spec:
        if item[0] == "none":
            name = "UnsqueezeBackward0"
            continue
        if item[0] in ("int", "tensor"):
            name = "SelectBackward0"
        else:
            _, start, stop, step = item
            if not (start in (None, 0) and (stop is None or stop >= x.shape[dim]) and step == 1):
                name = "SliceBackward0"
        dim += 1
    if name is None:
        return "SliceBackward0" if isinstance(key, slice) else "AliasBackward0"
    return name


def getitem(x, key):
    spec, tensors = parse_key(x, key)
    name = _grad_name(x, key, spec, tensors)
    return apply("index", x, *tensors, spec=spec, grad_name=name)


def _is_leading_mask(x, key):
    return (isinstance(key, Tensor) and key.dtype == dt.bool_ and 0 < key.ndim <= x.ndim
            and tuple(key.shape) == tuple(x.shape[:key.ndim]))


def setitem(x, key, value):
    from .inplace import inplace
    if isinstance(value, Tensor):
        v = value if value.dtype == x.dtype else apply("cast", value, dtype=x.dtype)
    else:
        v = tracing_hook.on_create(Tensor._make(np.asarray(value, x.dtype.np), x.dtype))
    if _is_leading_mask(x, key) and v.ndim == 0:
        # ``x[mask] = c`` is ``where(mask, c, x)``: no data-dependent shapes, so it traces
        mask = apply("reshape", key, shape=tuple(key.shape) + (1,) * (x.ndim - key.ndim))
        inplace(x, lambda base: apply("where", mask, v, base, grad_name="IndexPutBackward0",
                                      scalar_inputs=() if isinstance(value, Tensor) else (1,)),
                operands=(v,))
        return
    spec, tensors = parse_key(x, key)
    name = "IndexPutBackward0" if tensors else "CopySlices"  # advanced vs basic indexing
    inplace(x, lambda base: apply("index_put", base, v, *tensors, spec=spec, grad_name=name),
            operands=(v,))
