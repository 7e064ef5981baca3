"""Run a compiled program on an OpenCL device: kernel launches over device buffers.

The OpenCL counterpart of ``runtime.executor``. Every value a kernel touches has a
*slot*; a slot is bound to ``(cl.Buffer, element offset)``, which is exactly what each
kernel parameter pair ``(pointer, offset)`` receives. Bound once, when the executor is
built: the arena holding every intermediate (one device buffer; the memory plan's
offsets become kernel arguments, so dead intermediates' bytes are reused and nothing
between two kernels ever goes back to the host) and the constants (uploaded once).
Bound per call: graph inputs and outputs, the only host transfers:

- on devices with fine-grain *system* SVM (Intel's CPU runtime), kernels take host
  pointers: inputs and outputs are passed as they are (``cl.SVM``), with no buffer
  objects and no mapping (creating, mapping and unmapping buffers of W1's four 16 MiB
  arrays cost 150-200 us a call). ``KILN_OPENCL_SVM=0`` turns this off;
- on other devices that share memory with the host (CPU runtimes), an input array is
  *wrapped* (``CL_MEM_USE_HOST_PTR``, read-only) rather than copied. The wrap starts at
  the array's address rounded down to the device's base alignment and the offset
  argument skips the difference: runtimes copy host pointers that are not so aligned,
  and NumPy's allocations usually are not. Outputs are aligned host arrays, wrapped
  the same way, pooled per output for reuse once the caller lets go of them, and mapped
  after the last kernel so their bytes are guaranteed visible to the host (unmapped at
  the executor's next use);
- elsewhere (GPUs), inputs are copied into per-slot device buffers and outputs copied
  back after the last kernel.

Steps that run on the host (``HostCall``: an op's NumPy reference kernel) read their
arguments back and write their result to the device around the call.
"""
from __future__ import annotations

import ctypes
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import debug


@dataclass
class CLLaunch:
    name: str
    kernels: list                # [(entry, global size, local size, global offset or None)]
    slots: tuple                 # slot of each buffer parameter pair, in parameter order
    flops: int = 0
    bytes: int = 0
    outputs: tuple = ()          # (slot, key) of the values it produces, for capture
    scratch: int = 0             # bytes of workspace passed after the buffers (split-K partials)


@dataclass
class HostCall:
    """A step run by Python: ``fn(arrays)`` reads ``reads`` and fills ``writes``
    (dicts of slot -> NumPy array)."""

    name: str
    fn: Callable
    reads: tuple
    writes: tuple
    flops: int = 0
    bytes: int = 0
    outputs: tuple = ()


@dataclass
class CLProgram:
    num_slots: int
    inputs: list                 # per graph input: (slot or None, shape, numpy dtype, name)
    outputs: list                # ("slot", s) | ("input", i) | ("const", array)
    buffers: dict                # slot -> (shape, numpy dtype)
    arena: dict                  # slot -> byte offset into the arena (intermediates)
    constants: dict              # slot -> numpy array
    steps: list                  # CLLaunch | HostCall
    arena_bytes: int = 0
    program: object = None       # the built pyopencl.Program holding every entry point
    extra: dict = field(default_factory=dict)


def _nbytes(shape, dtype):
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


POOL_ENTRIES = 64      # arrays an output slot keeps for reuse (see CLExecutor._bind_outputs)


def _owner(array):
    """The array that owns ``array``'s memory (NumPy points every view at it)."""
    return array if array.base is None else array.base


def _unreferenced(entry):
    """Whether nothing but ``entry`` (host array, binding, owner) holds the host array or
    its memory. Counted references: the entry's and getrefcount's own; an owner distinct
    from the host array is also held by the host array's ``base``."""
    if entry[2] is entry[0]:
        return sys.getrefcount(entry[0]) <= 3      # (held twice by the entry)
    return sys.getrefcount(entry[0]) <= 2 and sys.getrefcount(entry[2]) <= 3


