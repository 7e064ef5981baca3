"""The compiler's IR: graphs of registry ops held in networkx."""
from .graph import Graph, Value
from .printer import to_dot, to_text
from .verify import VerificationError, verify

__all__ = ["Graph", "Value", "to_dot", "to_text", "verify", "VerificationError"]
