"""Whether operations are recorded on the autograd tape (``no_grad`` and friends)."""
from __future__ import annotations

import functools
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def _set(flag: bool):
    _state.enabled = bool(flag)


class _GradModeContext:
    """Usable as a context manager and as a decorator, as in PyTorch."""

    flag = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set(self.flag)

    def __exit__(self, *exc):
        _set(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradModeContext):
    flag = False


class enable_grad(_GradModeContext):
    flag = True


class set_grad_enabled(_GradModeContext):
    def __init__(self, mode: bool):
        self.flag = bool(mode)
        self._prev = is_grad_enabled()
        _set(self.flag)  # like PyTorch, also works as a plain function call

    def __enter__(self):
        pass

    def __call__(self, fn):
        _set(self._prev)
        mode = self.flag

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper
