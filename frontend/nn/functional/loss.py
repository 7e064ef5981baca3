"""Loss functions with PyTorch's semantics, reductions and autograd nodes.

Losses that are one kernel in PyTorch (``mse_loss``, ``nll_loss``, the two BCEs, ...) are
composites recorded under PyTorch's node name; the rest (``l1_loss``, ``cross_entropy``)
are built from other functions exactly as ATen builds them, so their graphs match too.
Every argument is validated before anything runs: bad shapes, dtypes, reductions and
out-of-range class targets raise errors that name the offending values.
"""
from __future__ import annotations

import warnings

import numpy as np

from compiler import dtypes as dt
from ... import tracing_hook
from ...autograd.grad_mode import is_grad_enabled
from ...autograd.graph import FREED_MESSAGE, Node, SavedTensor, edge_of
from ...composite import composite_call
from ...dispatch import apply
from ...ops.arith import cast, constant, promote
from ...tensor import Tensor
from .activation import log_softmax

_REDUCTIONS = ("mean", "sum", "none")


# -- argument checking -----------------------------------------------------------------
def _reduction(reduction, size_average=None, reduce=None):
    """The reduction string, honouring the deprecated ``size_average``/``reduce`` flags."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
        warnings.warn(f"size_average and reduce args will be deprecated, please use "
                      f"reduction='{reduction}' instead.", stacklevel=3)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction (expected one of "
                         f"'mean', 'sum', 'none')")
    return reduction


def _check_input(fn, x, name="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' must be Tensor, not {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"{fn}(): expected a floating-point {name}, got {x.dtype.name}")


def _broadcast_target(fn, input, target):
    """PyTorch broadcasts a differently shaped target with a warning; unbroadcastable
    shapes are an error naming both."""
    if not isinstance(target, Tensor):
        raise TypeError(f"{fn}(): argument 'target' must be Tensor, not {type(target).__name__}")
    if tuple(target.shape) == tuple(input.shape):
        return
    try:
        np.broadcast_shapes(tuple(input.shape), tuple(target.shape))
    except ValueError:
        raise RuntimeError(f"{fn}(): target of shape {tuple(target.shape)} cannot be broadcast "
                           f"to the input's shape {tuple(input.shape)}") from None
    warnings.warn(f"Using a target size ({target.shape}) that is different to the input size "
                  f"({input.shape}). This will likely lead to incorrect results due to "
                  "broadcasting. Please ensure they have the same size.", stacklevel=3)


def _same_shape(fn, input, target):
    if not isinstance(target, Tensor):
        raise TypeError(f"{fn}(): argument 'target' must be Tensor, not {type(target).__name__}")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{fn}(): target size {tuple(target.shape)} must be the same as input "
                         f"size {tuple(input.shape)}")


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    axes = tuple(range(loss.ndim))
    return apply("mean" if reduction == "mean" else "sum", loss, axes=axes, keepdim=False)


def _weighted(loss, weight, reduction):
    """PyTorch's per-element ``weight`` for the regression losses: mean divides by its sum."""
    if tuple(weight.shape) != tuple(loss.shape):
        raise ValueError(f"Weights and input must have the same size: weight "
                         f"{tuple(weight.shape)}, loss {tuple(loss.shape)}")
    loss = loss * weight
    if reduction == "none":
        return loss
    return loss.sum() / weight.sum() if reduction == "mean" else loss.sum()


