"""Stochastic gradient descent, optionally with (Nesterov) momentum."""

from __future__ import annotations

import numpy as np

from .. import tracing_hook
from .optimizer import Optimizer, _add_scaled, _plain_arrays

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, matching ``torch.optim.SGD`` (single-tensor path).

    For each parameter, with ``g`` the gradient (negated if ``maximize``)::

        g = g + weight_decay * p                       # if weight_decay != 0
        b = g                         on the first step # if momentum != 0
        b = momentum * b + (1 - dampening) * g  later
        g = g + momentum * b  if nesterov  else  b
        p = p - lr * g

    Note the first momentum step copies ``g`` without dampening; that is
    torch's convention and what checkpoints from torch assume.  The buffer is
    stored as ``state[p]['momentum_buffer']``.
    """

    _param_shaped_state = ("momentum_buffer",)

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        # ``foreach`` is accepted so torch code runs unchanged; Kiln always uses
        # the single-tensor algorithm (which is what torch's foreach=False runs).
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
        }
        super().__init__(params, defaults)

    def _validate_options(self, options) -> None:
        if options["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {options['lr']} (must be >= 0)")
        if options["momentum"] < 0.0:
            raise ValueError(f"Invalid momentum value: {options['momentum']} (must be >= 0)")
        if options["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {options['weight_decay']} (must be >= 0)")
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError(
                "Nesterov momentum requires a momentum and zero dampening "
                f"(got momentum={options['momentum']}, dampening={options['dampening']})"
            )

    def _step_group(self, group) -> None:
        lr = group["lr"]
        momentum = group["momentum"]
        dampening = group["dampening"]
        weight_decay = group["weight_decay"]
        nesterov = group["nesterov"]

        for param, grad in self._params_with_grad(group):
            if _numpy_update(self, param, grad, group):
                continue
            if group["maximize"]:
                grad = -grad
            if weight_decay != 0:
                grad = _add_scaled(grad, param, weight_decay)

            if momentum != 0:
                # Only touch self.state when there is something to store, so a
                # momentum-free SGD has an empty state (as in torch).
                state = self.state[param]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = grad.detach().clone()
                    state["momentum_buffer"] = buf
                else:
                    buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                grad = _add_scaled(grad, buf, momentum) if nesterov else buf

            param.add_(grad, alpha=-lr)


def _numpy_update(opt, param, grad, group) -> bool:
    """The update of one parameter straight on its NumPy arrays: the very operations the
    tensor path below performs (same order, same float32 rounding of the scalars), without
    a dispatch per op. Returns False (nothing done) when the tensor path is needed: under
    the tracer, or for a gradient the arrays cannot take as is (another dtype or shape, a
    read-only parameter, a gradient with history)."""
    arrays = _plain_arrays(param, grad)
    if arrays is None:
        return False
    p, g = arrays
    scalar = p.dtype.type
    momentum, weight_decay = group["momentum"], group["weight_decay"]
    if not all(type(group[k]) in (int, float) for k in ("lr", "momentum", "dampening",
                                                         "weight_decay")):
        return False
    buf_t = None
    if momentum != 0:
        buf_t = opt.state.get(param, {}).get("momentum_buffer")
        if buf_t is not None and (_plain_arrays(param, buf_t) is None or buf_t._base is not None
                                  or buf_t._views):
            return False
    if group["maximize"]:
        g = np.negative(g)
    if weight_decay != 0:
        g = g + p * scalar(weight_decay)
    if momentum != 0:
        if buf_t is None:
            buf_t = tracing_hook.on_create(type(param)._make(np.array(g, copy=True), param.dtype))
            opt.state[param]["momentum_buffer"] = buf_t
        else:
            buf = buf_t._data
            np.multiply(buf, momentum, out=buf, casting="unsafe")
            buf_t._version.bump()
            if group["dampening"] != 0:
                np.add(buf, g * scalar(1 - group["dampening"]), out=buf, casting="unsafe")
            else:
                np.add(buf, g, out=buf, casting="unsafe")
            buf_t._version.bump()
        g = g + buf_t._data * scalar(momentum) if group["nesterov"] else buf_t._data
    np.add(p, g * scalar(-group["lr"]), out=p, casting="unsafe")
    param._version.bump()
    return True
