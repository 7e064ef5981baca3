"""A small pool of persistent worker threads for running native segments in parallel.

Each worker spends its life inside one native call (``native_runner``'s
``kiln_worker_loop``), so it never takes the GIL: a post writes the segment's arguments
into the worker's state words and raises its semaphore (``sem_post`` through
``ctypes.PyDLL``, which keeps the GIL, so the woken worker cannot steal it from the
caller). Waking a sleeping thread costs tens of microseconds and, on a busy machine,
sometimes a whole scheduler tick, so the pool never makes the caller wait for a worker
that has not started yet: work is shared dynamically (see ``native_runner``), and after
doing its own share the caller cancels every worker that is still asleep
(``kiln_main_finish``), waiting only for those already running.
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

from . import native_runner

WORKER_SPIN_CYCLES = 2_000_000   # time-stamp counter ticks (about 1 ms) a worker spins for more
_libc = ctypes.CDLL(None, use_errno=True)
_sem_post = ctypes.PyDLL(None).sem_post    # without releasing the GIL (see above)


class ThreadPool:
    def __init__(self):
        self._workers: list[_Worker] = []
        self._busy = threading.Lock()
        self._gen = 0

    def _ensure(self, n):
        while len(self._workers) < n:
            self._workers.append(_Worker(len(self._workers) + 1))

    def run_segment(self, launches, n, table, counters, scratch, stride, nthreads: int) -> None:
        """Run ``kiln_run_list(launches, n, table, counters, scratch + tid * stride)`` on the
        caller (tid 0) and on up to ``nthreads - 1`` workers; threads claim the kernels'
        chunks dynamically, so any number of participants gives the same result. A
        concurrent second caller (another Python thread running a compiled graph) runs
        alone."""
        run_list, _, _, finish, _, _ = native_runner.functions()
        if nthreads <= 1 or not self._busy.acquire(blocking=False):
            run_list(launches, n, table, counters, scratch)
            return
        try:
            self._ensure(nthreads - 1)
            self._gen += 1
            gen = self._gen
            workers = self._workers[:nthreads - 1]
            for w in workers:
                w.post(gen, launches, n, table, counters, scratch, stride)
            try:
                run_list(launches, n, table, counters, scratch)
            finally:
                for w in workers:     # cancel sleepers, wait for workers already running
                    finish(w.state_address, gen)
        finally:
            self._busy.release()


class _Worker:
    def __init__(self, tid):
        self.state = np.zeros(8, np.int64)          # word 0: 4*generation + phase; 1-7: the post
        self.state[7] = tid
        self.state_address = self.state.ctypes.data
        self._sem = (ctypes.c_int64 * 8)()          # a POSIX sem_t (32 bytes), in native code
        if _libc.sem_init(ctypes.byref(self._sem), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "sem_init failed for a kiln worker thread")
        loop = native_runner.functions()[5]
        args = (self.state_address, ctypes.addressof(self._sem), WORKER_SPIN_CYCLES)
        threading.Thread(target=loop, args=args, name=f"kiln-worker-{tid}", daemon=True).start()

    def post(self, gen, launches, n, table, counters, scratch, stride):
        s = self.state
        s[1], s[2], s[3], s[4], s[5], s[6] = launches, n, table, counters, scratch, stride
        s[0] = 4 * gen                              # posted (after the arguments)
        _sem_post(ctypes.byref(self._sem))


_pool = None


def pool() -> ThreadPool:
    global _pool
    if _pool is None:
        _pool = ThreadPool()
    return _pool
