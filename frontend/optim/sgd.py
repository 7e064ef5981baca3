"""Stochastic gradient descent, optionally with (Nesterov) momentum."""

from __future__ import annotations

from .optimizer import Optimizer, _add_scaled

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