class CLExecutor:
    def __init__(self, program: CLProgram, device):
        import pyopencl as cl
        self.cl, self.program, self.device = cl, program, device
        self.ctx, self.queue = device.context, device.queue
        self.zero_copy = device.unified_memory
        self.svm = self.zero_copy and device.system_svm   # kernels take host pointers
        self._mapped = []           # outputs still mapped since the last call (see _unmap)
        self.align = max(device.base_align, 64)
        self._lock = threading.Lock()
        p, mf = program, cl.mem_flags
        self._dummy = cl.Buffer(self.ctx, mf.READ_WRITE, 64)
        self.binding = [None] * p.num_slots            # slot -> (buffer, element offset)
        self.arena = cl.Buffer(self.ctx, mf.READ_WRITE, max(p.arena_bytes, 64))
        for slot, offset in p.arena.items():
            itemsize = np.dtype(p.buffers[slot][1]).itemsize
            self.binding[slot] = (self.arena, offset // itemsize)
        self._constants = {}
        for slot, array in p.constants.items():
            array = np.ascontiguousarray(array, dtype=p.buffers[slot][1])
            self._constants[slot] = array
            if array.nbytes:
                # (read-write: a kernel may report an error into the error record)
                buf = cl.Buffer(self.ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=array)
            else:
                buf = self._dummy
            self.binding[slot] = (buf, 0)
        self._fresh = sorted({o[1] for o in p.outputs if o[0] == "slot"})
        self._dynamic = {s for s, *_ in p.inputs if s is not None} | set(self._fresh)
        # GPUs: persistent device buffers for inputs and outputs, copied each call
        self._device_io = {}
        if not self.zero_copy:
            for slot in sorted(self._dynamic):
                shape, dtype = p.buffers[slot]
                n = _nbytes(shape, dtype)
                self._device_io[slot] = cl.Buffer(self.ctx, mf.READ_WRITE, max(n, 64))
        # one kernel object per launch (argument state is per object), static arguments
        # set once; remember where the per-call ones go. Each kernel's whole argument list
        # is kept and set in one typed ``set_args`` call: pyopencl sets a lone scalar
        # argument (an offset) through a slow conversion, ~9 us each, which at a dozen
        # per call was most of a small graph's fixed cost
        self._per_call = []                          # (kernel, arg index, slot)
        self._args = {}                              # kernel -> its argument list
        self._pools = {}         # output slot -> [(host array, binding, owner)], see below
        self.launches = {}                           # id(step) -> [(kernel, global, local, offset)]
        # one workspace for every step that needs one (steps run one after another on an
        # in-order queue, and run() holds the lock)
        scratch = max([s.scratch for s in p.steps if isinstance(s, CLLaunch)] or [0])
        self._scratch = cl.Buffer(self.ctx, mf.READ_WRITE, scratch) if scratch else None
        for step in p.steps:
            if not isinstance(step, CLLaunch):
                continue
            made = [(cl.Kernel(p.program, entry), glob, local, offset)
                    for entry, glob, local, offset in step.kernels]
            self.launches[id(step)] = made
            for kernel, *_ in made:
                args, types = [], [None, np.int64] * len(step.slots)
                for k, slot in enumerate(step.slots):
                    if slot in self._dynamic:
                        self._per_call.append((kernel, 2 * k, slot))
                        args += [self._dummy, 0]          # (bound at each call)
                    else:
                        args += list(self.binding[slot])
                if step.scratch:
                    args.append(self._scratch)
                    types.append(None)
                kernel.set_scalar_arg_dtypes(types)
                kernel.set_args(*args)
                self._args[kernel] = args

    # -- binding per call ------------------------------------------------------------
    def _wrap(self, x, writable):
        """A buffer over host array ``x`` without copying, and the element offset of
        ``x`` in it (see the module docstring)."""
        cl = self.cl
        if x.nbytes == 0:
            return self._dummy, 0
        if self.svm:
            return cl.SVM(x), 0
        addr = x.ctypes.data
        delta = addr % self.align
        if delta % x.itemsize:
            raise ValueError("misaligned array")
        size = x.nbytes + delta
        size += (-size) % 64
        host = (ctypes.c_char * size).from_address(addr - delta)
        flags = cl.mem_flags.USE_HOST_PTR | (cl.mem_flags.READ_WRITE if writable
                                             else cl.mem_flags.READ_ONLY)
        return cl.Buffer(self.ctx, flags, hostbuf=host), delta // x.itemsize

    def _aligned_empty(self, shape, dtype):
        n = _nbytes(shape, dtype)
        raw = np.empty(n + self.align, np.uint8)
        start = (-raw.ctypes.data) % self.align
        return raw[start:start + n].view(dtype).reshape(shape)

    def _bind_inputs(self, inputs, keep):
        cl, p = self.cl, self.program
        for i, (slot, shape, dtype, name) in enumerate(p.inputs):
            x = inputs[i]
            if type(x) is not np.ndarray or x.dtype != dtype or not x.flags.c_contiguous:
                x = np.ascontiguousarray(x, dtype=dtype)
                inputs[i] = x
            if x.shape != shape:
                raise ValueError(f"input {i} ({name}) has shape {x.shape}, but the graph was "
                                 f"compiled for {shape}")
            if slot is None:
                continue
            if self.zero_copy:
                try:
                    self.binding[slot] = self._wrap(x, writable=False)
                except ValueError:
                    y = self._aligned_empty(x.shape, x.dtype)
                    np.copyto(y, x)
                    keep.append(y)
                    self.binding[slot] = self._wrap(y, writable=False)
            else:
                buf = self._device_io[slot]
                if x.nbytes:
                    cl.enqueue_copy(self.queue, buf, x, is_blocking=False)
                self.binding[slot] = (buf, 0)

    def _output_array(self, slot):
        shape, dtype = self.program.buffers[slot]
        return self._aligned_empty(shape, dtype) if self.zero_copy else np.empty(shape, dtype)

    def _bind_outputs(self):
        """A host array (and its wrapped buffer) for every output. Each output slot keeps a
        pool of the arrays it handed out: one whose caller has let go of it and of every
        view of it (views hold the memory's owner, not the array) is used again, with its
        buffer, instead of a new allocation and a new buffer; a recurrent model holds one
        output per time step until its backward pass (W6: 64 calls a step). (An SVM
        binding holds its array, so it is made at each call rather than pooled.)"""
        hosts = {}
        for slot in self._fresh:
            pool = self._pools.setdefault(slot, [])
            entry = next((e for e in pool if _unreferenced(e)), None)
            if entry is None:
                host = self._output_array(slot)
                binding = (None if self.svm else self._wrap(host, writable=True)
                           if self.zero_copy else (self._device_io[slot], 0))
                entry = (host, binding, _owner(host))
                if len(pool) < POOL_ENTRIES:
                    pool.append(entry)
            hosts[slot] = entry[0]
            self.binding[slot] = self._wrap(entry[0], writable=True) if self.svm else entry[1]
        changed = {}
        for kernel, index, slot in self._per_call:
            buf, off = self.binding[slot]
            args = self._args[kernel]
            if args[index] is not buf or args[index + 1] != off:
                args[index], args[index + 1] = buf, off
                changed[kernel] = args
        for kernel, args in changed.items():
            kernel.set_args(*args)
        return hosts

    def _collect_outputs(self, hosts):
        cl = self.cl
        if self.svm:         # the kernels wrote the host arrays: finishing makes it visible
            self.queue.finish()
            return
        if self.zero_copy:
            # wait for the kernels first: Intel's CPU runtime serves a blocking map that is
            # queued behind running kernels through a slow path (it doubled W1's time)
            self.queue.finish()
        maps = []
        for slot, host in hosts.items():
            if not host.nbytes:
                continue
            buf, off = self.binding[slot]
            if self.zero_copy:   # mapping makes the runtime's writes visible to the host
                maps.append(cl.enqueue_map_buffer(self.queue, buf, cl.map_flags.READ, 0,
                                                  (buf.size,), np.uint8, is_blocking=False)[0])
            else:
                cl.enqueue_copy(self.queue, host, buf, is_blocking=False)
        # every map queued first, then one wait (a blocking map per output cost a round
        # trip each: 50 us on PoCL)
        self.queue.finish()
        self._mapped = maps

    def _unmap(self):
        """Queue the unmapping of the previous call's outputs, ahead of anything else this
        queue does with their buffers. The caller reads an output while it is mapped, as
        the OpenCL memory model wants; unmapping then, rather than at once, saves the
        wait for it (a round trip: ~40 us on PoCL) at every call."""
        for mapped in self._mapped:
            mapped.base.release(self.queue)
        self._mapped = []

    # -- reading and writing single values ---------------------------------------------
    def read(self, slot):
        """The current value of ``slot`` as a new host array (blocking)."""
        self._unmap()
        shape, dtype = self.program.buffers[slot]
        host = np.empty(shape, dtype)
        if host.nbytes:
            buf, off = self.binding[slot]
            if isinstance(buf, self.cl.SVM):      # a host array: read it once kernels are done
                self.queue.finish()
                np.copyto(host, buf.mem.reshape(shape))
                return host
            self.cl.enqueue_copy(self.queue, host, buf, src_offset=off * host.itemsize,
                                 is_blocking=True)
        return host

    def write(self, slot, value):
        self._unmap()
        shape, dtype = self.program.buffers[slot]
        host = np.ascontiguousarray(np.asarray(value).astype(dtype, copy=False).reshape(shape))
        if host.nbytes:
            buf, off = self.binding[slot]
            if isinstance(buf, self.cl.SVM):
                self.queue.finish()
                np.copyto(buf.mem.reshape(shape), host)
                return
            self.cl.enqueue_copy(self.queue, buf, host, dst_offset=off * host.itemsize,
                                 is_blocking=True)

    # -- calling ---------------------------------------------------------------------
    def run(self, inputs, capture=False):
        p = self.program
        if len(inputs) != len(p.inputs):
            raise ValueError(f"compiled graph takes {len(p.inputs)} inputs, got {len(inputs)}")
        with self._lock:
            self._unmap()
            inputs, keep = list(inputs), []
            self._bind_inputs(inputs, keep)
            hosts = self._bind_outputs()
            produced = {} if capture else None
            timed = debug.level() >= 2
            for step in p.steps:
                t0 = time.perf_counter() if timed else 0.0
                if isinstance(step, CLLaunch):
                    for kernel, glob, local, offset in self.launches[id(step)]:
                        self.cl.enqueue_nd_range_kernel(self.queue, kernel, glob, local, offset)
                else:
                    self._host_call(step)
                if timed:
                    self.queue.finish()
                    dt = max(time.perf_counter() - t0, 1e-9)
                    debug.log(2, f"{step.name}: {dt * 1e3:.3f} ms, {step.bytes / dt / 1e9:.2f} GB/s, "
                                 f"{step.flops / dt / 1e9:.2f} GFLOP/s")
                if produced is not None:
                    for slot, key in step.outputs:
                        produced[key] = self.read(slot)
            self._collect_outputs(hosts)
            out = []
            for kind, value in p.outputs:
                if kind == "slot":
                    out.append(hosts[value])
                elif kind == "input":
                    out.append(inputs[value])
                else:
                    out.append(value)
            for slot in self._dynamic:       # do not keep the caller's arrays alive
                self.binding[slot] = None
            if self.svm:                     # (nor through the argument lists' SVM objects)
                for kernel, index, _ in self._per_call:
                    self._args[kernel][index] = self._dummy
            return (out, produced) if capture else out

    def _host_call(self, step: HostCall):
        arrays = {slot: self.read(slot) for slot in step.reads}
        for slot in step.writes:
            shape, dtype = self.program.buffers[slot]
            arrays[slot] = np.empty(shape, dtype)
        step.fn(arrays)
        for slot in step.writes:
            self.write(slot, arrays[slot])


__all__ = ["CLLaunch", "HostCall", "CLProgram", "CLExecutor"]
