"""Backend lookup by name, with the clear error an unknown name deserves."""
from __future__ import annotations

BACKENDS = ("llvm", "opencl", "eager")


def check_backend(backend):
    """Raise at ``compile()`` time, not at the first call, when ``backend`` cannot run
    here: an unknown name lists the valid ones; ``"opencl"`` without a usable device says
    what to install (``runtime.opencl_device.OpenCLUnavailableError``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend == "opencl":
        from runtime.opencl_device import device
        device()


def compile_graph(graph, *, backend="llvm", fuse=True, debug=0):
    if backend == "eager":
        from .interpreter import InterpretedGraph
        return InterpretedGraph(graph)
    if backend == "llvm":
        from .llvm import compile_graph as llvm_compile
        return llvm_compile(graph, fuse=fuse, debug=debug)
    if backend == "opencl":
        from .opencl import compile_graph as opencl_compile
        return opencl_compile(graph, fuse=fuse, debug=debug)
    raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
