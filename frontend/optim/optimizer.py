"""The optimizer base class shared by every algorithm in ``frontend.optim``.

It mirrors ``torch.optim.Optimizer``: parameter groups, per-parameter
``state``, ``zero_grad``, ``step(closure)`` and a ``state_dict`` with torch's
layout, so that training loops written for PyTorch run unchanged.

Subclasses supply two things:

* ``_validate_options(options)`` -- raise ``ValueError`` for bad
  hyperparameters.  It runs on the constructor's defaults *and* on every
  parameter group, so a bad per-group override (``{'params': ..., 'lr': -1}``)
  is caught when the group is added rather than producing NaNs later.
* ``_step_group(group)`` -- update the parameters of one group.  The base
  class calls it under ``frontend.no_grad()`` and only after the closure (if
  any) ran, so implementations are plain sequences of in-place tensor ops.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Callable

import frontend

__all__ = ["Optimizer"]


def _tensor_type():
    # Looked up lazily: ``frontend/__init__.py`` may import this package while
    # it is still being initialised, before ``frontend.Tensor`` exists.
    return frontend.Tensor


def _is_tensor(value: Any) -> bool:
    return isinstance(value, _tensor_type())


def _is_leaf(t) -> bool:
    if hasattr(t, "is_leaf"):
        return bool(t.is_leaf)
    return getattr(t, "grad_fn", None) is None


def _clone_tensor(t):
    """A fresh tensor with ``t``'s values that shares nothing with ``t``."""
    return t.detach().clone()


def _deep_copy(value: Any) -> Any:
    """Deep copy of optimizer state: tensors are cloned, containers rebuilt.

    ``copy.deepcopy`` is not used on tensors because it would also copy autograd
    bookkeeping; optimizer state only ever needs the values.
    """
    if _is_tensor(value):
        return _clone_tensor(value)
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_deep_copy(v) for v in value)
    return copy.deepcopy(value)


class _ParamState(MutableMapping):
    """``optimizer.state``: a dict keyed by parameter *identity*.

    Tensors overload ``==`` elementwise, so using them as ordinary dict keys
    relies on ``__hash__``/``__eq__`` details of the Tensor class.  Keying by
    ``id()`` (while holding a reference to the key so the id stays valid) gives
    the semantics an optimizer needs regardless of how Tensor defines equality.

    Like torch's ``defaultdict(dict)``, ``state[p]`` creates an empty dict for
    a parameter seen for the first time; ``p in state`` and ``state.get(p)``
    do not create anything.
    """

    def __init__(self, items: Iterable[tuple[Any, dict]] = ()):
        self._entries: dict[int, tuple[Any, dict]] = {}
        for key, value in items:
            self[key] = value

    def __getitem__(self, key):
        entry = self._entries.get(id(key))
        if entry is None:
            value: dict = {}
            self._entries[id(key)] = (key, value)
            return value
        return entry[1]

    def get(self, key, default=None):
        entry = self._entries.get(id(key))
        return default if entry is None else entry[1]

    def __setitem__(self, key, value) -> None:
        self._entries[id(key)] = (key, value)

    def __delitem__(self, key) -> None:
        del self._entries[id(key)]

    def __contains__(self, key) -> bool:
        return id(key) in self._entries

    def __iter__(self):
        return (key for key, _ in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def items(self):
        return [(key, value) for key, value in self._entries.values()]

    def values(self):
        return [value for _, value in self._entries.values()]

    # ids are only meaningful inside one process, so pickling / deepcopy go
    # through the (key, value) pairs and rebuild the id index afterwards.
    def __getstate__(self):
        return list(self._entries.values())

    def __setstate__(self, pairs):
        self._entries = {}
        for key, value in pairs:
            self._entries[id(key)] = (key, value)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"<param {id(k):#x}>: {v!r}" for k, v in self._entries.values()) + "}"


