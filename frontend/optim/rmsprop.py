"""RMSprop."""

from __future__ import annotations

import frontend

from .optimizer import Optimizer, _add_scaled, _increment_step, _new_step_tensor

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop, matching ``torch.optim.RMSprop`` (single-tensor path).

    Per parameter (``g`` negated if ``maximize``)::

        g = g + weight_decay * p                          # if weight_decay != 0
        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v - ga * ga) + eps  with ga = lerp(ga, g, 1 - alpha)   # centered
        avg = sqrt(v) + eps                                              # otherwise
        b = momentum * b + g / avg;  p = p - lr * b        # if momentum > 0
        p = p - lr * g / avg                              # otherwise

    Unlike Adam there is no bias correction, so ``step`` is only bookkeeping
    (kept for torch-compatible checkpoints).  State: ``step``, ``square_avg``,
    ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered).
    """

    _param_shaped_state = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "foreach": foreach,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate_options(self, options) -> None:
        for key, label in (
            ("lr", "learning rate"),
            ("eps", "epsilon value"),
            ("momentum", "momentum value"),
            ("weight_decay", "weight_decay value"),
            ("alpha", "alpha value"),
        ):
            if not 0.0 <= options[key]:
                raise ValueError(f"Invalid {label}: {options[key]} (must be >= 0)")

    def _step_group(self, group) -> None:
        lr = group["lr"]
        alpha = group["alpha"]
        eps = group["eps"]
        weight_decay = group["weight_decay"]
        momentum = group["momentum"]
        centered = group["centered"]

        for param, grad in self._params_with_grad(group):
            state = self.state[param]
            if len(state) == 0:
                state["step"] = _new_step_tensor()
                state["square_avg"] = frontend.zeros_like(param)
            # Created on demand (not only on the first step) so that turning on
            # momentum / centered for a group mid-training works.
            if momentum > 0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = frontend.zeros_like(param)
            if centered and "grad_avg" not in state:
                state["grad_avg"] = frontend.zeros_like(param)

            if group["maximize"]:
                grad = -grad
            square_avg = state["square_avg"]
            _increment_step(state["step"])

            if weight_decay != 0:
                grad = _add_scaled(grad, param, weight_decay)

            square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)

            if centered:
                grad_avg = state["grad_avg"]
                grad_avg.lerp_(grad, 1 - alpha)
                avg = square_avg.clone().addcmul_(grad_avg, grad_avg, value=-1).sqrt_()
            else:
                avg = square_avg.sqrt()
            avg = avg.add_(eps)

            if momentum > 0:
                buf = state["momentum_buffer"]
                buf.mul_(momentum).addcdiv_(grad, avg)
                param.add_(buf, alpha=-lr)
            else:
                param.addcdiv_(grad, avg, value=-lr)
