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

import numpy as np

from compiler import autodiff, passes
from compiler.backends.registry import BACKENDS, compile_graph
from compiler.check import check_kernels
from compiler.ir import to_text, verify
from runtime import debug
from .autograd.grad_mode import is_grad_enabled
from .autograd.graph import Node, edge_of
from .tensor import Tensor
from .tracer import TraceBreak, Tracer

CacheInfo = namedtuple("CacheInfo", ["hits", "misses", "size"])
MAX_CACHED_GRAPHS = 16
RECOMPILE_WARNING_AFTER = 8


def compile(model_or_function=None, *, backend="llvm", fuse=True, fullgraph=False,
            check=False, **_unused):
    """Return a compiled callable (see API.md). Usable as ``@frontend.compile`` too."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend == "opencl":
        raise NotImplementedError(
            "backend='opencl' is not built yet (it has its own issue); use backend='llvm' "
            "or backend='eager'")
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


# -- arguments: flattening and signatures ------------------------------------------------

def _flatten(obj, tensors):
    """Replace tensors in a (nested) structure by slots; return a hashable skeleton."""
    if isinstance(obj, Tensor):
        tensors.append(obj)
        return ("T", len(tensors) - 1)
    if isinstance(obj, (list, tuple)):  # including namedtuples such as max()'s result
        return ("seq", type(obj), tuple(_flatten(o, tensors) for o in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, _flatten(v, tensors)) for k, v in obj.items()))
    try:
        hash(obj)
    except TypeError:
        raise TypeError(f"compiled functions take tensors, numbers, strings, None and "
                        f"tuples/lists/dicts of them; got {type(obj).__name__}") from None
    return ("V", type(obj).__name__, obj)


def _unflatten(skeleton, values):
    tag = skeleton[0]
    if tag == "T":
        return values[skeleton[1]]
    if tag == "seq":
        cls, items = skeleton[1], [_unflatten(s, values) for s in skeleton[2]]
        if cls is list:
            return items
        return cls(*items) if hasattr(cls, "_fields") else cls(items)
    if tag == "dict":
        return {k: _unflatten(s, values) for k, s in skeleton[1]}
    return skeleton[2]


def _tensor_key(t):
    return (tuple(t.shape), t.dtype.name, t.requires_grad)


def _describe_change(old, new, arg_names):
    """Why a signature missed the cache, in words (KILN_DEBUG=1 and the recompile warning)."""
    (old_tensors, old_skel, old_state), (new_tensors, new_skel, new_state) = old, new
    if old_state != new_state:
        what = ["train/eval mode", "grad mode", "parameter requires_grad flags"]
        diffs = [w for w, a, b in zip(what, old_state, new_state) if a != b]
        return f"{' and '.join(diffs)} changed"
    if old_skel != new_skel:
        return f"the non-tensor arguments changed: {old_skel!r} -> {new_skel!r}"
    if len(old_tensors) != len(new_tensors):
        return f"the number of tensor inputs changed ({len(old_tensors)} -> {len(new_tensors)})"
    for i, (a, b) in enumerate(zip(old_tensors, new_tensors)):
        name = arg_names[i] if i < len(arg_names) else f"tensor input {i}"
        if a[1] != b[1]:
            return f"{name}: dtype changed {a[1]} -> {b[1]}"
        if len(a[0]) != len(b[0]):
            return f"{name}: rank changed {len(a[0])} -> {len(b[0])} (shape {a[0]} -> {b[0]})"
        for d, (x, y) in enumerate(zip(a[0], b[0])):
            if x != y:
                return f"{name}: dimension {d} changed {x} -> {y} (shape {a[0]} -> {b[0]})"
        if a[2] != b[2]:
            return f"{name}: requires_grad changed {a[2]} -> {b[2]}"
    return "unknown change"


# -- compiled graphs -------------------------------------------------------------------

def _c_array(a):
    """C-contiguous without np.ascontiguousarray's promotion of 0-d arrays to 1-d."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