class Optimizer:
    """Base class for all optimizers (same contract as ``torch.optim.Optimizer``).

    Args:
        params: an iterable of Tensors, or of dicts each holding ``'params'``
            plus per-group overrides of the defaults.
        defaults: default hyperparameters, used for any key a group omits.
    """

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self._validate_options(self.defaults)
        if _is_tensor(params):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of "
                f"Tensors or dicts, but got a single {type(params).__name__}"
            )
        if isinstance(params, Mapping):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of "
                "Tensors or dicts, but got a dict; wrap a single param group in a list"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but "
                "the ordering of tensors in sets will change between runs. Please use a list instead."
            )
        self.state: _ParamState = _ParamState()
        self.param_groups: list[dict[str, Any]] = []

        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    # ------------------------------------------------------------------ hooks
    def _validate_options(self, options: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` if a hyperparameter in ``options`` is invalid."""

    def _step_group(self, group: dict[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError

    # ---------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        # Only the data, like torch: a scheduler may have wrapped ``step`` on the
        # instance, and that wrapper (holding a weakref) must not be pickled.
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group.keys()):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    # ------------------------------------------------------------ param groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters, e.g. layers unfrozen while fine-tuning.

        Missing hyperparameters are filled from ``defaults``.  The group is
        validated completely before anything is modified, so a rejected group
        leaves the optimizer as it was.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")

        params = param_group["params"]
        if _is_tensor(params):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but "
                "the ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)

        # torch also accepts (name, tensor) pairs, e.g. from named_parameters().
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names:
            if len(names) != len(params):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are missing"
                )
            params = [p[1] for p in params]

        for index, param in enumerate(params):
            if not _is_tensor(param):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params "
                    f"(index {index}) is {type(param).__name__}"
                )
            if not (_is_leaf(param) or getattr(param, "retains_grad", False)):
                raise ValueError(
                    f"can't optimize a non-leaf Tensor (param index {index}); optimize the leaf "
                    "tensor it was computed from, or call .detach().requires_grad_() on it"
                )

        seen: dict[int, int] = {}
        for index, param in enumerate(params):
            if id(param) in seen:
                raise ValueError(
                    f"parameter at index {index} of the param group is the same tensor as "
                    f"the one at index {seen[id(param)]}; each parameter may appear only once"
                )
            seen[id(param)] = index
        for group_index, group in enumerate(self.param_groups):
            if any(id(p) in seen for p in group["params"]):
                raise ValueError(
                    "some parameters appear in more than one parameter group "
                    f"(already in param group {group_index})"
                )
            if ("param_names" in group) != bool(names):
                raise ValueError(
                    "all optimizer param groups should be with/without names. cannot add param group "
                    + ("with names" if names else "without names")
                    + " to the optimizer"
                )

        new_group = dict(param_group)
        new_group["params"] = params
        if names:
            new_group["param_names"] = names
        for name, default in self.defaults.items():
            new_group.setdefault(name, default)
        self._validate_options(new_group)
        self.param_groups.append(new_group)

    # ------------------------------------------------------------ training API
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized parameters.

        With ``set_to_none=True`` (the default, as in torch) gradients become
        ``None``, which saves memory and makes ``step`` skip parameters that
        received no gradient; otherwise they are zeroed in place.
        """
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                if getattr(grad, "grad_fn", None) is not None or getattr(grad, "requires_grad", False):
                    # A grad produced with create_graph=True: drop its history
                    # before zeroing so the zeroing is not recorded.
                    grad = grad.detach()
                    p.grad = grad
                with frontend.no_grad():
                    grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None):
        """Perform one optimization step and return the closure's loss (or None).

        The closure re-evaluates the model and calls ``backward()``, so it runs
        with gradients enabled even if ``step`` itself is called under
        ``no_grad``.  Parameter updates run under ``no_grad`` so they are not
        recorded by autograd, but use in-place ops so version counters see them.
        """
        loss = None
        if closure is not None:
            enable_grad = getattr(frontend, "enable_grad", None)
            if enable_grad is not None:
                with enable_grad():
                    loss = closure()
            else:
                loss = closure()
        with frontend.no_grad():
            for group in self.param_groups:
                self._step_group(group)
        return loss

    @staticmethod
    def _params_with_grad(group: dict[str, Any]):
        """(param, grad) pairs of a group; parameters without a gradient are skipped, as in torch."""
        return [(p, p.grad) for p in group["params"] if p.grad is not None]

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Return the optimizer state in torch's layout.

        ``{'state': {0: {...}, 1: {...}}, 'param_groups': [{..., 'params': [0, 1]}]}``
        Parameters are replaced by integer ids (their position across all groups),
        because tensors cannot be matched by identity after a save/load.

        As in torch, the state tensors are *references* to the live state (no
        copy is made); ``copy.deepcopy`` the result to snapshot it in memory.
        ``load_state_dict`` always copies.
        """
        param_ids: dict[int, int] = {}
        packed_groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                param_ids.setdefault(id(p), len(param_ids))
            packed["params"] = [param_ids[id(p)] for p in group["params"]]
            packed_groups.append(packed)
        packed_state = {}
        for param, value in self.state.items():
            key = param_ids.get(id(param))
            if key is None:  # state for an object that is no longer optimized
                continue
            packed_state[key] = dict(value)
        packed_state = dict(sorted(packed_state.items()))
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load state produced by :meth:`state_dict`.

        The saved groups are matched to this optimizer's groups by position, and
        the saved ids to parameters by position inside those groups, exactly as
        torch does.  Everything is validated and copied first; only then is the
        optimizer updated, so on any error the optimizer is unchanged.  The
        loaded tensors are deep copies: later changes to ``state_dict`` do not
        leak into the optimizer and vice versa.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, but got {type(state_dict).__name__}")
        missing = [k for k in ("state", "param_groups") if k not in state_dict]
        if missing:
            raise ValueError(f"optimizer state_dict is missing the key(s) {missing}")
        saved_groups = state_dict["param_groups"]
        saved_state = state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)):
            raise ValueError("state_dict['param_groups'] must be a list of dicts")
        if not isinstance(saved_state, Mapping):
            raise ValueError("state_dict['state'] must be a dict keyed by parameter id")

        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                "loaded state dict has a different number of parameter groups "
                f"({len(saved_groups)}) than the optimizer ({len(self.param_groups)})"
            )
        for index, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if not isinstance(saved, Mapping) or "params" not in saved:
                raise ValueError(f"loaded param group {index} is not a dict with a 'params' entry")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"loaded state dict contains a parameter group (index {index}) with "
                    f"{len(saved['params'])} parameters that doesn't match the size of "
                    f"optimizer's group ({len(group['params'])} parameters)"
                )

        id_to_param: dict[Any, Any] = {}
        for saved, group in zip(saved_groups, self.param_groups):
            for saved_id, param in zip(saved["params"], group["params"]):
                if saved_id in id_to_param:
                    raise ValueError(f"parameter id {saved_id!r} appears twice in the loaded param_groups")
                id_to_param[saved_id] = param

        new_state = _ParamState()
        for saved_id, param_state in saved_state.items():
            if saved_id not in id_to_param:
                raise ValueError(
                    f"loaded state has an entry for parameter id {saved_id!r}, "
                    "which is not in any loaded param group"
                )
            if not isinstance(param_state, Mapping):
                raise ValueError(f"loaded state for parameter id {saved_id!r} must be a dict")
            param = id_to_param[saved_id]
            new_state[param] = self._load_param_state(param, saved_id, param_state)

        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            new_group = {k: _deep_copy(v) for k, v in saved.items() if k != "params"}
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            for name, default in self.defaults.items():
                new_group.setdefault(name, default)
            self._validate_options(new_group)
            new_groups.append(new_group)

        # Commit: nothing above touched self.
        self.state = new_state
        self.param_groups = new_groups

    # Per-parameter state entries that must have the parameter's shape.  Checked
    # on load so that a checkpoint from a different model fails loudly instead of
    # broadcasting silently.
    _param_shaped_state: tuple[str, ...] = ()

    def _load_param_state(self, param, saved_id, param_state: Mapping[str, Any]) -> dict:
        loaded = {k: _deep_copy(v) for k, v in param_state.items()}
        for key in self._param_shaped_state:
            value = loaded.get(key)
            if value is not None and _is_tensor(value) and tuple(value.shape) != tuple(param.shape):
                raise ValueError(
                    f"loaded state '{key}' for parameter id {saved_id!r} has shape "
                    f"{tuple(value.shape)}, but the parameter has shape {tuple(param.shape)}"
                )
        # Older checkpoints (and hand-written ones) may store 'step' as a number.
        if "step" in loaded and not _is_tensor(loaded["step"]):
            loaded["step"] = frontend.tensor(float(loaded["step"]))
        return loaded


def _new_step_tensor():
    """The per-parameter step counter: a float32 0-d tensor, as in torch."""
    return frontend.tensor(0.0)


def _increment_step(step_t) -> float:
    """Advance a step counter in place and return its new value as a Python float.

    The bias corrections are then computed in double precision on the host,
    exactly like torch's default (non-capturable) code path.
    """
    step_t.add_(1)
    return float(step_t.item())


def _add_scaled(a, b, alpha: float):
    """``a + alpha * b`` as a new tensor (torch's ``a.add(b, alpha=alpha)``)."""
    return a.clone().add_(b, alpha=alpha)



def _plain_arrays(param, grad):
    """``(param array, grad array)`` when an update may work on the arrays directly: not
    tracing (the tracer must see in-place tensor ops), the same dtype and shape, a
    writable parameter and a gradient without autograd history; else None."""
    from .. import tracing_hook
    if tracing_hook.active():
        return None
    p, g = param._data, grad._data
    if grad.dtype != param.dtype or g.shape != p.shape or not p.flags.writeable or \
            grad._requires_grad or not param.dtype.is_floating_point:
        return None
    return p, g
