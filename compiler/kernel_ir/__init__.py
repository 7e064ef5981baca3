"""The kernel IR: a backend-neutral description of generated kernels.

``index`` (symbolic addressing), ``expr`` (scalar expressions), ``kernels`` (the kernel
forms), ``simplify`` (loop collapsing) and ``printer`` (readable text). The LLVM printer
(``compiler.backends.llvm_printer``) is one consumer; an OpenCL printer is another.
"""
from . import expr, index, kernels  # noqa: F401