class CompiledBackward(Node):
    """The single grad_fn of a compiled call's outputs: runs the compiled backward graph."""

    def __init__(self, entry, saved, wrt_tensors, num_outputs):
        self._wrt_dtypes = [t.dtype for t in wrt_tensors]
        super().__init__()
        self._entry, self._saved = entry, saved
        self.num_outputs = num_outputs
        self.next_functions = tuple(edge_of(t) for t in wrt_tensors)

    def name(self):
        return "CompiledFunctionBackward"

    def apply(self, grads, create_graph):
        if create_graph:
            raise RuntimeError(
                "create_graph=True is not supported through a frontend.compile'd graph: its "
                "backward is compiled code, not recorded ops. Run the model eagerly "
                "(KILN_EAGER=1 or without compile) for higher-order gradients.")
        if self._saved is None:
            from .autograd.graph import FREED_MESSAGE
            raise RuntimeError(FREED_MESSAGE)
        entry = self._entry
        grad_arrays = []
        for k, (g, meta) in enumerate(zip(grads, entry.output_meta)):
            if entry.grad_input_slots[k] is None:
                continue
            grad_arrays.append(_c_array(g._data.astype(meta[1].np, copy=False)) if g is not None
                               else np.zeros(meta[0], meta[1].np))
        results = entry.execute(entry.backward, self._saved + grad_arrays)
        it = iter(results)
        return tuple(Tensor._make(next(it), dtype) if has else None
                     for dtype, has in zip(self._wrt_dtypes, entry.wrt_has_grad))

    def release(self):
        self._saved = None


class GraphEntry:
    """Everything compiled for one signature, and how to feed it."""

    def __init__(self, fn_name, trace, output_tensors, state_slots, arg_count, options,
                 tracer, arg_requires):
        self.skeleton = None
        graph = trace.graph
        user_outputs = [tracer.node_of(t) for t in output_tensors]
        mutation_nodes = [n for _, n in trace.mutations]
        self.mutated = [t for t, _ in trace.mutations]
        self.arg_nodes = trace.arg_nodes
        self.state = trace.state_nodes             # (node, tensor, owner dict, name)
        self.captured = trace.captured
        self.randoms = trace.randoms
        self.output_meta = [(tuple(t.shape), t.dtype) for t in output_tensors]
        self.num_outputs = len(output_tensors)
        level = debug.level()
        if level >= 5:
            debug.log(5, f"traced graph of {fn_name}:\n{to_text(graph)}")

        # what to differentiate: tensors that require grad among args, state and captures
        # the wrt sources: ("arg", i) is the i-th tensor argument *of the current call*
        wrt, self.wrt_sources = [], []
        if is_grad_enabled():
            for i, (node, t) in enumerate(zip(trace.arg_nodes, arg_requires)):
                if t is not None:
                    wrt.append(node)
                    self.wrt_sources.append(("arg", i, t.dtype))
            for node, t, *_ in self.state + [(n, t) for n, t in self.captured]:
                if t.requires_grad:
                    wrt.append(node)
                    self.wrt_sources.append(("tensor", t, t.dtype))
        all_outputs = user_outputs + mutation_nodes
        self.backward = None
        if wrt and any(t.requires_grad for t in output_tensors):
            grad_inputs, wrt_grads = autodiff.add_backward(
                graph, user_outputs, wrt, regions=[_GraphRegion(r, tracer) for r in trace.regions])
            # optimise the joint graph first, so the partition saves simplified values
            # (W, not permute(permute(W))); passes keep graph.outputs pointing at the
            # rewritten nodes, which is how the ids are read back
            kept = [g for g in wrt_grads if g is not None]
            graph.set_outputs(all_outputs + kept)
            graph = passes.optimize(graph, verify_each=level >= 1 or options["check"])
            n = len(all_outputs)
            all_outputs, new_kept = graph.outputs[:n], iter(graph.outputs[n:])
            wrt_grads = [next(new_kept) if g is not None else None for g in wrt_grads]
            # the backward sees only the user outputs' gradients (mutations carry none)
            part = autodiff.partition(graph, all_outputs, grad_inputs, wrt_grads)
            self.grad_input_slots = grad_inputs
            self.wrt_has_grad = [g is not None for g in wrt_grads]
            forward, backward = part.forward, part.backward
            self.num_saved = len(part.saved)
        else:
            graph.set_outputs(all_outputs)
            forward, backward = graph, None
            self.grad_input_slots = [None] * len(user_outputs)
            self.wrt_has_grad, self.num_saved = [], 0
        verify_each = level >= 1 or options["check"]
        forward = passes.optimize(forward, verify_each=verify_each,
                                  log=(lambda m: debug.log(5, m)) if level >= 5 else None)
        self.forward = compile_graph(forward, backend=options["backend"], fuse=options["fuse"])
        if backward is not None:
            backward = passes.optimize(backward, verify_each=verify_each)
            self.backward = compile_graph(backward, backend=options["backend"],
                                          fuse=options["fuse"])
        if level >= 5:
            debug.log(5, f"optimised forward graph:\n{to_text(forward)}")
            if backward is not None:
                debug.log(5, f"optimised backward graph:\n{to_text(backward)}")
        self.check = options["check"]
        self.feeders = self._feeders(forward, trace)

    @staticmethod
    def _feeders(forward, trace):
        """For each forward-graph input, in order, where its value comes from at a call."""
        by_node = {}
        for i, node in enumerate(trace.arg_nodes):
            by_node[node] = ("arg", i)
        for node, t, *_ in trace.state_nodes:
            by_node[node] = ("tensor", t)
        for node, t in trace.captured:
            by_node[node] = ("tensor", t)
        for r in trace.randoms:
            by_node[r.node] = ("random", r.sample)
        return [by_node[n] for n in forward.inputs]

    def execute(self, executable, inputs):
        if self.check:
            return check_kernels(executable, inputs)
        return executable.run(inputs)

    @property
    def kernels(self):
        return self.forward.num_kernels + (self.backward.num_kernels if self.backward else 0)

    def run(self, arg_tensors):
        for _, t, owner, name in self.state:
            if owner.get(name) is not t:
                raise RuntimeError(f"the parameter or buffer {name!r} was replaced by a new "
                                   "object after compiling; call frontend.compile again")
        inputs = []
        for kind, source in self.feeders:
            if kind == "arg":
                inputs.append(_c_array(arg_tensors[source]._data))
            elif kind == "tensor":
                inputs.append(_c_array(source._data))
            else:
                inputs.append(source())
        results = self.execute(self.forward, inputs)
        n = self.num_outputs
        for t, value in zip(self.mutated, results[n:n + len(self.mutated)]):
            np.copyto(t._data, value)
            t._version.bump()
        outputs = [Tensor._make(a, meta[1]) for a, meta in zip(results[:n], self.output_meta)]
        if self.backward is not None and is_grad_enabled():
            saved = results[n + len(self.mutated):]
            wrt = [arg_tensors[src] if kind == "arg" else src for kind, src, _ in self.wrt_sources]
            node = CompiledBackward(self, saved, wrt, n)
            for k, out in enumerate(outputs):
                if self.grad_input_slots[k] is not None:
                    out._requires_grad, out.grad_fn, out._output_nr = True, node, k
        return outputs


