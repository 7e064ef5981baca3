"""The op registry and every primitive op, grouped by kind.

Importing this package registers all primitives; ``REGISTRY`` maps names to ``OpDef``.
"""
from .registry import REGISTRY, OpDef, OpError, Spec, check_registry, defop, get
from .emitter import Emitter
from . import elementwise, reduce, movement, indexing, linalg, window  # noqa: F401  (registers ops)

check_registry()
from . import codegen  # noqa: E402,F401  (fills each OpDef.expr: the code-generation rules)

__all__ = ["REGISTRY", "OpDef", "OpError", "Spec", "Emitter", "defop", "get"]
