"""Activation functions. Softmax-like ones are composites with a detached max, which keeps
them finite for any input while leaving the gradient exact."""
from __future__ import annotations

from compiler import dtypes
from ...composite import composite_call
from ...dispatch import apply
from ...ops import arith
from ...ops.shape import wrap_dim
from ...tensor import Tensor


def _softmax_dim(x, dim, name):
    if dim is None:
        # PyTorch's legacy implicit-dim rule
        dim = 0 if x.ndim in (0, 1, 3) else 1
    return wrap_dim(dim, x.ndim) if x.ndim else 0


def _as_float(x, dtype):
    if dtype is not None:
        return arith.cast(x, dtype)
    return x if x.dtype.is_floating_point else arith.cast(x, dtypes.default_float)


def _shifted(x, d):
    if x.ndim == 0:
        return x - x.detach()
    m = apply("amax", x.detach(), axes=(d,), keepdim=True)
    finite = apply("where", apply("eq", m, arith.constant(float("-inf"), x.dtype)),
                   arith.constant(0, x.dtype), m)
    return apply("sub", x, finite)


def _softmax_body(x, d):
    e = apply("exp", _shifted(x, d))
    if x.ndim == 0:
        return apply("div", e, e)
    return apply("div", e, apply("sum", e, axes=(d,), keepdim=True))


def _log_softmax_body(x, d):
    z = _shifted(x, d)
    if x.ndim == 0:
        return z
    return apply("sub", z, apply("log", apply("sum", apply("exp", z), axes=(d,), keepdim=True)))


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    x = _as_float(input, dtype)
    return composite_call("SoftmaxBackward0", _softmax_body, x, _softmax_dim(x, dim, "softmax"))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    x = _as_float(input, dtype)
    return composite_call("LogSoftmaxBackward0", _log_softmax_body, x,
                          _softmax_dim(x, dim, "log_softmax"))


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    return softmax(-_as_float(input, dtype), dim)


def relu(input, inplace=False):
    if inplace:
        return input.relu_()
    return apply("relu", input)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if inplace:
        return input.clamp_(min_val, max_val)
    return apply("clamp", input, lo=min_val, hi=max_val, grad_name="HardtanhBackward0")


def _leaky_relu_body(x, slope):
    return apply("where", apply("gt", x, arith.constant(0, x.dtype)), x,
                 apply("mul", x, arith.constant(slope, x.dtype)))


def leaky_relu(input, negative_slope=0.01, inplace=False):
    out = composite_call("LeakyReluBackward0", _leaky_relu_body, input, negative_slope)
    if inplace:
        from ...ops.inplace import inplace as _inplace
        return _inplace(input, lambda base: composite_call(
            "LeakyReluBackward1", _leaky_relu_body, base, negative_slope))
    return out


def _elu_body(x, alpha):
    neg = apply("mul", apply("sub", apply("exp", apply("minimum", x, arith.constant(0, x.dtype))),
                             arith.constant(1, x.dtype)), arith.constant(alpha, x.dtype))
    return apply("where", apply("gt", x, arith.constant(0, x.dtype)), x, neg)


def elu(input, alpha=1.0, inplace=False):
    return composite_call("EluBackward0", _elu_body, input, alpha)


def sigmoid(input):
    return arith.unary_float("sigmoid", input)


def tanh(input):
    return arith.unary_float("tanh", input)


def _softplus_body(x, beta, threshold):
    bx = apply("mul", x, arith.constant(beta, x.dtype))
    soft = apply("div", apply("log1p", apply("exp", apply("neg", apply("abs", bx)))),
                 arith.constant(beta, x.dtype))
    # maximum, not relu: its tie rule gives softplus'(0) = 1/2 exactly, as the true derivative
    positive = apply("maximum", bx, arith.constant(0, x.dtype))
    soft = apply("add", soft, apply("div", positive, arith.constant(beta, x.dtype)))
    return apply("where", apply("gt", bx, arith.constant(threshold, x.dtype)), x, soft)


def softplus(input, beta=1.0, threshold=20.0):
    return composite_call("SoftplusBackward0", _softplus_body, input, beta, threshold)


def _gelu_body(x, approximate):
    c = lambda v: arith.constant(v, x.dtype)  # noqa: E731
    if approximate == "tanh":
        inner = apply("mul", c(0.7978845608028654),
                      apply("add", x, apply("mul", c(0.044715), apply("mul", x, apply("mul", x, x)))))
        return apply("mul", apply("mul", c(0.5), x), apply("add", c(1), apply("tanh", inner)))
    erf = apply("erf", apply("mul", x, c(0.7071067811865476)))
    return apply("mul", apply("mul", c(0.5), x), apply("add", c(1), erf))


def gelu(input, approximate="none"):
    return composite_call("GeluBackward0", _gelu_body, input, approximate)


def silu(input, inplace=False):
    return composite_call("SiluBackward0", lambda x: apply("mul", x, apply("sigmoid", x)), input)


def logsigmoid(input):
    return composite_call("LogSigmoidBackward0",
                          lambda x: apply("neg", _softplus_body(apply("neg", x), 1.0, 20.0)), input)


def _check_tensor(name, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be Tensor, not {type(x).__name__}")
