"""NumPy helpers shared by the reference kernels: branch-free fast paths.

``np.where`` and masked copies branch on every element, which costs several
nanoseconds per element when the mask is unpredictable (a ReLU's mask, a max-pool's
argmax). Selecting bit patterns through an all-ones / all-zeros integer mask gives the
very same values (the bits are copied, NaN payloads and signed zeros included) in a
few vectorised passes.
"""
from __future__ import annotations

import math

import numpy as np

# below this many output elements the plain NumPy call is cheaper than the extra passes
MIN_FAST = 4096

_INT_OF_SIZE = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def can_select(*arrays):
    """Whether ``select`` handles these value arrays (one dtype, a plain numeric one)."""
    dtype = arrays[0].dtype
    return all(a.dtype == dtype for a in arrays) and dtype.kind in "fiu" \
        and dtype.itemsize in _INT_OF_SIZE


def select(cond, a, b=None):
    """``np.where(cond, a, b)`` (``b=None``: zeros) for a bool ``cond`` and arrays ``a``,
    ``b`` of one numeric dtype (see ``can_select``), broadcasting all three.

    The bits are selected by integer arithmetic: ``a * cond`` (the bool cast to 0 / 1
    inside the multiply, one pass), and with a ``b``, ``b + (a - b) * cond``, exact in
    wrapping integer arithmetic."""
    it = _INT_OF_SIZE[a.dtype.itemsize]
    shape = np.broadcast_shapes(cond.shape, a.shape, () if b is None else b.shape)
    abits = a.view(it)
    if b is None or (not b.ndim and b.view(it) == 0):              # b == +0: nothing to add
        out = np.multiply(abits, cond, dtype=it)
    else:
        bits = b.view(it)
        out = np.subtract(abits, bits)
        out = np.multiply(out, cond, out=_full(out, shape), dtype=it)
        out = np.add(out, bits, out=_full(out, shape))
    if out.shape != shape:
        out = np.broadcast_to(out, shape).copy()
    return out.view(a.dtype)


def _full(a, shape):
    """``a`` itself as an ``out=`` target when it is an array of the full shape, else None."""
    return a if type(a) is np.ndarray and a.shape == shape else None


def where(cond, a, b):
    """``np.where`` with the branch-free path for large numeric selections."""
    if cond.dtype == np.bool_ and can_select(a, b) and \
            max(cond.size, a.size, b.size) >= MIN_FAST:
        return select(cond, a, b)
    return np.where(cond, a, b)


def scan_arg(x, axis, keepdim, largest):
    """``np.argmax``/``np.argmin`` along a short ``axis`` by one pass per position along
    it (NumPy's own loop is slow on short, strided rows). The first extreme wins; NaN
    inputs (where NumPy reports the first NaN) fall back to NumPy. Returns None when
    the fast path does not apply."""
    n = x.shape[axis]
    if not (2 <= n <= 16) or x.dtype.kind not in "fiu" or x.size < MIN_FAST * n // 4:
        return None
    v = np.moveaxis(x, axis, 0)
    better, keep = (np.greater, np.maximum) if largest else (np.less, np.minimum)
    best = v[0]
    idx = np.zeros(v.shape[1:], np.int8)
    for j in range(1, n):
        upd = better(v[j], best)
        best = keep(best, v[j])
        # j grows, so the largest j whose value beat everything before is the answer
        np.maximum(idx, np.multiply(upd.view(np.int8), np.int8(j)), out=idx)
    if x.dtype.kind == "f" and np.isnan(best).any():
        return None
    idx = idx.astype(np.int64)
    return np.expand_dims(idx, axis) if keepdim else idx


def _along_small_axis(x, idx, axis):
    n = x.shape[axis]
    return (idx.shape[axis] == 1 and 2 <= n <= 16 and idx.size >= MIN_FAST // 4
            and idx.shape[:axis] == x.shape[:axis] and idx.shape[axis + 1:] == x.shape[axis + 1:]
            and can_select(x))


def _nonnegative(idx, n):
    return idx + n * (idx < 0) if idx.size and idx.min() < 0 else idx


_BASES = {}     # (P, n, Q) -> the flat offset of each slice's start, see _flat_base


def _flat_base(P, n, Q):
    """(P, 1, Q) int64: the flat position of element ``[p, 0, q]`` of a C-contiguous
    ``(P, n, Q)`` array. Eager steps ask for the same few shapes, so a few are kept."""
    key = (P, n, Q)
    base = _BASES.get(key)
    if base is None:
        base = (np.arange(P, dtype=np.int64) * (n * Q))[:, None, None] + np.arange(Q)
        base.flags.writeable = False
        if len(_BASES) >= 16:
            _BASES.clear()
        _BASES[key] = base
    return base


def gather_one(x, idx, axis):
    """``np.take_along_axis`` for one index per slice along a short axis, or None.

    A C-contiguous ``x`` is read by one ``np.take`` at flat positions (the slice's start
    plus index times the axis stride); otherwise one selection per position along it."""
    if not _along_small_axis(x, idx, axis):
        return None
    n = x.shape[axis]
    idx = _nonnegative(idx, n)
    if x.flags.c_contiguous:
        P, Q = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
        flat = np.multiply(idx.reshape(P, 1, Q), Q, dtype=np.int64)
        flat += _flat_base(P, n, Q)
        return np.take(x.reshape(-1), flat).reshape(idx.shape)
    lead = (slice(None),) * axis
    out = x[lead + (slice(0, 1),)]
    for j in range(1, n):
        out = select(idx == j, x[lead + (slice(j, j + 1),)], out)
    return out


def scatter_one(g, idx, axis, shape):
    """``put_along_axis`` of ``g`` into zeros of ``shape`` for one index per slice along a
    short axis (no two sources meet), or None. Each position along the axis is one
    branch-free selection of ``g`` written straight into its slice of the result."""
    probe = np.broadcast_to(np.empty((), g.dtype), shape)
    if tuple(g.shape) != tuple(idx.shape) or not _along_small_axis(probe, idx, axis):
        return None
    n = shape[axis]
    idx = _nonnegative(idx, n)
    it = _INT_OF_SIZE[g.dtype.itemsize]
    out = np.empty(shape, g.dtype)
    bits, lead = g.view(it), (slice(None),) * axis
    for j in range(n):
        np.multiply(bits, idx == j, out=out[lead + (slice(j, j + 1),)].view(it), dtype=it)
    return out