class _GraphRegion:
    """A traced custom Function as ``autodiff.add_backward`` wants it: its ``backward``
    runs the user's backward under the tracer, with gradient tensors bound to nodes."""

    def __init__(self, region, tracer):
        self.inputs, self.outputs, self.internal = region.inputs, region.outputs, region.internal
        self._region, self._tracer = region, tracer

    def backward(self, grad_ids):
        tracer, graph = self._tracer, self._tracer.graph
        grads = []
        for o, gid in zip(self.outputs, grad_ids):
            d = graph.nodes[o]
            g = Tensor._make(np.zeros(d["shape"], d["dtype"].np), d["dtype"])
            if gid is None:
                tracer.on_create(g)
            else:
                tracer.bind(g, gid)
            grads.append(g)
        with tracer:
            results = self._region.backward(grads)
        if tracer.broken is not None:
            raise tracer.broken
        return [tracer.node_of(r) if isinstance(r, Tensor) else None for r in results]


class CompiledFunction:
    def __init__(self, fn, *, backend, fuse, fullgraph, check, module=None):
        self._fn, self._module = fn, module
        self._options = dict(backend=backend, fuse=fuse, fullgraph=fullgraph, check=check)
        self._cache = OrderedDict()
        self._hits = self._misses = 0
        self._warned_recompiles = False
        self._warned_fallback = set()
        self._name = getattr(fn, "__qualname__", type(fn).__name__)

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
        """Parameters and buffers of the module: graph inputs, read at every call."""
        if self._module is None:
            return [], ()
        slots = []
        for mod_name, mod in self._module.named_modules():
            for store in (mod._parameters, mod._buffers):
                for name, t in store.items():
                    if t is not None:
                        slots.append((t, store, name, f"{mod_name}.{name}".lstrip(".")))
        modes = tuple(m.training for m in self._module.modules())
        flags = tuple(t.requires_grad for t, *_ in slots)
        return slots, (modes, is_grad_enabled(), flags)

    def __call__(self, *args, **kwargs):
        if os.environ.get("KILN_EAGER") == "1":
            return self._fn(*args, **kwargs)
        tensors = []
        skeleton = _flatten((args, kwargs), tensors)
        slots, mode = self._state()
        key = (tuple(_tensor_key(t) for t in tensors), skeleton, mode)
        entry = self._cache.get(key)
        if entry is not None:
            self._hits += 1
            self._cache.move_to_end(key)
            if entry == "eager":
                return self._fn(*args, **kwargs)
            outputs = entry.run(tensors)
            return _unflatten(entry.skeleton, outputs)
        self._misses += 1
        self._explain_miss(key)
        return self._trace_and_compile(key, args, kwargs, tensors, slots)

    def _explain_miss(self, key):
        reason = "first call" if not self._cache else _describe_change(
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
        skeleton = _flatten(result, out_tensors)
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
