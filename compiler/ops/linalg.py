"""Matrix multiplication: a primitive so that codegen can emit a blocked kernel for it."""
from __future__ import annotations

import numpy as np

from . import rules
from .registry import OpError, Spec, defop


def _matmul_infer(a, b):
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise OpError(f"matmul: both inputs need at least 2 dims, got {tuple(a.shape)} and "
                      f"{tuple(b.shape)}")
    if a.shape[-1] != b.shape[-2]:
        raise OpError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                      f"({a.shape[-1]} != {b.shape[-2]})")
    batch = rules.broadcast_shapes("matmul", tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    return Spec(batch + (a.shape[-2], b.shape[-1]), rules.same_dtype("matmul", a, b))


def _mT(E, x):
    n = len(x.shape)
    return E.permute(x, perm=tuple(range(n - 2)) + (n - 1, n - 2))


def _matmul_grad(E, g, out, a, b):
    ga = E.sum_to(E.matmul(g, _mT(E, b)), a.shape) if E.wants(0) else None
    gb = E.sum_to(E.matmul(_mT(E, a), g), b.shape) if E.wants(1) else None
    return ga, gb


defop("matmul", "matmul", infer=_matmul_infer, ref=np.matmul, grad=_matmul_grad,
      grad_name="MmBackward0")
