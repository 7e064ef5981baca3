"""Memory planning: intermediates share one arena, reusing the bytes of dead values.

Over the kernel schedule, an intermediate (a value some kernel stores and later kernels
read, that the caller never sees) is live from the kernel that writes it to the last
kernel that reads it. Buffers are placed first-fit into a free list of the arena as
kernels write them and returned to it after their last reader, so a chain of N
elementwise kernels needs two buffers, not N. Graph inputs, constants and outputs are
not planned: they belong to the caller.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ALIGN = 64


@dataclass
class MemoryPlan:
    offsets: dict = field(default_factory=dict)   # node -> byte offset in the arena
    arena_bytes: int = 0
    naive_bytes: int = 0                          # what one buffer per value would take

    def describe(self):
        saved = self.naive_bytes - self.arena_bytes
        return (f"arena {self.arena_bytes} bytes for {len(self.offsets)} intermediates "
                f"({self.naive_bytes} without reuse, {saved} saved)")


def _round(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


class _FreeList:
    def __init__(self):
        self.free = []      # sorted (offset, size)
        self.top = 0

    def alloc(self, size):
        for i, (off, n) in enumerate(self.free):
            if n >= size:
                if n == size:
                    self.free.pop(i)
                else:
                    self.free[i] = (off + size, n - size)
                return off
        off = self.top
        self.top += size
        return off

    def release(self, off, size):
        self.free.append((off, size))
        self.free.sort()
        merged = []
        for o, n in self.free:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1] = (merged[-1][0], merged[-1][1] + n)
            else:
                merged.append((o, n))
        if merged and merged[-1][0] + merged[-1][1] == self.top:   # give the tail back
            self.top = merged[-1][0]
            merged.pop()
        self.free = merged


def plan_memory(steps, intermediates, nbytes) -> MemoryPlan:
    """``steps``: per kernel in launch order, ``(reads, writes)`` as node lists;
    ``intermediates``: the nodes to place; ``nbytes(node)``: their sizes."""
    first, last = {}, {}
    for i, (reads, writes) in enumerate(steps):
        for n in writes:
            if n in intermediates:
                first.setdefault(n, i)
                last.setdefault(n, i)
        for n in reads:
            if n in intermediates:
                last[n] = i
    plan = MemoryPlan()
    heap = _FreeList()
    dying = {}
    for n, i in last.items():
        dying.setdefault(i, []).append(n)
    for i, (reads, writes) in enumerate(steps):
        for n in writes:
            if n in intermediates and n not in plan.offsets:
                size = _round(max(nbytes(n), 1))
                plan.offsets[n] = heap.alloc(size)
                plan.naive_bytes += size
        plan.arena_bytes = max(plan.arena_bytes, heap.top)
        for n in dying.get(i, ()):     # free after the kernel: never alias its own inputs
            heap.release(plan.offsets[n], _round(max(nbytes(n), 1)))
    return plan
