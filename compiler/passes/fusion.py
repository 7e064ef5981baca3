"""Fusion: which op nodes share a kernel. The whole policy is the ``FusionPolicy`` class.

Three decisions, in the manner of TVM's op patterns and TorchInductor's ``choices.py``:

1. *Inline*: cheap pointwise nodes (movement ops cost nothing; an add or a compare
   costs one) are recomputed inside every kernel that reads them and never get a kernel
   or a buffer of their own. Movement ops thereby fold into addressing.
2. *Merge*: for each producer/consumer pair of groups (best ``score`` first: the bytes
   a fusion keeps out of memory), ``can_fuse`` says whether one loop nest can compute
   both; every refusal is recorded with its reason (shown at ``KILN_DEBUG=3``). A group has a loop shape ``full`` and, for reductions, reduced
   ``axes``: elementwise chains share one loop; reductions take elementwise producers
   and consumers over the same rows (row softmax, LayerNorm: one kernel) and other
   reductions over the same rows; matmul takes elementwise epilogues (bias, ReLU) and
   cheap prologues (read while packing operands).
3. *Store*: a node is written to memory only if a node outside its group (or the
   caller) reads it, and only at a position of the group's loops (``placement``).

``fuse=False`` skips 1 and 2: exactly one kernel per primitive op node.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from runtime import debug

from ..ops import REGISTRY

KINDS = ("pointwise", "reduce", "matmul", "scatter", "opaque")


@dataclass
class Group:
    id: int
    kind: str                   # pointwise | reduce | matmul | scatter | opaque
    nodes: list                 # member op nodes in topological order
    full: tuple                 # the loop shape
    axes: tuple = ()            # reduced axes of ``full`` (reduce groups)
    anchor: int | None = None   # the matmul / scatter / opaque node
    stores: list = field(default_factory=list)

    @property
    def numel(self):
        return math.prod(self.full)

    @property
    def kept_shape(self):
        return tuple(n for i, n in enumerate(self.full) if i not in self.axes)


@dataclass
class FusionPlan:
    graph: object
    groups: list                # in launch order
    inline: set                 # nodes recomputed by their consumers (no kernel, no buffer)
    forms: dict                 # node -> kernel form
    refusals: list              # human-readable reasons, for KILN_DEBUG=3
    group_of: dict              # node -> Group

    def describe(self):
        g = self.graph
        lines = []
        for grp in self.groups:
            ops = " ".join(f"%{n}:{g.nodes[n]['op']}" for n in grp.nodes)
            lines.append(f"group {grp.id} [{grp.kind} {list(grp.full)}"
                         f"{' axes=' + str(list(grp.axes)) if grp.axes else ''}]: {ops}"
                         f" -> stores {['%' + str(s) for s in grp.stores]}")
        if self.inline:
            lines.append("inlined into consumers: " + " ".join(
                f"%{n}:{g.nodes[n]['op']}" for n in sorted(self.inline)))
        return "\n".join(lines)


def node_form(graph, n):
    """The kernel form of op node ``n``: its rule's form, with trivial reductions (over
    size-1 axes only) demoted to pointwise."""
    d = graph.nodes[n]
    rule = REGISTRY[d["op"]].expr
    if rule is None:
        return "opaque"
    shapes = [graph.nodes[a]["shape"] for a in d["args"]]
    form = rule.form_for(shapes, d["shape"], d["attrs"])
    if form == "reduce":
        in_shape = shapes[0]
        axes = _axes_of(d, in_shape)
        if not any(in_shape[a] != 1 for a in axes):
            return "pointwise"
    return form


def _axes_of(d, in_shape):
    attrs = d["attrs"]
    if "axes" in attrs:
        return tuple(attrs["axes"])
    return tuple(range(len(in_shape))) if attrs.get("axis") is None else (attrs["axis"],)


def reduce_domain(graph, n):
    """(full shape, reduced axes) of a reduction node; size-1 axes are not reduced."""
    d = graph.nodes[n]
    in_shape = graph.nodes[d["args"][0]]["shape"]
    axes = tuple(a for a in _axes_of(d, in_shape) if in_shape[a] != 1)
    return tuple(in_shape), axes


def _suffix_products(shape):
    out, p = {1}, 1
    for n in reversed(shape):
        p *= n
        out.add(p)
    return out


def same_layout(shape, loop):
    """Can a value of ``shape`` be stored from a loop over ``loop`` (same element count)
    without scrambling? Yes if one shape only merges or only splits the other's
    dimensions (row-major), so positions map with at most a div/mod per split."""
    a, b = _suffix_products(shape), _suffix_products(loop)
    return a <= b or b <= a


class FusionPolicy:
    """Every fusion decision, with the reason for every refusal. Override to experiment."""

    max_inline_cost = 2          # recompute nodes this cheap in each consumer
    max_broadcast_cost = 4       # what we recompute per broadcast copy inside one loop
    max_prologue_cost = 2        # what a matmul may recompute while packing an operand
    min_reduce_rows = 64         # a reduction with fewer (parallel) rows stores nothing else

    def __init__(self, graph, forms):
        self.graph, self.forms = graph, forms
        self._cost = {}

    def op_cost(self, n):
        d = self.graph.nodes[n]
        rule = REGISTRY[d["op"]].expr
        if rule is None:
            return 100
        return rule.cost_for([self.graph.nodes[a]["shape"] for a in d["args"]], d["attrs"])

    def subtree_cost(self, n, inline):
        """Cost of computing ``n`` inline: its own plus that of inlined arguments."""
        if n in self._cost:
            return self._cost[n]
        d = self.graph.nodes[n]
        cost = self.op_cost(n) + sum(self.subtree_cost(a, inline) for a in d["args"]
                                     if a in inline)
        self._cost[n] = cost
        return cost

    def should_inline(self, n, inline, outputs) -> bool:
        if self.forms[n] != "pointwise" or n in outputs:
            return False
        return self.subtree_cost(n, inline) <= self.max_inline_cost

    def merged_domain(self, p: Group, c: Group):
        """(kind, full, axes, anchor) of p and c fused, or a refusal reason string."""
        kinds = {p.kind, c.kind}
        for k in ("scatter", "opaque"):
            if k in kinds:
                return f"{k} kernels do not fuse"
        if kinds == {"matmul"}:
            return "two matmuls never share a kernel"
        if "matmul" in kinds:
            mm, other = (p, c) if p.kind == "matmul" else (c, p)
            if other.kind == "reduce":
                return "a matmul kernel cannot also hold a reduction"
            return ("matmul", mm.full, (), mm.anchor)
        if kinds == {"reduce"}:
            if p.full != c.full or p.axes != c.axes:
                return (f"different reduction domains: {list(p.full)} over {list(p.axes)} vs "
                        f"{list(c.full)} over {list(c.axes)}")
            return ("reduce", c.full, c.axes, None)
        if "reduce" in kinds:
            r = p if p.kind == "reduce" else c
            return ("reduce", r.full, r.axes, None)
        big = c if c.numel >= p.numel else p
        return ("pointwise", big.full, (), None)

    def _transposes(self, n, anchor):
        """Is ``n`` the matmul's result with its last two dims swapped? (The kernel then
        computes the transposed product directly.)"""
        d = self.graph.nodes[n]
        k = len(d["shape"])
        return d["op"] == "permute" and d["args"] == (anchor,) and \
            tuple(d["attrs"]["perm"]) == tuple(range(k - 2)) + (k - 1, k - 2)

    def score(self, p: Group, c: Group, stores) -> int:
        """What fusing p into c is worth: the bytes of values that would no longer be
        written to memory and read back. Candidates are tried best first."""
        g = self.graph.nodes
        saved = set(stores(p.nodes)) - set(stores(p.nodes + c.nodes))
        return sum(math.prod(g[n]["shape"]) * g[n]["dtype"].itemsize for n in saved)

    def can_fuse(self, p: Group, c: Group, stores, ancestors_of_anchor, inline):
        """``(ok, reason)`` for computing groups ``p`` and ``c`` in one kernel.

        ``stores(nodes)`` lists the nodes that would still be written to memory."""
        dom = self.merged_domain(p, c)
        if isinstance(dom, str):
            return False, dom
        kind, full, axes, anchor = dom
        numel = math.prod(full)
        kept = math.prod(n for i, n in enumerate(full) if i not in axes)
        nodes = p.nodes + c.nodes
        stored = set(stores(nodes))
        g = self.graph.nodes
        kept_shape = tuple(x for i, x in enumerate(full) if i not in axes)
        if kind == "reduce" and kept < self.min_reduce_rows and numel >= 65536 and any(
                n in stored and self.forms[n] != "reduce" and math.prod(g[n]["shape"]) == numel
                for n in nodes):
            return False, (f"the reduction has only {kept} rows: values it would store "
                           f"could not be computed on all threads")
        for n in nodes:
            if n == anchor or self.forms[n] == "reduce":
                continue
            shape = tuple(g[n]["shape"])
            size = math.prod(shape)
            fits = (size == numel and same_layout(shape, full)) or \
                (axes and size == kept and same_layout(shape, kept_shape)) or \
                (kind == "matmul" and self._transposes(n, anchor))
            if kind == "matmul" and n in ancestors_of_anchor:
                if n in stored:
                    return False, (f"%{n} ({g[n]['op']}) would be computed while packing a "
                                   f"matmul operand, but is also needed elsewhere")
                if self.subtree_cost(n, inline) > self.max_prologue_cost:
                    return False, (f"%{n} ({g[n]['op']}) is too expensive to recompute while "
                                   f"packing a matmul operand")
                continue
            if n in stored and not fits:
                return False, (f"%{n} ({g[n]['op']}) must be stored but its shape "
                               f"{list(g[n]['shape'])} fits neither the loop {list(full)} nor "
                               f"its reduced rows")
            if not fits and size < numel and self.subtree_cost(n, inline) > self.max_broadcast_cost:
                return False, (f"%{n} ({g[n]['op']}) would be recomputed for each of "
                               f"{numel // max(size, 1)} broadcast copies")
        return True, ""


def plan_fusion(graph, fuse=True, policy_cls=FusionPolicy) -> FusionPlan:
    """Group the op nodes of ``graph`` into kernels, in a valid launch order."""
    order = graph.topological_order()
    pos = {n: i for i, n in enumerate(order)}
    nodes = graph.nodes
    op_nodes = [n for n in order if nodes[n]["op"] not in ("input", "const")]
    forms = {n: node_form(graph, n) for n in op_nodes}
    policy = policy_cls(graph, forms)
    outputs = set(graph.outputs)
    inline = set()
    if fuse:
        for n in op_nodes:
            if policy.should_inline(n, inline, outputs):
                inline.add(n)

    group_of = {}
    groups = []
    for n in op_nodes:
        if n in inline:
            continue
        form, d = forms[n], nodes[n]
        if form == "reduce":
            full, axes = reduce_domain(graph, n)
            grp = Group(len(groups), "reduce", [n], full, axes)
        elif form in ("matmul", "scatter", "opaque"):
            grp = Group(len(groups), form, [n], tuple(d["shape"]), (), n)
        else:
            grp = Group(len(groups), "pointwise", [n], tuple(d["shape"]))
        groups.append(grp)
        group_of[n] = grp

    # effective users/args look through inlined nodes
    eff_users, eff_args = {}, {}

    def users_of(n):
        if n not in eff_users:
            out = []
            for u in graph.users(n):
                out += users_of(u) if u in inline else [u]
            eff_users[n] = out
        return eff_users[n]

    def args_of(n):
        if n not in eff_args:
            out = []
            for a in nodes[n]["args"]:
                if a in inline:
                    out += args_of(a)
                elif nodes[a]["op"] not in ("input", "const"):
                    out.append(a)
            eff_args[n] = out
        return eff_args[n]

    def stores(members):
        member = set(members)
        return [n for n in members if n in outputs or any(u not in member for u in users_of(n))]

    refusals = []
    if fuse:
        _merge_greedily(graph, op_nodes, inline, group_of, policy, stores, args_of, users_of,
                        refusals, pos)

    live = []
    for grp in {id(g): g for g in group_of.values()}.values():
        grp.nodes.sort(key=pos.__getitem__)
        grp.stores = stores(grp.nodes)
        live.append(grp)
    live = _launch_order(live, group_of, args_of, pos)
    for i, grp in enumerate(live):
        grp.id = i
    plan = FusionPlan(graph, live, inline, forms, refusals, group_of)
    if debug.level() >= 3:
        debug.log(3, f"fusion of {graph.name} ({'fuse' if fuse else 'no fusion'}):\n"
                     + plan.describe())
        for r in refusals:
            debug.log(3, "refused: " + r)
    return plan


def _merge_greedily(graph, op_nodes, inline, group_of, policy, stores, args_of, users_of,
                    refusals, pos):
    nodes = graph.nodes

    def successors(grp):
        return {id(group_of[u]): group_of[u] for n in grp.nodes for u in users_of(n)
                if group_of[u] is not grp}

    def reaches(start_groups, target):
        seen, stack = set(), list(start_groups)
        while stack:
            grp = stack.pop()
            if grp is target:
                return True
            if id(grp) in seen:
                continue
            seen.add(id(grp))
            stack.extend(successors(grp).values())
        return False

    def anchor_ancestors(anchor):
        out, stack = set(), [anchor]
        while stack:
            for a in nodes[stack.pop()]["args"]:
                if a not in out and nodes[a]["op"] not in ("input", "const"):
                    out.add(a)
                    stack.append(a)
        return out

    for n in op_nodes:
        if n in inline:
            continue
        producers = list(dict.fromkeys(args_of(n)))
        producers.sort(key=lambda a: -policy.score(group_of[a], group_of[n], stores)
                       if group_of[a] is not group_of[n] else 0)
        for a in producers:
            c, p = group_of[n], group_of[a]
            if p is c:
                continue
            # a path p -> other group -> c would make the fused kernel depend on itself
            others = [g for k, g in successors(p).items() if g is not c]
            if reaches(others, c):
                refusals.append(f"%{a} ({nodes[a]['op']}) -> %{n} ({nodes[n]['op']}): another "
                                f"kernel lies between them")
                continue
            dom = policy.merged_domain(p, c)
            anchor = None if isinstance(dom, str) else dom[3]
            ancestors = anchor_ancestors(anchor) if anchor is not None else set()
            ok, reason = policy.can_fuse(p, c, stores, ancestors, inline)
            if not ok:
                refusals.append(f"%{a} ({nodes[a]['op']}) -> %{n} ({nodes[n]['op']}): {reason}")
                continue
            kind, full, axes, anchor = dom
            c.kind, c.full, c.axes, c.anchor = kind, full, axes, anchor
            c.nodes = sorted(c.nodes + p.nodes, key=pos.__getitem__)
            for m in p.nodes:
                group_of[m] = c


def _launch_order(groups, group_of, args_of, pos):
    """Topological order of groups (ties broken by their first node's position)."""
    import heapq
    deps = {id(g): set() for g in groups}
    for g in groups:
        for n in g.nodes:
            for a in args_of(n):
                if group_of[a] is not g:
                    deps[id(g)].add(id(group_of[a]))
    by_id = {id(g): g for g in groups}
    users = {k: [] for k in deps}
    for k, ds in deps.items():
        for d in ds:
            users[d].append(k)
    waiting = {k: len(ds) for k, ds in deps.items()}
    ready = [(pos[by_id[k].nodes[0]], k) for k, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        _, k = heapq.heappop(ready)
        out.append(by_id[k])
        for u in users[k]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (pos[by_id[u].nodes[0]], u))
    if len(out) != len(groups):
        raise AssertionError("fusion produced a cycle between kernels")
    return out


def split(plan: FusionPlan, grp: Group):
    """Replace ``grp`` by one group per member node (when a fused group cannot be lowered)."""
    graph = plan.graph
    at = plan.groups.index(grp)
    singles = []
    member = set()
    for n in grp.nodes:
        form = plan.forms[n]
        d = graph.nodes[n]
        if form == "reduce":
            full, axes = reduce_domain(graph, n)
            single = Group(0, "reduce", [n], full, axes)
        elif form in ("matmul", "scatter", "opaque"):
            single = Group(0, form, [n], tuple(d["shape"]), (), n)
        else:
            single = Group(0, "pointwise", [n], tuple(d["shape"]))
        plan.group_of[n] = single
        singles.append(single)
        member.add(n)
    outputs = set(graph.outputs)

    def users_of(n):
        out = []
        for u in graph.users(n):
            out += users_of(u) if u in plan.inline else [u]
        return out
    for single in singles:
        n = single.nodes[0]
        single.stores = [n] if n in outputs or users_of(n) else []
    plan.groups[at:at + 1] = singles
    for i, g in enumerate(plan.groups):
        g.id = i
    return singles


def evict(plan: FusionPlan, grp: Group, node) -> bool:
    """Move stored node ``node`` out of ``grp`` into its own kernel, launched right after.

    Only a node no other member reads can leave (else the group would read a value
    computed later); returns False when that does not hold."""
    graph = plan.graph
    if node is None or node not in grp.nodes or node == grp.anchor or len(grp.nodes) < 2:
        return False
    if plan.forms[node] != "pointwise":
        return False
    members = set(grp.nodes)

    def users_of(n):
        out = []
        for u in graph.users(n):
            out += users_of(u) if u in plan.inline else [u]
        return out
    if any(u in members for u in users_of(node)):
        return False
    grp.nodes.remove(node)
    single = Group(0, "pointwise", [node], tuple(graph.nodes[node]["shape"]))
    plan.group_of[node] = single
    outputs = set(graph.outputs)
    for g in (grp, single):
        keep = set(g.nodes)
        g.stores = [n for n in g.nodes if n in outputs or any(u not in keep for u in users_of(n))]
    at = plan.groups.index(grp)
    plan.groups.insert(at + 1, single)
    for i, g in enumerate(plan.groups):
        g.id = i
    return True
