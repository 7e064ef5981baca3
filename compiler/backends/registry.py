"""Backend lookup by name, with the clear error an unknown name deserves."""
from __future__ import annotations

BACKENDS = ("llvm", "opencl", "eager")


def compile_graph(graph, *, backend="llvm", fuse=True, debug=0):
    if backend == "eager":
        from .interpreter import InterpretedGraph
        return InterpretedGraph(graph)
    if backend == "llvm":
        from .llvm import compile_graph as llvm_compile
        return llvm_compile(graph, fuse=fuse, debug=debug)
    if backend == "opencl":
        raise NotImplementedError(
            "the OpenCL backend is not built yet (it arrives with its own issue); use "
            "backend='llvm' or backend='eager'")
    raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
