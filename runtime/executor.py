"""Run a compiled program: a fixed list of kernel launches over a table of buffers.

A backend describes what to run as a ``Program``; ``Executor`` prepares everything that
does not change between calls once (launch arrays, slot lists, the arena of
intermediates, constants, per-thread scratch), so a call only checks and binds the
inputs, allocates the outputs, and makes one native call per thread per segment.

Slots: every buffer a kernel touches has a slot number; ``table[slot]`` holds its
address for the current call. Graph inputs and outputs change every call; arena views
and constants are bound once.
"""
from __future__ import annotations

import ctypes
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import debug, native_runner
from .thread_pool import pool
from .threads import get_num_threads


@dataclass
class KernelLaunch:
    name: str
    address: int
    slots: tuple
    flops: int = 0
    bytes: int = 0
    outputs: tuple = ()          # (slot, key) of the values it produces, for capture
    threads: int = 1             # how many threads it can use (it splits work by tid)


@dataclass
class PythonCall:
    """A step run by Python: ``fn(arrays)`` reads and writes the per-slot NumPy arrays."""

    name: str
    fn: Callable
    flops: int = 0
    bytes: int = 0
    outputs: tuple = ()


@dataclass
class Program:
    num_slots: int
    inputs: list                 # per graph input: (slot or None, shape, numpy dtype, name)
    outputs: list                # per graph output: ("slot", s) | ("input", i) | ("const", array)
    buffers: dict                # slot -> (shape, numpy dtype) for every slot
    arena: dict                  # slot -> byte offset into the shared arena (intermediates)
    constants: dict              # slot -> numpy array (bound once)
    steps: list                  # KernelLaunch | PythonCall, in order
    arena_bytes: int = 0
    scratch_bytes: int = 0       # per thread
    extra: dict = field(default_factory=dict)
    workspace_bytes: int = 0     # shared by all threads (split-K partial products)


SCRATCH_HEADER = 64               # bytes before each thread's scratch: the workspace address
MIN_PARALLEL_SECONDS = 100e-6     # estimated one-thread run time below which one thread runs


class _Segment:
    """Consecutive native launches, run by one ``kiln_run_list`` call per thread."""

    def __init__(self, launches):
        self.launches = launches
        self.array = (native_runner.Launch * len(launches))()
        self._slot_arrays = []
        for i, k in enumerate(launches):
            slots = (ctypes.c_int64 * max(len(k.slots), 1))(*k.slots)
            self._slot_arrays.append(slots)
            self.array[i].fn = k.address
            self.array[i].slots = ctypes.addressof(slots)
        self.address = ctypes.addressof(self.array)
        self.threads = max(k.threads for k in launches)
        # waking a worker costs tens of microseconds: not worth it for a short segment
        seconds = sum(k.flops / 50e9 + k.bytes / 20e9 for k in launches)
        if seconds < MIN_PARALLEL_SECONDS:
            self.threads = 1
        self.counters = np.zeros(native_runner.COUNTER_WORDS * len(launches), np.int64)
        self.counters_address = self.counters.ctypes.data


