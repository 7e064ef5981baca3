"""Shape ops (views, joins, splits) with PyTorch's argument conventions and errors."""
from __future__ import annotations

import math
import numbers

from ..dispatch import apply
from ..tensor import Tensor


def wrap_dim(dim, ndim):
    if not isinstance(dim, (numbers.Integral,)) or isinstance(dim, bool):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if not lo <= dim <= hi:
        raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], "
                         f"but got {dim})")
    return dim % max(ndim, 1)


def wrap_dims(dims, ndim):
    if dims is None:
        return tuple(range(ndim))
    if isinstance(dims, numbers.Integral):
        dims = (dims,)
    out = tuple(sorted(wrap_dim(d, ndim) for d in dims))
    if len(set(out)) != len(out):
        raise RuntimeError(f"dim {list(dims)} appears multiple times in the list of dims")
    return out if ndim else ()


def sizes_arg(sizes):
    """Accept ``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])``."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = sizes[0]
    out = []
    for s in sizes:
        if isinstance(s, Tensor):
            s = int(s.item())
        if not isinstance(s, numbers.Integral):
            raise TypeError(f"sizes must be ints, got {type(s).__name__}")
        out.append(int(s))
    return tuple(out)


def infer_shape(shape, numel):
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if any(s < -1 for s in shape):
        raise RuntimeError(f"invalid shape dimension {min(shape)}")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    if math.prod(shape) != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def _viewable(x, shape):
    """Whether ``x``'s strides can express ``shape`` without a copy."""
    probe = x._data.view()
    try:
        probe.shape = shape  # raises when the strides cannot express the new shape
    except AttributeError:
        return False
    return True


def reshape(x, *shape, grad_name=None):
    shape = infer_shape(sizes_arg(shape), x.numel())
    if grad_name is None:  # PyTorch's name tells how reshape was done: view, alias or copy
        if not _viewable(x, shape):  # copy, then view the copy (CloneBackward0 below it)
            x, grad_name = apply("copy", x), "UnsafeViewBackward0"
        else:
            grad_name = "ViewBackward0" if x.is_contiguous() else "ReshapeAliasBackward0"
    return apply("reshape", x, shape=shape, grad_name=grad_name)


def view(x, *shape):
    shape = infer_shape(sizes_arg(shape), x.numel())
    if not _viewable(x, shape):
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at "
                           "least one dimension spans across two contiguous subspaces). Use "
                           ".reshape(...) instead.") from None
    return apply("reshape", x, shape=shape)


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = wrap_dim(start_dim, x.ndim), wrap_dim(end_dim, x.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:
        return x  # nothing to flatten: PyTorch returns the input itself
    shape = x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:]
    return reshape(x, shape)


def unflatten(x, dim, sizes):
    d = wrap_dim(dim, x.ndim)
    sizes = infer_shape(tuple(sizes), x.shape[d])
    return reshape(x, x.shape[:d] + sizes + x.shape[d + 1:])


def squeeze(x, dim=None):
    if dim is None:
        return reshape(x, tuple(n for n in x.shape if n != 1), grad_name="SqueezeBackward0")
    dims = wrap_dims(dim, x.ndim)
    shape = tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1))
    name = "SqueezeBackward2" if isinstance(dim, (tuple, list)) else "SqueezeBackward1"
    return reshape(x, shape, grad_name=name)


def unsqueeze(x, dim):
    d = wrap_dim(dim, x.ndim + 1)
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:], grad_name="UnsqueezeBackward0")


def permute(x, *dims, grad_name="PermuteBackward0"):
    dims = sizes_arg(dims)
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does "
                           f"not match the length of the desired ordering of dimensions i.e. "
                           f"input.dim() = {x.ndim} is not equal to len(dims) = {len(dims)}")
    perm = tuple(wrap_dim(d, x.ndim) for d in dims)
    if sorted(perm) != list(range(x.ndim)):
        raise RuntimeError(f"permute(): duplicate dims are not allowed in {list(dims)}")
    return apply("permute", x, perm=perm, grad_name=grad_name)


def transpose(x, dim0, dim1, grad_name="TransposeBackward0"):
    if x.ndim == 0:
        return x
    a, b = wrap_dim(dim0, x.ndim), wrap_dim(dim1, x.ndim)
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return apply("permute", x, perm=tuple(perm), grad_name=grad_name)


def t(x):
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    if x.ndim < 2:
        return x
    return apply("permute", x, perm=(1, 0), grad_name="TBackward0")


