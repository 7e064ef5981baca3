"""Adagrad and Adadelta: per-coordinate step sizes from accumulated squared gradients."""

from __future__ import annotations

import frontend

from .optimizer import Optimizer, _add_scaled, _increment_step, _new_step_tensor

__all__ = ["Adagrad", "Adadelta"]


class Adagrad(Optimizer):
    r"""Adagrad, matching ``torch.optim.Adagrad`` (dense, single-tensor path).

    Per parameter at step ``t`` (``g`` negated if ``maximize``)::

        g = g + weight_decay * p                  # if weight_decay != 0
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (sqrt(s) + eps)

    As in torch, the state (``step`` = 0 and ``sum`` filled with
    ``initial_accumulator_value``) is created in the constructor, so
    ``state_dict()`` is complete before the first step.  Groups added later are
    initialised on their first step, from their own ``initial_accumulator_value``.
    """

    _param_shaped_state = ("sum",)

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
        }
        super().__init__(params, defaults)
        with frontend.no_grad():
            for group in self.param_groups:
                for param in group["params"]:
                    self._init_state(param, group)

    def _init_state(self, param, group) -> None:
        state = self.state[param]
        state["step"] = _new_step_tensor()
        state["sum"] = frontend.zeros_like(param).fill_(group["initial_accumulator_value"])

    def _validate_options(self, options) -> None:
        for key, label in (
            ("lr", "learning rate"),
            ("lr_decay", "lr_decay value"),
            ("weight_decay", "weight_decay value"),
            ("initial_accumulator_value", "initial_accumulator_value value"),
            ("eps", "epsilon value"),
        ):
            if not 0.0 <= options[key]:
                raise ValueError(f"Invalid {label}: {options[key]} (must be >= 0)")

    def _step_group(self, group) -> None:
        lr = group["lr"]
        lr_decay = group["lr_decay"]
        eps = group["eps"]
        weight_decay = group["weight_decay"]

        for param, grad in self._params_with_grad(group):
            state = self.state[param]
            if len(state) == 0:
                self._init_state(param, group)
            step = _increment_step(state["step"])
            if group["maximize"]:
                grad = -grad
            if weight_decay != 0:
                grad = _add_scaled(grad, param, weight_decay)

            clr = lr / (1 + (step - 1) * lr_decay)
            state_sum = state["sum"]
            state_sum.addcmul_(grad, grad, value=1)
            std = state_sum.sqrt().add_(eps)
            param.addcdiv_(grad, std, value=-clr)


class Adadelta(Optimizer):
    r"""Adadelta, matching ``torch.optim.Adadelta`` (single-tensor path).

    Per parameter (``g`` negated if ``maximize``)::

        g = g + weight_decay * p                        # if weight_decay != 0
        v = rho * v + (1 - rho) * g * g
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta

    State: ``step``, ``square_avg`` (v) and ``acc_delta`` (u).
    """

    _param_shaped_state = ("square_avg", "acc_delta")

    def __init__(
        self,
        params,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "foreach": foreach,
        }
        super().__init__(params, defaults)

    def _validate_options(self, options) -> None:
        if not 0.0 <= options["lr"]:
            raise ValueError(f"Invalid learning rate: {options['lr']} (must be >= 0)")
        if not 0.0 <= options["rho"] <= 1.0:
            raise ValueError(f"Invalid rho value: {options['rho']} (must be in [0, 1])")
        if not 0.0 <= options["eps"]:
            raise ValueError(f"Invalid epsilon value: {options['eps']} (must be >= 0)")
        if not 0.0 <= options["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {options['weight_decay']} (must be >= 0)")

    def _step_group(self, group) -> None:
        lr = group["lr"]
        rho = group["rho"]
        eps = group["eps"]
        weight_decay = group["weight_decay"]

        for param, grad in self._params_with_grad(group):
            state = self.state[param]
            if len(state) == 0:
                state["step"] = _new_step_tensor()
                state["square_avg"] = frontend.zeros_like(param)
                state["acc_delta"] = frontend.zeros_like(param)
            square_avg, acc_delta = state["square_avg"], state["acc_delta"]

            _increment_step(state["step"])
            if group["maximize"]:
                grad = -grad
            if weight_decay != 0:
                grad = _add_scaled(grad, param, weight_decay)

            square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
            std = (square_avg + eps).sqrt_()
            delta = (acc_delta + eps).sqrt_()
            delta.div_(std).mul_(grad)
            acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
            param.add_(delta, alpha=-lr)
