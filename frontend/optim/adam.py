"""Adam and AdamW."""

from __future__ import annotations

import frontend

from .optimizer import Optimizer, _add_scaled, _increment_step, _new_step_tensor

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam, matching ``torch.optim.Adam`` (single-tensor, non-capturable path).

    Per parameter, at step ``t`` (``g`` negated if ``maximize``)::

        p   = p * (1 - lr * wd)             # decoupled_weight_decay (AdamW)
        g   = g + wd * p                    # otherwise, if wd != 0 (L2 penalty)
        m   = lerp(m, g, 1 - beta1)
        v   = beta2 * v + (1 - beta2) * g * g
        vmax = max(vmax, v)                 # amsgrad; then vmax replaces v below
        denom = sqrt(v) / sqrt(1 - beta2**t) + eps
        p   = p - lr / (1 - beta1**t) * m / denom

    The order of operations is torch's, so results agree to float32 rounding.
    State: ``step`` (float32 0-d tensor), ``exp_avg``, ``exp_avg_sq`` and, with
    amsgrad, ``max_exp_avg_sq``.
    """

    _param_shaped_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _validate_options(self, options) -> None:
        lr, eps, betas, wd = options["lr"], options["eps"], options["betas"], options["weight_decay"]
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr} (must be >= 0)")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps} (must be >= 0)")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {index}: {beta} (must be in [0, 1))")
        if not 0.0 <= wd:
            raise ValueError(f"Invalid weight_decay value: {wd} (must be >= 0)")

    def _step_group(self, group) -> None:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps = group["eps"]
        weight_decay = group["weight_decay"]
        amsgrad = group["amsgrad"]
        decoupled = group["decoupled_weight_decay"]

        for param, grad in self._params_with_grad(group):
            state = self.state[param]
            if len(state) == 0:
                state["step"] = _new_step_tensor()
                state["exp_avg"] = frontend.zeros_like(param)
                state["exp_avg_sq"] = frontend.zeros_like(param)
                if amsgrad:
                    state["max_exp_avg_sq"] = frontend.zeros_like(param)
            elif amsgrad and "max_exp_avg_sq" not in state:
                # amsgrad switched on mid-training (e.g. by editing the group):
                # torch would KeyError here; start the running max from zero.
                state["max_exp_avg_sq"] = frontend.zeros_like(param)
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

            if group["maximize"]:
                grad = -grad
            step = _increment_step(state["step"])

            if weight_decay != 0:
                if decoupled:
                    param.mul_(1 - lr * weight_decay)
                else:
                    grad = _add_scaled(grad, param, weight_decay)

            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr / bias_correction1
            bias_correction2_sqrt = bias_correction2**0.5

            if amsgrad:
                max_exp_avg_sq = state["max_exp_avg_sq"]
                max_exp_avg_sq.copy_(frontend.maximum(max_exp_avg_sq, exp_avg_sq))
                denom = (max_exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            else:
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)

            param.addcdiv_(exp_avg, denom, value=-step_size)


class AdamW(Adam):
    r"""Adam with decoupled weight decay, matching ``torch.optim.AdamW``.

    Weight decay shrinks the parameter directly (``p *= 1 - lr * wd``) instead
    of being added to the gradient, so it is not rescaled by the adaptive
    denominator.  Default ``weight_decay`` is 1e-2, as in torch.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            decoupled_weight_decay=True,
        )

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        # A checkpoint from plain Adam must not turn this back into L2 decay.
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
