"""Lookup tables: ``embedding`` and ``one_hot``.

``embedding`` is a row gather recorded as one ``EmbeddingBackward0`` node whose only edge
is the weight (indices are not differentiable). The ``padding_idx`` row keeps its value in
the output but receives no gradient: its rows are taken from a detached weight.
Indices are range-checked up front so a bad one is reported with the table size instead
of surfacing as a NumPy error.
"""
from __future__ import annotations

from compiler import dtypes as dt
from ...autograd.grad_mode import no_grad
from ...composite import composite_call
from ...dispatch import apply
from ...ops.arith import cast, constant
from ...ops.creation import arange
from ...tensor import Tensor
from .normalization import _vector_norm


def _check_indices(fn, indices):
    if not isinstance(indices, Tensor):
        raise TypeError(f"{fn}(): argument 'input' must be a Tensor of indices, not "
                        f"{type(indices).__name__}")
    if indices.dtype not in (dt.int64, dt.int32):
        raise RuntimeError(f"{fn}(): expected indices of dtype int64 or int32, but got "
                           f"{indices.dtype.name} (use .long() on class indices)")


def _check_range(indices, num_embeddings):
    data = indices._data
    if data.size and (data.min() < 0 or data.max() >= num_embeddings):
        bad = data[(data < 0) | (data >= num_embeddings)].flat[0]
        raise IndexError(f"embedding(): index {bad} is out of range for an embedding with "
                         f"num_embeddings={num_embeddings} (valid indices are 0 to "
                         f"{num_embeddings - 1})")


def _padding_index(padding_idx, num_embeddings):
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"Padding_idx must be within num_embeddings: got padding_idx="
                         f"{padding_idx} for num_embeddings={num_embeddings}")
    return padding_idx % num_embeddings


def _renorm_rows(weight, indices, max_norm, norm_type):
    """PyTorch's ``embedding_renorm_``: rescale the looked-up rows whose norm exceeds
    ``max_norm``, in place and unrecorded. Written with tensor ops (a repeated index just
    writes the same row twice) so that a compiled graph repeats it on every call."""
    flat = apply("reshape", indices, shape=(indices.numel(),))
    with no_grad():
        rows = apply("index", weight, flat, spec=(("tensor",),))
        norms = _vector_norm(rows, norm_type, 1)
        limit = constant(max_norm, weight.dtype)
        scale = apply("where", apply("gt", norms, limit),
                      apply("div", limit, apply("add", norms, constant(1e-7, weight.dtype))),
                      constant(1, weight.dtype))
        weight[flat] = apply("mul", rows, scale)


def _embedding(indices, weight, padding_idx):
    rows = apply("index", weight, indices, spec=(("tensor",),))
    if padding_idx is None:
        return rows
    is_pad = apply("eq", indices, constant(padding_idx, indices.dtype))
    is_pad = apply("reshape", is_pad, shape=tuple(is_pad.shape) + (1,))
    frozen = apply("index", weight.detach(), indices, spec=(("tensor",),))
    return apply("where", is_pad, frozen, rows)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` at the integer ``input``; ``sparse`` is accepted but gradients
    are always dense."""
    _check_indices("embedding", input)
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        raise RuntimeError(f"embedding(): weight must be a 2-D Tensor (num_embeddings, "
                           f"embedding_dim), got {getattr(weight, 'shape', type(weight).__name__)}")
    if scale_grad_by_freq:
        raise NotImplementedError("embedding(): scale_grad_by_freq=True is not supported")
    num_embeddings = weight.shape[0]
    padding_idx = _padding_index(padding_idx, num_embeddings)
    _check_range(input, num_embeddings)
    if max_norm is not None:
        _renorm_rows(weight, input, max_norm, norm_type)
    return composite_call("EmbeddingBackward0", _embedding, input, weight, padding_idx)


def one_hot(tensor, num_classes=-1):
    """``int64`` one-hot vectors along a new last dimension."""
    _check_indices("one_hot", tensor)
    data = tensor._data
    if num_classes == -1:  # a data-dependent size: read through item(), which tracing sees
        if data.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(tensor.max().item()) + 1
    if data.size and data.min() < 0:
        raise RuntimeError(f"Class values must be non-negative (got {data.min()}).")
    if data.size and data.max() >= num_classes:
        raise RuntimeError(f"Class values must be smaller than num_classes: got class "
                           f"{data.max()} with num_classes={num_classes}.")
    column = apply("reshape", cast(tensor, dt.int64), shape=tuple(tensor.shape) + (1,))
    return cast(apply("eq", column, arange(num_classes)), dt.int64)