# -- regression losses -------------------------------------------------------------------
def _mse(x, t, reduction):
    d = apply("sub", x, t)
    return _reduce(apply("mul", d, d), reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    _check_input("mse_loss", input)
    _broadcast_target("mse_loss", input, target)
    reduction = _reduction(reduction, size_average, reduce)
    input, target = promote("mse_loss", input, target)
    if weight is not None:
        return _weighted(_mse(input, target, "none"), weight, reduction)
    return composite_call("MseLossBackward0", _mse, input, target, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """``|input - target|``: composed of sub/abs/mean as in ATen (so ``MeanBackward0``)."""
    _check_input("l1_loss", input)
    _broadcast_target("l1_loss", input, target)
    reduction = _reduction(reduction, size_average, reduce)
    loss = (input - target).abs()
    if weight is not None:
        return _weighted(loss, weight, reduction)
    return loss if reduction == "none" else loss.mean() if reduction == "mean" else loss.sum()


def _piecewise_quadratic(x, t, threshold, quadratic_scale, linear_scale, reduction):
    """``q * d^2`` where ``|d| < threshold``, else ``l * (|d| - threshold / 2)``."""
    c = lambda v: constant(v, x.dtype)  # noqa: E731
    d = apply("abs", apply("sub", x, t))
    quadratic = apply("mul", apply("mul", d, d), c(quadratic_scale))
    linear = apply("mul", apply("sub", d, c(threshold / 2)), c(linear_scale))
    return _reduce(apply("where", apply("lt", d, c(threshold)), quadratic, linear), reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    _check_input("smooth_l1_loss", input)
    _broadcast_target("smooth_l1_loss", input, target)
    reduction = _reduction(reduction, size_average, reduce)
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss does not support negative values for beta (got {beta})")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    input, target = promote("smooth_l1_loss", input, target)
    return composite_call("SmoothL1LossBackward0", _piecewise_quadratic, input, target, beta,
                          0.5 / beta, 1.0, reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    _check_input("huber_loss", input)
    _broadcast_target("huber_loss", input, target)
    reduction = _reduction(reduction)
    if delta <= 0:
        raise RuntimeError(f"huber_loss does not support non-positive values for delta (got "
                           f"{delta})")
    input, target = promote("huber_loss", input, target)
    if weight is not None:
        loss = composite_call("HuberLossBackward0", _piecewise_quadratic, input, target, delta,
                              0.5, delta, "none")
        loss = loss * weight
        return loss if reduction == "none" else loss.mean() if reduction == "mean" else loss.sum()
    return composite_call("HuberLossBackward0", _piecewise_quadratic, input, target, delta, 0.5,
                          delta, reduction)


# -- classification losses ------------------------------------------------------------------
def _check_class_target(fn, input, target, weight, ignore_index):
    """Shapes, dtypes and range of class-index targets for an ``(N, C, d1, ...)`` input."""
    if not isinstance(target, Tensor):
        raise TypeError(f"{fn}(): argument 'target' must be Tensor, not {type(target).__name__}")
    if target.dtype not in (dt.int64, dt.int32):
        raise RuntimeError(f"{fn}(): expected class-index targets of dtype int64, but got "
                           f"{target.dtype.name} (target shape {tuple(target.shape)}, input shape "
                           f"{tuple(input.shape)})")
    if input.ndim == 0:
        raise ValueError(f"{fn}(): input must have at least 1 dimension (classes), got a 0-d input")
    classes = input.shape[0 if input.ndim == 1 else 1]
    expected = () if input.ndim == 1 else (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"{fn}(): expected a target of shape {expected} for an input of shape "
                         f"{tuple(input.shape)}, but got a target of shape {tuple(target.shape)}")
    if weight is not None and (weight.ndim != 1 or weight.shape[0] != classes):
        raise RuntimeError(f"{fn}(): weight tensor should be defined either for all {classes} "
                           f"classes or no classes but got weight tensor of shape: "
                           f"{list(weight.shape)}")
    data = target._data
    bad = (data < 0) | (data >= classes)
    bad &= data != ignore_index
    if bad.any():
        raise IndexError(f"{fn}(): Target {data[bad].flat[0]} is out of bounds: expected class "
                         f"indices in [0, {classes - 1}] for {classes} classes (or ignore_index="
                         f"{ignore_index})")
    return classes


def _rows(x):
    """``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)`` -> ``(rows, C)`` with classes last."""
    if x.ndim == 1:
        return apply("reshape", x, shape=(1, x.shape[0]))
    if x.ndim == 2:
        return x
    perm = (0,) + tuple(range(2, x.ndim)) + (1,)
    return apply("reshape", apply("permute", x, perm=perm),
                 shape=(x.numel() // x.shape[1], x.shape[1]))


def _nll(logp, target, reduction, ignore_index, out_shape, weight=None):
    """Picked negative log-likelihoods, weighted, ignoring ``ignore_index`` targets;
    unreduced losses come out in ``out_shape``."""
    rows = _rows(logp)
    t = apply("reshape", target, shape=(rows.shape[0],))
    valid = apply("ne", t, constant(ignore_index, t.dtype))
    safe = apply("where", valid, t, constant(0, t.dtype))
    picked = apply("gather", rows, apply("reshape", safe, shape=(rows.shape[0], 1)), axis=1)
    w = cast(valid, rows.dtype)
    if weight is not None:
        w = apply("mul", w, apply("index", weight, safe, spec=(("tensor",),)))
    losses = apply("mul", apply("neg", apply("reshape", picked, shape=(rows.shape[0],))), w)
    if reduction == "none":
        return apply("reshape", losses, shape=out_shape)
    total = apply("sum", losses, axes=(0,), keepdim=False)
    if reduction == "sum":
        return total
    return apply("div", total, apply("sum", w, axes=(0,), keepdim=False))


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of class indices given log-probabilities ``(N, C, d1, ...)``."""
    _check_input("nll_loss", input)
    reduction = _reduction(reduction, size_average, reduce)
    _check_class_target("nll_loss", input, target, weight, ignore_index)
    if weight is not None:
        weight = cast(weight, input.dtype)
    name = "NllLossBackward0" if input.ndim <= 2 else "NllLoss2DBackward0"
    # like ATen, K-dim inputs other than (N, C, H, W) give flat losses viewed back
    view_back = reduction == "none" and input.ndim not in (1, 2, 4)
    out_shape = (target.numel(),) if view_back else tuple(target.shape)
    loss = composite_call(name, _nll, input, target, reduction, ignore_index, out_shape,
                          weight=weight)
    if view_back:
        loss = apply("reshape", loss, shape=tuple(target.shape), grad_name="ViewBackward0")
    return loss


def _class_view(t, ndim, class_dim):
    return apply("reshape", t, shape=tuple(t.shape[0] if d == class_dim else 1
                                           for d in range(ndim)))


def _smoothed_indices_loss(logp, target, weight, ignore_index, reduction, smoothing, class_dim):
    """ATen's label smoothing for class indices: mix the NLL with the uniform-target loss."""
    classes = logp.shape[class_dim]
    nll = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    ignored = target == ignore_index
    scores = logp * _class_view(weight, logp.ndim, class_dim) if weight is not None else logp
    smooth = (-scores.sum(class_dim)).masked_fill(ignored, 0.0)
    if reduction == "mean":
        if weight is not None:
            safe = apply("where", ignored, constant(0, target.dtype), target)
            picked = apply("index", weight, safe, spec=(("tensor",),))
            denominator = picked.masked_fill(ignored, 0.0).sum()
        else:
            denominator = ignored.logical_not().sum()
        smooth = smooth.sum() / denominator
    elif reduction == "sum":
        smooth = smooth.sum()
    return (1 - smoothing) * nll + smooth * (smoothing / classes)


def _probability_loss(logp, target, weight, reduction, smoothing, class_dim):
    """Cross entropy against class probabilities (a soft target of the input's shape)."""
    classes = logp.shape[class_dim]
    if smoothing > 0:
        target = target * (1 - smoothing) + smoothing / classes
    product = logp * target
    if weight is not None:
        product = product * _class_view(weight, logp.ndim, class_dim)
    if reduction == "mean":
        return -product.sum() / (logp.numel() / classes)
    if reduction == "sum":
        return -product.sum()
    return -product.sum(class_dim)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """``nll_loss(log_softmax(input, 1), target)``, or against class probabilities when the
    target is floating point with the input's shape."""
    _check_input("cross_entropy", input)
    reduction = _reduction(reduction, size_average, reduce)
    if not isinstance(target, Tensor):
        raise TypeError(f"cross_entropy(): argument 'target' must be Tensor, not "
                        f"{type(target).__name__}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if input.ndim == 0:
        raise ValueError("cross_entropy(): input must have at least 1 dimension (classes)")
    class_dim = 0 if input.ndim == 1 else 1
    if weight is not None:
        weight = cast(weight, input.dtype)
    if target.dtype.is_floating_point:
        if tuple(target.shape) != tuple(input.shape):
            raise RuntimeError(
                f"cross_entropy(): got a {target.dtype.name} target of shape "
                f"{tuple(target.shape)} for an input of shape {tuple(input.shape)}. Class-index "
                f"targets must be int64; class-probability targets must be floating point with "
                f"the input's shape")
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        if weight is not None and tuple(weight.shape) != (input.shape[class_dim],):
            raise RuntimeError(f"cross_entropy(): weight of shape {tuple(weight.shape)} does not "
                               f"match the {input.shape[class_dim]} classes of the input")
        target = cast(target, input.dtype)
        return _probability_loss(log_softmax(input, class_dim), target, weight, reduction,
                                 label_smoothing, class_dim)
    if tuple(target.shape) == tuple(input.shape):
        raise RuntimeError(f"cross_entropy(): a target with the input's shape "
                           f"{tuple(input.shape)} holds class probabilities and must be floating "
                           f"point, got {target.dtype.name}")
    _check_class_target("cross_entropy", input, target, weight, ignore_index)
    if label_smoothing == 0 and input.ndim == 2 and input.numel() > 0 and \
            not tracing_hook.active():
        return _eager_cross_entropy(input, target, weight, ignore_index, reduction)
    logp = log_softmax(input, class_dim)
    if label_smoothing > 0:
        return _smoothed_indices_loss(logp, target, weight, ignore_index, reduction,
                                      label_smoothing, class_dim)
    return nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)


class _EagerLogSoftmaxBackward(Node):
    """``LogSoftmaxBackward0`` of the eager cross entropy: ``g - softmax * sum(g)`` from
    the saved output, in NumPy (or with recorded ops under ``create_graph``)."""

    def __init__(self, input, logp):
        super().__init__()
        self.next_functions = (edge_of(input),)
        self._saved = SavedTensor(logp, is_output=True)

    def name(self):
        return "LogSoftmaxBackward0"

    def apply(self, grads, create_graph):
        if self._saved is None:
            raise RuntimeError(FREED_MESSAGE)
        g = grads[0]
        if create_graph:
            out = self._saved.unpack(self, "LogSoftmaxBackward0", True)
            total = apply("sum", g, axes=(1,), keepdim=True)
            return (apply("sub", g, apply("mul", apply("exp", out), total)),)
        gd, logp = g._data, self._saved.data
        with np.errstate(all="ignore"):
            dx = gd - np.exp(logp) * np.sum(gd, axis=1, keepdims=True, dtype=logp.dtype)
        result = Tensor._make(np.asarray(dx, logp.dtype), g.dtype)
        result.__dict__["_owned"] = True   # a fresh array: .grad may keep it
        return (result,)

    def release(self):
        self._saved = None


class _EagerNllBackward(Node):
    """``NllLossBackward0`` of the eager cross entropy: the gradient is ``-g * w / W`` at
    each row's target class (``W`` the weight total for ``mean``), zero elsewhere."""

    def __init__(self, logp, rows, safe, coef, reduction):
        super().__init__()
        self.next_functions = (edge_of(logp),)
        self._shape, self._dtype = logp._data.shape, logp._data.dtype
        self._index = (rows, safe)
        self._coef = coef                  # per row: -w (sum, none) or -w / W (mean)
        self._reduction = reduction

    def name(self):
        return "NllLossBackward0"

    def apply(self, grads, create_graph):
        if self._coef is None:
            raise RuntimeError(FREED_MESSAGE)
        g = grads[0]
        if create_graph:     # linear in g: a constant matrix times g, recorded
            coef = np.zeros(self._shape, self._dtype)
            coef[self._index] = self._coef
            gv = g if self._reduction != "none" else apply("reshape", g, shape=(self._shape[0], 1))
            return (apply("mul", gv, constant_tensor(coef, g.dtype)),)
        gd = g._data if self._reduction != "none" else g._data.reshape(-1)
        dl = np.zeros(self._shape, self._dtype)
        with np.errstate(all="ignore"):
            dl[self._index] = np.asarray(gd * self._coef, self._dtype) + self._dtype.type(0)
        result = Tensor._make(dl, g.dtype)
        result.__dict__["_owned"] = True
        return (result,)

    def release(self):
        self._coef = None


def constant_tensor(array, dtype):
    return tracing_hook.on_create(Tensor._make(array, dtype))


def _eager_cross_entropy(input, target, weight, ignore_index, reduction):
    """``nll_loss(log_softmax(input, 1), target)`` for an ``(N, C)`` input in a few NumPy
    calls, with the same values as the composites (the same operations in the same order)
    and the same tape (``NllLossBackward0`` -> ``LogSoftmaxBackward0`` -> input), but
    closed-form backward nodes instead of replaying two inner tapes. Eager only: under
    the tracer the composites are recorded as usual."""
    x = input._data
    dt_np = x.dtype
    zero = dt_np.type(0)
    with np.errstate(all="ignore"):
        m = np.amax(x, axis=1, keepdims=True)
        z = x - np.where(m == dt_np.type(-np.inf), zero, m)
        logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True, dtype=dt_np))
        t = target._data.reshape(-1)
        valid = t != ignore_index
        safe = np.where(valid, t, t.dtype.type(0))
        rows = np.arange(x.shape[0])
        w = valid.astype(dt_np)
        if weight is not None:
            w = w * weight._data[safe]
        losses = np.negative(logp[rows, safe]) * w
        if reduction == "none":
            out, coef = losses, np.negative(w)
        else:
            out = np.sum(losses, axis=(0,), dtype=dt_np)
            coef = np.negative(w)
            if reduction == "mean":
                total_w = np.sum(w, axis=(0,), dtype=dt_np)
                out = out / total_w
                coef = coef / total_w
    result = Tensor._make(np.asarray(out, dt_np), input.dtype)
    if is_grad_enabled() and input._requires_grad:
        logp_t = Tensor._make(logp, input.dtype)
        logp_t._requires_grad, logp_t.grad_fn = True, _EagerLogSoftmaxBackward(input, logp_t)
        result._requires_grad = True
        result.grad_fn = _EagerNllBackward(logp_t, rows, safe, np.asarray(coef, dt_np), reduction)
    return result


# -- binary losses ---------------------------------------------------------------------------
def _clamped_log(x, positive):
    """``max(log(x), -100)``, PyTorch's BCE clamp, with a finite gradient where ``x == 0``
    (the log sees 1 there and its branch is discarded)."""
    safe = apply("where", positive, x, constant(1, x.dtype))
    logged = apply("clamp", apply("log", safe), lo=-100, hi=None)
    return apply("where", positive, logged, constant(-100, x.dtype))


def _bce(x, t, reduction, weight=None):
    zero, one = constant(0, x.dtype), constant(1, x.dtype)
    log_x = _clamped_log(x, apply("gt", x, zero))
    one_minus = apply("sub", one, x)
    log_1mx = _clamped_log(one_minus, apply("gt", one_minus, zero))
    loss = apply("neg", apply("add", apply("mul", t, log_x),
                              apply("mul", apply("sub", one, t), log_1mx)))
    if weight is not None:
        loss = apply("mul", loss, weight)
    return _reduce(loss, reduction)


def _check_unit_interval(name, t):
    data = t._data
    bad = ~((data >= 0) & (data <= 1))
    if bad.any():
        raise RuntimeError(f"binary_cross_entropy(): all elements of {name} should be between 0 "
                           f"and 1, got {data[bad].flat[0]}")


def _broadcast_weight(fn, weight, shape, dtype):
    try:
        full = np.broadcast_shapes(tuple(weight.shape), shape)
    except ValueError:
        full = None
    if full != shape:
        raise RuntimeError(f"{fn}(): weight of shape {tuple(weight.shape)} cannot be broadcast to "
                           f"the input's shape {shape}")
    return cast(weight, dtype)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """BCE on probabilities; each log is clamped to >= -100 as in PyTorch, so the loss stays
    finite at 0 and 1. (PyTorch's hand-written gradient also clamps ``x(1-x)`` to 1e-12;
    ours is the exact derivative, so they differ only for inputs within 1e-12 of 0 or 1.)"""
    _check_input("binary_cross_entropy", input)
    reduction = _reduction(reduction, size_average, reduce)
    _same_shape("binary_cross_entropy", input, target)
    _check_unit_interval("input", input)
    _check_unit_interval("target", target)
    target = cast(target, input.dtype)
    if weight is not None:
        weight = _broadcast_weight("binary_cross_entropy", weight, tuple(input.shape), input.dtype)
    return composite_call("BinaryCrossEntropyBackward0", _bce, input, target, reduction,
                          weight=weight)


def _bce_logits(x, t, reduction, weight=None, pos_weight=None):
    """``(1 - t) * x - w_pos * logsigmoid(x)``, with ``logsigmoid(x) = min(x, 0) -
    log1p(exp(-|x|))``: finite for any ``x``."""
    zero, one = constant(0, x.dtype), constant(1, x.dtype)
    log_sigmoid = apply("sub", apply("minimum", x, zero),
                        apply("log1p", apply("exp", apply("neg", apply("abs", x)))))
    if pos_weight is not None:
        log_weight = apply("add", apply("mul", apply("sub", pos_weight, one), t), one)
        log_sigmoid = apply("mul", log_sigmoid, log_weight)
    loss = apply("sub", apply("mul", apply("sub", one, t), x), log_sigmoid)
    if weight is not None:
        loss = apply("mul", loss, weight)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """BCE on logits, computed stably through ``logsigmoid``; ``pos_weight`` scales the
    positive term (broadcast along the last, class, dimension)."""
    _check_input("binary_cross_entropy_with_logits", input)
    reduction = _reduction(reduction, size_average, reduce)
    _same_shape("binary_cross_entropy_with_logits", input, target)
    if not target.dtype.is_floating_point:
        raise RuntimeError(f"binary_cross_entropy_with_logits(): expected a floating-point "
                           f"target, got {target.dtype.name}")
    target = cast(target, input.dtype)
    shape = tuple(input.shape)
    if weight is not None:
        weight = _broadcast_weight("binary_cross_entropy_with_logits", weight, shape, input.dtype)
    if pos_weight is not None:
        pos_weight = _broadcast_weight("binary_cross_entropy_with_logits", pos_weight, shape,
                                       input.dtype)
    return composite_call("BinaryCrossEntropyWithLogitsBackward0", _bce_logits, input, target,
                          reduction, weight=weight, pos_weight=pos_weight)
