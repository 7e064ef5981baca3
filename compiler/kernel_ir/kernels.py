"""Kernel forms: the backend-neutral description of one launched kernel.

- ``LoopKernel``: a parallel index space (``outer``) and, per point of it, a sequence
  of phases: ``Reduce`` (loop over reduction variables, combine into a named
  accumulator) and ``StoreLoop`` (loop over inner variables, store values). A pure
  elementwise kernel is one ``StoreLoop`` with no inner variables; a row softmax is two
  reductions and a store loop, all inside one parallel loop over rows.
- ``MatmulKernel``: batched ``C[b, m, n] = sum_k A[b, m, k] * B[b, k, n]`` where ``A``
  and ``B`` are *expressions* (so transposes, unfold windows and cheap elementwise
  producers cost nothing extra) and an epilogue of stores that read the sum as
  ``acc("acc")`` (bias, activation).
- ``ScatterKernel``: initialise an output, then one sequential pass accumulating (or
  assigning) values at data-dependent positions (index_put, index_backward).
- ``OpaqueKernel``: run an op's NumPy reference kernel; the last resort, counted.

Buffers are numbered; every ``load``/``Store`` names its buffer by that number.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..dtypes import DType
from .expr import Expr
from .index import Index, Var


ERRORS = -2   # Buffer.node of a kernel's error record (see ``expr.checked_index``): int64[4]
#               (flag, offending index, dimension size, unused), one per compiled graph


@dataclass
class Buffer:
    name: str              # readable parameter name, e.g. "x3" for graph node %3
    dtype: DType
    shape: tuple
    node: int              # graph node id whose value the buffer holds (-1 for locals,
                           # ERRORS for the error record)
    written: bool = False  # the kernel stores into it
    local: bool = False    # per-thread scratch for one row (not a graph value)
    returned: bool = False # a graph output: handed to the caller, read by no later kernel

    @property
    def numel(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self):
        return self.numel * self.dtype.itemsize


def streamable(buffer: Buffer, index: Index, var: Var, min_bytes: int) -> bool:
    """Whether a store of ``buffer[index]`` may bypass the cache (a streaming store): the
    buffer is a graph output of at least ``min_bytes`` that no later kernel reads, and
    consecutive values of ``var`` write consecutive elements of it. Each backend adds
    what its stores need (dtypes, the target's instructions)."""
    return (buffer.returned and not buffer.local and buffer.nbytes >= min_bytes
            and index.coeff(var) == 1 and index.atoms().count(var) == 1 and not index.has_dyn())


@dataclass
class Store:
    buffer: int
    index: Index
    value: Expr


@dataclass
class Reduce:
    """``acc = combine(value over dims)``; argmax/argmin also track ``position``."""

    acc: str
    op: str                      # sum, prod, max, min, argmax, argmin, any, all
    dims: tuple                  # Vars looped over
    value: Expr
    dtype: DType                 # of the accumulator (int64 for argmax/argmin)
    position: Index | None = None   # argmax/argmin: the index to report for each element
    stores: list = field(default_factory=list)   # values stored in the same pass (they
                                                 # read no accumulator of this or later phases)


@dataclass
class StoreLoop:
    dims: tuple                  # Vars looped over (empty: once per outer point)
    stores: list


@dataclass
class Kernel:
    name: str
    buffers: list
    nodes: list = field(default_factory=list)     # graph node ids computed here
    outputs: list = field(default_factory=list)   # graph node ids stored here
    locs: list = field(default_factory=list)      # user source lines, for comments
    flops: int = 0
    bytes: int = 0


@dataclass
class LoopKernel(Kernel):
    outer: tuple = ()            # parallel Vars, outermost first
    phases: list = field(default_factory=list)


@dataclass
class MatmulKernel(Kernel):
    batch: tuple = ()            # Vars over batch dims of C
    m: Var = None
    n: Var = None
    k: Var = None
    a: Expr = None               # A[b, m, k]
    b: Expr = None               # B[b, k, n]
    epilogue: list = field(default_factory=list)   # Stores reading acc("acc")
    dtype: DType = None


@dataclass
class ScatterKernel(Kernel):
    init: StoreLoop = None       # over ``outer`` Vars: the output's initial values
    outer: tuple = ()
    source: tuple = ()           # Vars over the scattered elements
    target: int = 0              # buffer written
    position: Index = None       # flat position in ``target`` for each source element
    value: Expr = None
    accumulate: bool = True      # += (index_backward) or = (index_put: last write wins)


@dataclass
class OpaqueKernel(Kernel):
    op: str = ""
    reason: str = ""


def all_exprs(kernel):
    """Every root expression of a kernel (for flop counts and buffer scans)."""
    if isinstance(kernel, LoopKernel):
        out = []
        for ph in kernel.phases:
            out += ([ph.value] if isinstance(ph, Reduce) else []) + [s.value for s in ph.stores]
        return out
    if isinstance(kernel, MatmulKernel):
        return [kernel.a, kernel.b] + [s.value for s in kernel.epilogue]
    if isinstance(kernel, ScatterKernel):
        return [s.value for s in kernel.init.stores] + [kernel.value]
    return []
