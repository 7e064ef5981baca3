"""Indexing ops: ``x[spec]``, its adjoint, and gather/scatter along an axis.

An index ``spec`` is a tuple with one entry per indexed position:
``("int", i)``, ``("slice", start, stop, step)``, ``("none",)`` (a new axis) or
``("tensor",)`` (the next integer index tensor among the op's inputs). The frontend
expands ``...`` and turns bool masks into integer tensors before building a spec.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import INT
from . import kernels
from .registry import OpError, OpIndexError, Spec, defop


def build_index(spec, tensors):
    it = iter(tensors)
    out = []
    for item in spec:
        tag = item[0]
        if tag == "int":
            out.append(item[1])
        elif tag == "slice":
            out.append(slice(item[1], item[2], item[3]))
        elif tag == "none":
            out.append(None)
        elif tag == "tensor":
            out.append(next(it))
        else:
            raise OpError(f"index: unknown spec entry {item!r}")
    return tuple(out)


def _probe(shape, dtype):
    """A zero-stride array of ``shape``: indexing it computes result shapes for free."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=shape,
                                           strides=(0,) * len(shape), writeable=False)


def _index_infer(x, *idx, spec):
    for t in idx:
        if t.dtype.category != INT:
            raise OpError(f"index: index tensors must be integer or bool, got {t.dtype}")
    probes = [np.zeros(tuple(t.shape), np.int64) for t in idx]
    try:
        shape = _probe(tuple(x.shape), np.int8)[build_index(spec, probes)].shape
    except IndexError as e:
        raise OpError(f"index: {e} (indexing a tensor of shape {tuple(x.shape)})") from None
    return Spec(tuple(shape), x.dtype)


def _index_ref(x, *idx, spec):
    try:
        return x[build_index(spec, idx)]
    except IndexError as e:
        raise IndexError(f"{e} (indexing a tensor of shape {tuple(x.shape)})") from None


def _index_grad(E, g, out, x, *idx, spec):
    return (E.index_backward(g, *idx, spec=spec, shape=tuple(x.shape)),) + (None,) * len(idx)


defop("index", "index", infer=_index_infer, ref=_index_ref, grad=_index_grad, variadic=True,
      grad_name="IndexBackward0")


def _index_backward_infer(g, *idx, spec, shape):
    return Spec(tuple(shape), g.dtype)


def _index_backward_ref(g, *idx, spec, shape):
    out = np.zeros(shape, g.dtype)
    if idx:
        np.add.at(out, build_index(spec, idx), g)  # repeated indices accumulate
    else:
        out[build_index(spec, idx)] = g            # basic indices never repeat
    return out


def _index_backward_grad(E, g, out, grad, *idx, spec, shape):
    return (E.index(g, *idx, spec=spec),) + (None,) * len(idx)


defop("index_backward", "index", infer=_index_backward_infer, ref=_index_backward_ref,
      grad=_index_backward_grad, variadic=True)


def _along_axis_check(name, x, idx, axis):
    if idx.dtype.category != INT:
        raise OpError(f"{name}: index must be an integer tensor, got {idx.dtype}")
    if len(idx.shape) != len(x.shape):
        raise OpError(f"{name}: index has {len(idx.shape)} dims but input has {len(x.shape)}")
    if not 0 <= axis < max(len(x.shape), 1):
        raise OpError(f"{name}: axis {axis} out of range for shape {tuple(x.shape)}")


def _gather_infer(x, idx, axis):
    _along_axis_check("gather", x, idx, axis)
    return Spec(tuple(idx.shape), x.dtype)


def _check_bounds(name, idx, size):
    if idx.size and (idx.min() < -size or idx.max() >= size):
        bad = idx[(idx < -size) | (idx >= size)].flat[0]
        raise OpIndexError(f"{name}: index {bad} is out of bounds for dimension of size {size}")


def _gather_ref(x, idx, axis):
    _check_bounds("gather", idx, x.shape[axis])
    out = kernels.gather_one(x, idx, axis)
    return np.take_along_axis(x, idx, axis=axis) if out is None else out


defop("gather", "index", infer=_gather_infer, ref=_gather_ref,
      grad=lambda E, g, out, x, idx, axis: (
          E.scatter_add(g, idx, axis=axis, shape=tuple(x.shape)), None))


def _scatter_add_infer(g, idx, axis, shape):
    return Spec(tuple(shape), g.dtype)


def _scatter_add_ref(g, idx, axis, shape):
    _check_bounds("scatter_add", idx, shape[axis])
    out = kernels.scatter_one(g, idx, axis, shape)
    if out is not None:
        return out
    out = np.zeros(shape, g.dtype)
    if idx.shape[axis] == 1:
        # one index per slice along ``axis`` (max(dim), max-pool, nll_loss): no two sources
        # share a target, so a plain put replaces the slow unbuffered np.add.at
        np.put_along_axis(out, idx, g, axis=axis)
        return out
    grids = list(np.indices(idx.shape, sparse=True))
    grids[axis] = idx
    np.add.at(out, tuple(grids), g)
    return out


defop("scatter_add", "index", infer=_scatter_add_infer, ref=_scatter_add_ref,
      grad=lambda E, g, out, src, idx, axis, shape: (E.gather(g, idx, axis=axis), None))


def _index_put_infer(x, v, *idx, spec):
    target = _index_infer(x, *idx, spec=spec).shape
    try:
        np.broadcast_shapes(tuple(v.shape), target)
    except ValueError:
        raise OpError(f"index_put: shape mismatch: value tensor of shape {tuple(v.shape)} cannot "
                      f"be broadcast to indexing result of shape {target}") from None
    if v.dtype != x.dtype:
        raise OpError(f"index_put: value dtype {v.dtype} differs from destination dtype {x.dtype}")
    return Spec(tuple(x.shape), x.dtype)


def _index_put_ref(x, v, *idx, spec):
    out = np.array(x, copy=True)
    try:
        out[build_index(spec, idx)] = v
    except IndexError as e:
        raise IndexError(f"{e} (indexing a tensor of shape {tuple(x.shape)})") from None
    return out


def _index_put_grad(E, g, out, x, v, *idx, spec):
    gx = E.index_put(g, E.scalar(0, g), *idx, spec=spec)
    gv = E.sum_to(E.index(g, *idx, spec=spec), v.shape)
    return (gx, gv) + (None,) * len(idx)


defop("index_put", "index", infer=_index_put_infer, ref=_index_put_ref, grad=_index_put_grad,
      variadic=True, grad_name="IndexPutBackward0",
      doc="x with x[spec] = v: the functional form of assignment through an index")
