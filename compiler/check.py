"""``check=True``: every kernel against the reference interpretation of its own nodes.

Each kernel is checked in isolation: it is fed the values the compiled run actually
gave it, so a wrong kernel is found where it is, not three kernels downstream where its
error surfaces. The report names the kernel, its ops and the user's source lines.

``check="llvm"`` (any backend name) also compares the kernels with those of that
backend: the LLVM and OpenCL backends print the same kernel IR from the same fusion
plan, so their kernels correspond one to one, and the first kernel (in launch order)
whose outputs differ is reported with both values (``compare_backends``).
"""
from __future__ import annotations

import numpy as np

from .ops import REGISTRY


class KernelMismatch(AssertionError):
    pass


def _tolerance(dtype):
    return (1e-4, 1e-5) if dtype.itemsize <= 4 else (1e-9, 1e-11)


def check_kernels(executable, inputs, rtol=None, atol=None, against=None):
    """Run ``executable`` capturing every kernel output; compare each with the reference
    (and, with ``against="llvm"``, with that backend's kernels).

    Returns the outputs (so a checked call still produces its results); raises
    ``KernelMismatch`` at the first kernel that differs beyond tolerance.
    """
    graph = executable.graph
    outputs, produced = executable.run(inputs, capture=True)
    if against:
        compare_backends(executable, reference_executable(executable, against), inputs,
                         rtol, atol, produced=produced)
    env = dict(zip(graph.inputs, inputs))
    env.update(produced)
    nodes = graph.nodes
    for kernel in executable.kernels:
        local = {}

        def value(n):
            if n in local:
                return local[n]
            if nodes[n]["op"] == "const":
                return nodes[n]["attrs"]["value"]
            return env[n]
        with np.errstate(all="ignore"):
            for n in kernel.nodes:
                d = nodes[n]
                if d["op"] in ("input", "const"):
                    continue
                out = REGISTRY[d["op"]].ref(*(value(a) for a in d["args"]), **d["attrs"])
                local[n] = np.asarray(out).astype(d["dtype"].np, copy=False)
        for n in kernel.outputs:
            got, want = produced[n], local[n]
            r, a = _tolerance(nodes[n]["dtype"])
            r, a = rtol or r, atol or a
            same_shape = np.shape(got) == np.shape(want)
            if not same_shape or not np.allclose(got, want, rtol=r, atol=a, equal_nan=True):
                raise KernelMismatch(_report(graph, kernel, n, got, want, same_shape))
    return outputs


def _report(graph, kernel, node, got, want, same_shape):
    nodes = graph.nodes
    ops = ", ".join(f"%{n} {nodes[n]['op']}" for n in kernel.nodes
                    if nodes[n]["op"] not in ("input", "const"))
    locs = sorted({nodes[n]["loc"] for n in kernel.nodes if nodes[n].get("loc")})
    if same_shape:
        diff = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
        where = np.unravel_index(np.nanargmax(diff), diff.shape) if diff.size else ()
        detail = (f"largest difference {float(np.nanmax(diff)) if diff.size else 0:.3g} at index "
                  f"{tuple(int(i) for i in where)}: kernel gave {np.asarray(got)[where]!r}, "
                  f"reference {np.asarray(want)[where]!r}")
    else:
        detail = f"kernel output shape {np.shape(got)} but reference shape {np.shape(want)}"
    lines = "\n  ".join(locs) or "(no source location)"
    return (f"kernel {kernel.name!r} disagrees with the reference on node %{node} "
            f"({nodes[node]['op']}): {detail}\n  ops: {ops}\n  from:\n  {lines}")


def reference_executable(executable, backend):
    """``executable``'s graph compiled by ``backend`` (kept on the executable)."""
    refs = executable.__dict__.setdefault("_check_references", {})
    if backend not in refs:
        from .backends.registry import compile_graph
        refs[backend] = compile_graph(executable.graph, backend=backend,
                                      fuse=getattr(executable, "fuse", True))
    return refs[backend]


def compare_backends(executable, reference, inputs, rtol=None, atol=None, produced=None):
    """Run two executables of one graph capturing every kernel's outputs and raise
    ``KernelMismatch`` at the first kernel of ``executable`` (in launch order) whose
    outputs differ from ``reference``'s beyond tolerance. Returns ``executable``'s outputs."""
    if produced is None:
        outputs, produced = executable.run(inputs, capture=True)
    else:
        outputs = None
    _, theirs = reference.run(inputs, capture=True)
    graph = executable.graph
    names = {n: k.name for k in reference.kernels for n in k.outputs}
    for kernel in executable.kernels:
        for n in kernel.outputs:
            if n not in theirs or n not in produced:
                continue
            got, want = produced[n], theirs[n]
            r, a = _tolerance(graph.nodes[n]["dtype"])
            r, a = rtol or r, atol or a
            same_shape = np.shape(got) == np.shape(want)
            if not same_shape or not np.allclose(got, want, rtol=r, atol=a, equal_nan=True):
                detail = _report(graph, kernel, n, got, want, same_shape)
                raise KernelMismatch(detail.replace("the reference", f"kernel {names.get(n)!r} of "
                                                    f"the {_backend_name(reference)} backend")
                                     .replace("reference ", f"{_backend_name(reference)} ", 1))
    return outputs


def _backend_name(executable):
    return type(executable).__name__.replace("Executable", "").replace("Interpreted", "eager") \
        .lower() or "reference"
