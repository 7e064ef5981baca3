"""In-place ops: compute out of place, then write into the tensor's own storage.

Writing into the existing array keeps every view of it in sync; bumping the shared
version counter lets autograd detect a saved tensor that was overwritten. When autograd
records, the op reads a snapshot of the old value and the tensor takes over the new
node's history, which is how PyTorch rebases a tensor modified in place.
"""
from __future__ import annotations

import numpy as np

from compiler import dtypes as dt
from ..autograd.grad_mode import is_grad_enabled
from ..dispatch import apply
from .. import tracing_hook
from ..tensor import Tensor

LEAF_MESSAGE = "a leaf Variable that requires grad is being used in an in-place operation."


def can_cast(src, dst):
    """PyTorch's in-place rule: never float -> integer or anything -> bool silently."""
    if src.category == dt.FLOAT and dst.category != dt.FLOAT:
        return False
    if src.category != dt.BOOL and dst.category == dt.BOOL:
        return False
    return True


def fast_binary(x, ufunc, other, alpha=1):
    """``x op= alpha * other`` as one NumPy ufunc writing into ``x``'s storage, when nothing
    needs recording (optimizer updates under no_grad): no temporaries beyond ``alpha *
    other``, no snapshot. Returns False to ask for the general path, which also gives
    every error message (bad dtype, shape, read-only memory)."""
    other_t = isinstance(other, Tensor)
    if tracing_hook.active() or (is_grad_enabled() and (
            x._requires_grad or (other_t and other._requires_grad))):
        return False
    from .arith import result_dtype
    if result_dtype(x, other) != x.dtype or not x._data.flags.writeable:
        return False
    if ufunc is np.true_divide and not x.dtype.is_floating_point:
        return False  # true division yields floats: the general path raises as PyTorch does
    value = other._data if other_t else other
    if other_t and np.broadcast_shapes(value.shape, x._data.shape) != x._data.shape:
        return False
    if alpha != 1:
        value = value * x.dtype.np.type(alpha)
    with np.errstate(all="ignore"):
        ufunc(x._data, value, out=x._data, casting="unsafe")
    x._version.bump()
    return True


def inplace(x, compute, operands=()):
    records = is_grad_enabled() and (x._requires_grad or any(
        isinstance(o, Tensor) and o._requires_grad for o in operands))
    if records and x._requires_grad and x.grad_fn is None:
        raise RuntimeError(LEAF_MESSAGE)
    if records and x._base is not None:
        return _inplace_on_view(x, compute)
    if records:
        source = _snapshot(x)
    else:
        source = x
    result = compute(source)
    _check_result(x, result)
    np.copyto(x._data, result._data, casting="unsafe")
    x._version.bump()
    tracing_hook.on_inplace(x, result)
    if records and result.grad_fn is not None:
        x.grad_fn, x._output_nr, x._requires_grad = result.grad_fn, result._output_nr, True
        _refresh_views(x, result)
    return x


def _refresh_views(base, source, skip=None):
    """``base``'s history changed in place: re-derive the history of each live view of it
    from ``source`` (a tensor carrying the new history), as PyTorch regenerates a view's
    grad_fn. Otherwise a view taken earlier would backpropagate through stale history."""
    for view in list(base._views or ()):
        if view is not skip:
            fresh = _replay(source, view._view_ops)
            view.grad_fn, view._output_nr = fresh.grad_fn, fresh._output_nr
            view._requires_grad = fresh._requires_grad


def _snapshot(x):
    """``x``'s current value and history, in memory of its own (the op reads this)."""
    source = Tensor._make(np.array(x._data, copy=True), x.dtype)
    source._requires_grad, source.grad_fn = x._requires_grad, x.grad_fn
    source._output_nr = x._output_nr
    tracing_hook.on_alias(source, x)
    return source


def _check_result(x, result):
    if tuple(result.shape) != tuple(x.shape):
        raise RuntimeError(f"output with shape {list(x.shape)} doesn't match the broadcast shape "
                           f"{list(result.shape)}")
    if not can_cast(result.dtype, x.dtype):
        raise RuntimeError(f"result type {result.dtype.name} can't be cast to the desired output "
                           f"type {x.dtype.name}")
    if not x._data.flags.writeable:
        raise RuntimeError("unsupported operation: more than one element of the written-to tensor "
                           "refers to a single memory location. Please clone() the tensor before "
                           "performing the operation.")


def _replay(t, view_ops):
    """Re-derive a view from (a stand-in for) its base by re-applying its view ops."""
    for op_name, attrs, extra, name in view_ops:
        t = apply(op_name, t, *extra, grad_name=name, **attrs)
    return t


def _write_back(root, view_ops, value):
    """The adjoint of ``_replay``: ``root`` with the view's elements replaced by ``value``,
    one view op at a time from the innermost out. The outermost step is PyTorch's
    CopySlices node, whose inputs are the base's history and the new values."""
    for depth in reversed(range(len(view_ops))):
        parent = _replay(root, view_ops[:depth])
        op_name, attrs, extra, _ = view_ops[depth]
        name = "CopySlices" if depth == 0 else None
        if op_name == "index":
            value = apply("index_put", parent, value, *extra, spec=attrs["spec"], grad_name=name)
        elif op_name == "reshape":
            value = apply("reshape", value, shape=tuple(parent.shape), grad_name=name)
        elif op_name == "permute":
            perm = attrs["perm"]
            inverse = tuple(sorted(range(len(perm)), key=perm.__getitem__))
            value = apply("permute", value, perm=inverse, grad_name=name)
        else:
            raise RuntimeError(f"an in-place operation on a view made by {op_name!r} cannot be "
                               "differentiated; clone() the view first")
    return value


def _inplace_on_view(x, compute):
    """An in-place op on a view while autograd records, as PyTorch's CopySlices: the new view
    values are computed from the view re-derived from the base's history, then written back
    into the base, which takes over the write-back's history; the view is re-derived from it."""
    base = x._base
    if base._requires_grad and base.grad_fn is None:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                           "in-place operation.")
    root = _snapshot(base)
    result = compute(_replay(root, x._view_ops))
    _check_result(x, result)
    if result.dtype != x.dtype:
        result = apply("cast", result, dtype=x.dtype)
    new_base = _write_back(root, x._view_ops, result)
    np.copyto(x._data, result._data, casting="unsafe")  # writes the base's storage
    x._version.bump()
    tracing_hook.on_inplace(x, result)
    if new_base.grad_fn is not None:
        base.grad_fn, base._output_nr, base._requires_grad = new_base.grad_fn, 0, True
        _refresh_views(base, new_base)  # x included
    return x
