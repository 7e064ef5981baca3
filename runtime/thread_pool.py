"""A small pool of persistent Python threads for running native segments in parallel.

Kernels are called through ctypes, which releases the GIL, so plain Python threads run
them truly in parallel. Waking a sleeping thread costs tens of microseconds and, on a
busy machine, sometimes a whole scheduler tick, so the pool never makes the caller
wait for a worker that has not started yet: work is shared dynamically (see
``native_runner``), and after doing its own share the caller cancels every worker that
is still asleep (``kiln_main_finish``), waiting only for those already running.
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

from . import native_runner

WORKER_SPIN_CYCLES = 2_000_000   # time-stamp counter ticks (about 1 ms) a worker spins for more
_libc = ctypes.CDLL(None, use_errno=True)


class ThreadPool:
    def __init__(self):
        self._workers: list[_Worker] = []
        self._busy = threading.Lock()
        self._gen = 0

    def _ensure(self, n):
        while len(self._workers) < n:
            self._workers.append(_Worker(len(self._workers) + 1))

    def run(self, job, nthreads: int) -> None:
        """Run ``job(tid)`` on the caller (tid 0) and on up to ``nthreads - 1`` workers.

        ``job`` must be a native segment run: correct with any number of participants,
        because threads claim work dynamically. A concurrent second caller (another
        Python thread running a compiled graph) simply runs alone."""
        if nthreads <= 1 or not self._busy.acquire(blocking=False):
            job(0)
            return
        try:
            finish = native_runner.functions()[3]
            self._ensure(nthreads - 1)
            self._gen += 1
            gen = self._gen
            workers = self._workers[:nthreads - 1]
            for w in workers:
                w.post(job, gen)
            try:
                job(0)
            finally:
                for w in workers:     # cancel sleepers, wait for workers already running
                    finish(w.state_address, gen)
            for w in workers:
                if w.error is not None:
                    err, w.error = w.error, None
                    raise err
        finally:
            self._busy.release()


class _Worker:
    def __init__(self, tid):
        self.tid = tid
        self.state = np.zeros(8, np.int64)          # word 0: 4*generation + phase
        self.state_address = self.state.ctypes.data
        self._sem = (ctypes.c_int64 * 8)()          # a POSIX sem_t (32 bytes), in native code
        if _libc.sem_init(ctypes.byref(self._sem), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "sem_init failed for a kiln worker thread")
        self._post = (None, 0)                      # (job, generation), swapped atomically
        self.error = None
        threading.Thread(target=self._loop, name=f"kiln-worker-{tid}", daemon=True).start()

    def post(self, job, gen):
        self._post = (job, gen)
        self.state[0] = 4 * gen                     # posted
        _libc.sem_post(ctypes.byref(self._sem))

    def _loop(self):
        _, begin, end, _, wait = native_runner.functions()
        addr, sem = self.state_address, ctypes.addressof(self._sem)
        gen = 0
        while True:
            # spins a while for the next post (a step's next segment), then sleeps: one
            # native call, so a waiting worker never competes for the GIL
            wait(addr, gen, WORKER_SPIN_CYCLES, sem)
            job, gen = self._post
            if not begin(addr, gen):                # cancelled, or a newer post is pending
                continue
            try:
                job(self.tid)
            except BaseException as e:              # reported by the caller
                self.error = e
            finally:
                end(addr, gen)


_pool = None


def pool() -> ThreadPool:
    global _pool
    if _pool is None:
        _pool = ThreadPool()
    return _pool
