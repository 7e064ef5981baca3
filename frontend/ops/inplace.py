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


def inplace(x, compute, operands=()):
    records = is_grad_enabled() and (x._requires_grad or any(
        isinstance(o, Tensor) and o._requires_grad for o in operands))
    if records and x._requires_grad and x.grad_fn is None:
        raise RuntimeError(LEAF_MESSAGE)
    if records:
        if x._base is not None:
            raise RuntimeError("in-place modification of a view of a tensor is not recorded by "
                               "Kiln's autograd; write the update out of place (e.g. with "
                               "torch.where or torch.cat) or clone() the view first")
        source = Tensor._make(np.array(x._data, copy=True), x.dtype)
        source._requires_grad, source.grad_fn = x._requires_grad, x.grad_fn
        source._output_nr = x._output_nr
        tracing_hook.on_alias(source, x)
    else:
        source = x
    result = compute(source)
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
    np.copyto(x._data, result._data, casting="unsafe")
    x._version.bump()
    tracing_hook.on_inplace(x, result)
    if records and result.grad_fn is not None:
        x.grad_fn, x._output_nr, x._requires_grad = result.grad_fn, result._output_nr, True
    return x
