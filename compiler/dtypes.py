"""Kiln's dtypes and PyTorch's type-promotion rules.

Dtypes live in the compiler because they are part of the IR's vocabulary: every
graph value has one, and the shape/dtype rule of every op speaks in them. The
frontend re-exports them as ``frontend.float32`` and friends.
"""
from __future__ import annotations

import numpy as np


class DType:
    """A scalar type; ``category`` orders bool < integer < floating, as PyTorch does."""

    __slots__ = ("name", "np", "category", "rank", "itemsize")

    def __init__(self, name: str, np_dtype, category: int, rank: int):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.category = category
        self.rank = rank
        self.itemsize = self.np.itemsize

    @property
    def is_floating_point(self) -> bool:
        return self.category == FLOAT

    def __repr__(self):
        return f"kiln.{self.name}"

    def __reduce__(self):  # dtypes are singletons
        return (from_name, (self.name,))


BOOL, INT, FLOAT = 0, 1, 2

bool_ = DType("bool", np.bool_, BOOL, 0)
int32 = DType("int32", np.int32, INT, 1)
int64 = DType("int64", np.int64, INT, 2)
float32 = DType("float32", np.float32, FLOAT, 3)
float64 = DType("float64", np.float64, FLOAT, 4)

ALL = (bool_, int32, int64, float32, float64)
_BY_NAME = {d.name: d for d in ALL}
_BY_NP = {d.np: d for d in ALL}
_ALIASES = {"float": float32, "double": float64, "long": int64, "int": int32}

default_float = float32


def from_name(name: str) -> DType:
    try:
        return _BY_NAME.get(name) or _ALIASES[name]
    except KeyError:
        raise TypeError(f"unknown dtype {name!r}; valid: {', '.join(_BY_NAME)}") from None


def from_numpy(np_dtype) -> DType:
    """Map a NumPy dtype to ours; float16 and unsigned ints are refused, not guessed."""
    dt = np.dtype(np_dtype)
    if dt in _BY_NP:
        return _BY_NP[dt]
    if dt.kind in "iu" and dt.itemsize <= 8:
        if dt.kind == "u" and dt.itemsize >= 8:
            raise TypeError(f"unsupported NumPy dtype {dt}: uint64 does not fit int64")
        return int64 if dt.itemsize > 4 or dt.kind == "u" and dt.itemsize == 4 else int32
    if dt.kind == "f":
        return float32 if dt.itemsize <= 4 else float64
    raise TypeError(f"unsupported NumPy dtype {dt}; Kiln has bool, int32, int64, float32, float64")


def promote(a: DType, b: DType) -> DType:
    """The lattice of our five dtypes is a chain, so promotion is the higher rank."""
    return a if a.rank >= b.rank else b


def scalar_dtype(value) -> DType:
    """The dtype PyTorch gives a Python number taking part in an op ("wrapped number")."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return default_float
    raise TypeError(f"expected a number, got {type(value).__name__}")


def result_type(dim_dtypes, zero_dim_dtypes, scalar_dtypes) -> DType:
    """PyTorch's three-tier promotion: tensors with dimensions win over 0-d tensors, which win
    over Python scalars, unless the lower tier belongs to a higher category (int < float)."""

    def tier(dtypes):
        result = None
        for d in dtypes:
            result = d if result is None else promote(result, d)
        return result

    def combine(higher, lower):  # PyTorch's combine_categories
        if higher is None:
            return lower
        if lower is None or higher.category == FLOAT:
            return higher
        if higher.category == BOOL or lower.category == FLOAT:
            return promote(higher, lower)
        return higher

    return combine(tier(dim_dtypes), combine(tier(zero_dim_dtypes), tier(scalar_dtypes)))
