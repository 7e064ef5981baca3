"""The op registry: one record per primitive op.

Each record holds everything Kiln knows about a primitive: its shape/dtype rule, its
NumPy reference kernel, its gradient rule and (for the code generators) its kernel
expression. Eager autograd and the compiler's autodiff pass both differentiate through
the same ``grad`` rules, so a new op is exactly one ``defop`` call.

Gradient rules are written against an *emitter* (see ``emitter.py``): ``E.mul(g, b)``
builds a tensor op in eager mode and a graph node in the compiler. A rule receives
``(E, g, out, *inputs, **attrs)`` and returns one gradient (or None) per input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

from ..dtypes import DType

KINDS = ("elementwise", "reduce", "movement", "index", "matmul", "window")


class Spec(NamedTuple):
    """What an op's shape rule returns: the output's shape and dtype."""

    shape: tuple
    dtype: DType


class OpError(ValueError):
    """Bad input to a primitive: wrong shapes, dtypes or attributes. Names the op."""


class OpIndexError(OpError, IndexError):
    """An index out of range (raised by a reference kernel): an IndexError, as in PyTorch."""


@dataclass(frozen=True)
class OpDef:
    name: str
    kind: str
    infer: Callable          # (*inputs with .shape/.dtype, **attrs) -> Spec
    ref: Callable            # (*np.ndarray, **attrs) -> np.ndarray
    grad: Optional[Callable]  # (E, g, out, *inputs, **attrs) -> tuple of grads
    grad_name: str           # PyTorch's grad_fn name for a node of this op
    expr: Optional[object] = None    # kernel expression for codegen (set by the compiler)
    variadic: bool = False
    doc: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def differentiable(self) -> bool:
        return self.grad is not None


REGISTRY: dict[str, OpDef] = {}


def defop(name, kind, *, infer, ref, grad=None, grad_name=None, expr=None, variadic=False, doc=""):
    """Register a primitive. ``grad=None`` marks it non-differentiable (e.g. comparisons)."""
    if name in REGISTRY:
        raise ValueError(f"op {name!r} registered twice")
    if kind not in KINDS:
        raise ValueError(f"op {name!r}: unknown kind {kind!r}; valid kinds: {KINDS}")
    if grad_name is None:
        grad_name = "".join(p.capitalize() for p in name.split("_")) + "Backward0"
    op = OpDef(name, kind, infer, ref, grad, grad_name, expr, variadic, doc)
    REGISTRY[name] = op
    return op


def get(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}") from None


def check_registry():
    """Import-time sanity check: every op has every part it needs."""
    for op in REGISTRY.values():
        for part in ("infer", "ref"):
            if not callable(getattr(op, part)):
                raise TypeError(f"op {op.name!r} lacks a callable {part!r}")
