"""``frontend.nn``: modules, layers and losses with PyTorch's names, parameters and init."""
from . import functional, init  # noqa: F401
from .parameter import Buffer, Parameter  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all

__all__ = ["functional", "init", "Parameter", "Buffer"] + list(_modules_all)
