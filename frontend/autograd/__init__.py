"""``frontend.autograd``: the dynamic tape and its public entry points."""
from __future__ import annotations

from .engine import run_backward
from .function import Function, FunctionCtx, once_differentiable
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck, gradgradcheck


def _as_list(x):
    if x is None:
        return None
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _make_grads(outputs, grad_outputs):
    from ..tensor import Tensor
    import numpy as np
    grads = []
    for i, out in enumerate(outputs):
        g = grad_outputs[i] if grad_outputs is not None and i < len(grad_outputs) else None
        if g is None:
            if out.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            if not out.dtype.is_floating_point:
                raise RuntimeError(f"grad can be implicitly created only for real scalar outputs "
                                   f"but got {out.dtype}")
            g = Tensor._make(np.ones(out.shape, out.dtype.np), out.dtype)
        elif not isinstance(g, Tensor):
            raise TypeError(f"gradient must be a Tensor, got {type(g).__name__}")
        elif tuple(g.shape) != tuple(out.shape):
            raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                               f"{tuple(g.shape)} and output[{i}] has a shape of {tuple(out.shape)}.")
        grads.append(g)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    tensors = _as_list(tensors)
    grads = _make_grads(tensors, _as_list(grad_tensors))
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        inputs = _as_list(inputs)
        captured = run_backward(tensors, grads, retain_graph=retain_graph,
                                create_graph=create_graph, inputs=inputs)
        from .graph import accumulate_into
        for t, g in zip(inputs, captured):
            if g is not None:
                accumulate_into(t, g, create_graph)
        return
    run_backward(tensors, grads, retain_graph=retain_graph, create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False, materialize_grads=False):
    outputs, inputs = _as_list(outputs), _as_list(inputs)
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors does not require grad "
                               f"(input {i})")
    grads = _make_grads(outputs, _as_list(grad_outputs))
    if retain_graph is None:
        retain_graph = create_graph
    result = run_backward(outputs, grads, retain_graph=retain_graph, create_graph=create_graph,
                          inputs=inputs)
    for i, g in enumerate(result):
        if g is None and not (allow_unused or materialize_grads):
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) appears to not have "
                               "been used in the graph. Set allow_unused=True if this is the "
                               "desired behavior.")
    if materialize_grads:
        from ..ops.creation import zeros_like
        result = [zeros_like(x) if g is None else g for x, g in zip(inputs, result)]
    return tuple(result)


def Variable(data, requires_grad=False, volatile=False):
    """The legacy wrapper: since PyTorch 0.4 it simply returns a Tensor."""
    from ..tensor import Tensor
    from ..ops.creation import tensor
    t = data.detach() if isinstance(data, Tensor) else tensor(data)  # a new leaf, same storage
    if requires_grad:
        t.requires_grad_(True)
    return t


__all__ = ["Function", "FunctionCtx", "Variable", "backward", "grad", "gradcheck", "gradgradcheck",
           "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "GradcheckError",
           "once_differentiable"]
