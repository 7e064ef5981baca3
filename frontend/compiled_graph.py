"""One compiled signature: the traced graph turned into forward and backward executables,
how to feed them at each call, and the single grad_fn that runs the compiled backward."""
from __future__ import annotations

import numpy as np

from compiler import autodiff, passes
from compiler.backends.registry import compile_graph
from compiler.check import check_kernels
from compiler.ir import to_text
from runtime import debug
from .autograd.grad_mode import is_grad_enabled
from .autograd.graph import Node, edge_of
from .tensor import Tensor


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
        grads = tuple(Tensor._make(next(it), dtype) if has else None
                      for dtype, has in zip(self._wrt_dtypes, entry.wrt_has_grad))
        fresh = iter(entry.backward_fresh)
        for g in grads:
            if g is not None and next(fresh):  # a buffer of its own: .grad may keep it
                g.__dict__["_owned"] = True
        return grads

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
            self.backward_fresh = list(getattr(self.backward, "fresh_outputs",
                                               [False] * len(backward.outputs)))
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
        if self.check:     # check="llvm" also compares kernel by kernel with that backend
            return check_kernels(executable, inputs,
                                 against=self.check if isinstance(self.check, str) else None)
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
