"""Finite-difference gradient checking (float64), as ``torch.autograd.gradcheck``."""
from __future__ import annotations

import numpy as np

from .grad_mode import enable_grad, no_grad


class GradcheckError(RuntimeError):
    pass


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, **_ignored):
    """Compare every column of the analytical Jacobian with central differences."""
    from ..tensor import Tensor
    from . import grad
    inputs = _as_tuple(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    for i in diff:
        if inputs[i].dtype.name != "float64":
            import warnings
            warnings.warn(f"gradcheck: input {i} is {inputs[i].dtype}, not float64; finite "
                          "differences will be inaccurate")
    outputs = [o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor)]
    for oi, out in enumerate(outputs):
        if not out.requires_grad:
            continue
        n_out = out.numel()
        for i in diff:
            x = inputs[i]
            analytic = np.zeros((x.numel(), n_out))
            for j in range(n_out):
                g = np.zeros(n_out, out.dtype.np)
                g[j] = 1
                gt = Tensor._make(g.reshape(out.shape), out.dtype)
                fresh = _as_tuple(fn(*inputs))[oi]
                (gx,) = grad(fresh, x, gt, retain_graph=False, allow_unused=True)
                if gx is not None:
                    analytic[:, j] = gx._data.reshape(-1)
            numeric = np.zeros_like(analytic)
            data = x._data  # perturbed in place, element by element (any layout, even empty)
            for k, pos in enumerate(np.ndindex(*data.shape)):
                orig = data[pos]
                with no_grad():
                    data[pos] = orig + eps
                    plus = _as_tuple(fn(*inputs))[oi]._data.astype(np.float64).reshape(-1).copy()
                    data[pos] = orig - eps
                    minus = _as_tuple(fn(*inputs))[oi]._data.astype(np.float64).reshape(-1).copy()
                    data[pos] = orig
                numeric[k] = (plus - minus) / (2 * eps)
            if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
                k = np.unravel_index(np.argmax(np.abs(analytic - numeric)), analytic.shape)
                msg = (f"Jacobian mismatch for output {oi} with respect to input {i}:\n"
                       f"numerical:{numeric}\nanalytical:{analytic}\n(largest difference at "
                       f"{k}: {numeric[k]} vs {analytic[k]})")
                if raise_exception:
                    raise GradcheckError(msg)
                return False
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Check second derivatives: gradcheck of the function x -> d(sum(fn(x) * v))/dx."""
    from ..tensor import Tensor
    from . import grad
    inputs = _as_tuple(inputs)
    rng = np.random.default_rng(0)
    out0 = _as_tuple(fn(*inputs))[0]
    v = Tensor._make(rng.standard_normal(out0.shape).astype(out0.dtype.np), out0.dtype)

    def first_grads(*xs):
        with enable_grad():  # gradcheck's finite differences call this under no_grad
            out = _as_tuple(fn(*xs))[0]
            gs = grad(out, [x for x in xs if isinstance(x, Tensor) and x.requires_grad], v,
                      create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)
    return gradcheck(first_grads, inputs, eps, atol, rtol, raise_exception)
