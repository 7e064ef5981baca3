"""Elementwise primitives: unary math, binary arithmetic with broadcasting, comparisons.

Binary ops broadcast NumPy-style but expect one dtype: the frontend applies PyTorch's
promotion and inserts ``cast`` first, so each kernel here sees a single dtype.
"""
from __future__ import annotations

import math

import numpy as np

from ..dtypes import FLOAT, bool_
from . import kernels, rules
from .registry import OpError, Spec, defop


def _unary(name, ref, grad, *, float_only=True, grad_name=None):
    infer = (lambda x: rules.floating(name, x)) if float_only else (lambda x: Spec(tuple(x.shape), x.dtype))
    defop(name, "elementwise", infer=infer, ref=ref, grad=grad, grad_name=grad_name)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _no_bool(name, infer, hint):
    """Wrap a shape rule so bool inputs fail when the op is built, not when it runs."""
    def rule(*xs, **attrs):
        if any(x.dtype.name == "bool" for x in xs):
            raise OpError(f"{name}: not supported on bool tensors; {hint}")
        return infer(*xs, **attrs)
    return rule


defop("neg", "elementwise", ref=np.negative, grad=lambda E, g, out, x: (E.neg(g),),
      infer=_no_bool("neg", lambda x: Spec(tuple(x.shape), x.dtype),
                     "use logical_not() to invert a mask"))
_unary("exp", np.exp, lambda E, g, out, x: (E.mul(g, out),))
_unary("log", np.log, lambda E, g, out, x: (E.div(g, x),))
_unary("log1p", np.log1p, lambda E, g, out, x: (E.div(g, E.add(x, E.scalar(1, x))),),
       grad_name="Log1PBackward0")
_unary("sqrt", np.sqrt, lambda E, g, out, x: (E.div(g, E.mul(out, E.scalar(2, out))),))
_unary("sin", np.sin, lambda E, g, out, x: (E.mul(g, E.cos(x)),))
_unary("cos", np.cos, lambda E, g, out, x: (E.neg(E.mul(g, E.sin(x))),))
_unary("tanh", np.tanh,
       lambda E, g, out, x: (E.mul(g, E.sub(E.scalar(1, out), E.mul(out, out))),))
_unary("sigmoid", _sigmoid,
       lambda E, g, out, x: (E.mul(g, E.mul(out, E.sub(E.scalar(1, out), out))),))
_erf = np.vectorize(math.erf, otypes=[np.float64])
_unary("erf", lambda x: _erf(x).astype(x.dtype),
       lambda E, g, out, x: (E.mul(g, E.mul(E.scalar(1.1283791670955126, x),
                                            E.exp(E.neg(E.mul(x, x))))),))
_unary("abs", np.abs, lambda E, g, out, x: (E.mul(g, E.sign(x)),), float_only=False)
_unary("sign", np.sign, lambda E, g, out, x: (E.zeros_like(x),), float_only=False)
_unary("relu", lambda x: np.maximum(x, x.dtype.type(0)),
       lambda E, g, out, x: (E.where(E.gt(out, E.scalar(0, out)), g, E.scalar(0, g)),),
       float_only=False)


_unary("floor", np.floor, None, float_only=False)
_unary("trunc", np.trunc, None, float_only=False)
defop("stop_gradient", "elementwise", infer=lambda x: Spec(tuple(x.shape), x.dtype),
      ref=lambda x: x, grad=None,
      doc="identity whose gradient is cut: what detach() becomes in a traced graph")


def _cast_infer(x, dtype):
    return Spec(tuple(x.shape), dtype)


def _cast_grad(E, g, out, x, dtype):
    if x.dtype.category != FLOAT or dtype.category != FLOAT:
        return (None,)
    return (E.cast(g, dtype=x.dtype),)


defop("cast", "elementwise", infer=_cast_infer, grad_name="ToCopyBackward0",
      ref=lambda x, dtype: x.astype(dtype.np), grad=_cast_grad)

# ``order="K"`` keeps the input's memory order (``clone()``, PyTorch's preserve_format);
# "C" is ``contiguous()``. Compiled code always produces contiguous values.
defop("copy", "elementwise", infer=lambda x, order="C": Spec(tuple(x.shape), x.dtype),
      ref=lambda x, order="C": np.array(x, copy=True, order=order),
      grad=lambda E, g, out, x, order="C": (g,), grad_name="CloneBackward0")


def _binary(name, ref, grad, infer=None):
    defop(name, "elementwise", infer=infer or (lambda a, b: rules.elementwise(name, a, b)),
          ref=ref, grad=grad)


