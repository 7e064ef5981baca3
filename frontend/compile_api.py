"""``frontend.compile``: trace a Module or function once per input signature, compile the
graph, and run the compiled code on later calls.

The life of a call (see ARCHITECTURE.md): flatten the arguments -> signature (shapes,
dtypes, requires_grad flags, Python values, train/eval mode, grad mode) -> cache lookup.
A miss runs the function eagerly under the tracer (so the first call's results are
ordinary eager results), then builds the forward graph, adds the backward graph with the
registry's gradient rules (plus any custom Function's own backward), partitions, runs the
optimisation passes and hands both graphs to the backend. A hit feeds the current
arguments, parameters, buffers and fresh random draws to the compiled forward, writes
mutated buffers back, and gives the outputs one ``grad_fn`` that runs the compiled
backward.
"""
from __future__ import annotations

import os
import warnings
from collections import OrderedDict, namedtuple


from compiler.backends.registry import check_backend
from runtime import debug
from .autograd.grad_mode import is_grad_enabled
from .call_signature import describe_change, flatten, tensor_key, unflatten
from .compiled_graph import GraphEntry
from .tensor import Tensor
from .nn.modules.module import STRUCTURE_VERSION
from .tracer import TraceBreak, Tracer

CacheInfo = namedtuple("CacheInfo", ["hits", "misses", "size"])
MAX_CACHED_GRAPHS = 16
RECOMPILE_WARNING_AFTER = 8


def compile(model_or_function=None, *, backend="llvm", fuse=True, fullgraph=False,
            check=False, **_unused):
    """Return a compiled callable (see API.md). Usable as ``@frontend.compile`` too."""
    check_backend(backend)      # unknown name, or "opencl" without a usable device
    if model_or_function is None:
        return lambda fn: compile(fn, backend=backend, fuse=fuse, fullgraph=fullgraph,
                                  check=check)
    from .nn.modules.module import Module
    options = dict(backend=backend, fuse=fuse, fullgraph=fullgraph, check=check)
    if isinstance(model_or_function, Module):
        return CompiledModule(model_or_function, **options)
    if not callable(model_or_function):
        raise TypeError(f"compile expects an nn.Module or a function, got "
                        f"{type(model_or_function).__name__}")
    return CompiledFunction(model_or_function, **options)