class Executor:
    def __init__(self, program: Program):
        self.program = program
        p = program
        self._lock = threading.Lock()
        self.table = (ctypes.c_void_p * max(p.num_slots, 1))()
        self.table_address = ctypes.addressof(self.table)
        self.arrays = [None] * p.num_slots
        self.arena = np.empty(p.arena_bytes + 64, np.uint8)
        base = (-self.arena.ctypes.data) % 64            # 64-byte aligned arena start
        for slot, offset in p.arena.items():
            shape, dtype = p.buffers[slot]
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            view = self.arena[base + offset: base + offset + nbytes].view(dtype).reshape(shape)
            self._bind(slot, view)
        for slot, array in p.constants.items():
            array = np.ascontiguousarray(array)
            self._bind(slot, array)
        self._fresh = sorted({o[1] for o in p.outputs if o[0] == "slot"})
        self._recycle = {}          # slot -> the output array handed out last time
        self._fresh_specs = [(s,) + tuple(p.buffers[s]) for s in self._fresh]
        self.steps = []
        run = []
        for step in p.steps:
            if isinstance(step, KernelLaunch):
                run.append(step)
                continue
            if run:
                self.steps.append(_Segment(run))
                run = []
            self.steps.append(step)
        if run:
            self.steps.append(_Segment(run))
        self._scratch = None
        self._scratch_threads = 0
        self._workspace = None
        self._runner = native_runner.run_list()

    def read(self, slot):
        """A copy of the array bound to ``slot`` (a constant's, an arena view's)."""
        return np.array(self.arrays[slot], copy=True)

    def write(self, slot, value):
        np.copyto(self.arrays[slot], value)

    def _bind(self, slot, array):
        self.arrays[slot] = array
        self.table[slot] = array.ctypes.data if array.size else None

    def _scratch_for(self, nthreads):
        """(thread 0's scratch address, distance between threads' scratch). Each thread's
        scratch is preceded by a 64-byte header whose first word is the address of the
        workspace shared by all threads (``Program.workspace_bytes``; a split-K matmul
        keeps its per-piece partial products there: whichever thread computes a piece,
        another may reduce it)."""
        stride = max(self.program.scratch_bytes, 64)
        stride += (-stride) % 64
        stride += SCRATCH_HEADER
        if self._scratch_threads < nthreads:
            self._scratch = np.empty(stride * nthreads + 64, np.uint8)
            self._scratch_threads = nthreads
            base = self._scratch.ctypes.data + (-self._scratch.ctypes.data) % 64
            if self._workspace is None and self.program.workspace_bytes:
                self._workspace = np.empty(self.program.workspace_bytes + 64, np.uint8)
            address = 0
            if self._workspace is not None:
                address = self._workspace.ctypes.data + (-self._workspace.ctypes.data) % 64
            for tid in range(nthreads):
                ctypes.c_void_p.from_address(base + tid * stride).value = address
        base = self._scratch.ctypes.data + (-self._scratch.ctypes.data) % 64
        return base + SCRATCH_HEADER, stride

    # -- calling ---------------------------------------------------------------------
    def run(self, inputs, capture=False):
        """Outputs for ``inputs``; with ``capture``, also ``{key: value}`` of every value
        a step produces (copied right after the step, before the arena reuses it)."""
        p = self.program
        if len(inputs) != len(p.inputs):
            raise ValueError(f"compiled graph takes {len(p.inputs)} inputs, got {len(inputs)}")
        with self._lock:   # the table and the arena are per executable, not per call
            inputs = list(inputs)
            for i, (slot, shape, dtype, name) in enumerate(p.inputs):
                x = inputs[i]
                if type(x) is not np.ndarray or x.dtype != dtype or not x.flags.c_contiguous:
                    x = np.ascontiguousarray(x, dtype=dtype)
                    inputs[i] = x
                if x.shape != shape:
                    raise ValueError(f"input {i} ({name}) has shape {x.shape}, but the graph was "
                                     f"compiled for {shape}")
                if slot is not None and self.arrays[slot] is not x:
                    self._bind(slot, x)     # (parameters are usually the same arrays each call;
                    #                         holding them also keeps numpy from resizing them)
            recycle = self._recycle
            for slot, shape, dtype in self._fresh_specs:
                old = recycle.get(slot)
                # the previous call's result, if its caller has let go of it (ours is the only
                # reference left: the dict's and getrefcount's own): saves the page faults of
                # fresh memory, as PyTorch's caching allocator does
                if old is not None and sys.getrefcount(old) <= 3:
                    self._bind(slot, old)
                else:
                    fresh = np.empty(shape, dtype)
                    recycle[slot] = fresh
                    self._bind(slot, fresh)
                    del fresh
            produced = {} if capture else None
            if capture or debug.level() >= 2:
                self._run_one_by_one(produced)
            else:
                self._run_steps()
            out = []
            for kind, value in p.outputs:
                if kind == "slot":
                    out.append(self.arrays[value])
                elif kind == "input":
                    out.append(inputs[value])
                else:
                    out.append(value)
            for slot in self._fresh:     # do not keep the caller's results alive
                self.arrays[slot] = None
            return (out, produced) if capture else out

    def _run_segment(self, seg, nthreads):
        scratch, stride = self._scratch_for(nthreads)
        runner, table = self._runner, self.table_address
        address, n, counters = seg.address, len(seg.launches), seg.counters_address
        seg.counters.fill(0)
        if min(nthreads, seg.threads) == 1:      # nothing to share: do not wake the pool
            runner(address, n, table, counters, scratch)
            return

        pool().run_segment(address, n, table, counters, scratch, stride,
                           min(nthreads, seg.threads))

    def _run_steps(self):
        nthreads = get_num_threads()
        for step in self.steps:
            if isinstance(step, _Segment):
                self._run_segment(step, nthreads)
            else:
                step.fn(self.arrays)

    def _run_one_by_one(self, produced):
        """Launch kernels one by one: for KILN_DEBUG=2 (time, GB/s and GFLOP/s of each)
        and for capture (each kernel's outputs copied before the next kernel runs)."""
        nthreads = get_num_threads()
        timed = debug.level() >= 2
        for step in self.steps:
            items = step.launches if isinstance(step, _Segment) else [step]
            for item in items:
                t0 = time.perf_counter()
                if isinstance(item, KernelLaunch):
                    self._run_segment(_Segment([item]), nthreads)
                else:
                    item.fn(self.arrays)
                dt = max(time.perf_counter() - t0, 1e-9)
                if timed:
                    debug.log(2, f"{item.name}: {dt * 1e3:.3f} ms, {item.bytes / dt / 1e9:.2f} GB/s, "
                                 f"{item.flops / dt / 1e9:.2f} GFLOP/s")
                if produced is not None:
                    for slot, key in item.outputs:
                        produced[key] = np.array(self.arrays[slot], copy=True)