_binary("add", np.add, lambda E, g, out, a, b: (E.sum_to(g, a.shape) if E.wants(0) else None,
                                                 E.sum_to(g, b.shape) if E.wants(1) else None))
_binary("sub", np.subtract,
        lambda E, g, out, a, b: (E.sum_to(g, a.shape) if E.wants(0) else None,
                                 E.sum_to(E.neg(g), b.shape) if E.wants(1) else None),
        infer=_no_bool("sub", lambda a, b: rules.elementwise("sub", a, b),
                       "use logical_xor() or ~ instead"))
_binary("mul", np.multiply,
        lambda E, g, out, a, b: (E.sum_to(E.mul(g, b), a.shape) if E.wants(0) else None,
                                 E.sum_to(E.mul(g, a), b.shape) if E.wants(1) else None))
_binary("div", np.divide,
        lambda E, g, out, a, b: (
            E.sum_to(E.div(g, b), a.shape) if E.wants(0) else None,
            E.sum_to(E.neg(E.div(E.mul(g, a), E.mul(b, b))), b.shape) if E.wants(1) else None))


def _pow_ref(a, b):
    if a.dtype.kind in "iu" and np.any(b < 0):
        raise OpError("pow: integers to negative integer powers are not allowed")
    return np.power(a, b)


def _pow_grad(E, g, out, a, b):
    ga = gb = None
    if E.wants(0):
        ga = E.sum_to(E.mul(g, E.mul(b, E.pow(a, E.sub(b, E.scalar(1, b))))), a.shape)
    if E.wants(1):
        # PyTorch masks the exponent's gradient where the base is 0, avoiding 0*log(0)
        zero = E.eq(a, E.scalar(0, a))
        log_a = E.log(E.where(zero, E.scalar(1, a), a))
        gb = E.sum_to(E.where(zero, E.scalar(0, g), E.mul(g, E.mul(out, log_a))), b.shape)
    return ga, gb


_binary("pow", _pow_ref, _pow_grad)


def _minmax_grad(pick):
    def grad(E, g, out, a, b):
        ga_mask = E.cast(pick(E, a, b), dtype=g.dtype)
        tie = E.cast(E.eq(a, b), dtype=g.dtype)
        half = E.mul(tie, E.scalar(0.5, g))
        wa = E.add(ga_mask, half)
        wb = E.sub(E.sub(E.scalar(1, g), ga_mask), half)
        return E.sum_to(E.mul(g, wa), a.shape), E.sum_to(E.mul(g, wb), b.shape)
    return grad


_binary("maximum", np.maximum, _minmax_grad(lambda E, a, b: E.gt(a, b)))
_binary("minimum", np.minimum, _minmax_grad(lambda E, a, b: E.lt(a, b)))

for _name, _ref in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                    ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
                    ("logical_and", np.logical_and), ("logical_or", np.logical_or)):
    defop(_name, "elementwise", ref=_ref,
          infer=(lambda n: lambda a, b: rules.comparison(n, a, b))(_name))

defop("logical_not", "elementwise", ref=np.logical_not,
      infer=lambda x: Spec(tuple(x.shape), bool_))


def _where_infer(c, a, b):
    if c.dtype.name != "bool":
        raise OpError(f"where: condition must be bool, got {c.dtype}")
    shape = rules.broadcast_shapes("where", tuple(c.shape), tuple(a.shape), tuple(b.shape))
    return Spec(shape, rules.same_dtype("where", a, b))


def _where_grad(E, g, out, c, a, b):
    zero = E.scalar(0, g)
    return (None, E.sum_to(E.where(c, g, zero), a.shape), E.sum_to(E.where(c, zero, g), b.shape))


defop("where", "elementwise", infer=_where_infer, ref=kernels.where, grad=_where_grad)


def _clamp_infer(x, lo, hi):
    return Spec(tuple(x.shape), x.dtype)


def _clamp_ref(x, lo, hi):
    if lo is not None:
        x = np.maximum(x, x.dtype.type(lo))
    if hi is not None:
        x = np.minimum(x, x.dtype.type(hi))
    return x


def _clamp_grad(E, g, out, x, lo, hi):
    keep = None
    if lo is not None:
        keep = E.ge(x, E.scalar(lo, x))
    if hi is not None:
        upper = E.le(x, E.scalar(hi, x))
        keep = upper if keep is None else E.logical_and(keep, upper)
    return (g if keep is None else E.where(keep, g, E.scalar(0, g)),)


defop("clamp", "elementwise", infer=_clamp_infer, ref=_clamp_ref, grad=_clamp_grad,
      grad_name="ClampBackward1")