def expand(x, *sizes):
    sizes = sizes_arg(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater "
                           f"or equal to the number of dimensions in the tensor ({x.ndim})")
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    if any(s < 0 for s in shape):
        raise RuntimeError(f"expand: -1 is not allowed in a leading, non-existing dimension: {list(sizes)}")
    return apply("expand", x, shape=shape)


def contiguous(x):
    if x._data.flags.c_contiguous:
        return x
    return apply("copy", x)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    for i, x in enumerate(tensors):
        if not isinstance(x, Tensor):
            raise TypeError(f"cat(): expected a sequence of Tensors, but element {i} is "
                            f"{type(x).__name__}")
    from .arith import promote
    tensors = promote("cat", *tensors)
    # PyTorch skips 1-d empty tensors in cat (legacy behaviour; the op does the same)
    kept = [x for x in tensors if not (x.ndim == 1 and x.shape[0] == 0)] or tensors[:1]
    d = wrap_dim(dim, kept[0].ndim)
    for i, x in enumerate(kept):
        if x.ndim != kept[0].ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {kept[0].ndim} "
                               f"and {x.ndim}")
    return apply("cat", *tensors, axis=d)


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    shapes = {tuple(x.shape) for x in tensors}
    if len(shapes) > 1:
        raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                           f"{[tuple(x.shape) for x in tensors]}")
    d = wrap_dim(dim, tensors[0].ndim + 1)
    from .arith import promote
    from ..composite import composite_call
    return composite_call("StackBackward0", _stack, d, *promote("stack", *tensors))


def _stack(d, *tensors):
    return apply("cat", *[reshape(x, x.shape[:d] + (1,) + x.shape[d:]) for x in tensors], axis=d)


def _slice_along(x, d, start, stop, grad_name="SplitBackward0"):
    spec = tuple(("slice", start, stop, 1) if i == d else ("slice", None, None, 1)
                 for i in range(x.ndim))
    return apply("index", x, spec=spec, grad_name=grad_name)


def split(x, split_size_or_sections, dim=0):
    d = wrap_dim(dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, numbers.Integral):
        size = int(split_size_or_sections)
        if size <= 0 and n:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got {size}")
        sizes = [min(size, n - i) for i in range(0, n, size)] if size else [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got "
                               f"split_sizes={sizes}")
    out, start = [], 0
    name = "SplitBackward0" if isinstance(split_size_or_sections, numbers.Integral) \
        else "SplitWithSizesBackward0"
    for s in sizes:
        out.append(_slice_along(x, d, start, start + s, grad_name=name))
        start += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0")
    n = x.shape[wrap_dim(dim, x.ndim)]
    return split(x, max(1, -(-n // chunks)), dim)


def unbind(x, dim=0):
    d = wrap_dim(dim, x.ndim)
    return tuple(select(x, d, i, grad_name="UnbindBackward0") for i in range(x.shape[d]))


def select(x, dim, index, grad_name="SelectBackward0"):
    d = wrap_dim(dim, x.ndim)
    n = x.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size "
                         f"{tuple(x.shape)} at dimension {d}")
    spec = tuple(("int", index) if i == d else ("slice", None, None, 1) for i in range(x.ndim))
    return apply("index", x, spec=spec, grad_name=grad_name)


def narrow(x, dim, start, length):
    d = wrap_dim(dim, x.ndim)
    return _slice_along(x, d, start, start + length, grad_name="SliceBackward0")


def repeat(x, *sizes):
    sizes = sizes_arg(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    from ..composite import composite_call
    return composite_call("RepeatBackward0", _repeat, x, sizes)


def _repeat(x, sizes):
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    x = reshape(x, tuple(v for n in shape for v in (1, n)))
    x = expand(x, tuple(v for r, n in zip(sizes, shape) for v in (r, n)))
    return reshape(x, tuple(r * n for r, n in zip(sizes, shape)))


def flip(x, dims):
    dims = wrap_dims(dims, x.ndim)
    spec = tuple(("slice", None, None, -1 if i in dims else 1) for i in range(x.ndim))
    return apply("index", x, spec=spec, grad_name="FlipBackward0")


def movedim(x, source, destination):
    src, dst = wrap_dim(source, x.ndim), wrap_dim(destination, x.ndim)
    order = [i for i in range(x.ndim) if i != src]
    order.insert(dst, src)
    return permute(x, order)