class CompiledFunction:
    def __init__(self, fn, *, backend, fuse, fullgraph, check, module=None):
        self._fn, self._module = fn, module
        self._options = dict(backend=backend, fuse=fuse, fullgraph=fullgraph, check=check)
        self._cache = OrderedDict()
        self._hits = self._misses = 0
        self._warned_recompiles = False
        self._warned_fallback = set()
        self._name = getattr(fn, "__qualname__", type(fn).__name__)
        self._structure = None  # STRUCTURE_VERSION when _slots/_modules were collected

    def cache_info(self):
        return CacheInfo(self._hits, self._misses, sum(
            1 for e in self._cache.values() if isinstance(e, GraphEntry)))

    def kernel_count(self):
        """Kernels launched per call (forward + backward) by the most recently used graph."""
        for entry in reversed(self._cache.values()):
            if isinstance(entry, GraphEntry):
                return entry.kernels
        return 0

    def _state(self):
        """Parameters and buffers of the module (graph inputs, read at every call) and the
        mode flags that belong in the signature. The walk over the module tree is cached
        until some module's members change (``STRUCTURE_VERSION``)."""
        if self._module is None:
            return [], ()
        if self._structure != STRUCTURE_VERSION[0]:
            slots, modules = [], []
            for mod_name, mod in self._module.named_modules():
                modules.append(mod)
                for store in (mod._parameters, mod._buffers):
                    for name, t in store.items():
                        if t is not None:
                            slots.append((t, store, name, f"{mod_name}.{name}".lstrip(".")))
            old = [t for t, *_ in getattr(self, "_slots", slots)]
            if len(old) != len(slots) or any(a is not b for a, (b, *_) in zip(old, slots)):
                if self._cache:
                    debug.log(1, f"compile {self._name}: parameters or buffers were replaced "
                                 "or added; dropping its compiled graphs")
                self._cache.clear()   # the graphs read the old tensors: trace again
            self._slots, self._modules = slots, modules
            self._structure = STRUCTURE_VERSION[0]
        modes = tuple(m.training for m in self._modules)
        flags = tuple(t.requires_grad for t, *_ in self._slots)
        return self._slots, (modes, is_grad_enabled(), flags)

    def __call__(self, *args, **kwargs):
        if os.environ.get("KILN_EAGER") == "1":
            return self._fn(*args, **kwargs)
        tensors = []
        skeleton = flatten((args, kwargs), tensors)
        slots, mode = self._state()
        key = (tuple(tensor_key(t) for t in tensors), skeleton, mode)
        entry = self._cache.get(key)
        if entry is not None:
            self._hits += 1
            self._cache.move_to_end(key)
            if entry == "eager":
                return self._fn(*args, **kwargs)
            outputs = entry.run(tensors)
            return unflatten(entry.skeleton, outputs)
        self._misses += 1
        self._explain_miss(key)
        return self._trace_and_compile(key, args, kwargs, tensors, slots)

    def _explain_miss(self, key):
        reason = "first call" if not self._cache else describe_change(
            next(reversed(self._cache)), key, [f"input {i}" for i in range(len(key[0]))])
        debug.log(1, f"compile {self._name}: cache miss ({reason})")
        if self._misses > RECOMPILE_WARNING_AFTER and not self._warned_recompiles:
            self._warned_recompiles = True
            warnings.warn(f"{self._name} has been recompiled {self._misses} times; the latest "
                          f"reason: {reason}. Keep input shapes fixed (pad batches) to reuse "
                          "compiled graphs.", RuntimeWarning, stacklevel=3)

    def _trace_and_compile(self, key, args, kwargs, tensors, slots):
        import time
        start = time.perf_counter()
        tracer = Tracer(self._name)
        tracer.fullgraph = self._options["fullgraph"]
        tracer.start = Tensor._serial_now()
        for i, t in enumerate(tensors):
            tracer.trace.arg_nodes.append(tracer.add_input(t, f"arg{i}", "arg"))
        for t, store, name, path in slots:
            if id(t) in tracer.nodes:  # a parameter passed as an argument too
                continue
            node = tracer.add_input(t, path, "param" if t.requires_grad else "buffer")
            tracer.trace.state_nodes.append((node, t, store, name))
        with tracer:
            result = self._fn(*args, **kwargs)
        if tracer.broken is not None:
            self._fallback(key, tracer.broken)
            return result
        out_tensors = []
        skeleton = flatten(result, out_tensors)
        arg_requires = [t if t.requires_grad else None for t in tensors]
        try:
            entry = GraphEntry(self._name, tracer.trace, out_tensors, slots, len(tensors),
                               self._options, tracer, arg_requires)
        except TraceBreak as brk:  # met in a custom Function's backward
            self._fallback(key, brk)
            return result
        entry.skeleton = skeleton
        self._cache[key] = entry
        if len(self._cache) > MAX_CACHED_GRAPHS:
            self._cache.popitem(last=False)
        debug.log(1, f"compiled {self._name} for backend {self._options['backend']}: "
                     f"{entry.kernels} kernels in {time.perf_counter() - start:.2f} s")
        return result

    def _fallback(self, key, brk: TraceBreak):
        self._cache[key] = "eager"
        if brk.loc not in self._warned_fallback:
            self._warned_fallback.add(brk.loc)
            warnings.warn(f"{brk} This input signature runs eagerly from now on "
                          "(compile with fullgraph=True to make this an error).",
                          RuntimeWarning, stacklevel=4)


class CompiledModule:
    """Module-like: calls run compiled; everything else is the wrapped module's."""

    def __init__(self, module, **options):
        object.__setattr__(self, "_orig_mod", module)
        object.__setattr__(self, "_compiled", CompiledFunction(
            module.forward, module=module, **options))
        object.__setattr__(self._compiled, "_name", type(module).__name__)

    def __call__(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def cache_info(self):
        return self._compiled.cache_info()

    def kernel_count(self):
        return self._compiled.kernel_count()

    def __getattr__(self, name):
        return getattr(self._orig_mod, name)

    def __setattr__(self, name, value):
        setattr(self._orig_mod, name, value)

    def train(self, mode=True):
        self._orig_mod.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def __repr__(self):
        return f"Compiled{self._orig_mod!r}"
